"""The rows cursor's host side (``deeplearn/compile/rows.py``), on the CPU: a GPU builder's draws
as RowSpans, fed to a cursor whose device is played here by NumPy (the kernels' own rules: read
``count`` rows at the position, move it on; start again from the first row rather than read past
the last). Whatever the draws (within epochs, across epochs and blocks, a provider drawn from
between steps, a launch that never came), every launch reads exactly the rows the CPU builder
hands out, and the cursor is pointed anew only where the draw is not where it stands. The CUDA
side runs in ``tests/graph/test_cuda_graph.py``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn.compile.rows import RowCursor, RowSpan, plain_rows
from deeplearn.data import input_provider


class _Device:
    """A cursor's device state, kept by NumPy: what ``point_cursor`` and ``rows_at_cursor`` do."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.source: Any = None
        self.at = 0
        self.points: list[int] = []

    def point(self, cursor: RowCursor, source: Any, start: int) -> None:
        assert 0 <= start <= source.size - self.count
        self.source, self.at = source, start
        self.points.append(start)
        cursor._source, cursor._next = source, start + self.count

    def launch(self) -> np.ndarray:
        at = self.at if self.at + self.count <= self.source.size else 0
        rows = np.asarray(self.source[at : at + self.count]).copy()
        self.at = at + self.count
        return rows


def _cursor(monkeypatch: pytest.MonkeyPatch, count: int) -> tuple[RowCursor, _Device]:
    device = _Device(count)
    cursor = object.__new__(RowCursor)  # (its __init__ makes the device state with CuPy)
    cursor.count, cursor._source, cursor._next = count, None, -1
    monkeypatch.setattr(RowCursor, "_point", lambda self, source, start: device.point(self, source, start))
    return cursor, device


@pytest.fixture
def math(monkeypatch: pytest.MonkeyPatch) -> dl.NDArrayMath:
    math = dl.NDArrayMathCPU()
    monkeypatch.setattr(math.backend, "reads_row_spans", True, raising=False)  # spans, over host arrays
    return math


def test_row_spans_are_windows_of_their_block() -> None:
    block = np.arange(10, dtype=np.int32)
    span = RowSpan(block, 4, 3)
    np.testing.assert_array_equal(span.indices(), [4, 5, 6])
    other = np.zeros(3, np.int32)
    made = plain_rows([span, other, None])
    np.testing.assert_array_equal(made[0], [4, 5, 6])
    assert made[1] is other and made[2] is None


@pytest.mark.parametrize("between", [(), (5, 40, 41, 150)], ids=["in-step", "drawn-between-steps"])
def test_every_launch_reads_the_rows_drawn(
    math: dl.NDArrayMath, monkeypatch: pytest.MonkeyPatch, between: tuple[int, ...]
) -> None:
    n, batch = 12, 7
    xs = np.arange(n, dtype=np.float32)
    builder = dl.InGPUMemoryShuffledInputProviderBuilder([xs, 2 * xs], seed=3)
    (reference,) = dl.InCPUMemoryShuffledInputProviderBuilder([xs], seed=3).get_input_providers()
    together = [(0, builder._examples(math, 0)), (1, builder._examples(math, 1))]
    cursor, device = _cursor(monkeypatch, batch)
    steps = int(2.5 * input_provider._EPOCHS_AHEAD * n / batch)
    spans = 0
    for step in range(steps):
        if step in between:  # both providers, so they stay in step
            extra = builder._draw_indices_together(math, together, 3)
            np.testing.assert_array_equal(xs[np.asarray(extra[0])], reference.get_next_batch(math, 3).numpy())
        drawn = builder._draw_indices_together(math, together, batch, span=True)
        assert drawn is not None and drawn[0] is drawn[1]  # one draw for the pair
        spans += type(drawn[0]) is RowSpan
        cursor.feed(drawn[0])
        rows = device.launch()
        np.testing.assert_array_equal(xs[rows], reference.get_next_batch(math, batch).numpy(), f"step {step}")
    assert spans > 0.9 * steps
    # The first span, then per block boundary a batch across it (an array) and the new block;
    # and after each draw between steps.
    assert len(device.points) <= 1 + 2 * 2 + len(between), device.points


def test_a_launch_that_never_came_is_pointed_anew(math: dl.NDArrayMath, monkeypatch: pytest.MonkeyPatch) -> None:
    """``lost()``: the launch a cursor was fed for did not come (an error, an interrupt); the
    next feed points it at its draw, so no batch is read twice or skipped."""
    xs = np.arange(40, dtype=np.float32)
    builder = dl.InGPUMemoryShuffledInputProviderBuilder([xs], seed=1)
    (reference,) = dl.InCPUMemoryShuffledInputProviderBuilder([xs], seed=1).get_input_providers()
    together = [(0, builder._examples(math, 0))]
    cursor, device = _cursor(monkeypatch, 8)
    for step in range(12):
        (span,) = builder._draw_indices_together(math, together, 8, span=True)
        expected = reference.get_next_batch(math, 8).numpy()
        cursor.feed(span)
        if step == 4:  # the launch fails: the device does not move; the batch is lost with it
            cursor.lost()
            continue
        np.testing.assert_array_equal(xs[device.launch()], expected, f"step {step}")
    assert device.points == [0, 40]  # the first draw, then the one after the lost launch


def test_launches_without_feeds_start_again_from_the_first_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a profiler's launches back to back: the device never reads past its rows."""
    cursor, device = _cursor(monkeypatch, 4)
    block = np.arange(10, dtype=np.int32)
    cursor.feed(RowSpan(block, 4, 4))
    reads = [device.launch().tolist() for _ in range(3)]
    assert reads == [[4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7]]
