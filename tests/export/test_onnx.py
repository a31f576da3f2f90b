"""ONNX export (``dl.export_onnx``): every exported model runs in onnxruntime on a batch and gives
what ``Session.eval_batch`` gives, for every Graph op case of tests/graph/graph_cases.py under
every batching pattern (each input fed per example or shared), the ops the Graph builders do not
make yet (as nodes made directly), a dense MLP and a small conv net; an op that ONNX cannot
express yet is a ValueError naming it, raised before anything is written.

The bound: float32 outputs agree to rtol 1e-5 and atol 1e-6 · max(1, max |value|) (ONNX Runtime
sums products in another order than NumPy, so the absolute error grows with the magnitude of
the terms); int32 and bool outputs are equal.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import FeedEntry, Graph, NDArray, Session, Tensor
from deeplearn.graph import batching
from deeplearn.graph.graph import OpNode
from deeplearn.math.ops import elementwise, linalg, pool, reduction
from deeplearn.math.ops.base import Op
from tests.graph.graph_cases import CASES, GraphCase
from tests.graph.helpers import ListProvider

onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install -e '.[export]' or '.[test]')")
ort = pytest.importorskip("onnxruntime", reason="the exported models run in onnxruntime (pip install -e '.[test]')")

B = 4  # examples per batch


def _run(model: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    data = model if isinstance(model, (str, bytes)) else model.SerializeToString()  # type: ignore[attr-defined]
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)  # type: ignore[no-any-return]


def _assert_same(got: np.ndarray, expected: np.ndarray, t: Tensor, what: str) -> None:
    """``got`` has the tensor's dtype, and ``expected``'s shape and values. (Session.eval_batch
    repeats an output that depends on no fed tensor by multiplying it with float32 ones, which
    makes an int32 one float32; the model keeps the tensor's dtype.)"""
    assert got.shape == expected.shape, f"{what}: shape {got.shape} vs {expected.shape}"
    assert got.dtype == np.dtype(t.dtype), f"{what}: dtype {got.dtype}, the tensor's is {t.dtype}"
    if got.dtype.kind == "f":
        scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale, err_msg=what)
    else:
        np.testing.assert_array_equal(got, expected, err_msg=what)


def _check(session: Session, outputs: list[Tensor], fed: dict[Tensor, np.ndarray], what: str,
           path: Path | None = None, **kwargs: object) -> object:
    """Exports ``outputs``, runs the model on the ``fed`` batches (the model's inputs, in
    order) and compares each output with Session.eval_batch."""
    model = dl.export_onnx(session.graph, outputs, path, **kwargs)  # type: ignore[arg-type]
    names = [i.name for i in model.graph.input]
    feeds = dict(zip(names, fed.values(), strict=True))
    got = _run(str(path) if path is not None else model, feeds)
    expected = session.eval_batch(outputs, [FeedEntry(t, ListProvider(v)) for t, v in fed.items()], B)
    for t, g, e in zip(outputs, got, expected, strict=True):
        _assert_same(g, e.numpy(), t, f"{what}: {t!r}")
    return model


# -- every Graph op case ------------------------------------------------------------------------


def _patterns(case: GraphCase) -> list[tuple[bool, ...]]:
    """Which inputs are fed per example (at least one: the model's batch comes from its inputs)."""
    out = []
    for bits in itertools.product([False, True], repeat=len(case.shapes)):
        if any(bits) and not any(bits[i] for i in case.fixed):
            out.append(bits)
    return out


CASE_PARAMS = [pytest.param(case, pattern, id=f"{case.id}-{''.join('b' if p else 'v' for p in pattern)}")
               for case in CASES for pattern in _patterns(case)]


