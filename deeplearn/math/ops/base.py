"""Op: the one place an operation is declared (shape rule, kernel, gradient).

Also the shared semantics every family needs: ``Spec``, NumPy broadcasting of shapes, and
``unbroadcast`` (summing a gradient back to the shape of a broadcast input).
This module must not import NDArrayMath or any backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import numpy as np

from deeplearn.types import DisposedError, DType, Shape, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.engine import Engine
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = [
    "OPS",
    "Spec",
    "Op",
    "UnaryOp",
    "BinaryOp",
    "SameRankOp",
    "MathMixin",
    "broadcast_shapes",
    "check_arrays",
    "unbroadcast",
    "axis_tuple",
    "normalize_axes",
    "reduced_shape",
]

OPS: list[type[Op]] = []
"""Every concrete Op, in declaration order. Tests iterate it; nothing dispatches on it."""


@dataclass(frozen=True)
class Spec:
    """What is known about a value before it exists: its shape and dtype."""

    shape: Shape
    dtype: DType = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class Op:
    """An operation. Concrete ops are frozen dataclasses whose fields are the op's attributes
    (axis, orientation, strides...), so equal ops compare and hash equal (plan cache keys).

    Subclasses implement, with precise signatures:
      infer(*specs) -> Spec | tuple[Spec, ...]   shape/dtype rule; raises ShapeError/DTypeError
      forward(xp, *arrays) -> array | tuple       kernel, written once for numpy and cupy
      backward(math, dy, *inputs, y) -> grads     one NDArray (or None) per input, via NDArrayMath

    Element-wise ops may also set ``c_expr``: the scalar C statement of the kernel, reading ``x``
    (unary ops) or ``a`` and ``b`` (binary ops) of type ``T`` and assigning ``y`` of type ``Y``. The CUDA backend compiles it into an
    ElementwiseKernel; it must give the same NaN semantics as ``forward``.
    """

    name: ClassVar[str]
    """The NDArrayMath method name ("mat_mul"); used in error messages and test ids."""

    c_expr: ClassVar[str | None] = None

    ufunc: ClassVar[str | None] = None
    """For an element-wise op, the name of the NumPy/CuPy ufunc that is its kernel when every
    input already has the result's floating dtype (its ``forward`` calls it): a compiled CPU
    step (``deeplearn/compile/cpu_step.py``) calls it with ``out=``."""

    new_result: ClassVar[bool] = False
    """Whether ``forward`` returns a new array every call, one that shares no memory with its
    inputs (``xp.matmul``, a ``copy``): an engine that saw the first call's result need no
    change then trusts later calls' results of the same shapes and dtypes (``Known.fresh``).
    A subclass whose forward may return a view of an input sets it back to False."""

    pure: ClassVar[bool] = True
    """Whether the kernel's result is a function of its inputs alone (a recorded Program runs a
    pure kernel of constants once, when recorded: ``Program.fold_constants``)."""

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not abstract:
            OPS.append(cls)

    # (*args: Any, **kwargs: Any) lets subclasses declare exact parameters without an
    # override error: mypy treats this signature like Callable[..., T].
    def infer(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def backward(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        raise NotImplementedError(f"{self.name} has no gradient")


class SameRankOp(Op, abstract=True):
    """An op whose output has the rank of its array inputs, so their NDArray class (Array2D in,
    Array2D out): what lets a method promise to return its input's type (``neg(x: T) -> T``).
    Only a marker for mypy (see ``Engine.run``'s overloads); tests/math/test_op_kinds.py checks it."""


class UnaryOp(SameRankOp, abstract=True):
    """Element-wise op of one input; the output has the input's shape and dtype."""

    def infer(self, x: Spec) -> Spec:
        return x


class BinaryOp(Op, abstract=True):
    """Element-wise op of two inputs with NumPy broadcasting; the output has the first dtype."""

    def infer(self, a: Spec, b: Spec) -> Spec:
        return Spec(broadcast_shapes(a.shape, b.shape, self.name), a.dtype)


A = TypeVar("A", bound="NDArray")  # the NDArray class (Array2D, ...) a SameRankOp gives back


class _OneOutput(Protocol):
    """An op whose shape rule gives one Spec (an op known only as ``Op`` counts as one too)."""

    def infer(self, *args: Any, **kwargs: Any) -> Spec: ...


class _TwoOutputs(Protocol):
    """An op whose shape rule gives two Specs (top_k)."""

    def infer(self, *args: Any, **kwargs: Any) -> tuple[Spec, Spec]: ...


class MathMixin:
    """Base of the NDArrayMath family mixins: declares what each family may use.

    A family that calls another family's methods inherits it (ConvMath uses ReductionMath's
    ``sum``), so mypy checks those calls, and a misspelled method is an error.
    """

    engine: Engine
    """Runs every op (``Engine.run``, whose overloads type each method's result)."""


def check_arrays(where: str, **arrays: Any) -> None:
    """Raises TypeError unless every named argument is an NDArray, and DisposedError if one is
    disposed, naming ``where``.

    The engine checks an op's inputs itself; a composite method (one that reads shapes, or
    calls other methods) calls this first, or it would fail with an AttributeError, or with an
    error naming the inner op rather than the method the user called.
    """
    array_type = _ARRAY_TYPE or _array_type()
    for name, x in arrays.items():
        if not isinstance(x, array_type):
            raise TypeError(f"{where}: {name} must be an NDArray; got {type(x).__name__} {x!r:.80}.")
        if x._disposed or x.storage.data is None:  # is_disposed, inlined (per call of a composite)
            raise DisposedError(f"{where}: {name} is disposed; got a disposed array of shape {x.shape}.")


_ARRAY_TYPE: type[NDArray] | None = None


def _array_type() -> type[NDArray]:
    global _ARRAY_TYPE
    from deeplearn.math.ndarray import NDArray  # here, not at the top: ndarray.py imports this module

    _ARRAY_TYPE = NDArray
    return NDArray


def broadcast_shapes(a: Shape, b: Shape, where: str = "broadcast") -> Shape:
    """The NumPy broadcast of two shapes, or ShapeError.

    Example:
        >>> broadcast_shapes((1, 3), (2, 1))
        (2, 3)
    """
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        da = a[-i] if i <= len(a) else 1
        db = b[-i] if i <= len(b) else 1
        if da != db and da != 1 and db != 1:
            raise ShapeError(
                f"{where}: operands could not be broadcast together; got shapes {tuple(a)} and "
                f"{tuple(b)} (dimension {-i}: {da} vs {db})."
            )
        out.append(da if db == 1 else db)
    return tuple(reversed(out))


def unbroadcast(math: NDArrayMath, dy: NDArray, shape: Shape) -> NDArray:
    """Sums ``dy`` over the axes along which an input of ``shape`` was broadcast."""
    if tuple(dy.shape) == tuple(shape):
        return dy
    lead = len(dy.shape) - len(shape)
    axes = list(range(lead))
    axes += [lead + i for i, d in enumerate(shape) if d == 1 and dy.shape[lead + i] != 1]
    summed = math.sum(dy, axes) if axes else dy
    return summed.reshape(shape)


def axis_tuple(axis: Any, where: str) -> tuple[int, ...]:
    """A non-None ``axis`` argument as a tuple of ints; floats, strings and booleans are refused
    (ValueError naming ``where``) rather than converted.

    Example:
        >>> axis_tuple(1, "sum"), axis_tuple([0, -1], "sum")
        ((1,), (0, -1))
    """

    def is_int(a: object) -> bool:
        return isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_))

    if is_int(axis):
        return (int(axis),)
    if isinstance(axis, (list, tuple)) and all(is_int(a) for a in axis):
        return tuple(int(a) for a in axis)
    raise ValueError(f"{where}: axis must be None, an integer or a sequence of integers; got axis={axis!r}.")


def normalize_axes(axis: int | tuple[int, ...] | list[int] | None, rank: int, where: str) -> tuple[int, ...]:
    """Axis argument → sorted tuple of non-negative axes (None means every axis)."""
    if axis is None:
        return tuple(range(rank))
    axes = axis_tuple(axis, where)
    if rank == 0 and axes:
        # A 0-d array has no axis 0 to reduce (NumPy's AxisError, an IndexError in the kernels).
        raise ShapeError(f"{where}: a rank-0 input has no axes; axis must be None or empty; got axis={axis}.")
    out = []
    for ax in axes:
        if not -rank <= ax < rank:
            raise ShapeError(f"{where}: axis must be in [-{rank}, {rank}); got axis={axis} for rank {rank}.")
        out.append(ax % rank)
    if len(set(out)) != len(out):
        raise ShapeError(f"{where}: axes must be distinct; got axis={axis}.")
    return tuple(sorted(out))


def reduced_shape(shape: Shape, axes: tuple[int, ...], keep_dims: bool) -> Shape:
    """Shape after reducing ``axes`` (kept as size-1 dimensions when ``keep_dims``)."""
    if keep_dims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)
