"""AdamOptimizer: bias-corrected running averages of the gradient and its square."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deeplearn.graph.optimizers.optimizer import Optimizer, check_hyperparameter
from deeplearn.math.ndarray import Scalar

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["AdamOptimizer"]

EPSILON = 1e-8


class AdamOptimizer(Optimizer):
    """m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²; w = w + c·m̂/(√v̂ + 1e-8) with
    m̂ = m/(1 − β1ᵗ), v̂ = v/(1 − β2ᵗ) at batch t = 1, 2, ...

    Example:
        >>> AdamOptimizer(0.1, 0.9, 0.999).beta2
        0.999
    """

    def __init__(
        self,
        learning_rate: float,
        beta1: float,
        beta2: float,
        specified_variable_list: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(learning_rate, specified_variable_list)
        self.beta1 = check_hyperparameter(beta1, "AdamOptimizer", "beta1", below_one=True)
        self.beta2 = check_hyperparameter(beta2, "AdamOptimizer", "beta2", below_one=True)
        self.acc_beta1 = self.beta1  # β1ᵗ for the current batch t (deeplearn.js accBeta1)
        self.acc_beta2 = self.beta2

    state_names = ("m", "v")

    varying_scalars = frozenset({"1-acc_beta1", "1-acc_beta2"})

    def _hyperparameters(self) -> dict[str, float]:
        # 1 − βᵗ changes every batch (t counts the batches, ``_end_batch``)
        return {
            "beta1": self.beta1,
            "1-beta1": 1.0 - self.beta1,
            "beta2": self.beta2,
            "1-beta2": 1.0 - self.beta2,
            "epsilon": EPSILON,
            "1-acc_beta1": 1.0 - self.acc_beta1,
            "1-acc_beta2": 1.0 - self.acc_beta2,
        }

    def _update(
        self, math: NDArrayMath, variable: Tensor, value: NDArray, gradient: NDArray, c: Scalar
    ) -> NDArray:
        s = self._step
        m = self._running_average(math, "beta1", self._get_state("m", variable, value), gradient)
        v = self._running_average(math, "beta2", self._get_state("v", variable, value), math.square(gradient))
        self._set_state("m", variable, m)
        self._set_state("v", variable, v)
        m_hat = math.divide(m, s["1-acc_beta1"])
        v_hat = math.divide(v, s["1-acc_beta2"])
        step = math.divide(m_hat, math.add(math.sqrt(v_hat), s["epsilon"]))
        return math.scaled_array_add(s["one"], value, c, step)

    def _end_batch(self) -> None:
        self.acc_beta1 *= self.beta1
        self.acc_beta2 *= self.beta2
