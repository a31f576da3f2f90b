"""Session: evaluates and trains a Graph on one NDArrayMath, batched.

``eval``/``eval_all`` run the needed subgraph on one example. ``train`` draws ``batch_size``
examples from each InputProvider, stacks them along a leading batch axis and runs every node once
on the batch (docs/design.md §5): the gradients that reach variables are the sums of the per-example
gradients, exactly deeplearn.js's per-example loop. The Session holds no per-op code; each node's
batch rule (``batching.py``) runs it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from deeplearn.compile.materialize import resolve
from deeplearn.data.input_provider import InputProvider
from deeplearn.graph.feeds import (
    FeedEntry,
    Feeds,
    Rows,
    check_batch_size,
    load_feeds,
    normalize_feeds,
    provider_feeds,
    same_feeds,
)
from deeplearn.graph.graph import Graph, Tensor
from deeplearn.graph.plan import Plan, forget_oldest
from deeplearn.graph.rule_steps import CostReduction, RuleSteps
from deeplearn.graph.session_values import NOTHING
from deeplearn.graph.zeros import ZeroScalars
from deeplearn.graph.rerun import Rerun, Reruns
from deeplearn.graph.tensor_array_map import SummedTensorArrayMap, TensorArrayMap
from deeplearn.math.ndarray import NDArray, Scalar, Storage
from deeplearn.types import ShapeError

if TYPE_CHECKING:
    from deeplearn.graph.optimizers.optimizer import Optimizer
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["CostReduction", "FeedEntry", "Feeds", "Session", "normalize_feeds"]  # feeds' names: as before

_M = TypeVar("_M", bound=Callable[..., Any])

_MAX_PLANS = 64  # per Session: one per (tensors asked for, fed tensors)
_MAX_RERUNS = 8  # per Session: one per (cost, optimizer, batch size, cost reduction)


def _serialized(method: _M) -> _M:
    """Runs a Session method holding the Session's lock (see Session.__init__)."""

    @functools.wraps(method)
    def locked(self: Session, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


class Session(RuleSteps):
    """Runs a Graph on ``math``. (How a call runs through the batch rules and records its
    kernels: ``RuleSteps``, ``deeplearn/graph/rule_steps.py``; how it runs a recorded Program:
    ``RecordedCalls``, ``deeplearn/graph/recorded.py``; the values it reads and keeps:
    ``SessionValues``, ``deeplearn/graph/session_values.py``.)

    ``activation_array_map`` holds, after each call, the value of every tensor it computed
    (with the batch axis after ``train``) and every variable's current value;
    ``gradient_array_map`` holds the gradients of the last ``train``. Both are kept until the
    next call (or ``dispose``); their arrays are made when first read.

    Speed: the first call of a step (the tensors asked for, which feeds carry a batch, the
    batch size; for training, the optimizer's class and the cost reduction) records its
    kernels as a Program (``deeplearn/compile/``): forward, backward, the optimizer's update
    and the cost's reduction. Later calls run the Program without the graph's rules
    (``replay_plans``), and a training step runs compiled (``capture_plans``): on CUDA as one
    CUDA graph, its chains of element-wise kernels fused into one kernel each
    (``fuse_kernels``), its independent kernels side by side on ``capture_lanes`` streams;
    on the CPU as one generated function writing into arrays made once; on both the
    variables and the optimizer's state updated in place. Set the flags to False (the lanes
    to 1) to run every call through the rules, kernel by kernel, unfused, or in one stream.

    Example:
        >>> g = dl.Graph()
        >>> x = g.placeholder("x", [2])
        >>> y = g.add(g.square(x), g.constant(3))
        >>> dl.Session(g, math).eval(y, [{"tensor": x, "data": Array1D.new([5, 4])}]).get_values()
        array([28., 19.], dtype=float32)
    """

    def __init__(self, graph: Graph, math: NDArrayMath) -> None:
        self.graph = graph
        self.math = math
        self.activation_array_map = TensorArrayMap()
        self.gradient_array_map = SummedTensorArrayMap(math)
        self._plans: dict[tuple[frozenset[Tensor], frozenset[Tensor]], Plan] = {}
        self._converted = {}
        # Record each plan's kernels once and replay them (replay.py); False runs every call
        # through the batch rules (the tests compare the two).
        self.replay_plans = True
        # Compile each recorded training step: on CUDA one CUDA graph (compile/cuda_graph.py),
        # on the CPU one function over arrays made once (compile/cpu_step.py); False replays
        # them kernel by kernel.
        self.capture_plans = True
        # Captured steps run their chains of element-wise kernels as one kernel each
        # (deeplearn/compile/fusion.py); False keeps every kernel (read when a step is captured).
        self.fuse_kernels = True
        # ... and their independent kernels on up to this many CUDA streams, side by side
        # (deeplearn/compile/lanes.py); 1 keeps them in one stream (read when captured). Two
        # measured best on the H200 (cnn 963 -> 852 µs a step, mlp 85 -> 77; four: 886, 77).
        self.capture_lanes = 2
        # What a call leaves behind (their meanings: SessionValues, RecordedCalls).
        self._borrowed = None
        self._owned = NOTHING
        self._lent = []
        self._zeros = ZeroScalars()
        # One call at a time: a GraphRunner training in a background thread and the user's
        # eval in the main thread share the activations, the retained arrays and the variables.
        self._lock = threading.RLock()
        # (cost tensor, the feeds' entries, the plan) of the last training call: a training
        # loop passes the same feeds every time (same_feeds), so they are checked once.
        self._last_training_feeds: tuple[Tensor, list[FeedEntry], Plan] | None = None
        # The last training calls, ready to run again (rerun.py).
        self._reruns = Reruns(_MAX_RERUNS)
        self._compiled = {}
        self._last_compiled = None

    # -- public API ------------------------------------------------------------------------
    def eval(self, tensor: Tensor, feeds: Feeds = None) -> NDArray:
        """The value of ``tensor`` for one example; ``feeds`` give placeholders (or any tensor,
        which cuts the graph there) NDArrays or InputProviders (one example is drawn).

        Example:
            >>> g = dl.Graph(); x = g.placeholder("x", []); y = g.square(x)
            >>> dl.Session(g, math).eval(y, {x: Scalar.new(3)}).get()
            9.0
        """
        return self._eval_all([tensor], feeds, "Session.eval")[0]

    def eval_all(self, tensors: Sequence[Tensor], feeds: Feeds = None) -> list[NDArray]:
        """The values of ``tensors`` for one example (shared nodes run once). The results
        belong to the caller's scope.

        Example:
            >>> g = dl.Graph(); x = g.placeholder("x", []); sq = g.square(x)
            >>> y, z = dl.Session(g, math).eval_all([g.add(sq, g.constant(1)), sq], {x: Scalar.new(2)})
            >>> y.get(), z.get()
            (5.0, 4.0)
        """
        return self._eval_all(list(tensors), feeds, "Session.eval_all")

    @_serialized
    def _eval_all(self, tensors: list[Tensor], feeds: Feeds, where: str) -> list[NDArray]:
        self.math._check_safe_mode()  # the call opens a scope of its own: check the caller's first
        entries = normalize_feeds(feeds, where)
        plan = self._plan(list(tensors), entries, where)
        return self._run_inference(plan, list(tensors), entries, None, where)

    @_serialized
    def eval_batch(self, tensors: Tensor | Sequence[Tensor], feeds: Feeds, batch_size: int) -> Any:
        """The values of ``tensors`` for ``batch_size`` examples drawn from the feeds'
        InputProviders, each with a leading batch axis, computed in one batched pass (NDArray
        feeds are shared by every example). Not in deeplearn.js; GraphRunner uses it for its
        metric and inference passes.

        Example:
            >>> g = dl.Graph(); x = g.placeholder("x", [2]); y = g.reduce_sum(x)
            >>> (p,) = dl.InCPUMemoryShuffledInputProviderBuilder([[Array1D.new([1, 2])]]).get_input_providers()
            >>> dl.Session(g, math).eval_batch(y, {x: p}, 3).get_values()
            array([3., 3., 3.], dtype=float32)
        """
        single = isinstance(tensors, Tensor)
        wanted: list[Tensor] = [tensors] if isinstance(tensors, Tensor) else list(tensors)
        where = "Session.eval_batch"
        self.math._check_safe_mode()
        batch_size = check_batch_size(batch_size, where)
        entries = normalize_feeds(feeds, where)
        plan = self._plan(wanted, entries, where)
        out = self._run_inference(plan, wanted, entries, batch_size, where)
        return out[0] if single else out

    def train(
        self,
        cost_tensor: Tensor,
        feeds: Feeds,
        batch_size: int,
        optimizer: Optimizer,
        cost_reduction: CostReduction = CostReduction.NONE,
    ) -> Scalar:
        """Trains one batch: draws ``batch_size`` examples from every feed's InputProvider,
        runs the graph forward and backward once on the stacked batch, and lets ``optimizer``
        update the variables with the sum of the per-example gradients.

        Returns the batch's cost summed (SUM) or averaged (MEAN) over its examples, or a zero
        Scalar (NONE, which reads nothing back).

        Example:
            >>> g = dl.Graph(); x = g.placeholder("x", []); w = g.variable("w", Scalar.new(0))
            >>> cost = g.mean_squared_cost(g.multiply(w, x), g.multiply(g.constant(2), x))
            >>> (p,) = dl.InCPUMemoryShuffledInputProviderBuilder([[Scalar.new(1), Scalar.new(2)]]).get_input_providers()
            >>> s = dl.Session(g, math)
            >>> for _ in range(100): _ = s.train(cost, [dl.FeedEntry(x, p)], 2, dl.SGDOptimizer(0.1))
            >>> round(s.eval(w).get(), 3)
            2.0
        """
        where = "Session.train"
        # (The Session's lock taken here rather than by @_serialized: a training loop calls
        # this every step, and the decorator's wrapper costs a call and packed arguments.)
        with self._lock:
            self.math._check_safe_mode()
            rerun = self._reruns.find(cost_tensor, feeds, batch_size, optimizer, cost_reduction)
            if rerun is not None:
                again = self._train_again(rerun, where)
                if again is not None:
                    return again
            if not all(
                callable(getattr(optimizer, m, None)) for m in ("before_batch", "after_batch", "bound_arrays")
            ):
                raise TypeError(
                    f"{where}: optimizer must be an Optimizer (SGDOptimizer(0.1), ...); got {optimizer!r}."
                )
            if not isinstance(cost_tensor, Tensor) or cost_tensor.shape != ():
                raise ShapeError(
                    f"{where}: the cost tensor must be a scalar; got cost_tensor={cost_tensor!r}."
                )
            batch_size = check_batch_size(batch_size, where)
            if type(cost_reduction) is not CostReduction:
                cost_reduction = CostReduction(cost_reduction)
            last = self._last_training_feeds
            if last is not None and last[0] is cost_tensor and same_feeds(feeds, last[1]):
                entries, plan = last[1], last[2]  # the feeds of the last call, checked then
            else:
                entries = provider_feeds(feeds, where, " (training draws batch_size examples from each)")
                plan = self._plan([cost_tensor], entries, where)
                self._last_training_feeds = (cost_tensor, entries, plan)
            step = plan.step(plan.fed, batch_size)  # every feed is an InputProvider: all batched
            for node in plan.sources:  # a disposed variable raises before any batch is drawn (as a rerun)
                self._input_value(node, where)
            self._release_retained()
            math = self.math
            math.start_scope()
            result: Scalar | None = None
            try:
                rows: Rows = {}
                values = load_feeds(entries, step.batched, batch_size, self.math, where, rows)
                # One step at a time per optimizer: Sessions in other threads may share it, and a
                # step reads and writes its per-batch fields (the variables, the scalars, Adam's t).
                with optimizer.lock:
                    optimizer.before_batch(math, batch_size, plan.variables)
                    result, gradients = self._train_step(
                        plan, step, values, rows, batch_size, cost_tensor, optimizer, cost_reduction, where
                    )
                if gradients is not None:
                    self._retain(values, gradients)
                else:  # a Program ran: the next identical call can run it again at once
                    self._reruns.remember(
                        entries,
                        cost_tensor,
                        batch_size,
                        optimizer,
                        cost_reduction,
                        plan,
                        step,
                        rows,
                        bool(values),
                    )
            finally:
                math.end_scope(result)
            return result

    def _train_again(self, rerun: Rerun, where: str) -> Scalar | None:
        """Runs the last training call's Program again (``deeplearn/graph/rerun.py``); None,
        having run nothing and moved no provider, when something it relied on changed (then
        the ordinary path runs the call)."""
        if not self.replay_plans or self.math.engine._careful:  # (_replayable, written out)
            return None
        optimizer, program = rerun.optimizer, rerun.program
        unread = self._release_unread(program)
        with optimizer.lock:
            optimizer.before_batch(self.math, rerun.batch_size, rerun.plan.variables)
            raws = rerun.inputs(self.math, self._input_value, where)
            if raws is None:
                return None
            slots, captured = self._execute(program, raws, True, drawn=True)
            if unread is not None and (captured is None or slots is not unread[0].slots):
                unread = None  # (other slots: the maps made from them by a Materializer of their own)
            return self._finish_training(program, slots, captured, optimizer, unread)

    @_serialized
    def dispose(self) -> None:
        """Frees what the Session keeps between calls (activations, gradients, copies)."""
        self._release_retained()
        for array in self._converted.values():
            array.dispose()
        self._converted.clear()
        self._plans.clear()
        self._reruns.clear()
        self._compiled.clear()
        self._last_compiled = None
        self._last_training_feeds = None

    # -- plans -----------------------------------------------------------------------------
    def _plan(self, tensors: list[Tensor], entries: list[FeedEntry], where: str) -> Plan:
        fed = frozenset(e.tensor for e in entries)
        key = (frozenset(tensors), fed)
        plan = self._plans.get(key)
        if plan is None:
            plan = Plan.of(self.graph, tensors, fed, where)
            forget_oldest(self._plans, _MAX_PLANS)
            self._plans[key] = plan
        return plan

    # -- execution -------------------------------------------------------------------------
    def _run_inference(
        self, plan: Plan, tensors: list[Tensor], entries: list[FeedEntry], batch_size: int | None, where: str
    ) -> list[NDArray]:
        batched_fed = (
            frozenset(e.tensor for e in entries if isinstance(e.data, InputProvider))
            if batch_size is not None
            else frozenset()
        )
        step = plan.step(batched_fed, batch_size)
        self._release_retained()
        math = self.math
        math.start_scope()
        results: list[NDArray] | None = None
        try:
            rows: Rows = {}
            values = load_feeds(entries, step.batched, batch_size, self.math, where, rows)
            model = self._model_storages(plan, values, where)
            self._run_step(plan, step, values, rows, where, tensors)
            results = []
            for t in tensors:
                value = values[t] = resolve(values[t])
                if batch_size is not None and not step.batched[t]:  # the same value for every example
                    value = math.multiply(NDArray.ones((batch_size,) + (1,) * t.rank, math=math), value)
                # The caller's scope owns a fresh view, or a copy where the value is a variable's,
                # a constant's or a fed array's data (or a view of it): writing into a result
                # must never change the model or the caller's feeds.
                results.append(math.clone(value) if value.storage in model else value._view())
            self._retain(values, None)
        finally:
            math.end_scope(results)
        return results

    def _model_storages(self, plan: Plan, fed: Mapping[Tensor, NDArray], where: str) -> set[Storage]:
        """The storages of what a call reads but does not own: the fed arrays, the variables'
        and constants' data."""
        storages = {x.storage for x in fed.values()}
        storages.update(self._input_value(n, where).storage for n in plan.sources)
        return storages
