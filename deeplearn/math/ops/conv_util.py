"""Convolution and pooling geometry: padding, output sizes, and the xp-generic window helpers.

The arithmetic follows deeplearn.js's ``conv_util.ts`` (reference §2.7 and §14.4):

* numeric pad ``p``: ``out = (in - f + 2p)/s + 1``, which must be an integer;
* ``'same'``: ``out = ceil(in/s)``, total pad ``max(0, (out-1)·s + f - in)``, top/left get
  ``floor(total/2)`` and the extra pixel goes bottom/right (the TensorFlow rule);
* ``'valid'``: ``out = ceil((in - f + 1)/s)``, no padding.

The window helpers (``pad_input``, ``windows``, ``taps``, ``add_windows``, ``crop``) are the only
kernels here; they are written once for NumPy and CuPy. This module holds no Op and no NDArrayMath method.
"""

from __future__ import annotations

import math as _math
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Literal, SupportsIndex, TypeAlias

from deeplearn.types import RawArray, Shape, ShapeError

__all__ = [
    "Conv2DInfo",
    "DataFormat",
    "Pad",
    "PadInfo",
    "Pool2DInfo",
    "add_windows",
    "as_pair",
    "compute_conv2d_info",
    "compute_default_pad",
    "compute_output_shape3d",
    "compute_pool2d_info",
    "compute_weights_shape4d",
    "crop",
    "get_pad_and_out_info",
    "normalize_pad",
    "pad_and_out_size",
    "pad_input",
    "taps",
    "windows",
]

Pad: TypeAlias = "int | tuple[int, int] | Literal['same', 'valid']"
"""A padding argument: ``'same'``, ``'valid'``, a symmetric pad for both spatial dimensions, or
(internal, used by conv1d) a pair ``(pad_height, pad_width)``."""

DataFormat: TypeAlias = "Literal['channelsLast', 'channelsFirst']"


@dataclass(frozen=True)
class PadInfo:
    """Zero (or -inf, for max pooling) rows and columns added on each side of the input."""

    top: int
    left: int
    bottom: int
    right: int


@dataclass(frozen=True)
class Conv2DInfo:
    """Everything a 2-D convolution or pooling kernel needs to know about its geometry
    (deeplearn.js ``Conv2DInfo``, its fields in snake_case: ``padInfo`` is ``pad_info``,
    ``filterShape`` is ``filter_shape``).

    Shapes are NHWC (``channelsLast``, the only layout the kernels use); ``in_shape`` and
    ``out_shape`` give the shapes in the requested ``data_format``. ``filter_shape`` is the filter
    as given, [fH, fW, inDepth, outDepth] (depthwise: [fH, fW, inChannels, channelMultiplier];
    pooling: [fH, fW, channels, channels]); left out, it is [fH, fW, in_channels, out_channels].
    """

    batch_size: int
    in_height: int
    in_width: int
    in_channels: int
    out_height: int
    out_width: int
    out_channels: int
    filter_height: int
    filter_width: int
    stride_height: int
    stride_width: int
    pad_info: PadInfo
    data_format: str = "channelsLast"
    filter_shape: Shape = ()

    def __post_init__(self) -> None:
        if not self.filter_shape:
            shape = (self.filter_height, self.filter_width, self.in_channels, self.out_channels)
            object.__setattr__(self, "filter_shape", shape)

    @property
    def pad(self) -> PadInfo:
        """The former name of ``pad_info``, kept for code written against it."""
        return self.pad_info

    @property
    def pad_top(self) -> int:
        return self.pad_info.top

    @property
    def pad_left(self) -> int:
        return self.pad_info.left

    @property
    def pad_bottom(self) -> int:
        return self.pad_info.bottom

    @property
    def pad_right(self) -> int:
        return self.pad_info.right

    @property
    def in_shape(self) -> Shape:
        if self.data_format == "channelsFirst":
            return (self.batch_size, self.in_channels, self.in_height, self.in_width)
        return (self.batch_size, self.in_height, self.in_width, self.in_channels)

    @property
    def out_shape(self) -> Shape:
        if self.data_format == "channelsFirst":
            return (self.batch_size, self.out_channels, self.out_height, self.out_width)
        return (self.batch_size, self.out_height, self.out_width, self.out_channels)

    @property
    def padded_shape(self) -> Shape:
        """NHWC shape of the input after padding."""
        return (
            self.batch_size,
            self.in_height + self.pad_info.top + self.pad_info.bottom,
            self.in_width + self.pad_info.left + self.pad_info.right,
            self.in_channels,
        )

    @property
    def window_shape(self) -> Shape:
        """NHWC receptive fields, one per output pixel: [b, outH, outW, fH, fW, c]."""
        return (
            self.batch_size,
            self.out_height,
            self.out_width,
            self.filter_height,
            self.filter_width,
            self.in_channels,
        )


