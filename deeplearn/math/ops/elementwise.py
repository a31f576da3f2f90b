"""The NDArrayMath family of element-wise unary ops (neg exp log sqrt square abs ceil floor relu
elu selu leaky_relu prelu sigmoid tanh sin cos tan asin acos atan sinh cosh step clip).

Every op here keeps NaN as NaN (deeplearn.js semantics). Each declares its kernel once for NumPy
and CuPy (``forward``) and, where it can, as a scalar C expression (``c_expr``) for the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from deeplearn.math.ops.base import MathMixin, UnaryOp
from deeplearn.types import RawArray

if TYPE_CHECKING:
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["ElementwiseMath", "Exp", "Relu"]

T = TypeVar("T", bound="NDArray")


@dataclass(frozen=True)
class Exp(UnaryOp):
    """y = eˣ, element-wise. NaN stays NaN."""

    name = "exp"
    c_expr = "y = exp(x)"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return xp.exp(x)

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, y),)  # d(eˣ)/dx = eˣ = y


@dataclass(frozen=True)
class Relu(UnaryOp):
    """y = max(0, x), element-wise; NaN stays NaN and int32/bool keep their dtype."""

    name = "relu"
    c_expr = "y = x > 0 ? x : (x == x ? (T)0 : x)"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        # deeplearn.js: relu(NaN) = NaN, where a plain maximum(0, x) may give 0.
        return xp.where((x > 0) | (x != x), x, xp.zeros_like(x))

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, math.step(x)),)  # relu'(x) = step(x), with step(0) = 0


class ElementwiseMath(MathMixin):
    """The element-wise methods of NDArrayMath."""

    def exp(self, x: T) -> T:
        """Computes eˣ element-wise.

        Example:
            >>> math.exp(Scalar.new(0.0)).get()
            1.0
        """
        return self._run(Exp(), x)  # type: ignore[no-any-return]

    def relu(self, x: T) -> T:
        """Computes max(0, x) element-wise (NaN stays NaN).

        Example:
            >>> math.relu(Array1D.new([-1, 2])).get_values()
            array([0., 2.], dtype=float32)
        """
        return self._run(Relu(), x)  # type: ignore[no-any-return]
