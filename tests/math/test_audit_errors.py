"""Issue 16's audit: every entry point refuses what it cannot do with the library's own errors
(ShapeError, DTypeError, ValueError, TypeError) naming the call the user made, what must hold
and what was given, before any work is done; never a NumPy error, an IndexError from inside a
kernel, or a silently wrapped, truncated or dropped value."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, Array2D, Array3D, NDArray, Scalar
from deeplearn.types import DTypeError, ShapeError


def raises(error: type[BaseException], message: str) -> Any:
    """pytest.raises for an exact message start (the library's "<call>: ..." style)."""
    return pytest.raises(error, match="^" + re.escape(message))


# -- one rule for every construction path --------------------------------------------------------

INT32_PATHS: list[tuple[str, Callable[[Any], NDArray]]] = [
    ("Array1D.new", lambda v: Array1D.new([v], "int32")),
    ("Array2D.new", lambda v: Array2D.new([1, 1], [v], "int32")),
    ("NDArray.make", lambda v: NDArray.make([1], [v], "int32")),
    ("Scalar.new", lambda v: Scalar.new(v, "int32")),
    ("NDArray.from_numpy", lambda v: NDArray.from_numpy(np.array([v]), "int32")),
    ("NDArray.rand", lambda v: NDArray.rand([1], lambda: v, "int32")),
]


@pytest.mark.parametrize("where, make", INT32_PATHS, ids=[p[0] for p in INT32_PATHS])
@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**40])
def test_int32_construction_refuses_integers_that_do_not_fit(where: str, make: Any, value: int) -> None:
    with raises(ValueError, f"{where}: integers must fit in int32; got values from {value} to {value}."):
        make(value)


@pytest.mark.parametrize("where, make", INT32_PATHS, ids=[p[0] for p in INT32_PATHS])
def test_int32_construction_refuses_floats_that_do_not_fit(where: str, make: Any) -> None:
    with raises(ValueError, f"{where}: numbers stored as int32 must fit in int32 after truncation"):
        make(3e9)
    with raises(ValueError, f"{where}: numbers stored as int32 must be finite; got nan."):
        make(float("nan"))


@pytest.mark.parametrize("where, make", INT32_PATHS, ids=[p[0] for p in INT32_PATHS])
def test_int32_construction_keeps_the_extremes_and_truncates_floats(where: str, make: Any) -> None:
    assert make(2**31 - 1).get_values().tolist() == [2**31 - 1]
    assert make(-(2**31)).get_values().tolist() == [-(2**31)]
    assert make(-2.9).get_values().tolist() == [-2]  # toward zero, as deeplearn.js's Int32Array


def test_from_dlpack_refuses_integers_that_do_not_fit_in_int32() -> None:
    with raises(ValueError, "from_dlpack: integers must fit in int32; got values from 1 to 1099511627776."):
        dl.from_dlpack(np.array([1, 2**40]))
    with raises(ValueError, f"from_dlpack: integers must fit in int32; got values from {2**63} to {2**63}."):
        dl.from_dlpack(np.array([2**63], dtype=np.uint64))
    assert dl.from_dlpack(np.array([-(2**31), 2**31 - 1])).get_values().tolist() == [-(2**31), 2**31 - 1]


def test_from_numpy_infers_int32_and_refuses_what_does_not_fit() -> None:
    with raises(ValueError, "NDArray.from_numpy: integers must fit in int32; got values from 0 to 1099511627776."):
        NDArray.from_numpy(np.array([0, 2**40]))
    with raises(ValueError, "Array1D.new: integers must fit in int32"):
        Array1D.new([2**70], "int32")  # beyond int64 too: NumPy keeps Python ints as objects


COMPLEX_PATHS: list[tuple[str, Callable[[], Any]]] = [
    ("Array1D.new", lambda: Array1D.new([1 + 2j])),
    ("Scalar.new", lambda: Scalar.new(1 + 2j)),  # type: ignore[arg-type]
    ("NDArray.make", lambda: NDArray.make([1], np.array([1j]))),
    ("NDArray.from_numpy", lambda: NDArray.from_numpy(np.array([1 + 2j]))),
    ("NDArray.from_numpy", lambda: NDArray.from_numpy(np.array([1 + 2j]), "float32")),
    ("from_dlpack", lambda: dl.from_dlpack(np.array([1 + 2j]))),
]


@pytest.mark.parametrize("where, make", COMPLEX_PATHS, ids=[f"{p[0]}-{i}" for i, p in enumerate(COMPLEX_PATHS)])
def test_complex_values_are_refused_not_cut_to_their_real_part(where: str, make: Any) -> None:
    with raises(DTypeError, f"{where}: values must be real numbers; got complex values"):
        make()


def test_text_values_are_refused() -> None:
    with raises(DTypeError, "Array1D.new: values must be numbers or booleans; got values of dtype <U1."):
        Array1D.new(["1"])


