"""The NDArrayMath family of the Graph cost functions: mean_squared_cost and
softmax_cross_entropy_cost (each reduces to a Scalar).

DESIGN.md §4: their gradients are the exact derivatives of the forward values times the incoming
gradient dy, where deeplearn.js's Graph drops the 1/N of the mean and ignores dy.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, cast

from deeplearn.math.ops.base import MathMixin, Op, Spec
from deeplearn.types import DTypeError, RawArray, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray import NDArray, Scalar
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["SOFTMAX_CE_EPSILON", "CostMath", "MeanSquaredCost", "SoftmaxCrossEntropyCost"]

SOFTMAX_CE_EPSILON = 1e-5
"""deeplearn.js adds this inside the log of the cross entropy: −Σ target·log(softmax(x) + 1e-5)."""


def _check_pair(a: Spec, b: Spec, where: str, a_name: str, b_name: str) -> None:
    if a.shape != b.shape:
        raise ShapeError(
            f"{where}: {a_name} and {b_name} must have the same shape; got {a_name}.shape={a.shape} "
            f"and {b_name}.shape={b.shape}."
        )
    if a.dtype == "bool" or b.dtype == "bool":
        raise DTypeError(f"{where}: {a_name} and {b_name} must be numeric; got {a.dtype} and {b.dtype}.")


def _scalar(math: NDArrayMath, value: float) -> Scalar:
    from deeplearn.math.ndarray import Scalar

    return Scalar.new(value, math=math)


@dataclass(frozen=True)
class MeanSquaredCost(Op):
    """y = mean(½·(x1 − x2)²) over every element (a Scalar)."""

    name = "mean_squared_cost"

    def infer(self, x1: Spec, x2: Spec) -> Spec:
        _check_pair(x1, x2, self.name, "x1", "x2")
        return Spec(())

    def forward(self, xp: ModuleType, x1: RawArray, x2: RawArray) -> RawArray:
        d = x1.astype(xp.float32) - x2 if x1.dtype.kind != "f" else x1 - x2
        return xp.asarray(xp.mean(0.5 * d * d))

    def backward(
        self, math: NDArrayMath, dy: NDArray, x1: NDArray, x2: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # dx1 = dy·(x1 − x2)/N, dx2 = −dx1.
        # deeplearn.js: gives (x1 − x2) with no 1/N and ignores dy (graph/ops/element_wise_cost.ts);
        # DESIGN.md §4: we return the exact derivative. conformance: graph.meanSquaredCost.fwd_bwd
        dx1 = math.multiply(math.subtract(x1, x2), math.divide(dy, _scalar(math, max(x1.size, 1))))
        return dx1, math.neg(dx1)


@dataclass(frozen=True)
class SoftmaxCrossEntropyCost(Op):
    """y = −Σ target·log(softmax(x) + 1e-5), softmax along the last dimension (a Scalar)."""

    name = "softmax_cross_entropy_cost"

    def infer(self, x: Spec, target: Spec) -> Spec:
        _check_pair(x, target, self.name, "x", "target")
        if x.rank < 1 or x.shape[-1] < 1:
            raise ShapeError(f"{self.name}: x must have a non-empty last dimension; got x.shape={x.shape}.")
        return Spec(())

    def forward(self, xp: ModuleType, x: RawArray, target: RawArray) -> RawArray:
        xf = x if x.dtype.kind == "f" else x.astype(xp.float32)
        # Stable softmax; a NaN anywhere in a row makes the row (and the cost) NaN.
        e = xp.exp(xf - xp.max(xf, axis=-1, keepdims=True))
        p = e / xp.sum(e, axis=-1, keepdims=True)
        # deeplearn.js: 1e-5 inside the log (graph/cost_functions.ts crossEntropyCost).
        return xp.asarray(-xp.sum(target * xp.log(p + SOFTMAX_CE_EPSILON)))

    def backward(
        self, math: NDArrayMath, dy: NDArray, x: NDArray, target: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # With p = softmax(x), q = p + eps, u = target/q:
        #   dx = dy·p·(Σ_k u_k p_k − u)   (= dy·(p − target) when eps = 0 and Σ target = 1)
        #   dtarget = −dy·log(q)
        # deeplearn.js: dx = p − target whatever dy (graph/ops/softmax.ts); DESIGN.md §4: we return
        # the exact derivative of the forward value. conformance: graph.softmaxCrossEntropyCost.matches_theory
        p = math.softmax(x)
        q = math.add(p, _scalar(math, SOFTMAX_CE_EPSILON))
        u = math.divide(target, q)
        s = math.sum(math.multiply(u, p), -1, True)
        dx = math.multiply(math.multiply(p, math.subtract(s, u)), dy)
        dtarget = math.multiply(math.neg(math.log(q)), dy)
        return dx, dtarget


class CostMath(MathMixin):
    """The methods of NDArrayMath for the Graph cost functions.

    The casts to Scalar state what mypy cannot see from the op's class: a cost as these methods
    run it reduces its whole input to one value, a rank-0 result, so a Scalar.
    """

    def mean_squared_cost(self, x1: NDArray, x2: NDArray) -> Scalar:
        """The mean over every element of ½·(x1 − x2)²; shapes must match.

        Example:
            >>> math.mean_squared_cost(Array1D.new([1, 2, 3, 4]), Array1D.new([2, 4, 6, 8])).get()
            3.75
        """
        return cast("Scalar", self._run(MeanSquaredCost(), x1, x2))

    def softmax_cross_entropy_cost(self, x: NDArray, target: NDArray) -> Scalar:
        """−Σ target·log(softmax(x) + 1e-5), the softmax taken along the last dimension (the 1e-5
        is deeplearn.js's); shapes must match.

        Example:
            >>> cost = math.softmax_cross_entropy_cost(Array1D.new([1, 2, 3]), Array1D.new([0.3, 0.6, 0.1]))
            >>> round(cost.get(), 3)
            1.608
        """
        return cast("Scalar", self._run(SoftmaxCrossEntropyCost(), x, target))
