"""The fusion of a Program's element-wise chains (deeplearn/compile/fusion.py), on the CPU.

A Fused step run on the CPU runs its nodes one by one (deeplearn/math/ops/fused.py), so a
fused Program must give exactly the unfused one's results: these tests fuse recorded training
steps and hand-made Programs, run both, and compare bit for bit. They check the grouping rules
(a group runs where its last step was, so whatever reads its results or overwrites its inputs
earlier closes it) and what the groups are. The CUDA kernels are checked on a GPU in
tests/compile/test_fusion_cuda.py; here only their index arithmetic (``_broadcast_index``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import CostReduction, Graph, Scalar, Session
from deeplearn.compile.fusion import fuse
from deeplearn.compile.program import Program, Ref
from deeplearn.math.backends import cuda as cuda_backend
from deeplearn.math.backends import cuda_fusion
from deeplearn.math.ops.arithmetic import Add, Multiply, ScaledArrayAdd
from deeplearn.math.ops.base import Spec
from deeplearn.math.ops.elementwise import Neg, Relu, Square
from deeplearn.math.ops.fused import SMALL, Fused
from deeplearn.math.ops.linalg import MatMul
from deeplearn.math.ops.reduction import Sum


def fusible(op: Any) -> bool:
    return cuda_fusion.scalar_code(op) is not None


def _quad(math: dl.NDArrayMath) -> tuple[Graph, Any, Any, Any, list[Any]]:
    g = Graph()
    x, label = g.placeholder("x", []), g.placeholder("y", [])
    a, b, c = (g.variable(n, Scalar.new(v, math=math)) for n, v in (("a", 0.3), ("b", -0.2), ("c", 0.1)))
    y = g.add(g.add(g.multiply(a, g.square(x)), g.multiply(b, x)), c)
    return g, x, label, g.mean_squared_cost(y, label), [a, b, c]


def _mlp(math: dl.NDArrayMath) -> tuple[Graph, Any, Any, Any, list[Any]]:
    rng = np.random.default_rng(1)
    g = Graph()
    x, label = g.placeholder("x", [6]), g.placeholder("y", [3])
    w1 = g.variable("w1", dl.Array2D.new([6, 5], rng.normal(0, 0.5, (6, 5)), math=math))
    b1 = g.variable("b1", dl.Array1D.new(rng.normal(0, 0.1, 5), math=math))
    w2 = g.variable("w2", dl.Array2D.new([5, 3], rng.normal(0, 0.5, (5, 3)), math=math))
    b2 = g.variable("b2", dl.Array1D.new(rng.normal(0, 0.1, 3), math=math))
    h = g.sigmoid(g.add(g.matmul(g.reshape(x, [1, 6]), w1), b1))
    out = g.reshape(g.add(g.matmul(h, w2), b2), [3])
    return g, x, label, g.softmax_cross_entropy_cost(g.relu(out), label), [w1, b1, w2, b2]


def _providers(model: str, math: dl.NDArrayMath) -> list[Any]:
    rng = np.random.default_rng(0)
    if model == "quad":
        xs = rng.uniform(-2, 2, 24).astype(np.float32)
        ys = (1.5 * xs * xs - 0.5 * xs + 0.25).astype(np.float32)
    else:
        xs = rng.normal(0, 1, (24, 6)).astype(np.float32)
        ys = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 24)]
    return dl.InCPUMemoryShuffledInputProviderBuilder([xs, ys], seed=0).get_input_providers()


def _train(
    model: str, fused: bool, optimizer: dl.Optimizer, reduction: CostReduction, steps: int = 12
) -> tuple[list[float], list[np.ndarray], dict[str, np.ndarray], list[Program]]:
    math = dl.NDArrayMathCPU()
    g, x, label, cost, variables = (_quad if model == "quad" else _mlp)(math)
    xp, yp = _providers(model, math)
    session = Session(g, math)
    programs: list[Program] = []
    costs = []
    for step in range(steps):
        with math.scope():
            costs.append(float(session.train(cost, {x: xp, label: yp}, 4, optimizer, reduction).get()))
        if fused and step == 0:  # recorded by now: fuse it as a captured step would be
            programs = fuse_recorded(session)
    maps = {
        "activation": session.activation_array_map.get(cost).numpy(),
        "gradient": session.gradient_array_map.get(variables[0]).numpy(),
    }
    return costs, [session.eval(v).numpy() for v in variables], maps, programs


def fuse_recorded(session: Session, then: Callable[[Program], Any] | None = None) -> list[Program]:
    """The Session's recorded training Programs, their updates readied in place and their
    element-wise chains fused, as a captured step's are; each then given to ``then``."""
    programs = [p for plan in session._plans.values() for s in plan._steps.values() for p in s.training.values()]
    for p in programs:
        p.prepare_in_place_updates()
        fuse(p, fusible, p.writable_in_place())
        if then is not None:
            then(p)
    return programs


