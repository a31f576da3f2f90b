"""The NDArrayMath family of basic_lstm_cell and multi_rnn_cell."""

from __future__ import annotations

from deeplearn.math.ops.base import MathMixin

__all__ = ["RNNMath"]


class RNNMath(MathMixin):
    """The methods of NDArrayMath for basic_lstm_cell and multi_rnn_cell."""