@pytest.mark.parametrize(
    "call, where",
    [
        (lambda: NDArray.zeros([2, -1]), "NDArray.zeros"),
        (lambda: NDArray.ones([-3]), "NDArray.ones"),
        (lambda: NDArray.make([-1], []), "NDArray.make"),
        (lambda: Array2D.new([2, -2], [1, 2, 3, 4]), "Array2D.new"),
        (lambda: NDArray.rand_uniform([-1], 0, 1), "NDArray.rand_uniform"),
        (lambda: NDArray.rand_normal([2, -1]), "NDArray.rand_normal"),
    ],
)
def test_negative_dimensions_are_a_shape_error_naming_the_factory(call: Any, where: str) -> None:
    with raises(ShapeError, f"{where}: dimensions must be >= 0; got shape="):
        call()


@pytest.mark.parametrize("dtype", [5, object(), "float64", float, True])
def test_a_dtype_that_is_not_one_of_the_three_is_a_dtype_error(dtype: Any) -> None:
    message = f"NDArray.zeros: dtype must be one of ('float32', 'int32', 'bool'); got {dtype!r}."
    with raises(DTypeError, message):
        NDArray.zeros([2], dtype)
    with raises(DTypeError, "Array1D.new: dtype must be one of"):
        Array1D.new([1], dtype)


def test_numpy_spellings_of_the_three_dtypes_are_accepted() -> None:
    assert NDArray.zeros([1], np.int32).dtype == "int32"
    assert NDArray.zeros([1], np.dtype("float32")).dtype == "float32"
    assert NDArray.zeros([1], bool).dtype == "bool"


def test_random_factories_check_their_arguments_before_drawing() -> None:
    with raises(ValueError, "NDArray.rand_normal: std_dev must be >= 0; got std_dev=-1."):
        NDArray.rand_normal([2], 0, -1)
    with raises(ValueError, "NDArray.rand_truncated_normal: std_dev must be >= 0; got std_dev=nan."):
        NDArray.rand_truncated_normal([2], 0, float("nan"))
    with raises(ValueError, "NDArray.rand_uniform: seed must be None or a non-negative integer; got seed=-1."):
        NDArray.rand_uniform([2], 0, 1, seed=-1)
    with raises(ValueError, "NDArray.rand_uniform: seed must be an integer; got seed=1.5."):
        NDArray.rand_uniform([2], 0, 1, seed=1.5)  # type: ignore[arg-type]
    calls: list[int] = []
    with raises(DTypeError, "NDArray.rand: dtype must be one of"):
        NDArray.rand([3], lambda: calls.append(1) or 0.0, "float64")
    assert calls == []


def test_as_type_to_int32_follows_the_construction_rule() -> None:
    with raises(ValueError, "as_type: numbers stored as int32 must fit in int32 after truncation; got values from 1 to 3e+09."):
        Array1D.new([1, 3e9]).as_type("int32")
    with raises(ValueError, "as_type: numbers stored as int32 must be finite; got inf."):
        Array1D.new([float("inf")]).as_type("int32")
    assert Array1D.new([-2147483648.0, 2147483520.0]).as_type("int32").get_values().tolist() == [-(2**31), 2147483520]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: dl.util.create_shuffled_indices(2.5), "create_shuffled_indices: n must be an integer; got n=2.5."),
        (lambda: dl.util.create_shuffled_indices(-1), "create_shuffled_indices: n must be >= 0; got n=-1."),
        (lambda: dl.util.shuffle([1, 2], seed=-1), "shuffle: seed must be None or a non-negative integer; got seed=-1."),
        (lambda: dl.util.shuffle([1, 2], seed="a"), "shuffle: seed must be an integer; got seed='a'."),
        (lambda: dl.util.size_to_squarish_shape(-4), "size_to_squarish_shape: size must be >= 0; got size=-4."),
        (lambda: dl.util.size_from_shape([2, 2.5]), "size_from_shape: dimension must be an integer; got dimension=2.5."),
    ],
)
def test_util_helpers_check_their_arguments(call: Any, message: str) -> None:
    with raises(ValueError, message):
        call()


# -- element access takes integer locations and storable values ----------------------------------


@pytest.mark.parametrize(
    "call, where",
    [
        (lambda x: x.get(1.5), "get"),
        (lambda x: x.get(True), "get"),
        (lambda x: x.set(5, 0.5), "set"),
        (lambda x: x.add(5, "1"), "add"),
        (lambda x: x.loc_to_index([2.5]), "loc_to_index"),
        (lambda x: x.index_to_loc(0.5), "index_to_loc"),
        (lambda x: Scalar.new(1).get(0.5), "get"),
    ],
)
def test_fractional_locations_are_refused_not_truncated(call: Any, where: str) -> None:
    x = Array1D.new([1, 2, 3])
    with raises(ValueError, f"{where}: locations must be integers; got locs="):
        call(x)
    assert x.get(1.0) == 2.0 and x.get(np.int64(2)) == 3.0  # integral values are integers


