"""Regression: a shuffled provider's cost per example does not grow with the epochs trained
(an order was once redrawn from epoch 0 after finished epochs were pruned: quad went from 2.9 ms
to 78 ms per step over 3 000 steps), nor with how far one provider runs ahead of another."""

from __future__ import annotations

import numpy as np
import pytest

import deeplearn as dl
from deeplearn.data.input_provider import _EPOCHS_AHEAD


def _count_orders(builder: dl.InMemoryShuffledInputProviderBuilder, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the epoch orders the builder computes (one entry per epoch)."""
    computed: list[int] = []
    real = builder._draw_orders

    def counting(first_epoch: int, count: int) -> np.ndarray:
        computed.extend(range(first_epoch, first_epoch + count))
        return real(first_epoch, count)

    monkeypatch.setattr(builder, "_draw_orders", counting)
    return computed


def test_one_order_is_drawn_per_epoch_and_old_orders_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    math = dl.NDArrayMathCPU()
    builder = dl.InCPUMemoryShuffledInputProviderBuilder([np.arange(4, dtype=np.float32)], seed=0)
    computed = _count_orders(builder, monkeypatch)
    (provider,) = builder.get_input_providers()
    seen = []
    for _ in range(1000):  # 1 000 epochs of 4 examples, one batch of 4 per epoch
        with math.scope():
            seen.append(sorted(provider.get_next_batch(math, 4).get_values().tolist()))
    assert seen == [[0.0, 1.0, 2.0, 3.0]] * 1000  # every epoch is a permutation of the data
    # Each epoch's order once, in blocks of _EPOCHS_AHEAD epochs (the last block runs past 1 000).
    assert computed == list(range(len(computed))), "an epoch's order was computed twice"
    assert 1000 <= len(computed) < 1000 + _EPOCHS_AHEAD
    assert len(builder._orders) <= _EPOCHS_AHEAD  # this epoch's and those drawn ahead of it


def test_a_provider_far_ahead_keeps_one_order_per_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """An input nobody draws from (a label provider unused by an autoencoder) must not make the
    builder keep every epoch's order for it."""
    math = dl.NDArrayMathCPU()
    builder = dl.InCPUMemoryShuffledInputProviderBuilder([np.arange(5.0), np.arange(5.0)], seed=1)
    xs, ys = builder.get_input_providers()
    ahead = np.concatenate([xs.get_next_batch(math, 3).get_values() for _ in range(500)])
    assert len(builder._orders) <= 2 + _EPOCHS_AHEAD  # x's epoch, y's epoch 0, a block drawn ahead of x
    behind = np.concatenate([ys.get_next_batch(math, 7).get_values() for _ in range(215)])
    np.testing.assert_array_equal(behind[: len(ahead)], ahead)  # the orders y recomputes are x's
    assert builder.get_epoch() == 300


def test_an_epochs_order_is_the_same_whatever_was_drawn_before() -> None:
    """The next epoch's order continues the random stream where the last one stopped, and any
    other epoch's starts it over at that epoch: either way, epoch e's order is a function of the
    seed and e alone."""
    sequential = dl.InCPUMemoryShuffledInputProviderBuilder([np.arange(6.0)], seed=3)
    orders = [sequential._draw_orders(e, 1)[0] for e in range(6)]
    jumping = dl.InCPUMemoryShuffledInputProviderBuilder([np.arange(6.0)], seed=3)
    for e in (4, 5, 0, 2, 3, 1):
        np.testing.assert_array_equal(jumping._draw_orders(e, 1)[0], orders[e])
    np.testing.assert_array_equal(jumping._draw_orders(1, 4), np.stack(orders[1:5]))
    np.testing.assert_array_equal(jumping._draw_orders(5, 1)[0], orders[5])
    assert len({tuple(o) for o in orders}) > 1  # reshuffled per epoch


def test_large_epochs_keep_one_order_per_provider() -> None:
    """With more examples than a block holds (one epoch's order per draw), finished orders are
    dropped at every epoch's end, as before blocks: 60 epochs of a million examples do not
    leave 60 orders behind."""
    n = 70_000
    math = dl.NDArrayMathCPU()
    builder = dl.InCPUMemoryShuffledInputProviderBuilder([np.arange(n, dtype=np.float32)] * 2, seed=0)
    xs, ys = builder.get_input_providers()
    for _ in range(6):
        with math.scope():
            xs.get_next_batch(math, n)
            ys.get_next_batch(math, n)
        assert len(builder._orders) <= 2
