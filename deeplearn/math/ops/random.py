"""The NDArrayMath family of multinomial and one_hot."""

from __future__ import annotations

from deeplearn.math.ops.base import MathMixin

__all__ = ["RandomMath"]


class RandomMath(MathMixin):
    """The methods of NDArrayMath for multinomial and one_hot."""
