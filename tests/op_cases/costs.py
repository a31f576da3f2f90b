"""OpCases for the Graph cost ops. Their gradients are the exact derivatives (docs/design.md §4), so
the finite-difference check applies."""

from __future__ import annotations

import numpy as np

from deeplearn.math.ops.costs import MeanSquaredCost, SoftmaxCrossEntropyCost, SoftmaxCrossEntropyCostDer
from tests.op_cases import OpCase


def ref_mean_squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(sum(0.5 * (u - v) ** 2 for u, v in zip(a.ravel(), b.ravel(), strict=False)) / a.size)


def ref_softmax_ce(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    x2, t2 = x.reshape(-1, x.shape[-1]), t.reshape(-1, x.shape[-1])
    total = 0.0
    for row, target in zip(x2, t2, strict=False):
        e = np.exp(row - row.max())
        total -= float(np.dot(target, np.log(e / e.sum() + 1e-5)))
    return np.asarray(total)


def _logits_and_targets(shape: tuple[int, ...]):
    def make(rng: np.random.Generator) -> list[np.ndarray]:
        t = rng.uniform(0.0, 1.0, shape)
        return [
            rng.uniform(-2, 2, shape).astype(np.float32),
            (t / t.sum(-1, keepdims=True)).astype(np.float32),
        ]

    return make


def ref_softmax_ce_der(x: np.ndarray, t: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row by row: the derivative of −Σ t·log(p + 1e-5) with respect to x and t, times dy."""
    shape = np.broadcast_shapes(x.shape, t.shape)
    xb, tb, dyb = (np.broadcast_to(a, shape).reshape(-1, shape[-1]) for a in (x, t, np.broadcast_to(dy, shape)))
    dx, dt = np.empty(xb.shape), np.empty(xb.shape)
    for r, (row, target, g) in enumerate(zip(xb, tb, dyb, strict=True)):
        e = np.exp(row - row.max())
        p = e / e.sum()
        for j in range(len(row)):
            # d/dx_j of −Σ_k t_k log(p_k + eps), with dp_k/dx_j = p_k (δ_kj − p_j)
            dx[r, j] = g[j] * -sum(target[k] / (p[k] + 1e-5) * p[k] * ((k == j) - p[j]) for k in range(len(row)))
            dt[r, j] = -g[j] * np.log(p[j] + 1e-5)
    return dx.reshape(shape), dt.reshape(shape)


def _der_inputs(shape: tuple[int, ...], dy_shape: tuple[int, ...]):
    make_pair = _logits_and_targets(shape)

    def make(rng: np.random.Generator) -> list[np.ndarray]:
        return [*make_pair(rng), rng.uniform(-2, 2, dy_shape).astype(np.float32)]

    return make


DER_WHY = "a derivative: softmax_cross_entropy_cost's gradient check covers it"

CASES = [
    OpCase(MeanSquaredCost(), ((5,), (5,)), ref_mean_squared),
    OpCase(MeanSquaredCost(), ((2, 3), (2, 3)), ref_mean_squared),
    OpCase(SoftmaxCrossEntropyCost(), ((4,), (4,)), ref_softmax_ce, make_inputs=_logits_and_targets((4,))),
    OpCase(
        SoftmaxCrossEntropyCost(), ((3, 4), (3, 4)), ref_softmax_ce, make_inputs=_logits_and_targets((3, 4))
    ),
    OpCase(SoftmaxCrossEntropyCostDer(), ((4,), (4,), ()), ref_softmax_ce_der, make_inputs=_der_inputs((4,), ()),
           grad=False, why_no_grad=DER_WHY),
    OpCase(SoftmaxCrossEntropyCostDer(), ((3, 5), (3, 5), (3, 1)), ref_softmax_ce_der,
           make_inputs=_der_inputs((3, 5), (3, 1)), grad=False, why_no_grad=DER_WHY, label="[per example]"),
    OpCase(SoftmaxCrossEntropyCostDer(), ((2, 3, 4), (2, 3, 4), (2, 1, 1)), ref_softmax_ce_der,
           make_inputs=_der_inputs((2, 3, 4), (2, 1, 1)), grad=False, why_no_grad=DER_WHY, label="[rank 2 examples]"),
]
