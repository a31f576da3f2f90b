"""The NDArrayMath family of linear algebra: the MatMul op (with orientations) and the
composites built on it (matrix_times_vector, vector_times_matrix, dot_product, outer_product).

``norm`` lives with the reductions. NaN propagates through every product (IEEE arithmetic).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from deeplearn.math.ops.arithmetic import result_dtype
from deeplearn.math.ops.base import MathMixin, Op, Spec, check_arrays
from deeplearn.types import RawArray, Shape, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["LinalgMath", "MatrixOrientation", "MatMul"]


class MatrixOrientation(enum.IntEnum):
    """Whether mat_mul uses a matrix as is or transposed."""

    REGULAR = 0
    TRANSPOSED = 1


REGULAR = MatrixOrientation.REGULAR
TRANSPOSED = MatrixOrientation.TRANSPOSED


def _rows_cols(shape: Shape, orientation: MatrixOrientation) -> tuple[int, int]:
    rows, cols = shape
    return (cols, rows) if orientation == TRANSPOSED else (rows, cols)


@dataclass(frozen=True)
class MatMul(Op):
    """C = op(A)·op(B), where op is the identity (REGULAR) or the transpose (TRANSPOSED)."""

    name = "mat_mul"
    new_result = True  # (xp.matmul's result is its own)
    a_orientation: MatrixOrientation = REGULAR
    b_orientation: MatrixOrientation = REGULAR

    def __post_init__(self) -> None:  # accept plain 0/1 as deeplearn.js's enum values were
        if type(self.a_orientation) is MatrixOrientation and type(self.b_orientation) is MatrixOrientation:
            return  # the common case, and nothing to convert (~1 µs of Enum calls saved per op)
        object.__setattr__(self, "a_orientation", _orientation(self.a_orientation, "a_orientation"))
        object.__setattr__(self, "b_orientation", _orientation(self.b_orientation, "b_orientation"))

    def infer(self, a: Spec, b: Spec) -> Spec:
        if a.rank != 2 or b.rank != 2:
            raise ShapeError(
                f"mat_mul: inputs must be rank 2; got a.shape={a.shape} (rank {a.rank}) and "
                f"b.shape={b.shape} (rank {b.rank})."
            )
        m, k_a = _rows_cols(a.shape, self.a_orientation)
        k_b, n = _rows_cols(b.shape, self.b_orientation)
        if k_a != k_b:
            raise ShapeError(
                f"mat_mul: inner dimensions must match; got a.shape={a.shape} ({self.a_orientation.name}) "
                f"and b.shape={b.shape} ({self.b_orientation.name}), i.e. {k_a} vs {k_b}."
            )
        return Spec((m, n), result_dtype(a.dtype, b.dtype))  # int32 · float32 is float32

    def forward(self, xp: ModuleType, a: RawArray, b: RawArray) -> RawArray:
        if self.a_orientation == TRANSPOSED:
            a = a.T
        if self.b_orientation == TRANSPOSED:
            b = b.T
        return xp.matmul(a, b)

    def backward(
        self, math: NDArrayMath, dy: NDArray, a: NDArray, b: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # With A' = op(A), B' = op(B): dA' = dy·B'ᵀ and dB' = A'ᵀ·dy; a transposed input gets
        # the transpose of its primed gradient. deeplearn.js 0.3.16 threw for TRANSPOSED.
        mm = math.mat_mul
        match (self.a_orientation, self.b_orientation):
            case (MatrixOrientation.REGULAR, MatrixOrientation.REGULAR):
                return mm(dy, b, REGULAR, TRANSPOSED), mm(a, dy, TRANSPOSED, REGULAR)  # dy·Bᵀ, Aᵀ·dy
            case (MatrixOrientation.REGULAR, MatrixOrientation.TRANSPOSED):
                return mm(dy, b), mm(dy, a, TRANSPOSED, REGULAR)  # dy·B, dyᵀ·A
            case (MatrixOrientation.TRANSPOSED, MatrixOrientation.REGULAR):
                return mm(b, dy, REGULAR, TRANSPOSED), mm(a, dy)  # B·dyᵀ, A·dy
            case _:
                return mm(b, dy, TRANSPOSED, TRANSPOSED), mm(dy, a, TRANSPOSED, TRANSPOSED)  # Bᵀ·dyᵀ, dyᵀ·Aᵀ


def _orientation(value: object, name: str) -> MatrixOrientation:
    """A MatrixOrientation, or its deeplearn.js value 0 or 1 (not 1.0 or True, which the enum
    would take as 1)."""
    if isinstance(value, MatrixOrientation) or (type(value) is int and value in (0, 1)):
        return MatrixOrientation(value)
    raise ValueError(
        f"mat_mul: {name} must be MatrixOrientation.REGULAR or MatrixOrientation.TRANSPOSED (0 or 1); "
        f"got {name}={value!r}."
    )


_MAT_MULS: dict[tuple[MatrixOrientation, MatrixOrientation], MatMul] = {}
"""The MatMul of each pair of orientations, made once (ops are frozen): making one costs
~0.4 µs, a lookup ~0.05."""


def _mat_mul_op(a_orientation: object, b_orientation: object) -> MatMul:
    """``MatMul(a_orientation, b_orientation)``; the one made before when both are enum members
    (0, 1 and anything else go through MatMul's own conversion and checks)."""
    if type(a_orientation) is MatrixOrientation and type(b_orientation) is MatrixOrientation:
        key = (a_orientation, b_orientation)
        op = _MAT_MULS.get(key)
        if op is None:
            op = _MAT_MULS[key] = MatMul(a_orientation, b_orientation)
        return op
    return MatMul(a_orientation, b_orientation)  # type: ignore[arg-type]


def _check_rank(where: str, name: str, x: NDArray, rank: int) -> None:
    check_arrays(where, **{name: x})
    if x.rank != rank:
        raise ShapeError(f"{where}: {name} must be rank {rank}; got {name}.shape={x.shape}.")


class LinalgMath(MathMixin):
    """The methods of NDArrayMath for linear algebra."""

    def mat_mul(
        self,
        a: NDArray,
        b: NDArray,
        a_orientation: MatrixOrientation = REGULAR,
        b_orientation: MatrixOrientation = REGULAR,
    ) -> NDArray:
        """The matrix product op(a)·op(b), each operand optionally transposed.

        Example:
            >>> a = Array2D.new([2, 3], [1, 2, 3, 4, 5, 6])
            >>> b = Array2D.new([2, 3], [1, 0, 2, 4, 3, 0])
            >>> math.mat_mul(a, b, dl.MatrixOrientation.REGULAR, dl.MatrixOrientation.TRANSPOSED).get_values()
            array([ 7., 10., 16., 31.], dtype=float32)
        """
        return self.engine.run(_mat_mul_op(a_orientation, b_orientation), a, b)

    def matrix_times_vector(self, matrix: NDArray, v: NDArray) -> NDArray:
        """The product M·v of a matrix and a vector, as a vector.

        Example:
            >>> m = Array2D.new([2, 3], [10, 20, 30, 40, 50, 60])
            >>> math.matrix_times_vector(m, Array1D.new([0, 1, 2])).get_values()
            array([ 80., 170.], dtype=float32)
        """
        _check_rank("matrix_times_vector", "matrix", matrix, 2)
        _check_rank("matrix_times_vector", "v", v, 1)
        if v.size != matrix.shape[1]:
            raise ShapeError(
                f"matrix_times_vector: v.size must match the matrix's columns; got "
                f"matrix.shape={matrix.shape} and v.shape={v.shape}."
            )
        return self.mat_mul(matrix, v.reshape((v.size, 1))).reshape((matrix.shape[0],))

    def vector_times_matrix(self, v: NDArray, matrix: NDArray) -> NDArray:
        """The product v·M of a vector and a matrix, as a vector.

        Example:
            >>> math.vector_times_matrix(Array1D.new([2, 3]), Array2D.new([2, 2], [1, 2, 3, 4])).get_values()
            array([11., 16.], dtype=float32)
        """
        _check_rank("vector_times_matrix", "v", v, 1)
        _check_rank("vector_times_matrix", "matrix", matrix, 2)
        if v.size != matrix.shape[0]:
            raise ShapeError(
                f"vector_times_matrix: v.size must match the matrix's rows; got v.shape={v.shape} "
                f"and matrix.shape={matrix.shape}."
            )
        return self.mat_mul(v.reshape((1, v.size)), matrix).reshape((matrix.shape[1],))

    def dot_product(self, v1: NDArray, v2: NDArray) -> NDArray:
        """The dot product of two vectors of equal size, as a Scalar.

        Example:
            >>> math.dot_product(Array1D.new([2, 3]), Array1D.new([2, 1])).get()
            7.0
        """
        _check_rank("dot_product", "v1", v1, 1)
        _check_rank("dot_product", "v2", v2, 1)
        if v1.size != v2.size:
            raise ShapeError(
                f"dot_product: v1 and v2 must have the same size; got v1.shape={v1.shape} and v2.shape={v2.shape}."
            )
        return self.mat_mul(v1.reshape((1, v1.size)), v2.reshape((v2.size, 1))).reshape(())

    def outer_product(self, v1: NDArray, v2: NDArray) -> NDArray:
        """The outer product v1 ⊗ v2 of two vectors, as a matrix of shape (v1.size, v2.size).

        Example:
            >>> math.outer_product(Array1D.new([2, 3]), Array1D.new([2, 1])).get_values()
            array([4., 2., 6., 3.], dtype=float32)
        """
        _check_rank("outer_product", "v1", v1, 1)
        _check_rank("outer_product", "v2", v2, 1)
        return self.mat_mul(v1.reshape((v1.size, 1)), v2.reshape((1, v2.size)))
