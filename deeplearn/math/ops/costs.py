"""The NDArrayMath family of the Graph cost functions: mean_squared_cost and
softmax_cross_entropy_cost (each reduces to a Scalar).

Each has a per-example form (``example_rank``, as ``reduction.paired_examples`` describes): the
cost of each example of a batch, which is what a Graph's cost node computes.

docs/design.md §4: their gradients are the exact derivatives of the forward values times the incoming
gradient dy, where deeplearn.js's Graph drops the 1/N of the mean and ignores dy.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, cast

from deeplearn import util
from deeplearn.math.ops.base import MathMixin, Op, Spec, broadcast_shapes, check_arrays, unbroadcast
from deeplearn.math.ops.reduction import _shifted_exp, example_axes, paired_examples
from deeplearn.types import DTypeError, RawArray, Shape, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray import NDArray, Scalar
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = [
    "SOFTMAX_CE_EPSILON",
    "CostMath",
    "MeanSquaredCost",
    "SoftmaxCrossEntropyCost",
    "SoftmaxCrossEntropyCostDer",
]

SOFTMAX_CE_EPSILON = 1e-5
"""deeplearn.js adds this inside the log of the cross entropy: −Σ target·log(softmax(x) + 1e-5)."""


def _check_pair(op: Op, a: Spec, b: Spec, example_rank: int | None, names: tuple[str, str]) -> Shape:
    """The cost's output shape: () for the plain form, the leading axes for the per-example
    one. ShapeError or DTypeError naming ``op`` when ``a`` and ``b`` do not pair."""
    shape = paired_examples(op, a, b, example_rank, names)
    if a.dtype == "bool" or b.dtype == "bool":
        raise DTypeError(
            f"{op.name}: {names[0]} and {names[1]} must be numeric; got {a.dtype} and {b.dtype}."
        )
    return shape


def _scalar(math: NDArrayMath, value: float) -> Scalar:
    from deeplearn.math.ndarray import Scalar

    return Scalar.new(value, math=math)


def _per_element(dy: NDArray, example_rank: int | None) -> NDArray:
    """``dy``, one value per example, as a view that broadcasts against the elements of those
    examples: [B] becomes [B, 1, ..., 1] (``example_rank`` ones); the plain form's () stays ()."""
    return dy if example_rank is None else dy.reshape((*dy.shape, *(1,) * example_rank))


