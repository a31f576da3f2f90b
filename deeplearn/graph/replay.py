"""Recorded plans: a Session step's kernels, recorded once and replayed without NDArrays.

A Session call runs the graph's batch rules, which call NDArrayMath, which runs one op at a
time through the Engine: shape rule, kernel, an NDArray with its storage, scope and registry
bookkeeping. For a given plan and call signature (which fed tensors are batched, the batch
size) that sequence of kernels is always the same: the rules branch on shapes, never on
values. So the first call records it (``Recorder``, told of every op by the Engine) as a
``Tape`` over *slots* — the fed tensors and the variables' and constants' values, the
constants the rules made, and every kernel's output — and later calls replay the tape: the
same kernels (``backend.execute``) on the same inputs in the same order, each result made
C-ordered, typed and unaliased by the same ``Engine.result`` an eager op uses. Only the values
the call hands out (activations, gradients, the cost) become NDArrays again, one storage per
slot as in the eager call, and only when read: most activations and gradients never are, and
the kernels that only they need are deferred until one is (``Tape.prune``). Compiled plans
start from the tape: ``deeplearn/compile/cuda_graph.py`` captures one as a CUDA graph.

A recording is abandoned (and the Session stays eager for that step) when what ran was not
just kernels on arrays: a read of an array's data (``get``, ``raw``...), an array drawn from a
host random generator, an array from outside the call, or one on another backend.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from deeplearn.graph.tensor_array_map import Pending
from deeplearn.math.ndarray import _RANK_CLASSES, _STORAGE_SERIALS, DATA_OBSERVERS, NDArray, Storage

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.math.engine import Engine
    from deeplearn.math.ops.base import Op
    from deeplearn.types import DType

__all__ = ["Recorder", "Tape"]

INPUT, OUTPUT, CONSTANT = 0, 1, 2
"""Slot kinds: a value the call binds (fed, variable, constant node), an op's result, a
constant array the rules made while recording (kept, and copied before it is handed out)."""

Ref = tuple[int, Any]
"""An op input: its slot and the shape it is viewed with (None: the slot's own shape)."""

OpRecord = tuple["Op", list[Ref], Any, Any]
"""A recorded kernel: (op, input refs, output slot or slots, spec or specs)."""


class Tape:
    """The kernels of one recorded call, over slots.

    ``inputs``: (tensor, slot, shape, dtype) of the values a call binds, checked before each
    replay. ``ops``: (op, input refs, output slot or slots, spec or specs) of the kernels every
    replay runs: those the call's results need (``prune``). ``deferred``: the kernels that only
    what the call hands out for inspection needs (the activations and gradients nobody asked
    for, the gradients of fed tensors); they run only if one of those is read. ``values`` and
    ``gradients``: each tensor's (slot, shape) in what the call hands out, in the eager call's
    order (inputs included: their slots give back the bound arrays).
    """

    __slots__ = ("capture", "constants", "deferred", "deferred_slots", "dtypes", "gradients", "inputs",
                 "kernels", "kinds", "ops", "values")

    def __init__(self) -> None:
        self.kinds: list[int] = []
        self.dtypes: list[DType] = []
        self.inputs: list[tuple[Tensor, int, tuple[int, ...], DType]] = []
        self.constants: list[tuple[int, Any]] = []
        self.ops: list[OpRecord] = []
        self.deferred: list[OpRecord] = []
        self.deferred_slots: frozenset[int] = frozenset()  # the slots the deferred kernels fill
        self.values: list[tuple[Tensor, int, tuple[int, ...]]] = []
        self.gradients: list[tuple[Tensor, int, tuple[int, ...]]] | None = None
        self.kernels: dict[tuple[int, int], tuple[Any, list[Any]]] = {}  # see _kernels
        # On CUDA: the tape captured as one CUDA graph (deeplearn/compile/cuda_graph.py), or
        # why it could not be; None until a replay tries.
        self.capture: Any = None

    def new_slot(self, kind: int, dtype: DType) -> int:
        self.kinds.append(kind)
        self.dtypes.append(dtype)
        return len(self.kinds) - 1

    def prune(self, needed: set[int]) -> None:
        """Keeps in ``ops`` the recorded kernels that the slots ``needed`` depend on; the others
        move to ``deferred`` (in order: each reads only slots filled before it). Called once,
        when the recording is done."""
        core: list[OpRecord] = []
        deferred: list[OpRecord] = []
        needed = set(needed)
        for record in reversed(self.ops):
            _, refs, out, _ = record
            outs = (out,) if type(out) is int else out
            if any(o in needed for o in outs):
                core.append(record)
                needed.update(s for s, _ in refs)
            else:
                deferred.append(record)
        self.ops, self.deferred = core[::-1], deferred[::-1]
        self.deferred_slots = frozenset(o for _, _, out, _ in self.deferred
                                        for o in ((out,) if type(out) is int else out))
        self.kernels = {}

    def run(self, engine: Engine, inputs: list[NDArray]) -> list[Any]:
        """Runs the kernels on ``inputs`` (one NDArray per ``self.inputs`` entry, already
        checked); returns every slot's backend array (None where a deferred kernel fills it)."""
        return self.run_raw(engine, self.raw_inputs(inputs))

    def raw_inputs(self, inputs: list[NDArray]) -> list[Any]:
        """The backend arrays of ``inputs``, in the shapes the tape binds them with."""
        raws = []
        for (_, _, shape, _), x in zip(self.inputs, inputs):
            data: Any = x.storage.data
            raws.append(data if data.shape == shape else data.reshape(shape))
        return raws

    def run_raw(self, engine: Engine, raws: list[Any]) -> list[Any]:
        """``run`` on backend arrays (one per ``self.inputs`` entry, in its shape)."""
        slots: list[Any] = [None] * len(self.kinds)
        for (_, slot, _, _), data in zip(self.inputs, raws):
            slots[slot] = data
        for slot, data in self.constants:
            slots[slot] = data
        self._run_ops(engine, self.ops, slots)
        return slots

    def run_deferred(self, engine: Engine, slots: list[Any]) -> None:
        """Fills the deferred kernels' slots of a replay's ``slots``."""
        self._run_ops(engine, self.deferred, slots)

    def _run_ops(self, engine: Engine, ops: list[OpRecord], slots: list[Any]) -> None:
        result = engine.result
        backend = engine.backend
        guard = getattr(backend, "errors_ignored", contextlib.nullcontext)
        with guard():  # one floating-point guard for the whole tape, not one per kernel
            for (op, refs, out, spec), kernel in zip(ops, self._kernels(backend, ops)):
                raws = [slots[s] if shape is None else slots[s].reshape(shape) for s, shape in refs]
                y = kernel(op, *raws)
                if type(out) is int:
                    slots[out] = result(op, y, raws, spec)
                else:
                    for o, s, sp in zip(y, out, spec):
                        slots[s] = result(op, o, raws, sp)

    def _kernels(self, backend: Any, ops: list[OpRecord]) -> list[Any]:
        """Each op's kernel on ``backend``, looked up once (``kernel_for``), else ``execute``."""
        key = (id(backend), id(ops))
        cached = self.kernels.get(key)
        if cached is None or cached[0] is not backend or len(cached[1]) != len(ops):
            find = getattr(backend, "kernel_for", None)
            cached = self.kernels[key] = (backend, [find(op) if find else backend.execute for op, *_ in ops])
        return cached[1]


class Materializer:
    """Turns replayed slots back into NDArrays: one storage per slot (as the eager call made
    one per kernel result), views for other shapes. Input slots give the bound arrays (views
    tracked by the open scope, as an eager reshape); every other array it hands out is a
    distinct object that no scope tracks, listed in ``owned``: the Session keeps them."""

    __slots__ = ("backend", "deferred_run", "engine", "inputs", "made", "owned", "slots", "tape")

    def __init__(self, tape: Tape, engine: Engine, slots: list[Any], inputs: dict[int, NDArray]) -> None:
        self.tape, self.engine, self.backend, self.slots, self.inputs = tape, engine, engine.backend, slots, inputs
        self.made: dict[int, NDArray] = {}
        self.owned: set[int] = set()  # ids of the arrays handed out untracked
        self.deferred_run = not tape.deferred

    def pending(self, slot: int, shape: tuple[int, ...]) -> NDArray | Pending:
        """``array(slot, shape)``, made when first read: a bound input at once (it is cheap, and
        the caller's scope may dispose it before anyone asks), any other slot later."""
        if self.tape.kinds[slot] == INPUT:
            return self.array(slot, shape)
        return Pending(lambda: self.array(slot, shape))

    def array(self, slot: int, shape: tuple[int, ...]) -> NDArray:
        if not self.deferred_run and slot in self.tape.deferred_slots:
            self.deferred_run = True  # the first read of what only inspection needs: run it now
            self.tape.run_deferred(self.engine, self.slots)
        bound = self.inputs.get(slot)
        if bound is not None:
            return bound if shape == bound.shape else bound.reshape(shape)
        base = self.made.get(slot)
        if base is None:
            data = self.slots[slot]
            if self.tape.kinds[slot] == CONSTANT:
                data = data.copy()  # the tape keeps the original for the next replay
            klass = _RANK_CLASSES.get(data.ndim, NDArray)
            base = klass.__new__(klass)  # untracked: the Session owns it (see NDArray._view)
            base.storage, base.shape = Storage(data, self.backend), data.shape
            base.dtype = self.tape.dtypes[slot]
            base._disposed, base._spec = False, None
            base.storage.refs += 1
            self.made[slot] = base
            if shape == base.shape:
                self.owned.add(id(base))
                return base
        view = base._view(tracked=False, shape=shape)
        self.owned.add(id(view))
        return view


class Recorder:
    """Records the ops one thread runs on an Engine, between ``start`` and ``stop``.

    A Session binds the call's inputs (``bind``: the fed values, then each variable's and
    constant's value as the forward pass reaches it), starts the recorder, runs the forward
    and backward passes as usual, stops it, and asks ``finish`` for the tape (None if the
    recording was abandoned; ``failed`` says why).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.thread = threading.get_ident()
        self.tape = Tape()
        self.slot_of: dict[Storage, int] = {}
        self.input_shapes: dict[int, tuple[int, ...]] = {}
        self.first_serial = next(_STORAGE_SERIALS)  # storages made from here on are the call's
        self.failed: str | None = None

    # -- what the Session tells it ---------------------------------------------------------
    def bind(self, tensor: Tensor, x: NDArray) -> None:
        """``x`` is the value of input ``tensor`` (fed, variable or constant) in this call."""
        storage = x.storage
        if storage in self.slot_of:
            self.fail(f"{tensor!r} shares its data with another input")
            return
        if storage.backend is not self.engine.backend:
            self.fail(f"{tensor!r} lives on another backend")
            return
        slot = self.tape.new_slot(INPUT, x.dtype)
        self.slot_of[storage] = slot
        self.input_shapes[slot] = x.shape
        self.tape.inputs.append((tensor, slot, x.shape, x.dtype))

    def start(self) -> None:
        if self.engine.recorders.setdefault(self.thread, self) is not self:
            self.fail("another recording is under way in this thread")
        DATA_OBSERVERS.append(self)

    def stop(self) -> None:
        if self.engine.recorders.get(self.thread) is self:
            del self.engine.recorders[self.thread]
        if self in DATA_OBSERVERS:
            DATA_OBSERVERS.remove(self)

    def finish(self, values: dict[Tensor, NDArray], gradients: Any, needed_values: Iterable[Tensor],
               needed_gradients: Iterable[Tensor] = ()) -> Tape | None:
        """The tape, given what the call hands out: the value of every tensor (in the order
        the call filled them) and the gradients (None for an inference call); of those, the
        call's results need ``needed_values`` and ``needed_gradients`` (the rest is for
        inspection, and its kernels are deferred: ``Tape.prune``)."""
        tape = self.tape
        tape.values = [(t, self._slot(x), x.shape) for t, x in values.items()]
        needed = {self._slot(values[t]) for t in needed_values if t in values}
        if gradients is not None:
            tape.gradients = [(t, self._slot(g), g.shape) for t, g in gradients.items()]
            needed.update(self._slot(gradients.get(t)) for t in needed_gradients if gradients.has(t))
        if self.failed:
            return None
        tape.prune(needed)
        return tape

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
            refs.append((slot, None if x.shape == self._shape_of(slot, x) else x.shape))
        outs = result if isinstance(result, tuple) else (result,)
        out_slots = []
        for y in outs:
            slot = self.tape.new_slot(OUTPUT, y.dtype)
            self.slot_of[y.storage] = slot
            out_slots.append(slot)
        specs = tuple(y.spec for y in outs)
        if isinstance(result, tuple):
            self.tape.ops.append((op, refs, tuple(out_slots), specs))
        else:
            self.tape.ops.append((op, refs, out_slots[0], specs[0]))

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
        # constant such as Scalar.new(2) or the cost's seed), kept for every replay.
        if storage.serial < self.first_serial:
            self.fail(f"an array from outside the call was used ({x.shape} {x.dtype})")
        elif storage.backend is not self.engine.backend or storage.data is None:
            self.fail("a constant on another backend, or disposed")
        slot = self.tape.new_slot(CONSTANT, x.dtype)
        self.slot_of[storage] = slot
        # A copy: the recording call hands the original out (the cost's seed is a gradient),
        # and what the user writes into it must not reach later calls.
        self.tape.constants.append((slot, storage.data.copy() if storage.data is not None else None))
        return slot

    def _shape_of(self, slot: int, x: NDArray) -> tuple[int, ...]:
        """The shape slot ``slot`` holds at replay (an input's bound shape, else the storage's)."""
        shape = self.input_shapes.get(slot)
        if shape is not None:
            return shape
        data = x.storage.data
        return tuple(data.shape) if data is not None else x.shape