OPTIMIZERS = {
    "sgd": lambda: dl.SGDOptimizer(0.05),
    "momentum": lambda: dl.MomentumOptimizer(0.05, 0.9),
    "adam": lambda: dl.AdamOptimizer(0.05, 0.9, 0.999),
}


@pytest.mark.parametrize("reduction", [CostReduction.NONE, CostReduction.MEAN])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("model", ["quad", "mlp"])
def test_a_fused_training_step_gives_the_unfused_results_bit_for_bit(
    model: str, optimizer: str, reduction: CostReduction
) -> None:
    """Fused after its first call, a step trains exactly as before, and what the Session hands
    out after it (the cost, an activation, a gradient) is the same."""
    costs, weights, maps, _ = _train(model, False, OPTIMIZERS[optimizer](), reduction)
    fused_costs, fused_weights, fused_maps, programs = _train(model, True, OPTIMIZERS[optimizer](), reduction)
    assert programs and all(any(isinstance(s.op, Fused) for s in p.steps) for p in programs)
    assert fused_costs == costs
    for w, v in zip(weights, fused_weights, strict=True):
        np.testing.assert_array_equal(v, w)
    for name in maps:
        np.testing.assert_array_equal(fused_maps[name], maps[name])


def test_the_quad_step_is_one_kernel() -> None:
    """y = a·x² + b·x + c with SGD: forward, backward, the three gradients' sums and the three
    updates, and the batch's gathers, are one Fused step."""
    _, _, _, (program,) = _train("quad", True, dl.SGDOptimizer(0.05), CostReduction.NONE, steps=2)
    assert [type(s.op) for s in program.steps] == [Fused]


def _run(program: Program, raws: list[np.ndarray]) -> list[Any]:
    return program.run_raw(dl.NDArrayMathCPU().engine, raws)


def _chain(n: int) -> tuple[Program, list[int]]:
    """x → square → neg, a product of the square read in between, then relu of the neg."""
    p = Program()
    x = p.bind("x", (n,), "float32")
    w = p.bind("w", (n, 1), "float32")
    (sq,) = p.add_step(Square(), [Ref(x, None)], [Spec((n,))])
    (ng,) = p.add_step(Neg(), [Ref(sq, None)], [Spec((n,))])
    (mm,) = p.add_step(MatMul(), [Ref(sq, (1, n)), Ref(w, None)], [Spec((1, 1))])
    (rl,) = p.add_step(Relu(), [Ref(ng, None)], [Spec((n,))])
    return p, [sq, ng, mm, rl]


def test_a_group_runs_before_the_first_step_outside_it_that_reads_it() -> None:
    """The product reads the square: the group {square, neg} closes there, and relu (after the
    product) starts another; the results equal the unfused run's."""
    p, slots = _chain(5)
    raws = [np.arange(5, dtype=np.float32) - 2, np.ones((5, 1), np.float32)]
    want = _run(p, raws)
    p.prune(set(slots))
    assert fuse(p, fusible, {}) == 1
    assert [type(s.op).__name__ for s in p.steps] == ["Fused", "MatMul", "Relu"]
    got = _run(p, raws)
    for slot in slots:
        np.testing.assert_array_equal(got[slot], want[slot])