@pytest.mark.parametrize(("case", "pattern"), CASE_PARAMS)
def test_every_graph_op_case_matches_eval_batch(case: GraphCase, pattern: tuple[bool, ...],
                                                math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(0)
    g = Graph()
    tensors, fed = [], {}
    for i, (shape, batched) in enumerate(zip(case.shapes, pattern)):
        low, high = (0.5, 2.0) if i in case.positive else (-2.0, 2.0)
        values = rng.uniform(low, high, (B, *shape)).astype(np.float32)
        if batched:
            t = g.placeholder(f"in{i}", shape)
            fed[t] = values
        else:
            t = g.variable(f"in{i}", NDArray.make(shape, values[0], math=math))
        tensors.append(t)
    y = case.build(g, tensors)
    _check(Session(g, math), [y], fed, case.id)


# -- ops the Graph builders do not make (yet): nodes made directly -----------------------------


def _op_node(g: Graph, op: Op, *inputs: Tensor) -> Tensor:
    """A node computing ``op``, run by its batch rule, as a builder method would add it."""
    node = OpNode(g, op.name, inputs, op.infer(*(t.spec for t in inputs)), op, batching.rule_for(op))
    g.nodes.append(node)
    return node.output


OTHER_OPS = [
    (elementwise.Neg(), -2, 2), (elementwise.Abs(), -2, 2), (elementwise.Ceil(), -2, 2),
    (elementwise.Floor(), -2, 2), (elementwise.Sqrt(), 0.5, 2), (elementwise.Selu(), -2, 2),
    (elementwise.Step(0.3), -2, 2), (elementwise.Clip(-0.5, 0.7), -2, 2), (elementwise.Sin(), -2, 2),
    (elementwise.Cos(), -2, 2), (elementwise.Tan(), -1, 1), (elementwise.Asin(), -0.9, 0.9),
    (elementwise.Acos(), -0.9, 0.9), (elementwise.Atan(), -2, 2), (elementwise.Sinh(), -2, 2),
    (elementwise.Cosh(), -2, 2), (reduction.Mean(axis=(-1,)), -2, 2),
    (reduction.Sum(axis=(-2,), keep_dims=True), -2, 2),
]


@pytest.mark.parametrize(("op", "low", "high"), OTHER_OPS, ids=lambda v: getattr(v, "name", None))
def test_ops_without_a_builder_match_eval_batch(op: Op, low: float, high: float, math: dl.NDArrayMath) -> None:
    g = Graph()
    x = g.placeholder("x", [2, 3])
    y = _op_node(g, op, x)
    _check(Session(g, math), [y], {x: np.random.default_rng(1).uniform(low, high, (B, 2, 3)).astype(np.float32)},
           op.name)


@pytest.mark.parametrize("op", [pool.MinPool(filter_size=2, strides=1, pad=0),
                                pool.AvgPool(filter_size=3, strides=2, pad=1),
                                pool.AvgPool(filter_size=2, strides=2, pad="same"),
                                pool.MaxPool(filter_size=2, strides=2, pad="same")], ids=repr)
def test_pools_match_eval_batch(op: Op, math: dl.NDArrayMath) -> None:
    g = Graph()
    x = g.placeholder("x", [5, 5, 2])
    y = _op_node(g, op, x)
    _check(Session(g, math), [y], {x: np.random.default_rng(2).standard_normal((B, 5, 5, 2)).astype(np.float32)},
           op.name)


def test_matmul_times_a_transposed_matrix(math: dl.NDArrayMath) -> None:
    g = Graph()
    x = g.placeholder("x", [2, 3])
    w = g.variable("w", NDArray.make([4, 3], np.arange(12, dtype=np.float32) / 10, math=math))
    y = _op_node(g, linalg.MatMul(linalg.MatrixOrientation.REGULAR, linalg.MatrixOrientation.TRANSPOSED), x, w)
    _check(Session(g, math), [y], {x: np.random.default_rng(3).standard_normal((B, 2, 3)).astype(np.float32)},
           "x·wᵀ")


def test_int32_values_and_int32_and_bool_outputs(math: dl.NDArrayMath) -> None:
    g = Graph()
    x = g.placeholder("x", [2, 3])
    k = g.constant(NDArray.make([2, 3], [1, -2, 3, 0, 5, 2], "int32", math=math))
    scaled = g.multiply(x, k)  # float32 · int32 → float32
    outputs = [scaled, g.argmax(scaled), g.argmax_equals(x, k), g.reduce_sum(k), g.add(k, k)]
    assert [t.dtype for t in outputs] == ["float32", "int32", "bool", "int32", "int32"]
    _check(Session(g, math), outputs, {x: np.random.default_rng(4).standard_normal((B, 2, 3)).astype(np.float32)},
           "int32 and bool")


# -- models -------------------------------------------------------------------------------------


def _mlp(math: dl.NDArrayMath) -> tuple[Graph, Tensor, Tensor, list[Tensor]]:
    g = Graph()
    x = g.placeholder("x", [6])
    label = g.placeholder("y label", [3])
    hidden = g.layers.dense("hidden1", x, 8, g.relu)
    hidden = g.layers.dense("hidden2", hidden, 5, g.tanh)
    logits = g.layers.dense("logits", hidden, 3)
    outputs = [g.softmax(logits), g.argmax(logits), g.softmax_cross_entropy_cost(logits, label),
               g.mean_squared_cost(label, g.sigmoid(logits))]
    return g, x, label, outputs


def _mlp_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, B)]
    return rng.standard_normal((B, 6)).astype(np.float32), labels


