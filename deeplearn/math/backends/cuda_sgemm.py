"""Small float32 matrix products by kernels of our own, kept per geometry where they beat cuBLAS.

A training step's products are small: mlp's are 128 rows by 512 or 784 columns. The tile grid
cuBLAS's ``sgemm`` picks for them fills a few of an H100's 132 multiprocessors, so it splits the
inner dimension and adds the parts in a second kernel, or leaves most of the chip idle; cuBLASLt's
other algorithms did no better at these shapes (bench/NOTES.md, commit 85fffc2). The kernel here
is a plain tiled SIMT product (no TF32: every multiply-add is a float32 ``fmaf``):

* a thread block computes a ``bm × bn`` tile of C, each thread a ``tm × tn`` patch of it, from
  ``bk``-deep slices of A and B staged through shared memory, two slices at a time (the next
  slice is read into registers while the current one is multiplied);
* with ``splits`` > 1 the inner dimension is cut into that many chunks, one per grid layer; each
  layer writes its partial product and a second kernel adds the layers in order (z = 0, 1, ...),
  so a plan gives the same bits on every call.

The first product of each geometry (m, n, k and which operands are transposed) times, on its
own operands, cuBLAS's ``sgemm`` and every candidate plan (``candidates``: a handful of tilings,
each split 1 to 16 ways, kept to grids of a sensible size) with ``cuda_timing.best_ms``, which
times the GPU's work alone, as inside a captured graph. A candidate counts only if its product
agrees with ``sgemm``'s (to 1e-5 of the largest value); ``sgemm`` comes first and keeps the
geometry unless a plan is more than ``NEAR`` faster, since a plan changes the order of the
additions and so the bits. Products outside ``[_MIN_WORK, _MAX_WORK]`` multiply-adds are never
timed: below, a launch costs more than the arithmetic; above, cuBLAS's large tiles fill the chip.

A choice lasts for the process (a captured CUDA graph may hold its kernel). ``plan_log`` names
each geometry's; ``benchmark = False`` turns the timing off (every product then runs ``sgemm``).
A geometry first seen while a stream is being captured cannot be timed, and keeps ``sgemm``.

Example (on a GPU):
    >>> a = cupy.ones((128, 784), cupy.float32); b = cupy.ones((784, 512), cupy.float32)  # doctest: +SKIP
    >>> cuda_gemm.gemm(a, b, False, False)  # the first call plans (128, 512, 784, False, False)  # doctest: +SKIP
    >>> cuda_sgemm.plan_log  # doctest: +SKIP
    {Geometry(m=128, n=512, k=784, a_transposed=False, b_transposed=False): 'tiles 64x32x16/4x2, split 4'}

This module imports CuPy lazily, like ``deeplearn/math/backends/cuda.py``.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from deeplearn.math.backends import cuda_timing

__all__ = ["NEAR", "Geometry", "Plan", "Tiling", "benchmark", "candidates", "plan_for", "plan_log", "run"]

_log = logging.getLogger(__name__)

benchmark = True
"""Time our plans against ``sgemm`` at each eligible geometry's first product (else ``sgemm``)."""

NEAR = 1.03
"""``sgemm`` keeps a geometry unless a plan of ours is faster than it by more than this ratio."""

_MIN_WORK = 1 << 18  # multiply-adds: below this a product is all launch, and sgemm is as good
_MAX_WORK = 1 << 28  # above, cuBLAS's own tiles fill the chip (mlpbig's 4096³ is 2³⁶)
_MAX_BLOCKS = 1024  # a grid larger than ~8 waves of 132 multiprocessors gains nothing more
TILE_COUNTERS = _MAX_BLOCKS  # int32 counters a serial plan needs at most (one per tile)
_MIN_BLOCKS = 8
_AGREEMENT = 1e-5  # of the largest |value|: another order of the additions, not another product
_WORK_PER_TIMING = 1 << 27  # multiply-adds per timed batch of launches, at least
_SUM_THREADS = 256


class Geometry(NamedTuple):
    """A product C[m, n] = op(A)·op(B) with inner dimension k, A or B transposed or not."""

    m: int
    n: int
    k: int
    a_transposed: bool
    b_transposed: bool


