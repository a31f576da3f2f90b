"""basic_lstm_cell and multi_rnn_cell are composites of other ops (no Op of their own), so the
op table has no case for them; tests/math/test_image_rnn_costs.py checks them against the
conformance values and a NumPy LSTM."""

from __future__ import annotations

from tests.op_cases import OpCase

CASES: list[OpCase] = []
