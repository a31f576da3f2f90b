"""Every graph op through a Session, on every backend: forward against an independent NumPy
oracle (unbatched with NDArray feeds, and batched), gradients against float64 finite differences
of the oracle, and batched training equal to deeplearn.js's literal per-example loop.

Each case runs under every batching pattern: each input is either fed per example (a placeholder,
batched in training) or shared by all examples (a variable, unbatched).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import CostReduction, FeedEntry, Graph, NDArray, Session, SGDOptimizer, Tensor
from tests.graph.graph_cases import CASES, GraphCase
from tests.graph.helpers import ListProvider, numeric_vjp

B = 3  # examples per batch


def _patterns(case: GraphCase) -> list[tuple[bool, ...]]:
    free = [i for i in range(len(case.shapes)) if i not in case.fixed]
    out = []
    for bits in itertools.product([False, True], repeat=len(free)):
        pattern = [False] * len(case.shapes)
        for i, bit in zip(free, bits):
            pattern[i] = bit
        out.append(tuple(pattern))
    return out


def _params(grad_only: bool) -> list[object]:
    return [pytest.param(case, pattern, id=f"{case.id}-{''.join('b' if p else 'v' for p in pattern)}")
            for case in CASES if case.grad or not grad_only for pattern in _patterns(case)]


def _data(case: GraphCase, seed: int) -> list[np.ndarray]:
    """B examples per input (an unbatched input uses example 0 for every example)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, shape in enumerate(case.shapes):
        low, high = (0.5, 2.0) if i in case.positive else (-2.0, 2.0)
        out.append(rng.uniform(low, high, (B, *shape)).astype(np.float32))
    return out


def _build(case: GraphCase, pattern: tuple[bool, ...], data: list[np.ndarray],
           math: dl.NDArrayMath) -> tuple[Graph, list[Tensor], Tensor]:
    g = Graph()
    inputs = []
    for i, (batched, values) in enumerate(zip(pattern, data)):
        if batched:
            inputs.append(g.placeholder(f"in{i}", case.shapes[i]))
        else:
            inputs.append(g.variable(f"in{i}", NDArray.make(case.shapes[i], values[0], math=math)))
    return g, inputs, case.build(g, inputs)


def _example(data: list[np.ndarray], pattern: tuple[bool, ...], b: int) -> list[np.ndarray]:
    return [values[b] if batched else values[0] for values, batched in zip(data, pattern)]


def _reference(case: GraphCase, data: list[np.ndarray], pattern: tuple[bool, ...]) -> np.ndarray:
    return np.stack([np.asarray(case.reference(*(x.astype(np.float64) for x in _example(data, pattern, b))))
                     for b in range(B)])


@pytest.mark.parametrize(("case", "pattern"), _params(grad_only=False))
def test_forward_unbatched_and_batched(case: GraphCase, pattern: tuple[bool, ...], math: dl.NDArrayMath) -> None:
    data = _data(case, 0)
    g, inputs, y = _build(case, pattern, data, math)
    session = Session(g, math)
    expected = _reference(case, data, pattern)
    with math.scope():
        # Unbatched: one example at a time, NDArray feeds (Session.eval).
        for b in range(B):
            feeds = {t: NDArray.make(t.shape, data[i][b], math=math) for i, t in enumerate(inputs) if pattern[i]}
            got = session.eval(y, feeds)
            assert got.shape == y.shape, case.id
            np.testing.assert_allclose(got.numpy(), expected[b], rtol=1e-5, atol=1e-5, err_msg=f"{case.id} example {b}")
        # Batched: every example in one pass (Session.eval_batch).
        feeds = [FeedEntry(t, ListProvider(data[i])) for i, t in enumerate(inputs) if pattern[i]]
        got = session.eval_batch(y, feeds, B)
        assert got.shape == (B, *y.shape), case.id
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5, err_msg=f"{case.id} batched")


def _train_gradients(session: Session, cost: Tensor, inputs: list[Tensor], r: Tensor, data: list[np.ndarray],
                     r_values: np.ndarray, pattern: tuple[bool, ...], batch_size: int,
                     calls: int) -> tuple[list[list[np.ndarray]], list[float]]:
    """Trains ``calls`` batches with learning rate 0 and collects, per call, each input's
    gradient and the summed cost."""
    feeds = [FeedEntry(t, ListProvider(data[i])) for i, t in enumerate(inputs) if pattern[i]]
    feeds.append(FeedEntry(r, ListProvider(r_values)))
    grads, costs = [], []
    for _ in range(calls):
        with session.math.scope():
            c = session.train(cost, feeds, batch_size, SGDOptimizer(0.0), CostReduction.SUM)
            costs.append(c.get())
            grads.append([session.gradient_array_map.get(t).numpy() for t in inputs])
    return grads, costs


@pytest.mark.parametrize(("case", "pattern"), _params(grad_only=True))
def test_gradients_match_finite_differences_and_the_per_example_loop(
        case: GraphCase, pattern: tuple[bool, ...], math: dl.NDArrayMath) -> None:
    data = _data(case, 1)
    g, inputs, y = _build(case, pattern, data, math)
    r = g.placeholder("r", y.shape)  # a random upstream gradient per example
    cost = g.reduce_sum(g.multiply(y, r)) if y.shape else g.multiply(y, r)
    r_values = np.random.default_rng(2).standard_normal((B, *y.shape)).astype(np.float32)
    session = Session(g, math)

    (batched_grads,), (batched_cost,) = _train_gradients(session, cost, inputs, r, data, r_values, pattern, B, 1)

    # The oracle: per-example vector-Jacobian products of the NumPy reference, in float64.
    ref = _reference(case, data, pattern)
    np.testing.assert_allclose(batched_cost, np.sum(ref * r_values), rtol=1e-4, atol=1e-4, err_msg=case.id)
    for i in range(len(inputs)):
        vjps = [numeric_vjp(case.reference, _example(data, pattern, b), r_values[b].astype(np.float64), i)
                for b in range(B)]
        expected = np.stack(vjps) if pattern[i] else np.sum(vjps, axis=0)
        got = batched_grads[i]
        assert got.shape == expected.shape, f"{case.id}: gradient {i} shape {got.shape} vs {expected.shape}"
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=2e-3 * scale, err_msg=f"{case.id}: gradient of input {i}")

    # deeplearn.js's loop: one example per train call, gradients summed (variables) or stacked.
    per_example, costs = _train_gradients(session, cost, inputs, r, data, r_values, pattern, 1, B)
    np.testing.assert_allclose(batched_cost, sum(costs), rtol=1e-5, atol=1e-5, err_msg=case.id)
    for i in range(len(inputs)):
        loop = [per_example[b][i] for b in range(B)]
        loop_total = np.concatenate(loop) if pattern[i] else np.sum(loop, axis=0)
        np.testing.assert_allclose(batched_grads[i], loop_total, rtol=1e-5, atol=1e-5,
                                   err_msg=f"{case.id}: batched vs per-example gradient of input {i}")
