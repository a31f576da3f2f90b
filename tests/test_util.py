"""deeplearn.js's ``util`` helpers, reachable as ``dl.util``."""

from __future__ import annotations

import pytest

import deeplearn as dl


def test_util_helpers() -> None:
    values = list(range(20))
    dl.util.shuffle(values, seed=3)
    assert sorted(values) == list(range(20)) and values != list(range(20))
    assert sorted(dl.util.create_shuffled_indices(5, seed=0).tolist()) == [0, 1, 2, 3, 4]
    assert dl.util.clamp(0, -2, 3) == 0 and dl.util.clamp(0, 2, 3) == 2
    assert dl.util.dist_squared([1, 2], [4, 6]) == 25.0
    assert dl.util.flatten([[1, [2]], (3,)]) == [1, 2, 3]
    assert dl.util.size_to_squarish_shape(9) == (3, 3)
    assert dl.util.arrays_equal([1, 2], [1, 2]) and not dl.util.arrays_equal([1], [1, 2])
    with pytest.raises(dl.ShapeError, match=r"shapes \(1, 2\) and \(2, 1\) must match"):
        dl.util.assert_shapes_match([1, 2], [2, 1])
    with pytest.raises(dl.ShapeError, match="dist_squared"):
        dl.util.dist_squared([1], [1, 2])
    assert dl.conv_util.compute_default_pad([5, 5, 1], 3, 1) == 1
