"""Semantics of the reduction, linear-algebra and layout families that the op table's random
inputs cannot show: dtype rules, ties, NaN, stability, norm variants, the composites, and the
error messages. Values marked with a conformance id come from deeplearn.js's tests."""

from __future__ import annotations

import math as pymath
import warnings

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, Array2D, Array3D, Array4D, MatrixOrientation, Scalar, ShapeError
from deeplearn.math.ops.reduction import Max, Min, Moments, Sum
from tests.conftest import as_ndarray

NAN = float("nan")


def values(x: dl.NDArray) -> np.ndarray:
    return x.numpy()


# -- sum and mean dtypes ---------------------------------------------------------------------------


def test_sum_dtype_rules(math: dl.NDArrayMath) -> None:
    f = math.sum(Array2D.new([3, 2], [1, 2, 3, 0, 0, 1]))
    i = math.sum(Array1D.new([1, 5, 7, 3], "int32"))  # conformance: sum.int32
    b = math.sum(Array1D.new([True, False, True, True], "bool"), 0)
    assert (f.dtype, f.get()) == ("float32", 7.0)
    assert (i.dtype, i.get()) == ("int32", 16)
    assert (b.dtype, b.get()) == ("int32", 3)
    assert values(b).dtype == np.int32 and values(i).dtype == np.int32


def test_sum_axes_and_keep_dims(math: dl.NDArrayMath) -> None:
    x = Array2D.new([3, 2], [1, 2, 3, 0, 0, 1])
    assert math.sum(x, None, True).shape == (1, 1)  # conformance: sum.all_keepDims
    np.testing.assert_array_equal(values(math.sum(x, [1])), [3, 3, 1])  # conformance: sum.axis1
    assert math.sum(x, [-1, -2]).get() == 7  # conformance: sum.axis_neg1_neg2
    y = math.sum(Array3D.new([2, 3, 4], np.arange(24)), (0, 2), keep_dims=True)
    assert y.shape == (1, 3, 1)
    np.testing.assert_array_equal(values(y).ravel(), np.arange(24).reshape(2, 3, 4).sum(axis=(0, 2)))


def test_mean_is_float32_for_int32_and_bool(math: dl.NDArrayMath) -> None:
    m = math.mean(Array1D.new([1, 2, 3, 5], "int32"))
    assert (m.dtype, m.get()) == ("float32", 2.75)
    b = math.mean(Array1D.new([1, 0, 0, 1, 1], "bool"))  # conformance: mean.bool
    assert b.dtype == "float32" and b.get() == pytest.approx(0.6)
    k = math.mean(Array2D.new([3, 2], [1, 2, 3, 0, 0, 1]), None, True)  # conformance: mean.keepDims
    assert k.shape == (1, 1) and k.get(0, 0) == pytest.approx(7 / 6)


# -- min, max and the arg ops ----------------------------------------------------------------------


def test_min_max_along_axes(math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 3], [3, -1, 0, 100, -7, 2])
    np.testing.assert_array_equal(values(math.min(x, 0)), [3, -7, 0])  # conformance: min.2d_axis0
    np.testing.assert_array_equal(values(math.max(x, [0], True)), [[100, -1, 2]])  # max.2d_axis0_keepDims
    # deeplearn.js 0.3.17's CPU min seeded each row with x[0]; every row element here exceeds it.
    y = Array2D.new([2, 2], [-5, 0, 1, 2])
    np.testing.assert_array_equal(values(math.min(y, 1)), [-5, 1])
    i = math.max(Array1D.new([1, 7, 3], "int32"))
    assert (i.dtype, i.get()) == ("int32", 7)


def test_min_max_nan_only_in_groups_with_a_nan(math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 3], [3, NAN, 2, 1, 5, 0])
    for op in (math.min, math.max):
        assert pymath.isnan(op(x).get())  # conformance: min.nan
        row = values(op(x, 1))
        assert pymath.isnan(row[0]) and not pymath.isnan(row[1])


