"""A Program captured as one CUDA graph: a whole training step costs one graph launch.

Capturing needs fixed addresses, so a ``CapturedProgram`` owns:

* one static buffer per binding, into which each call copies that call's value, except where
  the value already *is* that buffer (a variable or an optimizer state after the first call:
  ``resident``) or is the same immutable array as last time (an optimizer hyperparameter that
  did not change: ``immutable``); a ``borrowed`` binding (an input provider's examples, which
  the step gathers its batch from) is read where it is, and another array there means a new
  capture;
* for a batch's row indices (``rows``), a device cursor (``deeplearn/compile/rows.py``): the
  graph's first kernel reads the indices where the cursor points and moves it on, so that a
  training loop's draw from a GPU provider (a ``RowSpan`` of an order uploaded for many
  epochs) copies nothing in;
* the graph's own CuPy memory pool: every buffer the kernels allocate while captured stays the
  graph's, so nothing else can be handed memory that a later launch writes;
* a stream of its own to capture on (non-blocking, so the capture never interacts with work
  other threads queue meanwhile); each launch then goes on the caller's stream, after the
  last launch wherever that came from;
* a cuBLAS handle and workspace of its own for the matrix products
  (``deeplearn/math/backends/cuda_gemm.py``);
* with ``lanes`` > 1, a few more streams, each with its own cuBLAS handle and workspace, that
  the steps are spread over (``deeplearn/compile/lanes.py``): the graph then holds only the
  dependencies the data has, and independent kernels (a weight's gradient and the input's)
  run side by side.

The Program's updates (a variable's or an optimizer state's new value) are copies back into
the bound buffer, inside the graph, after every kernel that reads the old value; what reads
the old value later (the kernels that only inspection needs, run when read) reads a copy the
graph makes first (``Program.prepare_in_place_updates``).

Each launch overwrites the slots, so the arrays a call hands out from them are valid until the
next call of the same step; the Session copies those that someone still holds before then.
This module imports CuPy lazily, like ``deeplearn/math/backends/cuda.py``.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from deeplearn.compile.fusion import fuse as fuse_steps
from deeplearn.compile.lanes import LanePlan, plan_lanes, step_dependencies
from deeplearn.compile.products import fold_products
from deeplearn.compile.resident import NotCaptured, Resident
from deeplearn.compile.rows import RowCursor, plain_rows

if TYPE_CHECKING:
    from deeplearn.compile.program import Program
    from deeplearn.math.engine import Engine

__all__ = ["CapturedProgram", "NotCaptured", "capture"]


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a capture runs, after one collection.

    Objects that only the collector frees (a Session dropped inside a reference cycle, its own
    captured Program with them) may free GPU resources when it runs: a memory pool's
    ``cudaFree``, a cuBLAS handle's ``cublasDestroy``, which wait for the whole device. Run
    during another Program's capture, such a wait fails the capture
    (``cudaErrorStreamCaptureInvalidated``: seen once in the GPU suite at a7b9430). So what is
    garbage is collected first, while nothing is captured, and no collection starts until the
    capture has ended; a collector the caller had disabled stays disabled.
    """
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class CapturedProgram(Resident):
    """``program`` as one CUDA graph over static input buffers (see the module docstring).

    ``run(raws)`` brings ``raws`` (one array per binding) into the static inputs, launches the
    graph, and returns the slots: what ``program.run_raw(engine, raws)`` returns, with each
    update's target holding the new value.
    """

    def __init__(
        self,
        program: Program,
        engine: Engine,
        raws: Sequence[Any],
        immutable: Sequence[bool],
        borrowed: Sequence[bool],
        fuse: bool = True,
        lanes: int = 1,
        rows: Sequence[bool] = (),
    ) -> None:
        import cupy

        from deeplearn.math.backends import cuda_gemm

        self._cupy = cupy
        self.engine = engine
        self.program = program
        given, raws = raws, plain_rows(raws)  # (RowSpans as arrays, for the first run)
        # A borrowed input is the caller's array itself (kept alive here while the graph reads it).
        self.inputs = [r if b else cupy.empty_like(r) for r, b in zip(raws, borrowed, strict=True)]
        self.borrowed = [i for i, b in enumerate(borrowed) if b]
        # Inputs given the same array as an earlier one (paired providers' row indices) share
        # its buffer, filled by one copy; given different arrays later, the step is captured again.
        targets = {program.binding_index[u.target] for u in program.updates}  # written in place
        first: dict[int, int] = {}
        self.aliases: list[tuple[int, int]] = []
        for i, r in enumerate(given):
            j = first.setdefault(id(r), i)
            plain = not (borrowed[i] or borrowed[j] or immutable[i] or immutable[j])
            if j != i and plain and not {i, j} & targets:
                self.aliases.append((i, j))
                self.inputs[i] = self.inputs[j]
        aliased = {i for i, _ in self.aliases}
        # A batch's row indices are read where a cursor points (pointed at this call's now).
        self._cursors = [
            (i, RowCursor(self.inputs[i]))
            for i, r in enumerate(rows)
            if r and not borrowed[i] and i not in aliased and not immutable[i]
        ]
        cursor_of = {i for i, _ in self._cursors}
        self._copied = [i for i in range(len(raws)) if not borrowed[i] and i not in aliased | cursor_of]
        self.immutable = list(immutable)
        self.sources: list[Any] = [None] * len(raws)  # the immutable arrays last copied in
        Resident.__init__(self)
        self.pool = cupy.cuda.MemoryPool()
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.gemm = cuda_gemm.GemmContext() if cuda_gemm.available() else None
        self._done = cupy.cuda.Event(disable_timing=True)  # see run: a launch from another stream
        self._last_stream = cupy.cuda.get_current_stream()
        for dst, src in zip(self.inputs, raws, strict=True):
            if dst is not src:
                dst[...] = src
        for i, cursor in self._cursors:
            cursor.feed(given[i])
        cupy.cuda.get_current_stream().synchronize()
        by_slot = program.binding_index
        # An update whose kernel can write its result straight into the bound buffer does
        # (an optimizer's update of a variable: one kernel, not a kernel and a copy).
        in_place = _prepare(program, engine.backend, fuse)
        into = {source: self.inputs[by_slot[target]] for source, target in in_place.items()}
        plan = plan_lanes(step_dependencies(program.steps, in_place), lanes=lanes)
        self.lanes = _StreamLanes(plan, self.stream, self.gemm is not None) if plan.lanes_used > 1 else None
        with cupy.cuda.using_allocator(self.pool.malloc), self.stream, self._gemm_context():
            # A first run compiles and loads every kernel and fills the graph's pool (each
            # lane's stream its own part), so the captured run launches only kernels and
            # allocates from cached blocks. (Written in place, its updates change the static
            # inputs: each launch copies the inputs in. Its rows move the cursors on as a
            # launch does, as their feed expects.)
            self._gather_rows()
            program.run_raw(engine, self.inputs, into, lanes=self.lanes)
            self.stream.synchronize()  # (every lane joined it at the end of the run)
            with _no_collection():
                graph = self._capture(program, engine, into, by_slot)
        self.graph = graph

    def _capture(
        self, program: Program, engine: Engine, into: dict[int, Any], by_slot: dict[int, int]
    ) -> Any:
        """Runs ``program`` once more, captured on the Program's stream: its CUDA graph."""
        import cupy

        self.stream.begin_capture(cupy.cuda.runtime.streamCaptureModeRelaxed)
        try:
            written: set[int] = set()
            self._gather_rows()
            self.slots = program.run_raw(engine, self.inputs, into, written, self.lanes)
            self._targets = [
                (by_slot[u.target], u.source) for u in program.updates if u.source not in written
            ]
            self._target_bindings = frozenset(by_slot[u.target] for u in program.updates)
            for i, source in self._targets:  # in place, after every kernel that read the old value
                self.slots[program.bindings[i].slot][...] = self.slots[source]
        finally:
            graph = self.stream.end_capture()  # always end it: a capture left open breaks the stream
        return graph

    def node_kinds(self) -> dict[str, int] | None:
        """How many nodes the graph holds, by type ({"Kernel": 1} for a step that is one
        kernel; memset, memcpy, MemAlloc...), through cuda-python's runtime bindings (which
        nvmath-python brings); None where they are missing or answer otherwise."""
        try:
            from cuda.bindings import runtime

            handle = runtime.cudaGraph_t(self.graph.graph)
            err, _, count = runtime.cudaGraphGetNodes(handle, 0)
            err, nodes, count = runtime.cudaGraphGetNodes(handle, count)
            kinds: dict[str, int] = {}
            for node in nodes[:count]:
                _, kind = runtime.cudaGraphNodeGetType(node)
                name = getattr(kind, "name", str(kind)).removeprefix("cudaGraphNodeType")
                kinds[name] = kinds.get(name, 0) + 1
        except Exception:  # noqa: BLE001 - no bindings, or another version of them: not counted
            return None
        return kinds if int(err) == 0 else None

    def _gather_rows(self) -> None:
        for _, cursor in self._cursors:
            cursor.gather()

    def lose_rows(self) -> None:
        """Where the rows' cursors stand is no longer known (a launch they were fed for did not
        come, or launches they were not fed for ran): the next run points each anew."""
        for _, cursor in self._cursors:
            cursor.lost()

    def _gemm_context(self) -> Any:
        import contextlib

        from deeplearn.math.backends import cuda_gemm

        return cuda_gemm.use_context(self.gemm) if self.gemm is not None else contextlib.nullcontext()

    def run(self, raws: Sequence[Any], drawn: bool = False) -> list[Any] | None:
        """The slots after one launch on ``raws``; None, having launched nothing, when a
        borrowed input is another array than the one captured, or aliased inputs are given
        different arrays (capture again). (``drawn``, whether a provider drew the row indices,
        changes nothing: a GPU gather never checks them.)"""
        inputs = self.inputs
        for i in self.borrowed:
            if raws[i] is not inputs[i]:
                return None
        for i, j in self.aliases:
            if raws[i] is not raws[j]:
                return None
        cuda = self._cupy.cuda
        caller = cuda.get_current_stream()
        stream = caller.ptr
        if stream != self._last_stream.ptr:
            # The last launch came from another stream: this one waits for what that stream
            # has queued so far, the launch included (recorded now, not after every launch).
            self._done.record(self._last_stream)
            caller.wait_event(self._done)
            self._last_stream = caller
        if self._resident:  # (after the wait above: a copy must see the last launch's values)
            self.keep_views()
        sources, immutable, targets = self.sources, self.immutable, self._target_bindings
        settled = True
        for i in self._copied:
            src, dst = raws[i], inputs[i]
            if src is dst:
                continue  # resident (a variable, a state updated in place)
            if immutable[i]:
                if src is sources[i]:
                    continue
                sources[i] = src
            if src.data.ptr == dst.data.ptr:
                continue  # another view of the buffer itself
            if i in targets:
                settled = False
            self._detach(i)
            if src.flags.c_contiguous:  # one copy call, not a CuPy copy kernel's host cost
                cuda.runtime.memcpyAsync(dst.data.ptr, src.data.ptr, dst.nbytes, _DEVICE_TO_DEVICE, stream)
            else:
                dst[...] = src
        # On the caller's stream: it is ordered after the copies and before the caller's next
        # work, with no events to record or wait for. Each cursor counts on the launch it is fed
        # for: if that launch never comes (an error, an interrupt), it is pointed anew next time.
        try:
            for i, cursor in self._cursors:
                cursor.feed(raws[i])
            self.graph.launch(caller)
        except BaseException:
            self.lose_rows()
            raise
        self.settled = settled
        return self.slots