def test_val_checks_its_location_before_reading() -> None:
    import asyncio

    with raises(ValueError, "val: locations must be integers; got locs=(1.5,)."):
        asyncio.run(Array1D.new([1, 2]).val(1.5))


def test_element_writes_follow_the_construction_rules() -> None:
    x = Array1D.new([1, 2], "int32")
    with raises(ValueError, "set: integers must fit in int32; got values from 2147483648 to 2147483648."):
        x.set(2**31, 0)
    with raises(ValueError, "add: integers must fit in int32"):
        x.add(2**31 - 1, 1)
    with raises(ValueError, "fill: numbers stored as int32 must be finite; got nan."):
        x.fill(float("nan"))
    with raises(DTypeError, "set: values must be real numbers; got complex values"):
        Array1D.new([1.0]).set(1j, 0)  # type: ignore[arg-type]
    assert x.get_values().tolist() == [1, 2]  # nothing was written
    x.set(-3.7, 0)
    assert x.get(0) == -3


# -- ops that take indices, counts and probabilities ---------------------------------------------


def test_one_hot_refuses_fractional_float_indices(cpu_math: dl.NDArrayMath) -> None:
    with raises(ValueError, "one_hot: indices must be integers; got indices[1]=0.5."):
        cpu_math.one_hot(Array1D.new([1, 0.5]), 3)
    with raises(ValueError, "one_hot: indices must be integers; got indices[0]=nan."):
        cpu_math.one_hot(Array1D.new([float("nan")]), 3)
    # deeplearn.js's float32 arrays hold indices: integral values are indices
    assert cpu_math.one_hot(Array1D.new([2.0, 0.0]), 3).get_values().tolist() == [0, 0, 1, 1, 0, 0]


@pytest.mark.parametrize(
    "probs, message",
    [
        ([0.5, -0.1, 0.6], "multinomial: probabilities must be finite and non-negative; got -0.1 at outcome 1 of row 0."),
        ([np.nan, 1.0], "multinomial: probabilities must be finite and non-negative; got nan at outcome 0 of row 0."),
        ([np.inf, 1.0], "multinomial: probabilities must be finite and non-negative; got inf at outcome 0 of row 0."),
        ([0.0, 0.0], "multinomial: the probabilities of each row must have a positive sum; got a row of zeros (row 0)."),
        ([[1.0, 1.0], [0.0, 0.0]], "multinomial: the probabilities of each row must have a positive sum; got a row of zeros (row 1)."),
    ],
)
@pytest.mark.parametrize("normalized", [False, True])
def test_multinomial_refuses_bad_probabilities_before_drawing(
    cpu_math: dl.NDArrayMath, probs: Any, message: str, normalized: bool
) -> None:
    import deeplearn.math.ops.random as random_ops

    draws: list[object] = []
    original = random_ops.uniform_draws
    random_ops.uniform_draws = lambda *a: draws.append(a) or original(*a)  # type: ignore[assignment]
    try:
        with raises(ValueError, message):
            cpu_math.multinomial(NDArray.from_numpy(np.array(probs), "float32"), 4, seed=0, normalized=normalized)
    finally:
        random_ops.uniform_draws = original
    assert draws == []


def test_multinomial_still_takes_unnormalized_and_zero_probabilities(cpu_math: dl.NDArrayMath) -> None:
    assert set(cpu_math.multinomial(Array1D.new([0, 3, 0]), 20, seed=1).get_values().tolist()) == {1}


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m: m.multinomial(Array1D.new([1, 1]), 2.5), ValueError,
         "multinomial: num_samples must be an integer; got num_samples=2.5."),
        (lambda m: m.multinomial(Array1D.new([1, 1]), 2, seed="7"), ValueError,
         "multinomial: seed must be a number; got seed='7'."),
        (lambda m: m.concat(Array1D.new([1]), Array1D.new([2]), 0.5), ValueError,
         "concat: axis must be an integer; got axis=0.5."),
        (lambda m: m.concat2d(Array2D.new([1, 1], [1]), Array2D.new([1, 1], [2]), "1"), ValueError,
         "concat2d: axis must be an integer; got axis='1'."),
        (lambda m: m.softmax(Array2D.new([1, 2], [1, 2]), 1.5), ValueError,
         "softmax: dim must be an integer; got dim=1.5."),
        (lambda m: m.conv2d_der_input((2.5, 2, 1), Array3D.new([1, 1, 1], [1]), dl.Array4D.new([2, 2, 1, 1], [1] * 4)),
         ShapeError, "conv2d_der_input: in_shape must be a sequence of integers; got in_shape=(2.5, 2, 1)."),
        (lambda m: m.conv2d_der_filter(Array3D.new([2, 2, 1], [1] * 4), Array3D.new([1, 1, 1], [1]), 2),
         ShapeError, "conv2d_der_filter: filter_shape must be rank 4"),
        (lambda m: m.mat_mul(Array2D.new([1, 1], [1]), Array2D.new([1, 1], [1]), 1.0), ValueError,
         "mat_mul: a_orientation must be MatrixOrientation.REGULAR or MatrixOrientation.TRANSPOSED (0 or 1); got a_orientation=1.0."),
        (lambda m: m.sum(Array1D.new([1]), 0, "no"), ValueError, "sum: keep_dims must be True or False; got keep_dims='no'."),
        (lambda m: m.resize_bilinear3d(Array3D.new([1, 1, 1], [1]), [2, 2], 0.5), ValueError,
         "resize_bilinear3d: align_corners must be True or False; got align_corners=0.5."),
        (lambda m: m.leaky_relu(Array1D.new([1]), "0.5"), ValueError, "leaky_relu: alpha must be a number; got alpha='0.5'."),
        (lambda m: m.clip(Array1D.new([1]), None, 1), ValueError, "clip: min must be a number; got min=None."),
        (lambda m: m.one_hot(Array1D.new([1], "int32"), 2, 1j), ValueError, "one_hot: on_value must be a number; got on_value=1j."),
        (lambda m: m.batch_normalization2d(Array2D.new([1, 1], [1]), Array1D.new([0]), Array1D.new([1]), "eps"),
         ValueError, "batch_normalization2d: variance_epsilon must be a number; got variance_epsilon='eps'."),
    ],
)
def test_scalar_arguments_are_checked_not_coerced(cpu_math: dl.NDArrayMath, call: Any, error: type, message: str) -> None:
    with raises(error, message):
        call(cpu_math)


