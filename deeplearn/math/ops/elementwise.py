"""The NDArrayMath family of element-wise unary ops (neg exp log sqrt square abs ceil floor relu
elu elu_der selu leaky_relu sigmoid tanh sin cos tan asin acos atan sinh cosh step clip) and the
two-input activations prelu and prelu_der.

Every op here keeps NaN as NaN (deeplearn.js semantics). Each declares its kernel once for NumPy
and CuPy (``forward``) and, where it can, as a scalar C statement (``c_expr``) for the GPU.

dtype rules: float math (exp, log, trig, activations, step, clip) gives float32, also for int32
and bool inputs; neg, abs, square, ceil and floor keep int32 (bool computes as int32); relu keeps
int32 and bool.
"""

from __future__ import annotations

import math as _pymath
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from deeplearn import util
from deeplearn.math.ops.arithmetic import as_float, promote
from deeplearn.math.ops.base import BinaryOp, MathMixin, SameRankOp, Spec, UnaryOp, unbroadcast
from deeplearn.types import RawArray, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = [
    "SELU_ALPHA",
    "SELU_SCALE",
    "Abs",
    "Acos",
    "Asin",
    "Atan",
    "Ceil",
    "Clip",
    "Cos",
    "Cosh",
    "ElementwiseMath",
    "Elu",
    "EluDer",
    "Exp",
    "Floor",
    "LeakyRelu",
    "Log",
    "Neg",
    "Prelu",
    "PreluDer",
    "Relu",
    "Selu",
    "Sigmoid",
    "Sin",
    "Sinh",
    "Sqrt",
    "Square",
    "Step",
    "Tan",
    "Tanh",
]  # fmt: skip

T = TypeVar("T", bound="NDArray")

SELU_SCALE = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772  # SELU_SCALE * SELU_ALPHA = 1.7580993408473769 (deeplearn.js)


def _scalar(math: NDArrayMath, value: float) -> NDArray:
    """A float32 Scalar on ``math``'s backend (constants of the gradient formulas)."""
    from deeplearn.math.ndarray import Scalar

    return Scalar.new(value, "float32", math)


def _zeros(math: NDArrayMath, x: NDArray) -> NDArray:
    from deeplearn.math.ndarray import NDArray

    return NDArray.zeros(x.shape, "float32", math)


def _c_float(value: float) -> str | None:
    """``value`` as a C literal, or None when it has none (inf, NaN): then the op has no c_expr
    and runs its generic kernel."""
    return repr(float(value)) if _pymath.isfinite(value) else None


class _FloatUnaryOp(UnaryOp, abstract=True):
    """Float math: the output is float32 whatever the input dtype. An op that sets ``ufunc``
    is that NumPy/CuPy ufunc of its input as a float."""

    def infer(self, x: Spec) -> Spec:
        return Spec(x.shape, "float32")

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return getattr(xp, self.ufunc)(as_float(xp, x))  # type: ignore[arg-type]


class _IntClosedUnaryOp(UnaryOp, abstract=True):
    """Maps integers to integers: float32 stays float32; int32 and bool give int32. An op that
    sets ``ufunc`` is that NumPy/CuPy ufunc of its input (bool read as int32)."""

    def infer(self, x: Spec) -> Spec:
        return Spec(x.shape, "float32" if x.dtype == "float32" else "int32")

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return getattr(xp, self.ufunc)(_as_number(xp, x))  # type: ignore[arg-type]


def _as_number(xp: ModuleType, x: RawArray) -> RawArray:
    return x.astype(xp.int32) if x.dtype.kind == "b" else x


# -- arithmetic-like ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Neg(_IntClosedUnaryOp):
    """y = −x, element-wise."""

    name = "neg"
    c_expr = "y = -x"
    ufunc = "negative"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.neg(dy),)


@dataclass(frozen=True)
class Square(_IntClosedUnaryOp):
    """y = x², element-wise."""

    name = "square"
    c_expr = "y = x * x"
    ufunc = "square"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, math.add(x, x)),)  # 2x


@dataclass(frozen=True)
class Abs(_IntClosedUnaryOp):
    """y = |x|, element-wise."""

    name = "abs"
    c_expr = "y = fabs(x)"
    ufunc = "absolute"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        sign = math.subtract(math.step(x), math.step(math.neg(x)))  # 1, 0 or −1; NaN stays NaN
        return (math.multiply(dy, sign),)


