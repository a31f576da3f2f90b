"""Pooling on the GPU as one hand-written CUDA kernel per op (``deeplearn/math/ops/pool.py``).

The generic forwards fold the fH·fW tap views of the padded image with one whole-array CuPy op
per tap (plus the pad, ``where``s and crop): for max_pool_backprop of a [64, 28, 28, 32] image
with 2x2 windows, a dozen launches, ~90 µs of GPU and ~500 µs of host time on an H200. One
kernel here takes ~18 µs (max_pool: ~3 µs) and ~20-30 µs of host time. Each runs a grid-stride
loop over its output on the current stream (so it records into a CUDA graph) and computes what
the generic forward computes, bit for bit: the same operations on the same values in the same
order, compiled without fused multiply-adds or fast math. The backprops gather (a thread sums
the windows that hold its cell, in the generic code's tap order): no atomics, the same bits on
every run.

Each public function returns None where its kernel does not apply (not float32/float64, dtypes
that differ, not rank 3 or 4, empty, an image of 2^30 elements or more); the caller then runs the
generic forward. Kernels compile on first use, once per (kernel, dtype); CuPy is imported then.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from deeplearn.math.ops.conv import unbatched

if TYPE_CHECKING:
    from deeplearn.math.ops.pool import AvgPool, AvgPoolBackprop, MaxPool, MaxPoolBackprop, MinPool, PoolOp

__all__ = ["avg_pool", "avg_pool_backprop", "max_pool", "max_pool_backprop", "min_pool", "source"]

_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_OPTIONS = ("--fmad=false",)  # no a*b+c contraction; NVRTC's defaults keep IEEE div and denormals
_THREADS = 256
_MAX_BLOCKS = 1 << 16  # per image (the grid's x); past this, threads loop (grid-stride)
_MAX_IMAGES = 65535  # the grid's y; past this, blocks loop over images
_INT_LIMIT = 1 << 30  # one image's elements: per-image offsets in int, with room for a stride

_SOURCE = r"""
typedef CTYPE T;
typedef unsigned long long Magic;  // a divisor d as m | p << 32: see fast_div

// The constants CuPy's maximum/minimum use: its NaN is this float, converted to T.
#define DL_NAN ((T)__int_as_float(0x7fffffff))
#define DL_INF ((T)__int_as_float(0x7f800000))

// Conv2DInfo: B images H x W x C, fH x fW windows every sH, sW from the padded corner (-pt, -pl);
// cells outside [0, H) x [0, W) are padding. The host checks that an image's elements (in, out,
// padded) and the strides are < 2^30: offsets in an image are ints. dX: X as a Magic.
#define DL_GEOMETRY int B, int H, int W, int C, int OH, int OW, int fH, int fW, int sH, int sW, int pt, \
    int pl, Magic dC, Magic dW, Magic dOW, Magic dsH, Magic dsW
#define DL_ARGS B, H, W, C, OH, OW, fH, fW, sH, sW, pt, pl, dC, dW, dOW, dsH, dsW
// Grid-stride loops: images along the grid's y, elements of one image (n of them) along its x.
#define DL_FOR_IMAGE(b) for (int b = blockIdx.y; b < B; b += gridDim.y)
#define DL_FOR(k, n) for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < (n); k += blockDim.x * gridDim.x)
// f<A, FH, FW>(args, DL_ARGS) with the window as constants where it is 2x2 or 3x3 (the tap loops
// unroll and their loads issue together), else FH = FW = 0 (loops over fH x fW).
#define DL_WINDOW(f, A, ...)                                          \
    if (fH == 2 && fW == 2) f<A, 2, 2>(__VA_ARGS__, DL_ARGS);         \
    else if (fH == 3 && fW == 3) f<A, 3, 3>(__VA_ARGS__, DL_ARGS);    \
    else f<A, 0, 0>(__VA_ARGS__, DL_ARGS)

