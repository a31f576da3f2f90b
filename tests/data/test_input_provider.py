"""Input providers: validation, providers kept in step, a reshuffle every epoch, seeds, both
builders, batches, and the generic path for providers written against deeplearn.js's interface."""

from __future__ import annotations

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import (
    Array1D,
    InCPUMemoryShuffledInputProviderBuilder,
    InGPUMemoryShuffledInputProviderBuilder,
    NDArray,
    Scalar,
    ShapeError,
)

BUILDERS = [InCPUMemoryShuffledInputProviderBuilder, InGPUMemoryShuffledInputProviderBuilder]


def test_validation() -> None:
    with pytest.raises(ShapeError, match="every input must have the same number of examples; got \\[2, 3\\]"):
        InCPUMemoryShuffledInputProviderBuilder([[Scalar.new(1), Scalar.new(2)],
                                                 [Scalar.new(10), Scalar.new(20), Scalar.new(30)]])
    with pytest.raises(ShapeError, match="the examples of input 0 must all have one shape"):
        InCPUMemoryShuffledInputProviderBuilder([[Scalar.new(1), Array1D.new([1, 2])]])
    with pytest.raises(ValueError, match="at least one input"):
        InCPUMemoryShuffledInputProviderBuilder([])
    with pytest.raises(TypeError, match="must be a list of NDArrays or an array"):
        InCPUMemoryShuffledInputProviderBuilder([[1, 2]])


@pytest.mark.parametrize("builder_class", BUILDERS)
def test_providers_stay_in_step_and_reshuffle_every_epoch(builder_class: type, math: dl.NDArrayMath) -> None:
    n = 8
    xs = [Scalar.new(i, math=math) for i in range(n)]
    ys = [Array1D.new([10 * i, -i], math=math) for i in range(n)]
    builder = builder_class([xs, ys], seed=3)
    xp, yp = builder.get_input_providers()
    assert builder.get_input_providers() == [xp, yp]
    epochs = []
    for epoch in range(4):
        assert builder.get_epoch() == epoch
        order = []
        for _ in range(n):
            x = xp.get_next_copy(math)
            y = yp.get_next_copy(math)
            assert y.get_values().tolist() == [10 * x.get(), -x.get()]  # paired
            order.append(int(x.get()))
            xp.dispose_copy(math, x)
            yp.dispose_copy(math, y)
        assert sorted(order) == list(range(n))  # each epoch visits every example once
        epochs.append(order)
    assert len({tuple(o) for o in epochs}) > 1  # reshuffled (deeplearn.js kept one order)


@pytest.mark.parametrize("builder_class", BUILDERS)
def test_batches_cross_epochs_and_interleave_freely(builder_class: type, math: dl.NDArrayMath) -> None:
    values = np.arange(5, dtype=np.float32)
    builder = builder_class([values, values * 2], seed=0)  # arrays with a leading example axis
    xp, yp = builder.get_input_providers()
    xs = np.concatenate([xp.get_next_batch(math, 3).get_values() for _ in range(4)])  # 12 = 2 epochs + 2
    ys = np.concatenate([yp.get_next_batch(math, 4).get_values() for _ in range(3)])
    np.testing.assert_array_equal(ys, xs * 2)
    assert sorted(xs[:5]) == sorted(xs[5:10]) == list(values)
    assert builder.get_epoch() == 2


def test_seeds_repeat_the_order() -> None:
    def order(seed: int) -> list[float]:
        (p,) = InCPUMemoryShuffledInputProviderBuilder([np.arange(10.0)], seed=seed).get_input_providers()
        return p.get_next_batch(dl.NDArrayMathCPU(), 20).get_values().tolist()

    assert order(1) == order(1) and order(1) != order(2)


def test_dtypes_and_shapes_are_kept(cpu_math: dl.NDArrayMath) -> None:
    ints = [NDArray.make([2], [i, i], "int32") for i in range(3)]
    (p,) = InCPUMemoryShuffledInputProviderBuilder([ints]).get_input_providers()
    batch = p.get_next_batch(cpu_math, 2)
    assert batch.shape == (2, 2) and batch.dtype == "int32"


def test_gpu_builder_keeps_one_resident_copy(cpu_math: dl.NDArrayMath) -> None:
    import gc

    builder = InGPUMemoryShuffledInputProviderBuilder([np.zeros((4, 3))], seed=0)
    (p,) = builder.get_input_providers()
    gc.collect()
    before = cpu_math.get_num_arrays()
    with cpu_math.scope():
        p.get_next_batch(cpu_math, 2)
        p.get_next_batch(cpu_math, 2)
    assert cpu_math.get_num_arrays() == before + 1  # the uploaded examples, outside any scope
    builder.dispose()
    assert cpu_math.get_num_arrays() == before


