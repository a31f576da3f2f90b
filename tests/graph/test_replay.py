"""Replayed plans give exactly what running the batch rules gives.

A Session records a step's kernels on its first call and replays them afterwards
(``deeplearn/compile/``). Every graph op case, under every batching pattern, is trained
and evaluated by two Sessions over equal graphs, one replaying and one running the rules every
call (``replay_plans = False``); every value they hand out must be bit-for-bit equal. Then the
cases where a recording must be abandoned or a tape set aside: rules that read data or draw
random numbers, inputs whose shape or dtype changes, debug mode.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import CostReduction, FeedEntry, Graph, NDArray, Session, Tensor
from deeplearn.graph import batching
from deeplearn.math.ops.base import Spec
from tests.graph.graph_cases import CASES, GraphCase
from tests.graph.helpers import ListProvider

B = 3
CALLS = 4  # the first call records, the others replay


def _pattern_params() -> list[Any]:
    out = []
    for case in CASES:
        free = [i for i in range(len(case.shapes)) if i not in case.fixed]
        # every input batched, and every input but the first shared (a variable)
        patterns = {tuple(i in free for i in range(len(case.shapes))),
                    tuple(i in free and i != free[0] for i in range(len(case.shapes))) if free else ()}
        for pattern in sorted(p for p in patterns if p):
            out.append(pytest.param(case, pattern, id=f"{case.id}-{''.join('b' if p else 'v' for p in pattern)}"))
    return out


def _build(case: GraphCase, pattern: Sequence[bool], data: list[np.ndarray],
           math: dl.NDArrayMath) -> tuple[Graph, list[Tensor], Tensor, Tensor, Tensor]:
    g = Graph()
    inputs = [g.placeholder(f"in{i}", case.shapes[i]) if batched
              else g.variable(f"in{i}", NDArray.make(case.shapes[i], data[i][0], math=math))
              for i, batched in enumerate(pattern)]
    y = case.build(g, inputs)
    r = g.placeholder("r", y.shape)
    cost = g.reduce_sum(g.multiply(y, r)) if y.shape else g.multiply(y, r)
    return g, inputs, y, r, cost


def _snapshot(m: Any) -> dict[str, np.ndarray]:
    return {f"{t.name}#{t.node.graph.nodes.index(t.node)}": a.numpy() for t, a in m.items()}


def _run(case: GraphCase, pattern: Sequence[bool], math: dl.NDArrayMath, replay: bool,
         optimizer: dl.Optimizer, fuse: bool = False) -> list[Any]:
    rng = np.random.default_rng(7)
    data = [rng.uniform(0.5 if i in case.positive else -2.0, 2.0, (B + 1, *s)).astype(np.float32)
            for i, s in enumerate(case.shapes)]
    g, inputs, y, r, cost = _build(case, pattern, data, math)
    r_values = rng.standard_normal((B + 1, *y.shape)).astype(np.float32)
    session = Session(g, math)
    session.replay_plans = replay
    session.fuse_kernels = fuse  # fused sums add in another order: compared apart, to within ulps
    feeds = [FeedEntry(t, ListProvider(data[i])) for i, t in enumerate(inputs) if pattern[i]]
    feeds.append(FeedEntry(r, ListProvider(r_values)))
    seen: list[Any] = []
    with math.scope():
        for _ in range(CALLS):
            if case.grad:
                c = session.train(cost, feeds, B, optimizer, CostReduction.SUM)
                # order matters too: the maps are handed out as they were filled
                seen.append((c.numpy(), list(_snapshot(session.activation_array_map).items()),
                             list(_snapshot(session.gradient_array_map).items())))
            seen.append(session.eval_batch([y, cost], feeds, B))
            seen[-1] = [a.numpy() for a in seen[-1]]
            one = {t: NDArray.make(t.shape, data[i][1], math=math) for i, t in enumerate(inputs) if pattern[i]}
            one[r] = NDArray.make(r.shape, r_values[1], math=math)
            seen.append(session.eval(y, one).numpy())
    seen.append([a.numpy() for a in session.eval_all(inputs, {})]) if not any(pattern) else None
    session.dispose()
    optimizer.dispose()
    return seen


def _assert_identical(a: Any, b: Any, where: str, close: bool = False) -> None:
    """Equal arrays (NaNs compare equal; values exact, or with ``close`` within a few float32
    ulps), lists and tuples item by item, anything else by ==."""
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        if close:
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6, equal_nan=True, err_msg=where)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{where}[{i}]", close)
    else:
        assert a == b, where


@pytest.mark.parametrize(("case", "pattern"), _pattern_params())
def test_replay_equals_the_rules(case: GraphCase, pattern: tuple[bool, ...], math: dl.NDArrayMath) -> None:
    replayed = _run(case, pattern, math, True, dl.MomentumOptimizer(0.05, 0.9))
    ruled = _run(case, pattern, math, False, dl.MomentumOptimizer(0.05, 0.9))
    _assert_identical(replayed, ruled, case.id)


@pytest.mark.parametrize(("case", "pattern"), _pattern_params())
def test_fused_replay_is_within_ulps_of_the_rules(case: GraphCase, pattern: tuple[bool, ...],
                                                  math: dl.NDArrayMath) -> None:
    """On CUDA a captured training step runs its element-wise chains fused
    (deeplearn/compile/fusion.py): the same values, but for sums, which add in another order."""
    if math.backend.name != "cuda":
        pytest.skip("only CUDA fuses kernels")
    fused = _run(case, pattern, math, True, dl.MomentumOptimizer(0.05, 0.9), fuse=True)
    ruled = _run(case, pattern, math, False, dl.MomentumOptimizer(0.05, 0.9))
    _assert_identical(fused, ruled, case.id, close=True)


def _mlp(
    math: dl.NDArrayMath, builder: type = dl.InCPUMemoryShuffledInputProviderBuilder
) -> tuple[Session, Tensor, list[FeedEntry], dict[str, Tensor]]:
    g = Graph()
    x, label = g.placeholder("x", [6]), g.placeholder("label", [3])
    rng = np.random.default_rng(0)
    def init(*shape: int) -> dl.NDArrayInitializer:
        return dl.NDArrayInitializer(NDArray.from_numpy(rng.standard_normal(shape).astype(np.float32), math=math))

    h = g.layers.dense("h", x, 5, lambda t: g.relu(t), True, init(6, 5), init(5))
    out = g.layers.dense("out", h, 3, None, True, init(5, 3), init(3))
    cost = g.softmax_cross_entropy_cost(out, label)
    xs = rng.standard_normal((10, 6)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 10)]
    xp, lp = builder([xs, labels], seed=1).get_input_providers()
    variables = {n.name: n.output for n in g.nodes if isinstance(n, dl.graph.graph.VariableNode)}
    return Session(g, math), cost, [FeedEntry(x, xp), FeedEntry(label, lp)], variables


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop", "adagrad"])
def test_training_runs_replayed_equal_eager_runs(math: dl.NDArrayMath, optimizer: str) -> None:
    make = {"sgd": lambda: dl.SGDOptimizer(0.1), "adam": lambda: dl.AdamOptimizer(0.01, 0.9, 0.999),
            "rmsprop": lambda: dl.RMSPropOptimizer(0.01, 0.9), "adagrad": lambda: dl.AdagradOptimizer(0.1)}[optimizer]
    weights = []
    for replay in (True, False):
        session, cost, feeds, variables = _mlp(math)
        session.replay_plans = replay
        session.fuse_kernels = False  # fused sums differ in ulps: test_fused_replay_is_within_ulps_of_the_rules
        opt = make()
        costs = []
        for step in range(12):
            with math.scope():
                reduction = CostReduction.MEAN if step % 3 else CostReduction.NONE
                costs.append(session.train(cost, feeds, 4 if step < 6 else 5, opt, reduction).get())
        weights.append((costs, [session.eval(v).numpy() for v in variables.values()]))
    _assert_identical(weights[0], weights[1], optimizer)


def test_replay_keeps_live_array_counts(cpu_math: dl.NDArrayMath) -> None:
    counts = []
    for replay in (True, False):
        session, cost, feeds, _ = _mlp(cpu_math)
        session.replay_plans = replay
        opt = dl.SGDOptimizer(0.1)
        for _ in range(2):  # the first call records, the second replays: the steady state
            session.train(cost, feeds, 4, opt)
        gc.collect()
        before = cpu_math.get_num_arrays()
        per_call = []
        for _ in range(5):
            with cpu_math.scope():
                session.train(cost, feeds, 4, opt, CostReduction.MEAN).get()
                per_call.append(cpu_math.get_num_arrays() - before)
        gc.collect()
        counts.append((per_call[1:], cpu_math.get_num_arrays() - before,
                       len(session.activation_array_map), len(session.gradient_array_map)))
        session.dispose()
    assert counts[0][1:] == counts[1][1:] and counts[0][1] == 0  # nothing piles up; the maps have every tensor
    # never more arrays alive mid-call: fewer, as a replay makes the values nobody reads only when read
    assert all(c <= e for c, e in zip(counts[0][0], counts[1][0]))


def test_a_replay_makes_the_values_nobody_reads_only_when_read(cpu_math: dl.NDArrayMath) -> None:
    from deeplearn.graph.tensor_array_map import Pending

    session, cost, feeds, _ = _mlp(cpu_math)
    opt = dl.SGDOptimizer(0.1)
    for _ in range(3):
        session.train(cost, feeds, 4, opt)
    gc.collect()
    before = cpu_math.get_num_arrays()
    maps = (session.activation_array_map, session.gradient_array_map)
    assert all(any(type(v) is Pending for _, v in m.entries()) for m in maps)
    for m in maps:
        m.items()
    assert cpu_math.get_num_arrays() > before
    assert not any(type(v) is Pending for m in maps for _, v in m.entries())
    session.dispose()
    gc.collect()
    assert cpu_math.get_num_arrays() == before  # what reading made is freed, and nothing else was held


def test_kernels_only_inspection_needs_run_only_when_read(math: dl.NDArrayMath,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A training step's replay skips what only the maps need (here the gradient of the fed
    input x: a matrix product, and its cost); reading it runs those kernels then, once, and
    gives what running the rules gives."""
    from deeplearn.compile.program import Program

    runs = []
    original = Program.run_deferred
    monkeypatch.setattr(Program, "run_deferred", lambda self, *a: (runs.append(1), original(self, *a))[1])
    session, cost, feeds, _ = _mlp(math)
    twin, cost2, feeds2, _ = _mlp(math)
    twin.replay_plans = False
    x = feeds[0].tensor
    for _ in range(3):
        session.train(cost, feeds, 4, dl.SGDOptimizer(0.1))
        twin.train(cost2, feeds2, 4, dl.SGDOptimizer(0.1))
    (program,) = [pr for p in session._plans.values() for st in p._steps.values() for pr in st.training.values()]
    assert any(s.op.name == "mat_mul" for s in program.deferred)
    assert runs == []
    dx = session.gradient_array_map.get(x).numpy()
    session.gradient_array_map.get(x)
    assert runs == [1]
    np.testing.assert_array_equal(dx, twin.gradient_array_map.get(feeds2[0].tensor).numpy())