@dataclass(frozen=True)
class Ceil(_IntClosedUnaryOp):
    """y = ⌈x⌉, element-wise."""

    name = "ceil"
    c_expr = "y = ceil(x)"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return xp.ceil(x) if x.dtype.kind == "f" else _as_number(xp, x)

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (_zeros(math, x),)  # piecewise constant: zero wherever it is differentiable


@dataclass(frozen=True)
class Floor(_IntClosedUnaryOp):
    """y = ⌊x⌋, element-wise."""

    name = "floor"
    c_expr = "y = floor(x)"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return xp.floor(x) if x.dtype.kind == "f" else _as_number(xp, x)

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (_zeros(math, x),)


# -- exponentials and logarithms ---------------------------------------------------------------


@dataclass(frozen=True)
class Exp(_FloatUnaryOp):
    """y = eˣ, element-wise."""

    name = "exp"
    c_expr = "y = exp(x)"
    ufunc = "exp"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, y),)  # d(eˣ)/dx = eˣ = y


@dataclass(frozen=True)
class Log(_FloatUnaryOp):
    """y = ln x, element-wise (NaN below 0, −inf at 0)."""

    name = "log"
    c_expr = "y = log(x)"
    ufunc = "log"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.divide(dy, x),)  # 1/x


@dataclass(frozen=True)
class Sqrt(_FloatUnaryOp):
    """y = √x, element-wise (NaN below 0)."""

    name = "sqrt"
    c_expr = "y = sqrt(x)"
    ufunc = "sqrt"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.divide(dy, math.add(y, y)),)  # 1/(2√x)


# -- activations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Relu(UnaryOp):
    """y = max(0, x), element-wise; NaN stays NaN and int32/bool keep their dtype."""

    name = "relu"
    c_expr = "y = x > 0 ? x : (x == x ? (T)0 : x)"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        # deeplearn.js: relu(NaN) = NaN (conformance: relu.nan_float32). NumPy's and CuPy's
        # maximum propagate NaN (unlike fmax, or a GLSL max), and run 10x faster than a where.
        return xp.maximum(x, x.dtype.type(0))

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, math.step(x)),)  # relu'(x) = step(x), with step(0) = 0


@dataclass(frozen=True)
class Elu(_FloatUnaryOp):
    """y = x for x ≥ 0, eˣ − 1 below, element-wise."""

    name = "elu"
    c_expr = "y = x >= 0 ? x : expm1(x)"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        x = as_float(xp, x)
        return xp.where(x >= 0, x, xp.expm1(x))  # NaN: the comparison fails, expm1(NaN) = NaN

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, math.elu_der(x)),)


@dataclass(frozen=True)
class EluDer(_FloatUnaryOp):
    """y = 1 for x ≥ 0, eˣ below: the derivative of elu (so elu_der(0) = 1)."""

    name = "elu_der"
    c_expr = "y = x >= 0 ? (T)1 : exp(x)"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        x = as_float(xp, x)
        return xp.where(x >= 0, xp.ones_like(x), xp.exp(x))

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, math.subtract(y, math.step(x))),)  # eˣ below 0, 0 above


@dataclass(frozen=True)
class Selu(_FloatUnaryOp):
    """y = scale·x for x ≥ 0, scale·alpha·(eˣ − 1) below (scale 1.0507…, alpha 1.6733…)."""

    name = "selu"
    c_expr = f"y = x >= 0 ? (T){SELU_SCALE!r} * x : (T){SELU_SCALE * SELU_ALPHA!r} * expm1(x)"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        x = as_float(xp, x)
        scale = x.dtype.type(SELU_SCALE)  # a NumPy/CuPy scalar of x's dtype keeps float32 float32
        scale_alpha = x.dtype.type(SELU_SCALE * SELU_ALPHA)
        return xp.where(x >= 0, scale * x, scale_alpha * xp.expm1(x))

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        # scale for x > 0; scale·alpha·eˣ below = scale · elu_der(x) · step(x, alpha)
        slope = math.multiply(math.elu_der(x), math.step(x, SELU_ALPHA))
        return (math.multiply(dy, math.multiply(slope, _scalar(math, SELU_SCALE))),)


