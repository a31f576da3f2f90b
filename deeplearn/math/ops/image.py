"""The NDArrayMath family of resize_bilinear3d and batch normalization."""

from __future__ import annotations

from deeplearn.math.ops.base import MathMixin

__all__ = ["ImageMath"]


class ImageMath(MathMixin):
    """The methods of NDArrayMath for resize_bilinear3d and batch normalization."""
