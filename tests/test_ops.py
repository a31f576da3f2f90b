"""The op table's four tests, for every op on every backend (docs/design.md §10)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn.math.ops.base import OPS, Spec
from tests.conftest import as_ndarray
from tests.op_cases import CASES, OpCase


def _tuple(x: Any) -> tuple[Any, ...]:
    return x if isinstance(x, tuple) else (x,)


def _as64(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) if x.dtype.kind == "f" else x


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_forward_matches_reference(case: OpCase, math: dl.NDArrayMath) -> None:
    inputs = case.inputs(np.random.default_rng(0))
    outs = _tuple(math.engine.run(case.op, *(as_ndarray(math, x) for x in inputs)))
    expected = _tuple(case.reference(*(_as64(x) for x in inputs)))
    assert len(outs) == len(expected), case.id
    for out, exp in zip(outs, expected):
        exp = np.asarray(exp)
        assert out.shape == exp.shape, f"{case.id}: shape {out.shape} vs reference {exp.shape}"
        np.testing.assert_allclose(out.numpy(), exp, rtol=case.rtol, atol=case.atol, err_msg=case.id)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_infer_matches_forward(case: OpCase) -> None:
    """The shape rule and the kernel agree on shape and dtype."""
    inputs = case.inputs(np.random.default_rng(0))
    specs = [Spec(x.shape, "bool" if x.dtype == np.bool_ else x.dtype.name) for x in inputs]  # type: ignore[arg-type]
    inferred = _tuple(case.op.infer(*specs))
    with np.errstate(all="ignore"):
        produced = _tuple(case.op.forward(np, *inputs))
    for spec, out in zip(inferred, produced):
        out = np.asarray(out)
        assert spec.shape == out.shape, case.id
        kind = {"float32": "f", "int32": "iu", "bool": "b"}[spec.dtype]
        assert out.dtype.kind in kind, f"{case.id}: dtype {out.dtype} vs rule {spec.dtype}"


def numeric_vjp(f: Callable[..., Any], inputs: list[np.ndarray], dy: np.ndarray, i: int,
                eps: float = 1e-6) -> np.ndarray:
    """d/d inputs[i] of sum(dy * f(inputs)), by central differences."""
    x, grad = inputs[i], np.zeros_like(inputs[i])
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = np.sum(np.asarray(f(*inputs)) * dy)
        x[idx] = old - eps
        minus = np.sum(np.asarray(f(*inputs)) * dy)
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize("case", [c for c in CASES if c.grad], ids=lambda c: c.id)
def test_gradient_matches_finite_differences(case: OpCase) -> None:
    """vjp from Op.backward vs central differences of Op.forward, in float64 on the CPU."""
    rng = np.random.default_rng(0)
    inputs = case.inputs(rng, np.float64)
    math = dl.NDArrayMath("cpu")
    math.engine.keep_float64 = True
    nd = [as_ndarray(math, x) for x in inputs]
    y = math.engine.run(case.op, *nd)
    dy = rng.standard_normal(y.shape)
    grads = case.op.backward(math, as_ndarray(math, dy), *nd, y)
    assert len(grads) == len(inputs), f"{case.id}: backward must return one gradient per input"
    for i, g in enumerate(grads):
        if inputs[i].dtype.kind != "f":
            continue  # no gradient with respect to integer or boolean inputs
        assert g is not None, f"{case.id}: missing gradient of input {i}"
        with np.errstate(all="ignore"):
            expected = numeric_vjp(lambda *xs: case.op.forward(np, *xs), inputs, dy, i)
        assert g.shape == inputs[i].shape, f"{case.id}: gradient {i} shape {g.shape}"
        np.testing.assert_allclose(g.numpy(), expected, rtol=case.grad_rtol, atol=case.grad_atol,
                                   err_msg=f"{case.id}: gradient of input {i}")


def test_every_op_has_a_case_and_a_method() -> None:
    covered = {type(c.op) for c in CASES}
    missing = [op.__name__ for op in OPS if op not in covered]
    assert not missing, f"ops without an OpCase: {missing}"
    no_method = [op.__name__ for op in OPS if not hasattr(dl.NDArrayMath, op.name)]
    assert not no_method, f"ops without a public NDArrayMath method: {no_method}"
    assert all(c.why_no_grad for c in CASES if not c.grad), "every case without a gradient says why"