def test_arg_max_flat_index_and_first_tie(math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 3], [3, -1, 0, 100, -7, 2])
    a = math.arg_max(x)  # conformance: argMax.2d_no_axis
    assert (a.shape, a.dtype, a.get()) == ((), "int32", 3)
    assert math.arg_min(x).get() == 4  # conformance: argMin.2d_no_axis
    np.testing.assert_array_equal(values(math.arg_max(x, 0)), [1, 0, 1])  # conformance: argMax.2d_axis0
    ties = Array2D.new([2, 4], [1, 3, 3, 0, 2, 2, -1, 2])
    np.testing.assert_array_equal(values(math.arg_max(ties, 1)), [1, 0])
    np.testing.assert_array_equal(values(math.arg_min(ties, 1)), [3, 2])
    assert math.arg_max(Array1D.new([4, 4, 4])).get() == 0


def test_arg_ops_over_several_axes_index_the_reduced_group(math: dl.NDArrayMath) -> None:
    data = np.random.default_rng(1).permutation(24).reshape(2, 3, 4)
    got = values(math.arg_max(Array3D.new([2, 3, 4], data), [0, 2]))
    for j in range(3):
        group = data[:, j, :].ravel()  # the reduced axes (0, 2) in row-major order
        assert got[j] == int(np.argmax(group))


def test_arg_ops_with_nan_give_the_first_nan_index(math: dl.NDArrayMath) -> None:
    # Departure from deeplearn.js (its int32 sentinel): NumPy's rule. conformance: argMax.nan, argMin.nan
    assert math.arg_max(Array1D.new([5, 0, 3, NAN, 3])).get() == 3
    assert math.arg_min(Array1D.new([5, 0, NAN, 7, NAN])).get() == 2
    np.testing.assert_array_equal(values(math.arg_max(Array2D.new([2, 2], [NAN, 1, 1, NAN]), 1)), [0, 1])


def test_arg_max_equals(math: dl.NDArrayMath) -> None:
    eq = math.arg_max_equals(Array1D.new([5, 0, 3, 7, 3]), Array1D.new([-100.3, -20, -10, -5, -100]))
    assert (eq.shape, eq.dtype, eq.get()) == ((), "bool", True)  # conformance: argMaxEquals.equals
    ne = math.arg_max_equals(Array1D.new([5, 0, 3, 1, 3]), Array1D.new([-100.3, -20, -10, -5, 0]))
    assert ne.get() is False  # conformance: argMaxEquals.not_equals
    # NaN counts as the maximum (its index is 0 here), not deeplearn.js's bool sentinel.
    nan = math.arg_max_equals(Array1D.new([0, 3, 1, 3]), Array1D.new([NAN, -20, -10, -5]))
    assert nan.get() is False
    with pytest.raises(ShapeError, match=r"arg_max_equals: x1 and x2 must have the same shape"):
        math.arg_max_equals(Array1D.new([1, 2]), Array1D.new([1, 2, 3]))


def test_top_k(math: dl.NDArrayMath) -> None:
    vals, idx = math.top_k(Array1D.new([1, -1, 100, -5, -10.6, 3.3, 5]), 3)  # conformance: v010.topK
    np.testing.assert_allclose(values(vals), [100, 5, 3.3], rtol=1e-6)
    np.testing.assert_array_equal(values(idx), [2, 6, 5])
    assert (vals.dtype, idx.dtype) == ("float32", "int32")
    _, tie_idx = math.top_k(Array2D.new([2, 2], [2, 7, 7, 2]), 4)
    np.testing.assert_array_equal(values(tie_idx), [1, 2, 0, 3])  # flat indices, ties in index order
    nan_vals, nan_idx = math.top_k(Array1D.new([1, NAN, 3]), 2)
    assert pymath.isnan(values(nan_vals)[0]) and values(nan_idx).tolist() == [1, 2]
    ints, _ = math.top_k(Array1D.new([-2147483648, 5, 0], "int32"), 3)
    assert ints.dtype == "int32" and values(ints).tolist() == [5, 0, -2147483648]
    with pytest.raises(ShapeError, match=r"top_k: k must be in \[0, x.size\]; got k=4"):
        math.top_k(Array1D.new([1, 2, 3]), 4)


