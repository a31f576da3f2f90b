"""Lanes (deeplearn/compile/lanes.py): a plan that spreads a Program's steps over streams keeps
every dependency the data has, through stream order or a wait, and never orders two steps that
need no order when enough lanes are free. On a GPU: a step captured on several lanes trains bit
for bit as the one-stream capture (the same kernels, only their order in time changes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import CostReduction, Session
from deeplearn.compile.lanes import LanePlan, plan_lanes, step_dependencies
from deeplearn.compile.program import Ref, Step
from deeplearn.math.backends import cuda_available


def _happens_before(plan: LanePlan) -> list[set[int]]:
    """For each step, the steps that finish before it starts: the earlier steps of its lane
    and what its waits (and theirs) cover, built here from the plan's edges alone."""
    n = len(plan.lane)
    before: list[set[int]] = []
    last_on: dict[int, int] = {}
    for i in range(n):
        mine: set[int] = set()
        prev = last_on.get(plan.lane[i])
        for d in ([prev] if prev is not None else []) + list(plan.waits[i]):
            assert d < i
            mine |= {d} | before[d]
        before.append(mine)
        last_on[plan.lane[i]] = i
    return before


def _check(deps: list[tuple[int, ...]], plan: LanePlan) -> None:
    before = _happens_before(plan)
    n = len(deps)
    for i, ds in enumerate(deps):
        assert set(ds) <= before[i], f"step {i} may start before a step it reads: {set(ds) - before[i]}"
        for d in plan.waits[i]:
            assert plan.lane[d] != plan.lane[i] and d in plan.records
    # at the end lane 0 has waited for every step
    end: set[int] = set()
    last0 = max((i for i in range(n) if plan.lane[i] == 0), default=None)
    if last0 is not None:
        end |= {last0} | before[last0]
    for j in plan.joins:
        assert j in plan.records
        end |= {j} | before[j]
    assert end == set(range(n))


def _random_dag(rng: np.random.Generator, n: int) -> list[tuple[int, ...]]:
    return [tuple(sorted(set(rng.choice(i, size=min(i, int(rng.integers(0, 3))), replace=False).tolist())))
            if i else () for i in range(n)]


