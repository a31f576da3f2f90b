"""The batch path of the in-memory providers (one gather per batch) hands out exactly the
examples, in the order, that the per-example path (``get_next_copy``) hands out, and the generic
path that stacks a provider's copies gives the same batches too."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import (
    InCPUMemoryShuffledInputProviderBuilder,
    InGPUMemoryShuffledInputProviderBuilder,
    NDArray,
)
from deeplearn.data.input_provider import next_batch

BUILDERS = [InCPUMemoryShuffledInputProviderBuilder, InGPUMemoryShuffledInputProviderBuilder]


def _data(n: int) -> list[np.ndarray]:
    xs = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    labels = np.arange(n, dtype=np.int32) * 3
    flags = (np.arange(n) % 2).astype(bool)
    return [xs, labels, flags]


def _one_by_one(provider: Any, math: dl.NDArrayMath, count: int) -> np.ndarray:
    out = []
    for _ in range(count):
        copy = provider.get_next_copy(math)
        out.append(copy.numpy())
        provider.dispose_copy(math, copy)
    return np.stack(out)


@pytest.mark.parametrize("builder_class", BUILDERS)
@pytest.mark.parametrize("batch_size", [1, 3, 5, 7, 12])  # within, exactly one, across and over epochs
def test_batches_equal_the_per_example_sequence(builder_class: type, math: dl.NDArrayMath, batch_size: int) -> None:
    n, steps = 5, 6
    batched = builder_class(_data(n), seed=11).get_input_providers()
    single = builder_class(_data(n), seed=11).get_input_providers()
    for _ in range(steps):
        for pb, ps in zip(batched, single):
            batch = pb.get_next_batch(math, batch_size)
            expected = _one_by_one(ps, math, batch_size)
            assert batch.shape == expected.shape and batch.dtype in ("float32", "int32", "bool")
            assert batch.numpy().dtype == expected.dtype
            np.testing.assert_array_equal(batch.numpy(), expected)


def test_gpu_builder_hands_out_the_cpu_builders_batches_across_blocks(math: dl.NDArrayMath) -> None:
    """The GPU builder draws its blocks of epoch orders for the backend alone, and a batch across
    epochs from host orders drawn again: batches of every kind, within one epoch, exactly one and
    across several, over more than two blocks of orders, are the CPU builder's of the same seed."""
    from deeplearn.data import input_provider

    n = 5
    (gpu,) = InGPUMemoryShuffledInputProviderBuilder([_data(n)[0]], seed=4).get_input_providers()
    (cpu,) = InCPUMemoryShuffledInputProviderBuilder([_data(n)[0]], seed=4).get_input_providers()
    sizes = [2, 7, 3, 5, 12, 1, 4]
    drawn = 0
    while drawn < 2.5 * input_provider._EPOCHS_AHEAD * n:
        for k in sizes:
            with math.scope():
                np.testing.assert_array_equal(gpu.get_next_batch(math, k).numpy(), cpu.get_next_batch(math, k).numpy())
            drawn += k


def test_gpu_builder_rows_drawn_as_spans_are_the_cpu_builders(math: dl.NDArrayMath) -> None:
    """What a captured training step reads (``deeplearn/compile/rows.py``): on CUDA, row indices
    drawn as RowSpans of the uploaded blocks of orders (within an epoch and across epochs, as
    arrays where a batch spans two blocks) index exactly the CPU builder's batches; on the CPU
    the draw gives arrays."""
    from deeplearn.compile.rows import RowSpan, plain_rows
    from deeplearn.data import input_provider

    n = 5
    builder = InGPUMemoryShuffledInputProviderBuilder([_data(n)[0]], seed=4)
    (cpu,) = InCPUMemoryShuffledInputProviderBuilder([_data(n)[0]], seed=4).get_input_providers()
    examples = builder._examples(math, 0)
    host = examples.numpy()
    spans, across = 0, 0
    drawn = 0
    while drawn < 2.5 * input_provider._EPOCHS_AHEAD * n:
        for k in [2, 7, 3, 5, 12, 1, 4]:
            (rows,) = builder._draw_indices_together(math, [(0, examples)], k, span=True)
            if type(rows) is RowSpan:
                spans += 1
                across += drawn // n != (drawn + k - 1) // n
            got = host[math.backend.to_numpy(plain_rows([rows])[0])]
            with math.scope():
                np.testing.assert_array_equal(got, cpu.get_next_batch(math, k).numpy())
            drawn += k
    if math.backend.name == "cuda":
        assert spans > 100 and across > 50, (spans, across)
    else:
        assert spans == 0


@pytest.mark.parametrize("builder_class", BUILDERS)
def test_interleaved_batch_sizes_keep_inputs_paired(builder_class: type, math: dl.NDArrayMath) -> None:
    xs, labels, _ = _data(7)
    xp, lp = builder_class([xs, labels], seed=2).get_input_providers()
    got_x = np.concatenate([xp.get_next_batch(math, k).numpy() for k in (3, 4, 1, 6, 2)])
    got_l = np.concatenate([lp.get_next_batch(math, k).numpy() for k in (2, 2, 5, 7)])
    np.testing.assert_array_equal(got_x[:, 0] / 2 * 3, got_l[: len(got_x)])  # example i pairs with label 3i


