"""OpCases for resize_bilinear3d, with a naive oracle that loops over output pixels using the
TensorFlow 1.x legacy mapping (batch normalization is a composite, tested in
tests/math/test_image_rnn_costs.py)."""

from __future__ import annotations

import math

import numpy as np

from deeplearn.math.ops.image import ResizeBilinear3D
from tests.op_cases import OpCase


def ref_resize(new_shape: tuple[int, int], align_corners: bool):
    def source(r: int, in_size: int, out_size: int) -> tuple[int, int, float]:
        if align_corners and out_size > 1:
            src = r * (in_size - 1) / (out_size - 1)
        else:
            src = r * in_size / out_size
        lo = math.floor(src)
        return lo, min(math.ceil(src), in_size - 1), src - lo

    def f(x: np.ndarray) -> np.ndarray:
        x4 = x[None] if x.ndim == 3 else x
        b, h, w, c = x4.shape
        y = np.zeros((b, *new_shape, c))
        for r in range(new_shape[0]):
            r0, r1, rf = source(r, h, new_shape[0])
            for col in range(new_shape[1]):
                c0, c1, cf = source(col, w, new_shape[1])
                top = x4[:, r0, c0] + (x4[:, r0, c1] - x4[:, r0, c0]) * cf
                bottom = x4[:, r1, c0] + (x4[:, r1, c1] - x4[:, r1, c0]) * cf
                y[:, r, col] = top + (bottom - top) * rf
        return y[0] if x.ndim == 3 else y

    return f


CONFIGS = [  # (x shape, new shape, align_corners)
    ((2, 3, 2), (4, 5), False),
    ((2, 3, 2), (4, 5), True),
    ((5, 4, 1), (3, 2), False),  # downsampling
    ((5, 4, 1), (3, 2), True),
    ((3, 3, 2), (1, 4), True),  # align_corners with an output of size 1
    ((2, 3, 4, 2), (5, 3), False),  # batched
]

CASES = [
    OpCase(ResizeBilinear3D(new, align), (xs,), ref_resize(new, align), label=f"[{new},align={align}]")
    for xs, new, align in CONFIGS
]
