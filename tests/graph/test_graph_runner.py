"""GraphRunner: the training loop and its callbacks, intervals, metric, stopping (in the caller's
thread and in a background thread), inference, and the optional progress bar."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import (
    FeedEntry,
    Graph,
    GraphRunner,
    GraphRunnerEventObserver,
    MetricReduction,
    Scalar,
    Session,
)
from tests.graph.helpers import ListProvider


def _setup() -> tuple[dl.NDArrayMath, Session, dl.Tensor, dl.Tensor, dl.Tensor, list[FeedEntry]]:
    math = dl.NDArrayMathCPU()
    g = Graph()
    x = g.placeholder("x", [])
    w = g.variable("w", Scalar.new(0, math=math))
    y = g.multiply(w, x)
    cost = g.mean_squared_cost(y, g.multiply(g.constant(3), x))
    provider = ListProvider([1.0, 2.0, 3.0, 4.0])
    return math, Session(g, math), x, y, cost, [FeedEntry(x, provider)]


def test_train_calls_every_callback() -> None:
    math, session, x, y, cost, feeds = _setup()
    calls: dict[str, list[object]] = {k: [] for k in ("batches", "cost", "metric", "eps", "time", "done")}
    observer = GraphRunnerEventObserver(
        batches_trained_callback=lambda n: calls["batches"].append(n),
        avg_cost_callback=lambda c: calls["cost"].append(c.get()),
        metric_callback=lambda m: calls["metric"].append(m.get()),
        train_examples_per_sec_callback=lambda n: calls["eps"].append(n),
        total_time_callback=lambda t: calls["time"].append(t),
        done_training_callback=lambda: calls["done"].append(True),
    )
    runner = GraphRunner(math, session, observer)
    runner.train(cost, feeds, 2, dl.SGDOptimizer(0.01), num_batches=3, metric_tensor=y,
                 metric_feed_entries=[FeedEntry(x, ListProvider([1.0, 2.0]))], metric_batch_size=2,
                 metric_reduction=MetricReduction.MEAN, eval_interval_ms=0, cost_interval_ms=0)
    assert calls["batches"] == [1, 2, 3] and calls["done"] == [True]
    assert len(calls["cost"]) == len(calls["metric"]) == len(calls["eps"]) == len(calls["time"]) == 3
    assert all(c > 0 for c in calls["eps"]) and calls["time"] == sorted(calls["time"])
    assert calls["cost"][0] == pytest.approx(np.mean([0.5 * 9, 0.5 * 36]))  # w = 0: ½(3x)² for x = 1, 2
    w_now = session.eval(session.graph.get_nodes()[1].output).get()
    assert runner.get_last_computed_metric().get() == pytest.approx(w_now * 1.5, rel=1e-5)  # mean of w·1, w·2
    assert runner.get_total_batches_trained() == 3 and not runner.is_training_running()


def test_intervals_limit_cost_and_metric_reads() -> None:
    math, session, _x, y, cost, feeds = _setup()
    costs, metrics = [], []
    runner = GraphRunner(math, session, GraphRunnerEventObserver(
        avg_cost_callback=lambda c: costs.append(c), metric_callback=lambda m: metrics.append(m)))
    runner.train(cost, feeds, 1, dl.SGDOptimizer(0.01), num_batches=5, metric_tensor=y,
                 metric_feed_entries=feeds, metric_batch_size=1, eval_interval_ms=1e9, cost_interval_ms=1e9)
    assert len(costs) == 1 and len(metrics) == 1  # the first batch only


def test_metric_sum_and_compute_metric() -> None:
    math, session, x, y, cost, _ = _setup()
    g = session.graph
    w = g.get_nodes()[1].output
    runner = GraphRunner(math, session)
    with pytest.raises(ValueError, match="no metric tensor"):
        runner.compute_metric()
    with pytest.raises(ValueError, match="nothing to resume"):
        runner.resume_training()
    runner.train(cost, [FeedEntry(x, ListProvider([1.0]))], 1, dl.SGDOptimizer(0.0), num_batches=0,
                 metric_tensor=y, metric_feed_entries=[FeedEntry(x, ListProvider([1.0, 2.0, 3.0]))],
                 metric_batch_size=3, metric_reduction=MetricReduction.SUM)
    session.train(cost, [FeedEntry(x, ListProvider([1.0]))], 1, dl.SGDOptimizer(0.1))  # w = 0.6
    assert runner.compute_metric().get() == pytest.approx(session.eval(w).get() * 6, rel=1e-5)


def test_stop_training_from_a_callback_in_the_callers_thread() -> None:
    math, session, _x, _y, cost, feeds = _setup()
    done = []
    runner: GraphRunner

    def on_batch(n: int) -> None:
        if n == 4:
            runner.stop_training()

    runner = GraphRunner(math, session, GraphRunnerEventObserver(batches_trained_callback=on_batch,
                                                                 done_training_callback=lambda: done.append(1)))
    runner.train(cost, feeds, 1, dl.SGDOptimizer(0.01))  # num_batches None: until stopped
    assert runner.get_total_batches_trained() == 4 and done == [1]
    # resume_training continues the same run until stopped again
    runner.event_observer.batches_trained_callback = lambda n: runner.stop_training() if n == 6 else None
    runner.resume_training()
    assert runner.get_total_batches_trained() == 6


def test_background_training_is_stopped_cleanly() -> None:
    math, session, _x, _y, cost, feeds = _setup()
    started = threading.Event()
    threads: set[str] = set()
    runner = GraphRunner(math, session, GraphRunnerEventObserver(
        batches_trained_callback=lambda n: (threads.add(threading.current_thread().name),
                                            started.set() if n >= 5 else None)))
    runner.train(cost, feeds, 2, dl.SGDOptimizer(0.001), background=True)
    assert started.wait(10), "the background thread did not train"
    assert runner.is_training_running()
    runner.stop_training()
    n = runner.get_total_batches_trained()
    assert not runner.is_training_running() and runner._train_thread is None
    time.sleep(0.05)
    assert runner.get_total_batches_trained() == n  # really stopped
    assert threads == {"GraphRunner.train"}
    w = session.graph.get_nodes()[1].output
    assert 0 < session.eval(w).get() < 3  # trained towards 3; the main thread can use the session


def test_an_error_in_the_background_reaches_stop_training() -> None:
    math, session, x, _y, cost, _ = _setup()
    runner = GraphRunner(math, session)
    runner.train(cost, [FeedEntry(x, ListProvider([[1.0, 2.0]]))], 1, dl.SGDOptimizer(0.1),
                 num_batches=5, background=True)  # wrong example shape
    runner._train_thread.join(10)  # type: ignore[union-attr]
    with pytest.raises(dl.ShapeError, match="the feed for Tensor"):
        runner.stop_training()


def test_infer_reports_examples_and_their_values() -> None:
    math, session, x, y, cost, _ = _setup()
    reports = []
    rates = []
    runner = GraphRunner(math, session, GraphRunnerEventObserver(
        inference_examples_callback=lambda feeds, values: reports.append(
            ([[fe.data.get() for fe in example] for example in feeds], [v.get() for v in values])),
        inference_examples_per_sec_callback=lambda n: rates.append(n)))
    session.train(cost, [FeedEntry(x, ListProvider([1.0]))], 1, dl.SGDOptimizer(0.1))
    w = session.eval(session.graph.get_nodes()[1].output).get()
    runner.infer(y, [FeedEntry(x, ListProvider([1.0, 2.0, 3.0, 4.0, 5.0]))], 0, 3, num_passes=2)
    assert len(reports) == 2 and len(rates) == 2 and not runner.is_inference_running()
    assert reports[0][0] == [[1.0], [2.0], [3.0]] and reports[1][0] == [[4.0], [5.0], [1.0]]
    np.testing.assert_allclose(reports[0][1], [w, 2 * w, 3 * w], rtol=1e-6)
    with pytest.raises(TypeError, match="every feed must be an InputProvider"):
        runner.infer(y, [FeedEntry(x, Scalar.new(1))], 0, 1, num_passes=1)
    with pytest.raises(ValueError, match="no inference_examples_callback"):
        GraphRunner(math, session).infer(y, [FeedEntry(x, ListProvider([1.0]))])


def test_background_inference_stops() -> None:
    math, session, x, y, _cost, _ = _setup()
    seen = threading.Event()
    runner = GraphRunner(math, session, GraphRunnerEventObserver(inference_examples_callback=lambda f, v: seen.set()))
    runner.infer(y, [FeedEntry(x, ListProvider([1.0]))], 5, 1, background=True)
    assert seen.wait(10) and runner.is_inference_running()
    runner.stop_inferring()
    assert not runner.is_inference_running() and runner._infer_thread is None


def test_progress_bar_only_when_asked_or_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm", reason="the progress bar comes from tqdm (the train extra)")
    math, session, _x, _y, cost, feeds = _setup()
    runner = GraphRunner(math, session)
    runner.train(cost, feeds, 1, dl.SGDOptimizer(0.01), num_batches=3)  # stdout is captured: not a terminal
    assert "training" not in capsys.readouterr().err
    runner.train(cost, feeds, 1, dl.SGDOptimizer(0.01), num_batches=3, progress=True)
    assert "training" in capsys.readouterr().err


class _Js_Session:
    """A Session with deeplearn.js's methods only (no eval_batch), counting calls."""

    def __init__(self) -> None:
        self.train_calls: list[tuple[object, ...]] = []
        self.eval_calls = 0
        self.math = dl.NDArrayMathCPU()

    def train(self, *args: object) -> Scalar:
        self.train_calls.append(args)
        return Scalar.new(0.5, math=self.math)

    def eval(self, tensor: object, feeds: object) -> Scalar:
        self.eval_calls += 1
        return Scalar.new(self.eval_calls % 2, math=self.math)