// n / d for 0 <= n < 2^31 as a multiply and a shift (integer division, some 15 instructions, was
// most of these kernels' work): m = ceil(2^p / d) with p = 31 + ceil(log2 d), from the host.
__device__ __forceinline__ int fast_div(int n, Magic d) {
    return (int)(((unsigned long long)(unsigned)n * (unsigned)d) >> (unsigned)(d >> 32));
}

// Whether row r, column s is inside the image (a negative one is a large unsigned).
__device__ __forceinline__ bool inside(int r, int s, int H, int W) {
    return (unsigned)r < (unsigned)H && (unsigned)s < (unsigned)W;
}

// What each forward folds, as the generic code does: y = tap 0, then y = combine(y, tap), padded
// cells reading pad(). max/min: xp.maximum/minimum on floats (NaN if either is NaN, else CUDA's
// max/min, as CuPy). avg: y + tap, then a true division by fH*fW (padded zeros are added too:
// -0.0 + 0.0 is +0.0).
template <bool MAX>
struct ExtremeFold {  // max_pool's (MAX) and min_pool's
    static __device__ T pad() { return MAX ? -DL_INF : DL_INF; }
    static __device__ T combine(T a, T b) {
        return (isnan(a) | isnan(b)) ? DL_NAN : (T)(MAX ? max(a, b) : min(a, b));
    }
    static __device__ T finish(T a, int) { return a; }
};
struct SumFold {
    static __device__ T pad() { return (T)0; }
    static __device__ T combine(T a, T b) { return a + b; }
    static __device__ T finish(T a, int area) { return a / (T)area; }
};

// One output y[b, oi, oj, c] per iteration: its window's taps in row-major order, padded ones too.
template <class Fold, int FH, int FW>
__device__ void pool_forward(const T* x, T* y, DL_GEOMETRY) {
    const int fh = FH ? FH : fH, fw = FW ? FW : fW;
    DL_FOR_IMAGE(b) {
        const T* xb = x + (long long)b * H * W * C;
        T* yb = y + (long long)b * OH * OW * C;
        DL_FOR(k, OH * OW * C) {
            int q = fast_div(k, dC), c = k - q * C, oi = fast_div(q, dOW), oj = q - oi * OW;
            int r0 = oi * sH - pt, s0 = oj * sW - pl;
            T acc = (T)0;
            for (int i = 0; i < fh; ++i) {
                for (int j = 0; j < fw; ++j) {
                    int r = r0 + i, s = s0 + j;
                    T v = inside(r, s, H, W) ? xb[(r * W + s) * C + c] : Fold::pad();
                    acc = (i == 0 && j == 0) ? v : Fold::combine(acc, v);
                }
            }
            yb[k] = Fold::finish(acc, fh * fw);
        }
    }
}

#define DL_FORWARD(name, Fold) \
    extern "C" __global__ void name(const T* x, T* y, DL_GEOMETRY) { DL_WINDOW(pool_forward, Fold, x, y); }
DL_FORWARD(dl_max_pool, ExtremeFold<true>)
DL_FORWARD(dl_min_pool, ExtremeFold<false>)
DL_FORWARD(dl_avg_pool, SumFold)

// Whether the cell of value v (xc: channel c of its image), at tap t of window (oi, oj), is that
// window's first maximum as the generic code finds it (from best = -inf, a tap wins if it is
// > best): exactly when v > -inf (so v is not NaN; the caller checks), no earlier tap is >= v and
// no later tap is > v (a NaN tap breaks neither rule, nor does a padded -inf one, so only taps
// inside the image are read). Comparisons only, so the same answer as the running maximum; no
// early exit, so the loads do not wait on each other (and, inlined, 2x2 and 3x3 scans unroll).
__device__ __forceinline__ bool first_max(const T* xc, T v, int t, int oi, int oj, int fh, int fw, DL_GEOMETRY) {
    int r0 = oi * sH - pt, s0 = oj * sW - pl;
    bool first = true;
    for (int i = 0; i < fh; ++i) {
        for (int j = 0; j < fw; ++j) {
            int r = r0 + i, s = s0 + j, u = i * fw + j;
            if (u != t && inside(r, s, H, W)) {
                T other = xc[(r * W + s) * C];
                first &= !(u < t ? other >= v : other > v);
            }
        }
    }
    return first;
}

