"""InOrderInputProvider: the order given, wrapping around; batches equal to stacked copies; the
row-index path a Session gathers; its use by a Session; memory; bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, DisposedError, DTypeError, InOrderInputProvider, NDArray, Scalar, ShapeError
from deeplearn.data.input_provider import next_batch_rows


def _copies(provider: InOrderInputProvider, math: dl.NDArrayMath, count: int) -> list[np.ndarray]:
    out = []
    for _ in range(count):
        copy = provider.get_next_copy(math)
        out.append(copy.numpy())
        provider.dispose_copy(math, copy)
    return out


def _data() -> list[np.ndarray]:
    """Five examples of each dtype: float32 [2], int32 [] and bool [2, 1]."""
    return [
        np.arange(10, dtype=np.float32).reshape(5, 2),
        np.arange(5, dtype=np.int32) * 3,
        (np.arange(10) % 3 == 0).reshape(5, 2, 1),
    ]


def test_copies_come_in_order_and_wrap_around(math: dl.NDArrayMath) -> None:
    xs = [Array1D.new([i, -i], math=math) for i in range(3)]
    provider = InOrderInputProvider(xs)
    got = _copies(provider, math, 7)
    assert [c.tolist() for c in got] == [[i % 3, -(i % 3)] for i in range(7)]
    assert provider.position == 1
    assert provider.num_examples == 3 and provider.example_shape == (2,) and provider.dtype == "float32"


def test_start_and_every_way_of_giving_the_examples(math: dl.NDArrayMath) -> None:
    values = np.arange(8, dtype=np.float32).reshape(4, 2)
    ways: list[Any] = [
        values,
        values.tolist(),
        NDArray.from_numpy(values, math=math),
        [NDArray.from_numpy(row, math=math) for row in values],
    ]
    for examples in ways:
        provider = InOrderInputProvider(examples, start=6)  # 6 mod 4: example 2 first
        np.testing.assert_array_equal(provider.get_next_batch(math, 3).numpy(), values[[2, 3, 0]])
    scalars = InOrderInputProvider([Scalar.new(v, math=math) for v in (5, 6)])
    assert scalars.example_shape == () and scalars.get_next_batch(math, 3).numpy().tolist() == [5, 6, 5]


@pytest.mark.parametrize("batch_size", [1, 3, 5, 7, 12])  # within, exactly, across and over a pass
def test_batches_equal_stacked_copies(math: dl.NDArrayMath, batch_size: int) -> None:
    for values in _data():
        batched, single = InOrderInputProvider(values, start=2), InOrderInputProvider(values, start=2)
        for _ in range(4):
            batch = batched.get_next_batch(math, batch_size)
            expected = np.stack(_copies(single, math, batch_size))
            assert batch.shape == expected.shape and batch.numpy().dtype == expected.dtype
            np.testing.assert_array_equal(batch.numpy(), expected)
        assert batched.position == single.position


def test_dtypes_follow_from_numpy(cpu_math: dl.NDArrayMath) -> None:
    floats, ints, flags = _data()
    assert InOrderInputProvider(floats.astype(np.float64)).dtype == "float32"
    assert InOrderInputProvider(ints.astype(np.int64)).dtype == "int32"
    assert InOrderInputProvider(flags).dtype == "bool"
    assert InOrderInputProvider([Array1D.new([1, 2], "int32")]).get_next_copy(cpu_math).dtype == "int32"


def test_rows_gather_to_the_next_batch(math: dl.NDArrayMath) -> None:
    values = np.arange(12, dtype=np.float32).reshape(6, 2)
    by_rows, by_batch = InOrderInputProvider(values, start=4), InOrderInputProvider(values, start=4)
    for batch_size in (3, 6, 8, 1):
        drawn = next_batch_rows(by_rows, math, batch_size)
        assert drawn is not None
        examples, rows = drawn
        assert rows.dtype == "int32" and examples.shape == (6, 2)
        np.testing.assert_array_equal(
            math.gather(examples, rows).numpy(), by_batch.get_next_batch(math, batch_size).numpy()
        )
        rows.dispose()
    assert by_rows.position == by_batch.position


def test_the_examples_are_copied(cpu_math: dl.NDArrayMath) -> None:
    values = np.zeros((2, 2), np.float32)
    x = Array1D.new([1, 2])
    from_array, from_list = InOrderInputProvider(values), InOrderInputProvider([x])
    values[:] = 7
    x.dispose()  # the provider has its own copy
    assert from_array.get_next_batch(cpu_math, 2).numpy().tolist() == [[0, 0], [0, 0]]
    assert from_list.get_next_copy(cpu_math).numpy().tolist() == [1, 2]


def test_examples_outlive_scopes_until_dispose(math: dl.NDArrayMath) -> None:
    before = math.get_num_arrays()
    provider = InOrderInputProvider(np.arange(6, dtype=np.float32).reshape(3, 2))
    with math.scope():
        provider.get_next_batch(math, 2)
        copy = provider.get_next_copy(math)
        provider.dispose_copy(math, copy)
    assert math.get_num_arrays() == before + 1  # the examples, resident for the next draw
    with math.scope():
        assert provider.get_next_batch(math, 2).numpy().tolist() == [[0, 1], [2, 3]]
    provider.dispose()
    assert math.get_num_arrays() == before
    assert provider.get_next_copy(math).numpy().tolist() == [4, 5]  # uploaded again
    provider.dispose()


def test_session_eval_batch_keeps_the_order(math: dl.NDArrayMath) -> None:
    g = dl.Graph()
    x = g.placeholder("x", [2])
    y = g.reduce_sum(g.multiply(x, g.constant(Array1D.new([1, 10], math=math))))
    session = dl.Session(g, math)
    values = np.arange(10, dtype=np.float32).reshape(5, 2)
    provider = InOrderInputProvider(values)
    with math.scope():
        for _ in range(3):  # the first call records the step, later ones replay it
            out = session.eval_batch(y, [dl.FeedEntry(x, provider)], 5)
            np.testing.assert_allclose(out.numpy(), values @ [1, 10])
    provider.dispose()


class _CopiesOnly(dl.InputProvider):
    """deeplearn.js's two-method interface: the Session stacks its copies."""

    def __init__(self, values: np.ndarray) -> None:
        self.values, self.i = values, 0

    def get_next_copy(self, math: dl.NDArrayMath) -> NDArray:
        x = NDArray.from_numpy(self.values[self.i % len(self.values)], math=math)
        self.i += 1
        return x

    def dispose_copy(self, math: dl.NDArrayMath, copy: NDArray) -> None:
        copy.dispose()