def test_a_session_without_batched_eval_gets_one_eval_per_metric_example() -> None:
    session = _Js_Session()
    costs, metrics = [], []
    runner = GraphRunner(session.math, session, GraphRunnerEventObserver(  # type: ignore[arg-type]
        avg_cost_callback=lambda c: costs.append(c.get()), metric_callback=lambda m: metrics.append(m.get())))
    runner.train("cost", [], 10, "optimizer", num_batches=3, metric_tensor="metric",  # type: ignore[arg-type]
                 metric_feed_entries=[], metric_batch_size=10, eval_interval_ms=0, cost_interval_ms=0)
    assert len(session.train_calls) == 3 and session.eval_calls == 30
    assert costs == [0.5] * 3 and metrics == [0.5] * 3


def test_eval_in_the_main_thread_while_a_runner_trains_in_the_background() -> None:
    """Session calls are serialised by the Session itself, so a user's eval never reads
    variables that a background train step is replacing."""
    import threading
    import time

    math = dl.NDArrayMathCPU()
    g = dl.Graph()
    x, y = g.placeholder("x", [4]), g.placeholder("y", [2])
    out = g.layers.dense("o", g.layers.dense("h", x, 16, g.relu), 2)
    cost = g.mean_squared_cost(y, out)
    rng = np.random.default_rng(0)
    xs = rng.random((50, 4)).astype(np.float32)
    ys = np.eye(2, dtype=np.float32)[np.arange(50) % 2]
    px, py = dl.InCPUMemoryShuffledInputProviderBuilder([xs, ys], seed=0).get_input_providers()
    session = dl.Session(g, math)
    runner = dl.GraphRunner(math, session, dl.GraphRunnerEventObserver())
    runner.train(cost, {x: px, y: py}, 8, dl.AdamOptimizer(0.01, 0.9, 0.999), None, cost_interval_ms=0,
                 background=True)
    errors: list[str] = []
    evals = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            with math.scope():
                assert np.all(np.isfinite(session.eval(out, {x: dl.Array1D.new(xs[0])}).get_values()))
                evals += 1
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(repr(e))
    runner.stop_training()  # re-raises an error of the training thread
    assert threading.active_count() >= 1 and evals > 0
    assert errors == [] and runner.get_total_batches_trained() > 0


