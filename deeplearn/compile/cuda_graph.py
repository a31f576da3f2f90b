"""A recorded Session tape captured as one CUDA graph: a training step's forward and backward
kernels cost one graph launch instead of one host round trip per kernel.

The tape (``deeplearn/graph/replay.py``) is a fixed sequence of kernels over slots. Capturing
it needs fixed addresses, so a ``CapturedTape`` owns:

* one static buffer per tape input, into which each call copies that call's inputs (the fed
  batches, the variables' current values);
* the graph's own CuPy memory pool: every buffer the kernels allocate while captured stays the
  graph's, so nothing else can be handed memory that a later launch writes;
* a stream of its own (non-blocking, so the capture never interacts with work other threads
  queue meanwhile), ordered after the caller's stream by events.

Each launch overwrites the slots, so the arrays a call hands out from them are valid until the
next call of the same step, which is how long a Session keeps them (its activation and
gradient maps; a view of one that someone keeps longer is given a copy before the next call,
``Session._release_retained``); what a user gets back (the reduced cost) is computed after, in
fresh memory.

CuPy refuses cuBLAS calls while a stream captures, so a tape with a matrix product or a
convolution (``Op.uses_blas``) is not captured and is replayed kernel by kernel, as before.
This module imports CuPy lazily, like ``deeplearn/math/backends/cuda.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deeplearn.graph.replay import Tape
    from deeplearn.math.engine import Engine

__all__ = ["CapturedTape", "NotCaptured", "capture"]


class NotCaptured:
    """Why a tape is replayed kernel by kernel (falsy, so ``if tape.capture:`` reads well)."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"NotCaptured({self.why!r})"


class CapturedTape:
    """``tape`` as one CUDA graph over static input buffers (see the module docstring).

    ``run(raws)`` copies ``raws`` (one array per tape input) into the static inputs, launches
    the graph, and returns the slots: the same arrays as ``tape.run_raw(engine, raws)``.
    """

    def __init__(self, tape: Tape, engine: Engine, raws: list[Any]) -> None:
        import cupy

        self._cupy = cupy
        self.inputs = [cupy.empty_like(r) for r in raws]
        self.pool = cupy.cuda.MemoryPool()
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self._ready, self._done = cupy.cuda.Event(disable_timing=True), cupy.cuda.Event(disable_timing=True)
        for dst, src in zip(self.inputs, raws):
            dst[...] = src
        cupy.cuda.get_current_stream().synchronize()
        with cupy.cuda.using_allocator(self.pool.malloc), self.stream:
            # A first run compiles and loads every kernel and fills the graph's pool, so the
            # captured run launches only kernels and allocates from cached blocks.
            tape.run_raw(engine, self.inputs)
            self.stream.synchronize()
            self.stream.begin_capture(cupy.cuda.runtime.streamCaptureModeRelaxed)
            try:
                self.slots = tape.run_raw(engine, self.inputs)
            finally:
                graph = self.stream.end_capture()  # always end it: a capture left open breaks the stream
        self.graph = graph

    def run(self, raws: list[Any]) -> list[Any]:
        caller = self._cupy.cuda.get_current_stream()
        caller.wait_event(self._done)  # the last launch may have come from another stream
        for dst, src in zip(self.inputs, raws):
            dst[...] = src  # a copy kernel on the caller's stream
        caller.record(self._ready)
        self.stream.wait_event(self._ready)
        self.graph.launch(self.stream)
        self.stream.record(self._done)
        caller.wait_event(self._done)  # the caller's next work reads the slots
        return self.slots


def capture(tape: Tape, engine: Engine, raws: list[Any]) -> CapturedTape | NotCaptured:
    """``tape`` captured over ``raws`` (this call's inputs), or why it cannot be."""
    blas = sorted({op.name for op, *_ in tape.ops if op.uses_blas})
    if blas:
        return NotCaptured(f"CuPy refuses cuBLAS calls during capture ({', '.join(blas)})")
    try:
        return CapturedTape(tape, engine, raws)
    except Exception as e:  # noqa: BLE001 - any kernel that cannot be captured: replay instead
        return NotCaptured(f"{type(e).__name__}: {e}")
