"""Small float32 matrix products as one split-K kernel of our own.

A training step's products are small: the mlp workload's are 128×784 by 784×512 and their
transposes. cuBLAS tiles the 128×512 result into a handful of 64×64 or 128×128 tiles, one thread
block each, so a handful of the GPU's 132 multiprocessors work and the rest idle: each of those
products took 5–11 µs on an H200 whatever algorithm cuBLASLt was asked for (autotuned too). This
kernel also splits the sum over k into ``slices``, one block per (tile, slice), so that a small
product fills the GPU; each block writes its partial tile, and the last block of a tile to
finish (a counter per tile says which) adds the partials in slice order and writes the tile.
So the result is the same every run (no atomics on values), and there is one launch per product,
which a CUDA graph records like any kernel.

Only where it helps: products whose result has fewer 64×64 tiles than the GPU has
multiprocessors, and whose k is long enough to split; larger ones go to cuBLAS (``cuda_gemm``).
The sum over k runs in another order than cuBLAS's, so results agree with it to within float32
rounding, not bit for bit; a given product always takes the same path, so a step gives the same
bits eagerly, replayed and captured.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np

__all__ = ["gemm", "slices_for"]

_TILE = 64  # the result tile of one block (64×64, 256 threads of 4×4 each)
_MIN_SLICE = 64  # the shortest stretch of k worth a block of its own
_SOURCE = r"""
template <bool TA, bool TB>
__global__ void __launch_bounds__(256) dl_sgemm_splitk(
        const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
        float* __restrict__ partial, unsigned int* __restrict__ counters,
        int M, int N, int K, int kslice) {
    // op(A) is M×K, op(B) is K×N, all C-ordered: A(m, k) = TA ? a[k*M + m] : a[m*K + k].
    __shared__ float As[16][65];  // [k][m], padded: the stores of a k-fastest load hit 16 banks
    __shared__ float Bs[16][65];  // [k][n]
    __shared__ unsigned int last;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int m0 = blockIdx.y * 64, n0 = blockIdx.x * 64;
    const int kbeg = blockIdx.z * kslice, kend = min(K, kbeg + kslice);
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
    for (int k0 = kbeg; k0 < kend; k0 += 16) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {  // each thread loads 4 of A's 64×16 and 4 of B's 16×64
            const int idx = tid + 256 * r;
            const int ka = TA ? idx >> 6 : idx & 15, ma = TA ? idx & 63 : idx >> 4;
            const int m = m0 + ma, k = k0 + ka;
            As[ka][ma] = (m < M && k < kend) ? (TA ? a[(long long)k * M + m] : a[(long long)m * K + k]) : 0.f;
            const int kb = TB ? idx & 15 : idx >> 6, nb = TB ? idx >> 4 : idx & 63;
            const int n = n0 + nb, kk = k0 + kb;
            Bs[kb][nb] = (n < N && kk < kend) ? (TB ? b[(long long)n * K + kk] : b[(long long)kk * N + n]) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < 16; ++kk) {
            float av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }
    const long long mn = (long long)M * N;
    if (gridDim.z == 1) {  // no split: the tile is the result
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
                if (m < M && n < N) c[(long long)m * N + n] = acc[i][j];
            }
        return;
    }
    float* mine = partial + blockIdx.z * mn;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < M && n < N) mine[(long long)m * N + n] = acc[i][j];
        }
    __threadfence();  // this block's partial is visible before its tile's counter moves
    __syncthreads();
    const unsigned int tile = blockIdx.y * gridDim.x + blockIdx.x;
    if (tid == 0) last = atomicAdd(&counters[tile], 1u) == gridDim.z - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < M && n < N) {
                const long long at = (long long)m * N + n;
                float sum = 0.f;
                for (unsigned int s = 0; s < gridDim.z; ++s) sum += __ldcg(partial + s * mn + at);  // slice order
                c[at] = sum;
            }
        }
    if (tid == 0) counters[tile] = 0;  // ready for the next launch (of this graph, or eagerly)
}
"""
_NAMES = [
    f"dl_sgemm_splitk<{str(ta).lower()}, {str(tb).lower()}>" for ta in (False, True) for tb in (False, True)
]


@functools.cache
def _kernels() -> dict[tuple[bool, bool], Any]:
    import cupy

    module = cupy.RawModule(code=_SOURCE, options=("-std=c++14",), name_expressions=_NAMES)
    return {
        (ta, tb): module.get_function(_NAMES[2 * ta + tb]) for ta in (False, True) for tb in (False, True)
    }


@functools.cache
def _multiprocessors() -> int:
    import cupy

    return int(cupy.cuda.Device().attributes["MultiProcessorCount"])


def slices_for(m: int, n: int, k: int, multiprocessors: int) -> int:
    """How many slices of k a product's kernel splits into (0: leave it to cuBLAS): enough
    blocks for two of them per multiprocessor, each slice at least ``_MIN_SLICE`` long.

    Example:
        >>> slices_for(128, 512, 784, 132), slices_for(128, 512, 512, 132), slices_for(4096, 4096, 4096, 132)
        (12, 8, 0)
    """
    tiles = -(-m // _TILE) * -(-n // _TILE)
    if tiles >= multiprocessors or k < _MIN_SLICE:
        return 0
    return max(1, min(-(-2 * multiprocessors // tiles), k // _MIN_SLICE))


class _Counters:
    """The tiles' counters, one zeroed buffer per stream (the kernel leaves them zero): kernels
    on one stream run one after the other, so they can share it; a graph captured on a stream
    keeps that stream's buffer (the address it recorded) for as long as this process runs."""

    _SIZE = 1024  # at least as many tiles as a GPU has multiprocessors

    def __init__(self) -> None:
        self._by_stream: dict[int, Any] = {}
        self._lock = threading.Lock()

    def get(self, stream: int) -> Any:
        counters = self._by_stream.get(stream)
        if counters is None:
            import cupy

            with self._lock:
                counters = self._by_stream.get(stream)
                if counters is None:
                    # (A captured step's first run, before its capture, makes its stream's.)
                    counters = self._by_stream[stream] = cupy.zeros(self._SIZE, np.uint32)
        return counters


_COUNTERS = _Counters()


def gemm(a: Any, b: Any, a_transposed: bool, b_transposed: bool) -> Any | None:
    """op(a)·op(b) for C-ordered float32 CuPy matrices by the split-K kernel, on the current
    stream; None where the product is not small enough for it to help (use cuBLAS)."""
    m = a.shape[1] if a_transposed else a.shape[0]
    k = a.shape[0] if a_transposed else a.shape[1]
    n = b.shape[0] if b_transposed else b.shape[1]
    sms = _multiprocessors()
    slices = slices_for(m, n, k, sms)
    if slices == 0 or -(-m // _TILE) * -(-n // _TILE) > _Counters._SIZE:
        return None
    import cupy

    kslice = -(-(-(-k // slices)) // 16) * 16  # ⌈k / slices⌉, rounded up to whole 16-deep steps
    slices = -(-k // kslice)
    c = cupy.empty((m, n), dtype=np.float32)
    stream = cupy.cuda.get_current_stream().ptr
    partial = cupy.empty((slices, m, n), dtype=np.float32) if slices > 1 else c
    grid = (-(-n // _TILE), -(-m // _TILE), slices)
    _kernels()[(a_transposed, b_transposed)](
        grid,
        (256,),
        (a, b, c, partial, _COUNTERS.get(stream), np.int32(m), np.int32(n), np.int32(k), np.int32(kslice)),
    )
    return c
