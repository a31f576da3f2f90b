"""NDArray, Scalar, Array1D..Array4D: factories, instance methods, dtypes, protocols.

Runs on every backend through the ``math`` fixture (which also installs it as ENV.math, so the
factories allocate there); the DLPack memory-sharing tests are CPU-only by nature.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, Array2D, Array3D, Array4D, NDArray, Scalar
from deeplearn.math.ops.base import Spec, UnaryOp
from deeplearn.types import DisposedError, DTypeError, ShapeError


def values(x: NDArray) -> np.ndarray:
    return x.numpy()


# -- rank classes' new ---------------------------------------------------------------------------


def test_scalar_new(math: dl.NDArrayMath) -> None:
    s = Scalar.new(3.5)
    assert isinstance(s, Scalar)
    assert (s.shape, s.size, s.rank, s.dtype) == ((), 1, 0, "float32")
    assert s.get() == 3.5
    assert Scalar.new(True, "int32").get() == 1
    assert Scalar.new(False).get() == 0.0
    assert Scalar.new(2, "bool").get() is True


def test_array1d_new_flat_and_numpy(math: dl.NDArrayMath) -> None:
    a = Array1D.new([1, 2, 3])
    assert isinstance(a, Array1D)
    assert a.shape == (3,) and a.dtype == "float32"
    np.testing.assert_array_equal(values(a), [1, 2, 3])
    b = Array1D.new(np.array([4.0, 5.0]))
    np.testing.assert_array_equal(values(b), [4, 5])


def test_array1d_new_rejects_nested(math: dl.NDArrayMath) -> None:
    with pytest.raises(ShapeError, match="1-D"):
        Array1D.new([[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("klass", "shape"),
    [(Array2D, (2, 3)), (Array3D, (2, 1, 3)), (Array4D, (1, 2, 1, 3))],
    ids=["2d", "3d", "4d"],
)
def test_ranked_new_flat_and_nested(math: dl.NDArrayMath, klass: type, shape: tuple[int, ...]) -> None:
    flat = list(range(6))
    a = klass.new(list(shape), flat)
    assert type(a) is klass and a.shape == shape
    nested = np.arange(6).reshape(shape).tolist()
    b = klass.new(list(shape), nested)
    assert type(b) is klass and b.shape == shape
    np.testing.assert_array_equal(values(a), values(b))
    np.testing.assert_array_equal(values(b).reshape(-1), flat)


def test_ranked_new_errors(math: dl.NDArrayMath) -> None:
    with pytest.raises(ShapeError, match="rank 2"):
        Array2D.new([6], list(range(6)))
    with pytest.raises(ShapeError, match="rank 3"):
        Array3D.new([2, 3], list(range(6)))
    with pytest.raises(ShapeError, match="rank 4"):
        Array4D.new([2, 3, 1], list(range(6)))
    with pytest.raises(ShapeError, match="number of values"):
        Array2D.new([2, 3], [1, 2, 3, 4, 5])
    # Nested values must have exactly the declared shape, not only the right size.
    with pytest.raises(ShapeError, match="nested values"):
        Array2D.new([2, 3], [[1, 2], [3, 4], [5, 6]])


def test_int32_from_floats_truncates(math: dl.NDArrayMath) -> None:
    a = Array1D.new([1.1, 2.5, 3.9, -1.9], "int32")
    assert a.dtype == "int32"
    np.testing.assert_array_equal(values(a), [1, 2, 3, -1])
    assert isinstance(a.get(0), int)


def test_bad_dtype_raises(math: dl.NDArrayMath) -> None:
    with pytest.raises(DTypeError, match="dtype must be one of"):
        Array1D.new([1, 2], "float16")


# -- NDArray factories ---------------------------------------------------------------------------


def test_make_picks_rank_class(math: dl.NDArrayMath) -> None:
    assert type(NDArray.make([], [1])) is Scalar
    assert type(NDArray.make([2], [1, 2])) is Array1D
    assert type(NDArray.make([1, 2], [1, 2])) is Array2D
    assert type(NDArray.make([1, 2, 1], [1, 2])) is Array3D
    assert type(NDArray.make([1, 2, 1, 1], [1, 2])) is Array4D
    five = NDArray.make([2, 1, 1, 1, 2], [1, 2, 3, 4], "int32")
    assert type(five) is NDArray and five.rank == 5 and five.dtype == "int32"
    with pytest.raises(ShapeError):
        NDArray.make([2, 2], [1, 2, 3])


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_zeros_ones(math: dl.NDArrayMath, dtype: str) -> None:
    z = NDArray.zeros([2, 3], dtype)
    o = NDArray.ones([2, 3], dtype)
    assert z.dtype == o.dtype == dtype and z.shape == o.shape == (2, 3)
    assert not values(z).any() and values(o).all()
    assert type(z) is Array2D
    assert NDArray.zeros([4]).dtype == "float32"


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_zeros_like_ones_like_like(math: dl.NDArrayMath, dtype: str) -> None:
    x = Array2D.new([2, 2], [1, 0, 3, 4], dtype)
    z, o, c = NDArray.zeros_like(x), NDArray.ones_like(x), NDArray.like(x)
    for y in (z, o, c):
        assert y.shape == x.shape and y.dtype == dtype and type(y) is Array2D
    assert not values(z).any() and values(o).all()
    np.testing.assert_array_equal(values(c), values(x))
    c.set(0, 1, 1)  # like() copies: the original is unchanged
    assert x.get(1, 1) != c.get(1, 1)


def test_rand_calls_fn_per_element(math: dl.NDArrayMath) -> None:
    counter = iter(range(100))
    a = NDArray.rand([2, 3], lambda: next(counter))
    np.testing.assert_array_equal(values(a), np.arange(6).reshape(2, 3))
    assert NDArray.rand([3], lambda: 1.7, "int32").dtype == "int32"


def test_rand_normal_seeded_and_statistics(math: dl.NDArrayMath) -> None:
    a = NDArray.rand_normal([10000], 1.0, 0.5, seed=2002)
    b = NDArray.rand_normal([10000], 1.0, 0.5, seed=2002)
    c = NDArray.rand_normal([10000], 1.0, 0.5, seed=7)
    assert a.dtype == "float32" and a.shape == (10000,)
    assert a.equals(b)
    assert not a.equals(c)
    v = values(a)
    assert abs(v.mean() - 1.0) < 0.05
    assert abs(v.std() - 0.5) < 0.05
    ints = values(NDArray.rand_normal([100], 0, 10, "int32", seed=1))
    assert ints.dtype == np.int32 and np.unique(ints).size > 5


def test_rand_truncated_normal_within_two_sigma(math: dl.NDArrayMath) -> None:
    a = NDArray.rand_truncated_normal([10000], 2.0, 3.5, seed=2002)
    b = NDArray.rand_truncated_normal([10000], 2.0, 3.5, seed=2002)
    assert a.equals(b)
    v = values(a)
    # Both tails are cut at mean ± 2σ (0.1.0 only cut the upper tail).
    assert v.max() <= 2.0 + 7.0 and v.min() >= 2.0 - 7.0
    assert v.min() < 2.0 - 5.0 and v.max() > 2.0 + 5.0  # and both tails are reached
    assert abs(v.mean() - 2.0) < 0.15
    # A normal truncated at ±2σ has standard deviation ≈ 0.880σ.
    assert abs(v.std() - 0.880 * 3.5) < 0.1


def test_rand_uniform_seeded_and_bounds(math: dl.NDArrayMath) -> None:
    a = NDArray.rand_uniform([5000], -3.0, 5.0, seed=3)
    assert a.equals(NDArray.rand_uniform([5000], -3.0, 5.0, seed=3))
    v = values(a)
    assert v.min() >= -3.0 and v.max() < 5.0
    assert abs(v.mean() - 1.0) < 0.15


# -- element access ------------------------------------------------------------------------------


def test_get_set_add_fill(math: dl.NDArrayMath) -> None:
    a = Array2D.new([2, 3], [1, 2, 3, 4, 5, 6])
    assert a.get(1, 2) == 6.0
    a.set(10, 0, 1)
    a.add(5, 1, 0)
    np.testing.assert_array_equal(values(a), [[1, 10, 3], [9, 5, 6]])
    a.fill(7)
    np.testing.assert_array_equal(values(a), np.full((2, 3), 7))
    s = Scalar.new(1)
    s.set(4)
    s.add(1)
    assert s.get() == 5.0
    with pytest.raises(ShapeError):
        a.get(1)
    with pytest.raises(IndexError):
        a.get(2, 0)


def test_loc_to_index_and_index_to_loc(math: dl.NDArrayMath) -> None:
    a = NDArray.zeros([3, 2, 2])
    assert a.loc_to_index([2, 1, 1]) == 11
    assert a.index_to_loc(5) == [1, 0, 1]
    for i in range(a.size):
        assert a.loc_to_index(a.index_to_loc(i)) == i
    assert Scalar.new(1).index_to_loc(0) == []
    with pytest.raises(IndexError):
        a.index_to_loc(12)


# -- views ---------------------------------------------------------------------------------------


def test_reshape_is_a_view(math: dl.NDArrayMath) -> None:
    a = Array1D.new([1, 2, 3, 4, 5, 6])
    b = a.reshape([2, -1])
    assert type(b) is Array2D and b.shape == (2, 3)
    b.set(42, 1, 2)
    assert a.get(5) == 42.0  # shares the data
    assert a.reshape([6]) is a  # same shape: no new view
    assert a.reshape([-1, 1, 3]).shape == (2, 1, 3)
    with pytest.raises(ShapeError, match="same number of elements"):
        a.reshape([4, 2])
    with pytest.raises(ShapeError, match="at most one"):
        a.reshape([-1, -1])
    with pytest.raises(ShapeError):
        a.reshape([4, -1])


def test_as_rank_helpers_and_flatten(math: dl.NDArrayMath) -> None:
    a = Array1D.new(list(range(24)))
    assert type(a.as2d(4, 6)) is Array2D and a.as2d(4, 6).shape == (4, 6)
    assert type(a.as3d(2, 3, 4)) is Array3D and a.as3d(2, 3, 4).shape == (2, 3, 4)
    assert type(a.as4d(1, 2, 3, 4)) is Array4D and a.as4d(1, 2, 3, 4).shape == (1, 2, 3, 4)
    f = a.as3d(2, 3, 4).flatten()
    assert type(f) is Array1D and f.shape == (24,)
    assert type(a.as3d(2, 3, 4).as1d()) is Array1D
    s = Array2D.new([1, 1], [3]).as_scalar()
    assert type(s) is Scalar and s.get() == 3.0
    with pytest.raises(ShapeError, match="exactly 1 element"):
        a.as_scalar()
    with pytest.raises(ShapeError):
        a.as2d(5, 5)


# -- dtypes and as_type --------------------------------------------------------------------------


def test_as_type_float_to_int32_truncates_toward_zero(math: dl.NDArrayMath) -> None:
    a = Array1D.new([1.1, 3.9, -2.9, 0, -0.5])
    b = a.as_type("int32")
    assert b.dtype == "int32" and type(b) is Array1D
    np.testing.assert_array_equal(values(b), [1, 3, -2, 0, 0])
    assert a.dtype == "float32"  # a copy, not in place


def test_as_type_to_bool_is_js_round_nonzero(math: dl.NDArrayMath) -> None:
    # deeplearn.js: Math.round(v) !== 0; Math.round rounds halves up (0.5 -> 1, -0.5 -> -0).
    a = Array1D.new([0.4, 0.5, -0.5, -0.6, 2.5, 0, 1])
    np.testing.assert_array_equal(values(a.as_type("bool")), [0, 1, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(values(Array1D.new([0.4, 0.5, -0.6], "bool")), [0, 1, 1])
    np.testing.assert_array_equal(values(Array1D.new([0, 3, -2], "int32").as_type("bool")), [0, 1, 1])


def test_as_type_from_bool_and_int32(math: dl.NDArrayMath) -> None:
    b = Array1D.new([True, False, True], "bool")
    np.testing.assert_array_equal(values(b.as_type("float32")), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(values(b.as_type("int32")), [1, 0, 1])
    i = Array1D.new([3, -4], "int32").as_type("float32")
    assert i.dtype == "float32"
    np.testing.assert_array_equal(values(i), [3.0, -4.0])


def test_get_returns_python_numbers(math: dl.NDArrayMath) -> None:
    assert type(Array1D.new([1.5]).get(0)) is float
    assert type(Array1D.new([1], "int32").get(0)) is int
    assert type(Array1D.new([1], "bool").get(0)) is bool


# -- reading -------------------------------------------------------------------------------------


def test_get_values_and_data_sync_are_flat_copies(math: dl.NDArrayMath) -> None:
    a = Array2D.new([2, 2], [1, 2, 3, 4], "int32")
    v = a.get_values()
    assert isinstance(v, np.ndarray) and v.shape == (4,) and v.dtype == np.int32
    v[0] = 100  # a copy: the array is unchanged
    assert a.get(0, 0) == 1
    np.testing.assert_array_equal(a.data_sync(), [1, 2, 3, 4])


def test_async_data_and_val(math: dl.NDArrayMath) -> None:
    a = Array2D.new([2, 2], [1, 2, 3, 4])
    data = asyncio.run(a.data())
    np.testing.assert_array_equal(data, [1, 2, 3, 4])
    assert asyncio.run(a.val(1, 0)) == 3.0
    assert asyncio.run(Scalar.new(9).val()) == 9.0


def test_equals(math: dl.NDArrayMath) -> None:
    a = Array1D.new([1, 2, 3])
    assert a.equals(Array1D.new([1, 2, 3]))
    assert not a.equals(Array1D.new([1, 2, 4]))
    assert not a.equals(Array1D.new([1, 2, 3], "int32"))  # dtype differs
    assert not a.equals(Array2D.new([1, 3], [1, 2, 3]))  # shape differs


# -- dispose -------------------------------------------------------------------------------------


def test_dispose_then_use_raises(math: dl.NDArrayMath) -> None:
    a = Array2D.new([2, 2], [1, 2, 3, 4])
    a.dispose()
    assert a.is_disposed
    uses = [
        lambda: a.get(0, 0),
        lambda: a.set(1, 0, 0),
        a.get_values,
        a.data_sync,
        lambda: a.reshape([4]),
        lambda: a.as_type("int32"),
        lambda: np.asarray(a),
        lambda: NDArray.like(a),
        lambda: NDArray.zeros_like(a),
        lambda: asyncio.run(a.data()),
        lambda: math.relu(a),
    ]
    for use in uses:
        with pytest.raises(DisposedError, match="disposed"):
            use()
    assert "disposed" in repr(a)


def test_double_dispose_is_harmless(math: dl.NDArrayMath) -> None:
    gc.collect()
    before = math.get_num_arrays()
    a = Array1D.new([1, 2, 3])
    assert math.get_num_arrays() == before + 1
    a.dispose()
    assert math.get_num_arrays() == before
    a.dispose()
    assert math.get_num_arrays() == before


def test_view_keeps_data_until_every_view_is_disposed(math: dl.NDArrayMath) -> None:
    gc.collect()
    before = math.get_num_arrays()
    a = Array1D.new([1, 2, 3, 4])
    b = a.reshape([2, 2])
    assert math.get_num_arrays() == before + 1  # one buffer, two views
    a.dispose()
    assert b.get(1, 1) == 4.0 and math.get_num_arrays() == before + 1
    b.dispose()
    assert math.get_num_arrays() == before
    with pytest.raises(DisposedError):
        b.get(0, 0)


# -- NumPy and DLPack interoperability -----------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "dtype"),
    [
        (np.arange(6, dtype=np.float64).reshape(2, 3), "float32"),
        (np.arange(6, dtype=np.int64), "int32"),
        (np.array([True, False]), "bool"),
    ],
    ids=["float64", "int64", "bool"],
)
def test_from_numpy(math: dl.NDArrayMath, array: np.ndarray, dtype: str) -> None:
    x = NDArray.from_numpy(array)
    assert x.dtype == dtype and x.shape == array.shape
    np.testing.assert_array_equal(values(x), array)
    assert NDArray.from_numpy(array, "float32").dtype == "float32"


def test_from_numpy_copies(math: dl.NDArrayMath) -> None:
    array = np.zeros(3, np.float32)
    x = NDArray.from_numpy(array)
    array[0] = 5
    assert x.get(0) == 0.0


def test_array_protocol(math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 2], [1, 2, 3, 4])
    a = np.asarray(x)
    assert a.shape == (2, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, [[1, 2], [3, 4]])
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    assert float(np.sum(x)) == 10.0


def test_dlpack_to_numpy_shares_memory_on_cpu(cpu_math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 3], [0, 1, 2, 3, 4, 5])
    view = np.from_dlpack(x)
    assert view.shape == (2, 3) and view.dtype == np.float32
    x.set(42, 1, 2)
    assert view[1, 2] == 42.0
    view[0, 0] = -1
    assert x.get(0, 0) == -1.0
    assert x.__dlpack_device__()[0] == 1  # kDLCPU


def test_from_dlpack_numpy(cpu_math: dl.NDArrayMath) -> None:
    src = np.arange(4, dtype=np.float32)
    x = dl.from_dlpack(src)
    assert type(x) is Array1D and x.dtype == "float32" and x.shape == (4,)
    src[1] = 10  # float32 on the CPU: no copy
    assert x.get(1) == 10.0
    # Other dtypes are stored in the library's dtypes (a copy).
    y = dl.from_dlpack(np.arange(4, dtype=np.float64).reshape(2, 2))
    assert type(y) is Array2D and y.dtype == "float32"
    np.testing.assert_array_equal(values(y), [[0, 1], [2, 3]])
    assert dl.from_dlpack(np.arange(3)).dtype == "int32"


# -- repr ----------------------------------------------------------------------------------------


def test_repr_looks_like_numpy(math: dl.NDArrayMath) -> None:
    assert repr(Array2D.new([2, 2], [1, 2, 3, 4])) == (
        "Array2D([[1., 2.],\n         [3., 4.]], dtype=float32)"
    )
    assert repr(Scalar.new(3)) == "Scalar(3., dtype=float32)"
    assert repr(Array1D.new([1, 2], "int32")) == "Array1D([1, 2], dtype=int32)"
    assert repr(Array1D.new([1, 0], "bool")) == "Array1D([ True, False], dtype=bool)"


# -- every NDArray owns its storage --------------------------------------------------------------


class _ViewOf(UnaryOp, abstract=True):
    """A test kernel that returns a view of its input (abstract: not registered in OPS):
    the input itself (C order) or its transpose (not C order)."""

    name = "view_of"

    def __init__(self, transpose: bool) -> None:
        self.transpose = transpose

    def infer(self, x: Spec) -> Spec:
        return Spec(tuple(reversed(x.shape)), x.dtype) if self.transpose else x

    def forward(self, xp: Any, x: Any) -> Any:
        return x.T if self.transpose else x[...]


@pytest.mark.parametrize("transpose", [False, True], ids=["same-order", "transposed"])
def test_op_results_never_alias_their_inputs(math: dl.NDArrayMath, transpose: bool) -> None:
    x = Array2D.new([2, 3], [0, 1, 2, 3, 4, 5])
    y = math.engine.run(_ViewOf(transpose), x)
    loc = (1, 0) if transpose else (0, 1)  # where x[0, 1] is in y
    assert y.get(*loc) == 1.0
    x.set(100, 0, 1)  # writing the input does not change the result...
    assert y.get(*loc) == 1.0
    y.set(-1, *loc)  # ...and writing the result (C order, so set works) does not change the input
    assert y.get(*loc) == -1.0 and x.get(0, 1) == 100.0
    x.dispose()
    assert y.get(*loc) == -1.0  # disposing the input leaves the result alive


def test_one_element_arrays_convert_to_python_numbers() -> None:
    assert float(Scalar.new(2.5)) == 2.5 and int(Array1D.new([3])) == 3 and bool(Scalar.new(0)) is False
    with pytest.raises(TypeError, match=r"bool\(\): only an array of one element"):
        bool(Array1D.new([1, 2]))


def test_ragged_nested_values_are_a_shape_error() -> None:
    with pytest.raises(ShapeError, match="nested values must form a rectangular array"):
        Array2D.new([2, 2], [[1, 2], [3]])


def test_from_numpy_refuses_integers_beyond_int32() -> None:
    with pytest.raises(ValueError, match="integers must fit in int32; got values from 0 to 1099511627776"):
        NDArray.from_numpy(np.array([0, 2**40]))
    assert NDArray.from_numpy(np.array([-(2**31), 2**31 - 1])).get_values().tolist() == [-(2**31), 2**31 - 1]
