"""The NDArrayMath family of the Graph cost functions."""

from __future__ import annotations

from deeplearn.math.ops.base import MathMixin

__all__ = ["CostMath"]


class CostMath(MathMixin):
    """The methods of NDArrayMath for the Graph cost functions."""
