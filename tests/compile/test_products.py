"""Products folded with the fused step that alone reads them (deeplearn/compile/products.py), on
the CPU; and the CUDA source of their epilogues (deeplearn/math/backends/cuda_epilogue.py).

A ``FusedProduct`` run on the CPU runs the product and then the fused nodes, so a folded
Program must give exactly the unfolded one's results: these tests fold recorded training steps
and hand-made Programs, train on, and compare bit for bit; they check which pairs fold and
which must not. The epilogue kernels themselves run on a GPU in
tests/compile/test_products_cuda.py; here their source compiles with nvcc where it is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import CostReduction, Session
from deeplearn.compile.products import fold_products
from deeplearn.compile.program import Program, Ref
from deeplearn.math.backends import cuda_epilogue, cuda_fusion, cuda_sgemm
from deeplearn.math.backends.cuda_sgemm import Geometry, Plan
from deeplearn.math.ops.arithmetic import Add
from deeplearn.math.ops.base import Spec
from deeplearn.math.ops.elementwise import Relu
from deeplearn.math.ops.fused import Arg, Fused, FusedProduct, Node
from deeplearn.math.ops.layout import Gather
from deeplearn.math.ops.linalg import TRANSPOSED, MatMul
from deeplearn.math.ops.reduction import Sum
from tests.compile.test_fusion import OPTIMIZERS, fuse_recorded


def folds(product: MatMul, fused: Fused, at: int) -> bool:
    """``cuda_epilogue.folds`` without its GPU half: whether the nodes have an epilogue."""
    try:
        cuda_fusion.element_code(fused, at)
    except ValueError:
        return False
    return True


def _mlp(math: dl.NDArrayMath) -> tuple[Session, Any, dict[Any, Any], list[Any]]:
    """A relu MLP of two hidden layers, as the benchmark's mlp is, small."""
    rng = np.random.default_rng(5)
    g = dl.Graph()
    x, label = g.placeholder("x", [12]), g.placeholder("y", [4])

    def init(*shape: int) -> dl.NDArrayInitializer:
        return dl.NDArrayInitializer(
            dl.NDArray.from_numpy(rng.normal(0, 0.3, shape).astype(np.float32), math=math)
        )

    h1 = g.layers.dense("h1", x, 16, lambda t: g.relu(t), True, init(12, 16), init(16))
    h2 = g.layers.dense("h2", h1, 16, lambda t: g.relu(t), True, init(16, 16), init(16))
    out = g.layers.dense("out", h2, 4, None, True, init(16, 4), init(4))
    cost = g.softmax_cross_entropy_cost(out, label)
    xs = rng.normal(0, 1, (48, 12)).astype(np.float32)
    ys = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 48)]
    xp, yp = dl.InCPUMemoryShuffledInputProviderBuilder([xs, ys], seed=0).get_input_providers()
    variables = [n.output for n in g.nodes if isinstance(n, dl.graph.graph.VariableNode)]
    return Session(g, math), cost, {x: xp, label: yp}, variables


def _train(
    fold: bool, optimizer: dl.Optimizer, reduction: CostReduction, steps: int = 10
) -> tuple[list[float], list[np.ndarray], list[Program]]:
    math = dl.NDArrayMathCPU()
    session, cost, feeds, variables = _mlp(math)
    programs: list[Program] = []
    costs = []
    for step in range(steps):
        with math.scope():
            costs.append(float(session.train(cost, feeds, 8, optimizer, reduction).get()))
        if step == 0:  # recorded by now: fuse (and fold) it as a captured step would be
            programs = fuse_recorded(
                session, (lambda p: fold_products(p, folds, p.writable_in_place())) if fold else None
            )
    return costs, [session.eval(v).numpy() for v in variables], programs


@pytest.mark.parametrize("reduction", [CostReduction.NONE, CostReduction.MEAN])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_a_folded_training_step_gives_the_fused_results_bit_for_bit(
    optimizer: str, reduction: CostReduction
) -> None:
    costs, weights, _ = _train(False, OPTIMIZERS[optimizer](), reduction)
    folded_costs, folded_weights, programs = _train(True, OPTIMIZERS[optimizer](), reduction)
    assert programs and all(any(isinstance(s.op, FusedProduct) for s in p.steps) for p in programs)
    assert folded_costs == costs
    for w, v in zip(weights, folded_weights, strict=True):
        np.testing.assert_array_equal(v, w)


