"""Session semantics: feeds in three forms, subgraph selection, feeding any tensor, the plan
cache, errors, scopes, cost reductions, and memory that stays flat over many calls."""

from __future__ import annotations

import gc
import re

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import (
    Array1D,
    CostReduction,
    DisposedError,
    FeedEntry,
    Graph,
    NDArray,
    Scalar,
    Session,
    SGDOptimizer,
    ShapeError,
)
from deeplearn.graph import graph_util
from tests.graph.helpers import ListProvider


def _square_plus_3() -> tuple[Graph, dl.Tensor, dl.Tensor, dl.Tensor]:
    g = Graph()
    x = g.placeholder("x", [2])
    x_squared = g.square(x)
    y = g.add(x_squared, g.constant(3))
    return g, x, x_squared, y


def test_three_feed_forms_give_the_same_result(math: dl.NDArrayMath) -> None:
    g, x, _, y = _square_plus_3()
    s = Session(g, math)
    data = Array1D.new([5, 4])
    for feeds in ([FeedEntry(x, data)], [{"tensor": x, "data": data}], {x: data}, (FeedEntry(x, data),)):
        np.testing.assert_array_equal(s.eval(y, feeds).get_values(), [28, 19])
    # array-likes are converted
    np.testing.assert_array_equal(s.eval(y, {x: [5, 4]}).get_values(), [28, 19])


def test_feed_form_errors() -> None:
    g, x, _, y = _square_plus_3()
    s = Session(g, dl.NDArrayMathCPU())
    with pytest.raises(TypeError, match="each feed must be a FeedEntry"):
        s.eval(y, [(x, Array1D.new([1, 2]))])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="feeds must be a list"):
        s.eval(y, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="each tensor may be fed once"):
        s.eval(y, [FeedEntry(x, Array1D.new([1, 2])), {"tensor": x, "data": Array1D.new([1, 2])}])
    with pytest.raises(TypeError, match="a feed's tensor must be a Tensor"):
        s.eval(y, [FeedEntry("x", Array1D.new([1, 2]))])  # type: ignore[arg-type]


def test_missing_placeholder_message() -> None:
    g = Graph()
    x = g.placeholder("x", [])
    y_label = g.placeholder("y label", [])
    cost = g.mean_squared_cost(g.square(x), y_label)
    s = Session(g, dl.NDArrayMathCPU())
    with pytest.raises(ValueError, match=re.escape(
            "Session.eval: placeholder 'x' must be fed; got feeds for ['y label'].")):
        s.eval(cost, [{"tensor": y_label, "data": Scalar.new(1)}])
    with pytest.raises(ValueError, match=re.escape("placeholders 'x', 'y label' must all be fed; got feeds for []")):
        s.eval(cost)


def test_feed_shape_and_kind_errors() -> None:
    g, x, _, y = _square_plus_3()
    math = dl.NDArrayMathCPU()
    s = Session(g, math)
    with pytest.raises(ShapeError, match=re.escape(
            "Session.eval: the feed for Tensor('x', shape=(2,)) must be shape (2,); got data.shape=(3,).")):
        s.eval(y, {x: Array1D.new([1, 2, 3])})
    cost = g.reduce_sum(y)
    with pytest.raises(ShapeError, match=re.escape("Session.train: the cost tensor must be a scalar; got cost_tensor=")):
        s.train(y, {x: ListProvider([[1, 2]])}, 1, SGDOptimizer(0.1))
    with pytest.raises(TypeError, match="every feed must be an InputProvider"):
        s.train(cost, {x: Array1D.new([1, 2])}, 1, SGDOptimizer(0.1))
    with pytest.raises(ShapeError, match=re.escape("must be a batch of 2 examples of shape (2,); got data.shape=(2, 3)")):
        s.train(cost, {x: ListProvider([[1, 2, 3]])}, 2, SGDOptimizer(0.1))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        s.train(cost, {x: ListProvider([[1, 2]])}, 0, SGDOptimizer(0.1))
    with pytest.raises(ValueError, match="belongs to another Graph"):
        s.eval(Graph().placeholder("z", []))


def test_only_the_needed_subgraph_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    g = Graph()
    x = g.placeholder("x", [])
    unfed = g.placeholder("unfed", [])
    y = g.square(x)
    z = g.add(unfed, y)  # not needed for y
    ran: list[str] = []
    for node in g.get_nodes():
        if node.op_rule is not None:
            rule = node.op_rule

            class Counting(type(rule)):  # type: ignore[misc]
                def forward(self, math, node, xs, batched, _rule=rule):  # type: ignore[no-untyped-def]
                    ran.append(node.name)
                    return _rule.forward(math, node, xs, batched)

            counting = Counting.__new__(Counting)
            counting.__dict__.update(rule.__dict__)
            node.op_rule = counting
    s = Session(g, dl.NDArrayMathCPU())
    assert s.eval(y, {x: Scalar.new(3)}).get() == 9.0  # the unfed placeholder is not needed
    assert ran == ["square"]
    assert s.eval(z, {x: Scalar.new(3), unfed: Scalar.new(1)}).get() == 10.0
    assert ran == ["square", "square", "add"]


