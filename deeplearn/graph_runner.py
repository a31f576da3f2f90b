"""GraphRunner: a training and inference loop around a Session, reporting to an observer.

deeplearn.js ran the loop on ``requestAnimationFrame``; here ``train`` and ``infer`` run in the
caller's thread by default (returning when the run ends, or when a callback calls
``stop_training``/``stop_inferring``), or in a background thread (``background=True``) that
``stop_training()``/``stop_inferring()`` end and join. Session calls are serialised by a lock, so
training and inference threads can share one Session. Metric and inference passes run batched
(``Session.eval_batch``), like training. ``TensorBoardLogger`` is an event observer that writes a
run's cost, metric and examples per second for TensorBoard (tensorboardX, the ``train`` extra).
"""

from __future__ import annotations

import enum
import math as pymath
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from deeplearn.data.input_provider import InputProvider, check_count, next_batch
from deeplearn.graph.feeds import provider_feeds
from deeplearn.graph.session import CostReduction, FeedEntry, normalize_feeds
from deeplearn.math.ndarray import NDArray, Scalar

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.graph.optimizers.optimizer import Optimizer
    from deeplearn.graph.session import Feeds, Session
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["GraphRunner", "GraphRunnerEventObserver", "MetricReduction", "TensorBoardLogger"]


class MetricReduction(enum.IntEnum):
    """How the metric of ``metric_batch_size`` examples is reduced."""

    SUM = 0
    MEAN = 1


@dataclass
class GraphRunnerEventObserver:
    """Callbacks a GraphRunner calls (each optional).

    batches_trained_callback(total_batches_trained), avg_cost_callback(avg_cost: Scalar),
    metric_callback(metric: NDArray), inference_examples_callback(feeds: list[list[FeedEntry]],
    inference_values: list[NDArray]), inference_examples_per_sec_callback(n),
    train_examples_per_sec_callback(n), total_time_callback(total_time_sec),
    done_training_callback(). The arrays passed are valid during the callback; keep() them (or
    copy their values) to use them later.
    """

    batches_trained_callback: Callable[[int], Any] | None = None
    avg_cost_callback: Callable[[Scalar], Any] | None = None
    metric_callback: Callable[[NDArray], Any] | None = None
    inference_examples_callback: Callable[[list[list[FeedEntry]], list[NDArray]], Any] | None = None
    inference_examples_per_sec_callback: Callable[[float], Any] | None = None
    train_examples_per_sec_callback: Callable[[float], Any] | None = None
    total_time_callback: Callable[[float], Any] | None = None
    done_training_callback: Callable[[], Any] | None = None


