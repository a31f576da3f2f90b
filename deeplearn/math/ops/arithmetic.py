"""The NDArrayMath family of element-wise binary ops with broadcasting (add subtract multiply divide pow maximum minimum equal, *_strict, scalar helpers)."""

from __future__ import annotations

from deeplearn.math.ops.base import MathMixin

__all__ = ["ArithmeticMath"]


class ArithmeticMath(MathMixin):
    """The methods of NDArrayMath for element-wise binary ops with broadcasting (add subtract multiply divide pow maximum minimum equal, *_strict, scalar helpers)."""