def test_feeding_a_non_placeholder_cuts_the_graph() -> None:
    g, _x, x_squared, y = _square_plus_3()
    s = Session(g, dl.NDArrayMathCPU())
    # x is not fed and not needed: x_squared is fed.
    np.testing.assert_array_equal(s.eval(y, {x_squared: Array1D.new([25, 16])}).get_values(), [28, 19])


def test_gradient_reaches_a_fed_tensor_and_stops_there() -> None:
    g = Graph()
    x = g.placeholder("x", [])
    w = g.variable("w", Scalar.new(2))
    h = g.multiply(w, x)
    cost = g.square(h)
    s = Session(g, dl.NDArrayMathCPU())
    s.train(cost, {h: ListProvider([3.0])}, 1, SGDOptimizer(0.1))
    assert s.gradient_array_map.get(h).get(0) == 6.0  # d h²/dh = 2h
    assert not s.gradient_array_map.has(w)  # cut off: w is upstream of the fed h
    assert s.eval(w).get() == 2.0


def test_the_plan_is_cached_per_requested_and_fed_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = graph_util.get_unordered_evaluation_set
    monkeypatch.setattr(graph_util, "get_unordered_evaluation_set",
                        lambda *a: calls.append(1) or real(*a))
    g, x, x_squared, y = _square_plus_3()
    s = Session(g, dl.NDArrayMathCPU())
    for _ in range(3):
        s.eval(y, {x: Array1D.new([1, 2])})
    assert len(calls) == 1
    s.eval_all([y, x_squared], {x: Array1D.new([1, 2])})
    s.eval(y, {x_squared: Array1D.new([1, 2])})
    assert len(calls) == 3
    s.eval_all([x_squared, y], {x: Array1D.new([1, 2])})  # the same request in another order
    assert len(calls) == 3


def test_eval_all_runs_shared_nodes_once_and_input_providers_give_one_example() -> None:
    g = Graph()
    x = g.placeholder("x", [2])
    xs = g.square(x)
    y, z = g.add(xs, g.constant(3)), g.add(xs, g.constant(2))
    s = Session(g, dl.NDArrayMathCPU())
    provider = ListProvider([[5, 4], [1, 2]])
    a, b = s.eval_all([y, z], {x: provider})
    np.testing.assert_array_equal(a.get_values(), [28, 19])
    np.testing.assert_array_equal(b.get_values(), [27, 18])
    np.testing.assert_array_equal(s.eval(y, {x: provider}).get_values(), [4, 7])  # the next example


def test_results_belong_to_the_callers_scope(cpu_math: dl.NDArrayMath) -> None:
    g = Graph()
    x = g.placeholder("x", [])
    w = g.variable("w", Scalar.new(2))
    y = g.multiply(w, x)
    s = Session(g, cpu_math)
    with cpu_math.scope():
        inside = s.eval(y, {x: Scalar.new(3)})
        w_value = s.eval(w)
        assert inside.get() == 6.0
    assert inside.is_disposed and w_value.is_disposed
    assert s.eval(w).get() == 2.0  # the variable itself lives on
    outside = s.eval(y, {x: Scalar.new(1)})
    assert not outside.is_disposed and outside.get() == 2.0


def test_variable_made_in_an_ended_scope_is_a_clear_error(cpu_math: dl.NDArrayMath) -> None:
    g = Graph()
    with cpu_math.scope():
        w = g.variable("w", Scalar.new(2))
    with pytest.raises(DisposedError, match="variable 'w' is disposed; was it created inside a math.scope"):
        Session(g, cpu_math).eval(w)


def test_cost_reductions() -> None:
    g = Graph()
    x = g.placeholder("x", [])
    w = g.variable("w", Scalar.new(1))
    cost = g.square(g.multiply(w, x))  # per example: x²
    math = dl.NDArrayMathCPU()
    s = Session(g, math)
    data = [1.0, 2.0, 3.0]
    assert s.train(cost, {x: ListProvider(data)}, 3, SGDOptimizer(0.0), CostReduction.NONE).get() == 0
    assert s.train(cost, {x: ListProvider(data)}, 3, SGDOptimizer(0.0), CostReduction.SUM).get() == pytest.approx(14)
    assert s.train(cost, {x: ListProvider(data)}, 3, SGDOptimizer(0.0), CostReduction.MEAN).get() == pytest.approx(14 / 3)
    assert s.train(cost, {x: ListProvider(data)}, 3, SGDOptimizer(0.0), 2).get() == pytest.approx(14 / 3)


def test_a_cost_that_no_example_changes_counts_once_per_example() -> None:
    # deeplearn.js's loop adds the same gradient batch_size times; the update is then lr·g.
    g = Graph()
    x = g.placeholder("x", [])  # fed, but the cost does not depend on it
    w = g.variable("w", Scalar.new(3))
    cost = g.square(w)
    s = Session(g, dl.NDArrayMathCPU())
    total = s.train(cost, {x: ListProvider([0, 0, 0, 0])}, 4, SGDOptimizer(0.1), CostReduction.SUM)
    assert total.get() == pytest.approx(36)
    assert s.gradient_array_map.get(w).get() == pytest.approx(4 * 6)
    assert s.eval(w).get() == pytest.approx(3 - 0.1 * 6)


