"""deeplearn.js semantics of convolutions and pooling that the op table's oracle cannot know:
NaN in pool windows, avg_pool counting padding, max_pool_backprop's first maximum and
accumulation, the conformance values, and argument checks with clear messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, Array3D, Array4D
from deeplearn.math.ops.pool import MaxPool, MinPool
from deeplearn.types import ShapeError
from tests.conftest import as_ndarray

CASES = json.loads((Path(__file__).parents[1] / "data" / "conformance_cases.json").read_text())


def cases(*ops: str) -> list[dict[str, Any]]:
    return [c for c in CASES if c["op"] in ops]


def values(t: dict[str, Any]) -> np.ndarray:
    v = [np.nan if x == "NaN" else x for x in t["values"]]
    return np.asarray(v, dtype=np.float32).reshape(t["shape"])


def nd(math: dl.NDArrayMath, t: dict[str, Any]) -> dl.NDArray:
    return as_ndarray(math, values(t))


def check(out: dl.NDArray, expected: dict[str, Any], tol: float) -> None:
    assert out.shape == tuple(expected["shape"])
    np.testing.assert_allclose(out.numpy(), values(expected), atol=max(tol, 1e-6), rtol=0)


# -- conformance values ---------------------------------------------------------------------------

POOL_CASES = [c for c in cases("maxPool", "minPool", "avgPool") if "error" not in c["expected"]]


@pytest.mark.parametrize("case", POOL_CASES, ids=[c["id"] for c in POOL_CASES])
def test_pool_conformance(case: dict[str, Any], math: dl.NDArrayMath) -> None:
    a = case["attrs"]
    method = {"maxPool": math.max_pool, "minPool": math.min_pool, "avgPool": math.avg_pool}[case["op"]]
    check(
        method(nd(math, case["inputs"][0]), a["filterSize"], a["strides"], a["pad"]),
        case["expected"],
        case["tolerance"],
    )


BACKPROP_CASES = cases("grad:maxPool")


@pytest.mark.parametrize("case", BACKPROP_CASES, ids=[c["id"] for c in BACKPROP_CASES])
def test_max_pool_backprop_conformance(case: dict[str, Any], math: dl.NDArrayMath) -> None:
    a = case["attrs"]
    dy, x = (nd(math, t) for t in case["inputs"])
    check(
        math.max_pool_backprop(dy, x, a["filterSize"], a["strides"], a["pad"]),
        case["expected"],
        case["tolerance"],
    )


def test_graph_max_pool_forward_and_backward(math: dl.NDArrayMath) -> None:
    (case,) = cases("graph:MaxPool")
    x, dy = (nd(math, t) for t in case["inputs"])
    y = math.engine.run(MaxPool(filter_size=2, strides=1, pad=0), x)
    check(y, case["expected"]["y"], 0)
    (dx,) = MaxPool(filter_size=2, strides=1, pad=0).backward(math, dy, x, y)
    check(dx, case["expected"]["dx"], 0)  # 9 wins two windows: 90 + 80 = 170


CONV_CASES = [
    c for c in cases("conv2d") if "error" not in c["expected"] and isinstance(c["inputs"][0]["values"], list)
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[c["id"] for c in CONV_CASES])
def test_conv2d_conformance(case: dict[str, Any], math: dl.NDArrayMath) -> None:
    x, w, b = (nd(math, t) for t in case["inputs"])
    y = math.conv2d(x, w, b, case["attrs"]["strides"], case["attrs"]["pad"])
    expected = dict(case["expected"])
    if "shape" not in expected:
        expected["shape"] = [1, 1, 1]
    check(y, expected, case["tolerance"])


def test_conv2d_shape_only_cases(math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(0)
    x = as_ndarray(math, rng.standard_normal((30, 30, 3)).astype(np.float32))
    w = as_ndarray(math, rng.standard_normal((7, 7, 3, 10)).astype(np.float32))
    y = math.conv2d(x, w, as_ndarray(math, rng.standard_normal(10).astype(np.float32)), 1, 1)
    assert y.shape == (26, 26, 10) and not np.isnan(y.numpy()).any()


def test_conv1d_conformance(math: dl.NDArrayMath) -> None:
    (case,) = [c for c in cases("conv1d") if "error" not in c["expected"]]
    x, w, b = (nd(math, t) for t in case["inputs"])
    check(
        math.conv1d(x, w, b, case["attrs"]["stride"], case["attrs"]["pad"]),
        case["expected"],
        case["tolerance"],
    )


def test_conv1d_batched_and_padded_matches_conv2d(math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 4)).astype(np.float32)
    y = math.conv1d(as_ndarray(math, x), as_ndarray(math, w), None, 2, 1)
    y2 = math.conv2d(as_ndarray(math, x[:, None]), as_ndarray(math, w[None]), None, (1, 2), (0, 1))
    assert y.shape == (2, 4, 4)
    np.testing.assert_allclose(y.numpy(), y2.numpy()[:, 0], rtol=1e-6)
    same = math.conv1d(as_ndarray(math, x[0]), as_ndarray(math, w), None, 1, "same")
    assert same.shape == (7, 4)


def test_conv2d_transpose_conformance(math: dl.NDArrayMath) -> None:
    (case,) = [c for c in cases("conv2dTranspose") if "error" not in c["expected"]]
    x, w = (nd(math, t) for t in case["inputs"])
    a = case["attrs"]
    check(
        math.conv2d_transpose(x, w, tuple(a["outputShape"]), a["strides"], a["pad"]),
        case["expected"],
        case["tolerance"],
    )


DEPTHWISE_CASES = cases("depthwiseConv2D")


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[c["id"] for c in DEPTHWISE_CASES])
def test_depthwise_conformance(case: dict[str, Any], math: dl.NDArrayMath) -> None:
    x, w = (nd(math, t) for t in case["inputs"])
    y = math.depthwise_conv2d(x, w, case["attrs"]["strides"], case["attrs"]["pad"])
    if "values" in case["expected"]:
        check(y, case["expected"], case["tolerance"])
    else:
        assert y.shape == tuple(case["expected"]["shape"])


DER_CASES = cases("grad:conv2d")


@pytest.mark.parametrize("case", DER_CASES, ids=[c["id"] for c in DER_CASES])
def test_conv2d_derivative_conformance(case: dict[str, Any], math: dl.NDArrayMath) -> None:
    a = case["attrs"]
    if a["api"] == "conv2dDerBias":
        out = math.conv2d_der_bias(nd(math, case["inputs"][0]))
    else:
        x, dy = (nd(math, t) for t in case["inputs"])
        out = math.conv2d_der_filter(x, dy, tuple(a["filterShape"]), a["strides"], a["pad"])
    check(out, case["expected"], case["tolerance"])


# -- NaN, padding and routing semantics -------------------------------------------------------------


def test_nan_in_a_window_gives_nan(math: dl.NDArrayMath) -> None:
    x = Array3D.new([3, 3, 1], [1, 2, 3, 4, 5, 6, 7, np.nan, 9])
    expected = [5, 6, np.nan, np.nan]
    np.testing.assert_array_equal(math.max_pool(x, 2, 1, 0).get_values(), expected)
    np.testing.assert_array_equal(math.min_pool(x, 2, 1, 0).get_values(), [1, 2, np.nan, np.nan])
    np.testing.assert_array_equal(math.avg_pool(x, 2, 1, 0).get_values(), [3, 4, np.nan, np.nan])
    # -inf and +inf are ordinary values, not NaN.
    y = Array3D.new([2, 2, 1], [-np.inf, np.inf, 1, 2])
    assert math.max_pool(y, 2, 1, 0).get(0, 0, 0) == np.inf
    assert math.min_pool(y, 2, 1, 0).get(0, 0, 0) == -np.inf


def test_conv_propagates_nan(math: dl.NDArrayMath) -> None:
    # A NaN times a zero weight is still NaN (deeplearn.js sums x·w over the whole window).
    x = Array3D.new([3, 3, 1], [1, 2, 3, 4, 5, 6, 7, 8, np.nan])
    y = math.conv2d(x, Array4D.new([2, 2, 1, 1], [1, 0, 0, 0]), None, 1, "valid").get_values()
    np.testing.assert_array_equal(np.isnan(y), [False, False, False, True])


def test_avg_pool_counts_padded_cells(math: dl.NDArrayMath) -> None:
    x = Array3D.new([2, 2, 1], [1, 2, 3, 4])
    np.testing.assert_allclose(math.avg_pool(x, 2, 2, 1).get_values(), [0.25, 0.5, 0.75, 1])
    # 'same': 3×3 input, f=2 → bottom/right padding; the corner window holds one real cell.
    y = math.avg_pool(Array3D.new([3, 3, 1], [4] * 9), 2, 1, "same").numpy()[:, :, 0]
    np.testing.assert_allclose(y, [[4, 4, 2], [4, 4, 2], [2, 2, 1]])


def test_max_pool_padding_never_wins(math: dl.NDArrayMath) -> None:
    x = Array3D.new([2, 2, 1], [-1, -2, -3, -4])
    np.testing.assert_array_equal(math.max_pool(x, 2, 2, 1).get_values(), [-1, -2, -3, -4])
    np.testing.assert_array_equal(
        math.min_pool(Array3D.new([2, 2, 1], [1, 2, 3, 4]), 2, 2, 1).get_values(), [1, 2, 3, 4]
    )


def test_max_pool_backprop_first_maximum_and_accumulation(math: dl.NDArrayMath) -> None:
    dy = Array3D.new([2, 2, 1], [1, 2, 3, 4])
    # Every cell ties: each window sends its dy to its own top-left cell.
    flat = math.max_pool_backprop(dy, Array3D.new([3, 3, 1], [7] * 9), 2, 1, 0).numpy()[:, :, 0]
    np.testing.assert_array_equal(flat, [[1, 2, 0], [3, 4, 0], [0, 0, 0]])
    # The centre is the maximum of all four windows: 1 + 2 + 3 + 4.
    peak = math.max_pool_backprop(dy, Array3D.new([3, 3, 1], [0, 0, 0, 0, 5, 0, 0, 0, 0]), 2, 1, 0)
    assert peak.numpy()[1, 1, 0] == 10 and peak.numpy().sum() == 10


def test_max_pool_backprop_ignores_nan(math: dl.NDArrayMath) -> None:
    # deeplearn.js finds positions with `pixel > max`: a NaN never wins; an all-NaN window drops dy.
    dy = Array3D.new([1, 2, 1], [1, 2])
    x = Array3D.new([2, 4, 1], [np.nan, 1, np.nan, np.nan, 3, np.nan, np.nan, np.nan])
    dx = math.max_pool_backprop(dy, x, 2, 2, 0).numpy()[:, :, 0]
    np.testing.assert_array_equal(dx, [[0, 0, 0, 0], [1, 0, 0, 0]])


def test_min_pool_gradient_goes_to_first_minimum(math: dl.NDArrayMath) -> None:
    x = Array3D.new([2, 2, 1], [3, 1, 1, 2])
    op = MinPool(filter_size=2, strides=1, pad=0)
    y = math.engine.run(op, x)
    (dx,) = op.backward(math, Array3D.new([1, 1, 1], [5]), x, y)
    np.testing.assert_array_equal(dx.get_values(), [0, 5, 0, 0])


def test_conv2d_with_bias_adds_per_channel(math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(2)
    x = as_ndarray(math, rng.standard_normal((2, 4, 4, 2)).astype(np.float32))
    w = as_ndarray(math, rng.standard_normal((3, 3, 2, 3)).astype(np.float32))
    y0 = math.conv2d(x, w, None, 1, "same").numpy()
    y1 = math.conv2d(x, w, Array1D.new([1, 2, 3]), 1, "same").numpy()
    np.testing.assert_allclose(y1 - y0, np.broadcast_to([1, 2, 3], y0.shape), atol=1e-5)


def test_conv2d_der_bias_batched(math: dl.NDArrayMath) -> None:
    dy = as_ndarray(math, np.arange(24, dtype=np.float32).reshape(2, 2, 3, 2))
    np.testing.assert_allclose(math.conv2d_der_bias(dy).get_values(), np.arange(24).reshape(-1, 2).sum(0))


def test_results_are_float32_and_scoped(math: dl.NDArrayMath) -> None:
    before = math.get_num_arrays()
    x = Array3D.new([4, 4, 1], list(range(16)), "int32")
    with math.scope():
        y = math.max_pool(x, 2, 2, 0)
        z = math.conv2d(x, Array4D.new([1, 1, 1, 1], [2]), None, 1, 0)
        assert y.dtype == z.dtype == "float32"
        np.testing.assert_array_equal(y.get_values(), [5, 7, 13, 15])
    assert y.is_disposed and z.is_disposed
    assert math.get_num_arrays() == before + 1  # only x


# -- bad arguments ---------------------------------------------------------------------------------

ERROR_CASES = [c for c in cases("conv2d", "conv1d", "conv2dTranspose", "maxPool") if "error" in c["expected"]]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c["id"] for c in ERROR_CASES])
def test_conformance_errors(case: dict[str, Any], cpu_math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(0)
    ins = [
        as_ndarray(
            cpu_math,
            values(t)
            if isinstance(t["values"], list)
            else rng.standard_normal(t["shape"]).astype(np.float32),
        )
        for t in case["inputs"]
    ]
    a = case["attrs"]
    with pytest.raises(ShapeError):
        if case["op"] == "conv2d":
            cpu_math.conv2d(*ins, a["strides"], a["pad"])
        elif case["op"] == "conv1d":
            cpu_math.conv1d(*ins, a["stride"], a["pad"])
        elif case["op"] == "conv2dTranspose":
            cpu_math.conv2d_transpose(*ins, tuple(a["outputShape"]), a["strides"], a["pad"])
        else:
            cpu_math.max_pool(*ins, a["filterSize"], a["strides"], a["pad"])


def test_bad_shapes_raise_clear_messages(cpu_math: dl.NDArrayMath) -> None:
    m = cpu_math
    x = Array3D.new([4, 4, 2], [0] * 32)
    w = Array4D.new([2, 2, 2, 3], [0] * 24)
    with pytest.raises(ShapeError, match=r"conv2d: x must be rank 3 or 4; got x.shape=\(4, 8\)"):
        m.conv2d(x.reshape((4, 8)), w)
    with pytest.raises(ShapeError, match=r"conv2d: x's depth must match filter's input depth .*3 vs 2"):
        m.conv2d(Array3D.new([4, 4, 3], [0] * 48), w)
    with pytest.raises(ShapeError, match=r"conv2d: bias must be rank 1 of size outDepth"):
        m.conv2d(x, w, Array1D.new([0, 0]))
    with pytest.raises(ShapeError, match=r"conv2d: filter must be rank 4"):
        m.conv2d(x, w.reshape((4, 2, 3)))
    with pytest.raises(ShapeError, match=r"conv2d: the output height .* = 2.5 must be an integer"):
        m.conv2d(Array3D.new([5, 5, 2], [0] * 50), w, None, 2, 0)
    with pytest.raises(ValueError, match=r"conv2d: pad must be"):
        m.conv2d(x, w, None, 1, "full")
    with pytest.raises(ValueError, match=r"depthwise_conv2d: dilation rates greater than 1"):
        m.depthwise_conv2d(x, Array4D.new([2, 2, 2, 1], [0] * 8), 1, "same", 2)
    with pytest.raises(ShapeError, match=r"depthwise_conv2d: x's channels must match filter.shape\[2\]"):
        m.depthwise_conv2d(x, Array4D.new([2, 2, 3, 1], [0] * 12), 1, "same")
    with pytest.raises(ShapeError, match=r"conv2d_der_input: dy must have the shape of the forward output"):
        m.conv2d_der_input((4, 4, 2), Array3D.new([2, 2, 3], [0] * 12), w, 1, "same")
    with pytest.raises(ShapeError, match=r"conv2d_der_filter: dy must have the shape"):
        m.conv2d_der_filter(x, Array3D.new([3, 3, 2], [0] * 18), (2, 2, 2, 3), 1, "valid")
    with pytest.raises(ShapeError, match=r"max_pool: x must be rank 3 or 4"):
        m.max_pool(Array1D.new([1, 2]), 1, 1, 0)
    with pytest.raises(ShapeError, match=r"max_pool_backprop: dy must have the shape of the pooled output"):
        m.max_pool_backprop(Array3D.new([3, 3, 2], [0] * 18), x, 2, 2, 0)
    with pytest.raises(ValueError, match=r"avg_pool: filter_size must be"):
        m.avg_pool(x, 0, 1, 0)
    with pytest.raises(ShapeError, match=r"conv2d_der_bias: dy must be rank 3 or 4"):
        m.conv2d_der_bias(Array1D.new([1, 2]))
    with pytest.raises(ShapeError, match=r"conv1d: filter must be rank 3"):
        m.conv1d(x, w)


def test_conv2d_info_has_deeplearn_js_field_names_in_snake_case() -> None:
    """deeplearn.js Conv2DInfo.padInfo and .filterShape are pad_info and filter_shape; the old
    name ``pad`` still works."""
    from deeplearn.math.ops.conv_util import PadInfo, compute_conv2d_info, compute_pool2d_info

    info = compute_conv2d_info((1, 3, 3, 2), (2, 2, 2, 5), 1, "same")
    assert info.pad_info == info.pad == PadInfo(top=0, left=0, bottom=1, right=1)
    assert info.filter_shape == (2, 2, 2, 5)
    depthwise = compute_conv2d_info((1, 3, 3, 2), (2, 2, 2, 3), 1, "valid", depthwise=True)
    assert depthwise.filter_shape == (2, 2, 2, 3) and depthwise.out_channels == 6
    assert compute_pool2d_info((1, 4, 4, 3), 2, 2, 0).filter_shape == (2, 2, 3, 3)  # as deeplearn.js
