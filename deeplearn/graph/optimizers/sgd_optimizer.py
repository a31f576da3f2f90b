"""SGDOptimizer: w ← w − learning_rate · (mean gradient over the batch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deeplearn.graph.optimizers.optimizer import Optimizer

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.math.ndarray import NDArray, Scalar
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["SGDOptimizer"]


class SGDOptimizer(Optimizer):
    """Stochastic gradient descent: w = w + c·g, c = −learning_rate/batch_size, g the summed
    gradient of the batch.

    Example:
        >>> dl.SGDOptimizer(0.01).learning_rate
        0.01
    """

    def set_learning_rate(self, learning_rate: float) -> None:
        self.learning_rate = learning_rate  # checked by the property

    def _update(
        self, math: NDArrayMath, variable: Tensor, value: NDArray, gradient: NDArray, c: Scalar
    ) -> NDArray:
        return math.scaled_array_add(self._step["one"], value, c, gradient)