def test_session_train_sees_the_same_batches_as_copies(math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(7, 3)).astype(np.float32), rng.normal(size=(7, 2)).astype(np.float32)
    w0 = rng.normal(size=(3, 2)).astype(np.float32)
    trained = []
    for make in (InOrderInputProvider, _CopiesOnly):
        g = dl.Graph()
        x, label = g.placeholder("x", [3]), g.placeholder("label", [2])
        w = g.variable("w", NDArray.from_numpy(w0, math=math))
        cost = g.mean_squared_cost(g.matmul(x, w), label)
        session = dl.Session(g, math)
        feeds = [dl.FeedEntry(x, make(xs)), dl.FeedEntry(label, make(ys))]
        optimizer = dl.SGDOptimizer(0.1)
        with math.scope():
            for _ in range(5):  # 4 examples a batch over 7: batches cross the end
                session.train(cost, feeds, 4, optimizer)
        trained.append(w.node.data.numpy())  # type: ignore[attr-defined]
    np.testing.assert_allclose(trained[0], trained[1], rtol=1e-6)


@pytest.mark.parametrize(
    ("examples", "error", "fragment"),
    [
        ([], ValueError, r"at least one example; got 0"),
        (np.zeros((0, 3)), ValueError, r"at least one example; got 0 \(shape \(0, 3\)\)"),
        (np.float32(2), ShapeError, "a first axis that indexes the examples; got a scalar"),
        ([[1, 2], [3]], ShapeError, "must form a rectangular array"),
        (["a", "b"], DTypeError, "real numbers or booleans; got values of dtype <U1"),
        (np.array([1 + 2j]), DTypeError, "real numbers or booleans"),
        (np.array([2**40]), ValueError, "must fit in int32; got values from 1099511627776"),
        (None, TypeError, "a list of NDArrays or an array .*; got NoneType"),
        ("abc", TypeError, "got str"),
    ],
)
def test_bad_examples(cpu_math: dl.NDArrayMath, examples: Any, error: type, fragment: str) -> None:
    with pytest.raises(error, match=f"^InOrderInputProvider: .*{fragment}"):
        InOrderInputProvider(examples)


def test_bad_lists_of_ndarrays(cpu_math: dl.NDArrayMath) -> None:
    with pytest.raises(TypeError, match=r"must all be NDArrays; got int at index 1"):
        InOrderInputProvider([Scalar.new(1), 2])
    with pytest.raises(ShapeError, match=r"one shape; got \(\) \(example 0\) and \(2,\) \(example 1\)"):
        InOrderInputProvider([Scalar.new(1), Array1D.new([1, 2])])
    with pytest.raises(DTypeError, match="one dtype; got float32 .example 0. and int32 .example 1."):
        InOrderInputProvider([Scalar.new(1), Scalar.new(2, "int32")])
    with pytest.raises(ShapeError, match=r"got a scalar NDArray \(shape \(\)\)"):
        InOrderInputProvider(Scalar.new(1))
    gone = Array1D.new([1, 2])
    gone.dispose()
    with pytest.raises(DisposedError, match="^InOrderInputProvider: NDArray is disposed"):
        InOrderInputProvider([gone])


@pytest.mark.parametrize("start", [-1, 1.0, True, "0"])
def test_bad_start(cpu_math: dl.NDArrayMath, start: Any) -> None:
    with pytest.raises(ValueError, match=r"^InOrderInputProvider: start must be a non-negative int; got start="):
        InOrderInputProvider([Scalar.new(1)], start=start)


@pytest.mark.parametrize("batch_size", [0, -2, 2.0, True, None])
def test_bad_batch_size_leaves_the_position(cpu_math: dl.NDArrayMath, batch_size: Any) -> None:
    provider = InOrderInputProvider(np.arange(3), start=1)
    for method in ("get_next_batch", "get_next_batch_rows"):
        with pytest.raises(
            ValueError, match=rf"^InOrderInputProvider.{method}: batch_size must be a positive int; got"
        ):
            getattr(provider, method)(cpu_math, batch_size)
    assert provider.position == 1
    assert provider.get_next_copy(cpu_math).get() == 1


def test_is_exported() -> None:
    assert dl.InOrderInputProvider is dl.data.InOrderInputProvider is InOrderInputProvider
    assert "InOrderInputProvider" in dl.__all__ and "InOrderInputProvider" in dl.data.__all__
    assert isinstance(InOrderInputProvider([Scalar.new(1)]), dl.InputProvider)