def test_a_dense_mlp_written_to_a_file(math: dl.NDArrayMath, tmp_path: Path) -> None:
    g, x, label, outputs = _mlp(math)
    xs, labels = _mlp_data()
    path = tmp_path / "mlp.onnx"
    model = _check(Session(g, math), outputs, {x: xs, label: labels}, "mlp", path)
    assert path.read_bytes() == model.SerializeToString()  # type: ignore[attr-defined]
    assert [p.name for p in tmp_path.iterdir()] == ["mlp.onnx"]  # no temporary file left
    assert [i.name for i in model.graph.input] == ["x", "y_label"]  # type: ignore[attr-defined]
    assert [o.name for o in model.graph.output] == ["softmax", "argmax", "softmax_cross_entropy_cost",  # type: ignore[attr-defined]
                                                    "mean_squared_cost"]


@pytest.mark.parametrize("opset", [15, 17, 18, 21])
def test_opsets(opset: int, math: dl.NDArrayMath) -> None:
    g, x, label, outputs = _mlp(math)
    xs, labels = _mlp_data()
    model = _check(Session(g, math), outputs, {x: xs, label: labels}, f"opset {opset}", opset=opset)
    assert model.opset_import[0].version == opset  # type: ignore[attr-defined]


def test_a_small_conv_net(math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(6)
    g = Graph()
    image = g.placeholder("image", [8, 8, 1])
    label = g.placeholder("label", [4])

    def weights(name: str, shape: list[int]) -> Tensor:
        return g.variable(name, NDArray.make(shape, rng.standard_normal(shape).astype(np.float32) * 0.3, math=math))

    h = g.relu(g.conv2d(image, weights("w1", [3, 3, 1, 4]), weights("b1", [4]), 3, 4))
    h = g.max_pool(h, 2, 2, 0)  # [4, 4, 4]
    h = g.relu(g.conv2d(h, weights("w2", [2, 2, 4, 6]), weights("b2", [6]), 2, 6, 2, 0))  # [2, 2, 6]
    logits = g.matmul(g.reshape(h, [24]), weights("w3", [24, 4]))
    cost = g.softmax_cross_entropy_cost(logits, label)
    accuracy = g.argmax_equals(logits, label)
    feeds = {image: rng.standard_normal((B, 8, 8, 1)).astype(np.float32),
             label: np.eye(4, dtype=np.float32)[rng.integers(0, 4, B)]}
    _check(Session(g, math), [logits, cost, accuracy], feeds, "conv net")


def test_inputs_cut_the_graph_and_unbatched_outputs_repeat(math: dl.NDArrayMath) -> None:
    g, x, label, outputs = _mlp(math)
    hidden = next(n.output for n in g.nodes if n.name == "tanh")
    weights = next(n.output for n in g.nodes if n.name == "logits-weights")
    logits_sum = g.reduce_sum(weights)  # depends on no input: the same value for every example
    feeds = {hidden: np.random.default_rng(7).uniform(-1, 1, (B, 5)).astype(np.float32)}
    model = _check(Session(g, math), [outputs[0], logits_sum], feeds, "cut at tanh", inputs=[hidden])
    assert [i.name for i in model.graph.input] == ["tanh"]  # type: ignore[attr-defined]


# -- errors -------------------------------------------------------------------------------------


def test_an_op_onnx_cannot_express_yet_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    g = Graph()
    x = g.placeholder("x", [3])
    y = g.relu(_op_node(g, reduction.LogSumExp(axis=(-1,), keep_dims=True), x))
    path = tmp_path / "model.onnx"
    with pytest.raises(ValueError, match=r"export_onnx: .*cannot be expressed in ONNX yet: log_sum_exp "
                                         r"\(LogSumExp\) \(node 'log_sum_exp'\); got outputs=\[Tensor\('relu'"):
        dl.export_onnx(g, y, path)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_other_errors() -> None:
    g = Graph()
    x = g.placeholder("x", [4, 4, 1])
    w = g.placeholder("w", [2, 2, 1, 1])
    b = g.variable("b", NDArray.zeros([1]))
    with pytest.raises(ValueError, match="conv2d weights fed per example cannot be expressed in ONNX yet"):
        dl.export_onnx(g, g.conv2d(x, w, b, 2, 1, 2, 0))
    y = g.relu(x)
    with pytest.raises(ValueError, match=r"must be among inputs; .*missing \[Tensor\('x'"):
        dl.export_onnx(g, y, inputs=[w])
    with pytest.raises(ValueError, match="must depend on at least one input"):
        dl.export_onnx(g, g.square(b))
    with pytest.raises(ValueError, match="opset must be between 15 and"):
        dl.export_onnx(g, y, opset=11)
    with pytest.raises(ValueError, match="outputs must be Tensors of the graph"):
        dl.export_onnx(Graph(), y)
