"""A Program's kernels as one generated function (deeplearn/compile/straight.py), on the CPU:
from its second run on, a Program runs straight-line and gives what its loop gives, bit for
bit, kernels with several results and kernels whose result needs the engine's check (a NumPy
scalar for a 0-d array) included."""

from __future__ import annotations

import numpy as np

import deeplearn as dl
from deeplearn.compile.program import Program, Ref
from deeplearn.math.ops.arithmetic import Multiply, ScaledArrayAdd
from deeplearn.math.ops.base import Spec
from deeplearn.math.ops.costs import SoftmaxCrossEntropyCostDer
from deeplearn.math.ops.elementwise import Neg


def _program() -> tuple[Program, list[int]]:
    p = Program()
    x = p.bind("x", (3, 4), "float32")
    t = p.bind("t", (3, 4), "float32")
    c = p.bind("c", (), "float32")
    s = p.bind("s", (), "float32")
    dy = p.add_constant(np.ones((3, 1), np.float32), "float32")
    (neg,) = p.add_step(Neg(), [Ref(x, None)], [Spec((3, 4))])
    dx, dt = p.add_step(SoftmaxCrossEntropyCostDer(), [Ref(neg, None), Ref(t, None), Ref(dy, None)],
                        [Spec((3, 4)), Spec((3, 4))])
    (flat,) = p.add_step(Multiply(), [Ref(dx, (12,)), Ref(c, None)], [Spec((12,))])
    (scalar,) = p.add_step(ScaledArrayAdd(), [Ref(c, None), Ref(s, None), Ref(c, None), Ref(s, None)], [Spec(())])
    p.prune({dt, flat, scalar})
    return p, [neg, dx, dt, flat, scalar]


def test_from_the_second_run_a_program_runs_straight_line_and_gives_what_its_loop_gives() -> None:
    engine = dl.NDArrayMathCPU().engine
    rng = np.random.default_rng(0)
    runs = [[rng.normal(size=(3, 4)).astype(np.float32), np.eye(3, 4, dtype=np.float32),
             np.float32(rng.normal()).reshape(()), np.float32(rng.normal()).reshape(())] for _ in range(4)]
    program, slots = _program()
    for i, raws in enumerate(runs):
        got = program.run_raw(engine, raws)
        runner = program.kernels[("straight", id(program.steps))][1]
        assert (runner is None) == (i == 0)  # the first run is the loop's; the others are straight-line
        loop, _ = _program()  # a fresh Program: its first run is the loop
        want = loop.run_raw(engine, raws)
        for slot in slots:
            assert type(got[slot]) is np.ndarray and got[slot].dtype == want[slot].dtype
            np.testing.assert_array_equal(got[slot], want[slot])


def test_a_function_given_its_bound_inputs_puts_them_in_their_slots_first_even_none() -> None:
    """With ``bound`` ((input index, slot) pairs) the function is ``run(slots, raws)``, and it
    is so for an empty list too (a compiled step whose every input it updates)."""
    from deeplearn.compile.straight import straight_line

    p = Program()
    x = p.bind("x", (2,), "float32")
    (y,) = p.add_step(Neg(), [Ref(x, None)], [Spec((2,))])
    engine = dl.NDArrayMathCPU().engine
    run = straight_line(p.steps, [None], [True], np, engine.result, bound=[(0, x)])
    slots: list = [None, None]
    run(slots, [np.array([1.0, -2.0], np.float32)])
    np.testing.assert_array_equal(slots[y], np.array([-1.0, 2.0], np.float32))
    slots = [np.array([3.0, 4.0], np.float32), None]
    straight_line(p.steps, [None], [True], np, engine.result, bound=[])(slots, [])
    np.testing.assert_array_equal(slots[y], np.array([-3.0, -4.0], np.float32))