class TensorBoardLogger(GraphRunnerEventObserver):
    """An event observer that writes a GraphRunner's training for TensorBoard (tensorboardX, the
    ``train`` extra): give it to the runner as its observer, with your own ``observer`` beside it.

    Scalars, each at the step the runner had reached (its ``total_batches_trained``, counting
    the batch the value was computed after):

    - ``cost``: the batch's mean cost, whenever the runner computes it (``cost_interval_ms``);
    - ``metric`` (or ``metric_name``): the metric, whenever the runner computes it
      (``eval_interval_ms``); a metric of several values gives ``metric/0``, ``metric/1``, ...;
    - ``examples_per_sec``: the training speed over the batches since the last value, written
      with each cost and when training ends.

    Args:
        log_dir: the run's folder (created where missing); point ``tensorboard --logdir`` at it
            or at its parent.
        observer: another observer whose callbacks are called too, after the logger's: the
            callbacks it has now.
        metric_name: the metric's tag, e.g. ``"accuracy"``.
        flush_secs: how often tensorboardX's writer thread writes the values logged to the file
            (they are queued until then); ``close()``, or the end of a ``with`` block, writes
            them all and closes the file.

    Raises:
        ImportError: tensorboardX is not installed (``pip install 'deeplearn[train]'``).

    Example:
        >>> import os, tempfile
        >>> from deeplearn.graph_runner import TensorBoardLogger
        >>> g = dl.Graph(); x = g.placeholder("x", []); w = g.variable("w", Scalar.new(0))
        >>> cost = g.mean_squared_cost(g.multiply(w, x), g.multiply(g.constant(3), x))
        >>> (p,) = dl.InCPUMemoryShuffledInputProviderBuilder([[Scalar.new(1), Scalar.new(2)]]).get_input_providers()
        >>> log_dir = tempfile.mkdtemp()
        >>> with TensorBoardLogger(log_dir) as logger:
        ...     runner = dl.GraphRunner(math, dl.Session(g, math), logger)
        ...     runner.train(cost, [dl.FeedEntry(x, p)], 2, dl.SGDOptimizer(0.1), num_batches=20)
        >>> logger.step, os.listdir(log_dir)[0].startswith("events.out.tfevents.")
        (20, True)
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        *,
        observer: GraphRunnerEventObserver | None = None,
        metric_name: str = "metric",
        flush_secs: float = 10,
    ) -> None:
        where = "TensorBoardLogger"
        if not isinstance(metric_name, str) or not metric_name:
            raise ValueError(
                f"{where}: metric_name must be a non-empty str; got metric_name={metric_name!r}."
            )
        real = isinstance(flush_secs, (int, float)) and not isinstance(flush_secs, bool)
        if not real or not 0 < flush_secs < pymath.inf:  # NaN fails
            raise ValueError(
                f"{where}: flush_secs must be a number of seconds > 0; got flush_secs={flush_secs!r}."
            )
        other = observer if observer is not None else GraphRunnerEventObserver()
        if not isinstance(other, GraphRunnerEventObserver):
            raise TypeError(
                f"{where}: observer must be a GraphRunnerEventObserver or None; got {type(other).__name__}."
            )
        self.log_dir = os.fspath(log_dir)
        self.writer = _summary_writer(where)(logdir=self.log_dir, flush_secs=flush_secs)
        self.observer = other
        self.metric_name = metric_name
        self.step = 0
        self._pending_metric: np.ndarray | None = None  # computed before the step it belongs to
        self._seconds_per_example = 0.0  # since examples_per_sec was last written
        self._batches = 0
        self._cost_written = False
        super().__init__(
            batches_trained_callback=self._on_batches_trained,
            avg_cost_callback=self._on_cost,
            metric_callback=self._on_metric,
            inference_examples_callback=other.inference_examples_callback,
            inference_examples_per_sec_callback=other.inference_examples_per_sec_callback,
            train_examples_per_sec_callback=self._on_examples_per_sec,
            total_time_callback=other.total_time_callback,
            done_training_callback=self._on_done,
        )

    def __repr__(self) -> str:
        return f"TensorBoardLogger(log_dir={self.log_dir!r}, metric_name={self.metric_name!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self) -> None:
        """Flushes the event file (values still in tensorboardX's queue wait for its writer
        thread; ``close()`` writes everything)."""
        self.writer.flush()

    def close(self) -> None:
        """Writes what is logged and closes the event file."""
        self.writer.close()

    # The runner calls, per batch: metric, total time, batches trained, cost, examples per
    # second. A metric is computed after the batch but reported before the count that includes
    # it, so it is written at the next count.
    def _on_metric(self, metric: NDArray) -> None:
        self._pending_metric = np.asarray(metric.get_values(), dtype=np.float64)
        if self.observer.metric_callback is not None:
            self.observer.metric_callback(metric)

    def _on_batches_trained(self, total_batches_trained: int) -> None:
        self.step = total_batches_trained
        if self._pending_metric is not None:
            values, self._pending_metric = self._pending_metric, None
            if values.size == 1:
                self._write(self.metric_name, float(values[0]))
            for i, value in enumerate(values if values.size > 1 else []):
                self._write(f"{self.metric_name}/{i}", float(value))
        if self.observer.batches_trained_callback is not None:
            self.observer.batches_trained_callback(total_batches_trained)

    def _on_cost(self, cost: Scalar) -> None:
        self._write("cost", float(cost.get()))
        self._cost_written = True
        if self.observer.avg_cost_callback is not None:
            self.observer.avg_cost_callback(cost)

    def _on_examples_per_sec(self, examples_per_sec: float) -> None:
        # Batches have one size per run: the speed over several is the harmonic mean.
        self._seconds_per_example += 1 / examples_per_sec if examples_per_sec > 0 else pymath.inf
        self._batches += 1
        if self._cost_written:
            self._write_speed()
        if self.observer.train_examples_per_sec_callback is not None:
            self.observer.train_examples_per_sec_callback(examples_per_sec)

    def _on_done(self) -> None:
        self._write_speed()
        self.writer.flush()
        if self.observer.done_training_callback is not None:
            self.observer.done_training_callback()

    def _write_speed(self) -> None:
        if self._batches and 0 < self._seconds_per_example < pymath.inf:
            self._write("examples_per_sec", self._batches / self._seconds_per_example)
        self._seconds_per_example, self._batches, self._cost_written = 0.0, 0, False

    def _write(self, tag: str, value: float) -> None:
        self.writer.add_scalar(tag, value, global_step=self.step)


def _summary_writer(where: str) -> Any:
    """tensorboardX's SummaryWriter class, imported when first needed."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError(f"{where}: needs tensorboardX (pip install 'deeplearn[train]'); got {e}.") from e
    return SummaryWriter


