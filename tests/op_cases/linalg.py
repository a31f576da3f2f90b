"""OpCases of mat_mul in its four orientations; the oracle transposes explicitly and
multiplies with NumPy's einsum (not the kernel's matmul path)."""

from __future__ import annotations

import numpy as np

from deeplearn.math.ops.linalg import MatMul, MatrixOrientation
from tests.op_cases import OpCase

R, T = MatrixOrientation.REGULAR, MatrixOrientation.TRANSPOSED


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ik,kj->ij", a, b)


CASES: list[OpCase] = [
    OpCase(MatMul(), ((2, 3), (3, 4)), _product),
    OpCase(MatMul(R, T), ((2, 3), (4, 3)), lambda a, b: _product(a, b.swapaxes(0, 1)), label="(R,T)"),
    OpCase(MatMul(T, R), ((3, 2), (3, 4)), lambda a, b: _product(a.swapaxes(0, 1), b), label="(T,R)"),
    OpCase(MatMul(T, T), ((3, 2), (4, 3)), lambda a, b: _product(a.swapaxes(0, 1), b.swapaxes(0, 1)),
           label="(T,T)"),
    OpCase(MatMul(), ((1, 5), (5, 1)), _product, label="(dot)"),
    OpCase(MatMul(), ((3, 2), (2, 3)), _product, dtypes=("int32", "int32"), low=-3, high=3, grad=False,
           why_no_grad="int32 inputs: there is nothing to differentiate", label="(int32)"),
]
