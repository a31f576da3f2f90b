"""Eager ops whose launch the CUDA backend works out once per shape (``direct_kernel``):
``mat_mul`` through ``cuda_gemm.launcher`` and ``transpose`` with its permutation, against what
``execute`` gives for the same op (the element-wise and sum launchers are tested beside their
kernels, in test_cuda_vector.py and test_cuda_reduce.py)."""

from __future__ import annotations

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array2D, Array3D, MatrixOrientation
from deeplearn.math.backends import cuda, cuda_gemm
from deeplearn.math.ops.layout import Transpose
from deeplearn.math.ops.linalg import MatMul

needs_gpu = pytest.mark.skipif(not cuda.is_available(), reason="needs CuPy and an NVIDIA GPU")
REGULAR, TRANSPOSED = MatrixOrientation.REGULAR, MatrixOrientation.TRANSPOSED


def _learnt(math: dl.NDArrayMath, op_class: type) -> list:
    return [known for _, _, known in math.engine.learnt(op_class)]


@needs_gpu
@pytest.mark.skipif(not cuda_gemm.available(), reason="needs nvmath-python")
@pytest.mark.parametrize(
    "orientations",
    [(REGULAR, REGULAR), (TRANSPOSED, REGULAR), (REGULAR, TRANSPOSED), (TRANSPOSED, TRANSPOSED)],
)
def test_mat_mul_launch_gives_executes_bits(orientations: tuple) -> None:
    math = dl.NDArrayMathGPU()
    rng = np.random.default_rng(11)
    a_shape = (40, 24) if orientations[0] is REGULAR else (24, 40)
    b_shape = (24, 56) if orientations[1] is REGULAR else (56, 24)
    a = Array2D.new(list(a_shape), rng.standard_normal(a_shape).astype(np.float32), math=math)
    b = Array2D.new(list(b_shape), rng.standard_normal(b_shape).astype(np.float32), math=math)
    with math.scope():
        for _ in range(2):  # the first call learns the launch, the second takes it
            got = math.mat_mul(a, b, *orientations).numpy()
        (known,) = _learnt(math, MatMul)
        assert known.direct.__name__ == "product" and not known.direct_op
        op = MatMul(a_orientation=orientations[0], b_orientation=orientations[1])
        want = math.backend.to_numpy(math.backend.execute(op, a.raw, b.raw))
    assert got.shape == (40, 56)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    oracle = (a.numpy().T if orientations[0] is TRANSPOSED else a.numpy()) @ (
        b.numpy().T if orientations[1] is TRANSPOSED else b.numpy()
    )
    np.testing.assert_allclose(got, oracle, rtol=1e-5, atol=1e-5)


@needs_gpu
@pytest.mark.skipif(not cuda_gemm.available(), reason="needs nvmath-python")
def test_mat_mul_launch_hands_operands_that_are_not_c_ordered_to_the_kernel() -> None:
    import cupy

    geometry = cuda_gemm.cuda_sgemm.Geometry(3, 5, 4, False, False)
    handed: list[tuple] = []
    product = cuda_gemm.launcher(geometry, lambda a, b: handed.append((a, b)) or "kernel")
    a = cupy.arange(12, dtype=cupy.float32).reshape(4, 3).T  # (3, 4), F-ordered
    b = cupy.ones((4, 5), cupy.float32)
    assert product(a, b) == "kernel" and len(handed) == 1
    c = product(cupy.ascontiguousarray(a), b)
    np.testing.assert_array_equal(cupy.asnumpy(c), cupy.asnumpy(a).sum(1, keepdims=True) * np.ones((1, 5)))


@needs_gpu
@pytest.mark.parametrize("perm", [None, (1, 0, 2), (2, 0, 1)])
def test_transpose_launch_gives_executes_values(perm: tuple | None) -> None:
    math = dl.NDArrayMathGPU()
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    a = Array3D.new([2, 3, 4], x, math=math)
    with math.scope():
        for _ in range(2):
            got = math.transpose(a, perm)
            assert got.raw.flags.c_contiguous and got.raw.base is None
        (known,) = _learnt(math, Transpose)
        assert known.direct is not None and not known.direct_op
        np.testing.assert_array_equal(got.numpy(), np.transpose(x, perm))
        got.set(-1.0, 0, 0, 0)  # its own memory: the input is left alone
    np.testing.assert_array_equal(a.numpy(), x)