class GraphRunner:
    """Trains (and runs inference with) a Session batch after batch.

    Example:
        >>> g = dl.Graph(); x = g.placeholder("x", []); w = g.variable("w", Scalar.new(0))
        >>> cost = g.mean_squared_cost(g.multiply(w, x), g.multiply(g.constant(3), x))
        >>> (p,) = dl.InCPUMemoryShuffledInputProviderBuilder([[Scalar.new(1), Scalar.new(2)]]).get_input_providers()
        >>> costs = []
        >>> runner = dl.GraphRunner(math, dl.Session(g, math), dl.GraphRunnerEventObserver(
        ...     avg_cost_callback=lambda c: costs.append(c.get())))
        >>> runner.train(cost, [dl.FeedEntry(x, p)], 2, dl.SGDOptimizer(0.1), num_batches=50, cost_interval_ms=0)
        >>> runner.get_total_batches_trained(), costs[-1] < costs[0]
        (50, True)
    """

    def __init__(
        self, math: NDArrayMath, session: Session, event_observer: GraphRunnerEventObserver | None = None
    ) -> None:
        self.math = math
        self.session = session
        self.event_observer = event_observer or GraphRunnerEventObserver()
        self._lock = threading.RLock()  # one Session call at a time
        self._train_thread: threading.Thread | None = None
        self._infer_thread: threading.Thread | None = None
        self._is_training = False
        self._is_inferring = False
        self._stop_event = threading.Event()
        self._infer_stop_event = threading.Event()
        self.total_batches_trained = 0
        self.batches_trained_this_run = 0
        self.last_computed_metric: NDArray | None = None
        self.inference_tensor: Tensor | None = None
        self.inference_example_count = 5
        self._train_error: BaseException | None = None
        # What train() was last given (resume_training() reuses it).
        self.cost_tensor: Tensor | None = None
        self.train_feed_entries: list[FeedEntry] = []
        self.batch_size = 1
        self.optimizer: Optimizer | None = None
        self.num_batches: int | None = None
        self.metric_tensor: Tensor | None = None
        self.metric_feed_entries: list[FeedEntry] | None = None
        self.metric_batch_size: int | None = None
        self.metric_reduction = MetricReduction.MEAN
        self.eval_interval_ms: float = 1500
        self.cost_interval_ms: float = 500
        self._background = False
        self._progress: bool | None = None
        self._train_start = time.perf_counter()
        self._last_cost_time = float("-inf")
        self._last_eval_time = float("-inf")
        self.inference_feed_entries: list[FeedEntry] = []
        self.inference_example_interval_ms: float = 3000
        self.num_inference_passes: int | None = None
        self.inference_passes_this_run = 0

    # -- training --------------------------------------------------------------------------
    def train(
        self,
        cost_tensor: Tensor,
        train_feed_entries: Feeds,
        batch_size: int,
        optimizer: Optimizer,
        num_batches: int | None = None,
        metric_tensor: Tensor | None = None,
        metric_feed_entries: Feeds = None,
        metric_batch_size: int | None = None,
        metric_reduction: MetricReduction = MetricReduction.MEAN,
        eval_interval_ms: float = 1500,
        cost_interval_ms: float = 500,
        *,
        background: bool = False,
        progress: bool | None = None,
    ) -> None:
        """Trains ``num_batches`` batches (None: until ``stop_training``).

        The batch's MEAN cost is computed (and ``avg_cost_callback`` called) at most every
        ``cost_interval_ms``, other batches train with CostReduction.NONE to avoid reading
        costs back; the metric — ``metric_tensor`` over ``metric_batch_size`` examples of
        ``metric_feed_entries``, summed or averaged — at most every ``eval_interval_ms``.

        Args:
            background: run in a background thread and return at once.
            progress: show a tqdm progress bar (the ``train`` extra); None shows one when
                stdout is a terminal and tqdm is installed.
        """
        # Every argument is checked before anything changes: a refused call leaves the runner
        # (and a run under way) as it was.
        where = "GraphRunner.train"
        batch_size = check_count(batch_size, where, "batch_size")
        num_batches = (
            None if num_batches is None else check_count(num_batches, where, "num_batches", minimum=0)
        )
        metric_batch_size = (
            None if metric_batch_size is None else check_count(metric_batch_size, where, "metric_batch_size")
        )
        feeds = normalize_feeds(train_feed_entries, where)
        metric_feeds = None if metric_feed_entries is None else normalize_feeds(metric_feed_entries, where)
        reduction = _check_reduction(metric_reduction, where)
        eval_interval_ms = _check_interval(eval_interval_ms, where, "eval_interval_ms")
        cost_interval_ms = _check_interval(cost_interval_ms, where, "cost_interval_ms")
        self._stop_current_training()
        self.cost_tensor = cost_tensor
        self.train_feed_entries = feeds
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.num_batches = num_batches
        self.metric_tensor = metric_tensor
        self.metric_feed_entries = metric_feeds
        self.metric_batch_size = metric_batch_size
        self.metric_reduction = reduction
        self.eval_interval_ms = eval_interval_ms
        self.cost_interval_ms = cost_interval_ms
        self._background = background
        self._progress = progress
        if self.last_computed_metric is not None:
            self.last_computed_metric.dispose()
            self.last_computed_metric = None
        self.reset_statistics()
        self._last_cost_time = float("-inf")
        self._last_eval_time = float("-inf")
        self._train_start = time.perf_counter()
        self.resume_training()

    def resume_training(self) -> None:
        """(Re)starts the training loop with the arguments of the last ``train`` call."""
        if self.cost_tensor is None or self.optimizer is None:
            raise ValueError("GraphRunner.resume_training: nothing to resume; call train() first.")
        self._stop_current_training()
        self._is_training = True
        self.batches_trained_this_run = 0  # num_batches counts per run, as deeplearn.js's resumeTraining
        self._stop_event.clear()
        self._train_error = None
        if self._background:
            self._train_thread = threading.Thread(
                target=self._train_loop, name="GraphRunner.train", daemon=True
            )
            self._train_thread.start()
        else:
            self._train_loop()

    def stop_training(self) -> None:
        """Ends the training loop after the current batch (joining a background thread)."""
        self._is_training = False
        self._stop_event.set()
        thread = self._train_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            self._train_thread = None
        self._raise_train_error()

    def is_training_running(self) -> bool:
        return self._is_training

    def reset_statistics(self) -> None:
        self.total_batches_trained = 0

    def get_total_batches_trained(self) -> int:
        return self.total_batches_trained

    def get_last_computed_metric(self) -> NDArray | None:
        return self.last_computed_metric

    def set_math(self, math: NDArrayMath) -> None:
        self.math = math

    def set_session(self, session: Session) -> None:
        self.session = session

    def set_inference_tensor(self, inference_tensor: Tensor) -> None:
        self.inference_tensor = inference_tensor

    def set_inference_example_count(self, inference_example_count: int) -> None:
        """How many examples each inference pass draws (>= 1)."""
        self.inference_example_count = check_count(
            inference_example_count, "GraphRunner.set_inference_example_count", "inference_example_count"
        )

    def compute_metric(self) -> NDArray:
        """The metric tensor over ``metric_batch_size`` examples, summed or averaged (a new
        array in the caller's scope)."""
        if self.metric_feed_entries is None or self.metric_tensor is None:
            raise ValueError(
                "GraphRunner.compute_metric: no metric tensor and metric feed entries were given to train()."
            )
        n = self.metric_batch_size or 1
        math = self.math
        with self._lock:
            if hasattr(self.session, "eval_batch"):
                values = self.session.eval_batch(self.metric_tensor, self.metric_feed_entries, n)
                total = math.sum(values.as_type("float32") if values.dtype != "float32" else values, 0)
            else:  # a Session without batched evaluation (deeplearn.js's interface)
                total = None
                for _ in range(n):
                    value = self.session.eval(self.metric_tensor, self.metric_feed_entries)
                    value = value.as_type("float32") if value.dtype != "float32" else value
                    total = value if total is None else math.add(total, value)
        assert total is not None  # n >= 1
        if self.metric_reduction == MetricReduction.MEAN:
            total = math.divide(total, Scalar.new(n, math=math))
        return total

    def _train_loop(self) -> None:
        bar = self._make_progress_bar()
        try:
            while True:
                if self.num_batches is not None and self.batches_trained_this_run >= self.num_batches:
                    self._is_training = False
                    break
                if not self._is_training:
                    break
                self._train_one_batch(bar)
        except BaseException as e:
            self._is_training = False
            if threading.current_thread() is self._train_thread:
                self._train_error = e  # re-raised by stop_training() in the caller's thread
                return
            raise
        finally:
            if bar is not None:
                bar.close()
        if self.event_observer.done_training_callback is not None:
            self.event_observer.done_training_callback()

    def _train_one_batch(self, bar: Any) -> None:
        assert self.cost_tensor is not None and self.optimizer is not None  # set by train()
        obs = self.event_observer
        start = time.perf_counter()
        now_ms = start * 1e3
        compute_cost = (
            obs.avg_cost_callback is not None and now_ms - self._last_cost_time >= self.cost_interval_ms
        )
        if compute_cost:
            self._last_cost_time = now_ms
        reduction = CostReduction.MEAN if compute_cost else CostReduction.NONE
        with self.math.scope():
            with self._lock:
                avg_cost = self.session.train(
                    self.cost_tensor, self.train_feed_entries, self.batch_size, self.optimizer, reduction
                )
            compute_metric = (
                self.metric_tensor is not None
                and obs.metric_callback is not None
                and now_ms - self._last_eval_time >= self.eval_interval_ms
            )
            if compute_metric:
                self._last_eval_time = now_ms
                metric = self.math.keep(self.compute_metric())
                if self.last_computed_metric is not None:
                    self.last_computed_metric.dispose()
                self.last_computed_metric = metric
                obs.metric_callback(metric)  # type: ignore[misc]
            if obs.total_time_callback is not None:
                obs.total_time_callback(start - self._train_start)
            self.batches_trained_this_run += 1
            self.total_batches_trained += 1
            if obs.batches_trained_callback is not None:
                obs.batches_trained_callback(self.total_batches_trained)
            if compute_cost:
                obs.avg_cost_callback(avg_cost)  # type: ignore[misc]
            if bar is not None:
                bar.update(1)
                if compute_cost:
                    bar.set_postfix(cost=f"{avg_cost.get():.4g}", refresh=False)
        if obs.train_examples_per_sec_callback is not None:
            elapsed = time.perf_counter() - start
            obs.train_examples_per_sec_callback(self.batch_size / elapsed if elapsed > 0 else float("inf"))

    def _make_progress_bar(self) -> Any:
        show = self._progress
        if show is None:
            show = bool(getattr(sys.stdout, "isatty", lambda: False)())
        if not show:
            return None
        try:
            from tqdm import tqdm  # type: ignore[import-untyped, unused-ignore]
        except ImportError:
            if self._progress:
                raise ImportError(
                    "GraphRunner: progress=True needs tqdm (pip install 'deeplearn[train]')."
                ) from None
            return None
        return tqdm(total=self.num_batches, unit="batch", desc="training", leave=False)

    def _stop_current_training(self) -> None:
        if self._train_thread is not None and self._train_thread is not threading.current_thread():
            self.stop_training()

    def _raise_train_error(self) -> None:
        error, self._train_error = self._train_error, None
        if error is not None:
            raise error

    # -- inference -------------------------------------------------------------------------
    def infer(
        self,
        inference_tensor: Tensor,
        inference_feed_entries: Feeds,
        inference_example_interval_ms: float = 3000,
        inference_example_count: int = 5,
        num_passes: int | None = None,
        *,
        background: bool = False,
    ) -> None:
        """Every ``inference_example_interval_ms``, evaluates ``inference_tensor`` on
        ``inference_example_count`` examples drawn from the feeds' InputProviders (one batched
        pass) and reports them; stops after ``num_passes`` passes (None: until
        ``stop_inferring``)."""
        # Checked before anything is drawn: a count refused after the providers moved would
        # leave them ahead of the providers they pair with.
        where = "GraphRunner.infer"
        count = check_count(inference_example_count, where, "inference_example_count")
        num_passes = None if num_passes is None else check_count(num_passes, where, "num_passes", minimum=0)
        interval = _check_interval(inference_example_interval_ms, where, "inference_example_interval_ms")
        obs = self.event_observer
        if obs.inference_examples_callback is None and obs.inference_examples_per_sec_callback is None:
            raise ValueError(
                f"{where}: no inference_examples_callback or "
                "inference_examples_per_sec_callback to report to."
            )
        entries = provider_feeds(inference_feed_entries, where)
        self.stop_inferring()
        self.inference_tensor = inference_tensor
        self.inference_feed_entries = entries
        self.inference_example_interval_ms = interval
        self.inference_example_count = count
        self.num_inference_passes = num_passes
        self.inference_passes_this_run = 0
        self._is_inferring = True
        self._infer_stop_event.clear()
        if background:
            self._infer_thread = threading.Thread(
                target=self._infer_loop, name="GraphRunner.infer", daemon=True
            )
            self._infer_thread.start()
        else:
            self._infer_loop()

    def stop_inferring(self) -> None:
        """Ends the inference loop (joining a background thread)."""
        self._is_inferring = False
        self._infer_stop_event.set()
        thread = self._infer_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            self._infer_thread = None

    def is_inference_running(self) -> bool:
        return self._is_inferring

    def _infer_loop(self) -> None:
        while self._is_inferring:
            if (
                self.num_inference_passes is not None
                and self.inference_passes_this_run >= self.num_inference_passes
            ):
                break
            self._infer_one_pass()
            self.inference_passes_this_run += 1
            done = (
                self.num_inference_passes is not None
                and self.inference_passes_this_run >= self.num_inference_passes
            )
            interval = self.inference_example_interval_ms  # inf: wait for stop_inferring()
            if done or self._infer_stop_event.wait(None if interval == float("inf") else interval / 1e3):
                break
        self._is_inferring = False

    def _infer_one_pass(self) -> None:
        assert self.inference_tensor is not None  # set by infer()
        obs = self.event_observer
        math = self.math
        n = self.inference_example_count
        with math.scope():
            start = time.perf_counter()
            with self._lock:
                batches = [(e.tensor, next_batch(e.data, math, n)) for e in self.inference_feed_entries]
                values = self.session.eval_batch(
                    self.inference_tensor, [FeedEntry(t, _Fixed(b)) for t, b in batches], n
                )
            if obs.inference_examples_per_sec_callback is not None:
                values.data_sync()  # wait for the device: results are wanted on the host
                elapsed = time.perf_counter() - start
                obs.inference_examples_per_sec_callback(n / elapsed if elapsed > 0 else float("inf"))
            if obs.inference_examples_callback is not None:
                feeds = [[FeedEntry(t, _example(math, b, i)) for t, b in batches] for i in range(n)]
                obs.inference_examples_callback(feeds, [_example(math, values, i) for i in range(n)])


