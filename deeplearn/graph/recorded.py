"""How a Session call runs a recorded Program (``deeplearn/compile/``): the Recorder of a first
call, a later call's inputs bound to the Program's slots, the CUDA graph a training Program runs
as, and what a training Program's results become (the variables' and the optimizer's new values,
the maps' arrays made if read, the reduced cost). A base of ``Session``
(``deeplearn/graph/session.py``)."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deeplearn.compile.materialize import Materializer
from deeplearn.compile.program import bound_raw
from deeplearn.compile.recorder import Recorder
from deeplearn.compile.rows import plain_rows
from deeplearn.graph.feeds import EXAMPLES, ROWS
from deeplearn.graph.graph import Tensor
from deeplearn.graph.plan import Signature
from deeplearn.graph.session_values import SessionValues
from deeplearn.graph.tensor_array_map import SummedTensorArrayMap, TensorArrayMap
from deeplearn.graph.zeros import ZeroScalars
from deeplearn.math.ndarray import NDArray, Scalar

if TYPE_CHECKING:
    from deeplearn.compile.cpu_step import CpuStep
    from deeplearn.compile.cuda_graph import CapturedProgram
    from deeplearn.compile.program import Program
    from deeplearn.graph.optimizers.optimizer import Optimizer

__all__ = ["RecordedCalls"]

_LOG = logging.getLogger("deeplearn")

Unread = tuple[Materializer, Any, Any]
"""A compiled run's Materializer, with what the two maps were to be filled with from it."""

_MAX_RECORDINGS = 3  # a step whose inputs keep changing shape stops being recorded
_MAX_COMPILED = 3  # per Session: compiled training steps kept (see _captured)


