"""The seven optimizers, step by step, against hand-written NumPy of deeplearn.js's formulas
(reference §7), over several batches of random gradients; and their lifecycle and memory."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import FeedEntry, Graph, NDArray, Session
from tests.graph.helpers import ListProvider

LR = 0.1
BATCH = 2
STEPS = 5


def _numpy_optimizer(name: str) -> Callable[[np.ndarray, np.ndarray, dict[str, np.ndarray], int], np.ndarray]:
    """w_new = step(w, g, state, t): g is the gradient summed over the batch, t = 1, 2, ...
    c = −lr/batch as deeplearn.js."""
    c = -LR / BATCH

    def sgd(w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], t: int) -> np.ndarray:
        return w + c * g

    def momentum(w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], t: int) -> np.ndarray:
        s["v"] = 0.5 * s.get("v", 0 * w) + g
        return w + c * s["v"]

    def rmsprop(w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], t: int) -> np.ndarray:
        s["s"] = 0.8 * s.get("s", 0 * w) + 0.2 * g**2
        return w + c * g / (np.sqrt(s["s"]) + 1e-6)

    def adagrad(w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], t: int) -> np.ndarray:
        s["s"] = s.get("s", 0 * w) + g**2
        return w + c * g / (np.sqrt(s["s"]) + 1e-6)

    def adadelta(w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], t: int) -> np.ndarray:
        d = s.get("d", 0 * w)
        s["s"] = 0.8 * s.get("s", 0 * w) + 0.2 * g**2
        u = np.sqrt(d + 1e-6) / np.sqrt(s["s"] + 1e-6) * g  # Zeiler: the cache after this batch
        s["d"] = 0.8 * d + 0.2 * u**2
        return w + c * u

    def adam(w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], t: int) -> np.ndarray:
        b1, b2 = 0.8, 0.9
        s["m"] = b1 * s.get("m", 0 * w) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0 * w) + (1 - b2) * g**2
        m_hat, v_hat = s["m"] / (1 - b1**t), s["v"] / (1 - b2**t)
        return w + c * m_hat / (np.sqrt(v_hat) + 1e-8)

    def adamax(w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], t: int) -> np.ndarray:
        b1, b2 = 0.8, 0.9
        s["m"] = b1 * s.get("m", 0 * w) + (1 - b1) * g
        s["u"] = np.maximum(b2 * s.get("u", 0 * w), np.abs(g))
        return w + (c / (1 - b1**t)) * s["m"] / (s["u"] + 1e-8)

    return {"SGDOptimizer": sgd, "MomentumOptimizer": momentum, "RMSPropOptimizer": rmsprop,
            "AdagradOptimizer": adagrad, "AdadeltaOptimizer": adadelta, "AdamOptimizer": adam,
            "AdamaxOptimizer": adamax}[name]


def _make(name: str, var_list: list[object] | None = None) -> dl.Optimizer:
    args = {"SGDOptimizer": (LR,), "MomentumOptimizer": (LR, 0.5), "RMSPropOptimizer": (LR, 0.8),
            "AdagradOptimizer": (LR,), "AdadeltaOptimizer": (LR, 0.8), "AdamOptimizer": (LR, 0.8, 0.9),
            "AdamaxOptimizer": (LR, 0.8, 0.9)}[name]
    return getattr(dl, name)(*args, var_list)


NAMES = ["SGDOptimizer", "MomentumOptimizer", "RMSPropOptimizer", "AdagradOptimizer", "AdadeltaOptimizer",
         "AdamOptimizer", "AdamaxOptimizer"]


@pytest.mark.parametrize("name", NAMES)
def test_steps_match_the_formulas(name: str, math: dl.NDArrayMath) -> None:
    # cost = Σ w ⊙ x (per example) + Σ v²: dcost/dw = Σ_b x_b, dcost/dv = 2v per example.
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((BATCH * STEPS, 2, 3)).astype(np.float32)
    w0 = rng.standard_normal((2, 3)).astype(np.float32)
    v0 = rng.standard_normal((3,)).astype(np.float32)
    g = Graph()
    x = g.placeholder("x", [2, 3])
    w = g.variable("w", NDArray.make([2, 3], w0, math=math))
    v = g.variable("v", NDArray.make([3], v0, math=math))
    cost = g.add(g.reduce_sum(g.multiply(w, x)), g.reduce_sum(g.square(v)))
    session = Session(g, math)
    optimizer = _make(name)
    step = _numpy_optimizer(name)
    provider = ListProvider(xs)
    want_w, want_v = w0.astype(np.float64), v0.astype(np.float64)
    state_w: dict[str, np.ndarray] = {}
    state_v: dict[str, np.ndarray] = {}
    for t in range(1, STEPS + 1):
        with math.scope():
            session.train(cost, [FeedEntry(x, provider)], BATCH, optimizer)
        batch = xs[(t - 1) * BATCH:t * BATCH].astype(np.float64)
        want_w = step(want_w, batch.sum(axis=0), state_w, t)
        want_v = step(want_v, BATCH * 2 * want_v, state_v, t)
        np.testing.assert_allclose(session.eval(w).numpy(), want_w, rtol=1e-4, atol=1e-5, err_msg=f"{name} w, step {t}")
        np.testing.assert_allclose(session.eval(v).numpy(), want_v, rtol=1e-4, atol=1e-5, err_msg=f"{name} v, step {t}")


@pytest.mark.parametrize("name", NAMES)
def test_specified_variable_list_and_required_hyperparameters(name: str) -> None:
    math = dl.NDArrayMathCPU()
    g = Graph()
    x = g.placeholder("x", [])
    a = g.variable("a", NDArray.make([], 1.0, math=math))
    b = g.variable("b", NDArray.make([], 1.0, math=math))
    cost = g.square(g.add(g.multiply(a, x), b))
    s = Session(g, math)
    s.train(cost, {x: ListProvider([1.0])}, 1, _make(name, [b]))
    assert s.eval(a).get() == 1.0 and s.eval(b).get() != 1.0
    # deeplearn.js has no default hyperparameters: leaving one out is an error.
    required = [p for p in inspect.signature(getattr(dl, name)).parameters.values()
                if p.default is inspect.Parameter.empty]
    assert required and required[0].name == "learning_rate"
    with pytest.raises(TypeError):
        getattr(dl, name)()


def _scaled_square(math: dl.NDArrayMath, n: int = 4) -> tuple[Session, dl.Tensor, dl.Tensor]:
    """A Session over cost = Σ (w·x)² with w = [1, 2, ...]: (session, x, cost)."""
    g = Graph()
    x = g.placeholder("x", [n])
    w = g.variable("w", NDArray.make([n], list(range(1, n + 1)), math=math))
    return Session(g, math), x, g.reduce_sum(g.square(g.multiply(w, x)))


@pytest.mark.parametrize("name", NAMES[1:])
def test_state_is_kept_across_scopes_and_freed_by_dispose(name: str) -> None:
    import gc

    math = dl.NDArrayMathCPU()
    s, x, cost = _scaled_square(math)
    optimizer = _make(name)
    with math.scope():
        s.train(cost, {x: ListProvider([[1, 1, 1, 1]])}, 1, optimizer)
    assert optimizer._state and not any(a.is_disposed for a in optimizer._state.values())
    with math.scope():
        s.train(cost, {x: ListProvider([[1, 1, 1, 1]])}, 1, optimizer)  # uses the kept state
    gc.collect()
    before = math.get_num_arrays()
    # the step's scalars (1, −lr/batch...), made once, and those made anew each step (Adam's 1 − βᵗ)
    constants = len(optimizer._constants) + len(optimizer._varying)
    assert constants >= 1 and not any(a.is_disposed for a in optimizer._constants.values())
    optimizer.dispose()
    state = {"AdadeltaOptimizer": 2, "AdamOptimizer": 2, "AdamaxOptimizer": 2}.get(name, 1)
    assert not optimizer._state and not optimizer._constants
    assert math.get_num_arrays() == before - state - constants


@pytest.mark.parametrize("name", NAMES)
def test_constants_are_made_once_and_bounded(name: str) -> None:
    """The scalars of a step are uploaded once, not every step (Adam's 1 − βᵗ, which changes
    every step, is not kept)."""
    math = dl.NDArrayMathCPU()
    s, x, cost = _scaled_square(math)
    optimizer = _make(name)
    sizes = []
    for _ in range(300):
        with math.scope():
            s.train(cost, {x: ListProvider([[0.1, 0.1, 0.1, 0.1]])}, 1, optimizer)
        sizes.append(len(optimizer._constants))
    assert sizes[-1] == sizes[0] <= 8, "the same constants serve every step"


def test_a_learning_rate_changed_every_step_keeps_the_constants_bounded() -> None:
    math = dl.NDArrayMathCPU()
    (s, x, cost), optimizer = _scaled_square(math, 2), dl.SGDOptimizer(0.1)
    for step in range(300):
        optimizer.set_learning_rate(0.1 / (1 + step))
        with math.scope():
            s.train(cost, {x: ListProvider([[0.1, 0.1]])}, 1, optimizer)
        assert len(optimizer._constants) <= 70


def test_setters() -> None:
    sgd = dl.SGDOptimizer(0.1)
    sgd.set_learning_rate(0.5)
    momentum = dl.MomentumOptimizer(0.1, 0.9)
    momentum.set_momentum(0.2)
    assert sgd.learning_rate == 0.5 and momentum.momentum == 0.2
    with pytest.raises(TypeError, match="specified_variable_list must hold variable Tensors"):
        dl.SGDOptimizer(0.1, ["w"])


class _ScaledMomentum(dl.MomentumOptimizer):
    """An optimizer of a user's making: its scalar reads a field of its own (``factor``)."""

    factor = 1.0

    def _hyperparameters(self) -> dict[str, float]:
        return {"momentum": self.momentum * self.factor}