def _check_reduction(metric_reduction: Any, where: str) -> MetricReduction:
    try:
        return MetricReduction(metric_reduction)
    except ValueError:
        names = ", ".join(r.name for r in MetricReduction)
        raise ValueError(
            f"{where}: metric_reduction must be a MetricReduction ({names}); "
            f"got metric_reduction={metric_reduction!r}."
        ) from None


def _check_interval(value: Any, where: str, name: str) -> float:
    """A wait in milliseconds: a real number >= 0 (inf: never again), not NaN and not a bool."""
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not real or not value >= 0:  # NaN fails >= 0
        raise ValueError(f"{where}: {name} must be a number of milliseconds >= 0; got {name}={value!r}.")
    return float(value)


class _Fixed(InputProvider):
    """Hands out one batch drawn beforehand (so the reported feeds are those evaluated)."""

    def __init__(self, batch: NDArray) -> None:
        self.batch = batch

    def get_next_copy(self, math: NDArrayMath) -> NDArray:
        raise NotImplementedError("GraphRunner: this provider only gives its whole batch.")

    def dispose_copy(self, math: NDArrayMath, copy: NDArray) -> None:
        copy.dispose()

    def get_next_batch(self, math: NDArrayMath, batch_size: int) -> NDArray:
        return self.batch


def _example(math: NDArrayMath, batch: NDArray, i: int) -> NDArray:
    """Example ``i`` of a batch (a copy), for reporting."""
    rest = batch.shape[1:]
    return math.slice(batch, [i] + [0] * len(rest), [1, *rest]).reshape(rest)