class Tiling(NamedTuple):
    """A block's ``bm × bn`` tile of C, ``bk`` deep per slice; each thread's ``tm × tn`` patch."""

    bm: int
    bn: int
    bk: int
    tm: int
    tn: int

    @property
    def threads(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)

    def kernel(self, a_transposed: bool, b_transposed: bool, serial: bool = False) -> str:
        """The name of this tiling's kernel instance for operands stored so (``serial``: its
        last block of a tile adds the parts of a split product)."""
        # A transposed is stored (k, m): m runs fastest. B not transposed is stored (k, n).
        flags = ", ".join(str(f).lower() for f in (a_transposed, not b_transposed, serial))
        return f"deeplearn_sgemm<{self.bm}, {self.bn}, {self.bk}, {self.tm}, {self.tn}, {flags}>"


# The tilings the H100 probe of mlp's eight products found best, one shape or another (bench/NOTES.md).
TILINGS = (
    Tiling(64, 32, 16, 4, 2),
    Tiling(32, 32, 16, 2, 2),
    Tiling(64, 64, 16, 4, 4),
    Tiling(32, 64, 32, 4, 2),
    Tiling(16, 64, 16, 2, 4),
    Tiling(128, 32, 8, 4, 4),
)
SPLITS = (1, 2, 4, 8, 16)


