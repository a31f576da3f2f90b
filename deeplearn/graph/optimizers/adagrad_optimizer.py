"""AdagradOptimizer: steps scaled by the sum of all squared gradients so far."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deeplearn.graph.optimizers.optimizer import Optimizer

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.math.ndarray import NDArray, Scalar
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["AdagradOptimizer"]

EPSILON = 1e-6


class AdagradOptimizer(Optimizer):
    """s = s + g²; w = w + c·g/(√s + 1e-6) (ε outside the root, as deeplearn.js).

    Example:
        >>> AdagradOptimizer(0.1).learning_rate
        0.1
    """

    state_names = ("cache",)

    def _hyperparameter_values(self) -> tuple[float, ...]:
        return ()  # (epsilon is a constant)

    def _hyperparameters(self) -> dict[str, float]:
        return {"epsilon": EPSILON}

    def _update(
        self, math: NDArrayMath, variable: Tensor, value: NDArray, gradient: NDArray, c: Scalar
    ) -> NDArray:
        cache = math.add(self._get_state("cache", variable, value), math.square(gradient))
        self._set_state("cache", variable, cache)
        step = math.divide(gradient, math.add(math.sqrt(cache), self._step["epsilon"]))
        return math.scaled_array_add(self._step["one"], value, c, step)