# -- raw internal errors become the library's, naming the call -----------------------------------

REDUCTIONS = ["sum", "mean", "min", "max", "arg_min", "arg_max", "log_sum_exp", "norm", "moments"]


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("axis", [0, -1, [0]])
def test_reducing_a_rank_0_array_along_an_axis_is_a_shape_error(cpu_math: dl.NDArrayMath, name: str, axis: Any) -> None:
    method = getattr(cpu_math, name)
    args = ("euclidean", axis) if name == "norm" else (axis,)
    shown = tuple(axis) if isinstance(axis, list) else (axis,)
    with raises(ShapeError, f"{name}: a rank-0 input has no axes; axis must be None or empty; got axis={shown}."):
        method(Scalar.new(1.0), *args)
    assert method(Scalar.new(2.0), *(args[:-1] + (None,))) is not None  # axis None still works


def test_softmax_and_norm_of_empty_arrays(cpu_math: dl.NDArrayMath) -> None:
    with raises(ShapeError, "softmax: the last dimension of logits must not be empty; got logits.shape=(0,)."):
        cpu_math.softmax(Array1D.new([]))
    with raises(ShapeError, "softmax: the last dimension of logits must not be empty; got logits.shape=(2, 0)."):
        cpu_math.softmax(NDArray.zeros([2, 0]))
    assert cpu_math.softmax(NDArray.zeros([0, 3])).shape == (0, 3)  # no rows: nothing to do
    for ord_ in (np.inf, -np.inf):
        with raises(ShapeError, f"norm: ord={ord_!r} takes a maximum or minimum, which an empty axis has not"):
            cpu_math.norm(Array1D.new([]), ord_)
    with raises(ShapeError, "norm: ord=1 takes a maximum or minimum"):
        cpu_math.norm(NDArray.zeros([2, 0]), 1, [0, 1])
    assert cpu_math.norm(Array1D.new([])).get() == 0.0  # a sum over nothing: NumPy's 0
    assert cpu_math.norm(NDArray.zeros([0, 2]), 1, [0, 1]).get() == 0.0  # column sums of no rows


def test_resize_of_an_image_without_pixels_is_a_shape_error(cpu_math: dl.NDArrayMath) -> None:
    with raises(ShapeError, "resize_bilinear3d: x must have rows and columns; got x.shape=(0, 2, 1)."):
        cpu_math.resize_bilinear3d(NDArray.zeros([0, 2, 1]), [2, 2])


SCALAR_HELPERS = ["scalar_plus_array", "scalar_minus_array", "scalar_times_array", "scalar_divided_by_array"]
ARRAY_SCALAR_HELPERS = ["array_minus_scalar", "array_divided_by_scalar"]


@pytest.mark.parametrize("name", SCALAR_HELPERS + ARRAY_SCALAR_HELPERS)
def test_scalar_helpers_refuse_a_number_where_a_scalar_is_due(cpu_math: dl.NDArrayMath, name: str) -> None:
    method, v = getattr(cpu_math, name), Array1D.new([1, 2])
    c_first = name in SCALAR_HELPERS
    with raises(TypeError, f"{name}: c must be an NDArray; got float 2.0."):
        method(2.0, v) if c_first else method(v, 2.0)
    with raises(TypeError, f"{name}: a must be an NDArray; got list [1, 2]."):
        method(Scalar.new(2), [1, 2]) if c_first else method([1, 2], Scalar.new(2))


