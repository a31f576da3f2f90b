"""Shared test helpers for the graph tests: an ordered InputProvider and numeric gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import deeplearn as dl
from deeplearn import NDArray


class ListProvider(dl.InputProvider):
    """Hands out the rows of ``values`` in order, cycling (no shuffling, so tests know which
    example went where). Uses InputProvider's generic get_next_batch (stacked copies)."""

    def __init__(self, values: Any) -> None:
        self.values = np.asarray(values, dtype=np.float32)
        self.position = 0

    def get_next_copy(self, math: dl.NDArrayMath) -> NDArray:
        value = self.values[self.position % len(self.values)]
        self.position += 1
        return NDArray.make(value.shape, value, math=math)

    def dispose_copy(self, math: dl.NDArrayMath, copy: NDArray) -> None:
        copy.dispose()


def numeric_vjp(f: Callable[..., Any], inputs: list[np.ndarray], dy: np.ndarray, i: int,
                eps: float = 1e-6) -> np.ndarray:
    """d/d inputs[i] of Σ dy · f(inputs), by central differences in float64."""
    xs = [np.array(x, dtype=np.float64) for x in inputs]
    x, grad = xs[i], np.zeros_like(xs[i])
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = np.sum(np.asarray(f(*xs), dtype=np.float64) * dy)
        x[idx] = old - eps
        minus = np.sum(np.asarray(f(*xs), dtype=np.float64) * dy)
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad
