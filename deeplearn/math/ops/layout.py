"""The NDArrayMath family of shape and layout ops (clone, slice1d-4d, concat1d-4d, transpose,
tile, and the deprecated reshape and switch_dim).

Every op here returns a fresh C-contiguous buffer, never a view of its input: NDArray.reshape
shares storage on purpose, but an op's output must not change when its input is written to
(``set``/``fill``), and writes to a non-contiguous view would be lost.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from deeplearn import util
from deeplearn.math.ops.base import MathMixin, Op, SameRankOp, Spec, check_arrays
from deeplearn.types import DTypeError, RawArray, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["LayoutMath", "Clone", "Slice", "Concat", "Transpose", "Tile", "Gather"]

T = TypeVar("T", bound="NDArray")


def _ranked(base: str, rank: int) -> str:
    """The public method a rank belongs to (slice2d, concat3d), for error messages."""
    return f"{base}{rank}d" if 1 <= rank <= 4 else base


def _check_rank(where: str, name: str, x: NDArray, rank: int) -> None:
    check_arrays(where, **{name: x})
    if x.rank != rank:
        raise ShapeError(f"{where}: {name} must be rank {rank}; got {name}.shape={x.shape}.")


@dataclass(frozen=True)
class Clone(SameRankOp):
    """y = a copy of x (same shape, dtype and values)."""

    name = "clone"
    new_result = True  # (forward copies)

    def infer(self, x: Spec) -> Spec:
        return x

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return x.copy()

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (dy,)


@dataclass(frozen=True)
class Slice(SameRankOp):
    """y = x[begin[0]:begin[0]+size[0], ...], the window of ``size`` starting at ``begin``."""

    name = "slice"
    new_result = True  # (forward copies the window)
    begin: tuple[int, ...] = ()
    size: tuple[int, ...] = ()
    # The method the user called, for error messages; not part of the op's identity. Without
    # it (a Graph's op), the method of x's rank.
    caller: str = field(default="", compare=False, repr=False)

    def infer(self, x: Spec) -> Spec:
        where = self.caller or _ranked("slice", x.rank)
        if len(self.begin) != x.rank or len(self.size) != x.rank:
            raise ShapeError(
                f"{where}: begin and size must have one entry per dimension of x; got begin={self.begin}, "
                f"size={self.size} and x.shape={x.shape}."
            )
        for i, (b, s, d) in enumerate(zip(self.begin, self.size, x.shape, strict=True)):
            if b < 0 or s < 0:
                raise ShapeError(
                    f"{where}: begin and size must be >= 0; got begin={self.begin} and size={self.size}."
                )
            if b + s > d:
                raise ShapeError(
                    f"{where}: begin[{i}] + size[{i}] must not exceed x.shape[{i}]; got "
                    f"begin={self.begin}, size={self.size} and x.shape={x.shape}, i.e. {b} + {s} > {d}."
                )
        return Spec(self.size, x.dtype)

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return x[tuple(slice(b, b + s) for b, s in zip(self.begin, self.size, strict=True))].copy()

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        # dy padded back to x's shape with zeros: one zero block before and after, per axis.
        from deeplearn.math.ndarray import NDArray as _NDArray

        grad = dy
        for axis, (b, s, d) in enumerate(zip(self.begin, self.size, x.shape, strict=True)):
            for width, before in ((b, True), (d - b - s, False)):
                if width:
                    shape = list(grad.shape)
                    shape[axis] = width
                    zeros = _NDArray.zeros(shape, dy.dtype, math=math)
                    grad = math.concat(zeros, grad, axis) if before else math.concat(grad, zeros, axis)
        return (grad,)


@dataclass(frozen=True)
class Concat(SameRankOp):
    """y = a and b joined along ``axis``; every other dimension must match."""

    name = "concat"
    new_result = True  # (xp.concatenate's result is its own)
    axis: int = 0
    caller: str = field(default="", compare=False, repr=False)  # as Slice.caller

    def infer(self, a: Spec, b: Spec) -> Spec:
        where = self.caller or _ranked("concat", a.rank)
        if a.rank != b.rank:
            raise ShapeError(
                f"{where}: a and b must have the same rank; got a.shape={a.shape} and b.shape={b.shape}."
            )
        if not -a.rank <= self.axis < a.rank:
            raise ShapeError(
                f"{where}: axis must be in [-{a.rank}, {a.rank}); got axis={self.axis} for rank {a.rank}."
            )
        axis = self.axis % a.rank
        for i, (da, db) in enumerate(zip(a.shape, b.shape, strict=True)):
            if i != axis and da != db:
                raise ShapeError(
                    f"{where}: a and b must match in every dimension but axis {axis}; got a.shape={a.shape} "
                    f"and b.shape={b.shape}, which differ along axis {i}."
                )
        if a.dtype != b.dtype:
            raise DTypeError(f"{where}: a and b must have the same dtype; got {a.dtype} and {b.dtype}.")
        shape = list(a.shape)
        shape[axis] += b.shape[axis]
        return Spec(tuple(shape), a.dtype)

    def forward(self, xp: ModuleType, a: RawArray, b: RawArray) -> RawArray:
        return xp.concatenate([a, b], axis=self.axis)

    def backward(
        self, math: NDArrayMath, dy: NDArray, a: NDArray, b: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        axis = self.axis % a.rank
        begin_b = [0] * a.rank
        begin_b[axis] = a.shape[axis]
        return math.slice(dy, [0] * a.rank, a.shape), math.slice(dy, begin_b, b.shape)  # split dy


def _check_perm(perm: tuple[int, ...], x: Spec) -> None:
    if sorted(perm) != list(range(x.rank)):
        raise ShapeError(
            f"transpose: perm must be a permutation of range({x.rank}); got perm={perm} for x.shape={x.shape}."
        )


@dataclass(frozen=True)
class Transpose(SameRankOp):
    """y = x with its dimensions permuted: y.shape[i] = x.shape[perm[i]]; reversed when perm is None."""

    name = "transpose"
    new_result = True  # (forward copies)
    perm: tuple[int, ...] | None = None

    def _perm(self, rank: int) -> tuple[int, ...]:
        return tuple(reversed(range(rank))) if self.perm is None else self.perm

    def infer(self, x: Spec) -> Spec:
        perm = self._perm(x.rank)
        _check_perm(perm, x)
        return Spec(tuple(x.shape[p] for p in perm), x.dtype)

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return xp.transpose(x, self._perm(x.ndim)).copy()

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        perm = self._perm(x.rank)
        inverse = [0] * len(perm)
        for i, p in enumerate(perm):
            inverse[p] = i
        return (math.transpose(dy, inverse),)  # the inverse permutation


@dataclass(frozen=True)
class Tile(SameRankOp):
    """y = x repeated reps[i] times along each dimension i (NumPy's tile); keeps the dtype."""

    name = "tile"
    new_result = True  # (xp.tile copies, even for reps of ones)
    reps: tuple[int, ...] = ()

    def infer(self, x: Spec) -> Spec:
        if len(self.reps) != x.rank or any(r < 0 for r in self.reps):
            raise ShapeError(
                f"tile: reps must have one entry >= 0 per dimension of x; got reps={self.reps} and x.shape={x.shape}."
            )
        return Spec(tuple(d * r for d, r in zip(x.shape, self.reps, strict=True)), x.dtype)

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return xp.tile(x, self.reps) if x.ndim else x.copy()

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        # dy viewed as (r0, d0, r1, d1, ...) and summed over the repeat axes.
        interleaved: list[int] = []
        for r, d in zip(self.reps, x.shape, strict=True):
            interleaved += [r, d]
        return (math.sum(dy.reshape(interleaved), list(range(0, 2 * x.rank, 2))),)


@dataclass(frozen=True)
class Gather(Op):
    """y[i] = x[indices[i]]: the rows of ``x`` (along its first axis) at the int32 ``indices``,
    stacked, so y has shape ``indices.shape + x.shape[1:]`` and x's dtype.

    Every index must be in [0, len(x)). The CPU checks this before it copies (ValueError); a GPU
    cannot without waiting to read the indices back, so there a row out of range reads as
    zeros. The gradient with respect to x adds each row of dy into the row it came from (a row
    taken twice gets both); indices get none.
    """

    name = "gather"

    def infer(self, x: Spec, indices: Spec) -> Spec:
        if x.rank < 1:
            raise ShapeError(
                f"gather: x must have at least one axis to take rows from; got x.shape={x.shape}."
            )
        if indices.dtype != "int32":
            raise DTypeError(f"gather: indices must be int32; got indices.dtype={indices.dtype}.")
        if indices.rank != 1:
            raise ShapeError(f"gather: indices must be rank 1; got indices.shape={indices.shape}.")
        return Spec(indices.shape + x.shape[1:], x.dtype)

    def forward(self, xp: ModuleType, x: RawArray, indices: RawArray) -> RawArray:
        if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= x.shape[0]):
            bad = int(xp.argmax((indices < 0) | (indices >= x.shape[0])))
            raise ValueError(
                f"gather: every index must be in [0, {x.shape[0]}) (the rows of x); "
                f"got indices[{bad}]={int(indices[bad])}."
            )
        return xp.take(x, indices, axis=0)

    def backward(
        self, math: NDArrayMath, dy: NDArray, x: NDArray, indices: NDArray, y: NDArray
    ) -> tuple[NDArray, None]:
        # dx = onehot(indices)ᵀ · dy, with the row axes flattened: one product adds every row
        # of dy into its source row, duplicates included, on any backend.
        from deeplearn.math.ops.linalg import MatrixOrientation

        n, width = x.shape[0], x.size // max(x.shape[0], 1)
        flat = dy.reshape([dy.shape[0], width])
        if n == 1:  # one_hot needs a depth of 2: every index is 0, so every row goes to row 0
            return math.sum(flat, 0, keep_dims=True).reshape(x.shape), None
        picks = math.one_hot(indices, n)
        return math.mat_mul(picks, flat, MatrixOrientation.TRANSPOSED).reshape(x.shape), None


