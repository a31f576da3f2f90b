"""OpCases for the Graph cost ops. Their gradients are the exact derivatives (docs/design.md §4), so
the finite-difference check applies."""

from __future__ import annotations

import numpy as np

from deeplearn.math.ops.costs import MeanSquaredCost, SoftmaxCrossEntropyCost
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


CASES = [
    OpCase(MeanSquaredCost(), ((5,), (5,)), ref_mean_squared),
    OpCase(MeanSquaredCost(), ((2, 3), (2, 3)), ref_mean_squared),
    OpCase(SoftmaxCrossEntropyCost(), ((4,), (4,)), ref_softmax_ce, make_inputs=_logits_and_targets((4,))),
    OpCase(
        SoftmaxCrossEntropyCost(), ((3, 4), (3, 4)), ref_softmax_ce, make_inputs=_logits_and_targets((3, 4))
    ),
]
