"""TensorBoardLogger: a GraphRunner's cost, metric and examples per second in a TensorBoard event
file (tensorboardX), read back record by record."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import FeedEntry, Graph, GraphRunner, GraphRunnerEventObserver, Scalar, Session
from deeplearn.graph_runner import TensorBoardLogger
from tests.graph.helpers import ListProvider

Scalars = dict[str, list[tuple[int, float]]]


def _read_scalars(log_dir: Path) -> Scalars:
    """Every scalar of the run's one event file, {tag: [(step, value), ...]}, its records'
    checksums checked (the TFRecord framing: length, crc, data, crc)."""
    pytest.importorskip("tensorboardX", reason="tensorboardX comes with the train extra (pip install -e '.[train]')")
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    (file,) = log_dir.glob("events.out.tfevents.*")
    data, pos, scalars = file.read_bytes(), 0, {}
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[pos + 8:pos + 12])[0] == masked_crc32c(header)
        record = data[pos + 12:pos + 12 + length]
        assert struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])[0] == masked_crc32c(record)
        pos += 16 + length
        event = Event.FromString(record)
        for value in event.summary.value:
            scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def _setup() -> tuple[dl.NDArrayMath, Session, dl.Tensor, dl.Tensor, list[FeedEntry], list[FeedEntry]]:
    """y = w·x learning y = 3x; the metric is y over the examples 1 and 2."""
    math = dl.NDArrayMathCPU()
    g = Graph()
    x = g.placeholder("x", [])
    w = g.variable("w", Scalar.new(0, math=math))
    y = g.multiply(w, x)
    cost = g.mean_squared_cost(y, g.multiply(g.constant(3), x))
    return math, Session(g, math), y, cost, [FeedEntry(x, ListProvider([1.0, 2.0, 3.0, 4.0]))], \
        [FeedEntry(x, ListProvider([1.0, 2.0]))]


@pytest.fixture(autouse=True)
def _tensorboardx() -> None:
    pytest.importorskip("tensorboardX", reason="tensorboardX comes with the train extra (pip install -e '.[train]')")


def test_cost_metric_and_speed_are_logged_at_each_step(tmp_path: Path) -> None:
    math, session, y, cost, feeds, metric_feeds = _setup()
    seen: dict[str, list[float]] = {"cost": [], "metric": [], "batches": []}
    mine = GraphRunnerEventObserver(avg_cost_callback=lambda c: seen["cost"].append(c.get()),
                                    metric_callback=lambda m: seen["metric"].append(m.get()),
                                    batches_trained_callback=lambda n: seen["batches"].append(n))
    with TensorBoardLogger(tmp_path / "run", observer=mine, metric_name="prediction") as logger:
        runner = GraphRunner(math, session, logger)
        runner.train(cost, feeds, 2, dl.SGDOptimizer(0.01), num_batches=6, metric_tensor=y,
                     metric_feed_entries=metric_feeds, metric_batch_size=2, eval_interval_ms=0, cost_interval_ms=0)
    scalars = _read_scalars(tmp_path / "run")
    assert set(scalars) == {"cost", "prediction", "examples_per_sec"}
    steps = [1, 2, 3, 4, 5, 6]
    assert seen["batches"] == steps  # the observer beside the logger got every call
    assert [s for s, _ in scalars["cost"]] == steps
    np.testing.assert_allclose([v for _, v in scalars["cost"]], seen["cost"], rtol=1e-6)
    assert seen["cost"][0] == pytest.approx(np.mean([0.5 * 9, 0.5 * 36]))  # w = 0, x = 1, 2
    assert [s for s, _ in scalars["prediction"]] == steps
    np.testing.assert_allclose([v for _, v in scalars["prediction"]], seen["metric"], rtol=1e-6)
    w_now = session.eval(session.graph.get_nodes()[1].output).get()
    assert scalars["prediction"][-1][1] == pytest.approx(1.5 * w_now, rel=1e-5)  # the metric after batch 6
    assert [s for s, _ in scalars["examples_per_sec"]] == steps
    assert all(v > 0 for _, v in scalars["examples_per_sec"])


def test_intervals_thin_the_log_and_speed_covers_the_batches_between(tmp_path: Path) -> None:
    math, session, y, cost, feeds, metric_feeds = _setup()
    logger = TensorBoardLogger(tmp_path)
    runner = GraphRunner(math, session, logger)
    runner.train(cost, feeds, 2, dl.SGDOptimizer(0.01), num_batches=5, metric_tensor=y,
                 metric_feed_entries=metric_feeds, eval_interval_ms=float("inf"), cost_interval_ms=float("inf"))
    logger.close()
    scalars = _read_scalars(tmp_path)
    assert [s for s, _ in scalars["cost"]] == [1] and [s for s, _ in scalars["metric"]] == [1]
    assert [s for s, _ in scalars["examples_per_sec"]] == [1, 5]  # batch 1; batches 2-5, at the end


def test_a_metric_of_several_values_gets_one_tag_each(tmp_path: Path) -> None:
    math, session, _, cost, feeds, _ = _setup()
    g = session.graph
    v = g.placeholder("v", [2])
    pair = g.multiply(g.get_nodes()[1].output, v)
    with TensorBoardLogger(tmp_path) as logger:
        GraphRunner(math, session, logger).train(
            cost, feeds, 1, dl.SGDOptimizer(0.01), num_batches=2, metric_tensor=pair,
            metric_feed_entries=[FeedEntry(v, ListProvider([[1.0, 10.0]]))], eval_interval_ms=0)
    scalars = _read_scalars(tmp_path)
    assert {"metric/0", "metric/1"} <= set(scalars) and "metric" not in scalars
    assert scalars["metric/1"][-1][1] == pytest.approx(10 * scalars["metric/0"][-1][1])


def test_the_logger_passes_the_other_callbacks_through(tmp_path: Path) -> None:
    def on_examples(feeds: object, values: object) -> None:
        pass

    mine = GraphRunnerEventObserver(inference_examples_callback=on_examples)
    with TensorBoardLogger(tmp_path, observer=mine) as logger:
        assert logger.inference_examples_callback is on_examples
        assert logger.inference_examples_per_sec_callback is None and logger.total_time_callback is None
        assert repr(logger).startswith("TensorBoardLogger(log_dir=")


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TensorBoardLogger: metric_name must be a non-empty str; got metric_name=''"):
        TensorBoardLogger(tmp_path, metric_name="")
    with pytest.raises(ValueError, match="TensorBoardLogger: flush_secs must be a number of seconds > 0; got flush_secs=-1"):
        TensorBoardLogger(tmp_path, flush_secs=-1)
    with pytest.raises(TypeError, match="observer must be a GraphRunnerEventObserver or None; got dict"):
        TensorBoardLogger(tmp_path, observer={})  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())  # nothing was created


def test_without_tensorboardx_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import tensorboardX now fails
    with pytest.raises(ImportError, match=r"TensorBoardLogger: needs tensorboardX \(pip install 'deeplearn\[train\]'\)"):
        TensorBoardLogger(tmp_path)
