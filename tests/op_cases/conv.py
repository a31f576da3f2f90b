"""OpCases for convolutions and pooling, with naive NumPy oracles (explicit loops over output
positions) that recompute the padding rules on their own, without deeplearn's conv_util."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from deeplearn.math.ops.conv import (
    Conv2D,
    Conv2DDerFilter,
    Conv2DDerInput,
    DepthwiseConv2D,
    DepthwiseConv2DDerFilter,
    DepthwiseConv2DDerInput,
)
from deeplearn.math.ops.pool import AvgPool, AvgPoolBackprop, MaxPool, MaxPoolBackprop, MinPool
from tests.op_cases import OpCase


def pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (v[0], v[1])


def geometry(
    in_hw: tuple[int, int], f_hw: tuple[int, int], strides: object, pad: object
) -> tuple[tuple[int, int, int, int], int, int]:
    """((top, left, bottom, right), out_h, out_w) by the TensorFlow / deeplearn.js rules."""
    (h, w), (fh, fw), (sh, sw) = in_hw, f_hw, pair(strides)  # type: ignore[arg-type]
    if pad == "same":
        oh, ow = math.ceil(h / sh), math.ceil(w / sw)
        th = max(0, (oh - 1) * sh + fh - h)
        tw = max(0, (ow - 1) * sw + fw - w)
        return (th // 2, tw // 2, th - th // 2, tw - tw // 2), oh, ow
    if pad == "valid":
        return (0, 0, 0, 0), math.ceil((h - fh + 1) / sh), math.ceil((w - fw + 1) / sw)
    ph, pw = pair(pad)  # type: ignore[arg-type]
    oh, ow = (h - fh + 2 * ph) / sh + 1, (w - fw + 2 * pw) / sw + 1
    assert oh == int(oh) and ow == int(ow)
    return (ph, pw, ph, pw), int(oh), int(ow)


def _padded(x4: np.ndarray, p: tuple[int, int, int, int], fill: float) -> np.ndarray:
    b, h, w, c = x4.shape
    out = np.full((b, h + p[0] + p[2], w + p[1] + p[3], c), fill, dtype=np.float64)
    out[:, p[0] : p[0] + h, p[1] : p[1] + w, :] = x4
    return out


def _b4(x: np.ndarray) -> np.ndarray:
    return x[None] if x.ndim == 3 else x


def _unb(y: np.ndarray, rank: int) -> np.ndarray:
    return y[0] if rank == 3 else y


def _windows(
    batch: int, oh: int, ow: int, f_hw: tuple[int, int], strides: object
) -> Iterator[tuple[int, int, int, slice, slice]]:
    """(b, i, j, rows, cols) for every output position: the rows and columns of the padded input
    that its window covers."""
    (fh, fw), (sh, sw) = f_hw, pair(strides)  # type: ignore[arg-type]
    for b in range(batch):
        for i in range(oh):
            for j in range(ow):
                yield b, i, j, slice(i * sh, i * sh + fh), slice(j * sw, j * sw + fw)


def ref_conv2d(strides: object, pad: object):
    def f(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        x4 = _b4(x)
        fh, fw, _, od = w.shape
        p, oh, ow = geometry(x4.shape[1:3], (fh, fw), strides, pad)
        xp = _padded(x4, p, 0.0)
        y = np.zeros((x4.shape[0], oh, ow, od))
        for b, i, j, rows, cols in _windows(x4.shape[0], oh, ow, (fh, fw), strides):
            y[b, i, j] = np.tensordot(xp[b, rows, cols, :], w, axes=3)
        return _unb(y, x.ndim)

    return f


def _ref_der_input(in_shape: tuple[int, ...], strides: object, pad: object, window_grad):
    """The oracle of a der_input: ``window_grad(w, dy[b, i, j])`` is what each output position
    adds to the [fH, fW, inDepth] window of dx it was computed from."""

    def f(dy: np.ndarray, w: np.ndarray) -> np.ndarray:
        dy4 = _b4(dy)
        in4 = (1, *in_shape) if len(in_shape) == 3 else in_shape
        fh, fw = w.shape[:2]
        p, oh, ow = geometry(in4[1:3], (fh, fw), strides, pad)
        dxp = np.zeros((in4[0], in4[1] + p[0] + p[2], in4[2] + p[1] + p[3], in4[3]))
        for b, i, j, rows, cols in _windows(in4[0], oh, ow, (fh, fw), strides):
            dxp[b, rows, cols, :] += window_grad(w, dy4[b, i, j])
        return dxp[:, p[0] : p[0] + in4[1], p[1] : p[1] + in4[2], :].reshape(in_shape)

    return f


def _ref_der_filter(filter_shape: tuple[int, ...], strides: object, pad: object, out_grad):
    """The oracle of a der_filter: ``out_grad(dy[b, i, j])`` is the output gradient of a position,
    shaped to multiply its input window (with a trailing axis) into dfilter."""

    def f(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        x4, dy4 = _b4(x), _b4(dy)
        fh, fw = filter_shape[:2]
        p, oh, ow = geometry(x4.shape[1:3], (fh, fw), strides, pad)
        xp = _padded(x4, p, 0.0)
        dw = np.zeros(filter_shape)
        for b, i, j, rows, cols in _windows(x4.shape[0], oh, ow, (fh, fw), strides):
            dw += xp[b, rows, cols, :][..., None] * out_grad(dy4[b, i, j])
        return dw

    return f


def ref_conv2d_der_input(in_shape: tuple[int, ...], strides: object, pad: object):
    return _ref_der_input(in_shape, strides, pad, lambda w, g: w @ g)


def ref_conv2d_der_filter(filter_shape: tuple[int, ...], strides: object, pad: object):
    return _ref_der_filter(filter_shape, strides, pad, lambda g: g)


def ref_depthwise(strides: object, pad: object):
    def f(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        x4 = _b4(x)
        fh, fw, c, m = w.shape
        p, oh, ow = geometry(x4.shape[1:3], (fh, fw), strides, pad)
        xp = _padded(x4, p, 0.0)
        y = np.zeros((x4.shape[0], oh, ow, c * m))
        for b, i, j, rows, cols in _windows(x4.shape[0], oh, ow, (fh, fw), strides):
            patch = xp[b, rows, cols, :]
            for ch in range(c):
                for q in range(m):
                    y[b, i, j, ch * m + q] = np.sum(patch[:, :, ch] * w[:, :, ch, q])
        return _unb(y, x.ndim)

    return f


def ref_depthwise_der_input(in_shape: tuple[int, ...], strides: object, pad: object):
    # output channel c·M + q reads input channel c only: dy[..., c·M + q]·w[..., c, q], summed over q
    return _ref_der_input(in_shape, strides, pad, lambda w, g: np.sum(w * g.reshape(w.shape[2:]), axis=3))


def ref_depthwise_der_filter(filter_shape: tuple[int, ...], strides: object, pad: object):
    return _ref_der_filter(filter_shape, strides, pad, lambda g: g.reshape(filter_shape[2:]))


def _pool_cells(
    x4: np.ndarray,
    b: int,
    i: int,
    j: int,
    ch: int,
    f: tuple[int, int],
    s: tuple[int, int],
    p: tuple[int, int, int, int],
) -> list[tuple[int, int]]:
    """The in-bounds (row, col) of a window, row-major (as deeplearn.js's loops visit them)."""
    r0, c0 = i * s[0] - p[0], j * s[1] - p[1]
    return [
        (r, c)
        for r in range(r0, r0 + f[0])
        for c in range(c0, c0 + f[1])
        if 0 <= r < x4.shape[1] and 0 <= c < x4.shape[2]
    ]


def ref_pool(kind: str, filter_size: object, strides: object, pad: object):
    def f(x: np.ndarray) -> np.ndarray:
        x4 = _b4(x)
        fs, ss = pair(filter_size), pair(strides)  # type: ignore[arg-type]
        p, oh, ow = geometry(x4.shape[1:3], fs, strides, pad)
        y = np.zeros((x4.shape[0], oh, ow, x4.shape[3]))
        for b, i, j, ch in np.ndindex(y.shape):
            vals = [x4[b, r, c, ch] for r, c in _pool_cells(x4, b, i, j, ch, fs, ss, p)]
            if any(np.isnan(vals)):
                y[b, i, j, ch] = np.nan
            elif kind == "max":
                y[b, i, j, ch] = max(vals)
            elif kind == "min":
                y[b, i, j, ch] = min(vals)
            else:
                y[b, i, j, ch] = sum(vals) / (fs[0] * fs[1])
        return _unb(y, x.ndim)

    return f


def ref_max_pool_backprop(filter_size: object, strides: object, pad: object):
    def f(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
        x4, dy4 = _b4(x), _b4(dy)
        fs, ss = pair(filter_size), pair(strides)  # type: ignore[arg-type]
        p, _, _ = geometry(x4.shape[1:3], fs, strides, pad)
        dx = np.zeros(x4.shape)
        for b, i, j, ch in np.ndindex(dy4.shape):
            best, where = -np.inf, None
            for r, c in _pool_cells(x4, b, i, j, ch, fs, ss, p):
                if x4[b, r, c, ch] > best:
                    best, where = x4[b, r, c, ch], (r, c)
            if where is not None:
                dx[b, where[0], where[1], ch] += dy4[b, i, j, ch]
        return dx.reshape(x.shape)

    return f


def ref_avg_pool_backprop(filter_size: object, strides: object, pad: object):
    def f(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
        x4, dy4 = _b4(x), _b4(dy)
        fs, ss = pair(filter_size), pair(strides)  # type: ignore[arg-type]
        p, _, _ = geometry(x4.shape[1:3], fs, strides, pad)
        dx = np.zeros(x4.shape)
        for b, i, j, ch in np.ndindex(dy4.shape):
            for r, c in _pool_cells(x4, b, i, j, ch, fs, ss, p):
                dx[b, r, c, ch] += dy4[b, i, j, ch] / (fs[0] * fs[1])
        return dx.reshape(x.shape)

    return f


def out_shape(
    x_shape: tuple[int, ...], f_hw: tuple[int, int], strides: object, pad: object, depth: int
) -> tuple[int, ...]:
    _, oh, ow = geometry(tuple(x_shape[-3:-1]), f_hw, strides, pad)  # type: ignore[arg-type]
    return (*x_shape[:-3], oh, ow, depth)


# (x shape, filter shape, strides, pad): batched and unbatched, 'same'/'valid'/numeric, strides 1
# and 2, non-square filters and strides.
CONV_CONFIGS = [
    ((5, 5, 2), (3, 3, 2, 3), 1, "same"),
    ((2, 5, 4, 2), (2, 3, 2, 2), 2, "same"),
    ((4, 5, 3), (2, 2, 3, 2), 1, "valid"),
    ((2, 5, 6, 1), (3, 2, 1, 2), (2, 1), "valid"),
    ((5, 5, 2), (3, 3, 2, 2), 2, 1),
    ((2, 4, 3, 2), (1, 2, 2, 3), 1, 0),
    ((3, 3, 1), (2, 2, 1, 1), 1, "same"),  # 2×2 on 3×3 'same': top 0, bottom 1
]

DEPTHWISE_CONFIGS = [
    ((4, 4, 2), (2, 2, 2, 2), 1, "same"),
    ((2, 5, 4, 3), (3, 2, 3, 1), 2, "valid"),
    ((5, 5, 2), (3, 3, 2, 2), 2, 1),
]

POOL_CONFIGS = [  # (x shape, filter_size, strides, pad)
    ((4, 4, 2), 2, 2, 0),
    ((2, 5, 5, 1), 3, 2, "same"),
    ((5, 4, 2), (2, 3), 1, "valid"),
    ((2, 3, 4, 2), (3, 2), (1, 2), "same"),
    ((2, 2, 1), 2, 2, 1),
    # Windows that tile the image (stride = window), which the CPU pools through a reshaped view:
    # odd sizes that 'valid' leaves cells of, 'same' padding, non-square, 1x1, and 3x3 windows.
    ((5, 7, 2), 2, 2, "valid"),
    ((2, 5, 7, 3), 2, 2, "same"),
    ((6, 6, 2), (2, 3), (2, 3), 0),
    ((2, 3, 3, 2), 1, 1, 0),
    ((7, 6, 1), 3, 3, "same"),
]


def _label(strides: object, pad: object) -> str:
    return f"[s={strides},pad={pad}]"


CASES: list[OpCase] = []

# conv2d and depthwise_conv2d, each with its two derivatives; depthwise outputs C·M channels.
CONV_FAMILIES = [
    (CONV_CONFIGS, (Conv2D, Conv2DDerInput, Conv2DDerFilter),
     (ref_conv2d, ref_conv2d_der_input, ref_conv2d_der_filter), lambda fs: fs[3]),
    (DEPTHWISE_CONFIGS, (DepthwiseConv2D, DepthwiseConv2DDerInput, DepthwiseConv2DDerFilter),
     (ref_depthwise, ref_depthwise_der_input, ref_depthwise_der_filter), lambda fs: fs[2] * fs[3]),
]

for configs, (forward, der_input, der_filter), (ref, ref_der_input, ref_der_filter), out_depth in CONV_FAMILIES:
    for xs, fs, st, pd in configs:
        ys = out_shape(xs, fs[:2], st, pd, out_depth(fs))
        CASES += [
            OpCase(forward(strides=st, pad=pd), (xs, fs), ref(st, pd), label=_label(st, pd)),
            OpCase(
                der_input(in_shape=xs, strides=st, pad=pd),
                (ys, fs),
                ref_der_input(xs, st, pd),
                label=_label(st, pd),
            ),
            OpCase(
                der_filter(filter_shape=fs, strides=st, pad=pd),
                (xs, ys),
                ref_der_filter(fs, st, pd),
                label=_label(st, pd),
            ),
        ]


def _distinct(shape: tuple[int, ...]):
    """Inputs whose values are distinct and at least 0.05 apart, so that no max/min is tied and
    the finite-difference step cannot change which cell wins."""

    def make(rng: np.random.Generator) -> list[np.ndarray]:
        n = int(np.prod(shape))
        return [(rng.permutation(n).reshape(shape) * 0.05 - n * 0.025).astype(np.float32)]

    return make


def _dy_and_x(dy_shape: tuple[int, ...], x_shape: tuple[int, ...], ties: bool):
    def make(rng: np.random.Generator) -> list[np.ndarray]:
        dy = rng.uniform(-2, 2, dy_shape).astype(np.float32)
        # Small integers give many ties inside windows, exercising the first-maximum rule.
        x = rng.integers(0, 3, x_shape) if ties else rng.permutation(int(np.prod(x_shape))).reshape(x_shape)
        return [dy, x.astype(np.float32)]

    return make


for xs, fsz, st, pd in POOL_CONFIGS:
    ys = out_shape(xs, pair(fsz), st, pd, xs[-1])
    lab = f"[f={fsz},s={st},pad={pd}]"
    CASES += [
        OpCase(
            MaxPool(filter_size=fsz, strides=st, pad=pd),
            (xs,),
            ref_pool("max", fsz, st, pd),
            make_inputs=_distinct(xs),
            label=lab,
        ),
        OpCase(
            MinPool(filter_size=fsz, strides=st, pad=pd),
            (xs,),
            ref_pool("min", fsz, st, pd),
            make_inputs=_distinct(xs),
            label=lab,
        ),
        OpCase(AvgPool(filter_size=fsz, strides=st, pad=pd), (xs,), ref_pool("avg", fsz, st, pd), label=lab),
        OpCase(
            MaxPoolBackprop(filter_size=fsz, strides=st, pad=pd),
            (ys, xs),
            ref_max_pool_backprop(fsz, st, pd),
            make_inputs=_dy_and_x(ys, xs, ties=True),
            label=lab + "ties",
            grad=False,
            why_no_grad="second-order gradient of max pooling is not provided (zero in x almost "
            "everywhere; in dy it would be a gather at the argmax)",
        ),
        OpCase(
            AvgPoolBackprop(filter_size=fsz, strides=st, pad=pd),
            (ys, xs),
            ref_avg_pool_backprop(fsz, st, pd),
            label=lab,
        ),
    ]