def _change(optimizer: dl.Optimizer, kind: str) -> None:
    if kind == "learning rate":
        optimizer.learning_rate = 0.02
    elif kind == "momentum":
        optimizer.set_momentum(0.25)  # type: ignore[attr-defined]
    elif kind == "gamma":
        optimizer.gamma = 0.5  # type: ignore[attr-defined]
    else:
        optimizer.factor = 0.5  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("learning rate", lambda: dl.SGDOptimizer(LR)),
        ("momentum", lambda: dl.MomentumOptimizer(LR, 0.9)),
        ("gamma", lambda: dl.RMSPropOptimizer(LR, 0.9)),
        ("a field of a user's optimizer", lambda: _ScaledMomentum(LR, 0.9)),
    ],
)
def test_a_hyperparameter_changed_in_a_training_loop_reaches_the_next_step(
    kind: str, make: Callable[[], dl.Optimizer]
) -> None:
    """A loop that asks before_batch the same every step takes its short way (the last batch's
    scalars); a field changed between two steps must still change the next one's."""
    math = dl.NDArrayMathCPU()
    runs = []
    for change in (False, True):
        s, x, cost = _scaled_square(math)
        optimizer = make()
        for step in range(6):
            if change and step == 4:
                _change(optimizer, kind)
            with math.scope():
                s.train(cost, {x: ListProvider([[0.1, 0.2, 0.3, 0.4]])}, 1, optimizer)
            if step == 3:
                before = s.eval(s.graph.nodes[1].output).numpy()  # (w, after four steps)
        runs.append((before, s.eval(s.graph.nodes[1].output).numpy(), dict(optimizer._step_values)))
    (same_before, plain, plain_values), (changed_before, changed, changed_values) = runs
    np.testing.assert_array_equal(changed_before, same_before)
    assert not np.array_equal(changed, plain), "the change reached the step after it"
    assert changed_values != plain_values