// One dx[b, h, w, c] per iteration, gathered: 0, plus, for each tap (i, j) in row-major order
// whose window (oi, oj) holds the cell, that window's share; the generic code adds its tap views
// in that order, so the sum rounds the same. At padded row P = h + pt, tap i belongs to window
// oi = (P - i) / sH when that divides: i runs up from P % sH by sH while oi runs down from
// P / sH (>= 0, and < OH to be a window); columns likewise.
template <bool MAX, int FH, int FW>
__device__ void pool_backprop(const T* dy, const T* x, T* dx, DL_GEOMETRY) {
    const int fh = FH ? FH : fH, fw = FW ? FW : fW;
    const T area = (T)(fh * fw);
    DL_FOR_IMAGE(b) {
        const T* xb = x + (long long)b * H * W * C;
        const T* dyb = dy + (long long)b * OH * OW * C;
        T* dxb = dx + (long long)b * H * W * C;
        DL_FOR(k, H * W * C) {
            int q = fast_div(k, dC), c = k - q * C, h = fast_div(q, dW), w = q - h * W;
            int oi0 = fast_div(h + pt, dsH), i0 = h + pt - oi0 * sH;
            int oj0 = fast_div(w + pl, dsW), j0 = w + pl - oj0 * sW;
            T v = MAX ? xb[k] : (T)0;  // dx has x's shape: this cell's value
            bool live = v > -DL_INF;   // -inf or NaN wins no window
            T acc = (T)0;
            for (int i = i0, oi = oi0; i < fh && oi >= 0; i += sH, --oi) {
                if (oi >= OH) continue;
                for (int j = j0, oj = oj0; j < fw && oj >= 0; j += sW, --oj) {
                    if (oj >= OW) continue;
                    T d = dyb[(oi * OW + oj) * C + c];
                    if (MAX) {  // the window's dy if this cell is its first maximum, else 0 (added too);
                                // live last, so the window's loads need not wait for v
                        bool won = first_max(xb + c, v, i * fw + j, oi, oj, fh, fw, DL_ARGS) && live;
                        acc = acc + (won ? d : (T)0);
                    } else {  // d = dy / (fH*fW) as the generic code divides it, then added
                        acc = acc + d / area;
                    }
                }
            }
            dxb[k] = acc;
        }
    }
}

