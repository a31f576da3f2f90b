"""A Session's last training call, run again at once when the next call is the same
(deeplearn/graph/rerun.py): it gives exactly what the ordinary path gives, step after step, and
steps aside whenever something it relied on changed: other feeds, another batch size, a variable
set by the user, a learning rate changed, a provider's examples disposed."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import CostReduction, Graph, Scalar, Session
from deeplearn.graph import session as session_module


def _model(math: dl.NDArrayMath) -> tuple[Graph, Any, Any, Any, list[Any]]:
    g = Graph()
    x, label = g.placeholder("x", [2]), g.placeholder("y", [])
    w = g.variable("w", dl.Array1D.new([0.3, -0.2], math=math))
    b = g.variable("b", Scalar.new(0.1, math=math))
    y = g.add(g.reduce_sum(g.multiply(w, g.relu(x))), b)
    return g, x, label, g.mean_squared_cost(y, label), [w, b]


def _builder(math: dl.NDArrayMath, builder: type) -> Any:
    rng = np.random.default_rng(0)
    xs = rng.uniform(-2, 2, (13, 2)).astype(np.float32)  # 13: batches of 4 cross epochs
    ys = (xs @ np.array([1.5, -0.5], np.float32) + 0.25).astype(np.float32)
    return builder([xs, ys], seed=0)


BUILDERS = [dl.InCPUMemoryShuffledInputProviderBuilder, dl.InGPUMemoryShuffledInputProviderBuilder]


def _run(math: dl.NDArrayMath, builder_class: type, replay: bool, events: dict[int, Any],
         steps: int = 30) -> tuple[list[float], list[np.ndarray], Session]:
    """Trains ``steps`` steps; ``events[step](session, feeds, ...)`` may change something first
    and returns the (feeds, batch size, optimizer) to use from then on."""
    g, x, label, cost, variables = _model(math)
    builder = _builder(math, builder_class)
    xp, yp = builder.get_input_providers()
    session = Session(g, math)
    session.replay_plans = replay
    session.fuse_kernels = False  # compared bit for bit with the rules: fused sums differ in ulps
    feeds: Any = [{"tensor": x, "data": xp}, {"tensor": label, "data": yp}]
    optimizer: Any = dl.MomentumOptimizer(0.05, 0.9)
    batch = 4
    costs = []
    for step in range(steps):
        if step in events:
            feeds, batch, optimizer = events[step](session, builder, variables, feeds, batch, optimizer)
        with math.scope():
            costs.append(float(session.train(cost, feeds, batch, optimizer, CostReduction.MEAN).get()))
    return costs, [session.eval(v).numpy() for v in variables], session


def _set_w(session: Session, builder: Any, variables: list[Any], feeds: Any, batch: int, opt: Any) -> Any:
    variables[0].node.data = dl.Array1D.new([1.0, 1.0], math=session.math)
    return feeds, batch, opt


def _new_rate(session: Session, builder: Any, variables: list[Any], feeds: Any, batch: int, opt: Any) -> Any:
    opt.learning_rate = 0.02
    return feeds, batch, opt


def _new_list(session: Session, builder: Any, variables: list[Any], feeds: Any, batch: int, opt: Any) -> Any:
    return list(reversed(feeds)), batch, opt  # the same feeds in another list


def _new_batch(session: Session, builder: Any, variables: list[Any], feeds: Any, batch: int, opt: Any) -> Any:
    return feeds, 3, opt


def _dispose_examples(session: Session, builder: Any, variables: list[Any], feeds: Any, batch: int,
                      opt: Any) -> Any:
    builder.dispose() if hasattr(builder, "dispose") else None
    return feeds, batch, opt


def _other_optimizer(session: Session, builder: Any, variables: list[Any], feeds: Any, batch: int,
                     opt: Any) -> Any:
    return feeds, batch, dl.AdamOptimizer(0.01, 0.9, 0.999)


EVENTS = {
    "none": {},
    "variable set": {7: _set_w},
    "learning rate": {6: _new_rate},
    "feeds list": {5: _new_list},
    "batch size": {8: _new_batch, 16: lambda *a: (a[3], 4, a[5])},
    "examples disposed": {9: _dispose_examples},
    "optimizer": {10: _other_optimizer},
}


@pytest.mark.parametrize("builder_class", BUILDERS, ids=["cpu-provider", "gpu-provider"])
@pytest.mark.parametrize("events", EVENTS.values(), ids=EVENTS.keys())
def test_training_again_equals_the_ordinary_path(math: dl.NDArrayMath, builder_class: type,
                                                 events: dict[int, Any]) -> None:
    """Bit for bit on the CPU; on CUDA the reference runs kernel by kernel through the rules, whose
    kernels are the same ones."""
    costs, weights, session = _run(math, builder_class, True, events)
    ref_costs, ref_weights, _ = _run(math, builder_class, False, events)
    assert costs == ref_costs
    for w, r in zip(weights, ref_weights):
        np.testing.assert_array_equal(w, r)


@pytest.mark.parametrize("builder_class", BUILDERS, ids=["cpu-provider", "gpu-provider"])
def test_a_repeated_call_skips_the_feeds_and_the_rules(cpu_math: dl.NDArrayMath, builder_class: type,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """After two calls (one records, one runs the Program and keeps it), identical calls neither
    load feeds nor look for a Program; another batch size takes the ordinary path again."""
    g, x, label, cost, _ = _model(cpu_math)
    xp, yp = _builder(cpu_math, builder_class).get_input_providers()
    session = Session(g, cpu_math)
    feeds = {x: xp, label: yp}
    optimizer = dl.SGDOptimizer(0.1)
    loads = []
    real = session_module.load_feeds
    monkeypatch.setattr(session_module, "load_feeds", lambda *a, **k: loads.append(1) or real(*a, **k))
    for _ in range(5):
        with cpu_math.scope():
            session.train(cost, feeds, 4, optimizer)
    assert len(loads) == 2 and len(session._reruns) == 1
    with cpu_math.scope():
        session.train(cost, feeds, 3, optimizer)
    assert len(loads) == 3


@pytest.mark.parametrize("form", ["dict", "dicts", "entries"])
def test_feeds_written_out_anew_each_call_run_again_but_other_providers_do_not(
        cpu_math: dl.NDArrayMath, form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop that writes its feeds out in each call (``{x: xp, label: yp}``) runs the step
    again as one that passes one feeds object; the same tensors fed by other providers, or
    fewer feeds, take the ordinary path."""
    g, x, label, cost, _ = _model(cpu_math)
    builder = _builder(cpu_math, dl.InCPUMemoryShuffledInputProviderBuilder)
    xp, yp = builder.get_input_providers()
    other_xp, other_yp = _builder(cpu_math, dl.InCPUMemoryShuffledInputProviderBuilder).get_input_providers()

    def feeds(a: Any, b: Any) -> Any:
        if form == "dict":
            return {x: a, label: b}
        if form == "dicts":
            return [{"tensor": x, "data": a}, {"tensor": label, "data": b}]
        return [dl.FeedEntry(x, a), dl.FeedEntry(label, b)]

    session, optimizer = Session(g, cpu_math), dl.SGDOptimizer(0.1)
    loads = []
    real = session_module.load_feeds
    monkeypatch.setattr(session_module, "load_feeds", lambda *a, **k: loads.append(1) or real(*a, **k))
    for _ in range(5):
        with cpu_math.scope():
            session.train(cost, feeds(xp, yp), 4, optimizer)
    assert len(loads) == 2
    with cpu_math.scope():
        session.train(cost, feeds(other_xp, other_yp), 4, optimizer)  # other providers
    assert len(loads) == 3
    with cpu_math.scope():
        session.train(cost, feeds(other_xp, yp), 4, optimizer)  # one other provider
    assert len(loads) == 4
    assert not session._reruns.find(cost, feeds(xp, yp)[:1] if form != "dict" else {x: xp}, 4, optimizer, 0)


