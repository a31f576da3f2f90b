"""Optimizer: the lifecycle every optimizer shares, and its state memory.

A Session calls ``before_batch`` (select the variables, c = −learning_rate/batch_size),
``after_example`` with the batch's gradients (the sums of the per-example gradients: the
Session runs the whole batch at once, where deeplearn.js called this once per example) and
``after_batch``, which returns the variables' new values. Subclasses write only ``_update``, with
NDArrayMath calls, so one rule serves every backend. State arrays (velocities, caches) are kept
across calls and disposed when replaced or by ``dispose``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deeplearn.math.ndarray import NDArray, Scalar

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["Optimizer"]

_MAX_CONSTANTS = 64


class Optimizer:
    """Base of the optimizers.

    Args:
        learning_rate: the step size.
        specified_variable_list: the variables (Tensors, or their Nodes) to train; None trains
            every variable the cost depends on.
    """

    def __init__(self, learning_rate: float, specified_variable_list: Sequence[Any] | None = None) -> None:
        self.learning_rate = float(learning_rate)
        self.specified_variable_list: list[Tensor] | None = (
            None if specified_variable_list is None else [_as_tensor(v) for v in specified_variable_list]
        )
        self.variables: list[Tensor] = []
        self._gradients: dict[Tensor, NDArray] = {}
        self._batch_size = 1
        self._state: dict[tuple[str, Tensor], NDArray] = {}
        self._constants: dict[tuple[Any, str], Scalar] = {}  # see _scalar

    # -- lifecycle (called by Session.train) ----------------------------------------------
    def before_batch(self, math: NDArrayMath, batch_size: int, runtime_variables: Sequence[Tensor]) -> None:
        """Selects the variables to update and starts a new batch."""
        if self.specified_variable_list is None:
            self.variables = list(runtime_variables)
        else:
            wanted = set(self.specified_variable_list)
            self.variables = [v for v in runtime_variables if v in wanted]
        self._batch_size = batch_size
        self._gradients = {}
        if len(self._constants) > _MAX_CONSTANTS:  # a learning rate changed every step
            for scalar in self._constants.values():
                scalar.dispose()
            self._constants.clear()

    def after_example(self, math: NDArrayMath, gradients: Mapping[Tensor, NDArray]) -> None:
        """Accumulates gradients of the selected variables."""
        for v, g in gradients.items():
            old = self._gradients.get(v)
            self._gradients[v] = g if old is None else math.add(old, g)

    def after_batch(self, math: NDArrayMath, values: Mapping[Tensor, NDArray]) -> dict[Tensor, NDArray]:
        """The new value of every selected variable that has a gradient."""
        c = self._scalar(math, -self.learning_rate / self._batch_size)
        out = {}
        for v in self.variables:
            g = self._gradients.get(v)
            if g is not None and v in values:
                out[v] = self._update(math, v, values[v], g, c)
        self._end_batch()
        self._gradients = {}
        return out

    def dispose(self) -> None:
        """Frees the optimizer's state (velocities, caches)."""
        for array in (*self._state.values(), *self._constants.values()):
            array.dispose()
        self._state.clear()
        self._constants.clear()

    # -- for subclasses --------------------------------------------------------------------
    def _update(self, math: NDArrayMath, variable: Tensor, value: NDArray, gradient: NDArray,
                c: Scalar) -> NDArray:
        """The variable's new value; ``gradient`` is the sum over the batch, c = −lr/batch_size."""
        raise NotImplementedError

    def _end_batch(self) -> None:
        """Per-batch bookkeeping after every variable was updated (Adam's β powers)."""

    def _get_state(self, name: str, variable: Tensor, like: NDArray) -> NDArray:
        """State ``name`` of ``variable``, zeros of ``like``'s shape the first time."""
        state = self._state.get((name, variable))
        if state is None or state.is_disposed:
            state = self._keep(NDArray.zeros_like(like))
            self._state[(name, variable)] = state
        return state

    def _set_state(self, name: str, variable: Tensor, value: NDArray) -> None:
        """Replaces state ``name`` of ``variable``; the old array is disposed."""
        old = self._state.get((name, variable))
        self._state[(name, variable)] = self._keep(value)
        if old is not None and old is not value:
            old.dispose()

    @staticmethod
    def _keep(x: NDArray) -> NDArray:
        from deeplearn.math.scope import REGISTRY

        REGISTRY.untrack_everywhere(x)
        return x

    def _scalar(self, math: NDArrayMath, value: float) -> Scalar:
        """``value`` as a Scalar on ``math``'s backend, made once and reused by later steps:
        a step's constants (1, −lr/batch_size, the decay rates) are the same every step, and
        on a GPU each new one is a kernel launch. Only ever an op's input, never handed out."""
        key = (math.backend, repr(value))  # repr: -0.0 and 0.0 are different constants
        scalar = self._constants.get(key)
        if scalar is None or scalar.is_disposed:
            scalar = self._constants[key] = Scalar.new(value, math=math)
            self._keep(scalar)
        return scalar

    def _running_average(self, math: NDArrayMath, decay: float, average: NDArray, x: NDArray) -> NDArray:
        """decay·average + (1 − decay)·x, in one kernel (RMSProp's and Adadelta's caches, Adam's
        moments)."""
        return math.scaled_array_add(self._scalar(math, decay), average, self._scalar(math, 1.0 - decay), x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


def _as_tensor(v: Any) -> Tensor:
    from deeplearn.graph.graph import Node, Tensor

    if isinstance(v, Node):
        return v.output
    if isinstance(v, Tensor):
        return v
    raise TypeError(f"Optimizer: specified_variable_list must hold variable Tensors or Nodes; got {v!r}.")