Pool2DInfo = Conv2DInfo
"""Pooling uses the same geometry record (as in deeplearn.js, where computePool2DInfo returns a
Conv2DInfo)."""


def as_pair(value: object, name: str, where: str) -> tuple[int, int]:
    """An int or a pair of ints (height, width) as a pair of positive ints.

    Example:
        >>> as_pair(2, "strides", "conv2d"), as_pair([1, 3], "strides", "conv2d")
        ((2, 2), (1, 3))
    """
    if isinstance(value, bool):
        raise ValueError(f"{where}: {name} must be a positive int or a pair of them; got {name} = {value!r}.")
    if isinstance(value, SupportsIndex):
        pair = (operator.index(value), operator.index(value))
    else:
        try:
            items = tuple(operator.index(v) for v in value)  # type: ignore[attr-defined]
        except TypeError as e:
            raise ValueError(
                f"{where}: {name} must be a positive int or a pair of them; got {name} = {value!r}."
            ) from e
        if len(items) != 2:
            raise ValueError(
                f"{where}: {name} must be a positive int or a pair of them; got {name} = {value!r}."
            )
        pair = (items[0], items[1])
    if pair[0] < 1 or pair[1] < 1:
        raise ValueError(f"{where}: {name} must be positive; got {name} = {value!r}.")
    return pair


def normalize_pad(pad: object, where: str) -> int | tuple[int, int] | str:
    """Checks a padding argument and returns it in a hashable canonical form."""
    if isinstance(pad, str):
        if pad not in ("same", "valid"):
            raise ValueError(
                f"{where}: pad must be 'same', 'valid' or a non-negative int; got pad = {pad!r}."
            )
        return pad
    if isinstance(pad, bool):
        raise ValueError(f"{where}: pad must be 'same', 'valid' or a non-negative int; got pad = {pad!r}.")
    if isinstance(pad, SupportsIndex):
        p = operator.index(pad)
        if p < 0:
            raise ValueError(
                f"{where}: pad must be 'same', 'valid' or a non-negative int; got pad = {pad!r}."
            )
        return p
    if isinstance(pad, (tuple, list)) and len(pad) == 2 and all(isinstance(p, int) and p >= 0 for p in pad):
        return (int(pad[0]), int(pad[1]))
    raise ValueError(f"{where}: pad must be 'same', 'valid' or a non-negative int; got pad = {pad!r}.")


def _numeric_out(in_size: int, f: int, p: int, s: int, dim: str, where: str) -> int:
    out = (in_size - f + 2 * p) / s + 1
    if not float(out).is_integer():
        raise ShapeError(
            f"{where}: the output {dim} (in - f + 2*pad)/stride + 1 = {out:g} must be an integer; "
            f"change stride or pad. Got in = {in_size}, f = {f}, pad = {p}, stride = {s}."
        )
    return int(out)


def pad_and_out_size(
    pad: int | str, in_size: int, stride: int, f: int, dim: str, where: str
) -> tuple[int, int, int]:
    """One spatial dimension of ``get_pad_and_out_info``: (pad before, pad after, output size)
    for a normalised ``pad`` ('same', 'valid' or an int); ``dim`` names it in errors.

    Example:
        >>> pad_and_out_size("same", 4, 2, 3, "width", "conv1d")
        (0, 1, 2)
    """
    if pad == "same":
        out = _math.ceil(in_size / stride)
        total = max(0, (out - 1) * stride + f - in_size)
        return total // 2, total - total // 2, out
    if pad == "valid":
        return 0, 0, _math.ceil((in_size - f + 1) / stride)
    assert isinstance(pad, int)
    return pad, pad, _numeric_out(in_size, f, pad, stride, dim, where)