_DEVICE_TO_DEVICE = 3  # cudaMemcpyDeviceToDevice


class _StreamLanes:
    """A ``LanePlan`` on CUDA streams, for ``Program.run_raw``: lane 0 is the capture's stream,
    each other lane a stream of its own (with a cuBLAS handle and workspace of its own where
    the products go through cuBLAS, so two products side by side share no workspace). Every
    lane starts after an event recorded on lane 0 before the first step (in a capture, that is
    what makes a lane's work part of the graph), waits for the steps of other lanes it reads,
    and lane 0 waits for every lane's last step at the end."""

    def __init__(self, plan: LanePlan, origin: Any, own_gemms: bool) -> None:
        import cupy

        from deeplearn.math.backends import cuda_gemm

        self.plan = plan
        self.streams = [origin, *(cupy.cuda.Stream(non_blocking=True) for _ in range(plan.lanes_used - 1))]
        # Lane 0's products use whatever context the caller set (the CapturedProgram's own);
        # a lane's context takes memory only once a product runs there (in the first run).
        self.gemms: list[Any] = (
            [None, *(cuda_gemm.GemmContext() for _ in self.streams[1:])] if own_gemms else []
        )
        self.events = {i: cupy.cuda.Event(disable_timing=True) for i in plan.records}
        self.fork = cupy.cuda.Event(disable_timing=True)
        self._ends = [cupy.cuda.Event(disable_timing=True) for _ in self.streams]  # see abort
        self._started = [False] * len(self.streams)
        self._lane = 0
        self._caller_gemm: Any = None

    def enter(self, i: int) -> None:
        lane = self.plan.lane[i]
        stream = self.streams[lane]
        if not self._started[0]:  # the run's first step (always on lane 0)
            self.fork.record(self.streams[0])
            self._started[0] = True
        if not self._started[lane]:
            stream.wait_event(self.fork)
            self._started[lane] = True
        for d in self.plan.waits[i]:
            stream.wait_event(self.events[d])
        if lane != self._lane:
            self._switch(lane)

    def leave(self, i: int) -> None:
        event = self.events.get(i)
        if event is not None:
            event.record(self.streams[self.plan.lane[i]])

    def close(self) -> None:
        origin = self.streams[0]
        for d in self.plan.joins:
            origin.wait_event(self.events[d])
        self._reset()

    def abort(self) -> None:
        """After a step raised: every lane that started joins lane 0 where it stands (a capture
        left with a lane unjoined fails to end, hiding the step's own error)."""
        origin = self.streams[0]
        for lane, started in enumerate(self._started[1:], 1):
            if started:
                self._ends[lane].record(self.streams[lane])
                origin.wait_event(self._ends[lane])
        self._reset()

    def _reset(self) -> None:
        if self._lane != 0:
            self._switch(0)
        self._started = [False] * len(self.streams)

    def _switch(self, lane: int) -> None:
        from deeplearn.math.backends import cuda_gemm

        self.streams[lane].use()
        if self.gemms:
            if self._lane == 0:
                self._caller_gemm = cuda_gemm.swap_context(self.gemms[lane])
            else:
                cuda_gemm.swap_context(self.gemms[lane] if lane else self._caller_gemm)
        self._lane = lane