def test_a_result_only_the_group_reads_is_not_an_output() -> None:
    p, (sq, ng, mm, rl) = _chain(5)
    p.prune({mm, rl})
    fuse(p, fusible, {})
    fused = p.steps[0]
    assert sq in fused.outputs and ng in fused.outputs  # the product and relu read them
    q = Program()
    x = q.bind("x", (4,), "float32")
    (a,) = q.add_step(Square(), [Ref(x, None)], [Spec((4,))])
    (b,) = q.add_step(Neg(), [Ref(a, None)], [Spec((4,))])
    q.prune({b})
    fuse(q, fusible, {})
    assert q.steps[0].outputs == (b,)  # the square stays in registers


def test_an_update_written_element_by_element_joins_even_a_large_group_that_reads_it() -> None:
    """A large group (more than SMALL elements, run over many blocks) that reads a variable
    takes the update that overwrites it element by element: each element is read and written
    by one thread, in order. A step outside the group that writes it in place closes it."""
    n = SMALL + 1
    p = Program()
    v = p.bind("v", (n,), "float32")
    c = p.bind("c", (), "float32")
    (sq,) = p.add_step(Square(), [Ref(v, None)], [Spec((n,))])
    (ng,) = p.add_step(Neg(), [Ref(sq, None)], [Spec((n,))])
    (new,) = p.add_step(
        ScaledArrayAdd(), [Ref(c, None), Ref(v, (n,)), Ref(c, None), Ref(ng, None)], [Spec((n,))]
    )
    (after,) = p.add_step(Add(), [Ref(ng, None), Ref(c, None)], [Spec((n,))])
    p.prune({new, after})
    raws = [np.linspace(-1, 1, n, dtype=np.float32), np.array(0.5, np.float32)]
    want = _run(p, raws)
    fuse(p, fusible, {new: v})
    groups = [[type(node.op).__name__ for node in step.op.nodes] for step in p.steps]
    assert groups == [["Square", "Neg", "ScaledArrayAdd", "Add"]]
    got = _run(p, raws)
    for slot in (new, after):  # the square and its negation are no results: they stay in the kernel
        np.testing.assert_array_equal(got[slot], want[slot])
    q = Program()  # a product written in place: the group that read the old value runs first
    v = q.bind("v", (4, 4), "float32")
    (sq,) = q.add_step(Square(), [Ref(v, None)], [Spec((4, 4))])
    (ng,) = q.add_step(Neg(), [Ref(sq, None)], [Spec((4, 4))])
    (mm,) = q.add_step(MatMul(), [Ref(v, None), Ref(v, None)], [Spec((4, 4))])
    (after,) = q.add_step(Add(), [Ref(ng, None), Ref(sq, None)], [Spec((4, 4))])
    q.prune({mm, after})
    fuse(q, fusible, {mm: v})
    assert [type(step.op).__name__ for step in q.steps] == ["Fused", "MatMul", "Add"]


def test_a_large_group_that_reads_a_scalar_does_not_take_its_update_in_place() -> None:
    """Across blocks a scalar written in place while others read it would race: the update of
    the scalar does not join the large group that reads it."""
    n = SMALL + 1
    p = Program()
    x = p.bind("x", (n,), "float32")
    s = p.bind("s", (), "float32")
    (y,) = p.add_step(Multiply(), [Ref(x, None), Ref(s, None)], [Spec((n,))])
    (z,) = p.add_step(Neg(), [Ref(y, None)], [Spec((n,))])
    (s2,) = p.add_step(Square(), [Ref(s, None)], [Spec(())])
    p.prune({z, s2})
    fuse(p, fusible, {s2: s})
    assert [type(step.op).__name__ for step in p.steps] == ["Fused", "Square"]
    q = Program()  # the same within one block: the scalar is written after every read
    x = q.bind("x", (8,), "float32")
    s = q.bind("s", (), "float32")
    (y,) = q.add_step(Multiply(), [Ref(x, None), Ref(s, None)], [Spec((8,))])
    (s2,) = q.add_step(Square(), [Ref(s, None)], [Spec(())])
    q.prune({y, s2})
    fuse(q, fusible, {s2: s})
    assert [type(step.op).__name__ for step in q.steps] == ["Fused"]


