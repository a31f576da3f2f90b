"""Fused CUDA kernels (deeplearn/math/backends/cuda_fusion.py) on a GPU: each equals its nodes
run one by one by their own kernels (bit for bit where no sum is involved; a sum adds in
another order, so within a few ulps), and a captured training step that runs them trains as
the unfused one does, to within those ulps. The grouping itself is tested on the CPU
(tests/compile/test_fusion.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import CostReduction, Session
from deeplearn.compile.cuda_graph import CapturedProgram
from deeplearn.math.backends import cuda_available
from deeplearn.math.ops.fused import SMALL, Fused, FusedProduct
from deeplearn.math.ops.layout import Gather
from deeplearn.math.ops.reduction import Sum
from tests.compile.test_fusion import OPTIMIZERS

pytestmark = pytest.mark.skipif(not cuda_available(), reason="runs fused CUDA kernels: needs CuPy and an NVIDIA GPU")


def _model(math: dl.NDArrayMath, kind: str) -> tuple[Session, Any, dict[Any, Any], list[Any]]:
    rng = np.random.default_rng(3)
    g = dl.Graph()
    if kind == "quad":
        x, label = g.placeholder("x", []), g.placeholder("y", [])
        a, b, c = (g.variable(n, dl.Scalar.new(v, math=math)) for n, v in (("a", 0.3), ("b", -0.2), ("c", 0.1)))
        cost = g.mean_squared_cost(g.add(g.add(g.multiply(a, g.square(x)), g.multiply(b, x)), c), label)
        xs = rng.uniform(-2, 2, 64).astype(np.float32)
        ys = (1.5 * xs * xs - 0.5 * xs + 0.25).astype(np.float32)
        variables = [a, b, c]
    else:  # a relu MLP; wide enough that its element-wise kernels span many blocks
        width = 512 if kind == "wide" else 16
        x, label = g.placeholder("x", [12]), g.placeholder("y", [4])

        def init(*shape: int) -> dl.NDArrayInitializer:
            return dl.NDArrayInitializer(dl.NDArray.from_numpy(rng.normal(0, 0.3, shape).astype(np.float32), math=math))

        h = g.layers.dense("h", x, width, lambda t: g.relu(t), True, init(12, width), init(width))
        out = g.layers.dense("out", h, 4, None, True, init(width, 4), init(4))
        cost = g.softmax_cross_entropy_cost(out, label)
        xs = rng.normal(0, 1, (64, 12)).astype(np.float32)
        ys = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 64)]
        variables = [n.output for n in g.nodes if isinstance(n, dl.graph.graph.VariableNode)]
    xp, yp = dl.InGPUMemoryShuffledInputProviderBuilder([xs, ys], seed=0).get_input_providers()
    return Session(g, math), cost, {x: xp, label: yp}, variables


def _train(kind: str, fuse: bool, optimizer: dl.Optimizer, reduction: CostReduction, batch: int = 16,
           steps: int = 30) -> tuple[list[float], list[np.ndarray], Session]:
    math = dl.NDArrayMathGPU()
    session, cost, feeds, variables = _model(math, kind)
    session.fuse_kernels = fuse
    with math.scope() as scope:
        kept = [scope.keep(session.train(cost, feeds, batch, optimizer, reduction)) for _ in range(steps)]
        costs = [float(c.get()) for c in kept]
    return costs, [session.eval(v).numpy() for v in variables], session


def _programs(session: Session) -> list[Any]:
    return [p for plan in session._plans.values() for s in plan._steps.values() for p in s.training.values()]


@pytest.mark.parametrize("reduction", [CostReduction.NONE, CostReduction.MEAN])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize(("kind", "batch"), [("quad", 16), ("mlp", 16), ("wide", 32)])
def test_a_fused_captured_step_trains_as_the_unfused_one(kind: str, batch: int, optimizer: str,
                                                          reduction: CostReduction) -> None:
    """30 steps, fused and not: the costs and weights agree to within float32 ulps (a fused
    sum adds in another order; the rest is the same arithmetic)."""
    costs, weights, session = _train(kind, True, OPTIMIZERS[optimizer](), reduction, batch)
    (program,) = _programs(session)
    assert isinstance(program.capture, CapturedProgram)
    assert any(isinstance(s.op, Fused) for s in program.steps)
    plain_costs, plain_weights, _ = _train(kind, False, OPTIMIZERS[optimizer](), reduction, batch)
    np.testing.assert_allclose(costs, plain_costs, rtol=1e-5, atol=1e-6)
    for w, v in zip(weights, plain_weights, strict=True):
        np.testing.assert_allclose(w, v, rtol=1e-5, atol=1e-6)


def _inputs(op: Fused, rng: np.random.Generator) -> list[Any]:
    import cupy

    arrays: list[Any] = [None] * len(op.inputs)
    for node in op.nodes:
        if isinstance(node.op, Gather):
            examples, rows = node.args
            n = op.inputs[examples.value].shape[0]
            arrays[rows.value] = cupy.asarray(rng.integers(0, n, op.inputs[rows.value].shape).astype(np.int32))
    for i, spec in enumerate(op.inputs):
        if arrays[i] is None:
            arrays[i] = cupy.asarray(rng.uniform(-2, 2, spec.shape).astype(np.float32))
    return arrays


def _after_a_sum(op: Fused) -> set[int]:
    k = len(op.inputs)
    after: set[int] = set()
    for j, node in enumerate(op.nodes):
        if isinstance(node.op, Sum) or any(a.value in after for a in node.args):
            after.add(k + j)
    return after


@pytest.mark.parametrize(("kind", "batch"), [("quad", 16), ("quad", 3000), ("mlp", 16), ("wide", 32)])
def test_each_fused_kernel_equals_its_nodes_one_by_one(kind: str, batch: int) -> None:
    """On random inputs, every Fused step of a recorded step: its one kernel against its nodes'
    own CUDA kernels. Bit for bit, except what follows a sum (within a few ulps of the sum)."""
    from deeplearn.math.backends import cuda, cuda_fusion

    _, _, session = _train(kind, True, dl.MomentumOptimizer(0.05, 0.9), CostReduction.MEAN, batch, steps=2)
    steps = [s.op for p in _programs(session) for s in p.steps]
    # (a product's bias and relu: folded into the product's step, deeplearn/compile/products.py)
    fused = [op.fused if isinstance(op, FusedProduct) else op for op in steps if isinstance(op, (Fused, FusedProduct))]
    assert fused
    sizes = set()
    rng = np.random.default_rng(0)
    for op in fused:
        arrays = _inputs(op, rng)
        one = cuda_fusion.run(op, arrays, [None] * len(op.outputs))
        assert one is not None, cuda_fusion.source(op).source
        apart = op.run_nodes(cuda.cuda_kernel, arrays)
        apart = apart if isinstance(apart, tuple) else (apart,)
        after = _after_a_sum(op)
        sizes.add(cuda_fusion.source(op).n)
        for v, x, y in zip(op.outputs, one, apart, strict=True):
            if v in after:
                np.testing.assert_allclose(x.get(), y.get(), rtol=1e-5, atol=1e-5 * float(abs(y).max().get() + 1))
            else:
                np.testing.assert_array_equal(x.get(), y.get())
    if kind == "wide":
        assert max(sizes) > SMALL  # a kernel over many blocks was among them




def test_the_quad_step_is_two_kernels_in_its_graph() -> None:
    """The batch's row indices read where the rows cursor points (``deeplearn/compile/rows.py``),
    then forward, backward, gradients, updates and the batch's gathers in one kernel."""
    _, _, session = _train("quad", True, dl.SGDOptimizer(0.05), CostReduction.NONE, steps=3)
    (program,) = _programs(session)
    assert program.capture.node_kinds() == {"Kernel": 2}
    assert len(program.capture._cursors) == 1  # the paired providers' rows: one cursor


