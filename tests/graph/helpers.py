"""Shared test helpers for the graph tests: an ordered InputProvider and numeric gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import deeplearn as dl
from deeplearn import NDArray


class ListProvider(dl.InputProvider):
    """Hands out the rows of ``values`` in order, cycling (no shuffling, so tests know which
    example went where). Uses InputProvider's generic get_next_batch (stacked copies)."""

    def __init__(self, values: Any) -> None:
        self.values = np.asarray(values, dtype=np.float32)
        self.position = 0

    def get_next_copy(self, math: dl.NDArrayMath) -> NDArray:
        value = self.values[self.position % len(self.values)]
        self.position += 1
        return NDArray.make(value.shape, value, math=math)

    def dispose_copy(self, math: dl.NDArrayMath, copy: NDArray) -> None:
        copy.dispose()


def numeric_vjp(f: Callable[..., Any], inputs: list[np.ndarray], dy: np.ndarray, i: int,
                eps: float = 1e-6) -> np.ndarray:
    """d/d inputs[i] of Σ dy · f(inputs), by central differences in float64."""
    xs = [np.array(x, dtype=np.float64) for x in inputs]
    x, grad = xs[i], np.zeros_like(xs[i])
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = np.sum(np.asarray(f(*xs), dtype=np.float64) * dy)
        x[idx] = old - eps
        minus = np.sum(np.asarray(f(*xs), dtype=np.float64) * dy)
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


OPTIMIZERS: dict[str, Callable[[], dl.Optimizer]] = {
    "sgd": lambda: dl.SGDOptimizer(0.1),
    "momentum": lambda: dl.MomentumOptimizer(0.05, 0.9),
    "rmsprop": lambda: dl.RMSPropOptimizer(0.01, 0.9),
    "adagrad": lambda: dl.AdagradOptimizer(0.05),
    "adadelta": lambda: dl.AdadeltaOptimizer(0.5, 0.9),
    "adam": lambda: dl.AdamOptimizer(0.01, 0.9, 0.999),
    "adamax": lambda: dl.AdamaxOptimizer(0.01, 0.9, 0.999),
}
"""One of each optimizer, with hyperparameters that train the small models of these tests."""


def train_dense(
    math: dl.NDArrayMath,
    builder: Any,
    compiled: bool,
    make_optimizer: Callable[[], dl.Optimizer],
    steps: int = 12,
    inspect: bool = False,
    fresh_feeds: bool = False,
) -> tuple[list[Any], list[np.ndarray], dl.Session]:
    """A relu MLP with a softmax cross-entropy, fed by ``builder``'s providers, trained ``steps``
    steps with ``capture_plans = compiled`` (unfused: compared bit for bit); between steps 5 and
    6 the learning rate changes, and before step 9 the user sets a variable. ``fresh_feeds``: a
    new feeds dict every call, so that no call is a rerun of the last (``rerun.py``) and each
    takes the ordinary path. Returns (each step's
    cost, and with ``inspect`` its fed input's gradient and activations; the variables' final
    values; the Session, whose ``_last_call`` holds the arguments of its training call)."""
    g = dl.Graph()
    x, label = g.placeholder("x", [6]), g.placeholder("label", [3])
    rng = np.random.default_rng(0)

    def init(*shape: int) -> dl.NDArrayInitializer:  # the same initial weights in every run
        return dl.NDArrayInitializer(NDArray.from_numpy(rng.standard_normal(shape).astype(np.float32), math=math))

    h = g.layers.dense("h", x, 5, lambda t: g.relu(t), True, init(6, 5), init(5))
    cost = g.softmax_cross_entropy_cost(g.layers.dense("out", h, 3, None, True, init(5, 3), init(3)), label)
    xs = rng.standard_normal((16, 6)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    xp, lp = builder([xs, labels], seed=0).get_input_providers()
    variables = [n.output for n in g.nodes if isinstance(n, dl.graph.graph.VariableNode)]
    session = dl.Session(g, math)
    session.capture_plans = compiled
    session.fuse_kernels = False  # fused sums add in another order
    optimizer = make_optimizer()
    call = (cost, {x: xp, label: lp}, 4, optimizer, dl.CostReduction.MEAN)
    session._last_call = call  # type: ignore[attr-defined]
    seen: list[Any] = []
    for step in range(steps):
        if step == 6:
            optimizer.learning_rate *= 0.5
        if step == 9:
            variables[0].node.data = math.keep(
                NDArray.from_numpy(np.full(variables[0].shape, 0.01, np.float32), math=math)
            )
        if fresh_feeds:
            call = (cost, {x: xp, label: lp}, *call[2:])
        with math.scope():
            seen.append(float(session.train(*call).get()))
            if inspect:
                seen.append(session.gradient_array_map.get(x).numpy())
                seen.append([session.activation_array_map.get(t).numpy() for t in (h, *variables)])
    return seen, [session.eval(v).numpy() for v in variables], session