@dataclass(frozen=True)
class LeakyRelu(_FloatUnaryOp):
    """y = x for x ≥ 0, alpha·x below."""

    alpha: float = 0.2

    name = "leaky_relu"

    @property
    def c_expr(self) -> str | None:  # type: ignore[override]
        alpha = _c_float(self.alpha)
        return None if alpha is None else f"y = x >= 0 ? x : (T)({alpha}) * x"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        x = as_float(xp, x)
        return xp.where(x >= 0, x, x.dtype.type(self.alpha) * x)

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, math.step(x, self.alpha)),)  # 1 above 0, alpha below


class _PreluOp(BinaryOp, SameRankOp, abstract=True):
    """prelu, prelu_der: (x, alpha) of one shape -> float32 of that shape."""

    def infer(self, x: Spec, alpha: Spec) -> Spec:
        if x.shape != alpha.shape:
            raise ShapeError(
                f"{self.name}: x and alpha must have the same shape; "
                f"got x.shape={x.shape} and alpha.shape={alpha.shape}."
            )
        return Spec(x.shape, "float32")


@dataclass(frozen=True)
class Prelu(_PreluOp):
    """y = x for x ≥ 0, alpha·x below, with a learned alpha of x's shape."""

    name = "prelu"
    c_expr = "y = a >= 0 ? a : b * a"  # a = x, b = alpha

    def forward(self, xp: ModuleType, x: RawArray, alpha: RawArray) -> RawArray:
        x, alpha = promote(xp, as_float(xp, x), alpha)
        return xp.where(x >= 0, x, alpha * x)

    def backward(
        self, math: NDArrayMath, dy: NDArray, x: NDArray, alpha: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # d/dx = prelu_der(x, alpha); d/dalpha = x below 0, 0 above = x − relu(x)
        dx = math.multiply(dy, math.prelu_der(x, alpha))
        dalpha = math.multiply(dy, math.subtract(x, math.relu(x)))
        # unbroadcast: a no-op for equal shapes, correct if a batched caller broadcasts alpha
        return unbroadcast(math, dx, x.shape), unbroadcast(math, dalpha, alpha.shape)


@dataclass(frozen=True)
class PreluDer(_PreluOp):
    """y = 1 for x > 0, alpha for x < 0, x itself at 0 and NaN (so prelu_der(0) = 0)."""

    name = "prelu_der"
    c_expr = "y = a > 0 ? (T)1 : (a < 0 ? b : a)"

    def forward(self, xp: ModuleType, x: RawArray, alpha: RawArray) -> RawArray:
        x, alpha = promote(xp, as_float(xp, x), alpha)
        return xp.where(x > 0, xp.ones_like(x), xp.where(x < 0, alpha, x))

    def backward(
        self, math: NDArrayMath, dy: NDArray, x: NDArray, alpha: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # piecewise constant in x; d/dalpha = 1 where x < 0
        dalpha = math.multiply(dy, math.step(math.neg(x)))
        return _zeros(math, x), unbroadcast(math, dalpha, alpha.shape)


@dataclass(frozen=True)
class Sigmoid(_FloatUnaryOp):
    """y = 1 / (1 + e⁻ˣ), element-wise."""

    name = "sigmoid"
    c_expr = "y = (T)1 / ((T)1 + exp(-x))"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        x = as_float(xp, x)
        return 1 / (1 + xp.exp(-x))  # e⁻ˣ overflows to inf for very negative x: y = 0, exact

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, math.subtract(y, math.square(y))),)  # y(1 − y)


@dataclass(frozen=True)
class Tanh(_FloatUnaryOp):
    """y = tanh x, element-wise."""

    name = "tanh"
    c_expr = "y = tanh(x)"
    ufunc = "tanh"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, math.scalar_minus_array(_scalar(math, 1.0), math.square(y))),)  # 1 − y²


