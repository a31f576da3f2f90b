"""Kernels of a recorded Program that read only constants run once, when recorded
(``Program.fold_constants``): their results become constants, every run gives what running
them would give, and a recorded mean squared cost no longer divides by its batch size per call."""

from __future__ import annotations

import numpy as np

import deeplearn as dl
from deeplearn.compile.program import Program, Ref, SlotKind
from deeplearn.math.ops.arithmetic import Add, Divide
from deeplearn.math.ops.base import Spec


def test_a_kernel_of_constants_becomes_a_constant() -> None:
    engine = dl.NDArrayMathCPU().engine
    p = Program()
    x = p.bind("x", (3,), "float32")
    two = p.add_constant(np.full(3, 2.0, np.float32), "float32")
    n = p.add_constant(np.array(3.0, np.float32), "float32")
    (scale,) = p.add_step(Divide(), [Ref(two, None), Ref(n, None)], [Spec((3,))])
    (y,) = p.add_step(Add(), [Ref(x, None), Ref(scale, None)], [Spec((3,))])
    p.prune({y})
    assert p.fold_constants(engine) == 1
    assert [type(s.op) for s in p.steps] == [Add] and p.kinds[scale] == SlotKind.CONSTANT
    raws = [np.array([1.0, 2.0, 3.0], np.float32)]
    slots = p.run_raw(engine, raws)
    np.testing.assert_array_equal(slots[y], raws[0] + np.float32(2.0) / np.float32(3.0))


def test_a_recorded_training_step_divides_by_no_constant() -> None:
    math = dl.NDArrayMathCPU()
    g = dl.Graph()
    x, label = g.placeholder("x", []), g.placeholder("y", [])
    w = g.variable("w", dl.Scalar.new(0.5, math=math))
    cost = g.mean_squared_cost(g.multiply(w, x), label)
    xs = np.arange(8, dtype=np.float32)
    xp, yp = dl.InCPUMemoryShuffledInputProviderBuilder([xs, 2 * xs], seed=0).get_input_providers()
    session = dl.Session(g, math)
    for _ in range(3):
        with math.scope():
            session.train(cost, {x: xp, label: yp}, 4, dl.SGDOptimizer(0.01))
    (program,) = [p for plan in session._plans.values() for s in plan._steps.values() for p in s.training.values()]
    constants = {slot for slot, _ in program.constants}
    assert not any(all(r.slot in constants for r in s.inputs) for s in program.steps)


def test_a_random_kernel_of_constants_draws_anew_each_run() -> None:
    """multinomial without a seed is no function of its inputs: it is not folded."""
    from deeplearn.math.ops.random import Multinomial

    engine = dl.NDArrayMathCPU().engine
    p = Program()
    probs = p.add_constant(np.full((4, 50), 0.02, np.float32), "float32")
    (draw,) = p.add_step(Multinomial(num_samples=8), [Ref(probs, None)], [Spec((4, 8), "int32")])
    (seeded,) = p.add_step(Multinomial(num_samples=8, seed=3), [Ref(probs, None)], [Spec((4, 8), "int32")])
    p.prune({draw, seeded})
    assert p.fold_constants(engine) == 1  # the seeded one only
    assert [s.outputs for s in p.steps] == [(draw,)]
    runs = [p.run_raw(engine, [])[draw] for _ in range(3)]
    assert any(not np.array_equal(runs[0], r) for r in runs[1:])
