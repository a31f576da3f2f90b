"""What a run of a Program hands out: its slots as NDArrays, made when first read.

A Program run returns backend arrays, one per slot. A Session hands out only a few of them (the
cost, the variables' new values) and keeps the rest for inspection (its activation and
gradient maps), where most are never read. A ``Materializer`` makes the NDArray of a slot when
someone asks (``Pending``), one storage per slot as the eager call made one per kernel result,
and views for other shapes. Arrays it makes are tracked by no scope (``NDArray._untracked``):
the caller owns them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deeplearn.compile.program import SlotKind
from deeplearn.math.ndarray import NDArray

if TYPE_CHECKING:
    from deeplearn.compile.program import Program
    from deeplearn.math.engine import Engine
    from deeplearn.types import Shape

__all__ = ["Materializer", "Pending", "resolve"]


class Pending:
    """An array not made yet: ``make()`` makes it when it is first asked for."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], NDArray]) -> None:
        self.make = make


def resolve(value: Any) -> Any:
    """``value``, or the array a Pending ``value`` makes."""
    return value.make() if type(value) is Pending else value


class Materializer:
    """The NDArrays of one run's ``slots``. Bound inputs give back the arrays the caller bound
    (``inputs``: slot → NDArray); every other array it makes is listed in ``owned`` (ids) and
    ``made`` (slot → base array)."""

    __slots__ = ("backend", "deferred_run", "engine", "inputs", "made", "owned", "program", "slots")

    def __init__(
        self, program: Program, engine: Engine, slots: list[Any], inputs: dict[int, NDArray]
    ) -> None:
        self.program, self.engine, self.backend, self.slots, self.inputs = (
            program,
            engine,
            engine.backend,
            slots,
            inputs,
        )
        self.made: dict[int, NDArray] = {}
        self.owned: set[int] = set()
        self.deferred_run = not program.deferred

    def pending(self, slot: int, shape: Shape) -> NDArray | Pending:
        """``array(slot, shape)``, made when first read: a bound input at once (it is cheap, and
        the caller's scope may dispose it before anyone asks), any other slot later."""
        if self.program.kinds[slot] == SlotKind.INPUT:
            return self.array(slot, shape)
        return Pending(lambda: self.array(slot, shape))

    def hand_out(self, slot: int, shape: Shape) -> NDArray:
        """Slot ``slot`` as an array with a storage of its own, tracked by the open scope: what
        a call returns to its caller (who may keep it past the maps' lifetime)."""
        data = self.slots[slot]
        if self.program.kinds[slot] == SlotKind.CONSTANT:
            data = data.copy()
        return NDArray._wrap(
            data if data.shape == shape else data.reshape(shape), self.backend, self.program.dtypes[slot]
        )

    def array(self, slot: int, shape: Shape) -> NDArray:
        if not self.deferred_run and slot in self.program.deferred_slots:
            self.deferred_run = True  # the first read of what only inspection needs: run it now
            self.program.run_deferred(self.engine, self.slots)
        bound = self.inputs.get(slot)
        if bound is not None:
            return bound if shape == bound.shape else bound.reshape(shape)
        base = self.made.get(slot)
        if base is None:
            data = self.slots[slot]
            if self.program.kinds[slot] == SlotKind.CONSTANT:
                data = data.copy()  # the Program keeps the original for the next run
            base = self.made[slot] = NDArray._untracked(data, self.backend, self.program.dtypes[slot])
            if shape == base.shape:
                self.owned.add(id(base))
                return base
        view = base._view(tracked=False, shape=shape)
        self.owned.add(id(view))
        return view