@pytest.mark.parametrize("lanes", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", range(40))
def test_every_dependency_is_kept_on_random_graphs(seed: int, lanes: int) -> None:
    rng = np.random.default_rng(seed)
    deps = _random_dag(rng, int(rng.integers(1, 40)))
    plan = plan_lanes(deps, lanes)
    assert len(plan.lane) == len(deps) and max(plan.lane) < lanes
    _check(deps, plan)


def test_one_lane_is_the_program_order() -> None:
    plan = plan_lanes([(), (0,), (0,), (1, 2)], 1)
    assert plan.lane == [0, 0, 0, 0] and plan.waits == [(), (), (), ()] and plan.joins == ()
    assert plan.records == frozenset()


def test_independent_steps_are_not_ordered() -> None:
    """An mlp layer's backward: dz, then its weight gradient and its input gradient (each
    reads only dz) on two lanes, then the next layer's on the input gradient's lane and a third."""
    deps = [(), (0,), (0,), (2,), (3,), (3,)]  # dz, dW, dh, relu', dW', dh'
    plan = plan_lanes(deps, 3)
    before = _happens_before(plan)
    assert plan.lane[1] != plan.lane[2]
    assert 1 not in before[2] and 2 not in before[1]
    assert 1 not in before[3] and 1 not in before[4] and 1 not in before[5]
    _check(deps, plan)


def test_step_dependencies_reads_slots_and_in_place_writes() -> None:
    op: Any = None
    steps = [
        Step(op, (Ref(0, None),), (10,), ()),  # reads bound slot 0
        Step(op, (Ref(10, (2, 2)),), (11,), ()),  # a reshape of step 0's result
        Step(op, (Ref(11, None), Ref(10, None)), (12,), ()),
        Step(op, (Ref(12, None),), (13,), ()),  # written into bound slot 0 in place
        Step(op, (Ref(0, None),), (14,), ()),  # reads the new value
        Step(op, (Ref(13, None),), (17,), ()),  # reads it through the result written into it
        Step(op, (Ref(14, None),), (15,), ()),  # written into bound slot 0 again
        Step(op, (Ref(10, None),), (16,), ()),  # reads none of bound slot 0
    ]
    deps = step_dependencies(steps, {13: 0, 15: 0})
    # step 3 follows step 0 (which read the old value); step 6 follows steps 4 and 5 (which
    # read the value step 3 wrote) and step 3 (the last writer); step 7 only what it reads
    assert deps == [(), (0,), (0, 1), (0, 2), (3,), (3,), (3, 4, 5), (0,)]


def test_updates_wait_only_for_the_readers_of_their_buffer() -> None:
    """An mlp's last layer: its update runs beside the first layer's weight gradient, which
    reads neither the last layer's weights nor their gradient."""
    op: Any = None
    steps = [
        Step(op, (Ref(0, None), Ref(1, None)), (10,), ()),  # 0: h = x·W1
        Step(op, (Ref(10, None), Ref(2, None)), (11,), ()),  # 1: out = h·W2
        Step(op, (Ref(11, None), Ref(2, None)), (12,), ()),  # 2: dh = out'·W2ᵀ
        Step(op, (Ref(10, None), Ref(11, None)), (13,), ()),  # 3: dW2
        Step(op, (Ref(0, None), Ref(12, None)), (14,), ()),  # 4: dW1 (the long one)
        Step(op, (Ref(2, None), Ref(13, None)), (15,), ()),  # 5: W2 -= dW2, in place
        Step(op, (Ref(1, None), Ref(14, None)), (16,), ()),  # 6: W1 -= dW1, in place
    ]
    deps = step_dependencies(steps, {15: 2, 16: 1})
    assert deps[5] == (1, 2, 3) and deps[6] == (0, 4)
    plan = plan_lanes(deps, 2)
    _check(deps, plan)
    before = _happens_before(plan)
    assert 4 not in before[5] and 5 not in before[4]  # the update and dW1 side by side


class _Recorder:
    """A Lanes that writes down what a run asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def enter(self, i: int) -> None:
        self.calls.append(("enter", i))

    def leave(self, i: int) -> None:
        self.calls.append(("leave", i))

    def close(self) -> None:
        self.calls.append(("close", -1))

    def abort(self) -> None:
        self.calls.append(("abort", -1))


def _two_step_program() -> tuple[Any, int]:
    from deeplearn.compile.program import Program
    from deeplearn.math.ops.base import Spec
    from deeplearn.math.ops.elementwise import Neg

    p = Program()
    x = p.bind("x", (2,), "float32")
    (a,) = p.add_step(Neg(), [Ref(x, None)], [Spec((2,))])
    (b,) = p.add_step(Neg(), [Ref(a, None)], [Spec((2,))])
    p.prune({b})
    return p, b


def test_a_run_on_lanes_enters_and_leaves_each_step_then_closes() -> None:
    program, b = _two_step_program()
    engine = dl.NDArrayMathCPU().engine
    lanes = _Recorder()
    for _ in range(2):  # the second run too: a run on lanes never goes straight-line
        lanes.calls.clear()
        slots = program.run_raw(engine, [np.array([1, -2], np.float32)], lanes=lanes)
        np.testing.assert_array_equal(slots[b], [1, -2])
        assert lanes.calls == [("enter", 0), ("leave", 0), ("enter", 1), ("leave", 1), ("close", -1)]


def test_a_step_that_raises_aborts_the_lanes_and_its_error_comes_out() -> None:
    program, _ = _two_step_program()
    engine = dl.NDArrayMathCPU().engine
    lanes = _Recorder()

    def broken(op: Any, *arrays: Any) -> Any:
        raise RuntimeError("the kernel's own error")

    program._kernels(engine.backend, program.steps)[0][1] = broken
    with pytest.raises(RuntimeError, match="the kernel's own error"):
        program.run_raw(engine, [np.array([1, -2], np.float32)], lanes=lanes)
    assert lanes.calls == [("enter", 0), ("leave", 0), ("enter", 1), ("abort", -1)]


# -- on a GPU -----------------------------------------------------------------------------------
def _model(math: dl.NDArrayMath, kind: str) -> tuple[Session, Any, dict[Any, Any], list[Any]]:
    """A relu MLP, or a small cnn (two convolutions, pooling, a dense layer): each has
    independent kernels in its backward pass (a weight's gradient and the input's)."""
    rng = np.random.default_rng(5)
    g = dl.Graph()

    def variable(name: str, *shape: int) -> Any:
        return g.variable(name, dl.NDArray.from_numpy(rng.normal(0, 0.3, shape).astype(np.float32), math=math))

    if kind == "mlp":
        x = g.placeholder("x", [20])
        h = g.relu(g.add(g.matmul(g.reshape(x, [1, 20]), variable("w1", 20, 64)), variable("b1", 64)))
        h = g.relu(g.add(g.matmul(h, variable("w2", 64, 64)), variable("b2", 64)))
        out = g.reshape(g.add(g.matmul(h, variable("w3", 64, 5)), variable("b3", 5)), [5])
        xs = rng.normal(0, 1, (96, 20)).astype(np.float32)
    else:
        x = g.placeholder("x", [8, 8, 1])
        h = g.relu(g.conv2d(x, variable("k1", 3, 3, 1, 4), variable("c1", 4), 3, 4, 1, 1))
        h = g.relu(g.conv2d(h, variable("k2", 3, 3, 4, 6), variable("c2", 6), 3, 6, 1, 1))
        h = g.reshape(g.max_pool(h, 2, 2, 0), [1, 4 * 4 * 6])
        out = g.reshape(g.add(g.matmul(h, variable("w", 96, 5)), variable("b", 5)), [5])
        xs = rng.normal(0, 1, (96, 8, 8, 1)).astype(np.float32)
    label = g.placeholder("y", [5])
    cost = g.softmax_cross_entropy_cost(out, label)
    ys = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 96)]
    xp, yp = dl.InGPUMemoryShuffledInputProviderBuilder([xs, ys], seed=0).get_input_providers()
    variables = [n.output for n in g.nodes if isinstance(n, dl.graph.graph.VariableNode)]
    return Session(g, math), cost, {x: xp, label: yp}, variables


@pytest.mark.skipif(not cuda_available(), reason="captures CUDA graphs: needs CuPy and an NVIDIA GPU")
@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_a_step_on_several_lanes_trains_as_on_one_bit_for_bit(kind: str, optimizer: str, fuse: bool) -> None:
    """The same kernels in another order in time: the same bits, over many launches (a race
    between lanes would show as a difference somewhere along them)."""
    results = []
    for lanes in (1, 4):
        math = dl.NDArrayMathGPU()
        session, cost, feeds, variables = _model(math, kind)
        session.capture_lanes, session.fuse_kernels = lanes, fuse
        opt = dl.SGDOptimizer(0.1) if optimizer == "sgd" else dl.AdamOptimizer(0.01, 0.9, 0.999)
        with math.scope() as scope:
            kept = [scope.keep(session.train(cost, feeds, 32, opt, CostReduction.MEAN)) for _ in range(200)]
            costs = [float(c.get()) for c in kept]
        captured = session._reruns._last.program.capture
        assert captured, f"the step was not captured: {getattr(captured, 'why', captured)}"
        used = captured.lanes.plan.lanes_used if captured.lanes is not None else 1
        assert (used == 1) if lanes == 1 else (used > 1), used
        results.append((costs, [session.eval(v).numpy() for v in variables]))
    (c1, v1), (c4, v4) = results
    assert c1 == c4
    for a, b in zip(v1, v4, strict=True):
        np.testing.assert_array_equal(a, b)