def test_a_sum_ends_a_small_group_and_what_needs_it_element_by_element_starts_another() -> None:
    p = Program()
    x = p.bind("x", (6,), "float32")
    (sq,) = p.add_step(Square(), [Ref(x, None)], [Spec((6,))])
    (total,) = p.add_step(Sum(), [Ref(sq, None)], [Spec(())])
    (scaled,) = p.add_step(Multiply(), [Ref(total, None), Ref(total, None)], [Spec(())])  # after the sum
    (spread,) = p.add_step(Multiply(), [Ref(x, None), Ref(total, None)], [Spec((6,))])  # needs it per element
    p.prune({scaled, spread})
    raws = [np.arange(6, dtype=np.float32)]
    want = _run(p, raws)
    fuse(p, fusible, {})
    kinds = [type(step.op).__name__ for step in p.steps]
    assert kinds == ["Fused", "Multiply"]
    (group,) = [step for step in p.steps if isinstance(step.op, Fused)]
    assert [type(node.op) for node in group.op.nodes] == [Square, Sum, Multiply]
    got = _run(p, raws)
    for slot in (total, scaled, spread):
        np.testing.assert_array_equal(got[slot], want[slot])
    assert got[sq] is None  # no result: it stays in the kernel


def test_a_sum_over_more_than_small_elements_is_not_fused() -> None:
    p = Program()
    x = p.bind("x", (SMALL + 1,), "float32")
    (sq,) = p.add_step(Square(), [Ref(x, None)], [Spec((SMALL + 1,))])
    (total,) = p.add_step(Sum(), [Ref(sq, None)], [Spec(())])
    p.prune({total})
    assert fuse(p, fusible, {}) == 0


SHAPES = [
    ((3, 4), (3, 4)),
    ((4,), (3, 4)),
    ((1, 4), (3, 4)),
    ((3, 1), (3, 4)),
    ((), (2, 3)),
    ((2, 1, 4), (2, 3, 4)),
    ((3, 1), (2, 3, 5)),
    ((1,), (5,)),
]


@pytest.mark.parametrize(("shape", "out"), SHAPES, ids=[f"{a}->{b}" for a, b in SHAPES])
def test_the_broadcast_index_of_the_cuda_kernel_is_numpys(
    shape: tuple[int, ...], out: tuple[int, ...]
) -> None:
    """The C expression that reads an input broadcast to the kernel's shape, evaluated for
    every output element, picks the element NumPy's broadcasting picks."""
    expr = cuda_fusion._broadcast_index(shape, out)
    python = re.sub(r"(\d+)LL", r"\1", expr).replace("/", "//")
    index = np.arange(int(np.prod(shape)) or 1).reshape(shape)
    want = np.broadcast_to(index, out).reshape(-1)
    got = [eval(python, {"i": i}) for i in range(int(np.prod(out)))]  # noqa: S307 - our own arithmetic
    assert got == want.tolist()


def test_the_cuda_source_of_the_quad_step() -> None:
    """The one kernel of the quad step: a block of threads over the batch, three sums added
    in a fixed order, and thread 0 updating the three variables."""
    _, _, _, (program,) = _train("quad", True, dl.SGDOptimizer(0.05), CostReduction.NONE, steps=2)
    plan = cuda_fusion.source(program.steps[0].op)
    assert (plan.n, plan.cols, plan.grid) == (4, 1, 1)
    text = plan.source
    assert text.count("dl_warp_sum(acc") == 3
    assert text.count("__fadd_rn(__fmul_rn(c1, a), __fmul_rn(c2, b))") == 3
    assert "__syncthreads();\n    if (g_ != 0 || !live_) return;" in text


