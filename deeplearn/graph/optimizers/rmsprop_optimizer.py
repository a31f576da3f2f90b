"""RMSPropOptimizer: steps scaled by a running average of squared gradients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deeplearn.graph.optimizers.optimizer import Optimizer, check_hyperparameter

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.math.ndarray import NDArray, Scalar
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["RMSPropOptimizer"]

EPSILON = 1e-6


class RMSPropOptimizer(Optimizer):
    """s = γ·s + (1 − γ)·g²; w = w + c·g/(√s + 1e-6) (ε outside the root, as deeplearn.js).

    Example:
        >>> RMSPropOptimizer(0.1, 0.8).gamma
        0.8
    """

    def __init__(
        self, learning_rate: float, gamma: float, specified_variable_list: Sequence[Any] | None = None
    ) -> None:
        super().__init__(learning_rate, specified_variable_list)
        self.gamma = check_hyperparameter(gamma, "RMSPropOptimizer", "gamma", below_one=True)

    state_names = ("cache",)

    def _hyperparameter_values(self) -> tuple[float, ...]:
        return (self.gamma,)

    def _hyperparameters(self) -> dict[str, float]:
        return {"gamma": self.gamma, "1-gamma": 1.0 - self.gamma, "epsilon": EPSILON}

    def _update(
        self, math: NDArrayMath, variable: Tensor, value: NDArray, gradient: NDArray, c: Scalar
    ) -> NDArray:
        cache = self._running_average(
            math, "gamma", self._get_state("cache", variable, value), math.square(gradient)
        )
        self._set_state("cache", variable, cache)
        step = math.divide(gradient, math.add(math.sqrt(cache), self._step["epsilon"]))
        return math.scaled_array_add(self._step["one"], value, c, step)
