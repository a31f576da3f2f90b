"""The NDArrayMath family of resize_bilinear3d and batch normalization.

resize_bilinear3d is an op (TensorFlow 1.x's legacy bilinear mapping, as deeplearn.js); the
batch_normalization methods are composites of element-wise methods, so their gradients and (later)
their fusion come from those ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from deeplearn import util
from deeplearn.math.ops.arithmetic import ArithmeticMath
from deeplearn.math.ops.base import Op, Spec, check_arrays
from deeplearn.math.ops.elementwise import ElementwiseMath
from deeplearn.types import DTypeError, RawArray, Shape, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["ImageMath", "ResizeBilinear3D", "resize_coordinates", "resize_matrix"]


def resize_coordinates(
    in_size: int, out_size: int, align_corners: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output row (or column) r: the two source indices it blends and the weight of the
    second, from ``src = r·in/out`` (align_corners: ``r·(in-1)/(out-1)``), ceil clamped to in-1.

    Example:
        >>> lo, hi, frac = resize_coordinates(2, 3, True)
        >>> lo.tolist(), hi.tolist(), frac.tolist()
        ([0, 0, 1], [0, 1, 1], [0.0, 0.5, 0.0])
    """
    # deeplearn.js: align_corners with an output of size 1 divides 0 by 0 (NaN); like TensorFlow,
    # we use the scale in/out there instead.
    if align_corners and out_size > 1:
        scale = (in_size - 1) / (out_size - 1)
    else:
        scale = in_size / out_size
    src = np.arange(out_size, dtype=np.float64) * scale
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(np.ceil(src).astype(np.int64), in_size - 1)
    return lo, hi, src - lo


def resize_matrix(in_size: int, out_size: int, align_corners: bool) -> np.ndarray:
    """The [out, in] matrix A with resize along one axis = A · x (used by the gradient)."""
    lo, hi, frac = resize_coordinates(in_size, out_size, align_corners)
    a = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(a, (rows, lo), 1 - frac)  # host-side NumPy: a tiny matrix, built once per call
    np.add.at(a, (rows, hi), frac)
    return a


@dataclass(frozen=True)
class ResizeBilinear3D(Op):
    """Bilinear resize of [h, w, c] (or [b, h, w, c]) to [new_h, new_w, c], TF-1.x legacy mapping:
    top = tl + (tr - tl)·cf, bottom = bl + (br - bl)·cf, y = top + (bottom - top)·rf."""

    name = "resize_bilinear3d"
    new_shape: tuple[int, int] = (1, 1)
    align_corners: bool = False

    def infer(self, x: Spec) -> Spec:
        if x.rank not in (3, 4):
            raise ShapeError(f"resize_bilinear3d: x must be rank 3 (or 4, batched); got x.shape={x.shape}.")
        if x.dtype == "bool":
            raise DTypeError("resize_bilinear3d: x must be numeric; got x.dtype='bool'.")
        if len(self.new_shape) != 2 or min(self.new_shape) < 1:
            raise ValueError(
                "resize_bilinear3d: new_shape2d must be two positive sizes; got "
                f"new_shape2d={self.new_shape}."
            )
        if min(x.shape[-3:-1]) < 1:  # no source pixel to blend
            raise ShapeError(f"resize_bilinear3d: x must have rows and columns; got x.shape={x.shape}.")
        return Spec((*x.shape[:-3], *self.new_shape, x.shape[-1]))

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        xf = x if x.dtype.kind == "f" else x.astype(xp.float32)
        r0, r1, rf = resize_coordinates(x.shape[-3], self.new_shape[0], self.align_corners)
        c0, c1, cf = resize_coordinates(x.shape[-2], self.new_shape[1], self.align_corners)
        rows0, rows1 = xp.take(xf, xp.asarray(r0), axis=-3), xp.take(xf, xp.asarray(r1), axis=-3)
        cols0, cols1 = xp.asarray(c0), xp.asarray(c1)
        cfrac = xp.asarray(cf, dtype=xf.dtype)[:, None]
        rfrac = xp.asarray(rf, dtype=xf.dtype)[:, None, None]
        # Blending only the cells each output reads keeps a NaN local (as deeplearn.js).
        tl, tr = xp.take(rows0, cols0, axis=-2), xp.take(rows0, cols1, axis=-2)
        bl, br = xp.take(rows1, cols0, axis=-2), xp.take(rows1, cols1, axis=-2)
        top = tl + (tr - tl) * cfrac
        bottom = bl + (br - bl) * cfrac
        return top + (bottom - top) * rfrac

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        # dx = Aᵀ·dy·B along rows and columns, where y = A·x·Bᵀ per channel.
        (in_h, in_w), (out_h, out_w) = x.shape[-3:-1], self.new_shape
        xp, dtype = math.backend.xp, dy.raw.dtype
        a_t, b_t = (
            math.engine.wrap(xp.asarray(resize_matrix(n, m, self.align_corners).T, dtype=dtype), "float32")
            for n, m in ((in_h, out_h), (in_w, out_w))
        )
        d = dy.reshape((-1, out_h, out_w, dy.shape[-1]))  # [B, oh, ow, C]
        batch, channels = d.shape[0], d.shape[3]
        rows = math.transpose(d, [1, 0, 2, 3]).reshape((out_h, -1))  # [oh, B·ow·C]
        t = math.mat_mul(a_t, rows).reshape((in_h, batch, out_w, channels))
        cols = math.transpose(t, [2, 1, 0, 3]).reshape((out_w, -1))  # [ow, B·ih·C]
        u = math.mat_mul(b_t, cols).reshape((in_w, batch, in_h, channels))
        return (math.transpose(u, [1, 2, 0, 3]).reshape(x.shape),)


