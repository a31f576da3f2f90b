"""How a Session call runs through the graph's batch rules, op by op, and records its kernels.

A call the Session has not recorded yet (or one that cannot run as a Program: debug mode, float64
gradient checks, ``replay_plans = False``) runs here: the batches are gathered, each node's
batch rule runs forward on the stacked batch (``batching.py``), and for training the rules'
backward pass, the optimizer's update and the cost's reduction follow. The first such call of a
step records every kernel it runs as a Program (``deeplearn/compile/recorder.py``), which later
calls run instead (``recorded.py``). A base of ``Session`` (``deeplearn/graph/session.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deeplearn.compile.materialize import resolve
from deeplearn.graph.feeds import Rows, alias, row_bindings
from deeplearn.graph.graph import Tensor
from deeplearn.graph.recorded import RecordedCalls
from deeplearn.graph.tensor_array_map import SummedTensorArrayMap
from deeplearn.math.ndarray import NDArray, Scalar

if TYPE_CHECKING:
    from deeplearn.compile.recorder import Recorder
    from deeplearn.graph.optimizers.optimizer import Optimizer
    from deeplearn.graph.plan import Plan, Signature

__all__ = ["CostReduction", "RuleSteps"]

_MAX_TRAINING_PROGRAMS = 8  # per step: one per (optimizer class, its variables, cost reduction)


class CostReduction(enum.IntEnum):
    """What ``Session.train`` returns: nothing (a zero Scalar), or the batch's cost summed or
    averaged over its examples."""

    NONE = 0
    SUM = 1
    MEAN = 2


class RuleSteps(RecordedCalls):
    """Running a call's step through the batch rules, recording it the first time (see the
    module docstring)."""

    replay_plans: bool

    def _replayable(self) -> bool:
        # (The engine's ``_careful``: debug mode or keep_float64, the two that replay must not
        # skip; read as one field, as the engine does, since a training step asks every time.)
        return self.replay_plans and not self.math.engine._careful

    def _run_step(
        self,
        plan: Plan,
        step: Signature,
        values: dict[Tensor, NDArray],
        rows: Rows,
        where: str,
        wanted: Sequence[Tensor],
    ) -> None:
        """Fills ``values`` (the fed tensors' values on entry, the batches still to gather in
        ``rows``) with every tensor's value, for an inference call that returns ``wanted``. The
        first call of a step records its kernels; later calls run the Program, which gives the
        same arrays without the rules' host cost."""
        replayable = self._replayable()
        program = step.inference
        bound = row_bindings(rows)
        if replayable and program is not None:
            if self._run_program(program, values, bound, where) is not None:
                return
            step.inference = None  # an input changed shape, dtype or backend: record again
        recorder = self._recorder(step, False, values, bound) if replayable else None
        try:
            self._gather(values, rows)
            self._forward(step, values, where, recorder)
        finally:
            if recorder is not None:
                recorder.stop()
        if recorder is not None:
            step.inference = recorder.finish(values, None, wanted)

    def _train_step(
        self,
        plan: Plan,
        step: Signature,
        values: dict[Tensor, NDArray],
        rows: Rows,
        batch_size: int,
        cost: Tensor,
        optimizer: Optimizer,
        reduction: CostReduction,
        where: str,
    ) -> tuple[Scalar, SummedTensorArrayMap | None]:
        """One training step: forward, backward, the optimizer's update (the variables get their
        new values) and the cost's reduction. Returns (the reduced cost, the gradients, for
        ``_retain`` to keep with ``values``), or (the cost, None) when a Program ran and set the
        maps itself. Recorded as one Program the first time, which later calls run (on CUDA as
        one captured graph)."""
        math = self.math
        # (the reduction as a plain int: an Enum's hash is Python code, and a training loop looks
        # this key up every step)
        key = (type(optimizer), tuple(optimizer.variables), int(reduction))
        replayable = self._replayable()
        program = step.training.get(key)
        bound = row_bindings(rows)
        if replayable and program is not None:
            ran = self._run_program(program, values, {**optimizer.bound_arrays(), **bound}, where, optimizer)
            if ran is not None:
                return ran  # type: ignore[return-value]  # a training Program returns its cost
            del step.training[key]  # an input changed shape, dtype or backend: record again
        current = {v: self._input_value(v.node, where) for v in optimizer.variables}
        optimizer.ensure_state(current)
        recorder = (
            self._recorder(step, True, values, {**optimizer.bound_arrays(), **bound}) if replayable else None
        )
        try:
            self._gather(values, rows)
            self._forward(step, values, where, recorder)
            # d(Σ_b cost_b)/d cost_b = 1; an unbatched cost counts once per example.
            seed = (
                NDArray.ones(values[cost].shape, math=math)
                if step.batched[cost]
                else Scalar.new(batch_size, math=math)
            )
            gradients = self._backward(plan, step, values, cost, seed)
            optimizer.after_example(
                math, {v: gradients.get(v) for v in optimizer.variables if gradients.has(v)}
            )
            new_values = optimizer.after_batch(
                math, {v: resolve(values[v]) for v in optimizer.variables if v in values}
            )
            total = self._reduce_cost(values[cost], step.batched[cost], batch_size, reduction)
        finally:
            if recorder is not None:
                recorder.stop()
        for v, new_value in new_values.items():
            self._assign(v, new_value)
            values[v] = new_value
        if recorder is not None and len(step.training) < _MAX_TRAINING_PROGRAMS:
            updates: dict[Any, NDArray] = {**new_values, **optimizer.state_arrays()}
            # A NONE reduction reads no cost: its kernels run only if someone reads its activation.
            needed = [cost] if reduction != CostReduction.NONE else []
            results = {"cost": total} if reduction != CostReduction.NONE else {}
            program = recorder.finish(values, gradients, needed, (), results, updates)
            if program is not None:
                step.training[key] = program
        return total, gradients

    def _gather(self, values: dict[Tensor, NDArray], rows: Rows) -> None:
        """The batches of ``rows`` into ``values``: one gather each, recorded with the step."""
        for t, (examples, indices) in rows.items():
            values[t] = self.math.gather(examples, indices)

    def _forward(
        self, step: Signature, values: dict[Tensor, NDArray], where: str, recorder: Recorder | None = None
    ) -> None:
        math = self.math
        for node, rule, inputs, out, flags, expected in step.forward:
            if rule is None:
                values[out] = value = self._input_value(node, where)
                if recorder is not None:
                    recorder.bind(out, value)
                continue
            y = rule.forward(math, node, [values[t] for t in inputs], flags)
            if y.shape != expected:
                raise AssertionError(
                    f"{where}: the {node.name} rule gave shape {y.shape}, expected {expected}."
                )
            values[out] = y

    def _backward(
        self, plan: Plan, step: Signature, values: dict[Tensor, NDArray], cost: Tensor, seed: NDArray
    ) -> SummedTensorArrayMap:
        math = self.math
        gradients = SummedTensorArrayMap(math)
        if cost not in plan.needs_grad():
            return gradients
        gradients.add(cost, seed)
        for node, rule, inputs, out, flags, wants in step.backward:
            dy = gradients.get_or_none(out)
            if dy is None:
                continue
            grads = rule.backward(math, node, dy, [values[t] for t in inputs], flags, values[out], wants)
            for t, g, w in zip(inputs, grads, wants, strict=True):
                if w and g is not None:
                    gradients.add(t, g)
        return gradients

    def _reduce_cost(
        self, cost: NDArray, cost_batched: bool, batch_size: int, reduction: CostReduction
    ) -> Scalar:
        """The batch's cost as ``reduction`` asks; for NONE a zero, which nothing reads back
        (``ZeroScalars``: cut from a block made once per 256 calls, so that neither an eager
        nor a captured call pays an allocation and a fill for it; no Program records it)."""
        math = self.math
        if reduction == CostReduction.NONE:
            return self._zeros.next(math)
        if cost_batched:
            total = math.sum(cost) if reduction == CostReduction.SUM else math.mean(cost)
        elif reduction == CostReduction.SUM:
            total = math.multiply(cost, Scalar.new(batch_size, math=math))
        else:
            total = alias(cost)  # the cost's own value
        return total  # type: ignore[return-value]
