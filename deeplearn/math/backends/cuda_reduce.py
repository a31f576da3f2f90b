"""Sums over leading axes on the GPU, in two kernels that add in a fixed order.

A bias's gradient is the sum of dy over every axis but the last: for a convolution's [64, 28, 28,
32] dy, 50,176 rows of 32 columns. CuPy reduces over non-contiguous axes one output per thread
block, and took ~170 µs for that sum on an H200. Here the rows are cut into chunks: one block
per chunk (and tile of up to 32 columns) adds its rows, warps reading whole rows of the tile, and
writes one partial sum per column; a second kernel adds each column's partial sums in chunk order.
A sum with few enough rows that one block per tile can add them all (a small array's total, which
eager code asks for) is one launch: that block writes the result itself.
Every launch adds in the same order, so a sum gives the same bits every time (a captured training
step equals its eager run); the order differs from CuPy's, within float32 rounding.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

__all__ = ["applies", "small_sum_launcher", "sum_leading", "sum_small"]

_THREADS = 256
_MIN_ROWS = 64  # rows per chunk at least: below that a block's launch costs more than its adds
_ONE_BLOCK_ROWS = 16  # rows per thread at most, where one block per column tile adds every row
_MAX_CHUNKS = 256  # chunks per column at most: the second kernel adds them one after another
_MAX_TILES = 65535  # column tiles (the grid's y dimension)
_FLOAT32 = np.dtype(np.float32)

_SOURCE = r"""
// Stage 1: block (chunk c, column tile t) adds rows [c*chunk, min((c+1)*chunk, rows)) of the tile's
// columns. Thread (column jj, group g) adds every `groups`-th row of the chunk; the block then adds
// the groups' shares in group order.
extern "C" __global__ void __launch_bounds__(256) dl_sum_chunks(
        const float* __restrict__ x, float* __restrict__ partial,
        long long rows, long long cols, long long chunk, int tile) {
    __shared__ float share[256];
    const int groups = blockDim.x / tile;
    const int jj = threadIdx.x % tile, g = threadIdx.x / tile;
    const long long j = (long long)blockIdx.y * tile + jj;
    const long long first = (long long)blockIdx.x * chunk;
    const long long last = min(first + chunk, rows);
    float acc = 0.0f;
    if (j < cols && g < groups) {
        for (long long r = first + g; r < last; r += groups) acc += x[r * cols + j];
    }
    share[threadIdx.x] = acc;
    __syncthreads();
    if (g == 0 && j < cols) {
        float total = share[jj];
        for (int k = 1; k < groups; ++k) total += share[k * tile + jj];
        partial[(long long)blockIdx.x * cols + j] = total;
    }
}

