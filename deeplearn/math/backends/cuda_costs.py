"""The softmax cross-entropy and its derivative on the GPU, one warp per row (the last axis).

The generic forms (``deeplearn/math/ops/costs.py``) are a dozen element-wise kernels and row
reductions each; here each is one kernel, float32 throughout, with the same formulas, the rows
summed in another order (so equal to within a few ulps). Each function returns None where its
kernel does not apply, and the CUDA backend then runs the generic forward.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from deeplearn.math.ops.costs import SOFTMAX_CE_EPSILON, SoftmaxCrossEntropyCost, SoftmaxCrossEntropyCostDer

__all__ = ["softmax_cross_entropy_cost", "softmax_cross_entropy_cost_der"]

_SOFTMAX_CE_SOURCE = r"""
__device__ __forceinline__ float dl_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float dl_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
extern "C" __global__ void dl_softmax_ce(const float* x, const float* t, float* y, long long rows, int cols,
                                         float eps) {
    long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (row >= rows) return;  // a whole warp: one row each
    const float* xr = x + row * cols;
    const float* tr = t + row * cols;
    float m = __int_as_float(0xff800000);  // -inf (NVRTC has no math.h)
    for (int j = lane; j < cols; j += 32) m = fmaxf(m, xr[j]);
    m = dl_warp_max(m);
    float s = 0.f;
    for (int j = lane; j < cols; j += 32) s += expf(xr[j] - m);
    s = dl_warp_sum(s);
    float acc = 0.f;
    for (int j = lane; j < cols; j += 32) acc += tr[j] * logf(expf(xr[j] - m) / s + eps);
    acc = dl_warp_sum(acc);
    if (lane == 0) y[row] = -acc;
}
extern "C" __global__ void dl_softmax_ce_der(const float* x, const float* t, const float* dy, float* dx, float* dt,
                                             long long rows, int cols, int dy_per_row, float eps) {
    long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float* xr = x + row * cols;
    const float* tr = t + row * cols;
    float m = __int_as_float(0xff800000);  // -inf (NVRTC has no math.h)
    for (int j = lane; j < cols; j += 32) m = fmaxf(m, xr[j]);
    m = dl_warp_max(m);
    if (!(m - m == 0.f)) m = 0.f;  // not finite: the softmax's shift (ops/reduction.py _shifted_exp)
    float s = 0.f;
    for (int j = lane; j < cols; j += 32) s += expf(xr[j] - m);
    s = dl_warp_sum(s);
    float su = 0.f;
    for (int j = lane; j < cols; j += 32) {
        float p = expf(xr[j] - m) / s;
        su += tr[j] / (p + eps) * p;
    }
    su = dl_warp_sum(su);
    float g = dy[dy_per_row ? row : 0];
    for (int j = lane; j < cols; j += 32) {
        float p = expf(xr[j] - m) / s;
        float q = p + eps;
        dx[row * cols + j] = (p * (su - tr[j] / q)) * g;
        dt[row * cols + j] = -logf(q) * g;
    }
}
"""


@functools.cache
def _softmax_ce_kernels() -> tuple[Any, Any]:
    import cupy

    module = cupy.RawModule(code=_SOFTMAX_CE_SOURCE)
    return module.get_function("dl_softmax_ce"), module.get_function("dl_softmax_ce_der")


def _rows_of(x: Any, t: Any) -> tuple[int, int] | None:
    """(rows, columns) of x and t along the last axis when the row kernels apply: float32,
    the same shape, C-ordered, not empty."""
    if not (x.dtype == t.dtype == np.float32 and x.shape == t.shape and x.ndim >= 1 and x.size):
        return None
    if not (x.flags.c_contiguous and t.flags.c_contiguous):
        return None
    cols = x.shape[-1]
    return x.size // cols, cols


def _warps(rows: int) -> tuple[tuple[int], tuple[int]]:
    return ((rows * 32 + 127) // 128,), (128,)


def softmax_cross_entropy_cost(op: SoftmaxCrossEntropyCost, x: Any, t: Any) -> Any | None:
    """The cost of each row in one kernel; None where it does not apply (then the generic
    forward runs)."""
    import cupy

    rows = _rows_of(x, t)
    per_row = op.example_rank == 1 or (x.ndim == 1 and op.example_rank is None)
    if rows is None or not per_row:
        return None
    n, cols = rows
    y = cupy.empty(x.shape[:-1], np.float32)
    grid, block = _warps(n)
    _softmax_ce_kernels()[0](
        grid, block, (x, t, y, np.int64(n), np.int32(cols), np.float32(SOFTMAX_CE_EPSILON))
    )
    return y


def softmax_cross_entropy_cost_der(
    op: SoftmaxCrossEntropyCostDer, x: Any, t: Any, dy: Any
) -> tuple[Any, Any] | None:
    """(dx, dt) in one kernel, a warp per row; None where it does not apply."""
    import cupy

    rows = _rows_of(x, t)
    per_row = rows is not None and dy.shape == (*x.shape[:-1], 1) and dy.flags.c_contiguous
    if rows is None or dy.dtype != np.float32 or not (dy.size == 1 or per_row):
        return None
    n, cols = rows
    dx, dt = cupy.empty(x.shape, np.float32), cupy.empty(x.shape, np.float32)
    grid, block = _warps(n)
    _softmax_ce_kernels()[1](
        grid,
        block,
        (
            x,
            t,
            dy,
            dx,
            dt,
            np.int64(n),
            np.int32(cols),
            np.int32(per_row and dy.size > 1),
            np.float32(SOFTMAX_CE_EPSILON),
        ),
    )
    return dx, dt
