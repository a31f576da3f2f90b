"""AdadeltaOptimizer: steps scaled by the ratio of running averages of updates and gradients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deeplearn.graph.optimizers.optimizer import Optimizer, check_hyperparameter

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.math.ndarray import NDArray, Scalar
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["AdadeltaOptimizer"]

EPSILON = 1e-6


class AdadeltaOptimizer(Optimizer):
    """Zeiler's Adadelta: s = γ·s + (1 − γ)·g²; u = √(d + ε)/√(s + ε)·g with the *new* s;
    w = w + c·u; d = γ·d + (1 − γ)·u² (ε = 1e-6; the learning rate scales the step).

    Example:
        >>> AdadeltaOptimizer(0.1, 0.8).gamma
        0.8
    """

    def __init__(
        self, learning_rate: float, gamma: float, specified_variable_list: Sequence[Any] | None = None
    ) -> None:
        super().__init__(learning_rate, specified_variable_list)
        self.gamma = check_hyperparameter(gamma, "AdadeltaOptimizer", "gamma", below_one=True)

    state_names = ("cache", "updates")

    def _hyperparameter_values(self) -> tuple[float, ...]:
        return (self.gamma,)

    def _hyperparameters(self) -> dict[str, float]:
        return {"gamma": self.gamma, "1-gamma": 1.0 - self.gamma, "epsilon": EPSILON}

    def _update(
        self, math: NDArrayMath, variable: Tensor, value: NDArray, gradient: NDArray, c: Scalar
    ) -> NDArray:
        eps = self._step["epsilon"]
        old_cache = self._get_state("cache", variable, value)
        old_updates = self._get_state("updates", variable, value)
        cache = self._running_average(math, "gamma", old_cache, math.square(gradient))
        # Departure (docs/differences.md): deeplearn.js divided by the cache from *before* this
        # batch, which keeps the ratio at exactly 1 from zero state, i.e. plain SGD. Zeiler's
        # Adadelta divides by the new one. conformance: optimizer.adadelta.two_steps (skipped)
        ratio = math.divide(math.sqrt(math.add(old_updates, eps)), math.sqrt(math.add(cache, eps)))
        updates = math.multiply(ratio, gradient)
        new_value = math.scaled_array_add(c, updates, self._step["one"], value)
        self._set_state("cache", variable, cache)
        updates_average = self._running_average(math, "gamma", old_updates, math.square(updates))
        self._set_state("updates", variable, updates_average)
        return new_value