@dataclass(frozen=True)
class Step(_FloatUnaryOp):
    """y = 1 for x > 0, alpha otherwise (so step(0) = alpha = 0 by default); NaN stays NaN."""

    alpha: float = 0.0

    name = "step"

    @property
    def c_expr(self) -> str | None:  # type: ignore[override]
        alpha = _c_float(self.alpha)
        return None if alpha is None else f"y = x > 0 ? (T)1 : (x == x ? (T)({alpha}) : x)"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        x = as_float(xp, x)
        if self.alpha == 0:
            # relu's derivative: max(sign(x), 0) is 1 for x > 0, +0 for x <= 0 (and -0), NaN
            # for NaN; two passes, ~5× faster than the where-based form (and than heaviside)
            return xp.maximum(xp.sign(x), x.dtype.type(0))
        # deeplearn.js: step(NaN) = NaN (conformance: step.nan)
        low = xp.where(xp.isnan(x), x, xp.full_like(x, self.alpha))
        return xp.where(x > 0, xp.ones_like(x), low)

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (_zeros(math, x),)  # piecewise constant


@dataclass(frozen=True)
class Clip(_FloatUnaryOp):
    """y = min(max(x, min_value), max_value), element-wise; NaN stays NaN."""

    min_value: float
    max_value: float

    name = "clip"
    # No c_expr: its bounds may be ±inf, and a generic kernel is fine for a rarely hot op.

    def infer(self, x: Spec) -> Spec:
        if not self.min_value <= self.max_value:
            raise ValueError(f"clip: min must be <= max; got min={self.min_value}, max={self.max_value}.")
        return super().infer(x)

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        x = as_float(xp, x)
        lo, hi = x.dtype.type(self.min_value), x.dtype.type(self.max_value)
        return xp.minimum(xp.maximum(x, lo), hi)  # maximum/minimum propagate NaN

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        # dy passes where min < x < max
        above_min = math.step(math.array_minus_scalar(x, _scalar(math, self.min_value)))
        below_max = math.step(math.scalar_minus_array(_scalar(math, self.max_value), x))
        return (math.multiply(dy, math.multiply(above_min, below_max)),)


# -- trigonometric and hyperbolic --------------------------------------------------------------


@dataclass(frozen=True)
class Sin(_FloatUnaryOp):
    """y = sin x, element-wise."""

    name = "sin"
    c_expr = "y = sin(x)"
    ufunc = "sin"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, math.cos(x)),)


@dataclass(frozen=True)
class Cos(_FloatUnaryOp):
    """y = cos x, element-wise."""

    name = "cos"
    c_expr = "y = cos(x)"
    ufunc = "cos"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.neg(math.multiply(dy, math.sin(x))),)


@dataclass(frozen=True)
class Tan(_FloatUnaryOp):
    """y = tan x, element-wise."""

    name = "tan"
    c_expr = "y = tan(x)"
    ufunc = "tan"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.divide(dy, math.square(math.cos(x))),)  # 1/cos²x


@dataclass(frozen=True)
class Asin(_FloatUnaryOp):
    """y = arcsin x, element-wise (NaN outside [−1, 1])."""

    name = "asin"
    c_expr = "y = asin(x)"
    ufunc = "arcsin"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.divide(dy, _sqrt_one_minus_square(math, x)),)  # 1/√(1 − x²)


@dataclass(frozen=True)
class Acos(_FloatUnaryOp):
    """y = arccos x, element-wise (NaN outside [−1, 1])."""

    name = "acos"
    c_expr = "y = acos(x)"
    ufunc = "arccos"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.neg(math.divide(dy, _sqrt_one_minus_square(math, x))),)  # −1/√(1 − x²)


def _sqrt_one_minus_square(math: NDArrayMath, x: NDArray) -> NDArray:
    return math.sqrt(math.scalar_minus_array(_scalar(math, 1.0), math.square(x)))


@dataclass(frozen=True)
class Atan(_FloatUnaryOp):
    """y = arctan x, element-wise."""

    name = "atan"
    c_expr = "y = atan(x)"
    ufunc = "arctan"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.divide(dy, math.scalar_plus_array(_scalar(math, 1.0), math.square(x))),)  # 1/(1 + x²)


@dataclass(frozen=True)
class Sinh(_FloatUnaryOp):
    """y = sinh x, element-wise."""

    name = "sinh"
    c_expr = "y = sinh(x)"
    ufunc = "sinh"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, math.cosh(x)),)


@dataclass(frozen=True)
class Cosh(_FloatUnaryOp):
    """y = cosh x, element-wise."""

    name = "cosh"
    c_expr = "y = cosh(x)"
    ufunc = "cosh"

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.multiply(dy, math.sinh(x)),)


