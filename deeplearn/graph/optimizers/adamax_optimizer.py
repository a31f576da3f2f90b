"""AdamaxOptimizer: Adam with the infinity norm in place of the root mean square."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deeplearn.graph.optimizers.optimizer import Optimizer
from deeplearn.math.ndarray import Scalar

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["AdamaxOptimizer"]

EPSILON = 1e-8


class AdamaxOptimizer(Optimizer):
    """m = β1·m + (1 − β1)·g; u = max(β2·u, |g|); w = w + (c/(1 − β1ᵗ))·m/(u + 1e-8).

    Example:
        >>> AdamaxOptimizer(0.1, 0.9, 0.999).beta1
        0.9
    """

    def __init__(self, learning_rate: float, beta1: float, beta2: float,
                 specified_variable_list: Sequence[Any] | None = None) -> None:
        super().__init__(learning_rate, specified_variable_list)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.acc_beta1 = self.beta1  # β1ᵗ for the current batch t

    def _update(self, math: NDArrayMath, variable: Tensor, value: NDArray, gradient: NDArray,
                c: Scalar) -> NDArray:
        s = self._scalar
        m = self._running_average(math, self.beta1, self._get_state("m", variable, value), gradient)
        u = math.maximum(math.multiply(s(math, self.beta2), self._get_state("u", variable, value)),
                         math.abs(gradient))
        self._set_state("m", variable, m)
        self._set_state("u", variable, u)
        step = math.divide(m, math.add(u, s(math, EPSILON)))
        # c/(1 − β1ᵗ), computed on the host (reading c back would stall a GPU); it changes
        # every batch: a new Scalar each time, not one of the kept constants
        scale = Scalar.new(-self.learning_rate / self._batch_size / (1.0 - self.acc_beta1), math=math)
        return math.scaled_array_add(s(math, 1.0), value, scale, step)

    def _end_batch(self) -> None:
        self.acc_beta1 *= self.beta1
