"""resize_bilinear3d, batch normalization, LSTM cells, multinomial, one_hot and the cost ops:
conformance values, the composites (which have no Op of their own), sampling statistics, and
the documented gradient departures of the cost ops (docs/design.md §4)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, Array2D, Array3D, Scalar
from deeplearn.math.ops.costs import MeanSquaredCost, SoftmaxCrossEntropyCost
from deeplearn.types import ShapeError
from tests.conftest import as_ndarray

CASES = json.loads((Path(__file__).parents[1] / "data" / "conformance_cases.json").read_text())


def cases(*ops: str) -> list[dict[str, Any]]:
    return [c for c in CASES if c["op"] in ops]


def values(t: dict[str, Any]) -> np.ndarray:
    return np.asarray(t["values"], dtype=np.float32).reshape(t["shape"])


def nd(math: dl.NDArrayMath, t: dict[str, Any]) -> dl.NDArray:
    return as_ndarray(math, values(t))


def check(out: dl.NDArray, expected: dict[str, Any], tol: float) -> None:
    assert out.shape == tuple(expected["shape"])
    np.testing.assert_allclose(out.numpy(), values(expected), atol=max(tol, 1e-6), rtol=0)


# -- resize_bilinear3d --------------------------------------------------------------------------

RESIZE_CASES = cases("resizeBilinear3D")


@pytest.mark.parametrize("case", RESIZE_CASES, ids=[c["id"] for c in RESIZE_CASES])
def test_resize_conformance(case: dict[str, Any], math: dl.NDArrayMath) -> None:
    a = case["attrs"]
    check(
        math.resize_bilinear3d(nd(math, case["inputs"][0]), a["newShape2D"], a["alignCorners"]),
        case["expected"],
        case["tolerance"],
    )


def test_resize_semantics(math: dl.NDArrayMath) -> None:
    x = Array3D.new([2, 2, 1], [1, 2, 3, 4])
    # Legacy mapping src = r·in/out: doubling repeats the last row/column (ceil clamped to in-1).
    np.testing.assert_allclose(
        math.resize_bilinear3d(x, [4, 4]).numpy()[:, :, 0],
        [[1, 1.5, 2, 2], [2, 2.5, 3, 3], [3, 3.5, 4, 4], [3, 3.5, 4, 4]],
    )
    # align_corners with an output of size 1 samples the first row (deeplearn.js gave NaN: 0/0).
    np.testing.assert_allclose(math.resize_bilinear3d(x, [1, 3], True).get_values(), [1, 1.5, 2])
    # A NaN only reaches the outputs that read it.
    y = math.resize_bilinear3d(Array3D.new([2, 2, 1], [1, 2, 3, np.nan]), [2, 4]).numpy()[:, :, 0]
    np.testing.assert_array_equal(np.isnan(y), [[False] * 4, [False, True, True, True]])
    with pytest.raises(ShapeError, match=r"resize_bilinear3d: x must be rank 3"):
        math.resize_bilinear3d(Array2D.new([2, 2], [1, 2, 3, 4]), [3, 3])
    with pytest.raises(ValueError, match=r"new_shape2d must be two positive sizes"):
        math.resize_bilinear3d(x, [0, 3])


# -- batch normalization --------------------------------------------------------------------------

BN_CASES = cases("batchNormalization2D", "batchNormalization3D", "batchNormalization4D")


@pytest.mark.parametrize("case", BN_CASES, ids=[c["id"] for c in BN_CASES])
def test_batch_norm_conformance(case: dict[str, Any], math: dl.NDArrayMath) -> None:
    named = dict(zip(case["attrs"]["input_names"], (nd(math, t) for t in case["inputs"]), strict=False))
    method = {
        "batchNormalization2D": math.batch_normalization2d,
        "batchNormalization3D": math.batch_normalization3d,
        "batchNormalization4D": math.batch_normalization4d,
    }[case["op"]]
    y = method(
        named["x"],
        named["mean"],
        named["variance"],
        case["attrs"]["varianceEpsilon"],
        named.get("scale"),
        named.get("offset"),
    )
    check(y, case["expected"], case["tolerance"])


def test_batch_norm_params_of_x_rank(math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(0)
    x, mean, scale, offset = (rng.standard_normal((2, 3, 4)).astype(np.float32) for _ in range(4))
    var = rng.uniform(0.5, 2, (2, 3, 4)).astype(np.float32)
    y = math.batch_normalization3d(
        *(as_ndarray(math, a) for a in (x, mean, var)),
        0.01,
        as_ndarray(math, scale),
        as_ndarray(math, offset),
    )
    np.testing.assert_allclose(
        y.numpy(), offset + (x - mean) * scale / np.sqrt(var + 0.01), rtol=1e-5, atol=1e-6
    )


def test_batch_norm_checks(cpu_math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 3], [1, 2, 3, 4, 5, 6])
    ok = Array1D.new([0, 0, 0])
    with pytest.raises(ShapeError, match=r"batch_normalization3d: x must be rank 3"):
        cpu_math.batch_normalization3d(x, ok, ok)
    with pytest.raises(
        ShapeError, match=r"batch_normalization2d: mean must be rank 1 \(\[depth\]\) or rank 2"
    ):
        cpu_math.batch_normalization2d(x, Array3D.new([1, 1, 3], [0, 0, 0]), ok)
    with pytest.raises(ShapeError, match=r"a rank-1 variance must have x's depth"):
        cpu_math.batch_normalization2d(x, ok, Array1D.new([1, 1]))


# -- LSTM ------------------------------------------------------------------------------------------


def np_lstm(
    forget_bias: float, kernel: np.ndarray, bias: np.ndarray, data: np.ndarray, c: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    def sig(v: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-v))

    res = np.concatenate([data, h], axis=1) @ kernel + bias
    i, j, f, o = np.split(res, 4, axis=1)
    new_c = c * sig(f + forget_bias) + sig(i) * np.tanh(j)
    return new_c, np.tanh(new_c) * sig(o)


def test_multi_rnn_cell_conformance(math: dl.NDArrayMath) -> None:
    (case,) = cases("multiRNNCell(basicLSTMCell x2)")
    t = dict(zip(case["attrs"]["input_names"], (nd(math, v) for v in case["inputs"]), strict=False))
    forget = Scalar.new(case["attrs"]["forgetBias"], math=math)
    cell1 = partial(math.basic_lstm_cell, forget, t["lstmKernel1"], t["lstmBias1"])
    cell2 = partial(math.basic_lstm_cell, forget, t["lstmKernel2"], t["lstmBias2"])
    new_c, new_h = math.multi_rnn_cell([cell1, cell2], t["data"], [t["c0"], t["c1"]], [t["h0"], t["h1"]])
    for got, want in zip(new_c + new_h, case["expected"]["newC"] + case["expected"]["newH"], strict=False):
        check(got, want, case["tolerance"])


def test_basic_lstm_cell_matches_numpy_and_batches(math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(3)
    units, inputs, batch = 3, 2, 4
    kernel = rng.standard_normal((inputs + units, 4 * units)).astype(np.float32)
    bias = rng.standard_normal(4 * units).astype(np.float32)
    data = rng.standard_normal((batch, inputs)).astype(np.float32)
    data[1] = data[0]
    c, h = (rng.standard_normal((batch, units)).astype(np.float32) for _ in range(2))
    c[1], h[1] = c[0], h[0]
    got_c, got_h = math.basic_lstm_cell(1.0, *(as_ndarray(math, a) for a in (kernel, bias, data, c, h)))
    want_c, want_h = np_lstm(1.0, kernel, bias, data, c, h)
    np.testing.assert_allclose(got_c.numpy(), want_c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_h.numpy(), want_h, rtol=1e-5, atol=1e-6)
    # basicLSTMCell.batch2_rows_identical: identical rows give identical results.
    np.testing.assert_array_equal(got_c.numpy()[0], got_c.numpy()[1])
    np.testing.assert_array_equal(got_h.numpy()[0], got_h.numpy()[1])


def test_lstm_checks(cpu_math: dl.NDArrayMath) -> None:
    zero = Array2D.new([1, 1], [0])
    with pytest.raises(
        ShapeError, match=r"basic_lstm_cell: lstm_kernel must be \[inputSize \+ units, 4·units\]"
    ):
        cpu_math.basic_lstm_cell(1.0, Array2D.new([3, 4], [0] * 12), Array1D.new([0] * 4), zero, zero, zero)
    with pytest.raises(ShapeError, match=r"basic_lstm_cell: lstm_bias must be \[4·units\]"):
        cpu_math.basic_lstm_cell(1.0, Array2D.new([2, 4], [0] * 8), Array1D.new([0] * 3), zero, zero, zero)
    with pytest.raises(ValueError, match=r"multi_rnn_cell: lstm_cells, c and h must have one entry per cell"):
        cpu_math.multi_rnn_cell([], zero, [zero], [zero])


# -- multinomial and one_hot --------------------------------------------------------------------


def test_multinomial_all_heads(math: dl.NDArrayMath) -> None:
    (case,) = cases("multinomial")
    probs = nd(math, case["inputs"][0])
    out = math.multinomial(probs, case["attrs"]["numSamples"], seed=1)
    assert out.dtype == "int32" and out.shape == (case["attrs"]["numSamples"],)
    freq = np.bincount(out.numpy(), minlength=2) / out.size
    np.testing.assert_allclose(freq, case["expected"]["outcome_frequencies"], atol=case["tolerance"])


def test_multinomial_frequencies(math: dl.NDArrayMath) -> None:
    n = 20000
    coin = math.multinomial(Array1D.new([1, 1]), n, seed=5)  # unnormalized: divided by the sum
    assert abs(coin.numpy().mean() - 0.5) < 0.02
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.0, 0.5]], dtype=np.float32)
    out = math.multinomial(as_ndarray(math, probs), n, seed=6, normalized=True).numpy()
    assert out.shape == (2, n)
    for row, p in zip(out, probs, strict=False):
        np.testing.assert_allclose(np.bincount(row, minlength=3) / n, p, atol=0.02)


def test_multinomial_seed_and_checks(math: dl.NDArrayMath) -> None:
    p = Array1D.new([0.2, 0.3, 0.5])
    a, b = math.multinomial(p, 100, seed=42), math.multinomial(p, 100, seed=42)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), math.multinomial(p, 100, seed=43).numpy())
    assert set(math.multinomial(p, 1000, seed=0.5).numpy().tolist()) <= {0, 1, 2}
    with pytest.raises(ShapeError, match=r"multinomial: there must be at least 2 outcomes"):
        math.multinomial(Array1D.new([1]), 3)
    with pytest.raises(ShapeError, match=r"multinomial: probs must be rank 1 or 2"):
        math.multinomial(Array3D.new([1, 1, 2], [0.5, 0.5]), 3)


ONE_HOT_CASES = cases("oneHot")


@pytest.mark.parametrize("case", ONE_HOT_CASES, ids=[c["id"] for c in ONE_HOT_CASES])
def test_one_hot_conformance(case: dict[str, Any], math: dl.NDArrayMath) -> None:
    a = case["attrs"]
    indices = nd(math, case["inputs"][0])  # float32 indices, as the test passed them
    if "error" in case["expected"]:
        with pytest.raises(ValueError, match=r"one_hot: depth must be at least 2"):
            math.one_hot(indices, a["depth"])
        return
    check(
        math.one_hot(indices, a["depth"], a.get("onValue", 1), a.get("offValue", 0)),
        case["expected"],
        case["tolerance"],
    )


# -- costs -----------------------------------------------------------------------------------------


def test_mean_squared_cost_forward_and_exact_gradient(math: dl.NDArrayMath) -> None:
    (case,) = cases("graph:MeanSquaredCost")
    x1, x2 = (nd(math, t) for t in case["inputs"])
    y = math.mean_squared_cost(x1, x2)
    check(y, case["expected"]["y"], 0)
    dy = Scalar.new(2.0, math=math)
    dx1, dx2 = MeanSquaredCost().backward(math, dy, x1, x2, y)
    # docs/design.md §4: the exact derivative dy·(x1 − x2)/N; deeplearn.js gives (x1 − x2) whatever dy.
    n = x1.size
    np.testing.assert_allclose(dx1.numpy(), 2.0 * values(case["expected"]["dx1"]) / n)
    np.testing.assert_allclose(dx2.numpy(), 2.0 * values(case["expected"]["dx2"]) / n)


def test_softmax_cross_entropy_forward_and_exact_gradient(math: dl.NDArrayMath) -> None:
    (case,) = cases("graph:SoftmaxCrossEntropyCost")
    logits, label, dy = (nd(math, t) for t in case["inputs"])
    y = math.softmax_cross_entropy_cost(logits, label)
    check(y, case["expected"]["y"], case["tolerance"])
    dx, _ = SoftmaxCrossEntropyCost().backward(math, dy, logits, label, y)
    # With dy = 1 and a label that sums to 1, the exact gradient differs from deeplearn.js's
    # softmax − label only through the 1e-5 inside the log.
    check(dx, case["expected"]["dlogits"], case["tolerance"])
    dx3, _ = SoftmaxCrossEntropyCost().backward(math, Scalar.new(3.0, math=math), logits, label, y)
    np.testing.assert_allclose(dx3.numpy(), 3 * dx.numpy(), rtol=1e-5)  # deeplearn.js ignored dy


def test_softmax_cross_entropy_nan(cpu_math: dl.NDArrayMath) -> None:
    y = cpu_math.softmax_cross_entropy_cost(Array1D.new([1, np.nan, 3]), Array1D.new([0, 0, 1]))
    assert np.isnan(y.get())


@pytest.mark.parametrize("method", ["mean_squared_cost", "softmax_cross_entropy_cost"])
def test_cost_shapes_must_match(method: str, cpu_math: dl.NDArrayMath) -> None:
    a = as_ndarray(cpu_math, np.zeros((5, 4), np.float32))
    b = as_ndarray(cpu_math, np.zeros((5, 4, 3), np.float32))
    with pytest.raises(
        ShapeError, match=rf"{method}: .* must have the same shape; got .*\(5, 4\) .*\(5, 4, 3\)"
    ):
        getattr(cpu_math, method)(a, b)
    assert getattr(cpu_math, method)(a, a).shape == ()
