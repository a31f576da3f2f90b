"""The CUDA C of ``cuda_sgemm``'s matrix products: one template per kernel family, instantiated
by name (``Tiling.kernel``) for each tiling and operand layout, and the kernel that adds a split
product's parts. ``cuda_sgemm`` compiles it with CuPy's NVRTC; ``source()`` hands it to a
compiler check (tests/math/test_cuda_sgemm.py compiles every instance with nvcc).
"""

from __future__ import annotations

__all__ = ["SOURCE", "source"]

# One template, instantiated per tiling and operand layout. The loads are scalar (any leading
# dimension, any 4-byte alignment) and ordered so that neighbouring threads read neighbouring
# addresses; the shared tiles are k-major with 4 floats of padding, so a thread's tm (tn) values
# of one slice are one or two 16-byte reads, and the transposing stores hit fewer banks at once.
SOURCE = r"""
template <int BM, int BN, int BK, int TM, int TN, bool A_KMAJOR, bool B_NMAJOR>
__device__ __forceinline__ void deeplearn_sgemm_tile(const float* __restrict__ A, const float* __restrict__ B,
                                                     int M, int N, int K, int lda, int ldb, int chunk,
                                                     float (&acc)[TM][TN]) {
    constexpr int NT = (BM / TM) * (BN / TN), LA = BM * BK / NT, LB = BN * BK / NT, PAD = 4;
    __shared__ __align__(16) float As[2][BK][BM + PAD];
    __shared__ __align__(16) float Bs[2][BK][BN + PAD];
    const int tid = threadIdx.x, tx = tid % (BN / TN), ty = tid / (BN / TN);
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int kbeg = blockIdx.z * chunk, kend = min(K, kbeg + chunk);
    float ra[LA], rb[LB];
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
}

// Where element i of a thread's patch lies along its block's tile (rows for A's side, columns for
// B's): t·T + i for a patch of adjacent rows, t + i·(B/T) for one strided across the tile.
template <int B, int T, bool STRIDED>
__device__ __forceinline__ int deeplearn_patch(int t, int i) { return STRIDED ? t + i * (B / T) : t * T + i; }

// What a kernel does with each finished element of C (its flat index in the M × N result, its
// value): write it (deeplearn_write), or run an epilogue's element-wise code on it first
// (cuda_epilogue generates those).
struct deeplearn_write {
    float* out;
    __device__ __forceinline__ void operator()(long long i, float v) const { out[i] = v; }
};

// A block's tile of C (or of one layer's part of it) handed to ``put``: the patch each thread holds.
template <int BM, int BN, int TM, int TN, bool ROWS_STRIDED, bool COLS_STRIDED, class F>
__device__ __forceinline__ void deeplearn_store(const float (&acc)[TM][TN], const F& put, int M, int N) {
    const int tx = threadIdx.x % (BN / TN), ty = threadIdx.x / (BN / TN);
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + deeplearn_patch<BM, TM, ROWS_STRIDED>(ty, i);
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int n = n0 + deeplearn_patch<BN, TN, COLS_STRIDED>(tx, j);
            if (n < N) put((long long)m * N + n, acc[i][j]);
        }
    }
}

template <int BM, int BN, int BK, int TM, int TN, bool A_KMAJOR, bool B_NMAJOR>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
deeplearn_sgemm(const float* __restrict__ A, const float* __restrict__ B, float* C, float* parts,
                int M, int N, int K, int lda, int ldb, int chunk) {
    float acc[TM][TN];
    deeplearn_sgemm_tile<BM, BN, BK, TM, TN, A_KMAJOR, B_NMAJOR>(A, B, M, N, K, lda, ldb, chunk, acc);
    deeplearn_store<BM, BN, TM, TN, false, false>(
        acc, deeplearn_write{gridDim.z == 1 ? C : parts + blockIdx.z * (long long)M * N}, M, N);
}

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800  // cp.async: Ampere and later
// The pipelined kernel: the same tile, its slices copied global → shared by cp.async
// (16 bytes a copy, no registers on the way) STAGES - 1 slices ahead of the one multiplied, so
// the copies' latency hides behind several slices' arithmetic where the grid is one block per
// multiprocessor. Operands must be 16-byte aligned with leading dimensions that are multiples of
// 4 floats; a copy past an edge of the matrix (or of the block's chunk of k) reads only the bytes
// inside it and fills the rest with zeros. A shared slice keeps the operand's own order: an
// operand stored with k fastest (A not transposed, B transposed) is [rows][BK + 4], and a thread
// takes rows ty, ty + BM/TM, ... (so a quarter-warp's 16-byte reads fall in different banks);
// one stored with m (n) fastest is [BK][rows + 4], and a thread takes TM (TN) adjacent rows.
__device__ __forceinline__ void deeplearn_copy16(float* smem, const float* gmem, int bytes) {
    const unsigned at = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(at), "l"(gmem), "r"(bytes));
}

// One operand's slice of ROWS rows (of C's rows for A, its columns for B) by BK, as 16-byte
// pieces along the operand's contiguous dimension: rows r0.. of a matrix with rmax rows, k0..
// up to kend. A piece past an edge copies the bytes inside it and zeros the rest.
template <int ROWS, int BK, int NT, bool KCONTIG, int COLS>
__device__ __forceinline__ void deeplearn_copy_slice(float (*slice)[COLS], const float* src, int ld, int r0,
                                                     int rmax, int k0, int kend) {
    for (int c = threadIdx.x; c < ROWS * BK / 4; c += NT) {
        int r, k, room;
        if (KCONTIG) { r = c / (BK / 4); k = (c % (BK / 4)) * 4; room = r0 + r < rmax ? kend - (k0 + k) : 0; }
        else { k = c / (ROWS / 4); r = (c % (ROWS / 4)) * 4; room = k0 + k < kend ? rmax - (r0 + r) : 0; }
        const int bytes = max(0, min(4, room)) * 4;
        const float* from = bytes ? src + (KCONTIG ? (long long)(r0 + r) * ld + k0 + k
                                                   : (long long)(k0 + k) * ld + r0 + r) : src;
        deeplearn_copy16(KCONTIG ? &slice[r][k] : &slice[k][r], from, bytes);
    }
}

// A thread's R rows (of A; columns of B) at k = kk..kk+3 of a shared slice, v[i][q]: rows
// lane + i·STRIDE of a [rows][k] slice, or rows lane·R + i, four at a time, of a [k][rows] one.
template <int R, int STRIDE, bool KCONTIG, int COLS>
__device__ __forceinline__ void deeplearn_fragment(float (&v)[R][4], const float (*slice)[COLS], int lane, int kk) {
#pragma unroll
    for (int i = 0; i < R; ++i) {
        if (KCONTIG) {
            const float4 x = *reinterpret_cast<const float4*>(&slice[lane + i * STRIDE][kk]);
            v[i][0] = x.x; v[i][1] = x.y; v[i][2] = x.z; v[i][3] = x.w;
        } else if (i % 4 == 0) {
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const float4 x = *reinterpret_cast<const float4*>(&slice[kk + q][lane * R + i]);
                v[i][q] = x.x; v[i + 1][q] = x.y; v[i + 2][q] = x.z; v[i + 3][q] = x.w;
            }
        }
    }
}

template <int BM, int BN, int BK, int TM, int TN, int STAGES, bool A_KCONTIG, bool B_KCONTIG>
__device__ __forceinline__ void deeplearn_sgemm_async_tile(const float* __restrict__ A,
                                                           const float* __restrict__ B, int M, int N, int K,
                                                           int lda, int ldb, int chunk, float (&acc)[TM][TN]) {
    constexpr int NT = (BM / TM) * (BN / TN);
    constexpr int A_ROWS = A_KCONTIG ? BM : BK, A_COLS = A_KCONTIG ? BK + 4 : BM + 4;
    constexpr int B_ROWS = B_KCONTIG ? BN : BK, B_COLS = B_KCONTIG ? BK + 4 : BN + 4;
    __shared__ __align__(16) float As[STAGES][A_ROWS][A_COLS];
    __shared__ __align__(16) float Bs[STAGES][B_ROWS][B_COLS];
    const int tid = threadIdx.x, tx = tid % (BN / TN), ty = tid / (BN / TN);
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int kbeg = blockIdx.z * chunk, kend = min(K, kbeg + chunk);
    const int slices = (kend - kbeg + BK - 1) / BK;

    auto copy_slice = [&](int s, int k0) {
        deeplearn_copy_slice<BM, BK, NT, A_KCONTIG>(As[s], A, lda, m0, M, k0, kend);
        deeplearn_copy_slice<BN, BK, NT, B_KCONTIG>(Bs[s], B, ldb, n0, N, k0, kend);
    };

#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < slices) copy_slice(s, kbeg + s * BK);
        asm volatile("cp.async.commit_group;\n" ::);
    }
    for (int t = 0; t < slices; ++t) {
        asm volatile("cp.async.wait_group %0;\n" ::"n"(STAGES - 2));
        __syncthreads();  // slice t is in for every thread; all are done with slice t - 1
        const int ahead = t + STAGES - 1;  // into slice t - 1's buffer
        if (ahead < slices) copy_slice(ahead % STAGES, kbeg + ahead * BK);
        asm volatile("cp.async.commit_group;\n" ::);
        const int s = t % STAGES;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 4) {
            float a[TM][4], b[TN][4];
            deeplearn_fragment<TM, BM / TM, A_KCONTIG>(a, As[s], ty, kk);
            deeplearn_fragment<TN, BN / TN, B_KCONTIG>(b, Bs[s], tx, kk);
#pragma unroll
            for (int q = 0; q < 4; ++q)
#pragma unroll
                for (int i = 0; i < TM; ++i)
#pragma unroll
                    for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i][q], b[j][q], acc[i][j]);
        }
    }
    asm volatile("cp.async.wait_group 0;\n" ::);
}

template <int BM, int BN, int BK, int TM, int TN, int STAGES, bool A_KCONTIG, bool B_KCONTIG>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
deeplearn_sgemm_async(const float* __restrict__ A, const float* __restrict__ B, float* C, float* parts,
                      int M, int N, int K, int lda, int ldb, int chunk) {
    float acc[TM][TN];
    deeplearn_sgemm_async_tile<BM, BN, BK, TM, TN, STAGES, A_KCONTIG, B_KCONTIG>(A, B, M, N, K, lda, ldb, chunk,
                                                                                 acc);
    deeplearn_store<BM, BN, TM, TN, A_KCONTIG, B_KCONTIG>(
        acc, deeplearn_write{gridDim.z == 1 ? C : parts + blockIdx.z * (long long)M * N}, M, N);
}

#endif

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900  // thread block clusters: Hopper and later
// A split product whose S layers are the S blocks of a thread block cluster: each block leaves
// its part of the tile in its shared memory, and after a barrier of the whole cluster block z
// adds the z-th share of the tile's elements, reading the S parts from the S blocks' shared
// memory (distributed shared memory) in layer order, as deeplearn_sgemm_sum adds them: the same
// bits, with no parts in global memory and no second kernel. A last barrier keeps every block
// (and its shared memory) alive until the others have read it.
__device__ __forceinline__ void deeplearn_cluster_sync() {
    asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}

// The float at shared address ``at`` of this block, in the shared memory of the cluster's block ``rank``.
__device__ __forceinline__ float deeplearn_cluster_load(unsigned at, unsigned rank) {
    unsigned remote;
    float v;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(at), "r"(rank));
    asm volatile("ld.shared::cluster.f32 %0, [%1];\n" : "=f"(v) : "r"(remote) : "memory");
    return v;
}

template <int BM, int BN, int TM, int TN, int S, bool ROWS_STRIDED, bool COLS_STRIDED, class F>
__device__ __forceinline__ void deeplearn_cluster_sum(const float (&acc)[TM][TN], const F& put, int M, int N) {
    constexpr int NT = (BM / TM) * (BN / TN), SHARE = (BM * BN + S - 1) / S;
    __shared__ float part[BM * BN];
    const int tx = threadIdx.x % (BN / TN), ty = threadIdx.x / (BN / TN);
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j)
            part[deeplearn_patch<BM, TM, ROWS_STRIDED>(ty, i) * BN + deeplearn_patch<BN, TN, COLS_STRIDED>(tx, j)] =
                acc[i][j];
    deeplearn_cluster_sync();
    const unsigned at = static_cast<unsigned>(__cvta_generic_to_shared(part));
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    // A cluster of (1, 1, S) blocks over a grid S deep: block z of a tile is the cluster's rank z,
    // so reading ranks 0, 1, ... adds the layers (k's chunks) in order.
    const int first = blockIdx.z * SHARE, last = min(BM * BN, first + SHARE);
    for (int e = first + threadIdx.x; e < last; e += NT) {
        const int m = m0 + e / BN, n = n0 + e % BN;
        if (m < M && n < N) {
            float total = deeplearn_cluster_load(at + 4 * e, 0);
            for (int z = 1; z < S; ++z) total += deeplearn_cluster_load(at + 4 * e, z);
            put((long long)m * N + n, total);
        }
    }
    deeplearn_cluster_sync();
}

template <int BM, int BN, int BK, int TM, int TN, bool A_KMAJOR, bool B_NMAJOR, int S>
__global__ void __cluster_dims__(1, 1, S) __launch_bounds__((BM / TM) * (BN / TN))
deeplearn_sgemm_cluster(const float* __restrict__ A, const float* __restrict__ B, float* C, float* parts,
                        int M, int N, int K, int lda, int ldb, int chunk) {
    float acc[TM][TN];
    deeplearn_sgemm_tile<BM, BN, BK, TM, TN, A_KMAJOR, B_NMAJOR>(A, B, M, N, K, lda, ldb, chunk, acc);
    deeplearn_cluster_sum<BM, BN, TM, TN, S, false, false>(acc, deeplearn_write{C}, M, N);
}

template <int BM, int BN, int BK, int TM, int TN, int STAGES, bool A_KCONTIG, bool B_KCONTIG, int S>
__global__ void __cluster_dims__(1, 1, S) __launch_bounds__((BM / TM) * (BN / TN))
deeplearn_sgemm_async_cluster(const float* __restrict__ A, const float* __restrict__ B, float* C, float* parts,
                              int M, int N, int K, int lda, int ldb, int chunk) {
    float acc[TM][TN];
    deeplearn_sgemm_async_tile<BM, BN, BK, TM, TN, STAGES, A_KCONTIG, B_KCONTIG>(A, B, M, N, K, lda, ldb, chunk,
                                                                                 acc);
    deeplearn_cluster_sum<BM, BN, TM, TN, S, A_KCONTIG, B_KCONTIG>(acc, deeplearn_write{C}, M, N);
}

#endif

// C = the sum of the S partial products, added in the order of their layers.
template <class F>
__device__ __forceinline__ void deeplearn_add_parts(const float* __restrict__ parts, long long size, int S,
                                                    const F& put) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= size) return;
    float total = parts[i];
    for (int z = 1; z < S; ++z) total += parts[z * size + i];
    put(i, total);
}

extern "C" __global__ void deeplearn_sgemm_sum(const float* __restrict__ parts, float* __restrict__ C,
                                               long long size, int S) {
    deeplearn_add_parts(parts, size, S, deeplearn_write{C});
}
"""


def source() -> str:
    """The CUDA C of the kernels (for a compiler check; ``cuda_sgemm`` compiles it).

    Example:
        >>> "deeplearn_sgemm_async" in source()
        True
    """
    return SOURCE