class Plan(NamedTuple):
    """One geometry's product of ours: a tiling, and the inner dimension cut into ``splits``
    chunks of ``chunk`` (a multiple of the tiling's ``bk``; the last chunk may be shorter),
    whose parts the last block of each tile adds (``serial``) or a second kernel."""

    tiling: Tiling
    splits: int
    chunk: int
    serial: bool = False

    @property
    def name(self) -> str:
        t = self.tiling
        how = ", serial" if self.serial else ""
        return f"tiles {t.bm}x{t.bn}x{t.bk}/{t.tm}x{t.tn}, split {self.splits}{how}"

    def grid(self, g: Geometry) -> tuple[int, int, int]:
        return (-(-g.n // self.tiling.bn), -(-g.m // self.tiling.bm), self.splits)


def candidates(g: Geometry) -> list[Plan]:
    """The plans worth timing for ``g``: each tiling, split so that every chunk holds work (no
    empty grid layer) and the grid has between ``_MIN_BLOCKS`` and ``_MAX_BLOCKS`` blocks.

    Example:
        >>> [p.name for p in candidates(Geometry(128, 512, 784, False, False))][:2]
        ['tiles 64x32x16/4x2, split 1', 'tiles 64x32x16/4x2, split 2']
    """
    plans = []
    for tiling in TILINGS:
        for splits in SPLITS:
            chunk = -(-(-(-g.k // splits)) // tiling.bk) * tiling.bk  # ⌈⌈k/splits⌉ / bk⌉·bk
            if -(-g.k // chunk) != splits:
                continue  # fewer chunks than asked: the same as a smaller split
            plan = Plan(tiling, splits, chunk)
            gx, gy, gz = plan.grid(g)
            if _MIN_BLOCKS <= gx * gy * gz <= _MAX_BLOCKS:
                plans.append(plan)
                if splits > 1:
                    plans.append(plan._replace(serial=True))
    return plans


def eligible(g: Geometry) -> bool:
    """Whether ``g``'s first product times our plans (its size is in the range they can win)."""
    return _MIN_WORK <= g.m * g.n * g.k <= _MAX_WORK


# One template, instantiated per tiling and operand layout. The loads are scalar (any leading
# dimension, any 4-byte alignment) and ordered so that neighbouring threads read neighbouring
# addresses; the shared tiles are k-major with 4 floats of padding, so a thread's tm (tn) values
# of one slice are one or two 16-byte reads, and the transposing stores hit fewer banks at once.
_SOURCE = r"""
template <int BM, int BN, int BK, int TM, int TN, bool A_KMAJOR, bool B_NMAJOR, bool SERIAL>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
deeplearn_sgemm(const float* __restrict__ A, const float* __restrict__ B, float* C,
                float* parts, int* __restrict__ arrived,
                int M, int N, int K, int lda, int ldb, int chunk) {
    constexpr int NT = (BM / TM) * (BN / TN), LA = BM * BK / NT, LB = BN * BK / NT, PAD = 4;
    __shared__ __align__(16) float As[2][BK][BM + PAD];
    __shared__ __align__(16) float Bs[2][BK][BN + PAD];
    const int tid = threadIdx.x, tx = tid % (BN / TN), ty = tid / (BN / TN);
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int kbeg = blockIdx.z * chunk, kend = min(K, kbeg + chunk);
    float ra[LA], rb[LB], acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

    auto load = [&](int k0) {
#pragma unroll
        for (int r = 0; r < LA; ++r) {
            const int e = tid + r * NT;
            const int m = m0 + (A_KMAJOR ? e % BM : e / BK), k = k0 + (A_KMAJOR ? e / BM : e % BK);
            ra[r] = (m < M && k < kend) ? A[A_KMAJOR ? (long long)k * lda + m : (long long)m * lda + k] : 0.f;
        }
#pragma unroll
        for (int r = 0; r < LB; ++r) {
            const int e = tid + r * NT;
            const int n = n0 + (B_NMAJOR ? e % BN : e / BK), k = k0 + (B_NMAJOR ? e / BN : e % BK);
            rb[r] = (n < N && k < kend) ? B[B_NMAJOR ? (long long)k * ldb + n : (long long)n * ldb + k] : 0.f;
        }
    };
    auto store = [&](int s) {
#pragma unroll
        for (int r = 0; r < LA; ++r) {
            const int e = tid + r * NT;
            As[s][A_KMAJOR ? e / BM : e % BK][A_KMAJOR ? e % BM : e / BK] = ra[r];
        }
#pragma unroll
        for (int r = 0; r < LB; ++r) {
            const int e = tid + r * NT;
            Bs[s][B_NMAJOR ? e / BN : e % BK][B_NMAJOR ? e % BN : e / BK] = rb[r];
        }
    };
    auto row = [](const float* src, float* dst, int count) {  // count floats, 16-byte aligned
        if (count % 4 == 0) {
#pragma unroll
            for (int q = 0; q < count / 4; ++q) {
                const float4 v = reinterpret_cast<const float4*>(src)[q];
                dst[4 * q] = v.x; dst[4 * q + 1] = v.y; dst[4 * q + 2] = v.z; dst[4 * q + 3] = v.w;
            }
        } else {
#pragma unroll
            for (int q = 0; q < count; ++q) dst[q] = src[q];
        }
    };

    load(kbeg);
    store(0);
    __syncthreads();
    int s = 0;
    for (int k0 = kbeg; k0 < kend; k0 += BK) {
        const bool more = k0 + BK < kend;
        if (more) load(k0 + BK);  // in flight while this slice is multiplied
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float a[TM], b[TN];
            row(&As[s][kk][ty * TM], a, TM);
            row(&Bs[s][kk][tx * TN], b, TN);
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) store(s ^ 1);  // the other buffer: its last readers passed the barrier below
        __syncthreads();
        s ^= 1;
    }
    const long long size = (long long)M * N;
    float* out = gridDim.z == 1 ? C : parts + blockIdx.z * size;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + ty * TM + i;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int n = n0 + tx * TN + j;
            if (n < N) out[(long long)m * N + n] = acc[i][j];
        }
    }
    if (!SERIAL || gridDim.z == 1) return;
    // The last block of this tile to arrive adds the layers' parts, in their order, into C:
    // one kernel where the other split plans launch a second. Each block's parts are visible
    // to the last one once it has seen the count they raised (fence, then count).
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    const int tile = blockIdx.y * gridDim.x + blockIdx.x;
    if (tid == 0) last = atomicAdd(&arrived[tile], 1) == (int)gridDim.z - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + ty * TM + i;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int n = n0 + tx * TN + j;
            if (n >= N) continue;
            const long long at = (long long)m * N + n;
            float total = __ldcg(parts + at);  // L2, not a stale L1 line
            for (int z = 1; z < (int)gridDim.z; ++z) total += __ldcg(parts + z * size + at);
            C[at] = total;
        }
    }
    if (tid == 0) arrived[tile] = 0;  // ready for the next product on this stream
}

// C = the sum of the S partial products, added in the order of their layers.
extern "C" __global__ void deeplearn_sgemm_sum(const float* __restrict__ parts, float* __restrict__ C,
                                               long long size, int S) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= size) return;
    float total = parts[i];
    for (int z = 1; z < S; ++z) total += parts[z * size + i];
    C[i] = total;
}
"""


def source() -> str:
    """The CUDA C of the kernels (for a compiler check; ``_module`` compiles it)."""
    return _SOURCE


@functools.cache
def _module(a_transposed: bool, b_transposed: bool) -> Any:
    """The kernels of every tiling for one operand layout, compiled by NVRTC at first use
    (CuPy keeps the binary on disk, so a later process loads it)."""
    import cupy

    names = [t.kernel(a_transposed, b_transposed, serial) for t in TILINGS for serial in (False, True)]
    return cupy.RawModule(code=_SOURCE, options=("-std=c++17",), name_expressions=names)


def run(plan: Plan, g: Geometry, a: Any, b: Any, c: Any, arrived: Any) -> None:
    """c = op(a)·op(b) by ``plan`` on the current stream (C-ordered float32 CuPy matrices).
    ``arrived``: ``TILE_COUNTERS`` int32 zeros that only this stream's products use (a serial
    plan counts its blocks there, and leaves them zero)."""
    import cupy

    module = _module(g.a_transposed, g.b_transposed)
    kernel = module.get_function(plan.tiling.kernel(g.a_transposed, g.b_transposed, plan.serial))
    parts = c if plan.splits == 1 else cupy.empty((plan.splits, g.m, g.n), np.float32)
    i32 = np.int32
    args = (
        a,
        b,
        c,
        parts,
        arrived,
        i32(g.m),
        i32(g.n),
        i32(g.k),
        i32(a.shape[1]),
        i32(b.shape[1]),
        i32(plan.chunk),
    )
    kernel(plan.grid(g), (plan.tiling.threads,), args)
    if plan.splits > 1 and not plan.serial:
        size = g.m * g.n
        module.get_function("deeplearn_sgemm_sum")(
            (-(-size // _SUM_THREADS),), (_SUM_THREADS,), (parts, c, np.int64(size), i32(plan.splits))
        )


_PLANS: dict[Geometry, Plan | None] = {}
plan_log: dict[Geometry, str] = {}
"""Per eligible geometry seen, the product kept: ``"sgemm"`` or our plan's name."""

_LOCK = threading.Lock()


def plan_for(g: Geometry, a: Any, b: Any, sgemm: Callable[[Any], None], arrived: Any) -> Plan | None:
    """The plan kept for ``g`` (None: ``sgemm`` runs it), chosen at its first call on the
    operands ``a`` and ``b`` (see the module docstring); ``sgemm(out)`` writes cuBLAS's product
    into ``out``; ``arrived`` as ``run`` takes it. Never raises for want of a compiler or
    memory: then ``sgemm`` is kept."""
    try:
        return _PLANS[g]
    except KeyError:
        if not (benchmark and eligible(g)):
            return None
    import cupy

    with _LOCK:
        if g in _PLANS:
            return _PLANS[g]
        stream = cupy.cuda.get_current_stream()
        plan = None
        if stream.is_capturing():
            _log.info("matrix product %s first seen while a stream is captured: it keeps sgemm", g)
        else:
            try:
                plan = _choose(g, a, b, sgemm, arrived, stream)
            except Exception as e:  # noqa: BLE001 - no compiler, out of memory: sgemm as before
                _log.info(
                    "could not time our products for %s (%s: %s); it runs sgemm", g, type(e).__name__, e
                )
        _PLANS[g] = plan
        plan_log[g] = "sgemm" if plan is None else plan.name
        _log.debug("matrix product %s: %s", g, plan_log[g])
        return plan


def _choose(
    g: Geometry, a: Any, b: Any, sgemm: Callable[[Any], None], arrived: Any, stream: Any
) -> Plan | None:
    import cupy

    plans = candidates(g)
    # Scratch outputs from CuPy's default pool, not from a captured Program's own pool.
    with cupy.cuda.using_allocator(cupy.get_default_memory_pool().malloc):
        want = cupy.empty((g.m, g.n), np.float32)
        out = cupy.empty_like(want)
        sgemm(want)
        tolerance = _AGREEMENT * float(cupy.abs(want).max()) + 1e-30
        launches = max(2, min(64, _WORK_PER_TIMING // (g.m * g.n * g.k)))
        timed = [(-1, cuda_timing.best_ms(lambda: sgemm(out), stream, launches))]
        for index, plan in enumerate(plans):
            out.fill(np.nan)  # a cell the plan does not write fails the agreement below
            run(plan, g, a, b, out, arrived)
            if not float(cupy.abs(out - want).max()) <= tolerance:
                _log.warning("our product %s disagrees with sgemm on %s: not kept", plan.name, g)
                continue
            timed.append(
                (
                    index,
                    cuda_timing.best_ms(
                        functools.partial(run, plan, g, a, b, out, arrived), stream, launches
                    ),
                )
            )
    chosen = cuda_timing.pick(timed, NEAR)
    _log.debug(
        "matrix product %s timed (candidate, ms per %d launches): %s; kept %d", g, launches, timed, chosen
    )
    return None if chosen < 0 else plans[chosen]