def test_conv1d_errors_speak_of_conv1d_and_its_own_shapes(cpu_math: dl.NDArrayMath) -> None:
    m, x, w = cpu_math, Array2D.new([4, 2], [0] * 8), Array3D.new([2, 2, 3], [0] * 12)
    with raises(ShapeError, "conv1d: x's depth must match filter's input depth (filter.shape[1]); got x.shape=(4, 1) "
                "and filter.shape=(2, 2, 3), i.e. 1 vs 2."):
        m.conv1d(Array2D.new([4, 1], [0] * 4), w)
    with raises(ShapeError, "conv1d: the filter must fit in the padded input; got input width 1, filter width 2, "
                "pad = 'valid', output width 0."):
        m.conv1d(Array2D.new([1, 2], [0, 0]), w)
    with raises(ShapeError, "conv1d: bias must be rank 1 of size outDepth (filter.shape[2]); got bias.shape=(2,) "
                "and filter.shape=(2, 2, 3)."):
        m.conv1d(x, w, Array1D.new([0, 0]))
    with raises(ValueError, "conv1d: stride must be a positive int; got stride = 0."):
        m.conv1d(x, w, None, 0)
    with raises(ValueError, "conv1d: pad must be 'same', 'valid' or a non-negative int; got pad = (0, 1)."):
        m.conv1d(x, w, None, 1, (0, 1))  # type: ignore[arg-type]
    with raises(ShapeError, "conv1d: the output width (in - f + 2*pad)/stride + 1 = 2.5 must be an integer"):
        m.conv1d(Array2D.new([5, 2], [0] * 10), w, None, 2, 0)
    with raises(DTypeError, "conv1d: filter must be numeric; got filter.dtype='bool'."):
        m.conv1d(x, NDArray.make([2, 2, 3], [True] * 12, "bool"))
    with raises(TypeError, "conv1d: filter must be an NDArray; got float 2.0."):
        m.conv1d(x, 2.0)  # type: ignore[arg-type]


def test_conv2d_transpose_errors_speak_of_conv2d_transpose_and_its_own_shapes(cpu_math: dl.NDArrayMath) -> None:
    m, w = cpu_math, dl.Array4D.new([2, 2, 1, 3], [0] * 12)  # [fH, fW, outDepth 1, inDepth 3]
    x = Array3D.new([3, 3, 3], [0] * 27)
    assert m.conv2d_transpose(x, w, (4, 4, 1)).shape == (4, 4, 1)
    with raises(ShapeError, "conv2d_transpose: x must have the shape conv2d gives an input of output_shape; got "
                "x.shape=(3, 3, 3), expected (4, 4, 3) for output_shape=(5, 5, 1)"):
        m.conv2d_transpose(x, w, (5, 5, 1))
    with raises(ShapeError, "conv2d_transpose: x's depth must match filter's input depth (filter.shape[3]; "
                "filter is [fH, fW, outDepth, inDepth]); got x.shape=(3, 3, 2)"):
        m.conv2d_transpose(Array3D.new([3, 3, 2], [0] * 18), w, (4, 4, 1))
    with raises(ShapeError, "conv2d_transpose: output_shape's depth must match filter's output depth "
                "(filter.shape[2]); got output_shape=(4, 4, 2)"):
        m.conv2d_transpose(x, w, (4, 4, 2))
    with raises(ShapeError, "conv2d_transpose: output_shape must be a valid conv2d input for this filter, strides "
                "and pad; got output_shape=(1, 1, 1)"):
        m.conv2d_transpose(x, w, (1, 1, 1))
    with raises(ValueError, "conv2d_transpose: strides must be positive; got strides = 0."):
        m.conv2d_transpose(x, w, (4, 4, 1), 0)
    with raises(ShapeError, "conv2d_transpose: output_shape must be a sequence of integers; got output_shape=4."):
        m.conv2d_transpose(x, w, 4.0)  # type: ignore[arg-type]


