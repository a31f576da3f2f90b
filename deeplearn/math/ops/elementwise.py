"""The NDArrayMath family of element-wise unary ops (neg exp log sqrt square abs ceil floor relu elu selu leaky_relu prelu sigmoid tanh sin cos tan asin acos atan sinh cosh step clip)."""

from __future__ import annotations

from deeplearn.math.ops.base import MathMixin

__all__ = ["ElementwiseMath"]


class ElementwiseMath(MathMixin):
    """The methods of NDArrayMath for element-wise unary ops (neg exp log sqrt square abs ceil floor relu elu selu leaky_relu prelu sigmoid tanh sin cos tan asin acos atan sinh cosh step clip)."""
