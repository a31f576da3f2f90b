"""A training Program compiled for the CPU: its arrays made once, its kernels writing into them.

A recorded Program run on the CPU (``Program.run_raw``) lets every kernel allocate its result,
and the Session makes each update a new array for its variable. On small steps the allocations
and the Python between kernels cost more than the arithmetic; on large ones, fresh memory costs
page faults. A ``CpuStep`` is what the CUDA graph is for the GPU (``cuda_graph.py``), for the CPU:

* one array per kernel result, made once, which the kernel writes into (``out=``: the writers
  of ``deeplearn/math/backends/cpu_writers.py``); a kernel without a writer runs as it always
  did, and its slot holds what it returns;
* the variables and the optimizer's state in arrays of the step's own (``resident.py``), which
  the updates are written into, in place where nothing later reads the old value
  (``Program.ready_in_place``), else copied in at the end; a large variable whose old value
  inspection still reads is double-buffered instead of copied (``CpuStep``);
* relu's backward, ``multiply(dy, step(x))``, as one step of two passes
  (``cpu_writers.relu_derivative``);
* one generated function for the whole step (``straight.py``), over slots that keep their
  arrays from call to call: a call puts in the batch and the hyperparameters and runs it.

Each run overwrites the arrays, so what a call hands out from them is valid until the next
call; the Session copies what someone still holds before then, as for a CUDA graph. As there,
the variables change in place: a reader that does not take the Session's lock (another
thread's ``save_model`` of the bare Graph) may see an update half written, and a step stopped
midway (KeyboardInterrupt during its updates) leaves some variables updated and others not. The
kernels and their order are those of ``Program.run_raw``, so the results are the same bits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from deeplearn.compile.resident import NotCaptured, Resident
from deeplearn.compile.straight import straight_line
from deeplearn.compile.program import Step
from deeplearn.math.backends.cpu_writers import Scratch, elementwise, relu_derivative, writer
from deeplearn.math.ops.arithmetic import Multiply
from deeplearn.math.ops.base import Spec
from deeplearn.math.ops.elementwise import Step as StepOp
from deeplearn.math.ops.layout import Clone, Gather

if TYPE_CHECKING:
    from deeplearn.compile.program import Program
    from deeplearn.math.engine import Engine

__all__ = ["CpuStep", "compile_step"]

_DOUBLED_BYTES = 1 << 16
"""A variable whose old value is still read after its update is double-buffered from this size
on; a smaller one is copied first, which costs less than a swap of two arrays per step."""


class CpuStep(Resident):
    """``program`` compiled for the CPU over this call's inputs ``raws`` (see the module
    docstring); ``rows`` says which bindings are a batch's row indices, which a gather need not
    check where the library's own providers drew them (``run(raws, drawn=True)``).
    ``run(raws)`` returns the slots: what ``program.run_raw(engine, raws)`` returns, with each
    update's target holding the new value.

    A variable of 64 KiB or more whose old value is still read after its update (by the kernels
    only inspection needs, such as a fed input's gradient, for which ``Program.ready_in_place``
    had a copy made first) is double-buffered instead: the update writes the other of its two
    arrays, the old one stays as it is for whoever reads it, and the two swap roles after each
    run, the variable's NDArray following. No copy of the variable is made per step.
    """

    def __init__(
        self, program: Program, engine: Engine, raws: Sequence[Any], rows: Sequence[bool] = ()
    ) -> None:
        super().__init__()
        self.program, self.engine = program, engine
        in_place = program.ready_in_place()
        index = program.binding_index
        self._targets = sorted({index[u.target] for u in program.updates})
        target_slots = {program.bindings[i].slot for i in self._targets}
        self.inputs: list[Any] = [None] * len(raws)  # the first call's values are not kept
        for i in self._targets:  # the step's own arrays, filled by the first run's copy
            self.inputs[i] = np.empty(program.bindings[i].shape, program.bindings[i].dtype)
        self._seen: list[Any] = [None] * len(raws)  # per target, the last array found resident
        self._passed = [(i, b.slot) for i, b in enumerate(program.bindings) if i not in self._targets]
        # The loop runs once first: it finds which kernels' results need the engine's check
        # (``Program._run``), as the generated function's first run must know.
        program.run_raw(engine, raws)
        kernels, final = program._kernels(engine.backend, program.steps)
        planned = _fuse_relu_derivatives(program, list(zip(program.steps, kernels, final, strict=True)))
        # The copies of old values that ready_in_place put first (slot -> the target copied):
        # a double-buffered target's old array is read instead.
        snapshots = {
            step.outputs[0]: step.inputs[0].slot
            for step in program.steps
            if type(step.op) is Clone
            and step.inputs[0].slot in target_slots
            and step.inputs[0].shape is None
            and step.specs[0].size * np.dtype(step.specs[0].dtype).itemsize >= _DOUBLED_BYTES
        }
        doubled = {index[t] for t in snapshots.values()}
        self._other = {i: np.empty_like(self.inputs[i]) for i in doubled}  # the array written next
        slots: list[Any] = [None] * len(program.kinds)
        for slot, data in program.constants:
            slots[slot] = data
        for i in self._targets:
            slots[program.bindings[i].slot] = self.inputs[i]
        shapes = program.slot_shapes()
        scratch = Scratch()  # the writers' temporaries, one array for all
        row_slots = {b.slot for b, ok in zip(program.bindings, rows, strict=False) if ok}
        steps: list[Step] = []
        own: list[Any] = []
        checked: list[bool] = []
        writers: list[Callable[..., None] | None] = []
        # The same with the gathers of rows a provider drew trusting them (run(..., drawn=True)).
        trusting: list[Callable[..., None] | None] = []
        generic = getattr(engine.backend, "generic_kernel", None)
        # Per double-buffered binding: the slots that hold its old array, and those its new one.
        self._old_slots: dict[int, list[int]] = {i: [program.bindings[i].slot] for i in doubled}
        self._new_slots: dict[int, list[int]] = {i: [] for i in doubled}
        for step, kernel, is_final in planned:
            if step.outputs[0] in snapshots:
                self._old_slots[index[snapshots[step.outputs[0]]]].append(step.outputs[0])
                continue
            steps.append(step)
            own.append(None if kernel is generic else kernel)
            checked.append(is_final)
            write = trusted = None
            if len(step.outputs) == 1:
                specs = [
                    Spec(shapes[r.slot] if r.shape is None else r.shape, program.dtypes[r.slot])
                    for r in step.inputs
                ]
                write = trusted = writer(step.op, specs, step.specs[0], (), scratch)
                drawn = [r.slot in row_slots for r in step.inputs]
                if write is not None and type(step.op) is Gather and any(drawn):
                    trusted = writer(step.op, specs, step.specs[0], drawn, scratch)
            writers.append(write)
            trusting.append(trusted)
            if write is None:
                continue
            (out,) = step.outputs
            target = in_place.get(out)
            if target is not None and index[target] in doubled:
                self._new_slots[index[target]].append(out)  # into the other array, whatever the kernel
                continue
            if target is not None and not elementwise(step.op) and any(r.slot == target for r in step.inputs):
                target = None  # a product or a sum must not write over what it still reads
            spec = step.specs[0]
            slots[out] = slots[target] if target is not None else np.empty(spec.shape, spec.dtype)
        self.slots = slots
        # Updates not written into their arrays: copied in after every kernel has run.
        self._copies = [
            (index[u.target], u.source)
            for u in program.updates
            if u.source not in self._new_slots.get(index[u.target], ())
            and slots[u.source] is not slots[u.target]
        ]
        self._steps, self._writers = steps, writers  # (kept for bench/profiling.py)
        # (Each puts the bindings it does not update in their slots first: run(slots, raws).)
        self._runs = (
            straight_line(steps, own, checked, np, engine.result, writers, self._passed),
            straight_line(steps, own, checked, np, engine.result, trusting, self._passed),
        )
        self._call = engine.backend.call_ignoring_errors  # type: ignore[attr-defined]  # the CPU backend's

    def run(self, raws: Sequence[Any], drawn: bool = False) -> list[Any]:
        """The slots after one run on ``raws`` (one array per binding); ``drawn``: the row
        indices among them were drawn by the library's own providers, and need no check."""
        slots, seen = self.slots, self._seen
        if self._resident:
            self.keep_views()
        settled = True
        for i in self._targets:
            src = raws[i]
            if src is not seen[i] and not self._in_place(i, src):
                settled = False
        other = self._other
        for i, new in other.items():  # a double-buffered variable: read one, write the other
            old = self.inputs[i]
            for slot in self._old_slots[i]:
                slots[slot] = old
            for slot in self._new_slots[i]:
                slots[slot] = new
        self._call(self._runs[drawn], slots, raws)
        for i, source in self._copies:  # the updates not written into their arrays
            np.copyto(other.get(i, self.inputs[i]), slots[source])
        if other:
            self._swap()
        self.settled = settled
        return slots

    def _in_place(self, i: int, src: Any) -> bool:
        """Whether binding ``i``'s value ``src`` (not the one last seen) is its resident array
        already (or a view of it); if not, it is copied in, the resident array detached."""
        dst = self.inputs[i]
        if src is dst or src.base is dst and src.shape == dst.shape:
            self._seen[i] = src
            return True
        self._detach(i)
        np.copyto(dst, src)
        return False

    def _swap(self) -> None:
        """After a run: each double-buffered variable's new array becomes its array (its NDArray
        follows), and its old one the array the next run writes. The slots keep them as they
        are until then: what reads the old value after the call (the kernels only inspection
        needs) reads it there."""
        for i, new in self._other.items():
            old = self.inputs[i]
            self.inputs[i], self._other[i], self._seen[i] = new, old, None
            x = self._resident.get(i)
            if x is not None and x.storage.data is old:
                x.storage.data = new