def test_composites_check_their_arrays_first(cpu_math: dl.NDArrayMath) -> None:
    """Methods that read shapes or call other methods name themselves, not an inner op, for a
    non-array or disposed argument (no AttributeError)."""
    m, v, mat = cpu_math, Array1D.new([1, 2]), Array2D.new([2, 2], [1, 2, 3, 4])
    gone = Array1D.new([1, 2])
    gone.dispose()
    cases: list[tuple[str, Callable[[], Any], type[BaseException]]] = [
        ("moments: x must be an NDArray", lambda: m.moments(2.0), TypeError),
        ("matrix_times_vector: v must be an NDArray", lambda: m.matrix_times_vector(mat, None), TypeError),
        ("dot_product: v2 is disposed", lambda: m.dot_product(v, gone), dl.DisposedError),
        ("outer_product: v1 must be an NDArray", lambda: m.outer_product([1], v), TypeError),
        ("slice1d: x must be an NDArray", lambda: m.slice1d(2.0, 0, 1), TypeError),
        ("concat1d: b is disposed", lambda: m.concat1d(v, gone), dl.DisposedError),
        ("conv2d: filter must be an NDArray", lambda: m.conv2d(Array3D.new([1, 1, 1], [1]), None), TypeError),
        ("conv2d: bias is disposed", lambda: m.conv2d(Array3D.new([1, 1, 1], [1]), dl.Array4D.new([1, 1, 1, 1], [1]), gone),
         dl.DisposedError),
        ("conv2d_der_bias: dy must be an NDArray", lambda: m.conv2d_der_bias(1.0), TypeError),
        ("batch_normalization2d: mean must be an NDArray", lambda: m.batch_normalization2d(mat, None, v), TypeError),
        ("basic_lstm_cell: forget_bias must be a number", lambda: m.basic_lstm_cell(None, mat, v, mat, mat, mat), ValueError),
        ("multi_rnn_cell: lstm_cells must be a list or tuple", lambda: m.multi_rnn_cell(1.5, v, [v], [v]), TypeError),
        ("reshape: x must be an NDArray", lambda: m.reshape([1, 2], [2]), TypeError),
    ]
    for message, call, error in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # math.reshape
            with raises(error, message):
                call()


def test_batch_normalization_checks_broadcasting_before_any_op(cpu_math: dl.NDArrayMath) -> None:
    x, mean, variance = Array2D.new([2, 3], [0] * 6), Array1D.new([0, 0, 0]), Array1D.new([1, 1, 1])
    scale = Array2D.new([2, 2], [1] * 4)
    before = cpu_math.get_num_arrays()
    with cpu_math.scope() as scope:
        with raises(ShapeError, "batch_normalization2d: scale must broadcast against x; got scale.shape=(2, 2) and "
                    "x.shape=(2, 3)."):
            cpu_math.batch_normalization2d(x, mean, variance, 0.001, scale)
        assert scope.num_tracked == 0  # no op ran before the check
    assert cpu_math.get_num_arrays() == before


def test_basic_lstm_cell_checks_dtypes_in_its_own_terms(cpu_math: dl.NDArrayMath) -> None:
    kernel, bias = NDArray.zeros([3, 4]), NDArray.zeros([4])
    data, c, h = NDArray.zeros([2, 2], "int32"), NDArray.zeros([2, 1]), NDArray.zeros([2, 1])
    with raises(DTypeError, "basic_lstm_cell: data and h must have the same dtype; got int32 and float32."):
        cpu_math.basic_lstm_cell(1.0, kernel, bias, data, c, h)


# -- the sweep: every method, every array argument replaced by something it cannot take ----------


def _a(*shape: int, dtype: str = "float32") -> NDArray:
    n = int(np.prod(shape)) if shape else 1
    return NDArray.make(shape, (np.arange(n) % 5 + 0.1).tolist(), dtype)


