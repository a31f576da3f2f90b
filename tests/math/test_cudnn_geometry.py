"""What deeplearn hands cuDNN (``deeplearn/math/backends/cuda_cudnn.py``), checked on any machine:
a convolution computed the way cuDNN defines it, over the geometry and the KRSC filter deeplearn
describes to it, is the op's own (conv2d and depthwise_conv2d); the filter's layout changes undo
each other. The GPU tests (test_cuda_cudnn.py) run cuDNN itself."""

from __future__ import annotations

import numpy as np
import pytest

from deeplearn.math.backends import cuda_cudnn, cuda_timing
from deeplearn.math.ops.conv import Conv2D, DepthwiseConv2D

# (input [b, h, w, c], filter, strides, pad, depthwise)
CASES = [
    ((2, 9, 7, 3), (3, 2, 3, 4), 2, "same", False),  # asymmetric 'same' padding, non-square filter
    ((3, 8, 8, 2), (3, 3, 2, 5), 1, "valid", False),
    ((1, 10, 11, 4), (4, 4, 4, 3), (2, 3), 1, False),
    ((2, 8, 8, 3), (3, 3, 3, 4), 2, "valid", False),  # the last row is read by no window
    ((2, 9, 9, 3), (2, 2, 3, 4), 3, "same", False),  # a filter smaller than the stride
    ((4, 15, 15, 8), (3, 3, 8, 1), 2, "same", True),
    ((2, 9, 8, 3), (3, 2, 3, 2), 1, "valid", True),  # a channel multiplier of 2
    ((1, 8, 8, 4), (2, 2, 4, 3), 2, 1, True),
]


def _cudnn_forward(g: cuda_cudnn._Geometry, x: np.ndarray, krsc: np.ndarray) -> np.ndarray:
    """cuDNN's cross-correlation, written out: y[n, i, j, k] = Σ x[n, i·sH − preH + r,
    j·sW − preW + s, group(k)·Cg + c] · w[k, r, s, c], zero outside the image, with
    Cg = w's last dimension and K / (C / Cg) output channels per group."""
    n, h, w, c = g.x
    k, fh, fw, cg = g.w
    _, oh, ow, _ = g.y
    per_group = k // (c // cg)
    padded = np.zeros((n, h + g.pre[0] + g.post[0], w + g.pre[1] + g.post[1], c))
    padded[:, g.pre[0] : g.pre[0] + h, g.pre[1] : g.pre[1] + w] = x
    y = np.zeros((n, oh, ow, k))
    for out in range(k):
        channels = slice((out // per_group) * cg, (out // per_group + 1) * cg)
        for i in range(oh):
            for j in range(ow):
                r, s = i * g.stride[0], j * g.stride[1]
                window = padded[:, r : r + fh, s : s + fw, channels]
                y[:, i, j, out] = np.einsum("nrsc,rsc->n", window, krsc[out])
    return y


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"{'depthwise-' if c[4] else ''}x{c[0]}-f{c[1]}-s{c[2]}-p{c[3]}"
)
def test_the_geometry_and_filter_described_to_cudnn_compute_the_op(case: tuple) -> None:
    x_shape, f_shape, strides, pad, depthwise = case
    op = (DepthwiseConv2D if depthwise else Conv2D)(strides=strides, pad=pad)
    rng = np.random.default_rng(sum(x_shape))
    x = rng.standard_normal(x_shape)
    f = rng.standard_normal(f_shape)
    info = op.conv_info(x.shape, f.shape, depthwise)
    assert cuda_cudnn._covers(info)
    g = cuda_cudnn._geometry("fprop", info, depthwise)
    np.testing.assert_allclose(
        _cudnn_forward(g, x, cuda_cudnn._to_krsc(f, depthwise)), op.forward(np, x, f), rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize("depthwise", [False, True])
def test_the_filter_layout_changes_undo_each_other(depthwise: bool) -> None:
    f = np.arange(3 * 2 * 4 * 5, dtype=np.float32).reshape(3, 2, 4, 5)
    krsc = cuda_cudnn._to_krsc(f, depthwise)
    assert krsc.shape == ((20, 3, 2, 1) if depthwise else (5, 3, 2, 4)) and krsc.flags.c_contiguous
    back = cuda_cudnn._from_krsc(krsc, depthwise, f.shape)
    assert np.array_equal(back, f) and back.flags.c_contiguous


@pytest.mark.parametrize(
    ("timed", "kept"),
    [
        ([(0, 9.0), (3, 1.05), (5, 1.0)], 3),  # within 10 % of the fastest: the heuristics' order decides
        ([(0, 9.0), (3, 1.2), (5, 1.0)], 5),  # not within: the fastest
        ([(2, 1.0), (4, 0.5)], 4),
        ([(7, 3.0)], 7),
        ([(1, 1.0), (2, 1.0)], 1),  # a tie: the first
    ],
)
def test_pick_keeps_the_first_plan_near_the_fastest(timed: list, kept: int) -> None:
    assert cuda_timing.pick(timed) == kept


def test_pick_of_no_plans_says_so() -> None:
    with pytest.raises(ValueError, match="cuda_timing.pick: needs at least one timed candidate"):
        cuda_timing.pick([])