def test_the_forward_products_fold_and_the_backward_ones_do_not() -> None:
    """Each layer's x·W with its bias (and relu); a backward product is read by a step that
    sums (the bias gradient), or by two steps, and keeps its own kernel."""
    _, _, programs = _train(True, dl.SGDOptimizer(0.1), CostReduction.NONE, steps=1)
    (program,) = programs
    folded = [s.op for s in program.steps if isinstance(s.op, FusedProduct)]
    assert len(folded) == 3
    assert all(op.keep for op in folded), "the activation map may hand out each product's value"
    assert all(op.product == MatMul() for op in folded), "the forward products: neither operand transposed"
    assert [op.fused.inputs[op.at].shape for op in folded] == [(8, 16), (8, 16), (8, 4)]
    for op in folded[:2]:  # bias + relu, handing out both (relu's backward reads the sum)
        assert [type(n.op) for n in op.fused.nodes] == [Add, Relu] and len(op.fused.outputs) == 2
    products = [s.op for s in program.steps if isinstance(s.op, MatMul)]
    assert len(products) == 5 and all(TRANSPOSED in (p.a_orientation, p.b_orientation) for p in products)


def _layer(program: Program) -> tuple[int, int, int, Fused]:
    """A Program computing c = x·w, then relu(c + b) by a Fused step: (c, b, y, the Fused op)."""
    x, w, b = (
        program.bind("x", (2, 3), "float32"),
        program.bind("w", (3, 4), "float32"),
        program.bind("b", (4,), "float32"),
    )
    (c,) = program.add_step(MatMul(), [Ref(x, None), Ref(w, None)], [Spec((2, 4))])
    bias_relu = Fused(
        inputs=(Spec((2, 4)), Spec((4,))),
        nodes=(Node(Add(), (Arg(0), Arg(1)), Spec((2, 4))), Node(Relu(), (Arg(2),), Spec((2, 4)))),
        outputs=(3,),
    )
    (y,) = program.add_step(bias_relu, [Ref(c, None), Ref(b, None)], [Spec((2, 4))])
    return c, b, y, bias_relu


def _run(program: Program, raws: list[np.ndarray]) -> list[Any]:
    return program.run_raw(dl.NDArrayMathCPU().engine, raws)


def test_a_hand_made_layer_folds_and_gives_the_same_bits() -> None:
    rng = np.random.default_rng(0)
    raws = [rng.normal(size=s).astype(np.float32) for s in ((2, 3), (3, 4), (4,))]
    program = Program()
    _, _, y, _ = _layer(program)
    program.needed = frozenset({y})
    want = _run(program, raws)[y].copy()
    assert fold_products(program, lambda *_: True, {}) == 1
    (step,) = program.steps
    assert isinstance(step.op, FusedProduct) and not step.op.keep
    assert [r.slot for r in step.inputs] == [0, 1, 2] and step.outputs == (y,)
    np.testing.assert_array_equal(_run(program, raws)[y], want)


@pytest.mark.parametrize("how", ["handed out", "read by a later step"])
def test_a_product_whose_result_is_read_elsewhere_too_folds_and_keeps_it(how: str) -> None:
    rng = np.random.default_rng(1)
    raws = [rng.normal(size=s).astype(np.float32) for s in ((2, 3), (3, 4), (4,))]
    program = Program()
    c, _, y, _ = _layer(program)
    wanted = {y, c}
    if how == "read by a later step":
        (z,) = program.add_step(Relu(), [Ref(c, None)], [Spec((2, 4))])
        wanted = {y, z}
    program.needed = frozenset(wanted)
    want = [x.copy() if x is not None else None for x in _run(program, raws)]
    assert fold_products(program, lambda *_: True, {}) == 1
    step = program.steps[0]
    assert isinstance(step.op, FusedProduct) and step.op.keep and step.outputs == (c, y)
    got = _run(program, raws)
    for slot in wanted | {c}:
        np.testing.assert_array_equal(got[slot], want[slot])