@pytest.mark.parametrize("read_at", [(), (1,), (0, 2, 3)])
def test_maps_left_unread_between_steps_hold_the_last_step(
    math: dl.NDArrayMath, read_at: tuple[int, ...]
) -> None:
    """A training loop that does not read the maps between its steps leaves them as they are
    (``RecordedCalls._unread_maps``: no Materializer made per step); read after any step, they
    hold that step's values and gradients, as the rules make them. (The providers keep their
    examples on the math's backend: a training loop then runs its calls again as reruns.)"""
    resident = dl.InGPUMemoryShuffledInputProviderBuilder
    session, cost, feeds, _ = _mlp(math, resident)
    session.fuse_kernels = False  # fused sums differ in ulps: test_fused_replay_is_within_ulps_of_the_rules
    twin, cost2, feeds2, _ = _mlp(math, resident)
    twin.replay_plans = False
    optimizer, optimizer2 = dl.SGDOptimizer(0.1), dl.SGDOptimizer(0.1)
    sources, held = [], []
    with math.scope():
        for step in range(5):
            session.train(cost, feeds, 4, optimizer)
            twin.train(cost2, feeds2, 4, optimizer2)
            sources.append(session._borrowed)
            if step in read_at or step == 4:
                for ours, theirs in (
                    (session.activation_array_map, twin.activation_array_map),
                    (session.gradient_array_map, twin.gradient_array_map),
                ):
                    _assert_identical(
                        list(_snapshot(ours).items()), list(_snapshot(theirs).items()), f"step {step}"
                    )
                # A view of the largest gradient (a weight's, which every step changes), kept.
                largest = max((g for _, g in session.gradient_array_map.items()), key=lambda g: g.size)
                gradient = largest._view(tracked=False)
                held.append((gradient, gradient.numpy().copy()))
        for step, (gradient, values) in enumerate(held):  # what someone keeps keeps its values
            np.testing.assert_array_equal(gradient.numpy(), values, err_msg=f"read {step}")
    # The first call records and the second compiles; from then on each step keeps the last
    # one's Materializer unless its maps were read.
    assert [sources[k] is sources[k - 1] for k in range(2, 5)] == [k - 1 not in read_at for k in range(2, 5)]
    session.dispose()
    twin.dispose()


