"""Training end to end: the seed tutorial against an independent NumPy implementation of the same
SGD steps, a 2-layer network on XOR, and a classifier on scikit-learn's bundled digits (offline)
through Session.train and through GraphRunner."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import CostReduction, FeedEntry, Graph, Session

ROOT = Path(__file__).resolve().parents[2]


def _load(path: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


ml_beginners = _load("demos/ml_beginners/ml_beginners.py", "ml_beginners_tutorial")
intro = _load("examples/intro.py", "intro_tutorial")


def _numpy_tutorial(a: float, b: float, c: float, steps: int, lr: float) -> tuple[np.ndarray, list[float]]:
    """The tutorial's training, by hand: SGD on the mean over the batch of ½(y − label)²."""
    x = np.array(ml_beginners.XS, dtype=np.float64)
    label = np.array(ml_beginners.YS, dtype=np.float64)
    theta = np.array([a, b, c], dtype=np.float64)
    costs = []
    for _ in range(steps):
        y = theta[0] * x**2 + theta[1] * x + theta[2]
        costs.append(float(np.mean(0.5 * (y - label) ** 2)))
        d = y - label  # per-example gradient of ½(y − label)² with respect to y
        grad = np.array([np.sum(d * x**2), np.sum(d * x), np.sum(d)])  # summed over the batch
        theta = theta - lr / len(x) * grad
    return theta, costs


@pytest.mark.parametrize("seed", [0, 1, 2, 7, 42])
def test_the_tutorial_matches_numpy(seed: int, math: dl.NDArrayMath) -> None:
    lines: list[str] = []
    run = ml_beginners.run_tutorial(seed, log=lambda *args: lines.append(" ".join(str(a) for a in args)), math=math)
    assert lines[0] == "result shape: (2,)" and lines[1] == "result [ 80. 170.]"
    assert run.matrix_times_vector == [80.0, 170.0]
    assert sum(line.startswith("average cost: ") for line in lines) == 20
    assert lines[-2] == "result should be ~57.0:"

    start = run.initial
    assert run.initial_result == pytest.approx(16 * start["a"] + 4 * start["b"] + start["c"], rel=1e-5)
    theta, costs = _numpy_tutorial(start["a"], start["b"], start["c"], 20, 0.01)
    np.testing.assert_allclose([run.final["a"], run.final["b"], run.final["c"]], theta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run.costs, costs, rtol=1e-4)
    assert run.result == pytest.approx(16 * theta[0] + 4 * theta[1] + theta[2], rel=1e-5)
    assert run.costs[-1] < run.costs[0] / 100
    # ~57: the 20 steps leave the slowest direction of the quadratic almost untouched, so the
    # answer depends on the random start; over a, b, c in [0, 1) it lies in [56.0, 59.4]
    # (deeplearn.js gives the same numbers).
    assert abs(run.result - 57.0) < 2.5


