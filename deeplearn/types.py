"""Shared type aliases and the library's exception classes.

Holds no logic: everything else imports from here, so this module imports nothing of ours.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

__all__ = ["Shape", "DType", "RawArray", "ShapeError", "DTypeError", "DisposedError", "DTYPES"]

Shape: TypeAlias = tuple[int, ...]
DType: TypeAlias = Literal["float32", "int32", "bool"]
RawArray: TypeAlias = Any  # numpy.ndarray | cupy.ndarray
DTYPES: tuple[str, ...] = ("float32", "int32", "bool")


class ShapeError(ValueError):
    """An argument has a shape the operation cannot accept.

    Raised by an op's shape rule (``Op.infer``) or a Graph builder, before any work is done.
    """


class DTypeError(TypeError):
    """An argument has a dtype the operation cannot accept."""


class DisposedError(RuntimeError):
    """An NDArray was used after ``dispose()`` (by hand or at the end of its scope)."""
