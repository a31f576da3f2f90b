"""The NDArrayMath family of reductions and arg ops (sum mean min max arg_min arg_max arg_max_equals log_sum_exp softmax top_k norm moments)."""

from __future__ import annotations

from deeplearn.math.ops.base import MathMixin

__all__ = ["ReductionMath"]


class ReductionMath(MathMixin):
    """The methods of NDArrayMath for reductions and arg ops (sum mean min max arg_min arg_max arg_max_equals log_sum_exp softmax top_k norm moments)."""
