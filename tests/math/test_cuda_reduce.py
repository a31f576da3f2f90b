"""Sums over leading axes on the GPU (``deeplearn/math/backends/cuda_reduce.py``): its CUDA C, and
that of the pooling and softmax cross-entropy kernels, compiles with nvcc anywhere; on a GPU, against a float64 oracle, the same bits every launch, and
the Sum op takes it for a bias's gradient."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deeplearn.math.backends import cuda, cuda_reduce
from deeplearn.math.ops.reduction import Sum

needs_gpu = pytest.mark.skipif(not cuda.is_available(), reason="needs CuPy and an NVIDIA GPU")


def _sources() -> dict[str, str]:
    from deeplearn.math.backends import cuda_costs, cuda_pool

    return {
        "sum": cuda_reduce._SOURCE,
        "softmax_ce": cuda_costs._SOFTMAX_CE_SOURCE,
        "pool_float": cuda_pool.source("float"),
        "pool_double": cuda_pool.source("double"),
    }


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this machine")
@pytest.mark.parametrize("name", ["sum", "softmax_ce", "pool_float", "pool_double"])
def test_hand_written_kernels_compile_with_nvcc(name: str, tmp_path: Path) -> None:
    source = tmp_path / f"{name}.cu"
    source.write_text(_sources()[name])
    result = subprocess.run(
        ["nvcc", "-c", "-arch=sm_90", "--fmad=false", str(source), "-o", str(tmp_path / f"{name}.o")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


@needs_gpu
@pytest.mark.parametrize(
    "shape, axes",
    [
        ((64, 28, 28, 32), 3),  # conv1's bias gradient in the cnn workload
        ((64, 14, 14, 64), 3),
        ((50, 3), 1),  # fewer rows than a chunk
        ((1_000_003,), 1),  # everything: one column
        ((7, 300, 70), 2),  # columns over several tiles, a ragged last tile
        ((3, 40_000, 33), 1),  # a column tile of 32 and one of 1
        ((0, 5), 1),  # no rows: zeros
        ((5, 0), 1),  # no columns: an empty result
        ((1024,), 1),  # small totals: one block adds every row, one launch
        ((64, 64), 2),
        ((100, 40), 1),  # one block per column tile
        ((129, 40), 1),  # one row too many for that: two chunks
    ],
)
def test_sum_leading_matches_a_float64_sum_and_repeats_its_bits(shape: tuple, axes: int) -> None:
    import cupy

    x = np.random.default_rng(len(shape) + shape[0]).standard_normal(shape).astype(np.float32)
    got = cuda_reduce.sum_leading(cupy.asarray(x), axes)
    want = x.astype(np.float64).sum(axis=tuple(range(axes)))
    assert got.shape == want.shape and got.dtype == np.float32
    rows = max(1, int(np.prod(shape[:axes])))
    # float32 partial sums: the error grows with the rows added (a bound, not an exact rule)
    np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=0, atol=1e-6 * rows + 1e-6)
    again = cuda_reduce.sum_leading(cupy.asarray(x), axes)
    assert np.array_equal(cupy.asnumpy(again), cupy.asnumpy(got))


@needs_gpu
def test_the_sum_op_takes_the_kernel_for_leading_axes_only() -> None:
    import cupy

    x = cupy.asarray(np.random.default_rng(3).standard_normal((64, 28, 28, 32)).astype(np.float32))
    leading = cuda.cuda_kernel(Sum(axis=(0, 1, 2), keep_dims=True), x)
    assert leading.shape == (1, 1, 1, 32)
    assert np.array_equal(cupy.asnumpy(leading).reshape(32), cupy.asnumpy(cuda_reduce.sum_leading(x, 3)))
    small = x[:1, :4].copy()  # 3,584 floats: a total in one launch (its host cost below CuPy's)
    assert np.array_equal(
        cupy.asnumpy(cuda_reduce.sum_small(small, 4)), cupy.asnumpy(cuda_reduce.sum_leading(small, 4))
    )
    assert cuda_reduce.sum_small(x, 3) is None  # 50,176 rows: more than one block per tile adds
    assert cuda_reduce.sum_small(x[:0], 4) is None and cuda_reduce.sum_small(x[:5, :0], 2) is None  # empty
    assert cuda_reduce.sum_small(x[:1, :4, :, ::2], 4) is None  # not C-ordered
    assert cuda_reduce.sum_small(small.astype(cupy.float64), 4) is None
    total = cuda.cuda_kernel(Sum(), small)
    assert total.shape == () and np.array_equal(
        cupy.asnumpy(total), cupy.asnumpy(cuda_reduce.sum_small(small, 4))
    )
    rows = cuda.cuda_kernel(Sum(axis=0, keep_dims=True), small.reshape(28 * 4, 32))  # one launch, by column
    assert rows.shape == (1, 32)
    np.testing.assert_allclose(
        cupy.asnumpy(rows)[0], cupy.asnumpy(small).reshape(-1, 32).sum(0), rtol=1e-5, atol=1e-5
    )
    assert cuda.cuda_kernel(Sum(), x[:0]).shape == ()  # empty: CuPy's sum, zero
    inner = cuda.cuda_kernel(Sum(axis=(1, 2)), x)  # not a prefix: CuPy's sum
    np.testing.assert_allclose(cupy.asnumpy(inner), cupy.asnumpy(x).sum(axis=(1, 2)), rtol=1e-4, atol=1e-3)


@needs_gpu
@pytest.mark.parametrize(
    "shape, axes, keep",
    [((1024,), 1, False), ((64, 64), 2, True), ((100, 40), 1, False), ((3, 5, 7), 1, True), ((), 0, False)],
)
def test_the_small_sum_launcher_gives_sum_smalls_bits(shape: tuple, axes: int, keep: bool) -> None:
    """An eager sum's launch, worked out once per shape, against ``sum_small`` (the kernel
    ``execute`` runs); its result already has the kept axes' ones."""
    import cupy

    x = cupy.asarray(np.random.default_rng(5).standard_normal(shape).astype(np.float32))
    out_shape = (1,) * axes + shape[axes:] if keep else shape[axes:]

    def refused(*arrays: object) -> object:
        raise AssertionError("a C-ordered float32 array takes the launch")

    launch = cuda_reduce.small_sum_launcher(shape, axes, out_shape, refused)
    got = launch(x)
    assert got.shape == out_shape and got.dtype == np.float32
    assert np.array_equal(
        cupy.asnumpy(got).reshape(-1), cupy.asnumpy(cuda_reduce.sum_small(x, axes)).reshape(-1)
    )