# -- log_sum_exp and softmax -----------------------------------------------------------------------


def test_log_sum_exp_values_and_stability(math: dl.NDArrayMath) -> None:
    assert math.log_sum_exp(Array1D.new([1, 2, -3])).get() == pytest.approx(2.318175429247454, rel=1e-6)
    x = Array2D.new([3, 2], [1, 2, 3, 0, 0, 1])
    k = math.log_sum_exp(x, [0], True)  # conformance: logSumExp.2d_axis0_keepDims
    assert k.shape == (1, 2)
    np.testing.assert_allclose(values(k).ravel(), [3.1698460195562856, 2.40760596444438], rtol=1e-6)
    assert math.log_sum_exp(Array1D.new([1000, 1000])).get() == pytest.approx(1000 + pymath.log(2))
    assert math.log_sum_exp(Array1D.new([-1000, -1000])).get() == pytest.approx(-1000 + pymath.log(2))
    assert math.log_sum_exp(Array1D.new([-np.inf, -np.inf])).get() == -np.inf
    assert math.log_sum_exp(Array1D.new([np.inf, 1])).get() == np.inf
    assert math.log_sum_exp(Array1D.new([1, 2], "int32")).dtype == "float32"


def test_log_sum_exp_nan_propagates_per_group(math: dl.NDArrayMath) -> None:
    assert pymath.isnan(math.log_sum_exp(Array1D.new([1, 2, NAN])).get())  # conformance: logSumExp.nan
    rows = values(math.log_sum_exp(Array2D.new([2, 2], [NAN, 1, 0, 0]), 1))
    assert pymath.isnan(rows[0]) and rows[1] == pytest.approx(pymath.log(2))


def test_softmax_stability(math: dl.NDArrayMath) -> None:
    # conformance: softmax.overflow, softmax.underflow, softmax.huge_difference
    np.testing.assert_allclose(values(math.softmax(Array1D.new([1000, 1000]))), [0.5, 0.5])
    np.testing.assert_allclose(values(math.softmax(Array1D.new([-1000, -1000]))), [0.5, 0.5])
    np.testing.assert_allclose(values(math.softmax(Array1D.new([-1000, 1000]))), [0, 1])
    y = math.softmax(Array1D.new([2, 1, 3]))  # conformance: softmax.regular
    np.testing.assert_allclose(values(y), [0.24472847, 0.09003057, 0.66524095], rtol=1e-6)
    assert values(y).sum() == pytest.approx(1.0)


def test_softmax_nan_fills_its_row_only(math: dl.NDArrayMath) -> None:
    y = values(math.softmax(Array2D.new([2, 3], [2, 1, NAN, 1, 1, 1])))  # conformance: softmax.nan
    assert np.isnan(y[0]).all()
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-6)


def test_softmax_only_the_last_dimension(math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 3], [2, 1, 3, 1, 3, 2])
    with pytest.raises(ShapeError) as info:  # conformance: softmax.2d_dim0_throws
        math.softmax(x, 0)
    assert str(info.value) == "softmax: only the last dimension is supported; got dim=0 for rank 2."
    assert math.softmax(x, 1).shape == (2, 3)


# -- norm ------------------------------------------------------------------------------------------

NORM_X = np.array([[1, 2, -3], [1, 1, 1], [0.5, -4, 2], [2, 0, -1]], dtype=np.float32)


@pytest.mark.parametrize(
    ("ord_", "axis"),
    [("euclidean", 0), (2, 1), (1, -1), (np.inf, 0), (-np.inf, 1),
     ("fro", (0, 1)), ("euclidean", (1, 0)), (1, (0, 1)), (1, (1, 0)), (np.inf, (0, 1)), (-np.inf, (1, 0))],
)
def test_norm_matches_numpy(math: dl.NDArrayMath, ord_: object, axis: object) -> None:
    np_ord = {"euclidean": 2 if isinstance(axis, int) else "fro"}.get(ord_, ord_)  # type: ignore[call-overload]
    expected = np.linalg.norm(NORM_X.astype(np.float64), ord=np_ord, axis=axis)
    got = math.norm(dl.NDArray.from_numpy(NORM_X), ord_, axis)  # type: ignore[arg-type]
    assert got.dtype == "float32"
    np.testing.assert_allclose(values(got), expected, rtol=1e-6)


