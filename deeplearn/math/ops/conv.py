"""The NDArrayMath family of convolutions: conv2d and its two derivatives, depthwise_conv2d and
its two derivatives, and the composites conv1d, conv2d_der_bias, conv2d_transpose.

Inputs are NHWC: [height, width, channels] (a batch of one; the output has rank 3 too) or
[batch, height, width, channels]. Filters are [fH, fW, inDepth, outDepth]. Padding and output
sizes come from ``conv_util`` (deeplearn.js's 'same'/'valid'/numeric rules). Kernels are im2col
(an ``as_strided`` window view, one copy) and one matrix product, written once for NumPy and CuPy;
the CPU backend replaces conv2d's and its derivatives' with cache-sized blocks of the same
products (``deeplearn/math/backends/cpu.py``). Pooling lives in ``pool.py``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, SupportsIndex

from deeplearn import util
from deeplearn.math.ops.arithmetic import ArithmeticMath
from deeplearn.math.ops.base import Op, Spec, check_arrays
from deeplearn.math.ops.conv_util import (
    Conv2DInfo,
    Pad,
    add_windows,
    as_pair,
    compute_conv2d_info,
    normalize_pad,
    pad_and_out_size,
    windows,
)
from deeplearn.math.ops.reduction import ReductionMath
from deeplearn.types import DTypeError, RawArray, Shape, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = [
    "Conv2D",
    "Conv2DDerFilter",
    "Conv2DDerInput",
    "ConvMath",
    "DepthwiseConv2D",
    "DepthwiseConv2DDerFilter",
    "DepthwiseConv2DDerInput",
    "as_float",
    "batched",
    "check_image",
]


# -- shared helpers (also used by pool.py) -----------------------------------------------------


def batched(shape: Shape) -> Shape:
    """A rank-3 image shape as a batch of one; rank 4 unchanged."""
    return (1, *shape) if len(shape) == 3 else tuple(shape)


def batch4(a: RawArray) -> RawArray:
    """A rank-3 raw image as a batch of one (a view)."""
    return a[None] if a.ndim == 3 else a


def unbatched(shape: Shape, rank: int) -> Shape:
    """The inverse of ``batched`` for an input of ``rank``."""
    return tuple(shape[1:]) if rank == 3 else tuple(shape)


def as_float(xp: ModuleType, a: RawArray) -> RawArray:
    """Integer inputs are computed in float32 (the outputs are float32)."""
    return a if a.dtype.kind == "f" else a.astype(xp.float32)


def check_image(spec: Spec, name: str, where: str) -> None:
    """``name`` must be a rank-3 or rank-4 numeric array."""
    if spec.rank not in (3, 4):
        raise ShapeError(f"{where}: {name} must be rank 3 or 4; got {name}.shape={spec.shape}.")
    if spec.dtype == "bool":
        raise DTypeError(f"{where}: {name} must be numeric; got {name}.dtype='bool'.")


def _check_filter(spec: Spec | Shape, where: str, name: str = "filter") -> Shape:
    shape = spec.shape if isinstance(spec, Spec) else tuple(spec)
    if len(shape) != 4:
        raise ShapeError(
            f"{where}: {name} must be rank 4 [fH, fW, inDepth, outDepth]; got {name}.shape={shape}."
        )
    if isinstance(spec, Spec) and spec.dtype == "bool":
        raise DTypeError(f"{where}: {name} must be numeric; got {name}.dtype='bool'.")
    return shape


def _check_dy(dy: Spec, info: Conv2DInfo, rank: int, where: str) -> None:
    expected = unbatched(info.out_shape, rank)
    if dy.rank != rank or dy.shape != expected:
        raise ShapeError(
            f"{where}: dy must have the shape of the forward output; got dy.shape={dy.shape}, "
            f"expected {expected}."
        )
    if dy.dtype == "bool":
        raise DTypeError(f"{where}: dy must be numeric; got dy.dtype='bool'.")


@dataclass(frozen=True, kw_only=True)
class WindowedOp(Op, abstract=True):
    """Base of the ops that slide a window: ``strides`` (int or (sH, sW)) and ``pad``
    ('same', 'valid', an int, or a (padH, padW) pair), normalised on construction."""

    strides: Any = (1, 1)
    pad: Pad = "valid"

    def __post_init__(self) -> None:
        object.__setattr__(self, "strides", as_pair(self.strides, "strides", self.name))
        object.__setattr__(self, "pad", normalize_pad(self.pad, self.name))

    def conv_info(self, x_shape: Shape, f_shape: Shape, depthwise: bool = False) -> Conv2DInfo:
        return compute_conv2d_info(
            batched(x_shape), f_shape, self.strides, self.pad, depthwise, where=self.name
        )


@dataclass(frozen=True, kw_only=True)
class _ConvOp(WindowedOp, abstract=True):
    """Base of conv2d, depthwise_conv2d and their derivatives: the checks and gradients they
    share, written once; ``depthwise`` picks depthwise_conv2d's filter rule ([fH, fW, inChannels,
    multiplier]) and methods."""

    depthwise: ClassVar[bool] = False

    def filter_info(
        self, x_shape: Shape, filter: Spec | Shape, x_name: str = "x", f_name: str = "filter"
    ) -> Conv2DInfo:
        """Checks ``filter`` against an input of ``x_shape``; the geometry of the convolution."""
        f_shape = _check_filter(filter, self.name, f_name)
        if x_shape[-1] != f_shape[2] and self.depthwise:
            raise ShapeError(
                f"{self.name}: {x_name}'s channels must match {f_name}.shape[2] (filter is [fH, fW, "
                f"inChannels, channelMultiplier]); got {x_name}.shape={tuple(x_shape)} and "
                f"{f_name}.shape={f_shape}."
            )
        if x_shape[-1] != f_shape[2]:
            raise ShapeError(
                f"{self.name}: {x_name}'s depth must match {f_name}'s input depth ({f_name}.shape[2]); "
                f"got {x_name}.shape={tuple(x_shape)} and {f_name}.shape={tuple(f_shape)}, i.e. "
                f"{x_shape[-1]} vs {f_shape[2]}."
            )
        return self.conv_info(x_shape, f_shape, self.depthwise)

    # The family's three ops through NDArrayMath. Each op is bilinear in its two inputs, so the
    # gradients below (one rule per role) are those of conv2d and depthwise_conv2d alike.
    def _conv(self, math: NDArrayMath, x: NDArray, filter: NDArray) -> NDArray:
        if self.depthwise:
            return math.depthwise_conv2d(x, filter, self.strides, self.pad)
        return math.conv2d(x, filter, None, self.strides, self.pad)

    def _der_input(self, math: NDArrayMath, in_shape: Shape, dy: NDArray, filter: NDArray) -> NDArray:
        der = math.depthwise_conv2d_der_input if self.depthwise else math.conv2d_der_input
        return der(in_shape, dy, filter, self.strides, self.pad)

    def _der_filter(self, math: NDArrayMath, x: NDArray, dy: NDArray, filter_shape: Shape) -> NDArray:
        der = math.depthwise_conv2d_der_filter if self.depthwise else math.conv2d_der_filter
        return der(x, dy, filter_shape, self.strides, self.pad)


@dataclass(frozen=True, kw_only=True)
class _ConvForward(_ConvOp, abstract=True):
    """conv2d or depthwise_conv2d: (x, filter) -> y."""

    def infer(self, x: Spec, filter: Spec) -> Spec:
        check_image(x, "x", self.name)
        return Spec(unbatched(self.filter_info(x.shape, filter).out_shape, x.rank))

    def backward(
        self, math: NDArrayMath, dy: NDArray, x: NDArray, filter: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # dx = der_input(dy, filter), dfilter = der_filter(x, dy)
        return self._der_input(math, x.shape, dy, filter), self._der_filter(math, x, dy, filter.shape)


@dataclass(frozen=True, kw_only=True)
class _ConvDerInput(_ConvOp, abstract=True):
    """The gradient in the input: (dy, filter) -> dx of shape ``in_shape``."""

    in_shape: Shape = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "in_shape", util.check_shape(self.in_shape, self.name, "in_shape"))

    def infer(self, dy: Spec, filter: Spec) -> Spec:
        check_image(Spec(self.in_shape), "in_shape", self.name)
        info = self.filter_info(self.in_shape, filter, "in_shape")
        _check_dy(dy, info, len(self.in_shape), self.name)
        return Spec(self.in_shape)

    def backward(
        self, math: NDArrayMath, g: NDArray, dy: NDArray, filter: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # linear in dy: d/d dy = conv(g, filter); bilinear: d/d filter = der_filter(g, dy)
        return self._conv(math, g, filter), self._der_filter(math, g, dy, filter.shape)


@dataclass(frozen=True, kw_only=True)
class _ConvDerFilter(_ConvOp, abstract=True):
    """The gradient in the filter, summed over the batch: (x, dy) -> dfilter of ``filter_shape``."""

    filter_shape: Shape = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        shape = util.check_shape(self.filter_shape, self.name, "filter_shape")
        object.__setattr__(self, "filter_shape", shape)

    def infer(self, x: Spec, dy: Spec) -> Spec:
        check_image(x, "x", self.name)
        info = self.filter_info(x.shape, self.filter_shape, "x", "filter_shape")
        _check_dy(dy, info, x.rank, self.name)
        return Spec(self.filter_shape)

    def backward(
        self, math: NDArrayMath, g: NDArray, x: NDArray, dy: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        # bilinear in (x, dy): d/dx = der_input(dy, g), d/d dy = conv(x, g)
        return self._der_input(math, x.shape, dy, g), self._conv(math, x, g)


# -- conv2d --------------------------------------------------------------------------------------


def im2col(xp: ModuleType, x: RawArray, info: Conv2DInfo) -> RawArray:
    """[b·outH·outW, fH·fW·inDepth] patches of the NHWC input (one copy of the window view)."""
    k = info.filter_height * info.filter_width * info.in_channels
    return windows(xp, as_float(xp, x), info).reshape(-1, k)


def col2im(xp: ModuleType, cols: RawArray, info: Conv2DInfo) -> RawArray:
    return add_windows(xp, cols.reshape(info.window_shape), info)


@dataclass(frozen=True, kw_only=True)
class Conv2D(_ConvForward):
    """y[b,i,j,o] = Σ_{di,dj,c} xpad[b, i·sH+di, j·sW+dj, c] · filter[di,dj,c,o] (no bias)."""

    name = "conv2d"

    def forward(self, xp: ModuleType, x: RawArray, filter: RawArray) -> RawArray:
        info = self.conv_info(x.shape, filter.shape)
        y = im2col(xp, batch4(x), info) @ as_float(xp, filter).reshape(-1, info.out_channels)
        return y.reshape(unbatched(info.out_shape, x.ndim))


@dataclass(frozen=True, kw_only=True)
class Conv2DDerInput(_ConvDerInput):
    """dx of conv2d: the adjoint of the convolution in its input (a transposed convolution)."""

    name = "conv2d_der_input"

    def forward(self, xp: ModuleType, dy: RawArray, filter: RawArray) -> RawArray:
        info = self.conv_info(self.in_shape, filter.shape)
        w = as_float(xp, filter).reshape(-1, info.out_channels)
        cols = as_float(xp, batch4(dy)).reshape(-1, info.out_channels) @ w.T
        return col2im(xp, cols, info).reshape(self.in_shape)


@dataclass(frozen=True, kw_only=True)
class Conv2DDerFilter(_ConvDerFilter):
    """dfilter of conv2d, summed over the batch: Σ_b patches(x)ᵀ · dy."""

    name = "conv2d_der_filter"

    def forward(self, xp: ModuleType, x: RawArray, dy: RawArray) -> RawArray:
        info = self.conv_info(x.shape, self.filter_shape)
        dw = im2col(xp, batch4(x), info).T @ as_float(xp, batch4(dy)).reshape(-1, info.out_channels)
        return dw.reshape(self.filter_shape)


# -- depthwise -----------------------------------------------------------------------------------


def _depthwise_windows(xp: ModuleType, x: RawArray, info: Conv2DInfo) -> RawArray:
    return windows(xp, as_float(xp, batch4(x)), info)  # [b, oh, ow, fH, fW, C]


def _depthwise_dy(xp: ModuleType, dy: RawArray, info: Conv2DInfo) -> RawArray:
    """dy [..., C·M] as [b, oh, ow, C, M] (output channel c·M + q)."""
    d = as_float(xp, batch4(dy))
    return d.reshape(*d.shape[:3], info.in_channels, -1)


@dataclass(frozen=True, kw_only=True)
class DepthwiseConv2D(_ConvForward):
    """y[b,i,j,c·M+q] = Σ_{di,dj} xpad[b, i·sH+di, j·sW+dj, c] · filter[di,dj,c,q]."""

    name = "depthwise_conv2d"
    depthwise = True

    def forward(self, xp: ModuleType, x: RawArray, filter: RawArray) -> RawArray:
        info = self.conv_info(x.shape, filter.shape, depthwise=True)
        # einsum (optimize=True: a tensordot per channel group) measured faster than a tap loop
        # or a batched matmul over channels on the CPU.
        y = xp.einsum(
            "bhwijc,ijcm->bhwcm", _depthwise_windows(xp, x, info), as_float(xp, filter), optimize=True
        )
        return y.reshape(unbatched(info.out_shape, x.ndim))


@dataclass(frozen=True, kw_only=True)
class DepthwiseConv2DDerInput(_ConvDerInput):
    """dx of depthwise_conv2d (its adjoint in the input)."""

    name = "depthwise_conv2d_der_input"
    depthwise = True

    def forward(self, xp: ModuleType, dy: RawArray, filter: RawArray) -> RawArray:
        info = self.conv_info(self.in_shape, filter.shape, depthwise=True)
        cols = xp.einsum(
            "bhwcm,ijcm->bhwijc", _depthwise_dy(xp, dy, info), as_float(xp, filter), optimize=True
        )
        return add_windows(xp, cols, info).reshape(self.in_shape)


@dataclass(frozen=True, kw_only=True)
class DepthwiseConv2DDerFilter(_ConvDerFilter):
    """dfilter of depthwise_conv2d, summed over the batch."""

    name = "depthwise_conv2d_der_filter"
    depthwise = True

    def forward(self, xp: ModuleType, x: RawArray, dy: RawArray) -> RawArray:
        info = self.conv_info(x.shape, self.filter_shape, depthwise=True)
        dw = xp.einsum(
            "bhwijc,bhwcm->ijcm", _depthwise_windows(xp, x, info), _depthwise_dy(xp, dy, info), optimize=True
        )
        return dw.reshape(self.filter_shape)


# -- the composites' checks, in the terms of the method the user called ------------------------


def _check_numeric(where: str, **arrays: NDArray) -> None:
    for name, a in arrays.items():
        if a.dtype == "bool":
            raise DTypeError(f"{where}: {name} must be numeric; got {name}.dtype='bool'.")


def _check_conv1d(x: NDArray, filter: NDArray, bias: NDArray | None, stride: object, pad: object) -> Pad:
    """Checks conv1d's arguments (as conv1d's, not as the conv2d it runs); the conv2d pad."""
    where = "conv1d"
    check_arrays(where, x=x, filter=filter, **({} if bias is None else {"bias": bias}))
    if x.rank not in (2, 3):
        raise ShapeError(f"conv1d: x must be rank 2 or 3; got x.shape={x.shape}.")
    if filter.rank != 3:
        raise ShapeError(
            f"conv1d: filter must be rank 3 [fW, inDepth, outDepth]; got filter.shape={filter.shape}."
        )
    _check_numeric(where, x=x, filter=filter)
    if x.shape[-1] != filter.shape[1]:
        raise ShapeError(
            f"conv1d: x's depth must match filter's input depth (filter.shape[1]); got x.shape={x.shape} "
            f"and filter.shape={filter.shape}, i.e. {x.shape[-1]} vs {filter.shape[1]}."
        )
    if bias is not None and (bias.rank != 1 or bias.shape[0] != filter.shape[2]):
        raise ShapeError(
            f"conv1d: bias must be rank 1 of size outDepth (filter.shape[2]); got bias.shape={bias.shape} "
            f"and filter.shape={filter.shape}."
        )
    if isinstance(stride, bool) or not isinstance(stride, SupportsIndex) or operator.index(stride) < 1:
        raise ValueError(f"conv1d: stride must be a positive int; got stride = {stride!r}.")
    p = normalize_pad(pad, where)
    if isinstance(p, tuple):  # a (height, width) pair is conv2d's internal form, not conv1d's
        raise ValueError(f"conv1d: pad must be 'same', 'valid' or a non-negative int; got pad = {pad!r}.")
    width, f_width = x.shape[-2], filter.shape[0]
    out = pad_and_out_size(p, width, operator.index(stride), f_width, "width", where)[2]
    if out < 1:
        raise ShapeError(
            f"conv1d: the filter must fit in the padded input; got input width {width}, filter width "
            f"{f_width}, pad = {pad!r}, output width {out}."
        )
    # A numeric pad pads the width only (the height of 1 has nothing to pad).
    return (0, p) if isinstance(p, int) else p  # type: ignore[return-value]


def _check_conv2d_transpose(
    x: NDArray, filter: NDArray, output_shape: Shape, strides: object, pad: object
) -> None:
    """Checks conv2d_transpose's arguments in its own terms: x is the conv2d output, through
    ``filter`` [fH, fW, outDepth, inDepth], of an input of ``output_shape``."""
    where = "conv2d_transpose"
    check_arrays(where, x=x, filter=filter)
    out_shape = util.check_shape(output_shape, where, "output_shape")
    if filter.rank != 4:
        raise ShapeError(
            "conv2d_transpose: filter must be rank 4 [fH, fW, outDepth, inDepth]; got "
            f"filter.shape={filter.shape}."
        )
    if x.rank not in (3, 4) or len(out_shape) != x.rank:
        raise ShapeError(
            f"conv2d_transpose: x must be rank 3 or 4 and output_shape of the same rank; got "
            f"x.shape={x.shape} and output_shape={out_shape}."
        )
    _check_numeric(where, x=x, filter=filter)
    if x.shape[-1] != filter.shape[3]:
        raise ShapeError(
            f"conv2d_transpose: x's depth must match filter's input depth (filter.shape[3]; filter is "
            f"[fH, fW, outDepth, inDepth]); got x.shape={x.shape} and filter.shape={filter.shape}, i.e. "
            f"{x.shape[-1]} vs {filter.shape[3]}."
        )
    if out_shape[-1] != filter.shape[2]:
        raise ShapeError(
            f"conv2d_transpose: output_shape's depth must match filter's output depth (filter.shape[2]); "
            f"got output_shape={out_shape} and filter.shape={filter.shape}, i.e. {out_shape[-1]} vs "
            f"{filter.shape[2]}."
        )
    try:
        info = compute_conv2d_info(batched(out_shape), filter.shape, strides, pad, where=where)  # type: ignore[arg-type]
    except ShapeError as e:  # said of "the input", which is output_shape here
        raise ShapeError(
            f"conv2d_transpose: output_shape must be a valid conv2d input for this filter, strides and "
            f"pad; got output_shape={out_shape}, filter.shape={filter.shape}, strides={strides!r}, "
            f"pad={pad!r} ({str(e).removeprefix(where + ': ')})"
        ) from None
    expected = unbatched(info.out_shape, x.rank)
    if x.shape != expected:
        raise ShapeError(
            f"conv2d_transpose: x must have the shape conv2d gives an input of output_shape; got "
            f"x.shape={x.shape}, expected {expected} for output_shape={out_shape}, "
            f"filter.shape={filter.shape}, strides={strides!r} and pad={pad!r}."
        )


# -- the public methods ----------------------------------------------------------------------


class ConvMath(ReductionMath, ArithmeticMath):
    """The methods of NDArrayMath for convolutions."""

    def conv2d(
        self,
        x: NDArray,
        filter: NDArray,
        bias: NDArray | None = None,
        strides: int | tuple[int, int] = 1,
        pad: Pad = "valid",
    ) -> NDArray:
        """2-D convolution (cross-correlation) of NHWC images with a filter, plus a bias.

        Args:
            x: [height, width, inDepth] (a batch of one; the result is rank 3) or
                [batch, height, width, inDepth].
            filter: [fH, fW, inDepth, outDepth].
            bias: [outDepth], added to every output pixel, or None.
            strides: the step between windows, an int or (sH, sW).
            pad: 'same' (output ceil(in/stride), extra padding bottom/right), 'valid' (no padding)
                or a number of zero rows and columns added on every side.

        Returns:
            [outHeight, outWidth, outDepth] or [batch, outHeight, outWidth, outDepth].

        Raises:
            ShapeError: wrong ranks, depths that do not match, or a numeric pad for which the
                output size is not an integer.

        Example:
            >>> x = Array3D.new([2, 2, 1], [1, 2, 3, 4])
            >>> w = Array4D.new([1, 1, 1, 1], [2])
            >>> math.conv2d(x, w, Array1D.new([-1]), 1, 0).get_values()
            array([1., 3., 5., 7.], dtype=float32)
        """
        check_arrays("conv2d", x=x, filter=filter, **({} if bias is None else {"bias": bias}))
        if bias is not None:
            out_depth = filter.shape[3] if filter.rank == 4 else None
            if bias.rank != 1 or (out_depth is not None and bias.shape[0] != out_depth):
                raise ShapeError(
                    f"conv2d: bias must be rank 1 of size outDepth (filter.shape[3]); got "
                    f"bias.shape={bias.shape} and filter.shape={filter.shape}."
                )
        y: NDArray = self.engine.run(Conv2D(strides=strides, pad=pad), x, filter)
        return y if bias is None else self.add(y, bias)

    def conv1d(
        self, x: NDArray, filter: NDArray, bias: NDArray | None = None, stride: int = 1, pad: Pad = "valid"
    ) -> NDArray:
        """1-D convolution of [width, inDepth] or [batch, width, inDepth] with a filter
        [fW, inDepth, outDepth] (a conv2d of height 1).

        Example:
            >>> x = Array2D.new([4, 1], [1, 2, 3, 4])
            >>> w = Array3D.new([2, 1, 1], [2, 1])
            >>> math.conv1d(x, w, None, 1, "valid").get_values()
            array([ 4.,  7., 10.], dtype=float32)
        """
        pad2d = _check_conv1d(x, filter, bias, stride, pad)
        # A conv2d of height 1: every error it could raise was raised above, in conv1d's terms.
        x4 = x.reshape((x.shape[0], 1, *x.shape[1:]) if x.rank == 3 else (1, *x.shape))
        y = self.conv2d(x4, filter.reshape((1, *filter.shape)), bias, (1, stride), pad2d)
        return y.reshape((y.shape[0], *y.shape[2:]) if x.rank == 3 else y.shape[1:])

    def conv2d_der_input(
        self,
        in_shape: Shape,
        dy: NDArray,
        filter: NDArray,
        strides: int | tuple[int, int] = 1,
        pad: Pad = "valid",
    ) -> NDArray:
        """The gradient of conv2d with respect to its input x of shape ``in_shape``.

        Example:
            >>> dy = Array3D.new([1, 1, 1], [2])
            >>> w = Array4D.new([2, 2, 1, 1], [3, 1, 5, 0])
            >>> math.conv2d_der_input((2, 2, 1), dy, w, 1, 0).get_values()
            array([ 6.,  2., 10.,  0.], dtype=float32)
        """
        op = Conv2DDerInput(in_shape=in_shape, strides=strides, pad=pad)
        return self.engine.run(op, dy, filter)

    def conv2d_der_filter(
        self,
        x: NDArray,
        dy: NDArray,
        filter_shape: Shape,
        strides: int | tuple[int, int] = 1,
        pad: Pad = "valid",
    ) -> NDArray:
        """The gradient of conv2d with respect to its filter, summed over the batch.

        Example:
            >>> x = Array3D.new([3, 3, 1], [1, 2, 3, 4, 5, 6, 7, 8, 9])
            >>> dy = Array3D.new([2, 2, 1], [3, 1, 2, 0])
            >>> math.conv2d_der_filter(x, dy, (2, 2, 1, 1), 1, 0).get_values()
            array([13., 19., 31., 37.], dtype=float32)
        """
        op = Conv2DDerFilter(filter_shape=filter_shape, strides=strides, pad=pad)
        return self.engine.run(op, x, dy)

    def conv2d_der_bias(self, dy: NDArray) -> NDArray:
        """The gradient of conv2d with respect to its bias: dy summed over batch, rows, columns.

        Example:
            >>> math.conv2d_der_bias(Array3D.new([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8])).get_values()
            array([16., 20.], dtype=float32)
        """
        check_arrays("conv2d_der_bias", dy=dy)
        if dy.rank not in (3, 4):
            raise ShapeError(f"conv2d_der_bias: dy must be rank 3 or 4; got dy.shape={dy.shape}.")
        return self.sum(dy, list(range(dy.rank - 1)))

    def conv2d_transpose(
        self,
        x: NDArray,
        filter: NDArray,
        output_shape: Shape,
        strides: int | tuple[int, int] = 1,
        pad: Pad = "valid",
    ) -> NDArray:
        """Transposed convolution ("deconvolution"): conv2d_der_input(output_shape, x, filter).

        Args:
            x: [h, w, inDepth] or [b, h, w, inDepth].
            filter: [fH, fW, outDepth, inDepth].
            output_shape: the shape of the result, [H, W, outDepth] or [b, H, W, outDepth]; x must be
                the conv2d output size of an input of that shape.

        Example:
            >>> x = Array3D.new([1, 1, 1], [2])
            >>> w = Array4D.new([2, 2, 1, 1], [3, 1, 5, 0])
            >>> math.conv2d_transpose(x, w, (2, 2, 1), 1, 0).get_values()
            array([ 6.,  2., 10.,  0.], dtype=float32)
        """
        _check_conv2d_transpose(x, filter, output_shape, strides, pad)
        # Every error conv2d_der_input could raise was raised above, in conv2d_transpose's terms.
        return self.conv2d_der_input(output_shape, x, filter, strides, pad)

    def depthwise_conv2d(
        self,
        x: NDArray,
        filter: NDArray,
        strides: int | tuple[int, int] = 1,
        pad: Pad = "valid",
        rates: int | tuple[int, int] = 1,
    ) -> NDArray:
        """Depthwise 2-D convolution: each input channel c is convolved with its own
        ``channelMultiplier`` filters; output channel ``c·channelMultiplier + q``.

        Args:
            x: [h, w, inChannels] or [b, h, w, inChannels].
            filter: [fH, fW, inChannels, channelMultiplier].
            rates: dilation; only 1 is supported (as in deeplearn.js).

        Example:
            >>> x = Array3D.new([2, 2, 2], [1, 10, 2, 20, 3, 30, 4, 40])
            >>> w = Array4D.new([1, 1, 2, 1], [1, 0.5])
            >>> math.depthwise_conv2d(x, w, 1, "valid").get_values()
            array([ 1.,  5.,  2., 10.,  3., 15.,  4., 20.], dtype=float32)
        """
        r = as_pair(rates, "rates", "depthwise_conv2d")
        if r != (1, 1):
            raise ValueError(
                f"depthwise_conv2d: dilation rates greater than 1 are not supported; got rates = {rates!r}."
            )
        return self.engine.run(DepthwiseConv2D(strides=strides, pad=pad), x, filter)

    def depthwise_conv2d_der_input(
        self,
        in_shape: Shape,
        dy: NDArray,
        filter: NDArray,
        strides: int | tuple[int, int] = 1,
        pad: Pad = "valid",
    ) -> NDArray:
        """The gradient of depthwise_conv2d with respect to its input x of shape ``in_shape``.

        Example:
            >>> dy = Array3D.new([1, 1, 2], [1, 2])
            >>> w = Array4D.new([1, 1, 1, 2], [3, 4])
            >>> math.depthwise_conv2d_der_input((1, 1, 1), dy, w, 1, "valid").get_values()
            array([11.], dtype=float32)
        """
        op = DepthwiseConv2DDerInput(in_shape=in_shape, strides=strides, pad=pad)
        return self.engine.run(op, dy, filter)

    def depthwise_conv2d_der_filter(
        self,
        x: NDArray,
        dy: NDArray,
        filter_shape: Shape,
        strides: int | tuple[int, int] = 1,
        pad: Pad = "valid",
    ) -> NDArray:
        """The gradient of depthwise_conv2d with respect to its filter, summed over the batch.

        Example:
            >>> x = Array3D.new([1, 1, 1], [3])
            >>> dy = Array3D.new([1, 1, 2], [1, 2])
            >>> math.depthwise_conv2d_der_filter(x, dy, (1, 1, 1, 2), 1, "valid").get_values()
            array([3., 6.], dtype=float32)
        """
        op = DepthwiseConv2DDerFilter(filter_shape=filter_shape, strides=strides, pad=pad)
        return self.engine.run(op, x, dy)