def test_a_pair_that_writes_in_place_or_that_the_backend_refuses_does_not_fold() -> None:
    """(A result written into a bound buffer stays the one output of its step: an update's.)"""
    program = Program()
    c, b, y, _ = _layer(program)
    program.needed = frozenset({y})
    assert fold_products(program, lambda *_: True, {y: b}) == 0
    assert fold_products(program, lambda *_: True, {c: b}) == 0
    assert fold_products(program, lambda *_: False, {}) == 0


def test_a_fused_step_with_a_sum_has_no_epilogue() -> None:
    """(the bias gradient of a backward product: a sum over the batch)"""
    with_sum = Fused(
        inputs=(Spec((8, 4)), Spec((8, 4))),
        nodes=(Node(Relu(), (Arg(0),), Spec((8, 4))), Node(Sum(), (Arg(2),), Spec((4,)))),
        outputs=(3,),
    )
    assert not folds(MatMul(), with_sum, 0)
    broadcast = Fused(  # the product read as a row, broadcast over the others
        inputs=(Spec((1, 4)), Spec((8, 4))),
        nodes=(Node(Add(), (Arg(0), Arg(1)), Spec((8, 4))),),
        outputs=(2,),
    )
    assert not folds(MatMul(), broadcast, 0)
    gathered = Fused(  # rows of the product picked by index: not element for element
        inputs=(Spec((8, 4)), Spec((8,), "int32")),
        nodes=(Node(Gather(), (Arg(0), Arg(1)), Spec((8, 4))), Node(Relu(), (Arg(2),), Spec((8, 4)))),
        outputs=(3,),
    )
    assert not folds(MatMul(), gathered, 0)


# The epilogue's CUDA source, for each kind of plan.

_BIAS_RELU = Fused(
    inputs=(Spec((128, 512)), Spec((512,))),
    nodes=(Node(Add(), (Arg(0), Arg(1)), Spec((128, 512))), Node(Relu(), (Arg(2),), Spec((128, 512)))),
    outputs=(2, 3),
)
_MLP_FIRST = Geometry(128, 512, 784, False, False)
PLANS = {
    "plain": Plan(cuda_sgemm.TILINGS[1], 1, 784),
    "plain split by a second kernel": Plan(cuda_sgemm.TILINGS[1], 7, 112),
    "pipelined clustered": Plan(cuda_sgemm.PIPELINED[3], 7, 128, clustered=True),
}


def test_the_epilogue_source_writes_each_output_from_the_product_s_value() -> None:
    text = cuda_epilogue.source(PLANS["plain"], _MLP_FIRST, FusedProduct(MatMul(), _BIAS_RELU, 0, keep=True))
    assert "const T a = p_; const T b = in1[(i % 512LL)];" in text
    assert "outp[i] = p_;" in text and ", float* outp)" in text
    assert "out0[i] = v2;" in text and "out1[i] = v3;" in text
    assert "deeplearn_store<32, 32, 2, 2, false, false>(acc, put, M, N);" in text
    split = cuda_epilogue.source(
        PLANS["plain split by a second kernel"], _MLP_FIRST, FusedProduct(MatMul(), _BIAS_RELU, 0, keep=True)
    )
    assert "dl_product_sum" in split and "deeplearn_add_parts(parts, size, S, put);" in split
    clustered = cuda_epilogue.source(
        PLANS["pipelined clustered"], _MLP_FIRST, FusedProduct(MatMul(), _BIAS_RELU, 0, keep=True)
    )
    assert "__cluster_dims__(1, 1, 7)" in clustered and "dl_product_sum" not in clustered
    assert "deeplearn_cluster_sum<32, 32, 4, 4, 7, true, false>(acc, put, M, N);" in clustered


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this machine")
@pytest.mark.parametrize("kind", list(PLANS))
def test_the_epilogue_kernels_compile_with_nvcc(tmp_path: Path, kind: str) -> None:
    src = tmp_path / "epilogue.cu"
    src.write_text(
        cuda_epilogue.source(PLANS[kind], _MLP_FIRST, FusedProduct(MatMul(), _BIAS_RELU, 0, keep=True))
    )
    result = subprocess.run(
        [
            "nvcc",
            "-cubin",
            "-std=c++17",
            "--fmad=false",
            "-arch=sm_90",
            "-o",
            str(tmp_path / "e.cubin"),
            str(src),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"nvcc failed:\n{result.stderr}"
