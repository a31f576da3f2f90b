"""Small helpers shared by math/ and graph/: shape arithmetic and argument checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from deeplearn.types import DType, DTYPES, DTypeError, Shape, ShapeError

__all__ = [
    "size_from_shape",
    "as_shape",
    "infer_from_implicit_shape",
    "check_dtype",
    "numpy_dtype",
    "infer_shape",
]

_NUMPY_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


def size_from_shape(shape: Iterable[int]) -> int:
    """Number of elements of an array of this shape (1 for a scalar).

    Example:
        >>> size_from_shape((2, 3))
        6
    """
    size = 1
    for d in shape:
        size *= int(d)
    return size


def as_shape(shape: Iterable[int] | int, where: str = "shape") -> Shape:
    """Normalises a list/tuple of dimension sizes into a tuple of ints."""
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    try:
        out = tuple(int(d) for d in shape)
    except TypeError as e:
        raise ShapeError(f"{where}: a shape must be a sequence of integers; got {shape!r}.") from e
    return out


def infer_from_implicit_shape(shape: Sequence[int], size: int, where: str = "reshape") -> Shape:
    """Replaces one ``-1`` in ``shape`` by the size that makes the element counts match.

    Example:
        >>> infer_from_implicit_shape((2, -1), 6)
        (2, 3)
    """
    shape = tuple(int(d) for d in shape)
    if shape.count(-1) > 1:
        raise ShapeError(f"{where}: at most one dimension can be -1; got shape {shape}.")
    if any(d < -1 for d in shape):
        raise ShapeError(f"{where}: dimensions must be >= 0 or -1; got shape {shape}.")
    if -1 in shape:
        known = size_from_shape(d for d in shape if d != -1)
        if known == 0 or size % known != 0:
            raise ShapeError(
                f"{where}: new shape and old shape must have the same number of elements; "
                f"cannot infer -1 in {shape} for {size} elements."
            )
        shape = tuple(size // known if d == -1 else d for d in shape)
    if size_from_shape(shape) != size:
        raise ShapeError(
            f"{where}: new shape and old shape must have the same number of elements; "
            f"got new shape {shape} ({size_from_shape(shape)} elements) for {size} elements."
        )
    return shape


def check_dtype(dtype: Any, where: str = "dtype") -> DType:
    """Returns ``dtype`` as one of the strings "float32", "int32", "bool", or raises DTypeError."""
    if dtype is None:
        return "float32"
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise DTypeError(f"{where}: dtype must be one of {DTYPES}; got {dtype!r}.")
    return name  # type: ignore[return-value]


def numpy_dtype(dtype: DType) -> type:
    """The NumPy scalar type that stores ``dtype``."""
    return _NUMPY_DTYPES[dtype]


def infer_shape(values: Any) -> Shape:
    """Shape of a (possibly nested) list of numbers, as NumPy would see it.

    Example:
        >>> infer_shape([[1, 2, 3], [4, 5, 6]])
        (2, 3)
    """
    if isinstance(values, (list, tuple)):
        if len(values) == 0:
            return (0,)
        return (len(values),) + infer_shape(values[0])
    if hasattr(values, "shape"):
        return tuple(int(d) for d in values.shape)
    return ()