def test_norm_conformance_values(math: dl.NDArrayMath) -> None:
    assert math.norm(Scalar.new(-22)).get() == 22  # conformance: norm.scalar
    v = Array1D.new([1, -2, 3, -4])
    assert math.norm(v, np.inf).get() == 4  # conformance: norm.vector_inf
    assert math.norm(v, "euclidean").get() == pytest.approx(5.4772, abs=1e-4)
    m = Array2D.new([3, 2], [1, 2, -3, 1, 1, 1])
    assert math.norm(m, 1, [0, 1]).get() == 5  # conformance: norm.matrix_1 (max column sum)
    assert math.norm(m, "fro", [0, 1]).get() == pytest.approx(4.123, abs=1e-3)
    kd = math.norm(Array2D.new([3, 2], [1, 2, 3, 0, 0, 1]), np.inf, None, True)  # norm.2d_keepDims
    assert kd.shape == (1, 1) and kd.get(0, 0) == 3
    x3 = Array3D.new([3, 2, 2], [1, 2, 3, 0, 0, 1, 1, 2, 3, 0, 0, 1])  # norm.3d_322_axis01_keepDims
    y3 = math.norm(x3, np.inf, [0, 1], True)
    assert y3.shape == (1, 1, 2) and values(y3).ravel().tolist() == [4, 3]
    x4 = Array4D.new([3, 2, 2, 2], [1, 2, 3, 0, 0, 1] * 4)  # conformance: norm.4d_axis01
    np.testing.assert_array_equal(values(math.norm(x4, np.inf, [0, 1])), [[4, 3], [4, 3]])


def test_norm_with_nan_is_nan(math: dl.NDArrayMath) -> None:
    for ord_ in ("euclidean", 1, np.inf, -np.inf):
        assert pymath.isnan(math.norm(Array1D.new([1, NAN, 2]), ord_).get())


def test_norm_rejects_other_ords_and_axes(math: dl.NDArrayMath) -> None:
    v, m = Array1D.new([1, -2, 3, -4]), Array2D.new([3, 2], [1, 2, -3, 1, 1, 1])
    with pytest.raises(ValueError, match=r"norm: ord must be 1, 2, inf, -inf or 'euclidean' for a vector norm; got ord=3"):
        math.norm(v, 3)  # conformance: norm.vector_3_throws
    with pytest.raises(ValueError, match=r"for a matrix norm; got ord=2"):
        math.norm(m, 2, [0, 1])  # conformance: norm.matrix_2_throws
    with pytest.raises(ValueError, match=r"for a vector norm; got ord='fro'"):
        math.norm(v, "fro")
    with pytest.raises(ValueError, match=r"norm: axis must name one axis .* or two"):
        math.norm(Array3D.new([1, 1, 1], [1]), 1, [0, 1, 2])


# -- moments ---------------------------------------------------------------------------------------


def test_moments(math: dl.NDArrayMath) -> None:
    result = math.moments(Array2D.new([3, 2], [1, 2, 3, 0, 0, 1]), [1])  # conformance: moments.axis1
    assert isinstance(result, Moments) and isinstance(result, tuple)
    mean, variance = result
    np.testing.assert_allclose(values(mean), [1.5, 1.5, 0.5])
    np.testing.assert_allclose(values(result.variance), [0.25, 2.25, 0.25])
    assert mean is result.mean
    ints = math.moments(Array1D.new([1, 2, 3, 4], "int32"))
    assert (ints.mean.dtype, ints.mean.get(), ints.variance.get()) == ("float32", 2.5, 1.25)
    kept = math.moments(Array2D.new([2, 3], [1, 2, 3, 0, 0, 1]), -1, keep_dims=True)
    assert kept.mean.shape == kept.variance.shape == (2, 1)
    np.testing.assert_allclose(values(kept.variance).ravel(), [2 / 3, 2 / 9], rtol=1e-6)


