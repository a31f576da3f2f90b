"""The NDArrayMath family of basic_lstm_cell and multi_rnn_cell.

Both are composites of other NDArrayMath methods (concat2d, mat_mul, add, slice2d, sigmoid, tanh,
multiply): they declare no op, so their gradients come from those ops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias

from deeplearn import util
from deeplearn.math.ops.arithmetic import ArithmeticMath
from deeplearn.math.ops.base import check_arrays
from deeplearn.math.ops.elementwise import ElementwiseMath
from deeplearn.math.ops.layout import LayoutMath
from deeplearn.math.ops.linalg import LinalgMath
from deeplearn.types import DTypeError, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray import NDArray

__all__ = ["LSTMCell", "RNNMath"]

LSTMCell: TypeAlias = "Callable[[NDArray, NDArray, NDArray], tuple[NDArray, NDArray]]"
"""A cell ``(data, c, h) -> (new_c, new_h)``, e.g. ``functools.partial(math.basic_lstm_cell,
forget_bias, kernel, bias)``."""


class RNNMath(ElementwiseMath, ArithmeticMath, LinalgMath, LayoutMath):
    """The methods of NDArrayMath for basic_lstm_cell and multi_rnn_cell."""

    def basic_lstm_cell(
        self,
        forget_bias: NDArray | float,
        lstm_kernel: NDArray,
        lstm_bias: NDArray,
        data: NDArray,
        c: NDArray,
        h: NDArray,
    ) -> tuple[NDArray, NDArray]:
        """One step of TensorFlow's BasicLSTMCell.

        ``res = concat([data, h], 1)·lstm_kernel + lstm_bias`` is split into four column blocks
        i, j, f, o; then ``c' = c·σ(f + forget_bias) + σ(i)·tanh(j)`` and ``h' = tanh(c')·σ(o)``.

        Args:
            forget_bias: a Scalar (or a number) added to the forget gate.
            lstm_kernel: [inputSize + units, 4·units].
            lstm_bias: [4·units].
            data: [batch, inputSize].
            c, h: [batch, units], the previous cell state and output.

        Returns:
            (new_c, new_h), each [batch, units].

        Example:
            >>> kernel = Array2D.new([2, 4], [0, 0, 0, 0, 0, 0, 0, 0])
            >>> bias = Array1D.new([0, 0, 0, 0])
            >>> zero = Array2D.new([1, 1], [0])
            >>> new_c, new_h = math.basic_lstm_cell(Scalar.new(1), kernel, bias, zero, zero, zero)
            >>> float(new_c.get(0, 0)), float(new_h.get(0, 0))
            (0.0, 0.0)
        """
        from deeplearn.math.ndarray import NDArray, Scalar

        where = "basic_lstm_cell"
        arrays = {"lstm_kernel": lstm_kernel, "lstm_bias": lstm_bias, "data": data, "c": c, "h": h}
        if isinstance(forget_bias, NDArray):
            arrays["forget_bias"] = forget_bias
        else:
            bias_value = util.as_float(forget_bias, where, "forget_bias")
        check_arrays(where, **arrays)
        if lstm_kernel.rank != 2 or data.rank != 2 or c.rank != 2 or h.rank != 2:
            raise ShapeError(
                f"basic_lstm_cell: lstm_kernel, data, c and h must be rank 2; got lstm_kernel.shape="
                f"{lstm_kernel.shape}, data.shape={data.shape}, c.shape={c.shape}, h.shape={h.shape}."
            )
        units = h.shape[1]
        if lstm_kernel.shape != (data.shape[1] + units, 4 * units) or c.shape != h.shape:
            raise ShapeError(
                f"basic_lstm_cell: lstm_kernel must be [inputSize + units, 4·units] and c like h; got "
                f"lstm_kernel.shape={lstm_kernel.shape}, data.shape={data.shape}, c.shape={c.shape}, "
                f"h.shape={h.shape}."
            )
        if lstm_bias.shape != (4 * units,):
            raise ShapeError(
                f"basic_lstm_cell: lstm_bias must be [4·units] = [{4 * units}]; got "
                f"lstm_bias.shape={lstm_bias.shape}."
            )
        if isinstance(forget_bias, NDArray) and forget_bias.size != 1:
            raise ShapeError(
                f"{where}: forget_bias must be a number or a scalar; got "
                f"forget_bias.shape={forget_bias.shape}."
            )
        for name, x in arrays.items():
            if x.dtype == "bool":
                raise DTypeError(f"{where}: {name} must be numeric; got {name}.dtype='bool'.")
        if data.dtype != h.dtype:  # they are concatenated
            raise DTypeError(f"{where}: data and h must have the same dtype; got {data.dtype} and {h.dtype}.")
        if not isinstance(forget_bias, NDArray):
            forget_bias = Scalar.new(bias_value, math=self)  # type: ignore[arg-type]

        res = self.add(self.mat_mul(self.concat2d(data, h, 1), lstm_kernel), lstm_bias)
        batch = res.shape[0]
        i, j, f, o = (self.slice2d(res, [0, k * units], [batch, units]) for k in range(4))
        new_c = self.add(
            self.multiply(c, self.sigmoid(self.add(f, forget_bias))),
            self.multiply(self.sigmoid(i), self.tanh(j)),
        )
        new_h = self.multiply(self.tanh(new_c), self.sigmoid(o))
        return new_c, new_h

    def multi_rnn_cell(
        self, lstm_cells: Sequence[LSTMCell], data: NDArray, c: Sequence[NDArray], h: Sequence[NDArray]
    ) -> tuple[list[NDArray], list[NDArray]]:
        """Runs stacked cells for one step: cell k reads cell k-1's new h (cell 0 reads data).

        Returns:
            (new_c list, new_h list), one entry per cell.

        Example:
            >>> from functools import partial
            >>> cell = partial(math.basic_lstm_cell, Scalar.new(1), Array2D.new([2, 4], [0] * 8),
            ...                Array1D.new([0, 0, 0, 0]))
            >>> zero = Array2D.new([1, 1], [0])
            >>> new_c, new_h = math.multi_rnn_cell([cell, cell], zero, [zero, zero], [zero, zero])
            >>> len(new_c), len(new_h)
            (2, 2)
        """
        for name, seq in (("lstm_cells", lstm_cells), ("c", c), ("h", h)):
            if not isinstance(seq, (list, tuple)):
                raise TypeError(
                    f"multi_rnn_cell: {name} must be a list or tuple; got {type(seq).__name__} {seq!r:.80}."
                )
        if not all(callable(cell) for cell in lstm_cells):
            raise TypeError(
                "multi_rnn_cell: lstm_cells must be callables (data, c, h) -> (c, h); got "
                f"{lstm_cells!r:.80}."
            )
        check_arrays("multi_rnn_cell", data=data)
        if not (len(lstm_cells) == len(c) == len(h)):
            raise ValueError(
                f"multi_rnn_cell: lstm_cells, c and h must have one entry per cell; got "
                f"{len(lstm_cells)}, {len(c)} and {len(h)} entries."
            )
        for k, (c_k, h_k) in enumerate(zip(c, h, strict=True)):
            check_arrays("multi_rnn_cell", **{f"c[{k}]": c_k, f"h[{k}]": h_k})
        inputs = data
        new_c: list[NDArray] = []
        new_h: list[NDArray] = []
        for cell, c_k, h_k in zip(lstm_cells, c, h, strict=True):
            c_next, h_next = cell(inputs, c_k, h_k)
            new_c.append(c_next)
            new_h.append(h_next)
            inputs = h_next
        return new_c, new_h