class RecordedCalls(SessionValues):
    """Recording a call's kernels as a Program, and running it (see the module docstring)."""

    capture_plans: bool
    fuse_kernels: bool
    capture_lanes: int
    _compiled: dict[int, Program]  # the Programs whose compiled steps are kept, oldest first
    _last_compiled: weakref.ref[Program] | None  # the one _captured returned compiled last
    _zeros: ZeroScalars  # what a NONE call returns

    def _recorder(
        self, step: Signature, training: bool, values: Mapping[Tensor, NDArray], extra: Mapping[Any, NDArray]
    ) -> Recorder | None:
        """A started Recorder with the call's inputs bound, or None when this step has been
        recorded too often (its inputs keep changing shape)."""
        if step.recordings[training] >= _MAX_RECORDINGS:
            return None
        step.recordings[training] += 1
        recorder = Recorder(self.math.engine)
        for key, x in (*values.items(), *extra.items()):
            recorder.bind(key, x)
        recorder.start()
        return recorder

    def _run_program(
        self,
        program: Program,
        values: dict[Tensor, NDArray],
        extra: Mapping[Any, NDArray],
        where: str,
        optimizer: Optimizer | None = None,
    ) -> tuple[Scalar | None, SummedTensorArrayMap | None] | None:
        """Runs ``program`` on this call's inputs (``values``: the fed tensors'; ``extra``: the
        optimizer's arrays and the batches' examples and rows; variables and constants from
        their nodes); None, having run nothing, when an input is not the shape, dtype or
        backend it was recorded with.

        An inference Program fills ``values`` with the values the call hands out (made when
        read). A training Program (``optimizer`` given) gives the variables and the optimizer's
        state their new values and the Session's maps what to make if read; returns (the
        reduced cost, None). On CUDA a training Program runs as one CUDA graph, captured the
        first time; the values it hands out are then overwritten by the step's next call, when
        the Session has let them go."""
        backend = self.math.backend
        raws: list[Any] = []
        bound: dict[int, NDArray] = {}
        extras = 0
        for key, slot, shape, dtype in program.bindings:
            if isinstance(key, Tensor):
                x = values.get(key)
                if x is None:
                    if (EXAMPLES, key) in extra:
                        return None  # recorded with its batch given, fed as rows now: record again
                    x = self._input_value(key.node, where)  # a variable or a constant
            else:
                x = extra.get(key)
                extras += 1
                if x is None:
                    return None
            raw = bound_raw(x, shape, dtype, backend)
            if raw is None:
                return None
            raws.append(raw)
            bound[slot] = x
        if extras != len(extra):
            return None  # the optimizer now reads other arrays: record again
        slots, captured = self._execute(program, raws, optimizer is not None)
        if optimizer is None:  # inference: the caller reads the values it asked for at once
            made = Materializer(program, self.math.engine, slots, bound)
            for t, slot, shape in program.values:
                values[t] = made.pending(slot, shape)  # type: ignore[assignment]  # made if read (resolve)
            self._owned = made.owned  # untracked arrays that _retain keeps as they are
            return None, None
        return self._finish_training(program, slots, captured, optimizer), None

    def _execute(
        self, program: Program, raws: list[Any], training: bool, drawn: bool = False
    ) -> tuple[list[Any], Any]:
        """Runs ``program`` on ``raws``: (its slots, the compiled step that ran it or None). A
        training Program runs compiled (``capture_plans``), compiled the first time: on CUDA as
        its CUDA graph, on the CPU as a ``CpuStep`` (``drawn``: its row indices were drawn by the
        library's own providers, so a CPU step need not check them). A batch's row indices may
        come as a ``RowSpan`` (``deeplearn/compile/rows.py``), which a CUDA graph reads where
        it is; anything else is given them as an array."""
        if training and self.capture_plans:
            # The Program compiled last, again (a training loop): its step as it is, without
            # _captured's call, which costs more than the step's Python around it.
            last = self._last_compiled
            captured = program.capture if last is not None and last() is program else None
            if not captured:  # (None, or found not to compile since)
                captured = self._captured(program, raws)
            slots = captured.run(raws, drawn) if captured is not None else None
            if captured is not None and slots is None:  # a provider's examples moved: capture again
                program.capture = None
                captured = self._captured(program, raws)
                slots = captured.run(raws, drawn) if captured is not None else None
            if slots is not None:
                return slots, captured
        return program.run_raw(self.math.engine, plain_rows(raws)), None

    def _finish_training(
        self,
        program: Program,
        slots: list[Any],
        captured: Any,
        optimizer: Optimizer,
        unread: Unread | None = None,
    ) -> Scalar:
        """After a training Program ran: the variables and the optimizer's state get their new
        values, the maps what to make if read; returns the reduced cost. ``unread``: what
        ``_release_unread`` took from the maps of the last run over these slots, untouched,
        which they are made from again rather than from a new Materializer."""
        engine, backend = self.math.engine, self.math.backend
        # The maps are made only if someone looks, from the slots alone (the bound batches
        # belong to this call's scope, which is over by then).
        if unread is not None:
            made, activations, gradients = unread
            self.activation_array_map.put_pending(activations)
            self.gradient_array_map.put_pending(gradients)
        else:
            made = Materializer(program, engine, slots, {})
            self.activation_array_map.fill_later(_fill, made, program.values)
            self.gradient_array_map.fill_later(_fill, made, program.gradients or ())
        if captured is not None:
            self._borrowed = made  # its arrays live in the graph's memory: see _release_retained
        for update in () if captured is not None and captured.settled else program.updates:
            index = program.binding_index
            shape = program.bindings[index[update.target]].shape
            # The new value: the bound buffer itself when updated in place (captured), else the
            # result in an array and storage of its own (the maps dispose theirs at the next call).
            new = (
                captured.resident(index[update.target])
                if captured is not None
                else NDArray._untracked(
                    slots[update.source].reshape(shape), backend, program.dtypes[update.source]
                )
            )
            if isinstance(update.key, Tensor):
                self._assign(update.key, new, untracked=True)
            else:
                optimizer.set_bound(update.key, new)
        optimizer.finish_batch()
        result = program.results.get("cost")
        if result is None:  # CostReduction.NONE
            return self._zeros.next(self.math)
        cost_value = made.hand_out(*result)
        if captured is not None:  # it lives in the graph's memory: see _release_retained
            self._lent.append(weakref.ref(cost_value.storage))
        return cost_value  # type: ignore[return-value]

    def _release_unread(self, program: Program) -> Unread | None:
        """What ``_release_retained`` does before a call; and when the last call ran
        ``program`` compiled and nothing it handed out has been looked at since (the maps
        unread, no array made from its slots, its cost not lent), returns that call's
        Materializer with what the maps were to be filled with (``take_pending``), which the
        next compiled run of ``program`` (over the same slots) makes the maps from again;
        else None.

        Then all there is to release is the maps' entries, still to be made: the maps are
        emptied (before the run, under the Session's lock: a reader in another thread finds
        them empty, not values the run overwrites), and a training loop that never reads them
        makes no Materializer per step."""
        made = self._borrowed
        if made is not None and made.program is program and not made.made and not self._lent:
            activations = self.activation_array_map.take_pending(made)
            if activations is not None:
                gradients = self.gradient_array_map.take_pending(made)
                if gradients is not None and not made.made:  # (none made meanwhile by another thread)
                    return made, activations, gradients
        self._release_retained()
        return None

    def _captured(self, program: Program, raws: list[Any]) -> CapturedProgram | CpuStep | None:
        """``program`` compiled over ``raws`` the first time (a CUDA graph, a CPU step); None
        (logged once) where it cannot be. A Program it returns compiled becomes
        ``_last_compiled`` (weakly: a Program the Session lets go is not kept for it), the one
        ``_execute`` runs again without asking, the most recently used in ``_compiled``; any
        other answer leaves none, so the next call comes here and keeps that order."""
        self._last_compiled = None
        backend = self.math.backend
        compiled = self._compiled
        if program.capture is not None:  # compiled, or found not to compile (said then)
            key = id(program)
            if key in compiled and next(reversed(compiled)) != key:
                compiled[key] = compiled.pop(key)  # the most recently used
            if not program.capture:
                return None
            self._last_compiled = weakref.ref(program)
            return program.capture  # type: ignore[no-any-return]
        # What each binding is (a tensor's value: None; else its key's kind: EXAMPLES, ROWS...).
        kinds = [None if isinstance(b.key, Tensor) else b.key[0] for b in program.bindings]
        rows = [k == ROWS for k in kinds]
        if getattr(backend, "straight_line", False):
            from deeplearn.compile.cpu_step import compile_step

            program.capture = compile_step(program, self.math.engine, plain_rows(raws), rows)
        elif backend.name == "cuda":
            from deeplearn.compile.cuda_graph import capture

            program.capture = capture(
                program,
                self.math.engine,
                raws,
                immutable=[k == "scalar" for k in kinds],
                borrowed=[k == EXAMPLES for k in kinds],
                fuse=self.fuse_kernels,
                lanes=self.capture_lanes,
                rows=rows,
            )
        if program.capture is None:
            return None
        if not program.capture:
            _LOG.info("Session: a training step runs kernel by kernel, not compiled: %s", program.capture.why)
            return None
        # A compiled CPU step holds arrays of its own (variables, states, results): a Session
        # keeps the few it uses now (a GraphRunner alternates two reductions), the others
        # compile again. (CUDA graphs are all kept, as before: letting one go while a launch of
        # it may still run is not yet checked on a GPU.)
        if backend.name != "cuda":
            compiled[id(program)] = program
            while len(compiled) > _MAX_COMPILED:
                oldest = next(iter(compiled))
                compiled.pop(oldest).capture = None
        self._last_compiled = weakref.ref(program)
        return program.capture  # type: ignore[no-any-return]


def _fill(
    made: Materializer, entries: Sequence[tuple[Any, int, tuple[int, ...]]], target: TensorArrayMap
) -> None:
    for t, slot, shape in entries:
        target.set(t, made.pending(slot, shape))
