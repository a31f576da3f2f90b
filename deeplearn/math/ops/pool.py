"""The NDArrayMath family of pooling: max_pool, min_pool, avg_pool and their backprops.

Inputs are NHWC images, [h, w, c] or [b, h, w, c]; the window is ``filter_size`` (int or
(fH, fW)), with strides and padding as for conv2d (``conv_util``). deeplearn.js semantics: any NaN
in a window makes its output NaN; avg_pool divides by the full fH·fW, padded cells counting as
zeros; max_pool_backprop sends each window's dy to its first maximum (row-major, strict >), and
overlapping windows accumulate. The CPU backend pools windows that tile the image (stride =
window) through a reshaped view instead (``deeplearn/math/backends/cpu.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from deeplearn.math.ops.base import MathMixin, Spec
from deeplearn.math.ops.conv import WindowedOp, as_float, batch4, batched, check_image, unbatched
from deeplearn.math.ops.conv_util import Conv2DInfo, Pad, as_pair, compute_pool2d_info, crop, pad_input, taps
from deeplearn.types import DTypeError, RawArray, Shape, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["AvgPool", "AvgPoolBackprop", "MaxPool", "MaxPoolBackprop", "MinPool", "PoolMath"]


@dataclass(frozen=True, kw_only=True)
class PoolOp(WindowedOp, abstract=True):
    """A windowed op over one image with a ``filter_size`` window (int or (fH, fW))."""

    filter_size: Any = (1, 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "filter_size", as_pair(self.filter_size, "filter_size", self.name))

    def pool_info(self, x_shape: Shape) -> Conv2DInfo:
        return compute_pool2d_info(
            batched(x_shape), self.filter_size, self.strides, self.pad, where=self.name
        )

    def _padded(self, xp: ModuleType, x: RawArray, fill: float) -> tuple[Conv2DInfo, RawArray]:
        info = self.pool_info(x.shape)
        return info, pad_input(xp, as_float(xp, batch4(x)), info, fill)

    def _reduce(self, xp: ModuleType, x: RawArray, fill: float, combine: Any) -> RawArray:
        """Folds the fH·fW tap views of the padded input with ``combine`` (one whole-array op
        per tap: faster than reducing a 6-D window view, on both backends)."""
        info, padded = self._padded(xp, x, fill)
        y = None
        for _, _, view in taps(padded, info):
            y = view.copy() if y is None else combine(y, view)
        assert y is not None  # a window has at least one tap
        return y.reshape(unbatched(info.out_shape, x.ndim))


@dataclass(frozen=True, kw_only=True)
class _PoolForward(PoolOp, abstract=True):
    def infer(self, x: Spec) -> Spec:
        check_image(x, "x", self.name)
        return Spec(unbatched(self.pool_info(x.shape).out_shape, x.rank))


@dataclass(frozen=True, kw_only=True)
class MaxPool(_PoolForward):
    """y = the maximum of each window (NaN if the window holds a NaN); padding never wins."""

    name = "max_pool"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        # xp.maximum propagates NaN (deeplearn.js: a NaN in the window gives NaN).
        return self._reduce(xp, x, float("-inf"), xp.maximum)

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.max_pool_backprop(dy, x, self.filter_size, self.strides, self.pad),)


@dataclass(frozen=True, kw_only=True)
class MinPool(_PoolForward):
    """y = the minimum of each window (NaN if the window holds a NaN); padding never wins."""

    name = "min_pool"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return self._reduce(xp, x, float("inf"), xp.minimum)

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        # The first minimum of x (strict <) is the first maximum of -x (strict >).
        return (math.max_pool_backprop(dy, math.neg(x), self.filter_size, self.strides, self.pad),)


@dataclass(frozen=True, kw_only=True)
class AvgPool(_PoolForward):
    """y = the sum of each window / (fH·fW); padded cells count as zeros (deeplearn.js)."""

    name = "avg_pool"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        # deeplearn.js: divide by the full window area, padding included (conformance:
        # avgPool.2x2x1_f2_s2_pad1).
        return self._reduce(xp, x, 0.0, xp.add) / (self.filter_size[0] * self.filter_size[1])

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (math.avg_pool_backprop(dy, x, self.filter_size, self.strides, self.pad),)


@dataclass(frozen=True, kw_only=True)
class _PoolBackprop(PoolOp, abstract=True):
    def infer(self, dy: Spec, x: Spec) -> Spec:
        check_image(x, "x", self.name)
        expected = unbatched(self.pool_info(x.shape).out_shape, x.rank)
        if dy.shape != expected:
            raise ShapeError(
                f"{self.name}: dy must have the shape of the pooled output; got dy.shape={dy.shape}, "
                f"expected {expected} for x.shape={x.shape}."
            )
        if dy.dtype == "bool":
            raise DTypeError(f"{self.name}: dy must be numeric; got dy.dtype='bool'.")
        return Spec(x.shape)


@dataclass(frozen=True, kw_only=True)
class MaxPoolBackprop(_PoolBackprop):
    """dx of max_pool: each window's dy goes to its first maximum (row-major, strict >);
    overlapping windows accumulate. NaNs never win; a window with no value above -inf drops dy."""

    name = "max_pool_backprop"

    def forward(self, xp: ModuleType, dy: RawArray, x: RawArray) -> RawArray:
        info, padded = self._padded(xp, x, float("-inf"))
        # deeplearn.js: the position is found with `pixel > maxValue` starting from -inf, row-major,
        # so the first maximum wins ties, a NaN never wins, padded cells (-inf) never win, and a
        # window with nothing above -inf drops its dy (conformance: maxPoolBackprop.3x3x1_f2_s1_dup2).
        best = xp.full(info.out_shape, float("-inf"), dtype=padded.dtype)
        first = xp.full(info.out_shape, -1, dtype=xp.int32)
        for i, j, view in taps(padded, info):
            better = view > best
            best = xp.where(better, view, best)
            first = xp.where(better, i * info.filter_width + j, first)
        d = as_float(xp, batch4(dy))
        dx = xp.zeros(padded.shape, dtype=xp.result_type(d.dtype, padded.dtype))
        zero = xp.zeros((), dtype=dx.dtype)
        for i, j, view in taps(dx, info):  # overlapping windows accumulate
            view += xp.where(first == i * info.filter_width + j, d, zero)
        return crop(dx, info).reshape(x.shape)

    # The gradient of max_pool_backprop itself (second order) is not provided: see
    # tests/op_cases/conv.py.


@dataclass(frozen=True, kw_only=True)
class AvgPoolBackprop(_PoolBackprop):
    """dx of avg_pool: each window's dy/(fH·fW) is added to every cell of the window."""

    name = "avg_pool_backprop"

    def forward(self, xp: ModuleType, dy: RawArray, x: RawArray) -> RawArray:
        info = self.pool_info(x.shape)
        d = as_float(xp, batch4(dy)) / (info.filter_height * info.filter_width)
        dx = xp.zeros(info.padded_shape, dtype=d.dtype)
        for _, _, view in taps(dx, info):  # every cell of a window gets the window's share
            view += d
        return crop(dx, info).reshape(x.shape)

    def backward(
        self, math: NDArrayMath, g: NDArray, dy: NDArray, x: NDArray, y: NDArray
    ) -> tuple[NDArray, NDArray]:
        from deeplearn.math.ndarray import NDArray

        # Linear in dy (its adjoint is avg_pool); x only gives the shape.
        return (math.avg_pool(g, self.filter_size, self.strides, self.pad), NDArray.zeros_like(x))


