"""Initializers (reference §10): distributions, fan modes, seeds, and the symmetric uniform
variance scaling (deeplearn.js sampled [0, limit))."""

from __future__ import annotations

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import NDArray


@pytest.mark.parametrize(("mode", "n"), [("fan_in", 200), ("fan_out", 50), ("fan_avg", 125)])
def test_variance_scaling_normal(mode: str, n: int) -> None:
    w = dl.VarianceScalingInitializer(2.0, mode, "normal", seed=0).initialize([200, 50], 200, 50).get_values()
    sigma = np.sqrt(2.0 / n)
    assert np.abs(w).max() <= 2 * sigma * (1 + 1e-6)  # truncated at two standard deviations
    # a normal truncated at ±2σ has standard deviation 0.880σ
    assert w.std() == pytest.approx(0.880 * sigma, rel=0.03)
    assert abs(w.mean()) < 0.02 * sigma * 10


def test_variance_scaling_uniform_is_symmetric() -> None:
    w = dl.VarianceScalingInitializer(1.0, "fan_in", "uniform", seed=0).initialize([300, 100], 300, 100).get_values()
    limit = np.sqrt(3.0 / 300)
    assert -limit <= w.min() < -0.9 * limit and 0.9 * limit < w.max() < limit
    assert w.std() == pytest.approx(np.sqrt(1.0 / 300), rel=0.02)  # variance scale/n


def test_simple_initializers() -> None:
    np.testing.assert_array_equal(dl.ZerosInitializer().initialize([2, 2], 2, 2).get_values(), np.zeros(4))
    np.testing.assert_array_equal(dl.OnesInitializer().initialize([3], 2, 3).get_values(), np.ones(3))
    np.testing.assert_array_equal(dl.ConstantInitializer(7).initialize([2], 1, 2).get_values(), [7, 7])
    a = NDArray.make([2], [1, 2])
    assert dl.NDArrayInitializer(a).initialize([2], 1, 2) is a
    with pytest.raises(ValueError, match="the array must have the weights' shape"):
        dl.NDArrayInitializer(a).initialize([3], 1, 3)


def test_random_initializers_and_seeds() -> None:
    normal = dl.RandomNormalInitializer(1.0, 0.5, seed=3).initialize([4000], 1, 1).get_values()
    assert normal.mean() == pytest.approx(1.0, abs=0.05) and normal.std() == pytest.approx(0.5, rel=0.05)
    truncated = dl.RandomTruncatedNormalInitializer(0.0, 1.0, seed=3).initialize([4000], 1, 1).get_values()
    assert np.abs(truncated).max() <= 2.0
    uniform = dl.RandomUniformInitializer(-2, 3, seed=3).initialize([4000], 1, 1).get_values()
    assert -2 <= uniform.min() and uniform.max() < 3 and uniform.mean() == pytest.approx(0.5, abs=0.1)
    # a seed repeats a sequence of calls; successive calls differ
    a, b = dl.RandomNormalInitializer(seed=1), dl.RandomNormalInitializer(seed=1)
    first = a.initialize([5], 1, 1).get_values()
    np.testing.assert_array_equal(first, b.initialize([5], 1, 1).get_values())
    assert not np.array_equal(first, a.initialize([5], 1, 1).get_values())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        dl.VarianceScalingInitializer(mode="fan_sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distribution must be"):
        dl.VarianceScalingInitializer(distribution="cauchy")  # type: ignore[arg-type]
