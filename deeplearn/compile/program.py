"""Program: one Session call as a flat list of kernels over slots, run without the Graph.

A Session call (``deeplearn/graph/session.py``) runs the graph's batch rules, the backward
pass, and for a training call the optimizer's update and the cost reduction, through
NDArrayMath: one op at a time, each with its shape rule and NDArray bookkeeping. For one call
signature that sequence of kernels never changes (the rules branch on shapes, never on values),
so the first call records it (``deeplearn/compile/recorder.py``) as a Program and later calls
run the Program instead:

* **slots** hold arrays: the values a call *binds* (``SlotKind.INPUT``: fed batches, the
  variables, the constants, the optimizer's state and hyperparameters), each kernel's result
  (``OUTPUT``), and the constant arrays the rules made while recording (``CONSTANT``).
* **steps** are the kernels, in order: ``Step(op, inputs, outputs, specs)``, each input a
  ``Ref(slot, shape)``.
* **updates** say which input a training call replaces with which result (a variable's new
  value, an optimizer state's new value): run eagerly they become the new arrays; captured as
  a CUDA graph (``deeplearn/compile/cuda_graph.py``) they are copies back into the input's
  buffer, inside the graph.

This module knows nothing of Graphs: a binding's ``key`` is whatever the caller binds by (a
Tensor, an optimizer state's name), and ``deeplearn/compile/`` never imports
``deeplearn/graph/``.

Example:
    >>> from deeplearn.math.ops.elementwise import Relu
    >>> program = Program()
    >>> x = program.bind("x", (3,), "float32")
    >>> y = program.add_step(Relu(), [Ref(x, None)], [Spec((3,), "float32")])[0]
    >>> slots = program.run_raw(math.engine, [np.array([-1.0, 0.0, 2.0], np.float32)])
    >>> slots[y]
    array([0., 0., 2.], dtype=float32)
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from deeplearn.compile.straight import straight_line
from deeplearn.math.ops.base import Spec
from deeplearn.math.ops.layout import Clone

if TYPE_CHECKING:
    from deeplearn.math.engine import Engine
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ops.base import Op
    from deeplearn.types import DType, Shape

__all__ = ["Binding", "Lanes", "Program", "Ref", "SlotKind", "Step", "Update", "bound_raw"]


class Lanes(Protocol):
    """Where a run puts each step (``deeplearn/compile/lanes.py``): ``enter(i)`` before step
    ``i`` (its stream made current, after what it waits for), ``leave(i)`` after it, ``close()``
    once all have run (every lane joined back into the first), ``abort()`` instead where a
    step raised."""

    def enter(self, i: int) -> None: ...
    def leave(self, i: int) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class SlotKind(enum.IntEnum):
    """What fills a slot: a value the call binds, a kernel's result, or a constant the rules
    made while recording (kept by the Program, and copied before it is handed out)."""

    INPUT = 0
    OUTPUT = 1
    CONSTANT = 2


class Ref(NamedTuple):
    """A kernel's input: a slot, viewed with ``shape`` (None: the slot's own shape)."""

    slot: int
    shape: Shape | None


class Step(NamedTuple):
    """One kernel: ``op`` on ``inputs``, filling ``outputs`` (one slot per result, as the
    op's shape rule gives ``specs``)."""

    op: Op
    inputs: tuple[Ref, ...]
    outputs: tuple[int, ...]
    specs: tuple[Spec, ...]


class Binding(NamedTuple):
    """A value each call binds: ``key`` (the caller's name for it), its slot, shape, dtype."""

    key: Any
    slot: int
    shape: Shape
    dtype: DType


def bound_raw(x: NDArray, shape: Shape, dtype: DType, backend: Any) -> Any:
    """``x``'s backend array, in ``x``'s shape (its storage may hold another, ``x`` being a
    reshaped view), or None when ``x`` is not what the binding was recorded with (another
    shape, dtype or backend): the caller records again. One rule for every caller that binds.

    Example:
        >>> x = Array1D.new([1, 2, 3, 4]).reshape([2, 2])
        >>> bound_raw(x, (2, 2), "float32", x.storage.backend).shape, bound_raw(x, (4,), "float32", x.storage.backend)
        ((2, 2), None)
    """
    storage = x.storage
    if x.shape != shape or x.dtype != dtype or storage.backend is not backend:
        return None
    data: Any = storage.data
    return data if data.shape == shape else data.reshape(shape)


class Update(NamedTuple):
    """A training call's result ``source`` replaces the bound value of ``key`` (in ``target``)."""

    key: Any
    target: int
    source: int


class Program:
    """The kernels of one recorded call, over slots (see the module docstring).

    ``steps`` are the kernels every run needs: those that the call's results depend on
    (``prune``). ``deferred`` are the kernels only inspection needs (activations and gradients
    nobody asked for); they run the first time one of their slots is read. ``values`` and
    ``gradients`` map the caller's keys to (slot, shape) for what the call hands out;
    ``results`` the same for what it returns (a training call's reduced cost).
    """

    __slots__ = (
        "__weakref__",
        "_binding_index",
        "bindings",
        "capture",
        "constants",
        "deferred",
        "deferred_slots",
        "dtypes",
        "gradients",
        "in_place",
        "kernels",
        "kinds",
        "needed",
        "results",
        "steps",
        "updates",
        "values",
    )

    def __init__(self) -> None:
        self.kinds: list[SlotKind] = []
        self.dtypes: list[DType] = []
        self.bindings: list[Binding] = []
        self.constants: list[tuple[int, Any]] = []
        self.steps: list[Step] = []
        self.deferred: list[Step] = []
        self.deferred_slots: frozenset[int] = frozenset()
        self.needed: frozenset[int] = frozenset()  # what prune kept the steps for
        self.values: list[tuple[Any, int, Shape]] = []
        self.gradients: list[tuple[Any, int, Shape]] | None = None
        self.results: dict[Any, tuple[int, Shape]] = {}
        self.updates: list[Update] = []
        self.kernels: dict[Any, tuple[Any, Any, list[bool]]] = {}  # see _kernels, _straight_line
        # On CUDA: the Program captured as one CUDA graph (deeplearn/compile/cuda_graph.py), or
        # why it could not be; None until a run tries.
        self.capture: Any = None
        # Once readied for capture: {result slot: bound slot} of the updates written in place.
        self.in_place: dict[int, int] | None = None
        self._binding_index: dict[int, int] | None = None

    # -- building (the Recorder) -----------------------------------------------------------
    def new_slot(self, kind: SlotKind, dtype: DType) -> int:
        self.kinds.append(kind)
        self.dtypes.append(dtype)
        return len(self.kinds) - 1

    def bind(self, key: Hashable, shape: Shape, dtype: DType) -> int:
        """A new input slot for the value bound as ``key``."""
        slot = self.new_slot(SlotKind.INPUT, dtype)
        self.bindings.append(Binding(key, slot, tuple(shape), dtype))
        return slot

    def add_constant(self, data: Any, dtype: DType) -> int:
        slot = self.new_slot(SlotKind.CONSTANT, dtype)
        self.constants.append((slot, data))
        return slot

    def add_step(self, op: Op, inputs: Sequence[Ref], specs: Sequence[Spec]) -> tuple[int, ...]:
        """Appends a kernel; returns its output slots."""
        outputs = tuple(self.new_slot(SlotKind.OUTPUT, s.dtype) for s in specs)
        self.steps.append(Step(op, tuple(inputs), outputs, tuple(specs)))
        return outputs

    def prune(self, needed: set[int]) -> None:
        """Keeps in ``steps`` the kernels that the slots ``needed`` (and the updates' sources)
        depend on; the others move to ``deferred``, in order. Called once, when recorded."""
        needed = set(needed) | {u.source for u in self.updates}
        self.needed = frozenset(needed)
        core: list[Step] = []
        deferred: list[Step] = []
        for step in reversed(self.steps):
            if any(o in needed for o in step.outputs):
                core.append(step)
                needed.update(r.slot for r in step.inputs)
            else:
                deferred.append(step)
        self.steps, self.deferred = core[::-1], deferred[::-1]
        self.deferred_slots = frozenset(o for step in self.deferred for o in step.outputs)
        self.kernels = {}

    def fold_constants(self, engine: Engine) -> int:
        """Runs now, once, the kernels that read only constants (a rule's ``2 / batch_size``),
        whose results become constants; returns how many. Called once, when recorded."""
        constant = {slot for slot, _ in self.constants}
        data = dict(self.constants)
        kept: list[Step] = []
        for step in self.steps:
            if (
                not step.inputs
                or len(step.outputs) != 1
                or not step.op.pure
                or not all(r.slot in constant for r in step.inputs)
            ):
                kept.append(step)
                continue
            raws = [data[s] if shape is None else data[s].reshape(shape) for s, shape in step.inputs]
            with getattr(engine.backend, "errors_ignored", contextlib.nullcontext)():
                y = engine.result(step.op, engine.backend.execute(step.op, *raws), raws, step.specs[0])
            (out,) = step.outputs
            self.kinds[out] = SlotKind.CONSTANT
            self.constants.append((out, y))
            constant.add(out)
            data[out] = y
        folded = len(self.steps) - len(kept)
        self.steps = kept
        self.kernels = {}
        return folded

    def prepare_in_place_updates(self) -> None:
        """Readies the Program for updates written in place (a captured graph), after which an
        update target's old value is gone: what still needs it after the run (a value handed
        out that *is* a target, such as a reshape of a variable; a deferred kernel that reads
        one, such as the product that makes the fed input's gradient) reads a copy that the
        run makes before the updates. A copy costs one pass over a variable, where running the
        deferred kernels every time would cost their work (a product for each layer)."""
        targets = {u.target for u in self.updates}
        snapshots: dict[int, int] = {}
        first: list[Step] = []  # the copies run first: an update may be written in place early

        def snapshot(slot: int) -> int:
            if slot not in snapshots:
                spec = Spec(self._bound_shape(slot), self.dtypes[slot])
                snapshots[slot] = self.add_step(Clone(), [Ref(slot, None)], [spec])[0]
                first.append(self.steps.pop())
            return snapshots[slot]

        for entries in (self.values, self.gradients or []):
            for i, (key, slot, shape) in enumerate(entries):
                if slot in targets:
                    entries[i] = (key, snapshot(slot), shape)
        self.deferred = [
            step._replace(
                inputs=tuple(Ref(snapshot(r.slot), r.shape) if r.slot in targets else r for r in step.inputs)
            )
            for step in self.deferred
        ]
        self.steps[:0] = first
        self.kernels = {}

    def ready_in_place(self) -> dict[int, int]:
        """``prepare_in_place_updates`` once, then ``writable_in_place`` (kept in ``in_place``):
        what a compiled step (a CUDA graph, a CPU step) does first."""
        if self.in_place is None:
            self.prepare_in_place_updates()
            self.in_place = self.writable_in_place()
        return self.in_place

    def writable_in_place(self) -> dict[int, int]:
        """The updates whose new value the kernel that computes it may write straight into the
        bound buffer (after ``prepare_in_place_updates``): {source slot: target slot} for each
        update whose source is the only output of a step, of the target's shape and dtype, and
        whose target no later step reads (nor that step, except element by element)."""
        producer = {step.outputs[0]: i for i, step in enumerate(self.steps) if len(step.outputs) == 1}
        sources = [u.source for u in self.updates]
        out: dict[int, int] = {}
        for update in self.updates:
            i = producer.get(update.source)
            if i is None or sources.count(update.source) > 1:  # one value for two targets: copies
                continue
            step = self.steps[i]
            if (
                step.specs[0].shape != self._bound_shape(update.target)
                or step.specs[0].dtype != self.dtypes[update.target]
            ):
                continue
            if any(r.slot == update.target and r.shape is not None for r in step.inputs):
                continue
            if any(r.slot == update.target for later in self.steps[i + 1 :] for r in later.inputs):
                continue
            out[update.source] = update.target
        return out

    @property
    def binding_index(self) -> dict[int, int]:
        """Each bound slot's index in ``bindings`` (asked for once the Program is recorded)."""
        if self._binding_index is None or len(self._binding_index) != len(self.bindings):
            self._binding_index = {b.slot: i for i, b in enumerate(self.bindings)}
        return self._binding_index

    def exposed_slots(self) -> set[int]:
        """The slots someone outside the kernels may read: what the call needs (``prune``), hands
        out or returns, the updates' values, and what the deferred kernels read (a pass that
        merges kernels must keep these)."""
        slots = set(self.needed)
        slots.update(slot for _, slot, _ in self.values)
        slots.update(slot for _, slot, _ in self.gradients or [])
        slots.update(slot for slot, _ in self.results.values())
        slots.update(u.source for u in self.updates)
        slots.update(r.slot for step in self.deferred for r in step.inputs)
        return slots

    def slot_shapes(self) -> dict[int, Shape]:
        """Each slot's shape: a binding's, a constant's, a kernel result's spec (a slot whose
        kernel was dropped has none)."""
        shapes: dict[int, Shape] = {b.slot: b.shape for b in self.bindings}
        for slot, data in self.constants:
            shapes[slot] = tuple(data.shape)
        for step in (*self.steps, *self.deferred):
            for slot, spec in zip(step.outputs, step.specs, strict=True):
                shapes[slot] = spec.shape
        return shapes

    def _bound_shape(self, slot: int) -> Shape:
        return next(b.shape for b in self.bindings if b.slot == slot)

    # -- running ---------------------------------------------------------------------------
    def run_raw(
        self,
        engine: Engine,
        raws: Sequence[Any],
        into: dict[int, Any] | None = None,
        written: set[int] | None = None,
        lanes: Lanes | None = None,
    ) -> list[Any]:
        """Runs the kernels on ``raws`` (one backend array per binding, in its shape); returns
        every slot's array (None where a deferred kernel fills it).

        ``into`` ({slot: array}) asks that the kernel making a slot write it into that array,
        where the backend can (``write_into(op, targets, *inputs)``, one target or None per
        result; it returns the results, or None having run nothing); ``written`` gets the
        slots it did. ``lanes`` puts each step on its stream (``deeplearn/compile/lanes.py``)."""
        slots: list[Any] = [None] * len(self.kinds)
        for binding, data in zip(self.bindings, raws, strict=True):
            slots[binding.slot] = data
        for slot, data in self.constants:
            slots[slot] = data
        self._run(engine, self.steps, slots, into, written, lanes)
        return slots

    def run_deferred(self, engine: Engine, slots: list[Any]) -> None:
        """Fills the deferred kernels' slots of a run's ``slots``."""
        self._run(engine, self.deferred, slots)

    def _run(
        self,
        engine: Engine,
        steps: list[Step],
        slots: list[Any],
        into: dict[int, Any] | None = None,
        written: set[int] | None = None,
        lanes: Lanes | None = None,
    ) -> None:
        result = engine.result
        backend = engine.backend
        kernels, final = self._kernels(backend, steps)
        write_into = getattr(backend, "write_into", None) if into else None
        guard = getattr(backend, "errors_ignored", contextlib.nullcontext)
        if write_into is None and lanes is None:
            runner = self._straight_line(backend, steps, kernels, final, result)
            if runner is not None:
                call = getattr(backend, "call_ignoring_errors", None)  # (cheaper than the guard)
                if call is not None:
                    call(runner, slots)
                else:
                    with guard():
                        runner(slots)
                return
        try:
            with guard():  # one floating-point guard for the whole program, not one per kernel
                for i, ((op, refs, outs, specs), kernel) in enumerate(zip(steps, kernels, strict=True)):
                    if lanes is not None:
                        lanes.enter(i)
                    raws = [slots[s] if shape is None else slots[s].reshape(shape) for s, shape in refs]
                    if write_into is not None and any(o in into for o in outs):  # type: ignore[operator]
                        targets = [into.get(o) for o in outs]  # type: ignore[union-attr]
                        made = write_into(op, targets, *raws)
                        if made is not None:
                            for o, y, target in zip(outs, made, targets, strict=True):
                                slots[o] = y
                                if target is not None and written is not None:
                                    written.add(o)
                            if lanes is not None:
                                lanes.leave(i)
                            continue
                    y = kernel(op, *raws)
                    if len(outs) == 1:
                        if final[i]:
                            slots[outs[0]] = y
                        else:
                            slots[outs[0]] = r = result(op, y, raws, specs[0])
                            # A kernel whose output needed nothing (a fresh C-ordered array of the
                            # right dtype and shape) needs nothing on the same inputs' layouts and
                            # dtypes, which a Program fixes: later runs skip the check.
                            final[i] = r is y
                    else:
                        for o, s, spec in zip(y, outs, specs, strict=True):
                            slots[s] = result(op, o, raws, spec)
                    if lanes is not None:
                        lanes.leave(i)
        except BaseException:
            if lanes is not None:
                lanes.abort()  # (a capture left with a lane unjoined would hide the error)
            raise
        if lanes is not None:
            lanes.close()

    def _straight_line(
        self,
        backend: Any,
        steps: list[Step],
        kernels: list[Any],
        final: list[bool],
        engine_result: Callable[..., Any],
    ) -> Callable[[list[Any]], None] | None:
        """``steps`` as one generated function (``deeplearn/compile/straight.py``), made at the
        second run, once the first has shown which kernels' results need no checking; None
        before, or where the backend does not ask for one (``straight_line``: the CPU, whose
        kernels are plain calls)."""
        if not getattr(backend, "straight_line", False):
            return None
        key = ("straight", id(steps))
        cached = self.kernels.get(key)
        if cached is None or cached[0] is not backend:
            self.kernels[key] = (backend, None, [])  # the first run: the loop learns ``final``
            return None
        if cached[1] is None:
            generic = getattr(backend, "generic_kernel", None)
            own = [None if kernel is generic else kernel for kernel in kernels]
            cached = self.kernels[key] = (
                backend,
                straight_line(steps, own, final, backend.xp, engine_result),
                [],
            )
        return cached[1]

    def _kernels(self, backend: Any, steps: list[Step]) -> tuple[list[Any], list[bool]]:
        """Each step's kernel on ``backend``, looked up once (``kernel_for``), else ``execute``;
        and whether its raw output is known to be final (``_run``)."""
        key = id(steps)
        cached = self.kernels.get(key)
        if cached is None or cached[0] is not backend or len(cached[1]) != len(steps):
            find = getattr(backend, "kernel_for", None)
            kernels = [find(s.op) if find else backend.execute for s in steps]
            cached = self.kernels[key] = (backend, kernels, [False] * len(steps))
        return cached[1], cached[2]

    def uncapturable(self, backend: Any) -> list[str]:
        """The names of the ops ``backend`` cannot record in a CUDA graph (empty: all can)."""
        can = getattr(backend, "can_capture", None)
        if can is None:
            return ["every op (this backend captures nothing)"]
        return sorted({s.op.name for s in self.steps if not can(s.op)})
