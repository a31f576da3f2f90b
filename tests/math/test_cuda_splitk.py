"""The split-K kernel for small products (deeplearn/math/backends/cuda_splitk.py): against a
float64 NumPy product for every transposition and ragged sizes, the same bits every run, its
counters left at zero, and recorded in a CUDA graph like any kernel. Which products it takes
is tested on the CPU (``slices_for``)."""

from __future__ import annotations

import numpy as np
import pytest

from deeplearn.math.backends import cuda_available
from deeplearn.math.backends.cuda_splitk import slices_for

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="needs CuPy and an NVIDIA GPU")

SHAPES = [(128, 784, 512), (128, 512, 10), (512, 128, 10), (784, 128, 512), (65, 130, 67), (1, 64, 1), (3, 1000, 5),
          (200, 77, 100)]


def test_only_products_that_leave_the_gpu_idle_are_split() -> None:
    assert slices_for(128, 512, 784, 132) == 12  # 16 tiles: 12 slices of 66 (≥ 64 each)
    assert slices_for(8, 8, 4096, 132) == 64  # one tile, a long k: 264 blocks would be too thin
    assert slices_for(128, 512, 32, 132) == 0  # k too short to split
    assert slices_for(1024, 1024, 1024, 132) == 0  # 256 tiles fill the GPU: cuBLAS
    assert slices_for(784, 512, 128, 132) == 2


@needs_gpu
@pytest.mark.parametrize("b_transposed", [False, True])
@pytest.mark.parametrize("a_transposed", [False, True])
@pytest.mark.parametrize(("m", "k", "n"), SHAPES, ids=[f"{m}x{k}x{n}" for m, k, n in SHAPES])
def test_the_split_product_is_numpys(m: int, k: int, n: int, a_transposed: bool, b_transposed: bool) -> None:
    import cupy

    from deeplearn.math.backends import cuda_splitk

    rng = np.random.default_rng(m * k + n)
    a = rng.uniform(-1, 1, (k, m) if a_transposed else (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, k) if b_transposed else (k, n)).astype(np.float32)
    want = (a.T if a_transposed else a).astype(np.float64) @ (b.T if b_transposed else b).astype(np.float64)
    c = cuda_splitk.gemm(cupy.asarray(a), cupy.asarray(b), a_transposed, b_transposed)
    assert c is not None, "a small product must take the split kernel"
    scale = np.abs(a).max() * np.abs(b).max() * k
    np.testing.assert_allclose(c.get(), want, rtol=0, atol=4e-7 * scale)
    again = cuda_splitk.gemm(cupy.asarray(a), cupy.asarray(b), a_transposed, b_transposed)
    np.testing.assert_array_equal(again.get(), c.get())  # the same bits: no atomics on values
    assert not cuda_splitk._COUNTERS.get(cupy.cuda.get_current_stream().ptr).any()  # left at zero


@needs_gpu
def test_a_cuda_graph_records_the_split_product() -> None:
    """Captured and launched three times on new operands copied into the same buffers: each
    launch is the eager product of those operands."""
    import cupy

    from deeplearn.math.backends import cuda_splitk

    rng = np.random.default_rng(0)
    a = cupy.asarray(rng.uniform(-1, 1, (128, 784)).astype(np.float32))
    b = cupy.asarray(rng.uniform(-1, 1, (784, 512)).astype(np.float32))
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        cuda_splitk.gemm(a, b, False, False)  # compiled and its counters made before the capture
        stream.begin_capture()
        c = cuda_splitk.gemm(a, b, False, False)
        graph = stream.end_capture()
    for _ in range(3):
        a[...] = cupy.asarray(rng.uniform(-1, 1, a.shape).astype(np.float32))
        graph.launch(stream)
        stream.synchronize()
        np.testing.assert_array_equal(c.get(), cuda_splitk.gemm(a, b, False, False).get())
