"""The NDArrayMath family of element-wise binary ops with NumPy broadcasting (add subtract
multiply divide pow maximum minimum equal), their ``*_strict`` variants, the scalar helpers and
``scaled_array_add``.

dtype rules (deeplearn.js 0.3 ``upcastType``, with bool counted as int32 in arithmetic):
add/subtract/multiply give float32 if either input is float32, else int32; divide always gives
float32; pow keeps a float32 base and computes an int32/bool base in int32; maximum/minimum need
equal dtypes and keep them; equal gives bool. NaN propagates through every op (NumPy semantics
for ``equal``: NaN equals nothing).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from deeplearn.math.ops.base import (
    BinaryOp,
    MathMixin,
    SameRankOp,
    Spec,
    broadcast_shapes,
    check_arrays,
    unbroadcast,
)
from deeplearn.types import DType, DTypeError, RawArray, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray import Array2D, NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = [
    "Add",
    "AddStrict",
    "ArithmeticMath",
    "Divide",
    "DivideStrict",
    "Equal",
    "EqualStrict",
    "Maximum",
    "Minimum",
    "Multiply",
    "MultiplyStrict",
    "Pow",
    "PowStrict",
    "ScaledArrayAdd",
    "Subtract",
    "SubtractStrict",
    "as_float",
    "promote",
    "result_dtype",
]

T = TypeVar("T", bound="NDArray")


# -- dtype helpers shared with the unary family ------------------------------------------------


def result_dtype(*dtypes: DType) -> DType:
    """The dtype of arithmetic on these dtypes: float32 if any is float32, else int32.

    Example:
        >>> result_dtype("int32", "float32")
        'float32'
    """
    return "float32" if "float32" in dtypes else "int32"


def as_float(xp: ModuleType, x: RawArray) -> RawArray:
    """``x`` itself when it is floating (float32, or float64 in the gradient checks), else a
    float32 copy."""
    return x if x.dtype.kind == "f" else x.astype(xp.float32)


def promote(xp: ModuleType, a: RawArray, b: RawArray) -> tuple[RawArray, RawArray]:
    """Casts ``a`` and ``b`` to the dtype ``result_dtype`` names, so NumPy/CuPy compute in it.

    NumPy alone would widen float32 with int32 to float64 (then we would pay a cast back) and
    would compute bool + bool as a logical or.
    """
    fa, fb = a.dtype.kind == "f", b.dtype.kind == "f"
    if fa and not fb:
        return a, b.astype(a.dtype)
    if fb and not fa:
        return a.astype(b.dtype), b
    if not fa and not fb:
        return a.astype(xp.int32, copy=False), b.astype(xp.int32, copy=False)
    return a, b  # both floating: float32 stays float32, float64 (gradient checks) stays float64


def _check_same_shape(where: str, a: Spec, b: Spec, names: tuple[str, str] = ("a", "b")) -> None:
    if a.shape != b.shape:
        raise ShapeError(
            f"{where}: shapes must match; got {names[0]}.shape={a.shape} and {names[1]}.shape={b.shape}."
        )


def _check_scalar(where: str, name: str, c: Spec | NDArray) -> None:
    if c.size != 1:
        raise ShapeError(f"{where}: {name} must be a scalar (size 1); got {name}.shape={tuple(c.shape)}.")


# -- broadcasting binary ops -------------------------------------------------------------------


class _Arithmetic(BinaryOp, abstract=True):
    """add, subtract, multiply: the result is float32 if either input is, else int32; the
    kernel is the ``ufunc`` of the inputs cast to it."""

    def infer(self, a: Spec, b: Spec) -> Spec:
        return Spec(broadcast_shapes(a.shape, b.shape, self.name), result_dtype(a.dtype, b.dtype))

    def forward(self, xp: ModuleType, a: RawArray, b: RawArray) -> RawArray:
        a, b = promote(xp, a, b)
        return getattr(xp, self.ufunc)(a, b)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Add(_Arithmetic):
    """y = a + b, element-wise with NumPy broadcasting."""

    name = "add"
    c_expr = "y = a + b"
    ufunc = "add"

    def backward(
        self, math: NDArrayMath, dy: NDArray, a: NDArray, b: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        return unbroadcast(math, dy, a.shape), unbroadcast(math, dy, b.shape)


@dataclass(frozen=True)
class Subtract(_Arithmetic):
    """y = a − b, element-wise with NumPy broadcasting."""

    name = "subtract"
    c_expr = "y = a - b"
    ufunc = "subtract"

    def backward(
        self, math: NDArrayMath, dy: NDArray, a: NDArray, b: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        return unbroadcast(math, dy, a.shape), unbroadcast(math, math.neg(dy), b.shape)


@dataclass(frozen=True)
class Multiply(_Arithmetic):
    """y = a · b, element-wise with NumPy broadcasting."""

    name = "multiply"
    c_expr = "y = a * b"
    ufunc = "multiply"

    def backward(
        self, math: NDArrayMath, dy: NDArray, a: NDArray, b: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # deeplearn.js 0.3.17 returned clone(b)/clone(a) without dy (conformance:
        # multiply.grad_2d notes); we compute the textbook vjp.
        return unbroadcast(math, math.multiply(dy, b), a.shape), unbroadcast(
            math, math.multiply(dy, a), b.shape
        )


@dataclass(frozen=True)
class Divide(BinaryOp):
    """y = a / b, element-wise with NumPy broadcasting; always float32 (deeplearn.js 0.3)."""

    name = "divide"
    c_expr = "y = a / b"
    ufunc = "divide"

    def infer(self, a: Spec, b: Spec) -> Spec:
        return Spec(broadcast_shapes(a.shape, b.shape, self.name), "float32")

    def forward(self, xp: ModuleType, a: RawArray, b: RawArray) -> RawArray:
        a, b = promote(xp, as_float(xp, a), b)
        return xp.divide(a, b)

    def backward(
        self, math: NDArrayMath, dy: NDArray, a: NDArray, b: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # d/da = 1/b; d/db = −a/b² = −y/b
        da = math.divide(dy, b)
        db = math.neg(math.divide(math.multiply(dy, y), b))
        return unbroadcast(math, da, a.shape), unbroadcast(math, db, b.shape)


@dataclass(frozen=True)
class Pow(BinaryOp):
    """y = aᵇ, element-wise with NumPy broadcasting; the exponent b must be int32.

    A float32 base gives float32 (negative bases keep their sign for odd exponents); an int32 or
    bool base gives int32, truncated toward zero (2 ** -1 = 0), as deeplearn.js stores
    ``Math.pow`` into an Int32Array.
    """

    name = "pow"
    # No c_expr: b is int32 and a is not, so the generated-kernel path would never apply.

    def infer(self, a: Spec, b: Spec) -> Spec:
        if b.dtype != "int32":
            raise DTypeError(
                f"{self.name}: only supports int32 data type for the exponent parameter; "
                f"got b.dtype={b.dtype}."
            )
        return Spec(
            broadcast_shapes(a.shape, b.shape, self.name), "float32" if a.dtype == "float32" else "int32"
        )

    def forward(self, xp: ModuleType, a: RawArray, b: RawArray) -> RawArray:
        if a.dtype.kind == "f":
            return xp.power(a, b.astype(a.dtype))  # integer exponents are exact in float32
        # NumPy refuses negative integer powers of integers; compute in float64 and truncate.
        y = xp.power(a.astype(xp.float64), b.astype(xp.float64))
        return xp.where(xp.isfinite(y), y, 0).astype(xp.int32)  # JS Int32Array stores ±inf as 0

    def backward(
        self, math: NDArrayMath, dy: NDArray, a: NDArray, b: NDArray, y: NDArray
    ) -> tuple[NDArray, None]:
        from deeplearn.math.ndarray import Scalar

        # d/da = b · a^(b−1); no gradient for the integer exponent
        b_minus_1 = math.subtract(b, Scalar.new(1, "int32", math))
        da = math.multiply(dy, math.multiply(b, math.pow(a, b_minus_1)))
        return unbroadcast(math, da, a.shape), None


class _SameDtype(BinaryOp, abstract=True):
    """maximum, minimum: a and b must have the same dtype, which the result keeps."""

    def infer(self, a: Spec, b: Spec) -> Spec:
        if a.dtype != b.dtype:
            raise DTypeError(
                f"{self.name}: a and b must have the same dtype; got a.dtype={a.dtype} and b.dtype={b.dtype}."
            )
        return super().infer(a, b)


@dataclass(frozen=True)
class Maximum(_SameDtype):
    """y = max(a, b), element-wise with NumPy broadcasting; dtypes must match; NaN propagates."""

    name = "maximum"
    c_expr = "y = (a > b || a != a) ? a : b"  # b NaN: the comparison fails and y = b = NaN

    def forward(self, xp: ModuleType, a: RawArray, b: RawArray) -> RawArray:
        return xp.maximum(a, b)  # propagates NaN from either side

    def backward(
        self, math: NDArrayMath, dy: NDArray, a: NDArray, b: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # dy goes to a where a > b, to b elsewhere (ties go to b; their measure is zero)
        da = math.multiply(dy, math.step(math.subtract(a, b)))
        return unbroadcast(math, da, a.shape), unbroadcast(math, math.subtract(dy, da), b.shape)


@dataclass(frozen=True)
class Minimum(_SameDtype):
    """y = min(a, b), element-wise with NumPy broadcasting; dtypes must match; NaN propagates."""

    name = "minimum"
    c_expr = "y = (a < b || a != a) ? a : b"

    def forward(self, xp: ModuleType, a: RawArray, b: RawArray) -> RawArray:
        return xp.minimum(a, b)

    def backward(
        self, math: NDArrayMath, dy: NDArray, a: NDArray, b: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # dy goes to a where a < b, to b elsewhere
        da = math.multiply(dy, math.step(math.subtract(b, a)))
        return unbroadcast(math, da, a.shape), unbroadcast(math, math.subtract(dy, da), b.shape)


@dataclass(frozen=True)
class Equal(BinaryOp):
    """y = (a == b) as bool, element-wise with NumPy broadcasting; NaN equals nothing."""

    name = "equal"
    c_expr = "y = a == b"

    def infer(self, a: Spec, b: Spec) -> Spec:
        return Spec(broadcast_shapes(a.shape, b.shape, self.name), "bool")

    def forward(self, xp: ModuleType, a: RawArray, b: RawArray) -> RawArray:
        # deeplearn.js gives the bool NaN sentinel 255 when either side is NaN; a bool array
        # has no such value here, so equal(NaN, x) is False, as in NumPy (docs/design.md §4).
        return a == b


# -- strict variants: shapes must match exactly ------------------------------------------------


class _Strict(BinaryOp, SameRankOp, abstract=True):
    """Mixin: the same op, but the shapes of a and b must be equal (no broadcasting)."""

    def infer(self, a: Spec, b: Spec) -> Spec:
        _check_same_shape(self.name, a, b)
        return super().infer(a, b)


@dataclass(frozen=True)
class AddStrict(_Strict, Add):
    """y = a + b for a and b of equal shapes."""

    name = "add_strict"


@dataclass(frozen=True)
class SubtractStrict(_Strict, Subtract):
    """y = a − b for a and b of equal shapes."""

    name = "subtract_strict"


@dataclass(frozen=True)
class MultiplyStrict(_Strict, Multiply):
    """y = a · b for a and b of equal shapes."""

    name = "multiply_strict"


@dataclass(frozen=True)
class DivideStrict(_Strict, Divide):
    """y = a / b for a and b of equal shapes; float32."""

    name = "divide_strict"


@dataclass(frozen=True)
class PowStrict(_Strict, Pow):
    """y = aᵇ for a and an int32 b of equal shapes."""

    name = "pow_strict"


@dataclass(frozen=True)
class EqualStrict(_Strict, Equal):
    """y = (a == b) as bool, for a and b of equal shapes."""

    name = "equal_strict"


# -- c1·a + c2·b -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaledArrayAdd(SameRankOp):
    """y = c1·a + c2·b for scalars (size-1 arrays) c1, c2 and equal-shape a, b."""

    name = "scaled_array_add"

    def infer(self, c1: Spec, a: Spec, c2: Spec, b: Spec) -> Spec:
        _check_scalar(self.name, "c1", c1)
        _check_scalar(self.name, "c2", c2)
        _check_same_shape(self.name, a, b)
        return Spec(a.shape, result_dtype(c1.dtype, a.dtype, c2.dtype, b.dtype))

    def forward(self, xp: ModuleType, c1: RawArray, a: RawArray, c2: RawArray, b: RawArray) -> RawArray:
        c1, c2 = c1.reshape(()), c2.reshape(())  # a (1, 1) c1 must not add dimensions to a
        if a.dtype == b.dtype == c1.dtype == c2.dtype and a.dtype.kind == "f":
            # Every optimizer update runs this on whole weight matrices: one temporary fewer
            # than c1·a + c2·b written out (the same roundings, so the same result).
            y = c1 * a
            y += c2 * b
            return y
        c1, a = promote(xp, c1, a)
        c2, b = promote(xp, c2, b)
        left, right = promote(xp, c1 * a, c2 * b)
        return left + right

    def backward(
        self, math: NDArrayMath, dy: NDArray, c1: NDArray, a: NDArray, c2: NDArray, b: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        # dc1 = Σ dy·a, da = c1·dy, dc2 = Σ dy·b, db = c2·dy
        dc1 = math.sum(math.multiply(dy, a)).reshape(c1.shape)
        dc2 = math.sum(math.multiply(dy, b)).reshape(c2.shape)
        da = math.multiply(dy, c1.reshape(()))
        db = math.multiply(dy, c2.reshape(()))
        return dc1, da, dc2, db


def _scalar_view(where: str, c: NDArray, a: NDArray) -> NDArray:
    """The scalar ``c`` of ``where`` (c op a, or a op c) as a rank-0 view: TypeError unless both
    are NDArrays, ShapeError when ``c`` has more than one element."""
    check_arrays(where, c=c, a=a)
    _check_scalar(where, "c", c)
    return c if c.shape == () else c.reshape(())


# The field-less ops the methods below run, made once: an op is an immutable value, so one
# instance serves every call, where making one per call (and the attribute dict that the
# engine's key reads) cost 0.3-0.8 µs of an eager op's ~15 on a 2-core AMD CPU.
_ADD = Add()
_SUBTRACT = Subtract()
_MULTIPLY = Multiply()
_DIVIDE = Divide()
_POW = Pow()
_MAXIMUM = Maximum()
_MINIMUM = Minimum()
_EQUAL = Equal()
_ADD_STRICT = AddStrict()
_SUBTRACT_STRICT = SubtractStrict()
_MULTIPLY_STRICT = MultiplyStrict()
_DIVIDE_STRICT = DivideStrict()
_POW_STRICT = PowStrict()
_EQUAL_STRICT = EqualStrict()
_SCALED_ARRAY_ADD = ScaledArrayAdd()


class ArithmeticMath(MathMixin):
    """The element-wise binary methods of NDArrayMath (broadcasting, strict, scalar helpers)."""

    # -- broadcasting ------------------------------------------------------------------------
    def add(self, a: NDArray, b: NDArray) -> NDArray:
        """Adds a and b element-wise with NumPy broadcasting.

        Example:
            >>> math.add(Array2D.new([2, 1], [1, 2]), Array1D.new([10, 20, 30])).numpy()
            array([[11., 21., 31.],
                   [12., 22., 32.]], dtype=float32)
        """
        return self.engine.run(_ADD, a, b)

    def subtract(self, a: NDArray, b: NDArray) -> NDArray:
        """Subtracts b from a element-wise with NumPy broadcasting.

        Example:
            >>> math.subtract(Array1D.new([2, 5]), Scalar.new(1)).get_values()
            array([1., 4.], dtype=float32)
        """
        return self.engine.run(_SUBTRACT, a, b)

    def multiply(self, a: NDArray, b: NDArray) -> NDArray:
        """Multiplies a and b element-wise with NumPy broadcasting.

        Example:
            >>> math.multiply(Array1D.new([1, 2]), Array1D.new([3, 4])).get_values()
            array([3., 8.], dtype=float32)
        """
        return self.engine.run(_MULTIPLY, a, b)

    def divide(self, a: NDArray, b: NDArray) -> NDArray:
        """Divides a by b element-wise with NumPy broadcasting; the result is always float32.

        Example:
            >>> math.divide(Array1D.new([1, 6], "int32"), Array1D.new([2, 5], "int32")).get_values()
            array([0.5, 1.2], dtype=float32)
        """
        return self.engine.run(_DIVIDE, a, b)

    def pow(self, a: NDArray, b: NDArray) -> NDArray:
        """Raises a to the int32 powers b element-wise, with NumPy broadcasting.

        Raises:
            DTypeError: if b is not int32.

        Example:
            >>> math.pow(Array1D.new([-2, 3]), Array1D.new([3, 2], "int32")).get_values()
            array([-8.,  9.], dtype=float32)
        """
        return self.engine.run(_POW, a, b)

    def maximum(self, a: NDArray, b: NDArray) -> NDArray:
        """Element-wise max(a, b) with NumPy broadcasting; NaN propagates; dtypes must match.

        Example:
            >>> math.maximum(Array1D.new([0.5, 3, -4]), Scalar.new(0.6)).get_values()
            array([0.6, 3. , 0.6], dtype=float32)
        """
        return self.engine.run(_MAXIMUM, a, b)

    def minimum(self, a: NDArray, b: NDArray) -> NDArray:
        """Element-wise min(a, b) with NumPy broadcasting; NaN propagates; dtypes must match.

        Example:
            >>> math.minimum(Array1D.new([0.5, 3, -4]), Scalar.new(0.6)).get_values()
            array([ 0.5,  0.6, -4. ], dtype=float32)
        """
        return self.engine.run(_MINIMUM, a, b)

    def equal(self, a: NDArray, b: NDArray) -> NDArray:
        """Element-wise a == b as a bool array, with NumPy broadcasting; NaN equals nothing.

        Example:
            >>> math.equal(Scalar.new(2), Array1D.new([1, 2, 3])).get_values()
            array([False,  True, False])
        """
        return self.engine.run(_EQUAL, a, b)

    # -- strict: shapes must match -----------------------------------------------------------
    def add_strict(self, a: T, b: T) -> T:
        """a + b for arrays of equal shapes (ShapeError otherwise).

        Example:
            >>> math.add_strict(Array1D.new([1, 2]), Array1D.new([3, 4])).get_values()
            array([4., 6.], dtype=float32)
        """
        return self.engine.run(_ADD_STRICT, a, b)

    def subtract_strict(self, a: T, b: T) -> T:
        """a − b for arrays of equal shapes (ShapeError otherwise).

        Example:
            >>> math.subtract_strict(Array1D.new([1, 2]), Array1D.new([3, 4])).get_values()
            array([-2., -2.], dtype=float32)
        """
        return self.engine.run(_SUBTRACT_STRICT, a, b)

    def multiply_strict(self, a: T, b: T) -> T:
        """a · b for arrays of equal shapes (ShapeError otherwise).

        Example:
            >>> math.multiply_strict(Array1D.new([1, 2]), Array1D.new([3, 4])).get_values()
            array([3., 8.], dtype=float32)
        """
        return self.engine.run(_MULTIPLY_STRICT, a, b)

    def divide_strict(self, a: T, b: T) -> T:
        """a / b (float32) for arrays of equal shapes (ShapeError otherwise).

        Example:
            >>> math.divide_strict(Array1D.new([1, 2]), Array1D.new([4, 4])).get_values()
            array([0.25, 0.5 ], dtype=float32)
        """
        return self.engine.run(_DIVIDE_STRICT, a, b)

    def pow_strict(self, a: T, b: NDArray) -> T:
        """aᵇ for a and an int32 b of equal shapes (ShapeError / DTypeError otherwise).

        Example:
            >>> math.pow_strict(Array1D.new([2, -3]), Array1D.new([2, 3], "int32")).get_values()
            array([  4., -27.], dtype=float32)
        """
        return self.engine.run(_POW_STRICT, a, b)

    def equal_strict(self, a: NDArray, b: NDArray) -> NDArray:
        """a == b as a bool array, for arrays of equal shapes (ShapeError otherwise).

        Example:
            >>> math.equal_strict(Array1D.new([1, 2]), Array1D.new([1, 3])).get_values()
            array([ True, False])
        """
        return self.engine.run(_EQUAL_STRICT, a, b)

    # -- scalar helpers (deeplearn.js: thin wrappers over the broadcasting ops) ----------------
    def scalar_plus_array(self, c: NDArray, a: T) -> T:
        """c + a for a scalar c (any array of size 1; ShapeError otherwise).

        Example:
            >>> math.scalar_plus_array(Scalar.new(5), Array1D.new([1, 2, 3])).get_values()
            array([6., 7., 8.], dtype=float32)
        """
        return self.add(_scalar_view("scalar_plus_array", c, a), a)  # type: ignore[return-value]

    def scalar_minus_array(self, c: NDArray, a: T) -> T:
        """c − a for a scalar c.

        Example:
            >>> math.scalar_minus_array(Scalar.new(5), Array1D.new([7, 2, 3])).get_values()
            array([-2.,  3.,  2.], dtype=float32)
        """
        return self.subtract(_scalar_view("scalar_minus_array", c, a), a)  # type: ignore[return-value]

    def array_minus_scalar(self, a: T, c: NDArray) -> T:
        """a − c for a scalar c.

        Example:
            >>> math.array_minus_scalar(Array1D.new([1, 3]), Scalar.new(5)).get_values()
            array([-4., -2.], dtype=float32)
        """
        return self.subtract(a, _scalar_view("array_minus_scalar", c, a))  # type: ignore[return-value]

    def scalar_times_array(self, c: NDArray, a: T) -> T:
        """c · a for a scalar c.

        Example:
            >>> math.scalar_times_array(Scalar.new(2), Array1D.new([2, -5])).get_values()
            array([  4., -10.], dtype=float32)
        """
        return self.multiply(_scalar_view("scalar_times_array", c, a), a)  # type: ignore[return-value]

    def scalar_divided_by_array(self, c: NDArray, a: T) -> T:
        """c / a (float32) for a scalar c.

        Example:
            >>> math.scalar_divided_by_array(Scalar.new(2), Array1D.new([1, 4])).get_values()
            array([2. , 0.5], dtype=float32)
        """
        return self.divide(_scalar_view("scalar_divided_by_array", c, a), a)  # type: ignore[return-value]

    def array_divided_by_scalar(self, a: T, c: NDArray) -> T:
        """a / c (float32) for a scalar c.

        Example:
            >>> math.array_divided_by_scalar(Array1D.new([1, 4]), Scalar.new(2)).get_values()
            array([0.5, 2. ], dtype=float32)
        """
        return self.divide(a, _scalar_view("array_divided_by_scalar", c, a))  # type: ignore[return-value]

    def scaled_array_add(self, c1: NDArray, a: T, c2: NDArray, b: T) -> T:
        """c1·a + c2·b for scalars c1, c2 and arrays a, b of equal shapes (one kernel; the
        optimizers' update step).

        Example:
            >>> math.scaled_array_add(Scalar.new(2), Array1D.new([1, 2]), Scalar.new(-1),
            ...                       Array1D.new([1, 1])).get_values()
            array([1., 3.], dtype=float32)
        """
        return self.engine.run(_SCALED_ARRAY_ADD, c1, a, c2, b)

    # -- deprecated deeplearn.js 0.3 names ---------------------------------------------------
    def sub(self, a: NDArray, b: NDArray) -> NDArray:
        """Deprecated (deeplearn.js 0.3.6): use ``subtract``."""
        warnings.warn("math.sub is deprecated; use math.subtract.", DeprecationWarning, stacklevel=2)
        return self.subtract(a, b)

    def sub_strict(self, a: T, b: T) -> T:
        """Deprecated (deeplearn.js 0.3.6): use ``subtract_strict``."""
        warnings.warn(
            "math.sub_strict is deprecated; use math.subtract_strict.", DeprecationWarning, stacklevel=2
        )
        return self.subtract_strict(a, b)

    def element_wise_mul(self, a: T, b: T) -> T:
        """Deprecated: use ``multiply_strict`` (deeplearn.js's elementWiseMul required equal shapes)."""
        warnings.warn(
            "math.element_wise_mul is deprecated; use math.multiply_strict.", DeprecationWarning, stacklevel=2
        )
        return self.multiply_strict(a, b)

    def element_wise_mul_broadcast(self, a: Array2D, b: Array2D) -> Array2D:
        """Deprecated: use ``multiply``. Both arguments must be rank 2, as in deeplearn.js."""
        warnings.warn(
            "math.element_wise_mul_broadcast is deprecated; use math.multiply.",
            DeprecationWarning,
            stacklevel=2,
        )
        check_arrays("element_wise_mul_broadcast", a=a, b=b)
        if a.rank != 2 or b.rank != 2:
            raise ShapeError(
                "element_wise_mul_broadcast: a and b must be rank 2; "
                f"got a.shape={a.shape} and b.shape={b.shape}."
            )
        return self.multiply(a, b)  # type: ignore[return-value]
