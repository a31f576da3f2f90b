"""InMemoryDataset and DataStats: examples held in memory, with per-dimension normalisation.

Normalisation reads the examples to the host, computes in float64 with NumPy and writes new
NDArrays on each example's backend (a one-off data preparation step, not math on the hot path).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deeplearn.math.ndarray import NDArray
from deeplearn.math.scope import REGISTRY
from deeplearn.types import Shape

__all__ = ["DataStats", "InMemoryDataset"]


@dataclass(frozen=True)
class DataStats:
    """What ``InMemoryDataset.get_stats`` reports for one data index."""

    example_count: int
    input_min: float
    input_max: float
    shape: Shape


@dataclass
class _Normalization:
    """The per-dimension range of the original data and the bounds it is now scaled to."""

    min_values: np.ndarray
    max_values: np.ndarray
    lower_bound: float
    upper_bound: float


class InMemoryDataset(abc.ABC):
    """A dataset whose examples live in memory: ``get_data()[data_index][example_index]``.

    Subclasses implement ``fetch_data``, which sets ``self.dataset`` (a list per data index of
    one NDArray per example).

    Example:
        >>> class Tiny(dl.InMemoryDataset):
        ...     def fetch_data(self):
        ...         self.dataset = [[Array1D.new([1, 10]), Array1D.new([3, 30])]]
        >>> d = Tiny([[2]]); d.fetch_data()
        >>> d.normalize_within_bounds(0, 0, 1)
        >>> [x.get_values().tolist() for x in d.get_data()[0]]
        [[0.0, 0.0], [1.0, 1.0]]
    """

    def __init__(self, data_shapes: Sequence[Sequence[int]]) -> None:
        self.data_shapes: list[Shape] = [_as_shape(s) for s in data_shapes]
        self.dataset: list[list[NDArray]] | None = None
        self._normalization: dict[int, _Normalization] = {}

    @abc.abstractmethod
    def fetch_data(self) -> None:
        """Loads the examples into ``self.dataset``."""

    def get_data(self) -> list[list[NDArray]] | None:
        """The examples, per data index (None before ``fetch_data``)."""
        return self.dataset

    def get_data_shape(self, data_index: int) -> Shape:
        """The shape of one example of data index ``data_index``."""
        return self.data_shapes[_as_index("get_data_shape", data_index, len(self.data_shapes))]

    def get_stats(self) -> list[DataStats]:
        """Count, minimum, maximum and shape of each data index, over every example.

        deeplearn.js sampled the examples, and its slice dropped the first 10% instead of
        keeping 10% of them; these statistics are exact.
        """
        self._check_loaded("get_stats")
        out = []
        for i, examples in enumerate(self.dataset or []):
            values = _host(examples)
            empty = values.size == 0
            out.append(
                DataStats(
                    len(examples),
                    float("nan") if empty else float(values.min()),
                    float("nan") if empty else float(values.max()),
                    self.data_shapes[i],
                )
            )
        return out

    def normalize_within_bounds(self, data_index: int, lower_bound: float, upper_bound: float) -> None:
        """Scales every dimension of data index ``data_index`` linearly so that its minimum over
        the examples maps to ``lower_bound`` and its maximum to ``upper_bound``; constant
        dimensions map to ``lower_bound``. Normalising again rescales from the current bounds."""
        data_index = self._check_index("normalize_within_bounds", data_index)
        lower_bound = _as_bound("normalize_within_bounds", "lower_bound", lower_bound)
        upper_bound = _as_bound("normalize_within_bounds", "upper_bound", upper_bound)
        examples = self.dataset[data_index]  # type: ignore[index]
        values = _host(examples)
        info = self._normalization.get(data_index)
        if info is None:
            info = _Normalization(values.min(axis=0), values.max(axis=0), 0.0, 1.0)
            unit = _to_unit(values, info.min_values, info.max_values)
        else:
            unit = _to_unit(values, info.lower_bound, info.upper_bound)
        info.lower_bound, info.upper_bound = float(lower_bound), float(upper_bound)
        self._normalization[data_index] = info
        self._replace(data_index, lower_bound + unit * (upper_bound - lower_bound))

    def remove_normalization(self, data_index: int) -> None:
        """Restores the original values of data index ``data_index``."""
        data_index = self._check_index("remove_normalization", data_index)
        info = self._normalization.pop(data_index, None)
        if info is not None:
            self._replace(data_index, _from_bounds(_host(self.dataset[data_index]), info))  # type: ignore[index]

    def unnormalize_examples(self, examples: Sequence[NDArray], data_index: int) -> list[NDArray]:
        """New arrays with ``examples`` (normalised like data index ``data_index``) mapped back to
        the original range; the same arrays when that data is not normalised."""
        info = self._normalization.get(_as_index("unnormalize_examples", data_index, len(self.data_shapes)))
        if info is None:
            return list(examples)
        values = _from_bounds(_host(examples), info)
        return [_like(x, v) for x, v in zip(examples, values, strict=True)]

    def dispose(self) -> None:
        """Disposes every example."""
        for examples in self.dataset or []:
            for x in examples:
                x.dispose()
        self.dataset = None
        self._normalization.clear()

    # -- helpers ---------------------------------------------------------------------------
    def _check_loaded(self, where: str) -> None:
        if self.dataset is None:
            raise ValueError(f"InMemoryDataset.{where}: the data is not loaded; call fetch_data() first.")

    def _check_index(self, where: str, data_index: int) -> int:
        self._check_loaded(where)
        return _as_index(where, data_index, len(self.dataset))  # type: ignore[arg-type]

    def _replace(self, data_index: int, values: np.ndarray) -> None:
        old = self.dataset[data_index]  # type: ignore[index]
        self.dataset[data_index] = [_like(x, v) for x, v in zip(old, values, strict=True)]  # type: ignore[index]
        for x in old:
            x.dispose()


def _as_index(where: str, data_index: Any, count: int) -> int:
    """``data_index`` as an int in [0, count): not a bool or a float (True would be index 1), and
    not negative (Python's from-the-end indexing would pick another data index silently)."""
    if not isinstance(data_index, (int, np.integer)) or isinstance(data_index, (bool, np.bool_)):
        raise ValueError(
            f"InMemoryDataset.{where}: data_index must be an int in [0, {count}); "
            f"got data_index={data_index!r}."
        )
    if not 0 <= data_index < count:
        raise IndexError(
            f"InMemoryDataset.{where}: data_index must be in [0, {count}); got data_index={data_index!r}."
        )
    return int(data_index)


def _as_shape(shape: Sequence[Any]) -> Shape:
    """One data index's example shape: sizes that are ints >= 0 (int() truncated 2.5 to 2)."""
    sizes = list(shape)
    if not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d >= 0 for d in sizes
    ):
        raise ValueError(
            f"InMemoryDataset: each of data_shapes must be a sequence of ints >= 0; got {shape!r}."
        )
    return tuple(int(d) for d in sizes)


