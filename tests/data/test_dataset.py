"""InMemoryDataset: statistics and per-dimension normalisation (and its removal)."""

from __future__ import annotations

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import DataStats, InMemoryDataset, NDArray


class _Fixed(InMemoryDataset):
    def __init__(self, examples: list[list[list[float]]], shape: tuple[int, ...]) -> None:
        super().__init__([shape])
        self._examples = examples
        self._shape = shape

    def fetch_data(self) -> None:
        self.dataset = [[NDArray.make(self._shape, e) for e in self._examples]]


EXAMPLES = [[1, 2, 10, -1, -2, 0.75], [2, 3, 20, -2, 2, 0.5], [3, 4, 30, -3, -4, 0], [4, 5, 40, -4, 4, 1]]


def _values(d: InMemoryDataset) -> np.ndarray:
    return np.stack([x.get_values() for x in d.get_data()[0]])  # type: ignore[index]


def test_stats_and_shapes() -> None:
    d = _Fixed(EXAMPLES, (2, 3))
    with pytest.raises(ValueError, match="call fetch_data\\(\\) first"):
        d.get_stats()
    d.fetch_data()
    assert d.get_data_shape(0) == (2, 3)
    assert d.get_stats() == [DataStats(4, -4.0, 40.0, (2, 3))]  # exact, over every example


def test_normalize_renormalize_and_remove(cpu_math: dl.NDArrayMath) -> None:
    d = _Fixed(EXAMPLES, (2, 3))
    d.fetch_data()
    original = _values(d)
    with cpu_math.scope():  # the dataset's arrays belong to the dataset, not to this scope
        d.normalize_within_bounds(0, 0, 1)
    unit = (original - original.min(0)) / (original.max(0) - original.min(0))
    np.testing.assert_allclose(_values(d), unit, atol=1e-6)
    d.normalize_within_bounds(0, -1, 1)
    np.testing.assert_allclose(_values(d), unit * 2 - 1, atol=1e-6)
    examples = [NDArray.make([2, 3], v) for v in (unit * 2 - 1)[:2]]
    np.testing.assert_allclose(np.stack([x.get_values() for x in d.unnormalize_examples(examples, 0)]),
                               original[:2], atol=1e-5)
    d.remove_normalization(0)
    np.testing.assert_allclose(_values(d), original, atol=1e-5)
    assert d.unnormalize_examples(examples, 0) == examples  # not normalised: as given


def test_constant_dimensions_map_to_the_lower_bound() -> None:
    d = _Fixed([[5, 1], [5, 3]], (2,))
    d.fetch_data()
    d.normalize_within_bounds(0, -1, 1)
    np.testing.assert_allclose(_values(d), [[-1, -1], [-1, 1]])
    d.remove_normalization(0)
    np.testing.assert_allclose(_values(d), [[5, 1], [5, 3]])


def test_bad_index_and_dispose() -> None:
    d = _Fixed(EXAMPLES, (2, 3))
    d.fetch_data()
    with pytest.raises(IndexError, match="data_index must be in \\[0, 1\\)"):
        d.normalize_within_bounds(1, 0, 1)
    arrays = d.get_data()[0]  # type: ignore[index]
    d.dispose()
    assert d.get_data() is None and all(a.is_disposed for a in arrays)


@pytest.mark.parametrize("data_index", [-1, 1, True, 0.0, "0", None])
def test_every_method_checks_data_index(data_index: object) -> None:
    """-1 picked the last data index, True the second and 0.0 failed deep inside; an index
    given to unnormalize_examples was not looked at."""
    d = _Fixed(EXAMPLES, (2, 3))
    d.fetch_data()
    before = _values(d)
    kind = IndexError if isinstance(data_index, int) and not isinstance(data_index, bool) else ValueError
    calls = {"normalize_within_bounds": lambda: d.normalize_within_bounds(data_index, 0, 1),  # type: ignore[arg-type]
             "remove_normalization": lambda: d.remove_normalization(data_index),  # type: ignore[arg-type]
             "unnormalize_examples": lambda: d.unnormalize_examples([], data_index),  # type: ignore[arg-type]
             "get_data_shape": lambda: d.get_data_shape(data_index)}  # type: ignore[arg-type]
    for name, call in calls.items():
        with pytest.raises(kind, match=f"InMemoryDataset.{name}: data_index must be .*in \\[0, 1\\); "
                                       f"got data_index={data_index!r}"):
            call()
    np.testing.assert_array_equal(_values(d), before)
    assert d.get_data_shape(np.int64(0)) == (2, 3)


@pytest.mark.parametrize("bound", [float("nan"), float("inf"), True, "1", None])
def test_bounds_must_be_finite_numbers(bound: object) -> None:
    d = _Fixed(EXAMPLES, (2, 3))
    d.fetch_data()
    before = _values(d)
    with pytest.raises(ValueError, match=f"normalize_within_bounds: upper_bound must be a finite number; "
                                         f"got upper_bound={bound!r}"):
        d.normalize_within_bounds(0, 0, bound)  # type: ignore[arg-type]
    np.testing.assert_array_equal(_values(d), before)
    d.normalize_within_bounds(0, 0, 1)  # and nothing was recorded: a first normalisation still
    assert _values(d).min() == 0 and _values(d).max() == 1


@pytest.mark.parametrize("shape", [[2.5], [-1], [True, 2], ["2"]])
def test_data_shapes_are_sizes(shape: list[object]) -> None:
    with pytest.raises(ValueError, match="each of data_shapes must be a sequence of ints >= 0"):
        _Fixed(EXAMPLES, tuple(shape))  # type: ignore[arg-type]