# -- gradients that the random op table cannot show ------------------------------------------------


def test_max_and_min_gradients_go_to_the_first_extremum_on_ties(cpu_math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 3], [1, 3, 3, 2, 2, 0])
    dy = Array1D.new([10, 20])
    (gmax,) = Max((1,)).backward(cpu_math, dy, x, cpu_math.max(x, 1))
    np.testing.assert_array_equal(values(gmax), [[0, 10, 0], [20, 0, 0]])
    y = Array2D.new([2, 3], [1, 0, 0, 5, 5, 5])
    (gmin,) = Min(None, True).backward(cpu_math, Array2D.new([1, 1], [7]), y, cpu_math.min(y, None, True))
    np.testing.assert_array_equal(values(gmin), [[0, 7, 0], [0, 0, 0]])


def test_sum_gradient_conformance(cpu_math: dl.NDArrayMath) -> None:
    x = Array2D.new([3, 2], [1, 2, 3, 0, 0, 1])
    (g,) = Sum(None, True).backward(cpu_math, Array2D.new([1, 1], [1]), x, cpu_math.sum(x, None, True))
    assert g.shape == (3, 2) and values(g).ravel().tolist() == [1] * 6  # sum.grad_keepDims_then_sum


# -- linear algebra --------------------------------------------------------------------------------


def test_mat_mul_orientations_and_nan(math: dl.NDArrayMath) -> None:
    a = Array2D.new([2, 3], [1, 2, 3, 4, 5, 6])
    b = Array2D.new([2, 3], [1, 0, 2, 4, 3, 0])
    t = math.mat_mul(a, b, MatrixOrientation.REGULAR, MatrixOrientation.TRANSPOSED)  # matmul.A_x_Bt
    np.testing.assert_array_equal(values(t), [[7, 10], [16, 31]])
    assert math.mat_mul(a, b, 1, 0).shape == (3, 3)  # plain 0/1 as orientations
    m = math.matrix_times_vector(Array2D.new([2, 2], [1, 2, 3, 4]), Array1D.new([2, NAN]))
    assert np.isnan(values(m)).all()  # conformance: matmul.matrixTimesVector_nan
    assert pymath.isnan(math.dot_product(Array1D.new([2, NAN]), Array1D.new([2, 1])).get())


def test_mat_mul_errors(math: dl.NDArrayMath) -> None:
    with pytest.raises(ShapeError) as info:
        math.mat_mul(Array2D.new([2, 3], np.zeros(6)), Array2D.new([4, 5], np.zeros(20)))
    assert str(info.value) == (
        "mat_mul: inner dimensions must match; got a.shape=(2, 3) (REGULAR) and b.shape=(4, 5) (REGULAR), "
        "i.e. 3 vs 4."
    )
    with pytest.raises(ShapeError, match=r"\(TRANSPOSED\)"):  # conformance: matmul.At_x_B_shape_mismatch_throws
        math.mat_mul(Array2D.new([2, 3], np.zeros(6)), Array2D.new([3, 2], np.zeros(6)), 1, 0)
    with pytest.raises(ShapeError, match=r"mat_mul: inputs must be rank 2"):
        math.mat_mul(Array1D.new([1, 2]), Array2D.new([2, 1], [1, 2]))


