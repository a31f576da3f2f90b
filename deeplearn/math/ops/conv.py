"""The NDArrayMath family of convolutions and pooling."""

from __future__ import annotations

from deeplearn.math.ops.base import MathMixin

__all__ = ["ConvMath"]


class ConvMath(MathMixin):
    """The methods of NDArrayMath for convolutions and pooling."""
