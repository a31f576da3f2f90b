"""OpCases for multinomial and one_hot.

The multinomial oracle draws the same uniform numbers (NumPy's Generator seeded alike: the
documented source of randomness) and inverts the CDF with an explicit loop."""

from __future__ import annotations

import numpy as np

from deeplearn.math.ops.random import Multinomial, OneHot
from tests.op_cases import OpCase


def ref_multinomial(num_samples: int, seed: int, normalized: bool):
    def f(probs: np.ndarray) -> np.ndarray:
        p2 = probs.reshape(-1, probs.shape[-1])
        u = np.random.default_rng(seed).random((p2.shape[0], num_samples))
        out = np.zeros((p2.shape[0], num_samples), dtype=np.int32)
        for row in range(p2.shape[0]):
            p = p2[row] if normalized else p2[row] / p2[row].sum()
            cdf = np.cumsum(p)
            for s in range(num_samples):
                out[row, s] = next((e for e in range(len(cdf)) if u[row, s] < cdf[e]), len(cdf) - 1)
        return out.reshape((*probs.shape[:-1], num_samples))

    return f


def _normalized(shape: tuple[int, ...]):
    def make(rng: np.random.Generator) -> list[np.ndarray]:
        p = rng.uniform(0.05, 1.0, shape)
        return [(p / p.sum(axis=-1, keepdims=True)).astype(np.float32)]

    return make


def ref_one_hot(depth: int, on: float, off: float):
    def f(indices: np.ndarray) -> np.ndarray:
        y = np.full((indices.shape[0], depth), off)
        for n, i in enumerate(indices):
            if 0 <= i < depth:
                y[n, int(i)] = on
        return y

    return f


NO_GRAD_SAMPLE = "sampling is not differentiable (integer output)"
NO_GRAD_INDEX = "the input is integer indices: no gradient"

CASES = [
    OpCase(
        Multinomial(50, 7, False),
        ((5,),),
        ref_multinomial(50, 7, False),
        low=0.0,
        high=1.0,
        grad=False,
        why_no_grad=NO_GRAD_SAMPLE,
        label="[seed=7]",
    ),
    OpCase(
        Multinomial(40, 3, False),
        ((3, 4),),
        ref_multinomial(40, 3, False),
        low=0.0,
        high=3.0,
        grad=False,
        why_no_grad=NO_GRAD_SAMPLE,
        label="[seed=3]",
    ),
    OpCase(
        Multinomial(40, 11, True),
        ((2, 6),),
        ref_multinomial(40, 11, True),
        make_inputs=_normalized((2, 6)),
        grad=False,
        why_no_grad=NO_GRAD_SAMPLE,
        label="[normalized]",
    ),
    OpCase(
        OneHot(4, 1.0, 0.0),
        ((6,),),
        ref_one_hot(4, 1.0, 0.0),
        dtypes=("int32",),
        low=0,
        high=3,
        grad=False,
        why_no_grad=NO_GRAD_INDEX,
    ),
    OpCase(
        OneHot(3, 3.0, -2.0),
        ((7,),),
        ref_one_hot(3, 3.0, -2.0),
        dtypes=("int32",),
        low=-1,
        high=4,
        grad=False,
        why_no_grad=NO_GRAD_INDEX,
        label="[out of range]",
    ),
]
