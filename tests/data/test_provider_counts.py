"""Input providers: counts are checked before anything moves, a batch far larger than the data
costs time linear in its size, and the providers of one builder stay paired however unevenly
they are drawn from (audit, issue 16)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn.data.input_provider import _EPOCHS_AHEAD
from deeplearn import InCPUMemoryShuffledInputProviderBuilder, InGPUMemoryShuffledInputProviderBuilder
from deeplearn.data.input_provider import check_count, next_batch

BUILDERS = [InCPUMemoryShuffledInputProviderBuilder, InGPUMemoryShuffledInputProviderBuilder]
BAD_COUNTS = [-1, 0, -(2**70), 1.0, 2.5, True, False, "3", None, np.float64(2.0), np.bool_(True)]


@pytest.mark.parametrize("builder_class", BUILDERS)
@pytest.mark.parametrize("count", BAD_COUNTS, ids=repr)
def test_a_bad_count_changes_nothing(builder_class: type, count: Any, cpu_math: dl.NDArrayMath) -> None:
    """get_next_batch(math, -1) used to move the position to -1: the next draw never returned."""
    builder = builder_class([np.arange(3, dtype=np.float32), np.arange(3, dtype=np.float32)], seed=0)
    xs, ys = builder.get_input_providers()
    name = builder_class.__name__.removesuffix("Builder")
    message = f"{name}.get_next_batch: batch_size must be a positive int; got batch_size={count!r}."
    with pytest.raises(ValueError, match=re.escape(message)):
        xs.get_next_batch(cpu_math, count)
    with pytest.raises(ValueError, match="next_batch: batch_size must be a positive int"):
        next_batch(xs, cpu_math, count)
    assert builder._positions == [0, 0]
    x, y = xs.get_next_batch(cpu_math, 2).numpy(), ys.get_next_batch(cpu_math, 2).numpy()
    np.testing.assert_array_equal(x, y)


class _Counting(dl.InputProvider):
    """deeplearn.js's two methods: the generic get_next_batch stacks its copies."""

    def __init__(self) -> None:
        self.drawn = 0

    def get_next_copy(self, math: dl.NDArrayMath) -> dl.NDArray:
        self.drawn += 1
        return dl.Scalar.new(self.drawn, math=math)

    def dispose_copy(self, math: dl.NDArrayMath, copy: dl.NDArray) -> None:
        copy.dispose()


@pytest.mark.parametrize("count", BAD_COUNTS, ids=repr)
def test_the_generic_batch_checks_its_count(count: Any, cpu_math: dl.NDArrayMath) -> None:
    provider = _Counting()
    message = f"_Counting.get_next_batch: batch_size must be a positive int; got batch_size={count!r}."
    with pytest.raises(ValueError, match=re.escape(message)):
        provider.get_next_batch(cpu_math, count)

    class TwoMethods:  # not even an InputProvider subclass: next_batch checks for it
        get_next_copy = _Counting.get_next_copy
        dispose_copy = _Counting.dispose_copy
        drawn = 0

    with pytest.raises(ValueError, match="next_batch: batch_size must be a positive int"):
        next_batch(TwoMethods(), cpu_math, count)
    assert provider.drawn == 0 and TwoMethods.drawn == 0


def test_counts_of_numpy_integer_types_are_ints(cpu_math: dl.NDArrayMath) -> None:
    (p,) = InCPUMemoryShuffledInputProviderBuilder([np.arange(4.0)], seed=0).get_input_providers()
    assert p.get_next_batch(cpu_math, np.int32(3)).shape == (3,)
    assert check_count(np.uint8(0), "f", "n", minimum=0) == 0
    with pytest.raises(ValueError, match="f: n must be an int >= 2; got n=1."):
        check_count(1, "f", "n", minimum=2)