# The field-less ops the methods below run, made once (why: ArithmeticMath's, arithmetic.py).
_NEG = Neg()
_EXP = Exp()
_LOG = Log()
_SQRT = Sqrt()
_SQUARE = Square()
_ABS = Abs()
_CEIL = Ceil()
_FLOOR = Floor()
_RELU = Relu()
_ELU = Elu()
_ELU_DER = EluDer()
_SELU = Selu()
_PRELU = Prelu()
_PRELU_DER = PreluDer()
_SIGMOID = Sigmoid()
_TANH = Tanh()
_SIN = Sin()
_COS = Cos()
_TAN = Tan()
_ASIN = Asin()
_ACOS = Acos()
_ATAN = Atan()
_SINH = Sinh()
_COSH = Cosh()


class ElementwiseMath(MathMixin):
    """The element-wise unary methods of NDArrayMath, plus prelu and prelu_der."""

    def neg(self, x: T) -> T:
        """Computes −x element-wise (int32 stays int32).

        Example:
            >>> math.neg(Array1D.new([1, -3])).get_values()
            array([-1.,  3.], dtype=float32)
        """
        return self.engine.run(_NEG, x)

    def exp(self, x: T) -> T:
        """Computes eˣ element-wise.

        Example:
            >>> math.exp(Scalar.new(0.0)).get()
            1.0
        """
        return self.engine.run(_EXP, x)

    def log(self, x: T) -> T:
        """Computes the natural logarithm element-wise.

        Example:
            >>> math.log(Array1D.new([1, np.e])).get_values()
            array([0., 1.], dtype=float32)
        """
        return self.engine.run(_LOG, x)

    def sqrt(self, x: T) -> T:
        """Computes √x element-wise.

        Example:
            >>> math.sqrt(Array1D.new([4, 9])).get_values()
            array([2., 3.], dtype=float32)
        """
        return self.engine.run(_SQRT, x)

    def square(self, x: T) -> T:
        """Computes x² element-wise (int32 stays int32).

        Example:
            >>> math.square(Array1D.new([2, -3])).get_values()
            array([4., 9.], dtype=float32)
        """
        return self.engine.run(_SQUARE, x)

    def abs(self, x: T) -> T:
        """Computes |x| element-wise (int32 stays int32).

        Example:
            >>> math.abs(Array1D.new([-2, 3])).get_values()
            array([2., 3.], dtype=float32)
        """
        return self.engine.run(_ABS, x)

    def ceil(self, x: T) -> T:
        """Rounds up element-wise.

        Example:
            >>> math.ceil(Array1D.new([1.5, -1.4])).get_values()
            array([ 2., -1.], dtype=float32)
        """
        return self.engine.run(_CEIL, x)

    def floor(self, x: T) -> T:
        """Rounds down element-wise.

        Example:
            >>> math.floor(Array1D.new([1.5, -1.4])).get_values()
            array([ 1., -2.], dtype=float32)
        """
        return self.engine.run(_FLOOR, x)

    def relu(self, x: T) -> T:
        """Computes max(0, x) element-wise (NaN stays NaN; int32 and bool keep their dtype).

        Example:
            >>> math.relu(Array1D.new([-1, 2])).get_values()
            array([0., 2.], dtype=float32)
        """
        return self.engine.run(_RELU, x)

    def elu(self, x: T) -> T:
        """Computes x for x ≥ 0 and eˣ − 1 below, element-wise.

        Example:
            >>> math.elu(Array1D.new([1, 0])).get_values()
            array([1., 0.], dtype=float32)
        """
        return self.engine.run(_ELU, x)

    def elu_der(self, x: T) -> T:
        """The derivative of elu: 1 for x ≥ 0, eˣ below.

        Example:
            >>> math.elu_der(Array1D.new([2, 0])).get_values()
            array([1., 1.], dtype=float32)
        """
        return self.engine.run(_ELU_DER, x)

    def selu(self, x: T) -> T:
        """Scaled elu: 1.0507·x for x ≥ 0, 1.7581·(eˣ − 1) below.

        Example:
            >>> math.selu(Array1D.new([1, 0])).get_values()
            array([1.050701, 0.      ], dtype=float32)
        """
        return self.engine.run(_SELU, x)

    def leaky_relu(self, x: T, alpha: float = 0.2) -> T:
        """Computes x for x ≥ 0 and alpha·x below.

        Example:
            >>> math.leaky_relu(Array1D.new([-1, 2])).get_values()
            array([-0.2,  2. ], dtype=float32)
        """
        op = LeakyRelu(util.as_float(alpha, "leaky_relu", "alpha"))
        return self.engine.run(op, x)

    def prelu(self, x: T, alpha: T) -> T:
        """Parametric relu: x for x ≥ 0, alpha·x below, with alpha of x's shape.

        Example:
            >>> math.prelu(Array1D.new([-2, 1]), Array1D.new([0.25, 0.5])).get_values()
            array([-0.5,  1. ], dtype=float32)
        """
        return self.engine.run(_PRELU, x, alpha)

    def prelu_der(self, x: T, alpha: T) -> T:
        """The derivative of prelu with respect to x: 1 above 0, alpha below, 0 at 0.

        Example:
            >>> math.prelu_der(Array1D.new([-2, 0, 3]), Array1D.new([0.25, 0.5, 0.5])).get_values()
            array([0.25, 0.  , 1.  ], dtype=float32)
        """
        return self.engine.run(_PRELU_DER, x, alpha)

    def sigmoid(self, x: T) -> T:
        """Computes 1 / (1 + e⁻ˣ) element-wise.

        Example:
            >>> math.sigmoid(Scalar.new(0)).get()
            0.5
        """
        return self.engine.run(_SIGMOID, x)

    def tanh(self, x: T) -> T:
        """Computes tanh x element-wise.

        Example:
            >>> math.tanh(Scalar.new(0)).get()
            0.0
        """
        return self.engine.run(_TANH, x)

    def step(self, x: T, alpha: float = 0.0) -> T:
        """Computes 1 for x > 0 and alpha otherwise (NaN stays NaN).

        Example:
            >>> math.step(Array1D.new([-1, 0, 2])).get_values()
            array([0., 0., 1.], dtype=float32)
        """
        return self.engine.run(Step(util.as_float(alpha, "step", "alpha")), x)

    def clip(self, x: T, min: float, max: float) -> T:
        """Clips x to [min, max] element-wise (NaN stays NaN).

        Raises:
            ValueError: if min > max.

        Example:
            >>> math.clip(Array1D.new([-3, 0.5, 7]), -1, 1).get_values()
            array([-1. ,  0.5,  1. ], dtype=float32)
        """
        op = Clip(util.as_float(min, "clip", "min"), util.as_float(max, "clip", "max"))
        return self.engine.run(op, x)

    def sin(self, x: T) -> T:
        """Computes sin x element-wise.

        Example:
            >>> math.sin(Scalar.new(0)).get()
            0.0
        """
        return self.engine.run(_SIN, x)

    def cos(self, x: T) -> T:
        """Computes cos x element-wise.

        Example:
            >>> math.cos(Scalar.new(0)).get()
            1.0
        """
        return self.engine.run(_COS, x)

    def tan(self, x: T) -> T:
        """Computes tan x element-wise.

        Example:
            >>> math.tan(Scalar.new(0)).get()
            0.0
        """
        return self.engine.run(_TAN, x)

    def asin(self, x: T) -> T:
        """Computes arcsin x element-wise (NaN outside [−1, 1]).

        Example:
            >>> math.asin(Scalar.new(0)).get()
            0.0
        """
        return self.engine.run(_ASIN, x)

    def acos(self, x: T) -> T:
        """Computes arccos x element-wise (NaN outside [−1, 1]).

        Example:
            >>> math.acos(Scalar.new(1)).get()
            0.0
        """
        return self.engine.run(_ACOS, x)

    def atan(self, x: T) -> T:
        """Computes arctan x element-wise.

        Example:
            >>> math.atan(Scalar.new(0)).get()
            0.0
        """
        return self.engine.run(_ATAN, x)

    def sinh(self, x: T) -> T:
        """Computes sinh x element-wise.

        Example:
            >>> math.sinh(Scalar.new(0)).get()
            0.0
        """
        return self.engine.run(_SINH, x)

    def cosh(self, x: T) -> T:
        """Computes cosh x element-wise.

        Example:
            >>> math.cosh(Scalar.new(0)).get()
            1.0
        """
        return self.engine.run(_COSH, x)