def test_costs_handed_out_keep_their_values_across_reruns(math: dl.NDArrayMath) -> None:
    """A MEAN cost lives in the compiled step's memory until the next call, which copies it
    when someone still holds it: costs held over several steps and read at the end are each
    their own step's, as the rules give them."""
    session, cost, feeds, _ = _mlp(math)
    twin, cost2, feeds2, _ = _mlp(math)
    twin.replay_plans = False
    optimizer, optimizer2 = dl.SGDOptimizer(0.1), dl.SGDOptimizer(0.1)
    with math.scope():
        ours = [session.train(cost, feeds, 4, optimizer, CostReduction.MEAN) for _ in range(5)]
        theirs = [twin.train(cost2, feeds2, 4, optimizer2, CostReduction.MEAN) for _ in range(5)]
        assert len({c.get() for c in theirs}) == 5  # (each step's own cost)
        _assert_identical([c.numpy() for c in ours], [c.numpy() for c in theirs], "costs")


def test_a_reader_during_a_rerun_finds_the_maps_empty(
    cpu_math: dl.NDArrayMath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The maps are emptied before a step runs, also when the last step's were never read: a
    reader in another thread (here: inside the step, once its batch has begun) gets no values
    that the run is about to overwrite."""
    session, cost, feeds, _ = _mlp(cpu_math)
    optimizer = dl.SGDOptimizer(0.1)
    for _ in range(3):
        session.train(cost, feeds, 4, optimizer)
    assert session.activation_array_map.fills_from(session._borrowed)  # unread since the last step
    found = []
    before_batch = optimizer.before_batch

    def reading(*args: Any) -> None:
        found.append(session.activation_array_map.get_or_none(cost))
        before_batch(*args)

    monkeypatch.setattr(optimizer, "before_batch", reading)
    session.train(cost, feeds, 4, optimizer)
    assert found == [None]
    assert session.activation_array_map.get(cost).shape == (4,)  # after the step: this step's


def test_a_failed_rerun_leaves_no_maps(cpu_math: dl.NDArrayMath) -> None:
    """A step that raises before it runs (a variable's data disposed) leaves the maps empty,
    not holding the last step's values as if they were this call's."""
    session, cost, feeds, variables = _mlp(cpu_math)
    optimizer = dl.SGDOptimizer(0.1)
    for _ in range(3):
        session.train(cost, feeds, 4, optimizer)
    next(iter(variables.values())).node.data.dispose()
    with pytest.raises(dl.DisposedError):
        session.train(cost, feeds, 4, optimizer)
    assert len(session.activation_array_map) == 0 and len(session.gradient_array_map) == 0


def test_training_after_inference_of_the_same_step_trains(math: dl.NDArrayMath) -> None:
    """eval_batch(cost) and train(cost) with the same feeds and batch size share a step: the
    inference tape (no gradients) must not serve the training call (it trained nothing)."""
    session, cost, feeds, variables = _mlp(math)
    twin, cost2, feeds2, variables2 = _mlp(math)
    twin.replay_plans = False
    session.fuse_kernels = False  # compared bit for bit: fused sums add in another order
    initial = [session.eval(v).numpy() for v in variables.values()]
    for s, c, f in ((session, cost, feeds), (twin, cost2, feeds2)):
        for _ in range(2):
            s.eval_batch(c, f, 4)
        for _ in range(5):
            s.train(c, f, 4, dl.SGDOptimizer(0.1))
            s.eval_batch(c, f, 4)
    assert all(not np.array_equal(w0, session.eval(v).numpy()) for w0, v in zip(initial, variables.values()))
    for v, w in zip(variables.values(), variables2.values()):
        np.testing.assert_array_equal(session.eval(v).numpy(), twin.eval(w).numpy())


def test_kept_maps_are_independent_of_the_tape(cpu_math: dl.NDArrayMath) -> None:
    """Writing to what a replayed call handed out (the cost's seed gradient, a constant the
    rules made) must not change the next call."""
    session, cost, feeds, variables = _mlp(cpu_math)
    twin, cost2, feeds2, variables2 = _mlp(cpu_math)
    twin.replay_plans = False
    for _ in range(4):
        for s, c, f in ((session, cost, feeds), (twin, cost2, feeds2)):
            with cpu_math.scope():
                s.train(c, f, 4, dl.SGDOptimizer(0.1))
        for t, g in session.gradient_array_map.items():
            g.fill(123.0)  # the seed (ones) and every other gradient
        for t, a in session.activation_array_map.items():
            if t.node.op_rule is not None:
                a.fill(-5.0)
    for v, w in zip(variables.values(), variables2.values()):
        np.testing.assert_array_equal(session.eval(v).numpy(), twin.eval(w).numpy())


# -- when recording must stop, and when a tape must be set aside --------------------------------


class _ReadsData(batching.BatchRule):
    """y = x when x's first element is positive, else −x: a rule that branches on a value."""

    def forward(self, math: dl.NDArrayMath, node: Any, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        x = xs[0]
        return math.multiply(x, dl.Scalar.new(1.0 if x.get_values()[0] > 0 else -1.0))


class _DrawsNoise(batching.BatchRule):
    """y = x + noise from NDArray.rand_uniform: a rule that draws host random numbers."""

    def forward(self, math: dl.NDArrayMath, node: Any, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        return math.add(xs[0], NDArray.rand_uniform(xs[0].shape, 0, 1))


def _last_step(session: Session) -> Any:
    (plan,) = session._plans.values()
    (step,) = plan._steps.values()
    return step


@pytest.mark.parametrize("rule", [_ReadsData(), _DrawsNoise()], ids=["reads-data", "draws-noise"])
def test_rules_that_are_not_just_kernels_stay_eager(cpu_math: dl.NDArrayMath, rule: batching.BatchRule) -> None:
    g = Graph()
    x = g.placeholder("x", [2])
    y = g._add_op("custom", None, rule, [x], Spec((2,)))
    session = Session(g, cpu_math)
    outs = []
    with cpu_math.scope():
        for v in ([1, 2], [-1, 2], [3, -4]):
            outs.append(session.eval(y, {x: dl.Array1D.new(v)}).numpy())
    assert _last_step(session).inference is None
    if isinstance(rule, _ReadsData):
        np.testing.assert_array_equal(outs, [[1, 2], [1, -2], [3, -4]])
    else:
        assert not np.array_equal(outs[0] - [1, 2], outs[2] - [3, -4])  # fresh noise every call


def test_an_input_of_another_dtype_sets_the_tape_aside(cpu_math: dl.NDArrayMath) -> None:
    g = Graph()
    x = g.placeholder("x", [3])
    y = g.add(g.multiply(x, x), x)
    session = Session(g, cpu_math)
    with cpu_math.scope():
        a = session.eval(y, {x: dl.Array1D.new([1, 2, 3])}).numpy()
        b = session.eval(y, {x: dl.Array1D.new([1, 2, 3])}).numpy()  # replayed
        assert _last_step(session).inference is not None
        c = session.eval(y, {x: NDArray.make([3], [1, 2, 3], "int32")})  # int32 arithmetic stays int32
        assert c.dtype == "int32" and c.numpy().tolist() == [2, 6, 12]
        d = session.eval(y, {x: dl.Array1D.new([1, 2, 4])})
        assert d.dtype == "float32" and d.numpy().tolist() == [2, 6, 20]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("replay", [True, False])
def test_a_variable_given_other_data_is_not_replayed_blindly(cpu_math: dl.NDArrayMath, replay: bool) -> None:
    g = Graph()
    w = g.variable("w", dl.Array1D.new([1, 2]))
    y = g.reduce_sum(g.square(w))
    session = Session(g, cpu_math)
    session.replay_plans = replay
    with cpu_math.scope():
        assert session.eval(y).get() == 5.0
        assert session.eval(y).get() == 5.0
        w.node.data = cpu_math.keep(NDArray.make([2], [1, 3], "int32"))  # what the kernels see changes
        z = session.eval(y)
        assert (z.dtype, z.get()) == ("int32", 10)
        w.node.data = cpu_math.keep(dl.Array1D.new([1, 2, 3]))  # a shape the plan never had
        with pytest.raises(AssertionError, match="the square rule gave shape \\(3,\\), expected \\(2,\\)"):
            session.eval(y)


def test_debug_mode_runs_the_rules(cpu_math: dl.NDArrayMath) -> None:
    g = Graph()
    x = g.placeholder("x", [2])
    y = g.log(x)
    session = Session(g, cpu_math)
    with cpu_math.scope():
        session.eval(y, {x: dl.Array1D.new([1, 2])})
        session.eval(y, {x: dl.Array1D.new([1, 2])})  # now replayed
        cpu_math.enable_debug_mode()
        try:
            with pytest.raises(ValueError, match="log has NaNs"):
                session.eval(y, {x: dl.Array1D.new([-1, 2])})
        finally:
            cpu_math.disable_debug_mode()


def test_disposed_variable_data_raises_when_replaying(cpu_math: dl.NDArrayMath) -> None:
    g = Graph()
    data = cpu_math.keep(dl.Array1D.new([1, 2]))
    w = g.variable("w", data)
    y = g.square(w)
    session = Session(g, cpu_math)
    with cpu_math.scope():
        session.eval(y)
        session.eval(y)
    data.dispose()
    with pytest.raises(dl.DisposedError, match="variable 'w' is disposed"):
        session.eval(y)


def test_sessions_recording_in_two_threads_on_one_math(cpu_math: dl.NDArrayMath) -> None:
    """Each thread's recording sees only its own ops, and data reads in another thread do not
    abandon it: two Sessions on one math, trained at once (recording four step signatures each,
    with the interpreter switching threads as often as it can), end where one trained alone does."""
    import sys
    import threading

    start = threading.Barrier(2)

    def train(replay: bool, out: list[Any], barrier: threading.Barrier | None) -> None:
        session, cost, feeds, variables = _mlp(cpu_math)
        session.replay_plans = replay
        opt = dl.SGDOptimizer(0.1)
        if barrier is not None:
            barrier.wait()
        for i in range(24):
            with cpu_math.scope():
                session.train(cost, feeds, 2 + i % 4, opt)  # four signatures: four recordings
                cpu_math.add(dl.Scalar.new(1), dl.Scalar.new(2)).get()  # eager math and a read
        recorded = [bool(step.training) for plan in session._plans.values() for step in plan._steps.values()]
        out.append([session.eval(v).numpy() for v in variables.values()])
        out.append(recorded)

    expected: list[Any] = []
    train(False, expected, None)
    results: list[list[Any]] = [[], []]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=train, args=(True, r, start)) for r in results]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    for r in results:
        _assert_identical(r[0], expected[0], "weights")
        assert r[1] == [True] * 4, "a recording was abandoned"
