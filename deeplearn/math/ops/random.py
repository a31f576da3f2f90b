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

        Example:
            >>> math.multinomial(Array1D.new([1, 0]), 5, seed=0).get_values()
            array([0, 0, 0, 0, 0], dtype=int32)
        """
        return self._run(Multinomial(int(num_samples), seed, bool(normalized)), probs)  # type: ignore[no-any-return]

    def one_hot(self, indices: NDArray, depth: int, on_value: float = 1, off_value: float = 0) -> NDArray:
        """[n, depth] rows that are ``on_value`` at ``indices[n]`` and ``off_value`` elsewhere.

        Example:
            >>> math.one_hot(Array1D.new([0, 1], "int32"), 2, 3, -2).get_values()
            array([ 3., -2., -2.,  3.], dtype=float32)
        """
        return self._run(OneHot(util.as_int(depth, "one_hot", "depth"), float(on_value), float(off_value)), indices)  # type: ignore[no-any-return]