def test_a_numpy_integer_batch_size_runs_again_and_a_bool_does_not_pass(cpu_math: dl.NDArrayMath,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    g, x, label, cost, _ = _model(cpu_math)
    xp, yp = _builder(cpu_math, dl.InCPUMemoryShuffledInputProviderBuilder).get_input_providers()
    session, optimizer, feeds = Session(g, cpu_math), dl.SGDOptimizer(0.1), {x: xp, label: yp}
    loads = []
    real = session_module.load_feeds
    monkeypatch.setattr(session_module, "load_feeds", lambda *a, **k: loads.append(1) or real(*a, **k))
    for size in [4, np.int64(4), np.int32(4), 4, np.int64(4)]:
        with cpu_math.scope():
            session.train(cost, feeds, size, optimizer)
    assert len(loads) == 2
    assert session._reruns.find(cost, feeds, True, optimizer, 0) is None
    with pytest.raises((TypeError, ValueError)):
        session.train(cost, feeds, True, optimizer)


def test_a_call_refused_for_a_disposed_variable_draws_no_batch_on_either_path(cpu_math: dl.NDArrayMath) -> None:
    """A variable whose data was disposed is refused before the call draws its batch, so a
    loop that recovers (sets new data) trains on the same batches on the fast path and the
    ordinary one."""
    from deeplearn.types import DisposedError

    batches = []
    for replay in (True, False):
        g, x, label, cost, (w, _) = _model(cpu_math)
        xp, yp = _builder(cpu_math, dl.InCPUMemoryShuffledInputProviderBuilder).get_input_providers()
        session, optimizer, feeds = Session(g, cpu_math), dl.SGDOptimizer(0.01), {x: xp, label: yp}
        session.replay_plans = replay
        for _ in range(3):
            with cpu_math.scope():
                session.train(cost, feeds, 2, optimizer)
        saved = cpu_math.keep(dl.Array1D.new(w.node.data.get_values(), math=cpu_math))
        w.node.data.dispose()
        with pytest.raises(DisposedError), cpu_math.scope():
            session.train(cost, feeds, 2, optimizer)
        w.node.data = saved
        with cpu_math.scope():
            session.train(cost, feeds, 2, optimizer)
            batches.append(session.activation_array_map.get(x).numpy())
    np.testing.assert_array_equal(batches[0], batches[1])


def test_a_provider_of_another_kind_takes_the_ordinary_path(cpu_math: dl.NDArrayMath) -> None:
    """A provider that does not keep its examples on the backend cannot be rerun: its batch is
    loaded every call (and training is the same)."""
    from tests.graph.helpers import ListProvider

    g, x, label, cost, variables = _model(cpu_math)
    rng = np.random.default_rng(1)
    xs = rng.uniform(-1, 1, (8, 2))
    feeds = {x: ListProvider(xs), label: ListProvider(xs.sum(axis=1))}
    session = Session(g, cpu_math)
    for _ in range(4):
        with cpu_math.scope():
            session.train(cost, feeds, 2, dl.SGDOptimizer(0.1))
    assert not session._reruns


@pytest.mark.parametrize("builder_class", BUILDERS, ids=["cpu-provider", "gpu-provider"])
def test_each_call_trains_on_the_providers_next_batch(math: dl.NDArrayMath, builder_class: type) -> None:
    """The batch each call trains on (the activation of the fed tensor) is the provider's next
    batch, as a twin builder of the same seed hands it out, across epoch boundaries."""
    g, x, label, cost, _ = _model(math)
    xp, yp = _builder(math, builder_class).get_input_providers()
    twin_x, _ = _builder(math, builder_class).get_input_providers()
    session = Session(g, math)
    optimizer = dl.SGDOptimizer(0.05)
    for _ in range(12):
        with math.scope():
            session.train(cost, {x: xp, label: yp}, 4, optimizer)
            expected = twin_x.get_next_batch(math, 4).numpy()
            np.testing.assert_array_equal(session.activation_array_map.get(x).numpy(), expected)


@pytest.mark.parametrize("builder_class", BUILDERS, ids=["cpu-provider", "gpu-provider"])
def test_providers_of_two_builders_stay_paired_when_one_is_disposed(math: dl.NDArrayMath,
                                                                    builder_class: type) -> None:
    """Inputs and labels from two builders of one seed stay paired when one builder's examples
    are disposed between calls: a call that must take the ordinary path has drawn from neither."""
    g, x, label, cost, _ = _model(math)
    rng = np.random.default_rng(0)
    xs = rng.uniform(-2, 2, (13, 2)).astype(np.float32)
    ys = (xs @ np.array([1.5, -0.5], np.float32) + 0.25).astype(np.float32)
    inputs, labels = builder_class([xs], seed=3), builder_class([ys], seed=3)
    (xp,), (yp,) = inputs.get_input_providers(), labels.get_input_providers()
    session, optimizer = Session(g, math), dl.SGDOptimizer(0.05)
    feeds = {x: xp, label: yp}  # the same feeds every call: a rerun
    for step in range(12):
        if step in (4, 9):
            builder = labels if step == 4 else inputs
            if hasattr(builder, "dispose"):
                builder.dispose()
            else:  # the CPU builder's examples as the rows index them, freed by someone
                resident = builder._examples(math, 0)
                if resident is None:  # on a GPU each batch is a copy: nothing resident to free
                    pytest.skip("the CPU builder keeps no examples on a GPU: none can be disposed")
                resident.dispose()
        with math.scope():
            session.train(cost, feeds, 4, optimizer)
            batch_x = session.activation_array_map.get(x).numpy()
            batch_y = session.activation_array_map.get(label).numpy()
        np.testing.assert_array_equal(batch_y, batch_x @ np.array([1.5, -0.5], np.float32) + np.float32(0.25))


@pytest.mark.parametrize("builder_class", BUILDERS, ids=["cpu-provider", "gpu-provider"])
@pytest.mark.parametrize("make_optimizer", [lambda: dl.SGDOptimizer(0.05), lambda: dl.AdamOptimizer(0.01, 0.9, 0.999)],
                         ids=["sgd", "adam"])
@pytest.mark.parametrize("reduction", [CostReduction.NONE, CostReduction.MEAN])
def test_training_again_keeps_the_live_arrays_flat(math: dl.NDArrayMath, builder_class: type, make_optimizer: Any,
                                                   reduction: CostReduction) -> None:
    """A rerun opens no scope of its own: the only array it makes for the caller is the cost, in
    the caller's scope, so 300 steps leave as many live arrays as 3 did (with or without a scope
    around each call, the returned costs disposed by the caller)."""
    g, x, label, cost, _ = _model(math)
    xp, yp = _builder(math, builder_class).get_input_providers()
    session = Session(g, math)
    optimizer = make_optimizer()
    feeds = {x: xp, label: yp}
    counts = []
    for step in range(300):
        if step % 2:
            with math.scope():
                session.train(cost, feeds, 4, optimizer, reduction)
        else:
            session.train(cost, feeds, 4, optimizer, reduction).dispose()
        if step in (3, 299):
            gc.collect()  # other tests' garbage, freed whenever the collector runs, must not count
            counts.append(math.get_num_arrays())
    # A CPU provider's batches are copied to a GPU: there those calls take the ordinary path.
    resident = math.backend.name == "cpu" or builder_class is dl.InGPUMemoryShuffledInputProviderBuilder
    assert bool(session._reruns) == resident
    assert counts[0] == counts[1]


def test_a_runner_alternating_cost_reductions_keeps_both_steps_ready(cpu_math: dl.NDArrayMath,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """GraphRunner asks for the cost (MEAN) now and then and for nothing (NONE) otherwise: both
    calls run again at once (each loads its feeds twice: recorded, then run as a Program), and
    training is what the rule-by-rule path gives."""
    loads: list[int] = []
    real = session_module.load_feeds
    monkeypatch.setattr(session_module, "load_feeds", lambda *a, **k: loads.append(1) or real(*a, **k))

    def run(replay: bool) -> tuple[list[float], list[np.ndarray], int]:
        g, x, label, cost, variables = _model(cpu_math)
        xp, yp = _builder(cpu_math, dl.InCPUMemoryShuffledInputProviderBuilder).get_input_providers()
        session = Session(g, cpu_math)
        session.replay_plans = replay
        optimizer, feeds, costs = dl.SGDOptimizer(0.05), {x: xp, label: yp}, []
        loads.clear()
        for step in range(40):
            reduction = CostReduction.MEAN if step % 5 == 0 else CostReduction.NONE
            with cpu_math.scope():
                costs.append(float(session.train(cost, feeds, 4, optimizer, reduction).get()))
        return costs, [session.eval(v).numpy() for v in variables], len(loads) - len(variables)

    costs, weights, trained_loads = run(True)
    assert trained_loads == 4
    ref_costs, ref_weights, ref_loads = run(False)
    assert ref_loads == 40
    assert costs == ref_costs
    for w, r in zip(weights, ref_weights):
        np.testing.assert_array_equal(w, r)


def test_a_step_recorded_with_its_batch_given_records_again_when_fed_rows(cpu_math: dl.NDArrayMath) -> None:
    """The same step, fed first by a provider that hands out batches only (recorded with the
    batch bound), then by a builder's provider that hands out rows: the step records again,
    for training and for eval_batch, and trains as the rule-by-rule path does."""
    from tests.graph.helpers import ListProvider

    def run(replay: bool) -> tuple[list[float], list[np.ndarray]]:
        g, x, label, cost, variables = _model(cpu_math)
        rng = np.random.default_rng(2)
        xs = rng.uniform(-1, 1, (8, 2)).astype(np.float32)
        ys = xs.sum(axis=1).astype(np.float32)
        session = Session(g, cpu_math)
        session.replay_plans = replay
        optimizer = dl.SGDOptimizer(0.05)
        xp, yp = dl.InCPUMemoryShuffledInputProviderBuilder([xs, ys], seed=0).get_input_providers()
        out = []
        for feeds in ({x: ListProvider(xs), label: ListProvider(ys)}, {x: xp, label: yp}):
            for _ in range(3):
                with cpu_math.scope():
                    out.append(float(session.train(cost, feeds, 4, optimizer, CostReduction.MEAN).get()))
                    out.append(float(session.eval_batch(cost, feeds, 4).numpy().sum()))
        return out, [session.eval(v).numpy() for v in variables]

    costs, weights = run(True)
    ref_costs, ref_weights = run(False)
    assert costs == ref_costs
    for w, r in zip(weights, ref_weights):
        np.testing.assert_array_equal(w, r)
