"""Initializers: how ``layers.dense`` (or you) fill a new variable.

``initialize(weights_shape, input_units, output_units)`` returns a new NDArray on the default
math's backend. Random initializers take an optional ``seed`` (not in deeplearn.js) so that
results can be reproduced; each call draws fresh values from the initializer's generator.
"""

from __future__ import annotations

import math as pymath
from collections.abc import Sequence
from typing import Literal

import numpy as np

from deeplearn.math.ndarray import NDArray

__all__ = [
    "ConstantInitializer",
    "Initializer",
    "NDArrayInitializer",
    "OnesInitializer",
    "RandomNormalInitializer",
    "RandomTruncatedNormalInitializer",
    "RandomUniformInitializer",
    "VarianceScalingInitializer",
    "ZerosInitializer",
]


class Initializer:
    """Makes the initial value of a variable."""

    def initialize(self, weights_shape: Sequence[int], input_units: int, output_units: int) -> NDArray:
        raise NotImplementedError


class _Seeded(Initializer):
    def __init__(self, seed: int | None) -> None:
        self._rng = np.random.default_rng(seed)

    def _next_seed(self) -> int:
        return int(self._rng.integers(0, 2**63 - 1))


class VarianceScalingInitializer(_Seeded):
    """Random values of variance scale/n, where n is the fan-in, the fan-out or their mean.

    distribution 'normal': a normal of standard deviation √(scale/n) truncated at 2σ;
    'uniform': uniform on [−limit, limit) with limit = √(3·scale/n). deeplearn.js sampled
    'uniform' on [0, limit), one-sided (docs/design.md §4).

    Example:
        >>> w = dl.VarianceScalingInitializer(distribution="uniform", seed=0).initialize([100, 10], 100, 10)
        >>> v = w.get_values(); bool(v.min() < 0 < v.max() and abs(v).max() < (3 / 100) ** 0.5)
        True
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: Literal["fan_in", "fan_out", "fan_avg"] = "fan_in",
        distribution: Literal["normal", "uniform"] = "normal",
        seed: int | None = None,
    ) -> None:
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(
                f"VarianceScalingInitializer: mode must be 'fan_in', 'fan_out' or 'fan_avg'; got {mode!r}."
            )
        if distribution not in ("normal", "uniform"):
            raise ValueError(
                f"VarianceScalingInitializer: distribution must be 'normal' or 'uniform'; got {distribution!r}."
            )
        super().__init__(seed)
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def initialize(self, weights_shape: Sequence[int], input_units: int, output_units: int) -> NDArray:
        n = {"fan_in": input_units, "fan_out": output_units, "fan_avg": (input_units + output_units) / 2}[
            self.mode
        ]
        if self.distribution == "normal":
            return NDArray.rand_truncated_normal(
                weights_shape, 0.0, pymath.sqrt(self.scale / n), seed=self._next_seed()
            )
        limit = pymath.sqrt(3 * self.scale / n)
        # deeplearn.js: randUniform(shape, 0, limit), one-sided; the variance-scaling rule
        # (and TensorFlow's) is symmetric.
        return NDArray.rand_uniform(weights_shape, -limit, limit, seed=self._next_seed())


class ZerosInitializer(Initializer):
    """Zeros (the default bias of ``layers.dense``).

    Example:
        >>> dl.ZerosInitializer().initialize([2], 3, 2).get_values()
        array([0., 0.], dtype=float32)
    """

    def initialize(self, weights_shape: Sequence[int], input_units: int, output_units: int) -> NDArray:
        return NDArray.zeros(weights_shape)


class OnesInitializer(Initializer):
    """Ones.

    Example:
        >>> dl.OnesInitializer().initialize([2], 3, 2).get_values()
        array([1., 1.], dtype=float32)
    """

    def initialize(self, weights_shape: Sequence[int], input_units: int, output_units: int) -> NDArray:
        return NDArray.ones(weights_shape)


class ConstantInitializer(Initializer):
    """Every element ``value``.

    Example:
        >>> dl.ConstantInitializer(0.5).initialize([2], 3, 2).get_values()
        array([0.5, 0.5], dtype=float32)
    """

    def __init__(self, value: float = 0.0) -> None:
        self.value = float(value)

    def initialize(self, weights_shape: Sequence[int], input_units: int, output_units: int) -> NDArray:
        out = NDArray.zeros(weights_shape)
        out.fill(self.value)
        return out


class NDArrayInitializer(Initializer):
    """The given NDArray itself (its shape must be the weights' shape).

    Example:
        >>> a = Array1D.new([1, 2])
        >>> dl.NDArrayInitializer(a).initialize([2], 3, 2) is a
        True
    """

    def __init__(self, ndarray: NDArray) -> None:
        self.ndarray = ndarray

    def initialize(self, weights_shape: Sequence[int], input_units: int, output_units: int) -> NDArray:
        if tuple(weights_shape) != self.ndarray.shape:
            raise ValueError(
                f"NDArrayInitializer.initialize: the array must have the weights' shape; got "
                f"weights_shape={tuple(weights_shape)} and ndarray.shape={self.ndarray.shape}."
            )
        return self.ndarray


class RandomNormalInitializer(_Seeded):
    """Samples of N(mean, stdev²).

    Example:
        >>> dl.RandomNormalInitializer(seed=0).initialize([3], 3, 1).shape
        (3,)
    """

    def __init__(self, mean: float = 0.0, stdev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean, self.stdev = float(mean), float(stdev)

    def initialize(self, weights_shape: Sequence[int], input_units: int, output_units: int) -> NDArray:
        return NDArray.rand_normal(weights_shape, self.mean, self.stdev, seed=self._next_seed())


class RandomTruncatedNormalInitializer(_Seeded):
    """Samples of N(mean, stdev²) redrawn until within mean ± 2·stdev.

    Example:
        >>> v = dl.RandomTruncatedNormalInitializer(0, 1, seed=0).initialize([1000], 1, 1).get_values()
        >>> bool(abs(v).max() <= 2)
        True
    """

    def __init__(self, mean: float = 0.0, stdev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean, self.stdev = float(mean), float(stdev)

    def initialize(self, weights_shape: Sequence[int], input_units: int, output_units: int) -> NDArray:
        return NDArray.rand_truncated_normal(weights_shape, self.mean, self.stdev, seed=self._next_seed())


class RandomUniformInitializer(_Seeded):
    """Samples of the uniform distribution on [minval, maxval).

    Example:
        >>> v = dl.RandomUniformInitializer(-1, 1, seed=0).initialize([1000], 1, 1).get_values()
        >>> bool(-1 <= v.min() and v.max() < 1)
        True
    """

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def initialize(self, weights_shape: Sequence[int], input_units: int, output_units: int) -> NDArray:
        return NDArray.rand_uniform(weights_shape, self.minval, self.maxval, seed=self._next_seed())