def test_gpu_builder_uploads_epoch_orders_in_blocks_and_forgets_finished_ones(
        math: dl.NDArrayMath, monkeypatch: pytest.MonkeyPatch) -> None:
    """The orders of the next epochs go up in one upload (64 epochs of 6 examples), each the
    order a CPU builder of the same seed uses; the orders of finished epochs are dropped (once
    a block's worth is held: looking at every epoch's end would cost a step's host time)."""
    from deeplearn.data import input_provider

    builder = InGPUMemoryShuffledInputProviderBuilder([np.arange(6.0), np.arange(6.0)], seed=1)
    twin = dl.InCPUMemoryShuffledInputProviderBuilder([np.arange(6.0)], seed=1)
    (twin_x,) = twin.get_input_providers()
    uploads = []
    real = builder._draw_orders
    monkeypatch.setattr(builder, "_draw_orders", lambda first, count: uploads.append(count) or real(first, count))
    xs, ys = builder.get_input_providers()
    epochs = input_provider._EPOCHS_AHEAD + 6
    for epoch in range(epochs):  # epochs of 3 batches; the two providers stay paired
        with math.scope():
            for _ in range(3):
                x, y = xs.get_next_batch(math, 2), ys.get_next_batch(math, 2)
                np.testing.assert_array_equal(x.numpy(), y.numpy())
                np.testing.assert_array_equal(x.numpy(), twin_x.get_next_batch(math, 2).numpy())
        # Finished epochs dropped once more than a block's worth is held: two blocks at most.
        assert len(builder._device_orders) <= 2 * input_provider._EPOCHS_AHEAD
    assert all(e >= input_provider._EPOCHS_AHEAD for e, _ in builder._device_orders)  # the first block's gone
    assert builder.get_epoch() == epochs
    assert uploads == [input_provider._EPOCHS_AHEAD, input_provider._EPOCHS_AHEAD]


class _Counter:
    """deeplearn.js's two-method interface, without subclassing InputProvider."""

    def __init__(self) -> None:
        self.i = 0

    def get_next_copy(self, math: dl.NDArrayMath) -> NDArray:
        self.i += 1
        return Array1D.new([self.i, -self.i], math=math)

    def dispose_copy(self, math: dl.NDArrayMath, copy: NDArray) -> None:
        copy.dispose()


def test_duck_typed_providers_work_in_training(cpu_math: dl.NDArrayMath) -> None:
    provider = _Counter()
    assert isinstance(provider, dl.InputProvider)
    g = dl.Graph()
    x = g.placeholder("x", [2])
    w = g.variable("w", NDArray.zeros([2]))
    cost = g.reduce_sum(g.multiply(w, x))
    s = dl.Session(g, cpu_math)
    s.train(cost, {x: provider}, 3, dl.SGDOptimizer(3.0))  # gradient Σx = [6, -6], step −lr/3
    np.testing.assert_allclose(s.eval(w).get_values(), [-6, 6])
    assert provider.i == 3


def test_examples_of_mixed_dtypes_are_refused() -> None:
    with pytest.raises(dl.DTypeError, match="must all have one dtype; got int32 .example 0. and float32 .example 1."):
        dl.InCPUMemoryShuffledInputProviderBuilder([[dl.Array1D.new([1], "int32"), dl.Array1D.new([2.5])]])


def test_gpu_builder_keeps_few_orders_when_a_provider_lags(math: dl.NDArrayMath) -> None:
    """A provider nobody draws from (an id column) stays in epoch 0 while the others run on: the
    builder keeps the orders of the epochs in use and of those uploaded ahead, not of every
    epoch passed."""
    from deeplearn.data import input_provider

    builder = InGPUMemoryShuffledInputProviderBuilder([np.arange(10.0), np.arange(10.0), np.arange(10.0)], seed=3)
    xs, ys, _ = builder.get_input_providers()
    for _ in range(3 * input_provider._EPOCHS_AHEAD):  # epochs of 2 batches
        with math.scope():
            for _ in range(2):
                np.testing.assert_array_equal(xs.get_next_batch(math, 5).numpy(), ys.get_next_batch(math, 5).numpy())
        assert len(builder._device_orders) <= 2 + input_provider._EPOCHS_AHEAD


@pytest.mark.parametrize("builder_class", [dl.InCPUMemoryShuffledInputProviderBuilder,
                                           InGPUMemoryShuffledInputProviderBuilder])
def test_examples_handed_out_as_rows_may_be_disposed(cpu_math: dl.NDArrayMath, builder_class: type) -> None:
    """Disposing the examples get_next_batch_rows handed out frees them; the next draw makes
    them again and hands out the same batches as a twin builder."""
    data = np.arange(12.0).reshape(6, 2)
    (p,) = builder_class([data], seed=1).get_input_providers()
    (twin,) = builder_class([data], seed=1).get_input_providers()
    for _ in range(4):
        with cpu_math.scope():
            examples, rows = p.get_next_batch_rows(cpu_math, 4)
            np.testing.assert_array_equal(cpu_math.gather(examples, rows).numpy(), twin.get_next_batch(cpu_math, 4).numpy())
            examples.dispose()