@needs_gpu
def test_the_small_sum_launcher_refuses_what_sum_small_refuses() -> None:
    import cupy

    import deeplearn as dl
    from deeplearn import Array2D

    x = cupy.asarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    handed: list[object] = []
    launch = cuda_reduce.small_sum_launcher((4, 3), 2, (), lambda a: handed.append(a) or "fallback")
    assert launch(x.T) == "fallback" and handed  # not C-ordered: the op's kernel
    assert cuda_reduce.small_sum_launcher((50_000, 3), 1, (3,), print) is None  # more than one launch
    assert cuda_reduce.small_sum_launcher((0, 3), 1, (3,), print) is None  # empty
    math = dl.NDArrayMathGPU()
    a = Array2D.new([3, 4], np.arange(12), math=math)
    with math.scope():
        assert math.sum(a).get() == 66 and math.sum(a, 0, True).numpy().tolist() == [[12, 15, 18, 21]]
        assert math.sum(a, 1).numpy().tolist() == [6, 22, 38]  # not leading axes: CuPy's sum
    direct = {fields: known for fields, _, known in math.engine.learnt(Sum)}
    assert direct[(None, False)].direct.__name__ == "run" and not direct[(None, False)].direct_op
    assert direct[((1,), False)].direct_op  # the op's kernel, with the op