def _fuse_relu_derivatives(
    program: Program, steps: list[tuple[Step, Any, bool]]
) -> list[tuple[Step, Any, bool]]:
    """``steps`` (each with its kernel and whether its result needs no check) with each relu
    backward, ``multiply(dy, step(x))`` whose step result nothing else reads, as one step
    (``cpu_writers.relu_derivative``)."""
    readers: dict[int, list[int]] = {}
    for k, (step, _, _) in enumerate(steps):
        for r in step.inputs:
            readers.setdefault(r.slot, []).append(k)
    exposed = program.exposed_slots()
    fused: dict[int, tuple[Step, Any, bool]] = {}
    dropped: set[int] = set()  # the steps a fused one computes
    for j, (step, _, _) in enumerate(steps):
        op = step.op
        if not isinstance(op, StepOp) or op.alpha != 0 or step.inputs[0].shape is not None:
            continue
        (s,) = step.outputs
        if s in exposed or len(readers.get(s, ())) != 1:
            continue
        k = readers[s][0]
        product = steps[k][0]
        a, b = product.inputs
        if type(product.op) is not Multiply or a.shape is not None or b.shape is not None:
            continue
        if (a.slot == s) == (b.slot == s):
            continue  # step(x) · step(x)
        dy, x, shape = (b if a.slot == s else a), step.inputs[0], product.specs[0].shape
        fused_op = relu_derivative(
            Spec(shape, program.dtypes[dy.slot]), Spec(shape, program.dtypes[x.slot]), dy_first=b.slot == s
        )
        # (its result checked by the engine unless a writer makes it: see CpuStep)
        fused[k] = (Step(fused_op, (dy, x), product.outputs, product.specs), None, False)
        dropped.add(j)
    return [fused.get(k, entry) for k, entry in enumerate(steps) if k not in dropped]


def compile_step(
    program: Program, engine: Engine, raws: Sequence[Any], rows: Sequence[bool]
) -> CpuStep | NotCaptured:
    """``CpuStep(program, engine, raws, rows)``, or why it could not be made (then the step runs
    kernel by kernel, where a kernel's own error, such as a row index out of range, is raised)."""
    try:
        return CpuStep(program, engine, raws, rows)
    except Exception as e:  # noqa: BLE001 - any failure: the loop runs it, and says what is wrong
        return NotCaptured(f"{type(e).__name__}: {e}")
