"""Independent float64 NumPy forward passes of the models, written from the papers' and the
libraries' definitions, not from deeplearn's kernels: convolutions accumulate one filter tap at a
time (deeplearn's are im2col + one product), pools take each window's cells explicitly (clipped
to the input in ceil mode, where deeplearn pads with -inf), and the torchvision SqueezeNet runs
in PyTorch's own layouts (NCHW images, [out, in, fH, fW] filters), so the converter's transposes
are checked too."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

SQUEEZENET_FIRES = [2, 3, 4, 5, 6, 7, 8, 9]
MOBILENET_STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]


# -- NHWC / [fH, fW, in, out] (deeplearn.js's layout) ---------------------------------------------


def _pads(size: int, f: int, s: int, pad: str | int) -> tuple[int, int, int]:
    """(before, after, out) for one dimension: TensorFlow's 'same', 'valid', or p on each side."""
    if pad == "same":
        out = -(-size // s)
        total = max(0, (out - 1) * s + f - size)
        return total // 2, total - total // 2, out
    p = 0 if pad == "valid" else int(pad)
    return p, p, (size + 2 * p - f) // s + 1


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, s: int, pad: str | int) -> np.ndarray:
    """x [H, W, C], w [fH, fW, C, O]: sum over taps of the shifted, strided input times w[i, j]."""
    fh, fw, _, o = w.shape
    top, bottom, oh = _pads(x.shape[0], fh, s, pad)
    left, right, ow = _pads(x.shape[1], fw, s, pad)
    xp = np.pad(x, ((top, bottom), (left, right), (0, 0)))
    y = np.zeros((oh, ow, o))
    for i in range(fh):
        for j in range(fw):
            y += xp[i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s, :] @ w[i, j]
    return y if b is None else y + b


def depthwise_conv2d(x: np.ndarray, w: np.ndarray, s: int, pad: str | int) -> np.ndarray:
    """x [H, W, C], w [fH, fW, C, 1]: each channel convolved with its own filter."""
    fh, fw = w.shape[:2]
    top, bottom, oh = _pads(x.shape[0], fh, s, pad)
    left, right, ow = _pads(x.shape[1], fw, s, pad)
    xp = np.pad(x, ((top, bottom), (left, right), (0, 0)))
    y = np.zeros((oh, ow, x.shape[2]))
    for i in range(fh):
        for j in range(fw):
            y += xp[i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s, :] * w[i, j, :, 0]
    return y


def _pool_out(size: int, f: int, s: int, ceil: bool) -> int:
    if not ceil:
        return (size - f) // s + 1
    out = math.ceil((size - f) / s) + 1
    return out - 1 if (out - 1) * s >= size else out  # the last window starts inside the input


def max_pool(x: np.ndarray, f: int, s: int, ceil: bool) -> np.ndarray:
    """x [H, W, C]; each window's maximum over the cells inside the input."""
    oh, ow = _pool_out(x.shape[0], f, s, ceil), _pool_out(x.shape[1], f, s, ceil)
    y = np.empty((oh, ow, x.shape[2]))
    for r in range(oh):
        for c in range(ow):
            y[r, c] = x[r * s : r * s + f, c * s : c * s + f].max(axis=(0, 1))
    return y


def relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, 0.0)


