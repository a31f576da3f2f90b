"""Semantics of the element-wise families that the op table's NumPy oracle cannot know:
NaN propagation through every op, the int32/bool dtype rules, deeplearn.js's values at the
kinks (step(0), elu_der(0), prelu_der(0)), default arguments and constants, argument checks
and their messages, the scalar helpers and the deprecated 0.3 names."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, Array2D, NDArray, Scalar
from deeplearn.math.ops.elementwise import LeakyRelu, Relu, Step
from deeplearn.types import DTypeError, ShapeError

NAN = float("nan")

# Every unary method, called with the arguments it needs. The finite input 0.5 is in every
# op's domain (log, sqrt, asin, acos).
UNARY: dict[str, Callable[[dl.NDArrayMath, NDArray], NDArray]] = {
    "neg": lambda m, x: m.neg(x),
    "exp": lambda m, x: m.exp(x),
    "log": lambda m, x: m.log(x),
    "sqrt": lambda m, x: m.sqrt(x),
    "square": lambda m, x: m.square(x),
    "abs": lambda m, x: m.abs(x),
    "ceil": lambda m, x: m.ceil(x),
    "floor": lambda m, x: m.floor(x),
    "relu": lambda m, x: m.relu(x),
    "elu": lambda m, x: m.elu(x),
    "elu_der": lambda m, x: m.elu_der(x),
    "selu": lambda m, x: m.selu(x),
    "leaky_relu": lambda m, x: m.leaky_relu(x),
    "sigmoid": lambda m, x: m.sigmoid(x),
    "tanh": lambda m, x: m.tanh(x),
    "sin": lambda m, x: m.sin(x),
    "cos": lambda m, x: m.cos(x),
    "tan": lambda m, x: m.tan(x),
    "asin": lambda m, x: m.asin(x),
    "acos": lambda m, x: m.acos(x),
    "atan": lambda m, x: m.atan(x),
    "sinh": lambda m, x: m.sinh(x),
    "cosh": lambda m, x: m.cosh(x),
    "step": lambda m, x: m.step(x),
    "step_alpha": lambda m, x: m.step(x, 0.5),
    "clip": lambda m, x: m.clip(x, -1, 1),
    "prelu": lambda m, x: m.prelu(x, NDArray.ones_like(x)),
    "prelu_der": lambda m, x: m.prelu_der(x, NDArray.ones_like(x)),
}

# Every binary method. pow's exponent must be int32, so only its base can be NaN.
BINARY: dict[str, Callable[[dl.NDArrayMath, NDArray, NDArray], NDArray]] = {
    "add": lambda m, a, b: m.add(a, b),
    "subtract": lambda m, a, b: m.subtract(a, b),
    "multiply": lambda m, a, b: m.multiply(a, b),
    "divide": lambda m, a, b: m.divide(a, b),
    "maximum": lambda m, a, b: m.maximum(a, b),
    "minimum": lambda m, a, b: m.minimum(a, b),
    "add_strict": lambda m, a, b: m.add_strict(a, b),
    "subtract_strict": lambda m, a, b: m.subtract_strict(a, b),
    "multiply_strict": lambda m, a, b: m.multiply_strict(a, b),
    "divide_strict": lambda m, a, b: m.divide_strict(a, b),
}


def _values(x: NDArray) -> np.ndarray:
    return x.numpy()


# -- NaN propagation ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", UNARY)
def test_unary_ops_keep_nan(name: str, math: dl.NDArrayMath) -> None:
    y = _values(UNARY[name](math, Array1D.new([0.5, NAN, -0.5])))
    assert np.isnan(y[1]), f"{name}(NaN) = {y[1]}"
    assert np.isfinite(y[0]), f"{name}(0.5) = {y[0]}"


@pytest.mark.parametrize(
    "name",
    [
        "add",
        "subtract",
        "multiply",
        "divide",
        "maximum",
        "minimum",
        "add_strict",
        "subtract_strict",
        "multiply_strict",
        "divide_strict",
    ],
)
@pytest.mark.parametrize("nan_in", ["a", "b"])
def test_binary_ops_propagate_nan_from_either_side(name: str, nan_in: str, math: dl.NDArrayMath) -> None:
    fn = BINARY[name]
    with_nan, plain = Array1D.new([NAN, 2.0, -3.0]), Array1D.new([1.0, 5.0, 7.0])
    a, b = (with_nan, plain) if nan_in == "a" else (plain, with_nan)
    y = _values(fn(math, a, b))
    assert np.isnan(y[0]) and not np.isnan(y[1:]).any(), f"{name} with NaN in {nan_in}: {y}"


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_propagate_nan_under_broadcasting(name: str, math: dl.NDArrayMath) -> None:
    y = _values(getattr(math, name)(Array2D.new([2, 1], [NAN, 1.0]), Array1D.new([-100.0, 100.0])))
    assert np.isnan(y[0]).all() and not np.isnan(y[1]).any()
    y = _values(getattr(math, name)(Scalar.new(0.0), Array1D.new([NAN, 3.0])))
    assert np.isnan(y[0]) and y[1] == (3.0 if name == "maximum" else 0.0)


def test_scalar_nan_spreads_over_the_array(math: dl.NDArrayMath) -> None:
    for y in (
        math.scalar_plus_array(Scalar.new(NAN), Array1D.new([1, 2, 3])),
        math.scalar_times_array(Scalar.new(NAN), Array1D.new([1, 2, 3])),
        math.array_minus_scalar(Array1D.new([1, 2]), Scalar.new(NAN)),
        math.scaled_array_add(Scalar.new(NAN), Array1D.new([1, 2]), Scalar.new(1), Array1D.new([1, 2])),
    ):
        assert np.isnan(_values(y)).all()


def test_pow_keeps_nan_base(math: dl.NDArrayMath) -> None:
    y = _values(math.pow(Array1D.new([NAN, 3, NAN, 0]), Array1D.new([1, 3, 2, 3], "int32")))
    np.testing.assert_array_equal(y, [NAN, 27, NAN, 0])  # conformance: pow.nan


def test_equal_with_nan_is_false(math: dl.NDArrayMath) -> None:
    # deeplearn.js returns the bool NaN sentinel 255 here; a bool array has no such value, so
    # we follow NumPy (docs/design.md §4).
    y = math.equal(Array1D.new([NAN, NAN, 1.0]), Array1D.new([NAN, 1.0, 1.0]))
    assert y.dtype == "bool"
    assert _values(y).tolist() == [False, False, True]
    assert _values(math.equal_strict(Array1D.new([NAN]), Array1D.new([NAN]))).tolist() == [False]


# -- dtype rules -------------------------------------------------------------------------------

FLOAT_MATH = [
    "exp",
    "log",
    "sqrt",
    "elu",
    "elu_der",
    "selu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "step",
    "step_alpha",
    "clip",
    "prelu",
    "prelu_der",
]


@pytest.mark.parametrize("name", FLOAT_MATH)
@pytest.mark.parametrize("dtype", ["int32", "bool"])
def test_float_math_on_int_and_bool_gives_float32(name: str, dtype: str, math: dl.NDArrayMath) -> None:
    x = Array1D.new([1, 0, 1], dtype)
    y = UNARY[name](math, x)
    assert y.dtype == "float32" and y.raw.dtype == np.float32
    expected = UNARY[name](math, Array1D.new([1.0, 0.0, 1.0]))
    np.testing.assert_allclose(_values(y), _values(expected), rtol=1e-6)


@pytest.mark.parametrize("name", ["neg", "abs", "square", "ceil", "floor"])
def test_integer_closed_ops_keep_int32(name: str, math: dl.NDArrayMath) -> None:
    y = UNARY[name](math, Array1D.new([-3, 0, 4], "int32"))
    assert y.dtype == "int32" and y.raw.dtype == np.int32
    expected = {
        "neg": [3, 0, -4],
        "abs": [3, 0, 4],
        "square": [9, 0, 16],
        "ceil": [-3, 0, 4],
        "floor": [-3, 0, 4],
    }[name]
    assert _values(y).tolist() == expected


def test_neg_and_square_of_bool_compute_in_int32(math: dl.NDArrayMath) -> None:
    x = Array1D.new([True, False], "bool")
    assert math.neg(x).dtype == "int32" and _values(math.neg(x)).tolist() == [-1, 0]
    assert _values(math.square(x)).tolist() == [1, 0]


@pytest.mark.parametrize("dtype", ["int32", "bool"])
def test_relu_keeps_int32_and_bool(dtype: str, math: dl.NDArrayMath) -> None:
    values = [1, -2, 0, 3, -1] if dtype == "int32" else [1, 0, 0, 1, 0]
    y = math.relu(Array1D.new(values, dtype))
    assert y.dtype == dtype
    assert _values(y).tolist() == [max(v, 0) if dtype == "int32" else bool(v) for v in values]


@pytest.mark.parametrize(
    "a_dtype, b_dtype, expected",
    [
        ("int32", "int32", "int32"),
        ("int32", "float32", "float32"),
        ("float32", "int32", "float32"),
        ("bool", "bool", "int32"),
        ("bool", "int32", "int32"),
        ("float32", "bool", "float32"),
    ],
)
@pytest.mark.parametrize("name", ["add", "subtract", "multiply"])
def test_arithmetic_result_dtype(
    name: str, a_dtype: str, b_dtype: str, expected: str, math: dl.NDArrayMath
) -> None:
    a, b = Array1D.new([1, 0, 1], a_dtype), Array1D.new([1, 1, 0], b_dtype)
    y = getattr(math, name)(a, b)
    assert y.dtype == expected and y.raw.dtype == np.dtype(expected)
    ref = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply}[name]
    np.testing.assert_array_equal(_values(y), ref(np.array([1, 0, 1]), np.array([1, 1, 0])))


def test_int32_arithmetic_is_exact(math: dl.NDArrayMath) -> None:
    big = 2**24 + 1  # not representable in float32: a float round trip would lose it
    y = math.add(Array1D.new([big], "int32"), Array1D.new([1], "int32"))
    assert y.dtype == "int32" and _values(y).tolist() == [big + 1]


@pytest.mark.parametrize("dtypes", [("int32", "int32"), ("bool", "int32"), ("float32", "int32")])
def test_divide_always_gives_float32(dtypes: tuple[str, str], math: dl.NDArrayMath) -> None:
    y = math.divide(Array1D.new([1, 0, 1], dtypes[0]), Array1D.new([2, 4, 5], dtypes[1]))
    assert y.dtype == "float32"
    np.testing.assert_allclose(_values(y), [0.5, 0.0, 0.2], rtol=1e-7)


def test_pow_requires_an_int32_exponent(math: dl.NDArrayMath) -> None:
    with pytest.raises(
        DTypeError,
        match=r"^pow: only supports int32 data type for the exponent parameter; "
        r"got b\.dtype=float32\.$",
    ):
        math.pow(Array1D.new([1, 2]), Array1D.new([2, 3]))
    with pytest.raises(DTypeError, match="^pow_strict: "):
        math.pow_strict(Array1D.new([1, 2]), Array1D.new([2, 3], "bool"))


def test_pow_keeps_the_sign_for_odd_exponents(math: dl.NDArrayMath) -> None:
    y = math.pow(Array2D.new([2, 3], [1, -2, -3, 0, 7, 1]), Array2D.new([2, 3], [5, 3, 4, 5, 2, -3], "int32"))
    assert y.dtype == "float32"
    np.testing.assert_array_equal(_values(y).ravel(), [1, -8, 81, 0, 49, 1])  # conformance: pow.same_shape
    y = math.pow(Array1D.new([-2.0, -2.0]), Array1D.new([-1, -2], "int32"))
    np.testing.assert_allclose(_values(y), [-0.5, 0.25])


def test_pow_of_an_int32_base_truncates_to_int32(math: dl.NDArrayMath) -> None:
    y = math.pow(Array1D.new([2, -3, 2, 0], "int32"), Array1D.new([3, 3, -1, 0], "int32"))
    assert y.dtype == "int32"
    assert _values(y).tolist() == [8, -27, 0, 1]


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_require_equal_dtypes(name: str, math: dl.NDArrayMath) -> None:
    with pytest.raises(
        DTypeError,
        match=rf"^{name}: a and b must have the same dtype; "
        r"got a\.dtype=float32 and b\.dtype=int32\.$",
    ):
        getattr(math, name)(Array1D.new([1, 0, 0, 1]), Array1D.new([0, 0, 1, 1], "int32"))
    y = getattr(math, name)(Array1D.new([1, 5, 2, 3], "int32"), Array1D.new([2, 3, 1, 4], "int32"))
    assert y.dtype == "int32"
    assert _values(y).tolist() == ([2, 5, 2, 4] if name == "maximum" else [1, 3, 1, 3])


def test_equal_gives_bool(math: dl.NDArrayMath) -> None:
    y = math.equal(Array2D.new([1, 3], [1, 2, 5]), Array2D.new([2, 1], [5, 1]))
    assert y.dtype == "bool" and y.raw.dtype == np.bool_
    assert _values(y).tolist() == [[False, False, True], [True, False, False]]  # conformance: equal.1x3_2x1
    assert _values(math.equal(Array1D.new([1, 2], "int32"), Array1D.new([1.0, 2.5]))).tolist() == [
        True,
        False,
    ]


# -- values at the kinks, defaults and constants ----------------------------------------------


def test_step_at_zero_is_alpha(math: dl.NDArrayMath) -> None:
    assert _values(math.step(Array1D.new([-1, 0, 1]))).tolist() == [0, 0, 1]
    assert _values(math.step(Array1D.new([-1, 0, 1]), 0.25)).tolist() == [0.25, 0.25, 1]


def test_derivatives_at_zero(math: dl.NDArrayMath) -> None:
    assert math.elu_der(Scalar.new(0)).get() == 1.0
    assert math.prelu_der(Scalar.new(0), Scalar.new(0.3)).get() == 0.0
    y = math.prelu_der(Array1D.new([0.5, 3, -0.1, -4]), Array1D.new([0.2, 0.4, 0.25, 0.15]))
    np.testing.assert_allclose(_values(y), [1, 1, 0.25, 0.15])  # conformance: preluDer.basic
    # relu'(0) = step(0) = 0
    (dx,) = Relu().backward(math, Array1D.new([1.0, 1.0]), Array1D.new([0.0, 2.0]), None)
    assert _values(dx).tolist() == [0, 1]


def test_leaky_relu_default_alpha_is_0_2(math: dl.NDArrayMath) -> None:
    np.testing.assert_allclose(_values(math.leaky_relu(Array1D.new([-1, 0, 2]))), [-0.2, 0, 2])
    np.testing.assert_allclose(_values(math.leaky_relu(Array1D.new([-1, 2]), 0.5)), [-0.5, 2])


def test_selu_constants(math: dl.NDArrayMath) -> None:
    y = _values(math.selu(Array1D.new([1.0, -40.0, 0.0])))
    np.testing.assert_allclose(y, [1.0507009873554805, -1.7580993408473769, 0.0], rtol=1e-6)


def test_elu_and_sigmoid_at_extremes(math: dl.NDArrayMath) -> None:
    np.testing.assert_allclose(_values(math.elu(Array1D.new([1, -1, 0]))), [1, -0.63212055, 0], rtol=1e-6)
    assert _values(math.sigmoid(Array1D.new([-200.0, 200.0]))).tolist() == [0.0, 1.0]


def test_asin_acos_outside_their_domain_give_nan(math: dl.NDArrayMath) -> None:
    assert np.isnan(_values(math.asin(Array1D.new([4.0, -2.0])))).all()
    assert np.isnan(_values(math.acos(Array1D.new([7.0])))).all()


def test_clip_with_min_above_max_raises(math: dl.NDArrayMath) -> None:
    x = Array1D.new([3, -1, 0, 100, -7, 2])
    with pytest.raises(ValueError, match=r"^clip: min must be <= max; got min=1\.0, max=-1\.0\.$"):
        math.clip(x, 1, -1)  # conformance: clip.min_gt_max_throws
    np.testing.assert_array_equal(_values(math.clip(x, 2, 2)), [2] * 6)
    np.testing.assert_array_equal(_values(math.clip(x, -np.inf, 0)), [0, -1, 0, 0, -7, 0])


def test_non_finite_attributes_fall_back_to_the_generic_kernel() -> None:
    assert Step(float("inf")).c_expr is None and LeakyRelu(float("nan")).c_expr is None
    assert Step(0.5).c_expr is not None and "0.5" in Step(0.5).c_expr


# -- shape checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["add_strict", "subtract_strict", "multiply_strict", "divide_strict", "equal_strict"]
)
def test_strict_variants_require_equal_shapes(name: str, math: dl.NDArrayMath) -> None:
    with pytest.raises(
        ShapeError, match=rf"^{name}: shapes must match; got a\.shape=\(2,\) and b\.shape=\(3,\)\.$"
    ):
        getattr(math, name)(Array1D.new([1, 2]), Array1D.new([1, 2, 3]))
    # (1,) would broadcast against (3,) in the non-strict op
    with pytest.raises(ShapeError, match=rf"^{name}: shapes must match"):
        getattr(math, name)(Array1D.new([2]), Array1D.new([4, 2, -1]))
    assert getattr(math, name.removesuffix("_strict"))(Array1D.new([2]), Array1D.new([4, 2, -1])).shape == (
        3,
    )


def test_pow_strict_requires_equal_shapes(math: dl.NDArrayMath) -> None:
    with pytest.raises(ShapeError, match=r"^pow_strict: shapes must match"):
        math.pow_strict(
            Array2D.new([2, 3], [1, 2, -3, -4, 5, 6]), Array2D.new([2, 2], [5, 3, 4, -7], "int32")
        )


@pytest.mark.parametrize("name", ["prelu", "prelu_der"])
def test_prelu_requires_alpha_of_x_shape(name: str, math: dl.NDArrayMath) -> None:
    with pytest.raises(
        ShapeError,
        match=rf"^{name}: x and alpha must have the same shape; "
        r"got x\.shape=\(3,\) and alpha\.shape=\(\)\.$",
    ):
        getattr(math, name)(Array1D.new([1, 2, 3]), Scalar.new(0.2))


SCALAR_HELPERS: dict[str, Callable[[dl.NDArrayMath, NDArray, NDArray], NDArray]] = {
    "scalar_plus_array": lambda m, c, a: m.scalar_plus_array(c, a),
    "scalar_minus_array": lambda m, c, a: m.scalar_minus_array(c, a),
    "array_minus_scalar": lambda m, c, a: m.array_minus_scalar(a, c),
    "scalar_times_array": lambda m, c, a: m.scalar_times_array(c, a),
    "scalar_divided_by_array": lambda m, c, a: m.scalar_divided_by_array(c, a),
    "array_divided_by_scalar": lambda m, c, a: m.array_divided_by_scalar(a, c),
}
SCALAR_REFS: dict[str, Callable[[float, np.ndarray], np.ndarray]] = {
    "scalar_plus_array": lambda c, a: c + a,
    "scalar_minus_array": lambda c, a: c - a,
    "array_minus_scalar": lambda c, a: a - c,
    "scalar_times_array": lambda c, a: c * a,
    "scalar_divided_by_array": lambda c, a: c / a,
    "array_divided_by_scalar": lambda c, a: a / c,
}


@pytest.mark.parametrize("name", SCALAR_HELPERS)
def test_scalar_helpers(name: str, math: dl.NDArrayMath) -> None:
    a = Array2D.new([2, 3], [1, 2, 3, 4, 5, 6])
    for c in (Scalar.new(2), Array2D.new([1, 1], [2])):  # any size-1 array; its rank is dropped
        y = SCALAR_HELPERS[name](math, c, a)
        assert y.shape == (2, 3)
        np.testing.assert_allclose(
            _values(y), SCALAR_REFS[name](2.0, np.arange(1.0, 7.0).reshape(2, 3)), rtol=1e-6
        )
    with pytest.raises(ShapeError, match=rf"^{name}: c must be a scalar \(size 1\); got c\.shape=\(3,\)\.$"):
        SCALAR_HELPERS[name](math, Array1D.new([1, 2, 3]), a)


def test_scaled_array_add(math: dl.NDArrayMath) -> None:
    a, b = Array2D.new([2, 3], [2, 4, 6, 8, 10, 12]), Array2D.new([2, 3], [1, 2, 3, 4, 5, 6])
    y = math.scaled_array_add(Scalar.new(3), a, Scalar.new(-2), b)
    np.testing.assert_allclose(_values(y), [[4, 8, 12], [16, 20, 24]])
    y = math.scaled_array_add(Array1D.new([3]), a, Array2D.new([1, 1], [-2]), b)
    assert y.shape == (2, 3)
    with pytest.raises(
        ShapeError,
        match=r"^scaled_array_add: shapes must match; got a\.shape=\(2, 3\) and b\.shape=\(2, 4\)\.$",
    ):
        math.scaled_array_add(Scalar.new(3), a, Scalar.new(2), Array2D.new([2, 4], list(range(8))))
    with pytest.raises(
        ShapeError, match=r"^scaled_array_add: c1 must be a scalar \(size 1\); got c1\.shape=\(10,\)\.$"
    ):
        math.scaled_array_add(Array1D.new(list(range(10))), a, Scalar.new(2), b)


# -- gradients that deeplearn.js got wrong -----------------------------------------------------


def test_multiply_and_subtract_gradients_use_dy(cpu_math: dl.NDArrayMath) -> None:
    """deeplearn.js 0.3.17 dropped dy (conformance notes of multiply.grad_2d, subtract.grad_1d);
    we return the textbook vector-Jacobian product."""
    from deeplearn.math.ops.arithmetic import Multiply, Subtract

    a, b, dy = Array1D.new([1, 2, 3]), Array1D.new([3, 4, 5]), Array1D.new([2, -1, 0.5])
    da, db = Multiply().backward(cpu_math, dy, a, b, None)
    np.testing.assert_allclose(_values(da), [6, -4, 2.5])
    np.testing.assert_allclose(_values(db), [2, -2, 1.5])
    da, db = Subtract().backward(cpu_math, dy, a, b, None)
    np.testing.assert_allclose(_values(db), [-2, 1, -0.5])


# -- deprecated 0.3 names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, target",
    [
        ("sub", "subtract"),
        ("sub_strict", "subtract_strict"),
        ("element_wise_mul", "multiply_strict"),
        ("element_wise_mul_broadcast", "multiply"),
    ],
)
def test_deprecated_names_warn_and_delegate(name: str, target: str, math: dl.NDArrayMath) -> None:
    a, b = Array2D.new([2, 2], [1, 2, 3, 4]), Array2D.new([2, 2], [5, 6, 7, 8])
    with pytest.warns(DeprecationWarning, match=rf"math\.{name} is deprecated; use math\.{target}\."):
        y = getattr(math, name)(a, b)
    np.testing.assert_array_equal(_values(y), _values(getattr(math, target)(a, b)))


def test_element_wise_mul_keeps_its_strict_and_rank_2_rules(math: dl.NDArrayMath) -> None:
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(ShapeError, match="^multiply_strict: shapes must match"),
    ):
        math.element_wise_mul(Array1D.new([1, 2]), Array1D.new([1, 2, 3]))
    with pytest.warns(DeprecationWarning), pytest.raises(ShapeError, match="must be rank 2"):
        math.element_wise_mul_broadcast(Array1D.new([1, 2]), Array2D.new([1, 2], [1, 2]))


def test_abs_gradient_is_the_sign(cpu_math: dl.NDArrayMath) -> None:
    from deeplearn.math.ops.elementwise import Abs

    x = Array1D.new([-2.0, 0.0, 3.0, NAN])
    (dx,) = Abs().backward(cpu_math, Array1D.new([2.0, 2.0, 2.0, 2.0]), x, cpu_math.abs(x))
    np.testing.assert_array_equal(_values(dx), [-2.0, 0.0, 2.0, NAN])
