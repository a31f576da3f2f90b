"""The NDArrayMath family of multinomial and one_hot."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from deeplearn import util
from deeplearn.math.ops.base import MathMixin, Op, Spec
from deeplearn.types import DTypeError, RawArray, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["Multinomial", "OneHot", "RandomMath", "uniform_draws"]


def uniform_draws(seed: float | None, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform [0, 1) float64 draws on the host from NumPy's PCG64 Generator (fresh entropy when
    ``seed`` is None; a float seed is taken by its bits, as deeplearn.js accepted any number)."""
    if seed is not None and not float(seed).is_integer():
        seed = int(np.float64(seed).view(np.uint64))
    rng = np.random.default_rng(None if seed is None else abs(int(seed)))
    return rng.random(shape)


@dataclass(frozen=True)
class Multinomial(Op):
    """``num_samples`` outcome indices per row of ``probs``, drawn by inverse-CDF sampling.

    Each row is divided by its sum unless ``normalized`` (then it is used as is, and draws past
    the last cumulative value give the last outcome, as in deeplearn.js).
    """

    name = "multinomial"
    num_samples: int = 1
    seed: int | float | None = None
    normalized: bool = False

    @property
    def pure(self) -> bool:  # type: ignore[override]
        return self.seed is not None  # without a seed, each run draws anew

    def infer(self, probs: Spec) -> Spec:
        if probs.rank not in (1, 2):
            raise ShapeError(f"multinomial: probs must be rank 1 or 2; got probs.shape={probs.shape}.")
        if probs.shape[-1] < 2:
            raise ShapeError(
                f"multinomial: there must be at least 2 outcomes; got probs.shape={probs.shape}."
            )
        if probs.dtype == "bool":
            raise DTypeError("multinomial: probs must be numeric; got probs.dtype='bool'.")
        if self.num_samples < 1:
            raise ValueError(
                f"multinomial: num_samples must be positive; got num_samples = {self.num_samples}."
            )
        return Spec((*probs.shape[:-1], self.num_samples), "int32")

    def forward(self, xp: ModuleType, probs: RawArray) -> RawArray:
        p = probs.reshape(-1, probs.shape[-1]).astype(xp.float64)
        _check_probabilities(xp, p)  # before drawing: nothing is drawn from a bad distribution
        rows, events = p.shape
        if not self.normalized:
            p = p / xp.sum(p, axis=1, keepdims=True)
        cdf = xp.cumsum(p, axis=1)
        u = xp.asarray(uniform_draws(self.seed, (rows, self.num_samples)))
        # One flat searchsorted for every row: shift row k's cdf and draws by k·(largest total + 1)
        # so the rows never overlap. The outcome is the first event with u < cdf[event]
        # (deeplearn.js).
        shift = (xp.max(cdf[:, -1]) + 1.0) * xp.arange(rows, dtype=xp.float64)[:, None]
        pos = xp.searchsorted((cdf + shift).ravel(), (u + shift).ravel(), side="right")
        outcome = pos.reshape(rows, self.num_samples) - events * xp.arange(rows)[:, None]
        outcome = xp.minimum(outcome, events - 1).astype(xp.int32)
        return outcome.reshape((*probs.shape[:-1], self.num_samples))

    def backward(self, math: NDArrayMath, dy: NDArray, probs: NDArray, y: NDArray) -> tuple[None]:
        return (None,)  # sampling is not differentiable


def _check_probabilities(xp: ModuleType, p: RawArray) -> None:
    """deeplearn.js's rule for ``probs`` ([rows, events]): non-negative, and a positive sum in
    every row. A negative or NaN probability, or a row of zeros, would give NaN or a skewed
    cumulative distribution that the draws then read without complaint. One pass over the
    probabilities, which the draws read anyway."""
    bad = ~(p >= 0) | xp.isinf(p)  # ~(p >= 0) is also true for NaN
    if bool(xp.any(bad)):
        row, col = divmod(int(xp.argmax(bad.reshape(-1))), p.shape[1])
        raise ValueError(
            f"multinomial: probabilities must be finite and non-negative; got {float(p[row, col]):.7g} "
            f"at outcome {col} of row {row}."
        )
    empty = xp.sum(p, axis=1) <= 0
    if bool(xp.any(empty)):
        raise ValueError(
            f"multinomial: the probabilities of each row must have a positive sum; got a row of zeros "
            f"(row {int(xp.argmax(empty))})."
        )