def get_pad_and_out_info(
    pad: object,
    in_height: int,
    in_width: int,
    stride_height: int,
    stride_width: int,
    filter_height: int,
    filter_width: int,
    where: str = "conv2d",
) -> tuple[PadInfo, int, int]:
    """Padding on each side and the output height and width (deeplearn.js getPadAndOutInfo).

    Example:
        >>> get_pad_and_out_info("same", 3, 3, 1, 1, 2, 2)
        (PadInfo(top=0, left=0, bottom=1, right=1), 3, 3)
    """
    pad = normalize_pad(pad, where)
    # deeplearn.js: a numeric pad computed both output sizes from the filter *height* and the
    # *height* stride (computeOutputShape3D with a square field); we use each dimension's own.
    ph, pw = pad if isinstance(pad, tuple) else (pad, pad)
    top, bottom, out_h = pad_and_out_size(ph, in_height, stride_height, filter_height, "height", where)
    left, right, out_w = pad_and_out_size(pw, in_width, stride_width, filter_width, "width", where)
    info = PadInfo(top=top, left=left, bottom=bottom, right=right)
    if out_h < 1 or out_w < 1:
        raise ShapeError(
            f"{where}: the filter must fit in the padded input; got input {in_height}x{in_width}, "
            f"filter {filter_height}x{filter_width}, pad = {pad!r}, output {out_h}x{out_w}."
        )
    return info, out_h, out_w


def _canonical_format(data_format: str, where: str) -> str:
    fmt = {
        "channelsLast": "channelsLast",
        "channels_last": "channelsLast",
        "NHWC": "channelsLast",
        "channelsFirst": "channelsFirst",
        "channels_first": "channelsFirst",
        "NCHW": "channelsFirst",
    }
    if data_format not in fmt:
        raise ValueError(
            f"{where}: data_format must be 'channelsLast' or 'channelsFirst'; got {data_format!r}."
        )
    return fmt[data_format]


def compute_conv2d_info(
    in_shape: Shape,
    filter_shape: Shape,
    strides: int | tuple[int, int],
    pad: object,
    depthwise: bool = False,
    data_format: str = "channelsLast",
    where: str = "conv2d",
) -> Conv2DInfo:
    """Geometry of a convolution of a 4-D input with a filter [fH, fW, inDepth, outDepth]
    (depthwise: [fH, fW, inChannels, channelMultiplier], giving inChannels·multiplier outputs).

    Example:
        >>> info = compute_conv2d_info((1, 3, 3, 1), (2, 2, 1, 1), 1, "same")
        >>> info.out_shape, info.pad_info, info.filter_shape
        ((1, 3, 3, 1), PadInfo(top=0, left=0, bottom=1, right=1), (2, 2, 1, 1))
    """
    fmt = _canonical_format(data_format, where)
    if len(in_shape) != 4 or len(filter_shape) != 4:
        raise ShapeError(
            f"{where}: the input and filter must be rank 4; got {tuple(in_shape)} and {tuple(filter_shape)}."
        )
    if fmt == "channelsFirst":
        batch, in_c, in_h, in_w = in_shape
    else:
        batch, in_h, in_w, in_c = in_shape
    f_h, f_w, _, f_out = filter_shape
    out_c = in_c * f_out if depthwise else f_out
    s_h, s_w = as_pair(strides, "strides", where)
    info, out_h, out_w = get_pad_and_out_info(pad, in_h, in_w, s_h, s_w, f_h, f_w, where)
    return Conv2DInfo(
        batch, in_h, in_w, in_c, out_h, out_w, out_c, f_h, f_w, s_h, s_w, info, fmt, tuple(filter_shape)
    )


def compute_pool2d_info(
    in_shape: Shape,
    filter_size: int | tuple[int, int],
    strides: int | tuple[int, int],
    pad: object,
    data_format: str = "channelsLast",
    where: str = "max_pool",
) -> Conv2DInfo:
    """Geometry of a pooling of a 4-D input with a window of ``filter_size``; depth is kept.

    Example:
        >>> compute_pool2d_info((1, 4, 4, 2), 2, 2, 0).out_shape
        (1, 2, 2, 2)
    """
    fmt = _canonical_format(data_format, where)
    channels = in_shape[1] if fmt == "channelsFirst" else in_shape[3]
    f_h, f_w = as_pair(filter_size, "filter_size", where)
    return compute_conv2d_info(in_shape, (f_h, f_w, channels, channels), strides, pad, False, fmt, where)


def compute_default_pad(in_shape: Shape, field_size: int, stride: int = 1) -> int:
    """The pad deeplearn.js's Graph conv2d/max_pool use when zero_pad is omitted:
    ``floor((in·(s-1) - s + f)/2)``, which keeps the size for odd f and s = 1.

    Example:
        >>> compute_default_pad((5, 5, 3), 3, 1)
        1
    """
    return (in_shape[0] * (stride - 1) - stride + field_size) // 2