@pytest.mark.parametrize("count", [-2, 0, 2.0, True, "3", None])
def test_infer_refuses_a_bad_count_before_drawing(count: object) -> None:
    """A refused count used to reach the providers first: a shuffled provider was left at
    position -2, and its next draw never returned."""
    math, session, x, y, _cost, _ = _setup()
    builder = dl.InCPUMemoryShuffledInputProviderBuilder([np.arange(4, dtype=np.float32)], seed=0)
    (provider,) = builder.get_input_providers()
    runner = GraphRunner(math, session, GraphRunnerEventObserver(inference_examples_callback=lambda f, v: None))
    with pytest.raises(ValueError, match=f"GraphRunner.infer: inference_example_count must be a positive int; "
                                         f"got inference_example_count={count!r}"):
        runner.infer(y, [FeedEntry(x, provider)], 0, count, num_passes=1)  # type: ignore[arg-type]
    assert builder._positions == [0] and not runner.is_inference_running()
    assert sorted(provider.get_next_batch(math, 4).get_values().tolist()) == [0, 1, 2, 3]  # returns


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_passes": -1}, "num_passes must be a non-negative int; got num_passes=-1"),
    ({"num_passes": 1.5}, "num_passes must be a non-negative int; got num_passes=1.5"),
    ({"inference_example_interval_ms": float("nan")}, "inference_example_interval_ms must be a number of "
                                                      "milliseconds >= 0; got inference_example_interval_ms=nan"),
    ({"inference_example_interval_ms": -1}, "inference_example_interval_ms must be a number"),
])
def test_infer_checks_every_argument_first(kwargs: dict[str, object], message: str) -> None:
    math, session, x, y, _cost, _ = _setup()
    provider = ListProvider([1.0, 2.0])
    runner = GraphRunner(math, session, GraphRunnerEventObserver(inference_examples_callback=lambda f, v: None))
    with pytest.raises(ValueError, match=message):
        runner.infer(y, [FeedEntry(x, provider)], **{"inference_example_count": 1, **kwargs})  # type: ignore[arg-type]
    assert provider.position == 0
    runner.infer(y, [FeedEntry(x, provider)], 0, np.int64(2), num_passes=0)  # NumPy ints are ints
    assert provider.position == 0 and runner.inference_example_count == 2