def test_the_cuda_source_of_a_bias_gradient_sums_columns() -> None:
    """relu's derivative times the incoming gradient, summed over the batch (a bias's
    gradient): one kernel over blocks of 5 columns, each column's rows added in order."""
    _, _, _, (program,) = _train("mlp", True, dl.SGDOptimizer(0.05), CostReduction.NONE, steps=2)
    plans = [cuda_fusion.source(s.op) for s in program.steps if isinstance(s.op, Fused)]
    by_columns = [p for p in plans if p.cols > 1]
    assert by_columns, [p.source for p in plans]
    plan = by_columns[0]
    assert (plan.n % plan.cols, plan.grid) == (0, 1)
    assert "for (int w_ = 0; w_ < 4; ++w_)" in plan.source  # 4 groups of rows of a batch of 4


def _bias_gradient(rows: int, cols: int) -> Fused:
    """relu's derivative times an incoming gradient, and its sum over the rows: the fused step
    of a dense layer's bias gradient."""
    p = Program()
    z = p.bind("z", (rows, cols), "float32")
    dy = p.bind("dy", (rows, cols), "float32")
    (step,) = p.add_step(Relu(), [Ref(z, None)], [Spec((rows, cols))])
    (dz,) = p.add_step(Multiply(), [Ref(dy, None), Ref(step, None)], [Spec((rows, cols))])
    (db,) = p.add_step(Sum((0,)), [Ref(dz, None)], [Spec((cols,))])
    p.prune({dz, db})
    fuse(p, fusible, {})
    (op,) = [s.op for s in p.steps if isinstance(s.op, Fused)]
    return op


@pytest.mark.parametrize(
    ("rows", "cols", "grid", "block"),
    [(128, 512, 64, 256), (128, 4096, 128, 256), (8, 64, 2, 256), (128, 10, 1, 250)],
)
def test_a_column_kernel_spreads_its_columns_over_enough_blocks(
    rows: int, cols: int, grid: int, block: int
) -> None:
    """A bias gradient of 512 columns over 128 rows runs as 64 blocks of 8 columns (it ran as
    16 blocks of 32, each thread walking 16 rows: 9 µs on an H100); wide layers keep 32
    columns a block, and few rows keep the block's threads busy."""
    plan = cuda_fusion.source(_bias_gradient(rows, cols))
    assert (plan.cols, plan.grid, plan.block) == (cols, grid, block)