@pytest.mark.parametrize("builder_class", BUILDERS)
def test_a_batch_owns_its_memory(builder_class: type, math: dl.NDArrayMath) -> None:
    (p,) = builder_class([np.ones((4, 2), np.float32)], seed=0).get_input_providers()
    first = p.get_next_batch(math, 4)
    first.fill(-1)  # writing to a batch must not reach the examples the provider keeps
    np.testing.assert_array_equal(p.get_next_batch(math, 4).numpy(), np.ones((4, 2)))


class _PerExample:
    """A provider with deeplearn.js's two methods only: batches are its copies stacked."""

    def __init__(self, examples: list[NDArray]) -> None:
        self.examples, self.i = examples, 0

    def get_next_copy(self, math: dl.NDArrayMath) -> NDArray:
        x = self.examples[self.i % len(self.examples)]
        self.i += 1
        return math.clone(x)

    def dispose_copy(self, math: dl.NDArrayMath, copy: NDArray) -> None:
        copy.dispose()


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_stacked_copies_give_the_batch(math: dl.NDArrayMath, dtype: str) -> None:
    examples = [NDArray.make([2], [i, i + 1], dtype, math=math) for i in range(3)]
    batch = next_batch(_PerExample(examples), math, 4)
    assert batch.dtype == dtype and batch.shape == (4, 2)
    expected = np.stack([e.numpy() for e in (examples + examples)[:4]])
    np.testing.assert_array_equal(batch.numpy(), expected)
    assert batch.backend is math.backend


def _resident(builder: Any, math: dl.NDArrayMath) -> list[tuple[int, NDArray]]:
    """(input index, its examples resident on ``math``'s backend) for each input of ``builder``:
    what a Session's training step draws rows for; skips where the builder keeps none there."""
    inputs = [(i, builder._examples(math, i)) for i in range(len(builder._host))]
    if inputs[0][1] is None:
        pytest.skip(f"{type(builder).__name__} keeps no examples on the {math.backend.name} backend")
    return inputs


@pytest.mark.parametrize("builder_class", BUILDERS)
@pytest.mark.parametrize("batch_size", [1, 3, 5, 7, 12])  # within, exactly one, across and over epochs
def test_rows_drawn_together_index_the_batches(
    builder_class: type, math: dl.NDArrayMath, batch_size: int
) -> None:
    """A training step draws the row indices of its paired providers in one go
    (``_draw_indices_together``): the rows they index are the batches ``get_next_batch`` hands
    out, in the same order, and the providers move on as far."""
    n, steps = 5, 6
    together = builder_class(_data(n), seed=11)
    single = builder_class(_data(n), seed=11).get_input_providers()
    inputs = _resident(together, math)
    for _ in range(steps):
        drawn = together._draw_indices_together(math, inputs, batch_size)
        assert drawn is not None and len(drawn) == len(inputs)
        for (_, examples), rows, provider in zip(inputs, drawn, single, strict=True):
            got = examples.numpy()[math.backend.to_numpy(rows)]
            np.testing.assert_array_equal(got, provider.get_next_batch(math, batch_size).numpy())
    assert together.get_epoch() == steps * batch_size // n


@pytest.mark.parametrize("builder_class", BUILDERS)
def test_rows_are_not_drawn_for_disposed_examples(builder_class: type, math: dl.NDArrayMath) -> None:
    """Examples disposed since a step last drew: nothing is drawn (None) and no provider moves,
    so the step's ordinary path draws the batch the providers were at."""
    builder = builder_class(_data(5), seed=3)
    reference = builder_class(_data(5), seed=3).get_input_providers()
    inputs = _resident(builder, math)
    assert builder._draw_indices_together(math, inputs, 2) is not None
    for provider in reference:
        provider.get_next_batch(math, 2)
    inputs[1][1].dispose()
    assert builder._draw_indices_together(math, inputs, 2) is None
    for provider, expected in zip(builder.get_input_providers(), reference, strict=True):  # none moved
        got = provider.get_next_batch(math, 2).numpy()
        np.testing.assert_array_equal(got, expected.get_next_batch(math, 2).numpy())


@pytest.mark.parametrize("builder_class", BUILDERS)
@pytest.mark.parametrize("batch_size", [0, -1, 2.0])
def test_rows_are_drawn_only_for_a_positive_count(
    builder_class: type, math: dl.NDArrayMath, batch_size: Any
) -> None:
    """``get_next_batch_rows`` checks its count as ``get_next_batch`` does, before anything
    moves: the next batch is still the one the provider was at."""
    (provider,) = builder_class([_data(5)[0]], seed=4).get_input_providers()
    (reference,) = builder_class([_data(5)[0]], seed=4).get_input_providers()
    provider.get_next_batch(math, 3)  # within an epoch whose order is held
    reference.get_next_batch(math, 3)
    name = builder_class.__name__.removesuffix("Builder")
    with pytest.raises(ValueError, match=rf"^{name}.get_next_batch_rows: batch_size must be a positive int"):
        provider.get_next_batch_rows(math, batch_size)
    got, want = provider.get_next_batch(math, 2).numpy(), reference.get_next_batch(math, 2).numpy()
    np.testing.assert_array_equal(got, want)