def test_specified_variable_list() -> None:
    g = Graph()
    x = g.placeholder("x", [2])
    b0 = g.variable("b0", NDArray.zeros([2]))
    b1 = g.variable("b1", NDArray.zeros([2]))
    y_pred = g.reduce_sum(g.add(g.square(g.add(x, b0)), b1))
    cost = g.mean_squared_cost(g.constant(1), y_pred)
    s = Session(g, dl.NDArrayMathCPU())
    s.train(cost, {x: ListProvider([[1, 2]])}, 2, SGDOptimizer(0.1, [b0]))
    np.testing.assert_allclose(s.eval(b0).get_values(), [-0.8, -1.6], atol=1e-6)
    np.testing.assert_array_equal(s.eval(b1).get_values(), [0, 0])
    before = (b0.node.data, b1.node.data)
    s.train(cost, {x: ListProvider([[1, 2]])}, 2, SGDOptimizer(0.1, [b0.node, b1.node]))
    assert b0.node.data is not before[0] and b1.node.data is not before[1]


def test_training_leaves_the_users_initial_array_alone(cpu_math: dl.NDArrayMath) -> None:
    init = Scalar.new(1)
    g = Graph()
    x = g.placeholder("x", [])
    w = g.variable("w", init)
    v = g.variable("v", init)  # two variables may share an initial array
    cost = g.square(g.add(g.multiply(w, x), v))
    s = Session(g, cpu_math)
    for _ in range(3):
        s.train(cost, {x: ListProvider([1.0])}, 1, SGDOptimizer(0.1))
    assert not init.is_disposed and init.get() == 1.0
    assert s.eval(w).get() != 1.0 and s.eval(v).get() != 1.0


def test_inspection_maps_after_train() -> None:
    g = Graph()
    x = g.placeholder("x", [2])
    w = g.variable("w", NDArray.zeros([1, 2]))
    y = g.reduce_sum(g.matmul(w, x))
    s = Session(g, dl.NDArrayMathCPU())
    s.train(y, {x: ListProvider([[2, 4], [1, 1]])}, 2, SGDOptimizer(0.1))
    np.testing.assert_allclose(s.activation_array_map.get(w).get_values(), [-0.15, -0.25])
    np.testing.assert_allclose(s.gradient_array_map.get(w).get_values(), [3, 5])  # summed over the batch
    assert s.activation_array_map.get(x).shape == (2, 2)  # batched activations keep the batch axis
    s.dispose()
    assert len(s.activation_array_map) == 0 and len(s.gradient_array_map) == 0


def _memory_graph(math: dl.NDArrayMath) -> tuple[Session, dl.Tensor, dict[dl.Tensor, object], dl.Optimizer]:
    g = Graph()
    x = g.placeholder("x", [3])
    label = g.placeholder("label", [2])
    h = g.layers.dense("h", x, 4, lambda t: g.relu(t))
    out = g.layers.dense("out", h, 2)
    cost = g.mean_squared_cost(out, label)
    rng = np.random.default_rng(0)
    builder = dl.InCPUMemoryShuffledInputProviderBuilder(
        [rng.standard_normal((8, 3)), rng.standard_normal((8, 2))], seed=0)
    xp, lp = builder.get_input_providers()
    return Session(g, math), cost, {x: xp, label: lp}, dl.AdamOptimizer(0.01, 0.9, 0.999)


def _live(math: dl.NDArrayMath) -> int:
    gc.collect()  # the count is per backend: let earlier tests' graphs (reference cycles) go first
    return math.get_num_arrays()


def test_memory_stays_flat_over_1000_train_calls_inside_and_outside_scopes(cpu_math: dl.NDArrayMath) -> None:
    session, cost, feeds, optimizer = _memory_graph(cpu_math)
    for _ in range(2):  # warm up: state, plans, the recorded step and its first replay
        session.train(cost, feeds, 4, optimizer, CostReduction.MEAN)
    baseline = _live(cpu_math)
    for _ in range(500):  # outside any scope; the returned costs are dropped
        session.train(cost, feeds, 4, optimizer, CostReduction.MEAN)
    assert _live(cpu_math) == baseline
    for _ in range(250):  # one scope per call
        with cpu_math.scope():
            session.train(cost, feeds, 4, optimizer, CostReduction.MEAN).get()
    assert _live(cpu_math) == baseline
    with cpu_math.scope():  # one scope around many calls: only the returned costs accumulate
        for _ in range(250):
            session.train(cost, feeds, 4, optimizer, CostReduction.SUM)
        assert _live(cpu_math) == baseline + 250
    assert _live(cpu_math) == baseline
    session.dispose()
    optimizer.dispose()
    assert _live(cpu_math) < baseline