def test_vector_composites(math: dl.NDArrayMath) -> None:
    m = Array2D.new([2, 3], [10, 20, 30, 40, 50, 60])
    np.testing.assert_array_equal(values(math.matrix_times_vector(m, Array1D.new([0, 1, 2]))), [80, 170])
    vm = math.vector_times_matrix(Array1D.new([2, 3]), Array2D.new([2, 2], [1, 2, 3, 4]))
    assert vm.shape == (2,) and values(vm).tolist() == [11, 16]  # conformance: matmul.vectorTimesMatrix
    d = math.dot_product(Array1D.new([2, 3]), Array1D.new([2, 1]))
    assert (d.shape, d.get()) == ((), 7.0)  # conformance: matmul.dotProduct
    o = math.outer_product(Array1D.new([2, 3]), Array1D.new([2, 1, 0]))
    np.testing.assert_array_equal(values(o), [[4, 2, 0], [6, 3, 0]])


def test_vector_composite_errors(math: dl.NDArrayMath) -> None:
    sq = Array2D.new([2, 2], [1, 2, 3, 4])
    with pytest.raises(ShapeError, match=r"vector_times_matrix: v must be rank 1; got v.shape=\(2, 2\)"):
        math.vector_times_matrix(sq, sq)  # conformance: matmul.vectorTimesMatrix_rank2_vector_throws
    with pytest.raises(ShapeError, match=r"vector_times_matrix: matrix must be rank 2"):
        math.vector_times_matrix(Array1D.new([2, 3]), Array3D.new([2, 2, 2], np.zeros(8)))
    with pytest.raises(ShapeError, match=r"matrix_times_vector: v.size must match the matrix's columns"):
        math.matrix_times_vector(sq, Array1D.new([1, 2, 3]))
    with pytest.raises(ShapeError, match=r"dot_product: v1 and v2 must have the same size"):
        math.dot_product(Array1D.new([1, 2]), Array1D.new([1, 2, 3]))


# -- layout ----------------------------------------------------------------------------------------


def test_layout_conformance_values(math: dl.NDArrayMath) -> None:
    x = Array2D.new([4, 3], np.arange(1, 13))
    np.testing.assert_array_equal(values(math.slice2d(x, [1, 1], [3, 2])).ravel(), [5, 6, 8, 9, 11, 12])
    c = math.concat3d(Array3D.new([2, 1, 3], [1, 11, 111, 3, 33, 333]),
                      Array3D.new([2, 2, 3], [5, 55, 555, 6, 66, 666, 7, 77, 777, 8, 88, 888]), 1)
    assert c.shape == (2, 3, 3)  # conformance: concat3D.axis1
    assert values(c).ravel().tolist() == [1, 11, 111, 5, 55, 555, 6, 66, 666, 3, 33, 333, 7, 77, 777, 8, 88, 888]
    t = math.transpose(Array3D.new([2, 2, 2], [1, 11, 2, 22, 3, 33, 4, 44]), [2, 1, 0])
    assert values(t).ravel().tolist() == [1, 3, 2, 4, 11, 33, 22, 44]  # conformance: transpose.3d_210
    tb = math.tile(Array1D.new([1, 0, 1], "bool"), [2])  # conformance: tile.bool_1d
    assert tb.dtype == "bool" and values(tb).tolist() == [True, False, True] * 2
    ti = math.tile(Array1D.new([1, 3, -2147483648], "int32"), [2])  # conformance: tile.int32_nan
    assert ti.dtype == "int32" and values(ti).tolist() == [1, 3, -2147483648] * 2
    assert np.isnan(values(math.tile(Array1D.new([1, 2, NAN]), [2]))[[2, 5]]).all()


