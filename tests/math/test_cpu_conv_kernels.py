"""The CPU's own convolution and pooling kernels (deeplearn/math/backends/cpu.py, issue 12)
against the op table's oracles in the cases the table's small shapes do not reach: patches built
a block of images at a time (many blocks per batch), float64 and integer inputs, and the tiled
max-pool gradient with ties, NaN and infinities, against the generic kernel it replaces."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deeplearn.math.backends import cpu
from deeplearn.math.ops.conv import Conv2D, Conv2DDerFilter, Conv2DDerInput
from deeplearn.math.ops.pool import MaxPool, MaxPoolBackprop, MinPool
from tests.op_cases import CASES, OpCase

CONV_CASES = [c for c in CASES if isinstance(c.op, (Conv2D, Conv2DDerInput, Conv2DDerFilter))]


def _kernel(op: Any) -> Any:
    return cpu.cpu_kernel.dispatch(type(op))


@pytest.fixture(params=[1, 3000], ids=["one-image-blocks", "small-blocks"])
def block_bytes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Blocks of patches far smaller than a batch, so every batched case spans several."""
    monkeypatch.setattr(cpu, "_PATCH_BLOCK_BYTES", request.param)
    return int(request.param)


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_kernels_in_blocks_match_the_oracle(case: OpCase, dtype: Any, block_bytes: int) -> None:
    inputs = [x.astype(dtype) for x in case.inputs(np.random.default_rng(1))]
    out = _kernel(case.op)(case.op, *inputs)
    assert out.dtype == dtype
    expected = case.reference(*(x.astype(np.float64) for x in inputs))
    np.testing.assert_allclose(out, expected, rtol=case.rtol, atol=case.atol, err_msg=case.id)


@pytest.mark.parametrize(
    "strides,pad", [(1, "same"), (1, "valid"), (1, 2), (1, 5), (2, "same"), ((2, 1), 1), (3, "valid")]
)
@pytest.mark.parametrize(
    "x_shape,w_shape",
    # patches window by window; tap by tap (output rows longer than fW·inDepth: thin inputs)
    [((7, 11, 9, 3), (5, 4, 3, 6)), ((7, 11, 20, 1), (5, 3, 1, 4)), ((6, 9, 16, 2), (3, 3, 2, 5))],
)
def test_conv_kernels_match_the_generic_ones_on_a_larger_batch(
    strides: Any, pad: Any, x_shape: tuple[int, ...], w_shape: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    forward = Conv2D(strides=strides, pad=pad)
    y = forward.forward(np, x, w)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ops: list[tuple[Any, tuple[np.ndarray, ...]]] = [
        (forward, (x, w)),
        (Conv2DDerInput(in_shape=x.shape, strides=strides, pad=pad), (dy, w)),
        (Conv2DDerFilter(filter_shape=w.shape, strides=strides, pad=pad), (x, dy)),
    ]
    for block in (1, 2000, 1 << 30):  # one image a block, a few images, the whole batch
        cpu._PATCH_BLOCK_BYTES, saved = block, cpu._PATCH_BLOCK_BYTES
        try:
            for op, args in ops:
                np.testing.assert_allclose(
                    _kernel(op)(op, *args), op.forward(np, *args), rtol=1e-5, atol=1e-4, err_msg=op.name
                )
        finally:
            cpu._PATCH_BLOCK_BYTES = saved


def test_conv_kernels_take_integer_inputs_as_float32() -> None:
    x = np.arange(2 * 4 * 4 * 2, dtype=np.int32).reshape(2, 4, 4, 2) % 7
    w = (np.arange(3 * 3 * 2 * 2, dtype=np.int32).reshape(3, 3, 2, 2) % 5) - 2
    for op, args in [
        (Conv2D(strides=1, pad="same"), (x, w)),
        (Conv2DDerFilter(filter_shape=w.shape, strides=1, pad="same"), (x, x[..., :2])),
        (Conv2DDerInput(in_shape=x.shape, strides=1, pad="same"), (x[..., :2], w)),
    ]:
        out = _kernel(op)(op, *args)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, op.forward(np, *args))


def _special(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Few distinct values (many ties), with NaN, +inf and -inf sprinkled in, and some windows
    of nothing but -inf or NaN."""
    x = rng.integers(-1, 2, shape).astype(np.float32)
    cells = rng.random(shape)
    x[cells < 0.08] = np.nan
    x[(cells >= 0.08) & (cells < 0.14)] = -np.inf
    x[(cells >= 0.14) & (cells < 0.17)] = np.inf
    x[0, :2, :2, :] = -np.inf
    x[-1, :2, :2, :] = np.nan
    return x


@pytest.mark.parametrize(
    "shape,size,pad",
    [((3, 6, 8, 4), 2, 0), ((2, 5, 7, 3), 2, "same"), ((2, 7, 5, 2), 2, "valid"), ((2, 7, 10, 2), (3, 3), 1)],
)
def test_tiled_pooling_matches_the_generic_kernels(shape: tuple[int, ...], size: Any, pad: Any) -> None:
    """Windows that tile the image go through a reshaped view on the CPU; the generic kernels
    (tap by tap, running strict >) are the reference, NaN, ±inf and ties included."""
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        x = _special(rng, shape).astype(dtype)
        for op in (
            MaxPool(filter_size=size, strides=size, pad=pad),
            MinPool(filter_size=size, strides=size, pad=pad),
        ):
            np.testing.assert_array_equal(_kernel(op)(op, x), op.forward(np, x), err_msg=op.name)
        backprop = MaxPoolBackprop(filter_size=size, strides=size, pad=pad)
        y = MaxPool(filter_size=size, strides=size, pad=pad).forward(np, x)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dy.flat[::7] = np.nan
        dy.flat[1::11] = -0.0
        out = _kernel(backprop)(backprop, dy, x)
        expected = backprop.forward(np, dy, x)
        assert out.dtype == expected.dtype and out.shape == x.shape
        # Equal values, NaN where NaN; a dy of -0.0 stays -0.0 here (the generic kernel adds it
        # to +0.0).
        np.testing.assert_array_equal(out, expected)
