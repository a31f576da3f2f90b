"""conv2d and its derivatives through cuDNN (``deeplearn/math/backends/cuda_cudnn.py``), on a GPU
with the cuDNN frontend installed: against a float64 NumPy oracle, the same bits on every call,
and cuDNN (not the im2col fallback) is what ran."""

from __future__ import annotations

import numpy as np
import pytest

from deeplearn.math.backends import cuda, cuda_cudnn
from deeplearn.math.ops.conv import (
    Conv2D,
    Conv2DDerFilter,
    Conv2DDerInput,
    DepthwiseConv2D,
    DepthwiseConv2DDerFilter,
    DepthwiseConv2DDerInput,
)

pytestmark = pytest.mark.skipif(
    not (cuda.is_available() and cuda_cudnn.available()), reason="needs a GPU and the cuDNN frontend"
)

# (input [b, h, w, c], filter [fH, fW, in, out] (depthwise: [fH, fW, in, multiplier]), strides,
# pad, depthwise)
GEOMETRIES = [
    ((64, 28, 28, 1), (5, 5, 1, 32), 1, "same", False),  # the cnn workload's two layers
    ((64, 14, 14, 32), (5, 5, 32, 64), 1, "same", False),
    ((2, 9, 7, 3), (3, 2, 3, 4), 2, "same", False),  # odd sizes, non-square, asymmetric padding
    ((3, 8, 8, 2), (3, 3, 2, 5), 1, "valid", False),
    ((1, 10, 11, 4), (4, 4, 4, 3), (2, 3), 1, False),
    ((6, 6, 3), (2, 2, 3, 2), 1, 0, False),  # one image, rank 3
    ((8, 14, 14, 16), (3, 3, 16, 1), 1, "same", True),  # MobileNet's depthwise layers
    ((4, 15, 15, 8), (3, 3, 8, 1), 2, "same", True),
    ((2, 9, 8, 3), (3, 2, 3, 2), 1, "valid", True),  # a channel multiplier of 2
    ((7, 7, 4), (2, 2, 4, 3), 2, 1, True),
]


def _ids(g: tuple) -> str:
    return f"{'depthwise-' if g[4] else ''}x{g[0]}-f{g[1]}-s{g[2]}-p{g[3]}"


def _oracle(op: object, *arrays: np.ndarray) -> np.ndarray:
    return op.forward(np, *(a.astype(np.float64) for a in arrays))  # type: ignore[attr-defined]


def _ops(geometry: tuple) -> list[tuple[object, tuple[np.ndarray, ...]]]:
    x_shape, f_shape, strides, pad, depthwise = geometry
    forward, der_input, der_filter = (
        (DepthwiseConv2D, DepthwiseConv2DDerInput, DepthwiseConv2DDerFilter)
        if depthwise
        else (Conv2D, Conv2DDerInput, Conv2DDerFilter)
    )
    rng = np.random.default_rng(sum(x_shape) + sum(f_shape))
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(f_shape).astype(np.float32)
    fwd = forward(strides=strides, pad=pad)
    y = fwd.forward(np, x, w)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    return [
        (fwd, (x, w)),
        (der_input(in_shape=x_shape, strides=strides, pad=pad), (dy, w)),
        (der_filter(filter_shape=f_shape, strides=strides, pad=pad), (x, dy)),
    ]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids)
def test_cudnn_convolutions_match_the_float64_oracle_and_repeat_their_bits(geometry: tuple) -> None:
    import cupy

    ops = _ops(geometry)
    for op, arrays in ops:
        cuda_cudnn.plan_log.clear()
        device = [cupy.asarray(a) for a in arrays]
        got = cuda.cuda_kernel(op, *device)
        assert cuda_cudnn.plan_log, f"{op.name}: cuDNN did not run {geometry}"  # type: ignore[attr-defined]
        want = _oracle(op, *arrays)
        assert got.shape == want.shape and got.dtype == np.float32
        scale = np.abs(want).max() + 1e-30
        err = np.abs(cupy.asnumpy(got) - want).max() / scale
        # fp32 sums of at most fH·fW·in or b·outH·outW products (no TF32: that errs by ~1e-3)
        assert err < 1e-5, f"{op.name} {geometry}: relative error {err:.2e}"  # type: ignore[attr-defined]
        again = cuda.cuda_kernel(op, *device)
        assert np.array_equal(cupy.asnumpy(again), cupy.asnumpy(got)), "the same bits on every call"


def test_cudnn_convolution_records_into_a_cuda_graph() -> None:
    import cupy

    (fwd, (x, w)), *_ = _ops(GEOMETRIES[1])
    x_d, w_d = cupy.asarray(x), cupy.asarray(w)
    pool = cupy.cuda.MemoryPool()  # as a captured Program has: the capture allocates from its cache
    stream = cupy.cuda.Stream(non_blocking=True)
    with cupy.cuda.using_allocator(pool.malloc), stream:
        eager = cuda.cuda_kernel(fwd, x_d, w_d)  # plans the geometry (timing cannot be captured)
        del eager
        eager = cuda.cuda_kernel(fwd, x_d, w_d)
        stream.begin_capture()
        captured = cuda.cuda_kernel(fwd, x_d, w_d)
        graph = stream.end_capture()
        captured.fill(0)
        graph.launch(stream)
    stream.synchronize()
    assert np.array_equal(cupy.asnumpy(captured), cupy.asnumpy(eager))