def test_builder_arguments_are_checked() -> None:
    builder = InCPUMemoryShuffledInputProviderBuilder([np.zeros((3, 2)), np.zeros(3)], seed=0)
    assert builder.example_shape(0) == (2,) and builder.example_shape(1) == ()
    for index in (-1, 2, 0.0, True):
        with pytest.raises(ValueError, match="example_shape: input_index must be"):
            builder.example_shape(index)  # type: ignore[arg-type]
    for seed in (-1, 1.5, True):
        with pytest.raises(ValueError, match=f"seed must be a non-negative int; got seed={seed!r}"):
            InCPUMemoryShuffledInputProviderBuilder([np.zeros(3)], seed=seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("builder_class", BUILDERS)
def test_a_batch_far_larger_than_the_data(builder_class: type, cpu_math: dl.NDArrayMath) -> None:
    """200 000 examples from 3 took 10 s (every epoch was found with a mask over the whole
    batch); a million did not finish. Now one vectorised call computes the epochs' orders."""
    n, big = 3, 200_000
    builder = builder_class([np.arange(n, dtype=np.int32), np.arange(n, dtype=np.int32) * 10], seed=4)
    xs, ys = builder.get_input_providers()
    first = xs.get_next_copy(cpu_math).get()  # start mid-epoch
    x = xs.get_next_batch(cpu_math, big).numpy()
    y = np.concatenate([ys.get_next_batch(cpu_math, k).numpy() for k in (1, big - 5, 4)])  # other cuts
    assert x.shape == (big,) and x.dtype == np.int32
    np.testing.assert_array_equal(y, np.concatenate([[first], x[:-1]]) * 10)  # paired, example by example
    epochs = np.concatenate([[first], x])[: (big + 1) // n * n].reshape(-1, n)
    assert (np.sort(epochs, axis=1) == np.arange(n)).all()  # every epoch a permutation of the data
    assert len({tuple(e) for e in epochs}) == 6  # and reshuffled: all 3! orders occur
    # Kept: the providers' epochs, and the orders drawn ahead of the leading one (a block at most).
    assert builder.get_epoch() == big // n and len(builder._orders) <= 2 + _EPOCHS_AHEAD
    small = builder_class([np.arange(n, dtype=np.int32)], seed=4).get_input_providers()[0]
    again = np.concatenate([small.get_next_batch(cpu_math, 7).numpy() for _ in range(100)])
    np.testing.assert_array_equal(again, np.concatenate([[first], x])[:700])  # the same orders, any batch size


@pytest.mark.parametrize("builder_class", BUILDERS)
def test_an_extra_draw_keeps_examples_paired(builder_class: type, math: dl.NDArrayMath) -> None:
    """The k-th example any provider returns is the same example for all providers: an extra
    draw puts one provider ahead, and the others' later examples pair with its own."""
    n = 5
    builder = builder_class([np.arange(n, dtype=np.float32), np.arange(n, dtype=np.float32) * 10], seed=7)
    xs, ys = builder.get_input_providers()
    extra = xs.get_next_copy(math).get()
    x = np.concatenate([[extra]] + [xs.get_next_batch(math, 3).numpy() for _ in range(6)])
    y = np.concatenate([ys.get_next_batch(math, 3).numpy() for _ in range(6)])
    np.testing.assert_array_equal(y, x[: len(y)] * 10)
    last = ys.get_next_copy(math).get()  # y catches up: from here equal draws give paired batches
    assert last == x[len(y)] * 10
    for _ in range(4):
        np.testing.assert_array_equal(ys.get_next_batch(math, 4).numpy(), xs.get_next_batch(math, 4).numpy() * 10)


@pytest.mark.parametrize("builder_class", BUILDERS)
def test_random_uneven_draws_stay_paired(builder_class: type, math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(1, 7))
        builder = builder_class([np.arange(n, dtype=np.float32) + 100 * k for k in range(3)], seed=trial)
        providers = builder.get_input_providers()
        streams: list[list[np.ndarray]] = [[], [], []]
        for _ in range(25):
            i = int(rng.integers(3))
            if rng.random() < 0.3:
                streams[i].append(providers[i].get_next_copy(math).numpy().reshape(1))
            else:
                streams[i].append(providers[i].get_next_batch(math, int(rng.integers(1, 4 * n + 2))).numpy())
        got = [np.concatenate(s) if s else np.zeros(0, np.float32) for s in streams]
        common = min(len(s) for s in got)
        for k in (1, 2):
            np.testing.assert_array_equal(got[k][:common] - 100 * k, got[0][:common], err_msg=f"trial {trial}")


@pytest.mark.parametrize("builder_class", BUILDERS)
def test_a_failed_draw_moves_nothing(builder_class: type, cpu_math: dl.NDArrayMath,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    builder = builder_class([np.arange(4.0), np.arange(4.0)], seed=0)
    xs, ys = builder.get_input_providers()
    real = builder._gather

    def out_of_memory(*args: Any) -> Any:
        raise MemoryError("out of device memory")

    monkeypatch.setattr(builder, "_gather", out_of_memory)
    with pytest.raises(MemoryError):
        xs.get_next_batch(cpu_math, 3)
    monkeypatch.setattr(builder, "_gather", real)
    assert builder._positions == [0, 0]
    np.testing.assert_array_equal(xs.get_next_batch(cpu_math, 3).numpy(), ys.get_next_batch(cpu_math, 3).numpy())
