"""Recorder: turns the ops one thread runs on an Engine into a Program.

The caller binds the call's inputs (``bind``: each value under a key of its choosing), starts
the recorder, runs the call as usual (every op reaches ``on_op`` through the Engine), stops it,
and asks ``finish`` for the Program, or None when the recording had to be abandoned because
what ran was not just kernels on arrays: a read of an array's data (``get``, ``raw``...), an
array drawn from a host random generator, an array from outside the call that was not bound,
or one on another backend. ``failed`` says why.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from deeplearn.compile.program import Program, Ref, Update
from deeplearn.math.ndarray import _STORAGE_SERIALS, DATA_OBSERVERS, NDArray, Storage

if TYPE_CHECKING:
    from deeplearn.math.engine import Engine
    from deeplearn.math.ops.base import Op
    from deeplearn.types import Shape

__all__ = ["Recorder"]


class Recorder:
    """Records the ops one thread runs on ``engine``, between ``start`` and ``stop``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.thread = threading.get_ident()
        self.program = Program()
        self.slot_of: dict[Storage, int] = {}
        self.input_shapes: dict[int, Shape] = {}
        self.first_serial = next(_STORAGE_SERIALS)  # storages made from here on are the call's
        self.failed: str | None = None

    # -- what the caller tells it ----------------------------------------------------------
    def bind(self, key: Hashable, x: NDArray) -> None:
        """``x`` is the value bound as ``key`` in this call (fed, variable, optimizer state)."""
        storage = x.storage
        if storage in self.slot_of:
            self.fail(f"{key!r} shares its data with another input")
            return
        if storage.backend is not self.engine.backend:
            self.fail(f"{key!r} lives on another backend")
            return
        slot = self.program.bind(key, x.shape, x.dtype)
        self.slot_of[storage] = slot
        self.input_shapes[slot] = x.shape

    def start(self) -> None:
        if not self.engine.start_observing(self):
            self.fail("another recording is under way in this thread")
        DATA_OBSERVERS.append(self)

    def stop(self) -> None:
        self.engine.stop_observing(self)
        if self in DATA_OBSERVERS:
            DATA_OBSERVERS.remove(self)

    def finish(
        self,
        values: Mapping[Any, NDArray],
        gradients: Any,
        needed_values: Iterable[Hashable],
        needed_gradients: Iterable[Hashable] = (),
        results: Mapping[Any, NDArray] | None = None,
        updates: Mapping[Any, NDArray] | None = None,
    ) -> Program | None:
        """The Program, given what the call hands out: ``values`` (every tensor's value, in the
        order the call filled them), ``gradients`` (a map with ``get``/``has``/``items``, None
        for an inference call), ``results`` (what it returns) and ``updates`` (the new value of
        each bound key it replaces). The call's results need ``needed_values``,
        ``needed_gradients``, ``results`` and ``updates``; the kernels of everything else are
        deferred (``Program.prune``)."""
        program = self.program
        program.values = [(k, self._slot(x), x.shape) for k, x in values.items()]
        needed = {self._slot(values[k]) for k in needed_values if k in values}
        if gradients is not None:
            program.gradients = [(k, self._slot(g), g.shape) for k, g in gradients.items()]
            needed.update(self._slot(gradients.get(k)) for k in needed_gradients if gradients.has(k))
        for key, x in (results or {}).items():
            program.results[key] = (self._slot(x), x.shape)
            needed.add(program.results[key][0])
        bound = {b.key: b for b in program.bindings}
        for key, x in (updates or {}).items():
            target = bound.get(key)
            if target is None:
                self.fail(f"{key!r} is updated but was not bound")
            elif x.shape != target.shape or x.dtype != target.dtype:
                self.fail(
                    f"{key!r} is updated with shape {x.shape} {x.dtype}, bound as {target.shape} {target.dtype}"
                )
            else:
                source = self._slot(x)
                if source != target.slot:
                    program.updates.append(Update(key, target.slot, source))
        if self.failed:
            return None
        program.prune(needed)
        program.fold_constants(self.engine)
        return program

    def fail(self, why: str) -> None:
        if self.failed is None:
            self.failed = why

    # -- what the Engine and NDArray tell it -----------------------------------------------
    def on_op(self, op: Op, inputs: tuple[NDArray, ...], result: Any) -> None:
        if threading.get_ident() != self.thread:
            return  # another thread's eager math on the same Engine
        refs = []
        for x in inputs:
            slot = self._slot(x)
            refs.append(Ref(slot, None if x.shape == self._shape_of(slot, x) else x.shape))
        outs = result if isinstance(result, tuple) else (result,)
        slots = self.program.add_step(op, refs, [y.spec for y in outs])
        for y, slot in zip(outs, slots, strict=True):
            self.slot_of[y.storage] = slot

    def on_data(self, x: NDArray) -> None:
        if threading.get_ident() == self.thread:
            self.fail("an array's data was read")

    def on_random(self) -> None:
        if threading.get_ident() == self.thread:
            self.fail("an array was drawn from a random generator")

    # -- slots -----------------------------------------------------------------------------
    def _slot(self, x: NDArray) -> int:
        storage = x.storage
        slot = self.slot_of.get(storage)
        if slot is not None:
            return slot
        # Not an input and no op's result: an array the rules made during the call (a
        # constant such as Scalar.new(2) or the cost's seed), kept for every run.
        if storage.serial < self.first_serial:
            self.fail(f"an array from outside the call was used ({x.shape} {x.dtype})")
        elif storage.backend is not self.engine.backend or storage.data is None:
            self.fail("a constant on another backend, or disposed")
        # A copy: the recording call hands the original out (the cost's seed is a gradient),
        # and what the user writes into it must not reach later calls.
        data = storage.data.copy() if storage.data is not None else None
        slot = self.program.add_constant(data, x.dtype)
        self.slot_of[storage] = slot
        return slot

    def _shape_of(self, slot: int, x: NDArray) -> Shape:
        """The shape slot ``slot`` holds when run (an input's bound shape, else the storage's)."""
        shape = self.input_shapes.get(slot)
        if shape is not None:
            return shape
        data = x.storage.data
        return tuple(data.shape) if data is not None else x.shape