def _as_bound(where: str, name: str, value: Any) -> float:
    """A finite real number (NaN or inf bounds would turn every value into NaN)."""
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not real or not np.isfinite(value):
        raise ValueError(f"InMemoryDataset.{where}: {name} must be a finite number; got {name}={value!r}.")
    return float(value)


def _host(examples: Sequence[NDArray]) -> np.ndarray:
    if len(examples) == 0:
        return np.zeros((0,))
    return np.stack([x.numpy().astype(np.float64) for x in examples])


def _to_unit(values: np.ndarray, low: np.ndarray | float, high: np.ndarray | float) -> np.ndarray:
    """(values − low)/(high − low), 0 where high == low."""
    span = np.asarray(high - low, dtype=np.float64)
    safe = np.where(span == 0, 1.0, span)
    return np.where(span == 0, 0.0, (values - low) / safe)


def _from_bounds(values: np.ndarray, info: _Normalization) -> np.ndarray:
    unit = _to_unit(values, info.lower_bound, info.upper_bound)
    return np.asarray(info.min_values + unit * (info.max_values - info.min_values))


def _like(x: NDArray, values: np.ndarray) -> NDArray:
    """A new float32 NDArray of ``values`` on ``x``'s backend, owned by the dataset (no scope)."""
    out = NDArray._wrap(x.backend.asarray(values.astype(np.float32).reshape(x.shape)), x.backend, "float32")
    REGISTRY.untrack_everywhere(out)
    return out
