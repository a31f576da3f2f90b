"""Optimizer: the lifecycle every optimizer shares, and its state memory.

A Session calls ``before_batch`` (select the variables, make this batch's scalars),
``after_example`` with the batch's gradients (the sums of the per-example gradients: the
Session runs the whole batch at once, where deeplearn.js called this once per example) and
``after_batch``, which returns the variables' new values. Subclasses write only ``_update``, with
NDArrayMath calls, so one rule serves every backend. State arrays (velocities, caches) are kept
across calls and disposed when replaced or by ``dispose``.

A compiled Session step (``deeplearn/compile/``) records the update once and runs it again
without this class's Python: the arrays an update reads are *bound* by name
(``bound_arrays``: the batch's scalars, such as ``c`` = −learning_rate/batch_size, and every
state array) and its results replace them (``set_bound``). So the scalars are named, and
computed by ``_hyperparameters`` from the optimizer's fields before each batch: changing the
learning rate between calls changes what the next step reads, with nothing recompiled.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping, Sequence
from math import isfinite
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

from deeplearn.math.ndarray import NDArray, Scalar

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["Optimizer", "check_hyperparameter"]

_MAX_CONSTANTS = 64


class Optimizer:
    """Base of the optimizers.

    Args:
        learning_rate: the step size.
        specified_variable_list: the variables (Tensors, or their Nodes) to train; None trains
            every variable the cost depends on.
    """

    state_names: ClassVar[tuple[str, ...]] = ()
    """The state arrays each variable has (Momentum: its velocity), each shaped as the variable."""

    varying_scalars: ClassVar[frozenset[str]] = frozenset()
    """The scalars of ``_hyperparameters`` whose value changes every batch (Adam's 1 − βᵗ): made
    anew each batch rather than kept among the constants."""

    def __init__(self, learning_rate: float, specified_variable_list: Sequence[Any] | None = None) -> None:
        self.learning_rate = learning_rate  # checked (the property below)
        self.lock = threading.RLock()  # one training step at a time (Session.train holds it)
        self.specified_variable_list: list[Tensor] | None = (
            None if specified_variable_list is None else [_as_tensor(v) for v in specified_variable_list]
        )
        self.variables: list[Tensor] = []
        self._gradients: dict[Tensor, NDArray] = {}
        self._batch_size = 1
        self._state: dict[tuple[str, Tensor], NDArray] = {}
        self._constants: dict[tuple[Any, str, str], Scalar] = {}  # see _scalar
        self._step: dict[str, Scalar] = {}  # this batch's scalars, by name (before_batch)
        self._varying: dict[str, Scalar] = {}  # the last batch's varying scalars
        self._step_values: dict[str, float] = {}  # what _step was made from, and where
        self._step_backend: Any = None
        self._state_version = 0  # changes whenever a state array is made or replaced
        self._bound: tuple[Any, ...] | None = None  # bound_arrays' last answer, and what it read
        # What the last before_batch was asked (batch size, backend, the variables' list) and the
        # hyperparameter values then: a training loop asks the same every step (see before_batch).
        self._asked: tuple[Any, ...] | None = None

    @property
    def learning_rate(self) -> float:
        """The step size: a finite number ≥ 0, checked when set (a NaN or a negative rate would
        train silently wrong)."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = check_hyperparameter(value, f"{type(self).__name__}", "learning_rate")
        self._asked = None  # the next batch's scalars are made anew

    # -- lifecycle (called by Session.train) ----------------------------------------------
    def before_batch(self, math: NDArrayMath, batch_size: int, runtime_variables: Sequence[Tensor]) -> None:
        """Selects the variables to update and starts a new batch."""
        asked = self._asked
        if (
            asked is not None
            and asked[0] == batch_size
            and asked[1] is math.backend
            and asked[2] is runtime_variables
            and asked[3] == self._hyperparameter_values()
        ):
            # The last batch's call again (a training loop): the same variables and scalars.
            if self._gradients:
                self._gradients = {}
            return
        self._asked = None
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
            self._step_values = {}
        values = {"one": 1.0, "c": -self.learning_rate / batch_size, **self._hyperparameters()}
        steady = (
            self.specified_variable_list is None
            and not self.varying_scalars
            and _tells_its_values(type(self))
        )
        if values == self._step_values and self._step_backend is math.backend and not self.varying_scalars:
            if steady:
                self._asked = (batch_size, math.backend, runtime_variables, self._hyperparameter_values())
            return  # the last batch's scalars, still kept (a step costs as little as it can)
        self._step = {
            name: self._varying_scalar(math, name, value)
            if name in self.varying_scalars
            else self._scalar(math, name, value)
            for name, value in values.items()
        }
        self._step_values, self._step_backend = values, math.backend

    def after_example(self, math: NDArrayMath, gradients: Mapping[Tensor, NDArray]) -> None:
        """Accumulates gradients of the selected variables."""
        for v, g in gradients.items():
            old = self._gradients.get(v)
            self._gradients[v] = g if old is None else math.add(old, g)

    def after_batch(self, math: NDArrayMath, values: Mapping[Tensor, NDArray]) -> dict[Tensor, NDArray]:
        """The new value of every selected variable that has a gradient."""
        c = self._step["c"]
        out = {}
        for v in self.variables:
            g = self._gradients.get(v)
            if g is not None and v in values:
                out[v] = self._update(math, v, values[v], g, c)
        self.finish_batch()
        return out

    def finish_batch(self) -> None:
        """Ends a batch whose update ran (``after_batch``, or a compiled step that ran it)."""
        self._end_batch()
        if self._gradients:  # (a compiled step leaves it empty: no new dict per step)
            self._gradients = {}

    # -- what a compiled step binds (deeplearn/compile/) ----------------------------------
    def ensure_state(self, values: Mapping[Tensor, NDArray]) -> None:
        """Makes every state array of the selected variables (zeros the first time), so that a
        recorded update reads them as inputs; ``values``: the variables' current values."""
        for v in self.variables:
            if v in values:
                for name in self.state_names:
                    self._get_state(name, v, values[v])

    def bound_arrays(self) -> dict[Hashable, NDArray]:
        """The arrays this batch's update reads besides the variables and their gradients:
        ``("scalar", name)`` for each scalar, ``("state", name, variable)`` for each state.
        The same dict while none of them changes (a training loop asks every step): read it,
        do not change it."""
        cache = self._bound
        if (
            cache is not None
            and cache[0] is self._step
            and cache[1] == self._state_version
            and cache[2] == self.variables
        ):
            return cache[3]  # type: ignore[no-any-return]
        out: dict[Hashable, NDArray] = {("scalar", n): s for n, s in self._step.items()}
        for v in self.variables:
            for name in self.state_names:
                state = self._state.get((name, v))
                if state is not None:
                    out[("state", name, v)] = state
        self._bound = (self._step, self._state_version, list(self.variables), out)
        return out

    def state_arrays(self) -> dict[Hashable, NDArray]:
        """The state arrays, keyed as in ``bound_arrays`` (after an update: the new ones)."""
        return {
            ("state", name, v): self._state[(name, v)]
            for v in self.variables
            for name in self.state_names
            if (name, v) in self._state
        }

    def set_bound(self, key: Hashable, value: NDArray) -> None:
        """Makes ``value`` the state array ``key`` (``("state", name, variable)``)."""
        _, name, variable = cast("tuple[str, str, Tensor]", key)
        self._set_state(name, variable, value)

    def dispose(self) -> None:
        """Frees the optimizer's state (velocities, caches)."""
        for array in (*self._state.values(), *self._constants.values(), *self._varying.values()):
            array.dispose()
        self._state.clear()
        self._state_version += 1
        self._constants.clear()
        self._varying.clear()
        self._step, self._step_values = {}, {}
        self._asked = None

    # -- for subclasses --------------------------------------------------------------------
    def _update(
        self, math: NDArrayMath, variable: Tensor, value: NDArray, gradient: NDArray, c: Scalar
    ) -> NDArray:
        """The variable's new value; ``gradient`` is the sum over the batch, c = −lr/batch_size."""
        raise NotImplementedError

    def _hyperparameters(self) -> dict[str, float]:
        """The named scalars this batch's update reads besides ``one`` and ``c`` (computed
        before each batch from the optimizer's fields; see the module docstring)."""
        return {}

    def _hyperparameter_values(self) -> tuple[float, ...]:
        """The fields ``_hyperparameters`` reads besides the learning rate, as they are: the
        same values give the same scalars (``before_batch`` asks every batch)."""
        return ()

    def _end_batch(self) -> None:
        """Per-batch bookkeeping after every variable was updated (Adam's β powers)."""

    def _get_state(self, name: str, variable: Tensor, like: NDArray) -> NDArray:
        """State ``name`` of ``variable``, zeros of ``like``'s shape the first time."""
        state = self._state.get((name, variable))
        if state is None or state.is_disposed:
            state = self._keep(NDArray.zeros_like(like))
            self._state[(name, variable)] = state
            self._state_version += 1
        return state

    def _set_state(self, name: str, variable: Tensor, value: NDArray) -> None:
        """Replaces state ``name`` of ``variable``; the old array is disposed."""
        old = self._state.get((name, variable))
        if old is value:
            return  # updated in place (a captured step)
        self._state[(name, variable)] = self._keep(value)
        self._state_version += 1
        if old is not None and old is not value:
            old.dispose()

    @staticmethod
    def _keep(x: NDArray) -> NDArray:
        from deeplearn.math.scope import REGISTRY

        REGISTRY.untrack_everywhere(x)
        return x

    def _scalar(self, math: NDArrayMath, name: str, value: float) -> Scalar:
        """Scalar ``name`` of value ``value`` on ``math``'s backend, made once and reused by
        later steps: a step's scalars (1, −lr/batch_size, the decay rates) are mostly the same
        every step, and on a GPU each new one is a kernel launch. One array per name, so that a
        compiled step binds each name to its own input. Only ever an op's input."""
        key = (math.backend, name, repr(value))  # repr: -0.0 and 0.0 are different constants
        scalar = self._constants.get(key)
        if scalar is None or scalar.is_disposed:
            scalar = self._constants[key] = Scalar.new(value, math=math)
            self._keep(scalar)
        return scalar

    def _varying_scalar(self, math: NDArrayMath, name: str, value: float) -> Scalar:
        """Scalar ``name`` for this batch alone; the last batch's is disposed."""
        old = self._varying.get(name)
        if old is not None:
            old.dispose()
        scalar = self._varying[name] = Scalar.new(value, math=math)
        self._keep(scalar)
        return scalar

    def _running_average(self, math: NDArrayMath, decay: str, average: NDArray, x: NDArray) -> NDArray:
        """decay·average + (1 − decay)·x, in one kernel (RMSProp's and Adadelta's caches, Adam's
        moments); ``decay`` names a scalar of ``_hyperparameters``, which also gives "1-decay"."""
        return math.scaled_array_add(self._step[decay], average, self._step["1-" + decay], x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


def _tells_its_values(cls: type[Optimizer]) -> bool:
    """Whether ``cls``'s ``_hyperparameter_values`` covers what its ``_hyperparameters`` reads:
    defined where that is, or in a subclass of it (an optimizer of a user's making that defines
    only ``_hyperparameters`` makes its scalars anew every batch)."""
    for klass in cls.__mro__:
        if "_hyperparameter_values" in vars(klass):
            return True
        if "_hyperparameters" in vars(klass):
            return False
    return True


def check_hyperparameter(value: Any, where: str, name: str, below_one: bool = False) -> float:
    """``value`` as a float after checking it is a finite real number ≥ 0 (and < 1 when
    ``below_one``: a decay rate of 1 divides by 1 − rate = 0); ValueError/TypeError otherwise.

    Example:
        >>> check_hyperparameter(0.9, "MomentumOptimizer", "momentum")
        0.9
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: {name} must be a real number; got {name}={value!r}.")
    number = float(value)
    bound = "in [0, 1)" if below_one else "finite and >= 0"
    if not isfinite(number) or number < 0 or (below_one and number >= 1):
        raise ValueError(f"{where}: {name} must be {bound}; got {name}={value!r}.")
    return number


def _as_tensor(v: Any) -> Tensor:
    from deeplearn.graph.graph import Node, Tensor

    if isinstance(v, Node):
        return v.output
    if isinstance(v, Tensor):
        return v
    raise TypeError(f"Optimizer: specified_variable_list must hold variable Tensors or Nodes; got {v!r}.")
