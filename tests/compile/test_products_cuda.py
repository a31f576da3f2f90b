"""Product epilogues on a GPU (deeplearn/math/backends/cuda_epilogue.py): a ``FusedProduct`` run
as one kernel of ours gives the bits of its product and its fused kernel run one after the
other, for each kind of plan (no split, a split added by a second kernel, a clustered split),
and a training step whose products are folded trains bit for bit as one whose are not. Which
pairs fold is tested on the CPU (tests/compile/test_products.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import CostReduction
from deeplearn.math.backends import cuda, cuda_epilogue, cuda_gemm, cuda_sgemm, cuda_timing
from deeplearn.math.backends.cuda_sgemm import Geometry, Plan
from deeplearn.math.ops.fused import FusedProduct
from deeplearn.math.ops.linalg import MatMul, MatrixOrientation
from tests.compile.test_fusion_cuda import _model
from tests.compile.test_products import _BIAS_RELU
from tests.math.test_cuda_sgemm import _keep_our_fastest

pytestmark = pytest.mark.skipif(
    not (cuda.is_available() and cuda_gemm.available()), reason="needs a GPU and nvmath-python"
)

_G = Geometry(128, 512, 784, False, False)


PLANS: dict[str, Plan | None] = {
    "sgemm": None,
    "plain": Plan(cuda_sgemm.TILINGS[1], 1, 784),
    "plain split by a second kernel": Plan(cuda_sgemm.TILINGS[1], 7, 112),
    "pipelined": Plan(cuda_sgemm.PIPELINED[3], 1, 784),
    "plain clustered": Plan(cuda_sgemm.TILINGS[1], 7, 112, clustered=True),
    "pipelined clustered": Plan(cuda_sgemm.PIPELINED[3], 7, 128, clustered=True),
}


@pytest.fixture(autouse=True)
def _fresh_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuda_sgemm, "_PLANS", {})
    monkeypatch.setattr(cuda_sgemm, "plan_log", {})


@pytest.mark.parametrize("kind", list(PLANS))
@pytest.mark.parametrize(  # (each case compiles a kernel: the product's result kept or not in one layout)
    ("keep", "at", "bt"),
    [
        (False, False, False),
        (True, False, False),
        (True, True, False),
        (True, False, True),
        (True, True, True),
    ],
)
def test_a_folded_product_gives_the_bits_of_its_two_kernels(
    monkeypatch: pytest.MonkeyPatch, kind: str, keep: bool, at: bool, bt: bool
) -> None:
    """For every operand layout (a forward product is (False, False); others fold where their
    fused step has no sum)."""
    import cupy

    plan = PLANS[kind]
    if plan is not None and plan.clustered and not cuda_sgemm._clusters():
        pytest.skip("this GPU has no thread block clusters (compute capability < 9.0)")
    monkeypatch.setattr(cuda_sgemm, "_choose", lambda *args: plan)
    rng = np.random.default_rng(4)
    a = cupy.asarray(rng.normal(size=(784, 128) if at else (128, 784)).astype(np.float32))
    b = cupy.asarray(rng.normal(size=(512, 784) if bt else (784, 512)).astype(np.float32) * 0.05)
    bias = cupy.asarray(rng.normal(size=512).astype(np.float32))
    orientation = {False: MatrixOrientation.REGULAR, True: MatrixOrientation.TRANSPOSED}
    op = FusedProduct(MatMul(orientation[at], orientation[bt]), _BIAS_RELU, 0, keep)
    ran = cuda_epilogue.run(op, a, b, [bias], [None] * (2 + keep))
    assert (ran is None) == (plan is None), "one kernel of ours where the plan is ours"
    got = cuda.cuda_kernel(op, a, b, bias)
    product = cuda_gemm.gemm(a, b, at, bt)  # the plan's own kernels
    want = cuda.cuda_kernel(_BIAS_RELU, product, bias)
    if keep:
        want = (product, *want)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.get(), w.get(), err_msg=kind)
    assert cuda_sgemm.plan_log[_G._replace(a_transposed=at, b_transposed=bt)] == (
        "sgemm" if plan is None else plan.name
    )


def _train(epilogues: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list[float], list[np.ndarray]]:
    monkeypatch.setattr(cuda_epilogue, "epilogues", epilogues)
    math = dl.NDArrayMathGPU()
    session, cost, feeds, variables = _model(math, "wide")
    optimizer = dl.MomentumOptimizer(0.05, 0.9)
    with math.scope() as scope:
        kept = [scope.keep(session.train(cost, feeds, 128, optimizer, CostReduction.MEAN)) for _ in range(12)]
        costs = [float(c.get()) for c in kept]
    return costs, [session.eval(v).numpy() for v in variables]


def test_a_captured_step_with_folded_products_trains_as_one_without(monkeypatch: pytest.MonkeyPatch) -> None:
    """(The same plans in both: they are chosen once per geometry and process; ours are kept
    here, whatever the timings, so that the folded products run as one kernel each.)"""
    monkeypatch.setattr(cuda_timing, "pick", _keep_our_fastest)
    folded: list[Any] = []
    ours = cuda_epilogue.run

    def running(op: FusedProduct, *args: Any) -> Any:
        outs = ours(op, *args)
        folded.append(outs is not None)
        return outs

    monkeypatch.setattr(cuda_epilogue, "run", running)
    costs, weights = _train(False, monkeypatch)
    assert not any(folded)
    folded_costs, folded_weights = _train(True, monkeypatch)
    assert any(folded), "the captured step ran folded products as one kernel"
    assert folded_costs == costs
    for w, v in zip(weights, folded_weights, strict=True):
        np.testing.assert_array_equal(v, w)


def test_a_refused_clustered_epilogue_falls_back_once_and_is_not_launched_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A GPU that cannot place a clustered plan's epilogue kernel: two kernels instead, from
    then on without another launch; the same refusal from a plan that is not clustered (or any
    other error) is raised, not taken for a refusal."""
    import cupy

    if not cuda_sgemm._clusters():
        pytest.skip("this GPU has no thread block clusters (compute capability < 9.0)")
    launches: list[Plan] = []

    def refusing_kernels(plan: Plan, g: Geometry, op: FusedProduct) -> tuple[Any, None]:
        def product(*args: Any) -> None:
            launches.append(plan)
            raise cupy.cuda.driver.CUDADriverError(912)  # CUDA_ERROR_INVALID_CLUSTER_SIZE

        return product, None

    monkeypatch.setattr(cuda_epilogue, "_kernels", refusing_kernels)
    monkeypatch.setattr(cuda_epilogue, "_REFUSED", set())
    rng = np.random.default_rng(5)
    a = cupy.asarray(rng.normal(size=(128, 784)).astype(np.float32))
    b = cupy.asarray(rng.normal(size=(784, 512)).astype(np.float32))
    bias = cupy.asarray(rng.normal(size=512).astype(np.float32))
    op = FusedProduct(MatMul(), _BIAS_RELU, 0, False)
    clustered = Plan(cuda_sgemm.TILINGS[1], 7, 112, clustered=True)
    monkeypatch.setattr(cuda_sgemm, "_choose", lambda *args: clustered)
    for _ in range(2):
        assert cuda_epilogue.run(op, a, b, [bias], [None, None]) is None
    assert launches == [clustered]
    monkeypatch.setattr(cuda_sgemm, "_PLANS", {})
    monkeypatch.setattr(cuda_sgemm, "_choose", lambda *args: PLANS["plain split by a second kernel"])
    with pytest.raises(cupy.cuda.driver.CUDADriverError):
        cuda_epilogue.run(op, a, b, [bias], [None, None])