@dataclass(frozen=True)
class MeanSquaredCost(Op):
    """y = mean(½·(x1 − x2)²) over every element (a Scalar).

    ``example_rank=k``: the per-example form, the mean over each example's last k axes.

    Example:
        >>> x1, x2 = Array2D.new([2, 2], [1, 2, 3, 4]), Array1D.new([1, 0])
        >>> math.engine.run(MeanSquaredCost(1), x1, x2).get_values()  # two examples, one x2
        array([1., 5.], dtype=float32)
    """

    name = "mean_squared_cost"
    example_rank: int | None = None

    def infer(self, x1: Spec, x2: Spec) -> Spec:
        return Spec(_check_pair(self, x1, x2, self.example_rank, ("x1", "x2")))

    def forward(self, xp: ModuleType, x1: RawArray, x2: RawArray) -> RawArray:
        d = x1.astype(xp.float32) - x2 if x1.dtype.kind != "f" else x1 - x2
        return xp.asarray(xp.mean(0.5 * d * d, axis=example_axes(d.ndim, self.example_rank)))

    def backward(
        self, math: NDArrayMath, dy: NDArray, x1: NDArray, x2: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # dx1 = (x1 − x2)·dy/N with N elements per example, dx2 = −dx1 (an input shared by
        # several examples gets the sum of theirs).
        # deeplearn.js: gives (x1 − x2) with no 1/N and ignores dy (graph/ops/element_wise_cost.ts);
        # docs/design.md §4: we return the exact derivative. conformance: graph.meanSquaredCost.fwd_bwd
        # dx2 as (x1 − x2)·(−dy/N): −dx1 (but for the sign of a NaN), with the negation on the
        # per-example factor rather than on the whole gradient (a recorded step folds it into a
        # constant where dy is one), so each gradient is the shared difference and one product.
        n = max(util.size_from_shape(x1.shape[a] for a in example_axes(x1.rank, self.example_rank)), 1)
        dy_n = math.divide(_per_element(dy, self.example_rank), _scalar(math, n))
        diff = math.subtract(x1, x2)
        dx1 = math.multiply(diff, dy_n)
        dx2 = math.multiply(diff, math.neg(dy_n))
        return unbroadcast(math, dx1, x1.shape), unbroadcast(math, dx2, x2.shape)


@dataclass(frozen=True)
class SoftmaxCrossEntropyCost(Op):
    """y = −Σ target·log(softmax(x) + 1e-5), softmax along the last dimension (a Scalar).

    ``example_rank=k``: the per-example form, the sum over each example's last k axes.

    Example:
        >>> x, target = Array2D.new([2, 2], [0, 0, 0, 1.0986123]), Array1D.new([1, 0])  # ln 3
        >>> math.engine.run(SoftmaxCrossEntropyCost(1), x, target).get_values().round(3)  # two examples
        array([0.693, 1.386], dtype=float32)
    """

    name = "softmax_cross_entropy_cost"
    example_rank: int | None = None

    def infer(self, x: Spec, target: Spec) -> Spec:
        shape = _check_pair(self, x, target, self.example_rank, ("x", "target"))
        if x.rank < 1 or x.shape[-1] < 1 or self.example_rank == 0:
            raise ShapeError(f"{self.name}: x must have a non-empty last dimension; got x.shape={x.shape}.")
        return Spec(shape)

    def forward(self, xp: ModuleType, x: RawArray, target: RawArray) -> RawArray:
        xf = x if x.dtype.kind == "f" else x.astype(xp.float32)
        # Stable softmax; a NaN anywhere in a row makes the row (and the cost) NaN.
        e = xp.exp(xf - xp.max(xf, axis=-1, keepdims=True))
        p = e / xp.sum(e, axis=-1, keepdims=True)
        # deeplearn.js: 1e-5 inside the log (graph/cost_functions.ts crossEntropyCost).
        terms = target * xp.log(p + SOFTMAX_CE_EPSILON)
        return xp.asarray(-xp.sum(terms, axis=example_axes(terms.ndim, self.example_rank)))

    def backward(
        self, math: NDArrayMath, dy: NDArray, x: NDArray, target: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # With p = softmax(x), q = p + eps, u = target/q:
        #   dx = dy·p·(Σ_k u_k p_k − u)   (= dy·(p − target) when eps = 0 and Σ target = 1)
        #   dtarget = −dy·log(q)
        # (an input shared by several examples gets the sum of theirs).
        # deeplearn.js: dx = p − target whatever dy (graph/ops/softmax.ts); docs/design.md §4: we return
        # the exact derivative of the forward value. conformance: graph.softmaxCrossEntropyCost.matches_theory
        dx, dtarget = math.softmax_cross_entropy_cost_der(x, target, _per_element(dy, self.example_rank))
        return unbroadcast(math, dx, x.shape), unbroadcast(math, dtarget, target.shape)


@dataclass(frozen=True)
class SoftmaxCrossEntropyCostDer(Op):
    """(dx, dtarget): the derivatives of softmax_cross_entropy_cost times the incoming gradient
    ``dy``, which broadcasts against x (one value per example: shape [B, 1]). With p the softmax
    of x along its last dimension, q = p + 1e-5, u = target/q and S = Σ u·p along that dimension:
    dx = p·(S − u)·dy and dtarget = −log(q)·dy, both of the broadcast shape of x and target.

    One op rather than the dozen element-wise ops and reductions it is made of, so that a
    backend can run it as one kernel (the CUDA backend does, a row per warp).

    Example:
        >>> x, t = Array1D.new([0, 0]), Array1D.new([1, 0])
        >>> dx, dt = math.softmax_cross_entropy_cost_der(x, t, Scalar.new(1))
        >>> dx.get_values().round(4)
        array([-0.5,  0.5], dtype=float32)
    """

    name = "softmax_cross_entropy_cost_der"

    def infer(self, x: Spec, target: Spec, dy: Spec) -> tuple[Spec, Spec]:
        where = self.name
        for name, spec in (("x", x), ("target", target), ("dy", dy)):
            if spec.dtype == "bool":
                raise DTypeError(f"{where}: {name} must be numeric; got {name}.dtype=bool.")
        if x.rank < 1 or x.shape[-1] < 1:
            raise ShapeError(f"{where}: x must have a non-empty last dimension; got x.shape={x.shape}.")
        shape = broadcast_shapes(x.shape, target.shape, where)
        if broadcast_shapes(shape, dy.shape, where) != shape:
            raise ShapeError(
                f"{where}: dy must broadcast against the shape of x and target, {shape}; got dy.shape={dy.shape}."
            )
        return Spec(shape), Spec(shape)

    def forward(
        self, xp: ModuleType, x: RawArray, target: RawArray, dy: RawArray
    ) -> tuple[RawArray, RawArray]:
        xf = x if x.dtype.kind == "f" else x.astype(xp.float32)
        e, _ = _shifted_exp(xp, xf, (xf.ndim - 1,))
        p = e / xp.sum(e, axis=-1, keepdims=True)  # the softmax, as math.softmax computes it
        q = p + xp.asarray(SOFTMAX_CE_EPSILON, dtype=p.dtype)
        u = target / q
        s = xp.sum(u * p, axis=-1, keepdims=True)
        dx = (p * (s - u)) * dy
        dtarget = -xp.log(q) * dy
        shape = xp.broadcast_shapes(x.shape, target.shape)
        return xp.broadcast_to(dx, shape).astype(p.dtype), xp.broadcast_to(dtarget, shape).astype(p.dtype)


# The field-less ops the methods below run, made once (why: ArithmeticMath's, arithmetic.py).
_MEAN_SQUARED_COST = MeanSquaredCost()
_SOFTMAX_CROSS_ENTROPY_COST = SoftmaxCrossEntropyCost()
_SOFTMAX_CROSS_ENTROPY_COST_DER = SoftmaxCrossEntropyCostDer()


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
        return cast("Scalar", self.engine.run(_MEAN_SQUARED_COST, x1, x2))

    def softmax_cross_entropy_cost(self, x: NDArray, target: NDArray) -> Scalar:
        """−Σ target·log(softmax(x) + 1e-5), the softmax taken along the last dimension (the 1e-5
        is deeplearn.js's); shapes must match.

        Example:
            >>> cost = math.softmax_cross_entropy_cost(Array1D.new([1, 2, 3]), Array1D.new([0.3, 0.6, 0.1]))
            >>> round(cost.get(), 3)
            1.608
        """
        return cast("Scalar", self.engine.run(_SOFTMAX_CROSS_ENTROPY_COST, x, target))

    def softmax_cross_entropy_cost_der(
        self, x: NDArray, target: NDArray, dy: NDArray
    ) -> tuple[NDArray, NDArray]:
        """(dx, dtarget): softmax_cross_entropy_cost's derivatives times ``dy`` (which
        broadcasts against x: one value per example as [B, 1]), computed together.

        Example:
            >>> dx, dt = math.softmax_cross_entropy_cost_der(Array1D.new([0, 0]), Array1D.new([1, 0]), Scalar.new(2))
            >>> dx.get_values().round(4), dt.get_values().round(3)
            (array([-1.,  1.], dtype=float32), array([1.386, 1.386], dtype=float32))
        """
        check_arrays("softmax_cross_entropy_cost_der", x=x, target=target, dy=dy)
        return self.engine.run(_SOFTMAX_CROSS_ENTROPY_COST_DER, x, target, dy)