@pytest.mark.skipif(not cuda_backend.is_available(), reason="needs CuPy and an NVIDIA GPU")
@pytest.mark.parametrize(("rows", "cols"), [(128, 512), (128, 17), (20, 512), (1000, 40)])
def test_a_column_kernel_sums_every_row_once(rows: int, cols: int) -> None:
    """On the GPU: blocks of fewer than 32 columns, several rows a thread, columns that do not
    fill the last block, fewer rows than a block has row groups: the product bit for bit (no
    multiply-add contracted), each column's sum to float32 rounding of a float64 oracle."""
    import cupy

    op = _bias_gradient(rows, cols)
    rng = np.random.default_rng(rows * cols)
    z, dy = (rng.standard_normal((rows, cols)).astype(np.float32) for _ in range(2))
    outs = cuda_fusion.run(op, [cupy.asarray(z), cupy.asarray(dy)], [None] * len(op.outputs))
    assert outs is not None
    got = {o.shape: cupy.asnumpy(o) for o in outs}
    dz = dy * np.maximum(z, np.float32(0))
    np.testing.assert_array_equal(got[(rows, cols)], dz)
    np.testing.assert_allclose(got[(cols,)], dz.astype(np.float64).sum(axis=0), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this machine")
def test_fused_kernels_compile_with_nvcc(tmp_path: Path) -> None:
    """Every fused kernel of the mlp step (column sums, the updates side by side) and of a
    bias gradient, as generated, compiles (the GPU tests run them)."""
    _, _, _, (program,) = _train("mlp", True, dl.AdamOptimizer(0.05, 0.9, 0.999), CostReduction.NONE, steps=2)
    ops = [s.op for s in program.steps if isinstance(s.op, Fused)] + [_bias_gradient(128, 512)]
    for k, op in enumerate(ops):
        src = tmp_path / f"k{k}.cu"
        src.write_text(cuda_fusion.source(op).source)
        result = subprocess.run(
            ["nvcc", "--ptx", "--fmad=false", "-o", str(tmp_path / f"k{k}.ptx"), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"nvcc failed:\n{result.stderr}\n{src.read_text()}"


def test_every_fusible_op_has_a_scalar_form() -> None:
    """The element-wise ops a fused kernel runs: those with a float32 C expression, the scaled
    add of every optimizer, and clone; equal (bool) and gather are not among them."""
    from deeplearn.math.ops.arithmetic import Equal
    from deeplearn.math.ops.layout import Clone, Gather

    for op in (Add(), Neg(), Relu(), ScaledArrayAdd(), Clone()):
        assert fusible(op)
    for op in (Equal(), Gather(), Sum(), MatMul()):
        assert not fusible(op)


def test_the_updates_of_several_variables_run_side_by_side_in_one_kernel() -> None:
    """Adam's update of four variables of four sizes: one Fused step of four parts, one per
    variable (its moments and its value), each on its own stretch of threads."""
    _, _, _, (program,) = _train("mlp", True, dl.AdamOptimizer(0.05, 0.9, 0.999), CostReduction.NONE, steps=2)
    (updates,) = [s for s in program.steps if isinstance(s.op, Fused) and s.op.segments]
    assert len(updates.op.segments) == 4
    plan = cuda_fusion.source(updates.op)
    assert plan.n == 6 * 5 + 5 + 5 * 3 + 3  # every element of the four variables
    assert plan.source.count("else if (t_ <") == 3


def test_groups_run_side_by_side_only_when_neither_reads_the_other() -> None:
    p = Program()
    x = p.bind("x", (3,), "float32")
    y = p.bind("y", (5,), "float32")
    (a,) = p.add_step(Square(), [Ref(x, None)], [Spec((3,))])
    (b,) = p.add_step(Neg(), [Ref(y, None)], [Spec((5,))])  # independent of a: side by side
    (c,) = p.add_step(Relu(), [Ref(b, None)], [Spec((5,))])  # reads b: b's group takes it
    (d,) = p.add_step(Sum(), [Ref(a, None)], [Spec(())])  # a sum: its group runs on its own
    p.prune({c, d})
    raws = [np.array([1, -2, 3], np.float32), np.array([-1, 2, -3, 4, -5], np.float32)]
    want = _run(p, raws)
    fuse(p, fusible, {})
    assert [s.op.segments for s in p.steps] == [()] * len(p.steps)  # a's group sums: not side by side
    got = _run(p, raws)
    for slot in (c, d):
        np.testing.assert_array_equal(got[slot], want[slot])
    q = Program()
    x = q.bind("x", (3,), "float32")
    y = q.bind("y", (5,), "float32")
    (a,) = q.add_step(Square(), [Ref(x, None)], [Spec((3,))])
    (b,) = q.add_step(Neg(), [Ref(y, None)], [Spec((5,))])
    (e,) = q.add_step(MatMul(), [Ref(a, (1, 3)), Ref(x, (3, 1))], [Spec((1, 1))])  # reads a: a's group closes
    (c,) = q.add_step(Relu(), [Ref(b, None)], [Spec((5,))])
    q.prune({e, c})
    fuse(q, fusible, {})
    assert [type(s.op).__name__ for s in q.steps] == ["Square", "MatMul", "Fused"]


def _nodes(program: Program) -> list[list[str]]:
    return [
        [type(n.op).__name__ for n in s.op.nodes] if isinstance(s.op, Fused) else [type(s.op).__name__]
        for s in program.steps
    ]


def test_a_scalar_written_in_place_never_joins_a_kernel_of_several_blocks() -> None:
    """Every thread reads a one-element value before the loop and one thread writes it at the
    end: in a kernel of several blocks, a block that starts late would read the new value."""
    n = SMALL + 1
    p = Program()
    x = p.bind("x", (n,), "float32")
    s = p.bind("s", (), "float32")
    (m,) = p.add_step(Neg(), [Ref(x, None)], [Spec((n,))])
    (s2,) = p.add_step(Square(), [Ref(s, None)], [Spec(())])  # written in place into s
    (y,) = p.add_step(Multiply(), [Ref(m, None), Ref(s2, None)], [Spec((n,))])
    p.prune({y, s2})
    fuse(p, fusible, {s2: s})
    assert not any("Square" in group and len(group) > 1 for group in _nodes(p)), _nodes(p)


def test_a_group_holding_a_scalar_written_in_place_takes_no_sum_by_columns() -> None:
    """Sums by column run over several blocks: a group that writes a one-element value in place
    (safe in one block) must stay one block."""
    p = Program()
    x = p.bind("x", (2, 4096), "float32")
    s = p.bind("s", (), "float32")
    (y,) = p.add_step(Multiply(), [Ref(x, None), Ref(s, None)], [Spec((2, 4096))])
    (s2,) = p.add_step(Square(), [Ref(s, None)], [Spec(())])  # written in place into s
    (z,) = p.add_step(Sum((0,)), [Ref(y, None)], [Spec((4096,))])
    p.prune({z, s2})
    fuse(p, fusible, {s2: s})
    assert not any("Square" in group and "Sum" in group for group in _nodes(p)), _nodes(p)


def test_a_value_read_broadcast_is_not_written_in_place_in_the_same_kernel() -> None:
    """T is read through a (64, 1) view (element r of row r: another block's column) and then
    updated per column in place: the update must not run in the kernel that reads it so."""
    p = Program()
    x = p.bind("x", (64, 2), "float32")
    t = p.bind("t", (64,), "float32")
    one = p.bind("one", (), "float32")
    (a,) = p.add_step(Multiply(), [Ref(x, None), Ref(t, (64, 1))], [Spec((64, 2))])
    (sq,) = p.add_step(Square(), [Ref(a, None)], [Spec((64, 2))])
    (z,) = p.add_step(Sum((0,)), [Ref(sq, (2, 64))], [Spec((64,))])
    (new,) = p.add_step(
        ScaledArrayAdd(), [Ref(one, None), Ref(t, None), Ref(one, None), Ref(z, None)], [Spec((64,))]
    )
    p.prune({new})
    raws = [
        np.linspace(-1, 1, 128, dtype=np.float32).reshape(64, 2),
        np.linspace(0, 1, 64, dtype=np.float32),
        np.array(1.0, np.float32),
    ]
    want = _run(p, raws)
    fuse(p, fusible, {new: t})
    assert not any("ScaledArrayAdd" in group and "Multiply" in group for group in _nodes(p)), _nodes(p)
    np.testing.assert_array_equal(_run(p, raws)[new], want[new])


def test_sums_by_column_that_need_more_shared_memory_than_a_block_has_get_no_kernel() -> None:
    """Each sum by column keeps a float per thread in shared memory (48 KiB a block): 50 sums
    of 64 columns over 256 threads would need 51 KiB. The op then runs its nodes one by one."""

    def program(sums: int) -> Program:
        p = Program()
        x = p.bind("x", (8, 64), "float32")
        outs = []
        for _ in range(sums):
            (sq,) = p.add_step(Square(), [Ref(x, None)], [Spec((8, 64))])
            (z,) = p.add_step(Sum((0,)), [Ref(sq, None)], [Spec((64,))])
            outs.append(z)
        p.prune(set(outs))
        fuse(p, fusible, {})
        return p

    ok = program(40).steps[0].op
    assert isinstance(ok, Fused) and cuda_fusion.source(ok).block == 256
    too_many = program(50).steps[0].op
    assert isinstance(too_many, Fused)
    with pytest.raises(ValueError, match="shared memory"):
        cuda_fusion.source(too_many)