def test_a_captured_step_with_products_allocates_nothing_in_its_graph() -> None:
    """cuBLAS uses the workspace we give it, in the graph too (cublasSetStream drops it: it had
    allocated one per product, as MemAlloc and MemFree nodes). A bias's gradient is summed in
    the kernel of relu's derivative."""
    _, _, session = _train("wide", True, dl.SGDOptimizer(0.05), CostReduction.NONE, batch=32, steps=3)
    (program,) = _programs(session)
    kinds = program.capture.node_kinds()
    assert set(kinds) == {"Kernel"}, kinds
    from deeplearn.math.backends import cuda_fusion

    plans = [cuda_fusion.source(s.op) for s in program.steps if isinstance(s.op, Fused)]
    assert any(p.cols == 512 for p in plans)


def test_a_step_of_many_scalar_variables_is_one_kernel_that_launches() -> None:
    """y = Σₖ aₖ·tanh(bₖ·x + cₖ) for ten k, with Adam: thirty scalar variables and their moments
    in one kernel of a thousand threads, more registers than such a block may have unless the
    kernel is compiled for its block (__launch_bounds__). It trains as the unfused step does."""

    def run(fuse: bool) -> tuple[list[float], list[np.ndarray]]:
        math = dl.NDArrayMathGPU()
        g = dl.Graph()
        x, label = g.placeholder("x", []), g.placeholder("y", [])
        terms, variables = [], []
        for k in range(10):
            a, b, c = (g.variable(f"{n}{k}", dl.Scalar.new(0.1 * (k + 1) * s, math=math))
                       for n, s in (("a", 1.0), ("b", -0.5), ("c", 0.3)))
            variables += [a, b, c]
            terms.append(g.multiply(a, g.tanh(g.add(g.multiply(b, x), c))))
        y = terms[0]
        for t in terms[1:]:
            y = g.add(y, t)
        xs = np.linspace(-2, 2, 1024, dtype=np.float32)
        xp, yp = dl.InGPUMemoryShuffledInputProviderBuilder([xs, np.sin(xs)], seed=0).get_input_providers()
        session = Session(g, math)
        session.fuse_kernels = fuse
        optimizer = dl.AdamOptimizer(0.01, 0.9, 0.999)
        cost = g.mean_squared_cost(y, label)
        with math.scope() as scope:
            kept = [scope.keep(session.train(cost, {x: xp, label: yp}, 1024, optimizer, CostReduction.MEAN))
                    for _ in range(5)]
            costs = [float(k.get()) for k in kept]
        if fuse:
            (program,) = _programs(session)
            assert isinstance(program.capture, CapturedProgram)
            from deeplearn.math.backends import cuda_fusion

            op = max((s.op for s in program.steps if isinstance(s.op, Fused)), key=lambda o: len(o.nodes))
            assert len(op.nodes) > 60  # forward, backward and thirty updates with their moments
            # It launches as one kernel (without __launch_bounds__ it ran out of registers).
            assert cuda_fusion.run(op, _inputs(op, np.random.default_rng(1)), [None] * len(op.outputs))
        return costs, [session.eval(v).numpy() for v in variables]

    fused_costs, fused = run(True)
    costs, plain = run(False)
    np.testing.assert_allclose(fused_costs, costs, rtol=1e-5)
    for w, v in zip(fused, plain, strict=True):
        np.testing.assert_allclose(w, v, rtol=1e-5, atol=1e-6)