// Stage 2: column j of the result is the sum of its chunks' partial sums, in chunk order.
extern "C" __global__ void dl_sum_partials(
        const float* __restrict__ partial, float* __restrict__ y, long long chunks, long long cols) {
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    float total = 0.0f;
    for (long long c = 0; c < chunks; ++c) total += partial[c * cols + j];
    y[j] = total;
}
"""


@functools.cache
def _kernels() -> tuple[Any, Any]:
    import cupy

    module = cupy.RawModule(code=_SOURCE, options=("--fmad=false",))
    return module.get_function("dl_sum_chunks"), module.get_function("dl_sum_partials")


def applies(x: Any, axes: int) -> bool:
    """Whether ``sum_leading`` can sum ``x`` over its first ``axes`` axes: float32, and few
    enough columns for the grid."""
    return x.dtype == np.float32 and 0 < axes and -(-math.prod(x.shape[axes:]) // 32) <= _MAX_TILES


def _rows_and_cols(shape: tuple[int, ...], axes: int) -> tuple[int, int]:
    # (math.prod: a NumPy reduction over a shape costs microseconds, a small sum's whole budget)
    return math.prod(shape[:axes]), math.prod(shape[axes:])


def _one_launch(
    shape: tuple[int, ...], axes: int
) -> tuple[tuple[int, int], tuple[int], tuple[Any, ...]] | None:
    """The grid, block and counts of the one launch that sums an array of ``shape`` over its
    first ``axes`` axes; None where it takes more (see ``sum_small``)."""
    rows, cols = _rows_and_cols(shape, axes)
    tile = cols if cols < 32 else 32
    if not rows or not tile or rows > _ONE_BLOCK_ROWS * (_THREADS // tile) or cols > 32 * _MAX_TILES:
        return None
    # One chunk of every row: the block's sums are the result (what sum_leading launches).
    counts = (np.int64(rows), np.int64(cols), np.int64(rows), np.int32(tile))
    return (1, -(-cols // tile)), (_THREADS // tile * tile,), counts


def sum_small(x: Any, axes: int) -> Any:
    """``sum_leading(x, axes)`` where it is one launch, with the fewest host steps (an eager
    ``sum`` of 1,024 floats): the same kernel and the same bits. None, having run nothing,
    where it is not one launch: not float32, not C-ordered, empty, or more rows than one block
    per column tile adds (each thread at most ``_ONE_BLOCK_ROWS`` of them).

    Example:
        >>> import cupy  # doctest: +SKIP
        >>> float(sum_small(cupy.ones(1024, cupy.float32), 1))  # doctest: +SKIP
        1024.0
    """
    if x.dtype != _FLOAT32 or not x.flags.c_contiguous:
        return None
    launch = _one_launch(x.shape, axes)
    if launch is None:
        return None
    import cupy

    y = cupy.empty(x.shape[axes:], np.float32)
    grid, block, counts = launch
    _kernels()[0](grid, block, (x, y, *counts))
    return y


def small_sum_launcher(shape: tuple[int, ...], axes: int, out_shape: tuple[int, ...], fallback: Any) -> Any:
    """``sum_small`` for C-ordered float32 arrays of ``shape``, as a function of the array whose
    launch is worked out here, once, and whose result has ``out_shape`` (the summed shape, with
    ones where the sum keeps its axes): for an eager ``sum`` whose shape and dtype an Engine has
    learnt (``cuda.MathBackendCUDA.direct_kernel``). An array that is not C-ordered goes to
    ``fallback``. None where the sum is not one launch.
    """
    launch = _one_launch(shape, axes)
    if launch is None:
        return None
    import cupy

    empty, float32, stage1 = cupy.empty, np.float32, _kernels()[0]
    grid, block, counts = launch

    def run(x: Any) -> Any:
        if not x._c_contiguous:  # (CuPy's own flag: see cuda_vector.launcher)
            return fallback(x)
        y = empty(out_shape, float32)
        stage1(grid, block, (x, y, *counts))
        return y

    return run


def sum_leading(x: Any, axes: int) -> Any:
    """The sum of the float32 CuPy array ``x`` over its first ``axes`` axes (shape
    ``x.shape[axes:]``), in the fixed order the module docstring gives (``applies`` first).
    For example, ``sum_leading(dy, 3)`` of a convolution's [64, 28, 28, 32] ``dy`` is its bias's
    [32] gradient.
    """
    import cupy

    out_shape = x.shape[axes:]
    rows, cols = _rows_and_cols(x.shape, axes)
    x = cupy.ascontiguousarray(x)
    if rows == 0 or cols == 0:
        return cupy.zeros(out_shape, np.float32)
    one_launch = sum_small(x, axes)  # few enough rows for one block per column tile
    if one_launch is not None:
        return one_launch
    # More rows than one block adds (over 128): at least three chunks, so two kernels.
    tile = min(cols, 32)
    chunks = min(-(-rows // _MIN_ROWS), _MAX_CHUNKS)
    chunk = -(-rows // chunks)
    chunks = -(-rows // chunk)
    y = cupy.empty(out_shape, np.float32)
    partial = cupy.empty((chunks, cols), np.float32)
    stage1, stage2 = _kernels()
    block = _THREADS // tile * tile  # whole groups of `tile` threads
    stage1(
        (chunks, -(-cols // tile)),
        (block,),
        (x, partial, np.int64(rows), np.int64(cols), np.int64(chunk), np.int32(tile)),
    )
    stage2((-(-cols // _THREADS),), (_THREADS,), (partial, y, np.int64(chunks), np.int64(cols)))
    return y