def _baseline_calls(m: dl.NDArrayMath) -> dict[str, list[Any]]:
    """One valid call of every public NDArrayMath method (name: arguments)."""
    import functools

    a = _a
    unary = ["abs", "acos", "asin", "atan", "ceil", "cos", "cosh", "elu", "elu_der", "exp", "floor", "log", "neg",
             "relu", "selu", "sigmoid", "sin", "sinh", "sqrt", "square", "tan", "tanh", "clone"]
    calls: dict[str, list[Any]] = {name: [a(3)] for name in unary}
    calls.update({name: [a(2, 3), a(3)] for name in ("add", "subtract", "multiply", "divide", "maximum", "minimum",
                                                     "equal")})
    calls.update({name: [a(3), a(3)] for name in ("add_strict", "subtract_strict", "multiply_strict",
                                                  "divide_strict", "equal_strict", "prelu", "prelu_der",
                                                  "arg_max_equals", "mean_squared_cost", "dot_product")})
    calls.update({name: [Scalar.new(2.0), a(3)] for name in SCALAR_HELPERS})
    calls.update({name: [a(3), Scalar.new(2.0)] for name in ARRAY_SCALAR_HELPERS})
    calls.update({name: [a(2, 3), 1, False] for name in ("sum", "mean", "min", "max", "log_sum_exp", "moments")})
    calls.update({
        "leaky_relu": [a(3), 0.2], "step": [a(3), 0.0], "clip": [a(3), 0.0, 1.0],
        "pow": [a(2, 3), a(3, dtype="int32")], "pow_strict": [a(3), a(3, dtype="int32")],
        "scaled_array_add": [Scalar.new(2.0), a(3), Scalar.new(1.0), a(3)],
        "arg_min": [a(2, 3), 1], "arg_max": [a(2, 3), 1], "softmax": [a(2, 3), -1], "top_k": [a(5), 2],
        "norm": [a(2, 3), "euclidean", 1, False],
        "mat_mul": [a(2, 3), a(3, 2), 0, 0], "matrix_times_vector": [a(2, 3), a(3)],
        "vector_times_matrix": [a(2), a(2, 3)], "outer_product": [a(2), a(3)],
        "slice": [a(4, 4), [1, 1], [2, 2]], "slice1d": [a(5), 1, 2], "slice2d": [a(4, 4), [1, 1], [2, 2]],
        "slice3d": [a(2, 2, 2), [0, 0, 0], [1, 1, 1]], "slice4d": [a(2, 2, 2, 2), [0, 0, 0, 0], [1, 1, 1, 1]],
        "concat": [a(2), a(3), 0], "concat1d": [a(2), a(3)], "concat2d": [a(2, 2), a(2, 2), 1],
        "concat3d": [a(1, 1, 2), a(1, 1, 2), 2], "concat4d": [a(1, 1, 1, 2), a(1, 1, 1, 2), 0],
        "transpose": [a(2, 3), [1, 0]], "tile": [a(2, 2), [1, 2]], "gather": [a(3, 2), a(2, dtype="int32")],
        "softmax_cross_entropy_cost_der": [a(2, 3), a(2, 3), a(2, 1)],
        "conv2d": [a(4, 4, 2), a(2, 2, 2, 3), a(3), 1, "valid"], "conv1d": [a(4, 2), a(2, 2, 3), a(3), 1, "valid"],
        "conv2d_der_input": [(4, 4, 2), a(3, 3, 3), a(2, 2, 2, 3), 1, "valid"],
        "conv2d_der_filter": [a(4, 4, 2), a(3, 3, 3), (2, 2, 2, 3), 1, "valid"], "conv2d_der_bias": [a(3, 3, 3)],
        "conv2d_transpose": [a(3, 3, 3), a(2, 2, 2, 3), (4, 4, 2), 1, "valid"],
        "depthwise_conv2d": [a(4, 4, 2), a(2, 2, 2, 2), 1, "valid", 1],
        "depthwise_conv2d_der_input": [(4, 4, 2), a(3, 3, 4), a(2, 2, 2, 2), 1, "valid"],
        "depthwise_conv2d_der_filter": [a(4, 4, 2), a(3, 3, 4), (2, 2, 2, 2), 1, "valid"],
        "max_pool": [a(4, 4, 2), 2, 2, 0], "min_pool": [a(4, 4, 2), 2, 2, 0], "avg_pool": [a(4, 4, 2), 2, 2, 0],
        "max_pool_backprop": [a(2, 2, 2), a(4, 4, 2), 2, 2, 0], "avg_pool_backprop": [a(2, 2, 2), a(4, 4, 2), 2, 2, 0],
        "resize_bilinear3d": [a(2, 2, 1), [3, 3], False],
        "batch_normalization2d": [a(2, 3), a(3), a(3), 0.001, a(3), a(3)],
        "batch_normalization3d": [a(2, 2, 3), a(3), a(3), 0.001, a(3), a(3)],
        "batch_normalization4d": [a(1, 2, 2, 3), a(3), a(3), 0.001, a(3), a(3)],
        "basic_lstm_cell": [Scalar.new(1.0), a(3, 4), a(4), a(2, 2), a(2, 1), a(2, 1)],
        "multi_rnn_cell": [[functools.partial(m.basic_lstm_cell, Scalar.new(1.0), a(3, 4), a(4))], a(2, 2),
                           [a(2, 1)], [a(2, 1)]],
        "multinomial": [a(3), 2, 0, False], "one_hot": [a(3, dtype="int32"), 5, 1.0, 0.0],
        "softmax_cross_entropy_cost": [a(2, 3), a(2, 3)],
    })
    return calls


def _replacements(x: NDArray) -> list[tuple[str, Any]]:
    gone = NDArray.make(x.shape, x.get_values(), x.dtype)
    gone.dispose()
    empty = NDArray.zeros(tuple(0 for _ in x.shape) or (0,), x.dtype)
    return [("a float", 2.0), ("None", None), ("a list", [1.0, 2.0]), ("a disposed array", gone),
            ("a scalar", Scalar.new(1.0)), ("an empty array", empty), ("rank 5", NDArray.zeros((1,) * 5)),
            ("bool", NDArray.make(x.shape, [True] * x.size, "bool")),
            ("int32", NDArray.make(x.shape, [1] * x.size, "int32"))]


_OTHER_VALUES: list[tuple[str, Any]] = [("1.5", 1.5), ("-1", -1), ("text", "a"), ("None", None), ("True", True),
                                        ("nan", float("nan")), ("[-1, 1]", [-1, 1]), ("[1.5, 1]", [1.5, 1]),
                                        ("[]", []), ("1j", 1j)]


