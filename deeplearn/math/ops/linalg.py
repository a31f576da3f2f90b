"""The NDArrayMath family of linear algebra (mat_mul, matrix_times_vector, vector_times_matrix,
dot_product, outer_product, norm)."""

from __future__ import annotations

import enum

from deeplearn.math.ops.base import MathMixin

__all__ = ["LinalgMath", "MatrixOrientation"]


class MatrixOrientation(enum.IntEnum):
    """Whether mat_mul uses a matrix as is or transposed."""

    REGULAR = 0
    TRANSPOSED = 1


class LinalgMath(MathMixin):
    """The methods of NDArrayMath for linear algebra."""