def _ints(values: Sequence[int], where: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(util.as_int(v, where, name) for v in values)
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{where}: {name} must be a sequence of integers; got {name}={values!r}.") from e


# The field-less ops the methods below run, made once (why: ArithmeticMath's, arithmetic.py).
_CLONE = Clone()
_GATHER = Gather()


class LayoutMath(MathMixin):
    """The methods of NDArrayMath for shape and layout ops."""

    def clone(self, x: T) -> T:
        """A copy of ``x`` in a new buffer.

        Example:
            >>> math.clone(Array1D.new([1, 2])).get_values()
            array([1., 2.], dtype=float32)
        """
        return self.engine.run(_CLONE, x)

    def _slice(self, where: str, x: T, begin: Sequence[int], size: Sequence[int]) -> T:
        check_arrays(where, x=x)
        op = Slice(_ints(begin, where, "begin"), _ints(size, where, "size"), where)
        return self.engine.run(op, x)

    def _concat(self, where: str, a: T, b: T, axis: int) -> T:
        check_arrays(where, a=a, b=b)
        return self.engine.run(Concat(util.as_int(axis, where, "axis"), where), a, b)

    def reshape(self, x: NDArray, new_shape: Sequence[int]) -> NDArray:
        """Deprecated (as in deeplearn.js): use ``x.reshape(new_shape)``.

        Example:
            >>> import warnings
            >>> with warnings.catch_warnings():
            ...     warnings.simplefilter("ignore")
            ...     math.reshape(Array1D.new([1, 2, 3, 4]), [2, -1]).shape
            (2, 2)
        """
        warnings.warn(
            "math.reshape is deprecated; use x.reshape(new_shape).", DeprecationWarning, stacklevel=2
        )
        check_arrays("reshape", x=x)
        return x.reshape(new_shape)

    def slice(self, x: T, begin: Sequence[int], size: Sequence[int]) -> T:
        """The window of shape ``size`` of ``x`` that starts at ``begin`` (any rank).

        Example:
            >>> math.slice(Array1D.new([1, 2, 3, 4, 5]), [1], [3]).get_values()
            array([2., 3., 4.], dtype=float32)
        """
        return self._slice("slice", x, begin, size)

    def slice1d(self, x: NDArray, begin: int, size: int) -> NDArray:
        """``size`` elements of the vector ``x`` from index ``begin``.

        Example:
            >>> math.slice1d(Array1D.new([1, 2, 3, 4, 5]), 3, 2).get_values()
            array([4., 5.], dtype=float32)
        """
        _check_rank("slice1d", "x", x, 1)
        return self._slice("slice1d", x, [begin], [size])

    def slice2d(self, x: NDArray, begin: Sequence[int], size: Sequence[int]) -> NDArray:
        """The ``size`` = [rows, columns] window of the matrix ``x`` at ``begin`` = [row, column].

        Example:
            >>> x = Array2D.new([4, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
            >>> math.slice2d(x, [1, 1], [3, 2]).get_values()
            array([ 5.,  6.,  8.,  9., 11., 12.], dtype=float32)
        """
        _check_rank("slice2d", "x", x, 2)
        return self._slice("slice2d", x, begin, size)

    def slice3d(self, x: NDArray, begin: Sequence[int], size: Sequence[int]) -> NDArray:
        """The ``size`` window of the rank-3 ``x`` at ``begin``.

        Example:
            >>> x = Array3D.new([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8])
            >>> math.slice3d(x, [0, 1, 1], [2, 1, 1]).get_values()
            array([4., 8.], dtype=float32)
        """
        _check_rank("slice3d", "x", x, 3)
        return self._slice("slice3d", x, begin, size)

    def slice4d(self, x: NDArray, begin: Sequence[int], size: Sequence[int]) -> NDArray:
        """The ``size`` window of the rank-4 ``x`` at ``begin``.

        Example:
            >>> x = Array4D.new([2, 1, 1, 2], [1, 2, 3, 4])
            >>> math.slice4d(x, [1, 0, 0, 0], [1, 1, 1, 2]).get_values()
            array([3., 4.], dtype=float32)
        """
        _check_rank("slice4d", "x", x, 4)
        return self._slice("slice4d", x, begin, size)

    def concat(self, a: T, b: T, axis: int = 0) -> T:
        """``a`` and ``b`` joined along ``axis`` (any rank; other dimensions must match).

        Example:
            >>> math.concat(Array1D.new([3]), Array1D.new([5, 7])).get_values()
            array([3., 5., 7.], dtype=float32)
        """
        return self._concat("concat", a, b, axis)

    def concat1d(self, a: NDArray, b: NDArray) -> NDArray:
        """The vectors ``a`` and ``b`` one after the other.

        Example:
            >>> math.concat1d(Array1D.new([3, 5]), Array1D.new([7])).get_values()
            array([3., 5., 7.], dtype=float32)
        """
        _check_rank("concat1d", "a", a, 1)
        return self._concat("concat1d", a, b, 0)

    def concat2d(self, a: NDArray, b: NDArray, axis: int) -> NDArray:
        """The matrices ``a`` and ``b`` joined along ``axis`` (0: stacked rows, 1: side by side).

        Example:
            >>> math.concat2d(Array2D.new([1, 1], [3]), Array2D.new([1, 1], [5]), 1).shape
            (1, 2)
        """
        _check_rank("concat2d", "a", a, 2)
        return self._concat("concat2d", a, b, axis)

    def concat3d(self, a: NDArray, b: NDArray, axis: int) -> NDArray:
        """The rank-3 ``a`` and ``b`` joined along ``axis``.

        Example:
            >>> a = Array3D.new([1, 1, 3], [1, 2, 3])
            >>> math.concat3d(a, a, 2).shape
            (1, 1, 6)
        """
        _check_rank("concat3d", "a", a, 3)
        return self._concat("concat3d", a, b, axis)

    def concat4d(self, a: NDArray, b: NDArray, axis: int) -> NDArray:
        """The rank-4 ``a`` and ``b`` joined along ``axis``.

        Example:
            >>> a = Array4D.new([1, 1, 1, 2], [1, 2])
            >>> math.concat4d(a, a, 0).shape
            (2, 1, 1, 2)
        """
        _check_rank("concat4d", "a", a, 4)
        return self._concat("concat4d", a, b, axis)

    def transpose(self, x: T, perm: Sequence[int] | None = None) -> T:
        """``x`` with its dimensions permuted by ``perm`` (reversed when None).

        Example:
            >>> math.transpose(Array2D.new([2, 3], [1, 2, 3, 4, 5, 6])).get_values()
            array([1., 4., 2., 5., 3., 6.], dtype=float32)
        """
        op = Transpose(None if perm is None else _ints(perm, "transpose", "perm"))
        return self.engine.run(op, x)

    def switch_dim(self, x: T, new_dim: Sequence[int]) -> T:
        """Deprecated (deeplearn.js 0.3.6): use ``transpose(x, new_dim)``.

        Example:
            >>> import warnings
            >>> with warnings.catch_warnings():
            ...     warnings.simplefilter("ignore")
            ...     math.switch_dim(Array2D.new([2, 3], [1, 2, 3, 4, 5, 6]), [1, 0]).shape
            (3, 2)
        """
        warnings.warn(
            "math.switch_dim is deprecated; use math.transpose(x, perm).", DeprecationWarning, stacklevel=2
        )
        return self.transpose(x, new_dim)

    def tile(self, x: T, reps: Sequence[int]) -> T:
        """``x`` repeated ``reps[i]`` times along each dimension i (keeps the dtype).

        Example:
            >>> math.tile(Array2D.new([2, 2], [1, 11, 2, 22]), [1, 2]).get_values()
            array([ 1., 11.,  1., 11.,  2., 22.,  2., 22.], dtype=float32)
        """
        return self.engine.run(Tile(_ints(reps, "tile", "reps")), x)

    def gather(self, x: NDArray, indices: NDArray) -> NDArray:
        """The rows of ``x`` at ``indices`` (int32, rank 1) along its first axis, stacked.

        Example:
            >>> math.gather(Array2D.new([3, 2], [1, 2, 3, 4, 5, 6]), Array1D.new([2, 0, 2], "int32")).get_values()
            array([5., 6., 1., 2., 5., 6.], dtype=float32)
        """
        check_arrays("gather", x=x, indices=indices)
        return self.engine.run(_GATHER, x, indices)