def _prepare(program: Program, backend: Any, fuse: bool) -> dict[int, int]:
    """Readies ``program`` for capture, once: its updates are written in place
    (``Program.ready_in_place``), and with ``fuse`` its element-wise chains are fused
    (``deeplearn/compile/fusion.py``, where ``backend`` has ``fusible``) and each product whose
    result a fused step reads next folded into it (``deeplearn/compile/products.py``, where it
    has ``folds``). Returns {result slot: bound slot} of the results written straight into a bound
    buffer."""
    first = program.in_place is None
    in_place = program.ready_in_place()
    fusible = getattr(backend, "fusible", None) if fuse else None
    if first and fusible is not None:
        fuse_steps(program, fusible, in_place)
        folds = getattr(backend, "folds", None)
        if folds is not None:
            fold_products(program, folds, in_place)
    return in_place


def capture(
    program: Program,
    engine: Engine,
    raws: Sequence[Any],
    immutable: Sequence[bool],
    borrowed: Sequence[bool],
    fuse: bool = True,
    lanes: int = 1,
    rows: Sequence[bool] = (),
) -> CapturedProgram | NotCaptured:
    """``program`` captured over ``raws`` (this call's inputs), or why it cannot be: see
    ``CapturedProgram`` for what ``immutable`` and ``borrowed`` inputs are; ``fuse``: whether
    its element-wise chains run as fused kernels; ``lanes``: over how many streams its
    independent kernels may spread; ``rows``: which inputs are a batch's row indices, read
    through a cursor (a RowSpan or an array each call)."""
    cannot = program.uncapturable(engine.backend)
    if cannot:
        return NotCaptured(f"the backend cannot record these kernels in a CUDA graph: {', '.join(cannot)}")
    try:
        return CapturedProgram(program, engine, raws, immutable, borrowed, fuse, lanes, rows)
    except Exception as e:  # noqa: BLE001 - any kernel that cannot be captured: run kernel by kernel
        return NotCaptured(f"{type(e).__name__}: {e}")
