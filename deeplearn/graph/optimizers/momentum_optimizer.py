"""MomentumOptimizer: a velocity accumulates gradients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deeplearn.graph.optimizers.optimizer import Optimizer, check_hyperparameter

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.math.ndarray import NDArray, Scalar
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["MomentumOptimizer"]


class MomentumOptimizer(Optimizer):
    """v = momentum·v + g; w = w + c·v (v starts at 0; c = −learning_rate/batch_size).

    Example:
        >>> MomentumOptimizer(0.1, 0.5).momentum
        0.5
    """

    def __init__(
        self, learning_rate: float, momentum: float, specified_variable_list: Sequence[Any] | None = None
    ) -> None:
        super().__init__(learning_rate, specified_variable_list)
        self.momentum = check_hyperparameter(momentum, "MomentumOptimizer", "momentum")

    state_names = ("velocity",)

    def _hyperparameter_values(self) -> tuple[float, ...]:
        return (self.momentum,)

    def _hyperparameters(self) -> dict[str, float]:
        return {"momentum": self.momentum}

    def set_momentum(self, momentum: float) -> None:
        self.momentum = check_hyperparameter(momentum, "MomentumOptimizer.set_momentum", "momentum")

    def _update(
        self, math: NDArrayMath, variable: Tensor, value: NDArray, gradient: NDArray, c: Scalar
    ) -> NDArray:
        one = self._step["one"]
        velocity = self._get_state("velocity", variable, value)
        velocity = math.scaled_array_add(self._step["momentum"], velocity, one, gradient)
        self._set_state("velocity", variable, velocity)
        return math.scaled_array_add(one, value, c, velocity)