def test_the_tutorial_script_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert ml_beginners.main(["--seed", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "result shape: (2,)" and out[-2] == "result should be ~57.0:"
    assert abs(float(out[-1].strip("[]")) - 57.0) < 1.0


def test_the_intro_example(capsys: pytest.CaptureFixture[str]) -> None:
    run = intro.run_intro(seed=0, log=lambda *args: None)
    assert run.mean_squared_difference == pytest.approx(2 / 3)
    assert run.output_shape == (1,) and run.test_output_shape == (1,)
    assert run.costs[-1] < run.costs[0] / 1000
    assert run.test_output == pytest.approx(0.4, abs=0.01)  # labels are 4/3 of the input's sum
    assert intro.main(["--seed", "0"]) == 0
    assert "---inference output---" in capsys.readouterr().out


def test_a_two_layer_network_learns_xor() -> None:
    math = dl.NDArrayMathCPU()
    g = Graph()
    x = g.placeholder("x", [2])
    label = g.placeholder("label", [1])
    init = dl.VarianceScalingInitializer(seed=0)
    hidden = g.layers.dense("hidden", x, 8, lambda t: g.tanh(t), kernel_initializer=init)
    out = g.layers.dense("out", hidden, 1, lambda t: g.sigmoid(t), kernel_initializer=init)
    cost = g.mean_squared_cost(out, label)
    xs = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    ys = np.array([[0], [1], [1], [0]], dtype=np.float32)
    xp, yp = dl.InCPUMemoryShuffledInputProviderBuilder([xs, ys], seed=0).get_input_providers()
    session = Session(g, math)
    optimizer = dl.AdamOptimizer(0.05, 0.9, 0.999)
    for _ in range(300):
        session.train(cost, [FeedEntry(x, xp), FeedEntry(label, yp)], 4, optimizer)
    predictions = [session.eval(out, {x: dl.NDArray.make([2], row, math=math)}).get(0) for row in xs]
    np.testing.assert_array_equal(np.round(predictions), ys.ravel())
    final = session.train(cost, [FeedEntry(x, xp), FeedEntry(label, yp)], 4, optimizer, CostReduction.MEAN).get()
    assert final < 0.01


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn (the test extra) provides the digits")
    data = datasets.load_digits()  # bundled with scikit-learn: no download
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.target))
    x = (data.data[order] / 16.0).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[data.target[order]]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _digits_graph() -> tuple[Graph, dl.Tensor, dl.Tensor, dl.Tensor, dl.Tensor]:
    g = Graph()
    x = g.placeholder("pixels", [64])
    label = g.placeholder("label", [10])
    init = dl.VarianceScalingInitializer(2.0, seed=1)
    hidden = g.layers.dense("hidden", x, 32, lambda t: g.relu(t), kernel_initializer=init)
    logits = g.layers.dense("logits", hidden, 10, kernel_initializer=init)
    cost = g.softmax_cross_entropy_cost(logits, label)
    accuracy = g.argmax_equals(logits, label)
    return g, x, label, cost, accuracy


def test_digits_classifier_through_session_train() -> None:
    x_train, y_train, x_test, y_test = _digits()
    math = dl.NDArrayMathCPU()
    g, x, label, cost, accuracy = _digits_graph()
    session = Session(g, math)
    xp, yp = dl.InCPUMemoryShuffledInputProviderBuilder([x_train, y_train], seed=0).get_input_providers()
    optimizer = dl.MomentumOptimizer(0.1, 0.9)
    costs = []
    for _ in range(300):
        with math.scope():
            costs.append(session.train(cost, [FeedEntry(x, xp), FeedEntry(label, yp)], 32, optimizer,
                                       CostReduction.MEAN).get())
    assert np.mean(costs[-20:]) < np.mean(costs[:20]) / 5
    tx, ty = dl.InCPUMemoryShuffledInputProviderBuilder([x_test, y_test], seed=0).get_input_providers()
    correct = session.eval_batch(accuracy, [FeedEntry(x, tx), FeedEntry(label, ty)], len(x_test))
    assert correct.shape == (len(x_test),) and correct.dtype == "bool"
    assert correct.get_values().mean() > 0.9


def test_digits_classifier_through_graph_runner() -> None:
    x_train, y_train, x_test, y_test = _digits()
    math = dl.NDArrayMathCPU()
    g, x, label, cost, accuracy = _digits_graph()
    session = Session(g, math)
    xp, yp = dl.InCPUMemoryShuffledInputProviderBuilder([x_train, y_train], seed=0).get_input_providers()
    tx, ty = dl.InCPUMemoryShuffledInputProviderBuilder([x_test, y_test], seed=0).get_input_providers()
    metrics: list[float] = []
    costs: list[float] = []
    runner = dl.GraphRunner(math, session, dl.GraphRunnerEventObserver(
        avg_cost_callback=lambda c: costs.append(c.get()),
        metric_callback=lambda m: metrics.append(m.get()),
    ))
    # deeplearn.js scales every optimizer's step by −lr/batch_size; Adam's m̂/√v̂ does not grow
    # with the summed gradient, so its effective step is lr/32 here.
    runner.train(cost, [FeedEntry(x, xp), FeedEntry(label, yp)], 32, dl.AdamOptimizer(0.32, 0.9, 0.999),
                 num_batches=300, metric_tensor=accuracy, metric_feed_entries=[FeedEntry(x, tx), FeedEntry(label, ty)],
                 metric_batch_size=len(x_test), eval_interval_ms=0, cost_interval_ms=0, progress=False)
    assert runner.get_total_batches_trained() == 300 and len(costs) == 300 and len(metrics) == 300
    assert metrics[-1] > 0.9 and metrics[-1] == pytest.approx(runner.get_last_computed_metric().get())
    assert np.mean(costs[-20:]) < np.mean(costs[:20]) / 5