def _check_bn_param(x: NDArray, p: NDArray, name: str, where: str) -> None:
    check_arrays(where, **{name: p})
    if p.rank == 1:
        if p.shape[0] not in (1, x.shape[-1]):
            raise ShapeError(
                f"{where}: a rank-1 {name} must have x's depth (x.shape[-1]) entries; got "
                f"{name}.shape={p.shape} and x.shape={x.shape}."
            )
    elif p.rank != x.rank:
        raise ShapeError(
            f"{where}: {name} must be rank 1 ([depth]) or rank {x.rank} like x; got {name}.shape={p.shape}."
        )
    elif any(dp != dx and 1 not in (dp, dx) for dx, dp in zip(x.shape, p.shape, strict=True)):
        # checked here, before the first op runs, rather than by the op it would fail in
        raise ShapeError(
            f"{where}: {name} must broadcast against x; got {name}.shape={p.shape} and x.shape={x.shape}."
        )


class ImageMath(ElementwiseMath, ArithmeticMath):
    """The methods of NDArrayMath for resize_bilinear3d and batch normalization."""

    def resize_bilinear3d(
        self, x: NDArray, new_shape2d: Shape | list[int], align_corners: bool = False
    ) -> NDArray:
        """Bilinear resize of an image [h, w, c] to [new_h, new_w, c], with TensorFlow 1.x's
        legacy mapping ``src = r·in/out`` (align_corners: ``r·(in-1)/(out-1)``).

        Example:
            >>> x = Array3D.new([2, 2, 1], [2, 2, 4, 4])
            >>> math.resize_bilinear3d(x, [3, 3], True).get_values()
            array([2., 2., 2., 3., 3., 3., 4., 4., 4.], dtype=float32)
        """
        where = "resize_bilinear3d"
        shape = util.as_shape(new_shape2d, where)
        op = ResizeBilinear3D(shape, util.as_bool(align_corners, where, "align_corners"))  # type: ignore[arg-type]
        return self.engine.run(op, x)

    def _batch_normalization(
        self,
        where: str,
        rank: int,
        x: NDArray,
        mean: NDArray,
        variance: NDArray,
        variance_epsilon: float,
        scale: NDArray | None,
        offset: NDArray | None,
    ) -> NDArray:
        from deeplearn.math.ndarray import Scalar

        check_arrays(where, x=x, mean=mean, variance=variance)
        epsilon = util.as_float(variance_epsilon, where, "variance_epsilon")
        if x.rank != rank:
            raise ShapeError(f"{where}: x must be rank {rank}; got x.shape={x.shape}.")
        for name, p in (("mean", mean), ("variance", variance), ("scale", scale), ("offset", offset)):
            if p is not None:
                _check_bn_param(x, p, name, where)
        # deeplearn.js order: offset + (x - mean)·scale / sqrt(variance + eps)
        y = self.subtract(x, mean)
        if scale is not None:
            y = self.multiply(y, scale)
        eps = Scalar.new(epsilon, math=self)  # type: ignore[arg-type]
        y = self.divide(y, self.sqrt(self.add(variance, eps)))
        result: NDArray = y if offset is None else self.add(y, offset)
        return result

    def batch_normalization2d(
        self,
        x: NDArray,
        mean: NDArray,
        variance: NDArray,
        variance_epsilon: float = 0.001,
        scale: NDArray | None = None,
        offset: NDArray | None = None,
    ) -> NDArray:
        """Batch normalization of a matrix: ``offset + (x - mean)·scale/√(variance + eps)``.

        ``mean``, ``variance``, ``scale`` and ``offset`` are [depth] (broadcast over the last
        dimension) or of x's rank; scale defaults to 1 and offset to 0.

        Example:
            >>> x = Array2D.new([2, 2], [2, 100, 4, 400])
            >>> y = math.batch_normalization2d(x, Array1D.new([1, 2]), Array1D.new([2, 3]))
            >>> y.get_values().round(3)
            array([  0.707,  56.571,   2.121, 229.747], dtype=float32)
        """
        return self._batch_normalization(
            "batch_normalization2d", 2, x, mean, variance, variance_epsilon, scale, offset
        )

    def batch_normalization3d(
        self,
        x: NDArray,
        mean: NDArray,
        variance: NDArray,
        variance_epsilon: float = 0.001,
        scale: NDArray | None = None,
        offset: NDArray | None = None,
    ) -> NDArray:
        """Batch normalization of an image [h, w, depth] (see batch_normalization2d).

        Example:
            >>> x = Array3D.new([2, 1, 2], [2, 100, 4, 400])
            >>> y = math.batch_normalization3d(x, Array1D.new([1, 2]), Array1D.new([2, 3]))
            >>> y.get_values().round(3)
            array([  0.707,  56.571,   2.121, 229.747], dtype=float32)
        """
        return self._batch_normalization(
            "batch_normalization3d", 3, x, mean, variance, variance_epsilon, scale, offset
        )

    def batch_normalization4d(
        self,
        x: NDArray,
        mean: NDArray,
        variance: NDArray,
        variance_epsilon: float = 0.001,
        scale: NDArray | None = None,
        offset: NDArray | None = None,
    ) -> NDArray:
        """Batch normalization of a batch of images [b, h, w, depth] (see batch_normalization2d).

        Example:
            >>> x = Array4D.new([2, 1, 1, 2], [2, 100, 4, 400])
            >>> y = math.batch_normalization4d(x, Array1D.new([1, 2]), Array1D.new([2, 3]))
            >>> y.get_values().round(3)
            array([  0.707,  56.571,   2.121, 229.747], dtype=float32)
        """
        return self._batch_normalization(
            "batch_normalization4d", 4, x, mean, variance, variance_epsilon, scale, offset
        )
