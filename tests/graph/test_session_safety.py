"""What a Session hands out never aliases the model or the caller's data, bad optimizers and
hyperparameters are refused before anything runs, safe mode holds for Session calls, the step
cache is bounded, and one optimizer shared by Sessions in two threads trains as if the steps
ran one after another."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, CostReduction, Graph, Scalar, Session
from tests.graph.helpers import ListProvider


def _linear(math: dl.NDArrayMath) -> tuple[Graph, dl.Tensor, dl.Tensor, dl.Tensor]:
    g = Graph()
    x = g.placeholder("x", [3])
    w = g.variable("w", Array1D.new([1, 2, 3], math=math))
    cost = g.reduce_sum(g.square(g.subtract(g.multiply(w, x), g.constant(Array1D.new([1, 1, 1], math=math)))))
    return g, x, w, cost


def test_eval_results_never_alias_variables_constants_or_feeds(math: dl.NDArrayMath) -> None:
    g, x, w, _ = _linear(math)
    flat = g.reshape(w, [3, 1])
    c = g.constant(Array1D.new([5, 6, 7], math=math))
    session = Session(g, math)
    fed = Array1D.new([1, 1, 1], math=math)
    for _ in range(2):  # the first call records, the second replays
        with math.scope():
            got_w, got_flat, got_c, got_x = session.eval_all([w, flat, c, x], {x: fed})
            for result in (got_w, got_flat, got_c, got_x):
                result.fill(99)
        np.testing.assert_array_equal(session.eval(w).numpy(), [1, 2, 3])
        np.testing.assert_array_equal(session.eval(c).numpy(), [5, 6, 7])
        np.testing.assert_array_equal(fed.numpy(), [1, 1, 1])


def test_session_calls_follow_safe_mode() -> None:
    math = dl.NDArrayMathCPU(safe_mode=True)
    g, x, w, cost = _linear(math)  # making arrays is no math: allowed outside a scope
    session = Session(g, math)
    feed = {x: Array1D.new([1, 2, 3], math=math)}
    with pytest.raises(RuntimeError, match="scope"):
        session.eval(w, feed)
    with pytest.raises(RuntimeError, match="scope"):
        session.train(cost, {x: ListProvider([[1, 2, 3]])}, 1, dl.SGDOptimizer(0.1))
    with math.scope():
        assert session.eval(w, feed).shape == (3,)
        session.train(cost, {x: ListProvider([[1, 2, 3]])}, 1, dl.SGDOptimizer(0.1))


@pytest.mark.parametrize("optimizer", [None, "sgd", 0.1, object()])
def test_train_refuses_what_is_not_an_optimizer(cpu_math: dl.NDArrayMath, optimizer: Any) -> None:
    g, x, w, cost = _linear(cpu_math)
    session = Session(g, cpu_math)
    with pytest.raises(TypeError, match="Session.train: optimizer must be an Optimizer"):
        session.train(cost, {x: ListProvider([[1, 2, 3]])}, 1, optimizer)
    np.testing.assert_array_equal(session.eval(w).numpy(), [1, 2, 3])  # nothing ran


@pytest.mark.parametrize(("make", "name"), [
    (lambda v: dl.SGDOptimizer(v), "learning_rate"),
    (lambda v: dl.MomentumOptimizer(0.1, v), "momentum"),
    (lambda v: dl.RMSPropOptimizer(0.1, v), "gamma"),
    (lambda v: dl.AdadeltaOptimizer(0.1, v), "gamma"),
    (lambda v: dl.AdamOptimizer(0.1, v, 0.999), "beta1"),
    (lambda v: dl.AdamOptimizer(0.1, 0.9, v), "beta2"),
    (lambda v: dl.AdamaxOptimizer(0.1, v, 0.999), "beta1"),
])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5])
def test_optimizers_refuse_bad_hyperparameters(make: Any, name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=f"{name} must be"):
        make(bad)


@pytest.mark.parametrize("make", [lambda: dl.RMSPropOptimizer(0.1, 1.0), lambda: dl.AdadeltaOptimizer(0.1, 1.0),
                                  lambda: dl.AdamOptimizer(0.1, 1.0, 0.999), lambda: dl.AdamaxOptimizer(0.1, 0.9, 1.0)])
def test_decay_rates_of_one_are_refused(make: Any) -> None:
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        make()


def test_a_learning_rate_set_later_is_checked_too() -> None:
    sgd = dl.SGDOptimizer(0.1)
    for bad in (float("nan"), -1.0):
        with pytest.raises(ValueError, match="learning_rate must be finite and >= 0"):
            sgd.set_learning_rate(bad)
        with pytest.raises(ValueError, match="learning_rate must be finite and >= 0"):
            sgd.learning_rate = bad
    with pytest.raises(TypeError, match="learning_rate must be a real number"):
        sgd.learning_rate = "0.1"  # type: ignore[assignment]
    assert sgd.learning_rate == 0.1


def test_the_step_cache_is_bounded(cpu_math: dl.NDArrayMath) -> None:
    from deeplearn.graph.plan import MAX_SIGNATURES as _MAX_STEPS

    g, x, w, cost = _linear(cpu_math)
    session = Session(g, cpu_math)
    provider = ListProvider(np.ones((4, 3), np.float32))
    for batch in range(1, 3 * _MAX_STEPS):
        with cpu_math.scope():
            session.train(cost, {x: provider}, batch, dl.SGDOptimizer(0.001))
    (plan,) = session._plans.values()
    assert len(plan._steps) <= _MAX_STEPS


def _trained(math: dl.NDArrayMath, optimizer: dl.Optimizer, steps: int, barrier: threading.Barrier | None,
             out: list[Any]) -> None:
    g, x, w, cost = _linear(math)
    session = Session(g, math)
    rng = np.random.default_rng(0)
    provider = ListProvider(rng.standard_normal((8, 3)).astype(np.float32))
    if barrier is not None:
        barrier.wait()
    for _ in range(steps):
        with math.scope():
            session.train(cost, {x: provider}, 4, optimizer, CostReduction.MEAN)
    out.append(session.eval(w).numpy())


def test_one_optimizer_shared_by_sessions_in_two_threads_trains_as_one_after_another(cpu_math: dl.NDArrayMath) -> None:
    alone: list[Any] = []
    _trained(cpu_math, dl.MomentumOptimizer(0.01, 0.9), 150, None, alone)
    shared = dl.MomentumOptimizer(0.01, 0.9)  # its state is per variable: each graph has its own
    barrier = threading.Barrier(2)
    results: list[Any] = []
    threads = [threading.Thread(target=_trained, args=(cpu_math, shared, 150, barrier, results)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    for r in results:
        np.testing.assert_array_equal(r, alone[0])


def test_scalars_keep_their_values_when_fed(cpu_math: dl.NDArrayMath) -> None:
    g = Graph()
    s = g.placeholder("s", [])
    session = Session(g, cpu_math)
    fed = Scalar.new(3, math=cpu_math)
    with cpu_math.scope():
        out = session.eval(g.square(s), {s: fed})
        assert out.get() == 9.0
    assert fed.get() == 3.0


def test_train_waits_for_the_sessions_lock_on_its_first_call_and_when_it_runs_again(cpu_math: dl.NDArrayMath) -> None:
    """``train`` takes the Session's lock itself (not through ``@_serialized``): a call, the
    first of its kind or a repeated one (the rerun path), waits while another thread holds it."""
    g, x, _, cost = _linear(cpu_math)
    provider = ListProvider(np.ones((4, 3), np.float32))
    optimizer = dl.SGDOptimizer(0.01)
    for calls_before in (0, 2):  # the first call; then a call that runs the last one again
        session = Session(g, cpu_math)
        with cpu_math.scope():
            for _ in range(calls_before):
                session.train(cost, {x: provider}, 2, optimizer)
        done = threading.Event()

        def train(session: Session = session, done: threading.Event = done) -> None:
            with cpu_math.scope():
                session.train(cost, {x: provider}, 2, optimizer)
            done.set()

        with session._lock:
            worker = threading.Thread(target=train)
            worker.start()
            assert not done.wait(0.3), f"train ran while another thread held the lock ({calls_before} calls before)"
        worker.join(10)
        assert done.is_set()