extern "C" __global__ void dl_max_pool_backprop(const T* dy, const T* x, T* dx, DL_GEOMETRY) {
    DL_WINDOW(pool_backprop, true, dy, x, dx);
}
extern "C" __global__ void dl_avg_pool_backprop(const T* dy, const T* x, T* dx, DL_GEOMETRY) {
    DL_WINDOW(pool_backprop, false, dy, x, dx);
}
"""


def source(ctype: str) -> str:
    """The CUDA C++ of all five kernels for elements of C type ``ctype`` ('float' or 'double')."""
    return _SOURCE.replace("CTYPE", ctype, 1)


@functools.cache
def _kernel(name: str, ctype: str) -> Any:
    """Kernel ``dl_<name>`` for ``ctype``, compiled on first launch (CuPy's RawKernel is lazy and
    loads it on each device it runs on)."""
    import cupy

    return cupy.RawKernel(source(ctype), f"dl_{name}", options=_OPTIONS)


@functools.lru_cache(maxsize=512)
def _geometry(
    op: PoolOp, shape: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[np.integer[Any], ...]] | None:
    """(the pooled shape, the kernels' geometry arguments) of ``op`` on an image of ``shape``; None
    where one image is too large for int offsets. Cached: ``pool_info`` costs more host time than
    the launch."""
    info = op.pool_info(shape)
    b, h, w, c = info.in_shape  # NHWC
    oh, ow = info.out_shape[1:3]
    fh, fw = info.filter_shape[:2]
    sh, sw = info.stride_height, info.stride_width
    p = info.pad_info
    if max(h * w * c, oh * ow * c, (h + p.top + p.bottom) * (w + p.left + p.right) * c, sh, sw) >= _INT_LIMIT:
        return None
    ints = (b, h, w, c, oh, ow, fh, fw, sh, sw, p.top, p.left)
    args: tuple[np.integer[Any], ...] = (*map(np.int32, ints), *map(_magic, (c, w, ow, sh, sw)))
    return unbatched(info.out_shape, len(shape)), args


def _magic(d: int) -> np.uint64:
    """``d`` (1 <= d < 2^30) as the kernels' ``fast_div`` reads it: m = ceil(2^p / d) < 2^32 with
    p = 31 + ceil(log2 d), and p << 32. Then (n·m) >> p is n // d for every 0 <= n < 2^31, since
    n·(m·d - 2^p) < 2^31·d <= 2^p."""
    p = 31 + (d - 1).bit_length()
    return np.uint64(p << 32 | -(-(1 << p) // d))


def _run(name: str, op: PoolOp, x: Any, dy: Any = None) -> Any | None:
    """Runs ``dl_<name>`` on ``x`` (and ``dy``, for a backprop) into a new array of the generic
    forward's shape and dtype; None where the kernel does not apply."""
    import cupy

    inputs = (x,) if dy is None else (dy, x)
    ctype = _CTYPES.get(x.dtype)
    if ctype is None or x.ndim not in (3, 4) or any(a.dtype != x.dtype or a.size == 0 for a in inputs):
        return None
    geometry = _geometry(op, x.shape)
    if geometry is None or (dy is not None and dy.shape != geometry[0]):
        return None  # the Engine checks dy's shape; called directly, the kernel must not read past dy
    out = cupy.empty(geometry[0] if dy is None else x.shape, dtype=x.dtype)
    images = int(geometry[1][0])
    per_image = out.size // images
    grid = (min((per_image + _THREADS - 1) // _THREADS, _MAX_BLOCKS), min(images, _MAX_IMAGES))
    args = (*(cupy.ascontiguousarray(a) for a in inputs), out, *geometry[1])
    _kernel(name, ctype)(grid, (_THREADS,), args)
    return out


def max_pool(op: MaxPool, x: Any) -> Any | None:
    """``op.forward(cupy, x)`` in one kernel: each window's maximum, its taps folded row-major with
    CuPy's maximum (NaN if the window holds a NaN; padded cells are -inf)."""
    return _run("max_pool", op, x)


def min_pool(op: MinPool, x: Any) -> Any | None:
    """``op.forward(cupy, x)`` in one kernel: as max_pool with minimum (padded cells +inf)."""
    return _run("min_pool", op, x)


def avg_pool(op: AvgPool, x: Any) -> Any | None:
    """``op.forward(cupy, x)`` in one kernel: ((tap0 + tap1) + ...) / (fH·fW), taps row-major,
    padded cells added as 0.0."""
    return _run("avg_pool", op, x)


def max_pool_backprop(op: MaxPoolBackprop, dy: Any, x: Any) -> Any | None:
    """``op.forward(cupy, dy, x)`` in one kernel: each window's dy goes to its first maximum
    (strict >, row-major; NaN never wins, a window with nothing above -inf drops its dy), and a
    cell sums its windows' shares in the generic code's tap order."""
    return _run("max_pool_backprop", op, x, dy)


def avg_pool_backprop(op: AvgPoolBackprop, dy: Any, x: Any) -> Any | None:
    """``op.forward(cupy, dy, x)`` in one kernel: a cell sums dy / (fH·fW) of each window that
    holds it, in the generic code's tap order (x only gives the shape; it must share dy's dtype)."""
    return _run("avg_pool_backprop", op, x, dy)