def _check_integral_indices(xp: ModuleType, indices: RawArray) -> None:
    """Float indices must hold integers: 0.5 would be truncated to 0 by the comparison's cast."""
    bad = indices != xp.trunc(indices)  # NaN too; ±inf equals its own trunc and hits no column
    if bool(xp.any(bad)):
        i = int(xp.argmax(bad))
        raise ValueError(f"one_hot: indices must be integers; got indices[{i}]={float(indices[i])}.")


@dataclass(frozen=True)
class OneHot(Op):
    """y[n, d] = on_value if indices[n] == d else off_value (an index out of [0, depth) gives a
    row of off_value)."""

    name = "one_hot"
    depth: int = 2
    on_value: float = 1.0
    off_value: float = 0.0

    def infer(self, indices: Spec) -> Spec:
        if indices.rank != 1:
            raise ShapeError(f"one_hot: indices must be rank 1; got indices.shape={indices.shape}.")
        if self.depth < 2:
            raise ValueError(f"one_hot: depth must be at least 2; got depth = {self.depth}.")
        return Spec((indices.shape[0], self.depth), "float32")

    def forward(self, xp: ModuleType, indices: RawArray) -> RawArray:
        if indices.dtype.kind == "f":  # deeplearn.js's default float32 arrays hold indices too
            _check_integral_indices(xp, indices)
        hit = indices.astype(xp.int64)[:, None] == xp.arange(self.depth)[None, :]
        return xp.where(hit, xp.float32(self.on_value), xp.float32(self.off_value))

    def backward(self, math: NDArrayMath, dy: NDArray, indices: NDArray, y: NDArray) -> tuple[None]:
        return (None,)  # indices are discrete


class RandomMath(MathMixin):
    """The methods of NDArrayMath for multinomial and one_hot."""

    def multinomial(
        self, probs: NDArray, num_samples: int, seed: float | None = None, normalized: bool = False
    ) -> NDArray:
        """Draws ``num_samples`` outcome indices (int32) from the distribution in ``probs``.

        Args:
            probs: [numOutcomes] or [batch, numOutcomes] probabilities (at least 2 outcomes).
            num_samples: draws per distribution.
            seed: makes the draws repeatable (NumPy's Generator); None draws fresh entropy.
            normalized: whether the rows already sum to 1; if False they are divided by their sum.

        Returns:
            [num_samples] or [batch, num_samples], int32.

        Raises:
            ValueError: before drawing, for a negative, NaN or infinite probability, or a row
                whose probabilities are all zero (deeplearn.js: non-negative with a positive sum).

        Example:
            >>> math.multinomial(Array1D.new([1, 0]), 5, seed=0).get_values()
            array([0, 0, 0, 0, 0], dtype=int32)
        """
        if seed is not None:
            util.as_float(seed, "multinomial", "seed")  # any number (a float by its bits), not text
        where = "multinomial"
        samples = util.as_int(num_samples, where, "num_samples")
        op = Multinomial(samples, seed, util.as_bool(normalized, where, "normalized"))
        return self.engine.run(op, probs)

    def one_hot(self, indices: NDArray, depth: int, on_value: float = 1, off_value: float = 0) -> NDArray:
        """[n, depth] rows that are ``on_value`` at ``indices[n]`` and ``off_value`` elsewhere.

        Float indices must hold integers (ValueError for 0.5, rather than truncating it).

        Example:
            >>> math.one_hot(Array1D.new([0, 1], "int32"), 2, 3, -2).get_values()
            array([ 3., -2., -2.,  3.], dtype=float32)
        """
        where = "one_hot"
        op = OneHot(
            util.as_int(depth, where, "depth"),
            util.as_float(on_value, where, "on_value"),
            util.as_float(off_value, where, "off_value"),
        )
        return self.engine.run(op, indices)