def test_no_method_fails_with_a_raw_error(cpu_math: dl.NDArrayMath) -> None:
    """Every public NDArrayMath method, each argument in turn replaced by what it cannot take:
    either it works, or it raises the library's error naming the method (or, for the deprecated
    alias switch_dim, transpose; for multi_rnn_cell, the cell that failed)."""
    names = {n for n in dir(dl.NDArrayMath) if not n.startswith("_")}
    calls = _baseline_calls(cpu_math)
    not_ops = {"disable_debug_mode", "dispose", "enable_debug_mode", "end_scope", "get_num_arrays", "gradients",
               "gradients_scope", "keep", "scope", "start_scope", "time", "track", "value_and_gradients",
               "reshape", "switch_dim", "sub", "sub_strict", "element_wise_mul", "element_wise_mul_broadcast"}
    assert names - not_ops == set(calls), "a new method needs a baseline call here"
    failures = []
    for name, args in sorted(calls.items()):
        getattr(cpu_math, name)(*args)  # the baseline works
        for i, arg in enumerate(args):
            for label, value in _replacements(arg) if isinstance(arg, NDArray) else _OTHER_VALUES:
                mutated = list(args)
                mutated[i] = value
                try:
                    with np.errstate(all="raise"), warnings.catch_warnings():
                        warnings.simplefilter("error")  # a NumPy warning is a raw error too
                        getattr(cpu_math, name)(*mutated)
                except (ValueError, TypeError, dl.DisposedError) as e:
                    allowed = (name, "basic_lstm_cell") if name == "multi_rnn_cell" else (name,)
                    if not str(e).startswith(tuple(f"{n}: " for n in allowed)) or type(e).__module__ != "deeplearn.types" \
                            and type(e) not in (ValueError, TypeError):
                        failures.append(f"{name} with argument {i} {label}: {type(e).__name__}: {e}")
                except Exception as e:  # noqa: BLE001 - any other type is the failure being looked for
                    failures.append(f"{name} with argument {i} {label}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


def test_scope_and_time_take_functions(cpu_math: dl.NDArrayMath) -> None:
    with raises(TypeError, "scope: fn must be a function; got int 5."):
        cpu_math.scope(5)  # type: ignore[arg-type]
    with raises(TypeError, "time: fn must be a function; got str 'x'."):
        cpu_math.time("x")  # type: ignore[arg-type]


def test_factories_name_themselves_for_arguments_of_the_wrong_kind() -> None:
    with raises(TypeError, "NDArray.zeros: math must be an NDArrayMath or None; got int 5."):
        NDArray.zeros([2], "float32", 5)  # type: ignore[arg-type]
    with raises(TypeError, "Array1D.new: math must be an NDArrayMath or None; got str 'cpu'."):
        Array1D.new([1], None, "cpu")  # type: ignore[arg-type]
    with raises(TypeError, "NDArray.rand: fn must be a function; got float 0.5."):
        NDArray.rand([2], 0.5)  # type: ignore[arg-type]
    with raises(ValueError, "NDArray.rand_uniform: a must be a number; got a='0'."):
        NDArray.rand_uniform([2], "0", 1)  # type: ignore[arg-type]
    with raises(ValueError, "NDArray.rand_normal: mean must be a number; got mean=None."):
        NDArray.rand_normal([2], None)  # type: ignore[arg-type]
    with raises(TypeError, "equals: other must be an NDArray; got int 5."):
        Array1D.new([5]).equals(5)  # type: ignore[arg-type]


# -- gather ---------------------------------------------------------------------------------------


def test_gather_refuses_what_it_cannot_index_before_copying() -> None:
    math = dl.NDArrayMath("cpu")
    x = Array2D.new([3, 2], [1, 2, 3, 4, 5, 6])
    with raises(DTypeError, "gather: indices must be int32; got indices.dtype=float32."):
        math.gather(x, Array1D.new([0, 1]))
    with raises(ShapeError, "gather: indices must be rank 1; got indices.shape=(1, 1)."):
        math.gather(x, Array2D.new([1, 1], [0], "int32"))
    with raises(ShapeError, "gather: x must have at least one axis to take rows from; got x.shape=()."):
        math.gather(Scalar.new(1), Array1D.new([0], "int32"))
    for bad in (3, -1):
        with raises(ValueError, f"gather: every index must be in [0, 3) (the rows of x); got indices[1]={bad}."):
            math.gather(x, Array1D.new([0, bad, 1], "int32"))


def test_gather_on_the_gpu_reads_rows_out_of_range_as_zeros() -> None:
    """A GPU cannot check indices without waiting to read them back: a row out of range reads
    as zeros there, never another array's memory."""
    from deeplearn.math.backends import cuda_available

    if not cuda_available():
        pytest.skip("needs CuPy and an NVIDIA GPU")
    math = dl.NDArrayMathGPU()
    x = Array2D.new([3, 2], [1, 2, 3, 4, 5, 6], math=math)
    got = math.gather(x, Array1D.new([2, 3, -1, 0], "int32", math=math)).get_values()
    np.testing.assert_array_equal(got, [5, 6, 0, 0, 0, 0, 1, 2])