def squeezenet(
    v: Mapping[str, np.ndarray], image: np.ndarray, flavor: str = "deeplearnjs"
) -> dict[str, np.ndarray]:
    """Every named layer of SqueezeNet 1.1 and the logits, for one image [H, W, 3] of pixels."""
    v = {k: np.asarray(a, np.float64) for k, a in v.items()}
    torch_like = flavor == "torchvision"
    if torch_like:
        x = (image / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    else:
        x = image - np.array([103.939, 116.779, 123.68])
    out: dict[str, np.ndarray] = {}
    x = out["conv_1"] = relu(conv2d(x, v["conv1_W:0"], v["conv1_b:0"], 2, "valid"))
    for n in SQUEEZENET_FIRES:
        if n in (2, 4, 6):
            name = {2: "maxpool_1", 4: "maxpool_2", 6: "maxpool_3"}[n]
            x = out[name] = max_pool(x, 3, 2, torch_like)
        p = f"fire{n}/"
        sq = relu(conv2d(x, v[p + "squeeze1x1_W:0"], v[p + "squeeze1x1_b:0"], 1, 0))
        e1 = relu(conv2d(sq, v[p + "expand1x1_W:0"], v[p + "expand1x1_b:0"], 1, 0))
        e3 = relu(conv2d(sq, v[p + "expand3x3_W:0"], v[p + "expand3x3_b:0"], 1, 1))
        x = out[f"fire{n}"] = np.concatenate([e1, e3], axis=2)
    x = conv2d(x, v["conv10_W:0"], v["conv10_b:0"], 1, 0)
    x = out["conv10"] = relu(x) if torch_like else x
    out["logits"] = x.mean(axis=(0, 1))
    return out


def mobilenet(v: Mapping[str, np.ndarray], image: np.ndarray) -> np.ndarray:
    """MobileNet v1's 1,001 logits for one image [H, W, 3] of pixels."""
    v = {k: np.asarray(a, np.float64) for k, a in v.items()}

    def bn_relu6(x: np.ndarray, name: str) -> np.ndarray:
        g = lambda k: v[f"{name}/BatchNorm/{k}"]  # noqa: E731
        y = (x - g("moving_mean")) / np.sqrt(g("moving_variance") + 0.001) * g("gamma") + g("beta")
        return np.minimum(np.maximum(y, 0.0), 6.0)

    x = image / 127.5 - 1.0
    x = bn_relu6(conv2d(x, v["MobilenetV1/Conv2d_0/weights"], None, 2, "same"), "MobilenetV1/Conv2d_0")
    for block, s in enumerate(MOBILENET_STRIDES, start=1):
        p = f"MobilenetV1/Conv2d_{block}"
        x = bn_relu6(depthwise_conv2d(x, v[f"{p}_depthwise/depthwise_weights"], s, "same"), f"{p}_depthwise")
        x = bn_relu6(conv2d(x, v[f"{p}_pointwise/weights"], None, 1, "same"), f"{p}_pointwise")
    pooled = x.mean(axis=(0, 1))
    w = v["MobilenetV1/Logits/Conv2d_1c_1x1/weights"][0, 0]
    return pooled @ w + v["MobilenetV1/Logits/Conv2d_1c_1x1/biases"]


# -- torchvision's layouts: NCHW images, [out, in, fH, fW] filters --------------------------------


def _conv_nchw(x: np.ndarray, w: np.ndarray, b: np.ndarray, s: int, p: int) -> np.ndarray:
    """x [C, H, W], w [O, C, fH, fW] (PyTorch's Conv2d, no dilation or groups)."""
    o, _, fh, fw = w.shape
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    oh, ow = (xp.shape[1] - fh) // s + 1, (xp.shape[2] - fw) // s + 1
    y = np.zeros((o, oh, ow))
    for i in range(fh):
        for j in range(fw):
            patch = xp[:, i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s]
            y += np.einsum("oc,chw->ohw", w[:, :, i, j], patch)
    return y + b[:, None, None]


def _max_pool_nchw_ceil(x: np.ndarray) -> np.ndarray:
    """PyTorch's MaxPool2d(3, 2, ceil_mode=True) of x [C, H, W]."""
    return max_pool(x.transpose(1, 2, 0), 3, 2, True).transpose(2, 0, 1)


def torchvision_squeezenet(state: Mapping[str, np.ndarray], image_nchw: np.ndarray) -> np.ndarray:
    """torchvision's squeezenet1_1 in evaluation mode on one normalised image [3, H, W]."""
    sd = {k: np.asarray(a, np.float64) for k, a in state.items()}
    x = relu(_conv_nchw(image_nchw, sd["features.0.weight"], sd["features.0.bias"], 2, 0))
    for index in [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]:
        if index in (2, 5, 8):
            x = _max_pool_nchw_ceil(x)
            continue
        p = f"features.{index}."
        sq = relu(_conv_nchw(x, sd[p + "squeeze.weight"], sd[p + "squeeze.bias"], 1, 0))
        e1 = relu(_conv_nchw(sq, sd[p + "expand1x1.weight"], sd[p + "expand1x1.bias"], 1, 0))
        e3 = relu(_conv_nchw(sq, sd[p + "expand3x3.weight"], sd[p + "expand3x3.bias"], 1, 1))
        x = np.concatenate([e1, e3], axis=0)
    x = relu(_conv_nchw(x, sd["classifier.1.weight"], sd["classifier.1.bias"], 1, 0))  # dropout: identity
    return x.mean(axis=(1, 2))


def torchvision_state_dict_shapes() -> dict[str, tuple[int, ...]]:
    """The keys and shapes of torchvision's squeezenet1_1().state_dict() (1,000 classes)."""
    shapes: dict[str, tuple[int, ...]] = {"features.0.weight": (64, 3, 3, 3), "features.0.bias": (64,)}
    fires = {3: (64, 16, 64), 4: (128, 16, 64), 6: (128, 32, 128), 7: (256, 32, 128),
             9: (256, 48, 192), 10: (384, 48, 192), 11: (384, 64, 256), 12: (512, 64, 256)}
    for index, (cin, sq, ex) in fires.items():
        p = f"features.{index}."
        shapes[p + "squeeze.weight"], shapes[p + "squeeze.bias"] = (sq, cin, 1, 1), (sq,)
        shapes[p + "expand1x1.weight"], shapes[p + "expand1x1.bias"] = (ex, sq, 1, 1), (ex,)
        shapes[p + "expand3x3.weight"], shapes[p + "expand3x3.bias"] = (ex, sq, 3, 3), (ex,)
    shapes["classifier.1.weight"], shapes["classifier.1.bias"] = (1000, 512, 1, 1), (1000,)
    return shapes