def compute_output_shape3d(
    in_shape: Shape,
    field_size: int,
    out_depth: int,
    stride: int,
    zero_pad: int | None = None,
    where: str = "conv2d",
) -> Shape:
    """Output [rows, cols, depth] of a square-field convolution of a [rows, cols, depth] input
    (deeplearn.js computeOutputShape3D; zero_pad None means ``compute_default_pad``).

    Example:
        >>> compute_output_shape3d((5, 4, 3), 4, 10, 1, 1)
        (4, 3, 10)
    """
    if zero_pad is None:
        zero_pad = compute_default_pad(in_shape, field_size, stride)
    rows = _numeric_out(in_shape[0], field_size, zero_pad, stride, "height", where)
    cols = _numeric_out(in_shape[1], field_size, zero_pad, stride, "width", where)
    if rows < 1 or cols < 1:
        raise ShapeError(
            f"{where}: the filter must fit in the padded input; got in_shape = {tuple(in_shape)}, "
            f"field_size = {field_size}, zero_pad = {zero_pad}."
        )
    return (rows, cols, out_depth)


def compute_weights_shape4d(
    in_depth: int, out_depth: int, filter_height: int, filter_width: int | None = None
) -> Shape:
    """The filter shape [fH, fW, inDepth, outDepth] (square when filter_width is omitted).

    Example:
        >>> compute_weights_shape4d(3, 16, 5)
        (5, 5, 3, 16)
    """
    return (filter_height, filter_height if filter_width is None else filter_width, in_depth, out_depth)


# -- kernel helpers (xp-generic) ---------------------------------------------------------------


def pad_input(xp: ModuleType, x: RawArray, info: Conv2DInfo, fill: float = 0.0) -> RawArray:
    """``x`` [b, h, w, c] padded by ``info.pad_info`` with ``fill`` (a new C-contiguous array)."""
    p = info.pad_info
    if p.top == p.bottom == p.left == p.right == 0:
        return xp.ascontiguousarray(x)
    width = ((0, 0), (p.top, p.bottom), (p.left, p.right), (0, 0))
    return xp.pad(x, width, mode="constant", constant_values=fill)


def windows(xp: ModuleType, x: RawArray, info: Conv2DInfo, fill: float = 0.0) -> RawArray:
    """The receptive fields of ``x`` [b, h, w, c] as a read-only view [b, outH, outW, fH, fW, c].

    Built with ``as_strided`` over the padded input, so it costs one padded copy at most.
    """
    padded = pad_input(xp, x, info, fill)
    sb, sh, sw, sc = padded.strides
    strides = (sb, sh * info.stride_height, sw * info.stride_width, sh, sw, sc)
    return xp.lib.stride_tricks.as_strided(padded, shape=info.window_shape, strides=strides)


def taps(padded: RawArray, info: Conv2DInfo) -> Iterator[tuple[int, int, RawArray]]:
    """For each filter tap (i, j): the strided view [b, outH, outW, c] of the padded input that
    the tap reads in every window (window (r, s) reads ``padded[:, r·sH + i, s·sW + j, :]``).

    Loops over the fH·fW taps of a filter are the one Python loop the kernels allow: each
    iteration is a whole-array operation.
    """
    h_span = info.stride_height * (info.out_height - 1) + 1
    w_span = info.stride_width * (info.out_width - 1) + 1
    for i in range(info.filter_height):
        for j in range(info.filter_width):
            yield i, j, padded[:, i : i + h_span : info.stride_height, j : j + w_span : info.stride_width, :]


def crop(padded: RawArray, info: Conv2DInfo) -> RawArray:
    """The inverse of ``pad_input``: the [b, h, w, c] interior of a padded array (a view)."""
    p = info.pad_info
    return padded[:, p.top : p.top + info.in_height, p.left : p.left + info.in_width, :]


def add_windows(xp: ModuleType, cols: RawArray, info: Conv2DInfo) -> RawArray:
    """The adjoint of ``windows`` (col2im): sums each window value of ``cols``
    [b, outH, outW, fH, fW, c] back into the pixel it was read from; returns [b, h, w, c].

    Overlapping windows accumulate. The loop runs over the filter taps, each a strided slice add,
    so no scatter-add (which NumPy and CuPy spell differently) is needed.
    """
    out = xp.zeros(info.padded_shape, dtype=cols.dtype)
    for i, j, view in taps(out, info):
        view += cols[:, :, :, i, j, :]
    return crop(out, info)