class PoolMath(MathMixin):
    """The methods of NDArrayMath for pooling."""

    def max_pool(
        self, x: NDArray, filter_size: int | tuple[int, int], strides: int | tuple[int, int], pad: Pad
    ) -> NDArray:
        """Max pooling: the maximum of each window; a NaN in a window gives NaN.

        Args:
            x: [h, w, c] or [b, h, w, c].
            filter_size: the window, an int or (fH, fW).
            strides: the step between windows, an int or (sH, sW).
            pad: 'same', 'valid' or a number of rows and columns of padding on every side
                (padded cells never win).

        Example:
            >>> x = Array3D.new([4, 4, 1], list(range(16)))
            >>> math.max_pool(x, 2, 2, 0).get_values()
            array([ 5.,  7., 13., 15.], dtype=float32)
        """
        return self.engine.run(MaxPool(filter_size=filter_size, strides=strides, pad=pad), x)

    def min_pool(
        self, x: NDArray, filter_size: int | tuple[int, int], strides: int | tuple[int, int], pad: Pad
    ) -> NDArray:
        """Min pooling: the minimum of each window; a NaN in a window gives NaN.

        Example:
            >>> x = Array3D.new([4, 4, 1], list(range(16)))
            >>> math.min_pool(x, 2, 2, 0).get_values()
            array([ 0.,  2.,  8., 10.], dtype=float32)
        """
        return self.engine.run(MinPool(filter_size=filter_size, strides=strides, pad=pad), x)

    def avg_pool(
        self, x: NDArray, filter_size: int | tuple[int, int], strides: int | tuple[int, int], pad: Pad
    ) -> NDArray:
        """Average pooling: the sum of each window divided by fH·fW (padded cells count as zeros).

        Example:
            >>> x = Array3D.new([2, 2, 1], [1, 2, 3, 4])
            >>> math.avg_pool(x, 2, 2, 1).get_values()
            array([0.25, 0.5 , 0.75, 1.  ], dtype=float32)
        """
        return self.engine.run(AvgPool(filter_size=filter_size, strides=strides, pad=pad), x)

    def max_pool_backprop(
        self,
        dy: NDArray,
        x: NDArray,
        filter_size: int | tuple[int, int],
        strides: int | tuple[int, int],
        pad: Pad,
    ) -> NDArray:
        """The gradient of max_pool: each window's dy goes to the window's first maximum
        (row-major, strict >); overlapping windows accumulate.

        Example:
            >>> dy = Array3D.new([2, 2, 1], [1, 2, 3, 4])
            >>> x = Array3D.new([3, 3, 1], [0, 0, 0, 0, 5, 0, 0, 0, 0])
            >>> math.max_pool_backprop(dy, x, 2, 1, 0).get_values().reshape(3, 3)
            array([[ 0.,  0.,  0.],
                   [ 0., 10.,  0.],
                   [ 0.,  0.,  0.]], dtype=float32)
        """
        op = MaxPoolBackprop(filter_size=filter_size, strides=strides, pad=pad)
        return self.engine.run(op, dy, x)

    def avg_pool_backprop(
        self,
        dy: NDArray,
        x: NDArray,
        filter_size: int | tuple[int, int],
        strides: int | tuple[int, int],
        pad: Pad,
    ) -> NDArray:
        """The gradient of avg_pool: each window's dy/(fH·fW) is added to each cell of the window.

        Example:
            >>> dy = Array3D.new([1, 1, 1], [4])
            >>> x = Array3D.new([2, 2, 1], [1, 2, 3, 4])
            >>> math.avg_pool_backprop(dy, x, 2, 1, 0).get_values()
            array([1., 1., 1., 1.], dtype=float32)
        """
        op = AvgPoolBackprop(filter_size=filter_size, strides=strides, pad=pad)
        return self.engine.run(op, dy, x)
