"""AdamaxOptimizer: Adam with the infinity norm in place of the root mean square."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deeplearn.graph.optimizers.optimizer import Optimizer, check_hyperparameter
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

    def __init__(
        self,
        learning_rate: float,
        beta1: float,
        beta2: float,
        specified_variable_list: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(learning_rate, specified_variable_list)
        self.beta1 = check_hyperparameter(beta1, "AdamaxOptimizer", "beta1", below_one=True)
        self.beta2 = check_hyperparameter(beta2, "AdamaxOptimizer", "beta2", below_one=True)
        self.acc_beta1 = self.beta1  # β1ᵗ for the current batch t

    state_names = ("m", "u")

    varying_scalars = frozenset({"scale"})

    def _hyperparameters(self) -> dict[str, float]:
        # scale = c/(1 − β1ᵗ), computed on the host (reading c back would stall a GPU); it
        # changes every batch (t counts the batches, ``_end_batch``)
        return {
            "beta1": self.beta1,
            "1-beta1": 1.0 - self.beta1,
            "beta2": self.beta2,
            "epsilon": EPSILON,
            "scale": -self.learning_rate / self._batch_size / (1.0 - self.acc_beta1),
        }

    def _update(
        self, math: NDArrayMath, variable: Tensor, value: NDArray, gradient: NDArray, c: Scalar
    ) -> NDArray:
        s = self._step
        m = self._running_average(math, "beta1", self._get_state("m", variable, value), gradient)
        u = math.maximum(math.multiply(s["beta2"], self._get_state("u", variable, value)), math.abs(gradient))
        self._set_state("m", variable, m)
        self._set_state("u", variable, u)
        step = math.divide(m, math.add(u, s["epsilon"]))
        return math.scaled_array_add(s["one"], value, s["scale"], step)

    def _end_batch(self) -> None:
        self.acc_beta1 *= self.beta1