def test_layout_errors(math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 3], np.arange(6))
    with pytest.raises(ShapeError) as info:
        math.slice2d(x, [1, 1], [1, 3])
    assert str(info.value).startswith("slice2d: begin[1] + size[1] must not exceed x.shape[1]; got ")
    with pytest.raises(ShapeError, match=r"slice2d: x must be rank 2; got x.shape=\(6,\)"):
        math.slice2d(Array1D.new(np.arange(6)), [0, 0], [1, 1])
    with pytest.raises(ShapeError, match=r"concat2d: a and b must match in every dimension but axis 1; .* along axis 0"):
        math.concat2d(Array2D.new([2, 2], [1, 2, 3, 4]), Array2D.new([1, 2], [5, 6]), 1)
    with pytest.raises(ShapeError, match=r"concat3d: .* but axis 2; .* along axis 1"):
        math.concat3d(Array3D.new([1, 2, 2], np.zeros(4)), Array3D.new([1, 3, 2], np.zeros(6)), 2)
    with pytest.raises(ShapeError, match=r"concat1d: a and b must have the same rank"):
        math.concat1d(Array1D.new([1]), Array2D.new([1, 1], [1]))
    with pytest.raises(dl.DTypeError, match=r"same dtype"):
        math.concat1d(Array1D.new([1]), Array1D.new([1], "int32"))
    with pytest.raises(ShapeError, match=r"transpose: perm must be a permutation of range\(2\); got perm=\(0, 0\)"):
        math.transpose(x, [0, 0])
    with pytest.raises(ShapeError, match=r"tile: reps must have one entry >= 0 per dimension"):
        math.tile(x, [2])


def test_reduction_axis_errors(math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 3], np.arange(6))
    with pytest.raises(ShapeError, match=r"sum: axis must be in \[-2, 2\); got axis=\(2,\) for rank 2"):
        math.sum(x, 2)
    with pytest.raises(ShapeError, match=r"max: axes must be distinct"):
        math.max(x, [1, -1])
    with pytest.raises(ShapeError, match=r"arg_max: axis must be in"):
        math.arg_max(x, -3)
    with pytest.raises(ShapeError, match=r"min: the reduced axes must not be empty"):
        math.min(dl.NDArray.zeros([0, 3]), 0)


def test_layout_outputs_own_their_data(math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 2], [1, 2, 3, 4])
    outs = [math.clone(x), math.slice2d(x, [0, 0], [1, 2]), math.transpose(x), math.concat2d(x, x, 0)]
    x.set(100, 0, 0)
    assert [o.get(0, 0) for o in outs] == [1, 1, 1, 1]


def test_deprecated_reshape_and_switch_dim_warn(math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 3], np.arange(6))
    with pytest.warns(DeprecationWarning, match="math.reshape is deprecated"):
        r = math.reshape(x, [3, -1])
    assert r.shape == (3, 2) and values(r).ravel().tolist() == list(range(6))
    with pytest.warns(DeprecationWarning, match="math.switch_dim is deprecated"):
        s = math.switch_dim(x, [1, 0])
    np.testing.assert_array_equal(values(s), np.arange(6).reshape(2, 3).T)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        math.transpose(x)  # the replacement does not warn


def test_float64_data_keeps_its_precision_through_reductions(cpu_math: dl.NDArrayMath) -> None:
    """The gradient checks rely on the kernels keeping float64 data (engine.keep_float64)."""
    cpu_math.engine.keep_float64 = True
    x = as_ndarray(cpu_math, np.array([1.0, 1e-12]))
    assert cpu_math.sum(x).raw.dtype == np.float64
    assert cpu_math.log_sum_exp(x).raw.dtype == np.float64


def test_matrix_products_promote_mixed_dtypes_to_float32(cpu_math: dl.NDArrayMath) -> None:
    w = dl.Array2D.new([3, 2], [0, 0.1, 0.2, 0.3, 0.4, 0.5])
    y = cpu_math.mat_mul(dl.Array2D.new([1, 3], [1, 2, 3], "int32"), w)
    assert y.dtype == "float32"
    np.testing.assert_allclose(y.get_values(), [1.6, 2.2], rtol=1e-6)
    assert cpu_math.dot_product(dl.Array1D.new([1, 2], "int32"), dl.Array1D.new([0.5, 0.5])).get() == 1.5
    assert cpu_math.mat_mul(dl.Array2D.new([1, 1], [2], "int32"), dl.Array2D.new([1, 1], [3], "int32")).dtype == "int32"


def test_log_sum_exp_of_an_empty_group_is_a_shape_error(cpu_math: dl.NDArrayMath) -> None:
    with pytest.raises(ShapeError, match="log_sum_exp: the reduced axes must not be empty"):
        cpu_math.log_sum_exp(dl.NDArray.zeros([0, 3]))
