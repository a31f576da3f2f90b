"""The NDArrayMath family of shape and layout ops (clone slice1d-4d concat1d-4d transpose tile)."""

from __future__ import annotations

from deeplearn.math.ops.base import MathMixin

__all__ = ["LayoutMath"]


class LayoutMath(MathMixin):
    """The methods of NDArrayMath for shape and layout ops (clone slice1d-4d concat1d-4d transpose tile)."""