def test_set_inference_example_count_checks_the_count() -> None:
    math, session, *_ = _setup()
    runner = GraphRunner(math, session)
    with pytest.raises(ValueError, match="set_inference_example_count: inference_example_count must be a positive "
                                         "int; got inference_example_count=-1"):
        runner.set_inference_example_count(-1)
    assert runner.inference_example_count == 5
    runner.set_inference_example_count(3)
    assert runner.inference_example_count == 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"batch_size": -1}, "batch_size must be a positive int; got batch_size=-1"),
    ({"batch_size": 0}, "batch_size must be a positive int; got batch_size=0"),
    ({"batch_size": 2.0}, "batch_size must be a positive int; got batch_size=2.0"),
    ({"batch_size": False}, "batch_size must be a positive int; got batch_size=False"),
    ({"num_batches": -1}, "num_batches must be a non-negative int; got num_batches=-1"),
    ({"metric_batch_size": 0}, "metric_batch_size must be a positive int; got metric_batch_size=0"),
    ({"metric_reduction": 7}, "metric_reduction must be a MetricReduction .SUM, MEAN.; got metric_reduction=7"),
    ({"eval_interval_ms": float("nan")}, "eval_interval_ms must be a number of milliseconds >= 0"),
    ({"cost_interval_ms": -5}, "cost_interval_ms must be a number of milliseconds >= 0; got cost_interval_ms=-5"),
])
def test_train_checks_every_argument_before_anything_changes(kwargs: dict[str, object], message: str) -> None:
    math, session, _x, _y, cost, feeds = _setup()
    runner = GraphRunner(math, session)
    runner.train(cost, feeds, 2, dl.SGDOptimizer(0.01), num_batches=1)
    args: dict[str, object] = {"batch_size": 3, "num_batches": 1, **kwargs}
    with pytest.raises(ValueError, match=f"GraphRunner.train: {message}"):
        runner.train(cost, feeds, optimizer=dl.SGDOptimizer(0.01), **args)  # type: ignore[arg-type]
    assert runner.batch_size == 2 and runner.get_total_batches_trained() == 1  # the last run's settings
    assert feeds[0].data.position == 2  # type: ignore[attr-defined]  # nothing drawn


def test_background_training_runs_the_compiled_step(math: dl.NDArrayMath) -> None:
    """GraphRunner's training thread goes through Session.train, so its steps run as the
    recorded Program, compiled (on the CPU a CpuStep, on CUDA one captured graph), and give what
    steps run one by one give."""
    results = []
    for replay in (True, False):
        g = Graph()
        x = g.placeholder("x", [])
        w = g.variable("w", Scalar.new(0, math=math))
        cost = g.mean_squared_cost(g.multiply(w, x), g.multiply(g.constant(3), x))
        session = Session(g, math)
        session.replay_plans = replay
        done = threading.Event()
        runner = GraphRunner(math, session, GraphRunnerEventObserver(done_training_callback=done.set))
        runner.train(cost, [FeedEntry(x, ListProvider([1.0, 2.0, 3.0, 4.0]))], 2, dl.SGDOptimizer(0.01),
                     num_batches=20, background=True)
        assert done.wait(30)
        programs = [p for plan in session._plans.values() for s in plan._steps.values() for p in s.training.values()]
        assert bool(programs) == replay
        assert all(p.capture for p in programs)  # compiled: a CPU step, or a CUDA graph
        results.append(session.eval(w).get())
    assert results[0] == results[1] and results[0] != 0.0


def test_each_train_call_and_each_resume_trains_its_num_batches() -> None:
    """num_batches counts per run: a second train() on the same runner trains its batches, and
    so does resume_training() (deeplearn.js reset batchesTrainedThisRun there)."""
    math, session, x, y, cost, feeds = _setup()
    runner = GraphRunner(math, session)
    runner.train(cost, feeds, 1, dl.SGDOptimizer(0.01), num_batches=3)
    assert runner.get_total_batches_trained() == 3
    runner.train(cost, feeds, 1, dl.SGDOptimizer(0.01), num_batches=2)
    assert runner.get_total_batches_trained() == 2 and runner.batches_trained_this_run == 2
    runner.resume_training()
    assert runner.get_total_batches_trained() == 4 and runner.batches_trained_this_run == 2
