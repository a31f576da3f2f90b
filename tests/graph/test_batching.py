"""The batch rules as a table (docs/design.md §5): every Graph node that computes something carries
a real op, its rule is the entry of that op's class in ``batching.RULES`` (running the op as it is
when there is none), and the per-example forms of the costs and arg_max_equals compute, on a
stacked batch, exactly what their plain forms compute one example at a time."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Graph, NDArray, ShapeError
from deeplearn.graph import batching
from deeplearn.graph.graph import OpNode
from deeplearn.math.ops import costs, elementwise, linalg, pool, reduction
from deeplearn.math.ops.base import Op
from tests.graph.helpers import ListProvider
from tests.conftest import as_ndarray
from tests.graph.graph_cases import CASES, GraphCase


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_node_carries_its_op_and_the_rule_of_its_class(case: GraphCase) -> None:
    g = Graph()
    case.build(g, [g.placeholder(f"in{i}", s) for i, s in enumerate(case.shapes)])
    for node in g.get_nodes():
        if isinstance(node, OpNode) and node.name != "reshape":  # reshape: see the next test
            assert isinstance(node.op, Op), f"{node!r} carries no op"
            assert node.op_rule is batching.rule_for(node.op)


def test_reshape_is_the_one_node_without_an_op() -> None:
    # A view of another per-example shape: free, and no Op describes it (layout.py has none).
    g = Graph()
    y = g.reshape(g.placeholder("x", [2, 3]), [3, 2])
    assert y.node.op is None and y.node.op_rule is batching.RESHAPE


def test_the_table_is_keyed_by_op_class_with_the_op_itself_as_the_default() -> None:
    assert all(isinstance(k, type) and issubclass(k, Op) for k in batching.RULES)
    assert all(isinstance(r, batching.BatchRule) for r in batching.RULES.values())
    for op in (elementwise.Relu(), reduction.Softmax(), pool.MaxPool(filter_size=2),
               costs.MeanSquaredCost(example_rank=1), reduction.Sum(axis=(-1,))):
        assert batching.rule_for(op) is batching.NATIVE, op
    assert batching.rule_for(linalg.MatMul()) is batching.MATMUL


def test_per_example_forms_are_what_graph_nodes_carry() -> None:
    g = Graph()
    a, b = g.placeholder("a", [2, 3]), g.placeholder("b", [2, 3])
    assert g.mean_squared_cost(a, b).node.op == costs.MeanSquaredCost(example_rank=2)
    assert g.softmax_cross_entropy_cost(a, b).node.op == costs.SoftmaxCrossEntropyCost(example_rank=2)
    assert g.argmax_equals(a, b).node.op == reduction.ArgMaxEquals(example_rank=2)
    assert g.argmax(a).node.op == reduction.ArgMax(axis=(-2, -1))
    assert g.reduce_sum(a).node.op == reduction.Sum(axis=(-2, -1))


# -- per-example forms against their plain forms, one example at a time -------------------------

B = 3
PAIRS: list[tuple[Callable[[int | None], Op], tuple[int, ...], bool]] = [
    # (the op of an example_rank, one example's shape, whether it has a gradient)
    (lambda k: costs.MeanSquaredCost(example_rank=k), (2, 3), True),
    (lambda k: costs.MeanSquaredCost(example_rank=k), (), True),
    (lambda k: costs.SoftmaxCrossEntropyCost(example_rank=k), (4,), True),
    (lambda k: costs.SoftmaxCrossEntropyCost(example_rank=k), (2, 3), True),
    (lambda k: reduction.ArgMaxEquals(example_rank=k), (2, 3), False),
]
PATTERNS = [(True, True), (True, False), (False, True), (False, False)]


def _pair_params() -> list[object]:
    return [pytest.param(make, shape, grad, pattern,
                         id=f"{make(None).name}{list(shape)}-{''.join('b' if p else 'v' for p in pattern)}")
            for make, shape, grad in PAIRS for pattern in PATTERNS]


@pytest.mark.parametrize(("make", "shape", "grad", "pattern"), _pair_params())
def test_per_example_form_matches_the_plain_op_per_example(
        make: Callable[[int | None], Op], shape: tuple[int, ...], grad: bool, pattern: tuple[bool, bool],
        cpu_math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(0)
    # A batched input has B examples; a shared one is the same example for all of them.
    values = [rng.uniform(0.1, 2.0, (B, *shape) if p else shape).astype(np.float32) for p in pattern]
    n = B if any(pattern) else 1
    example = [[v[b] if p else v for v, p in zip(values, pattern)] for b in range(n)]
    per_example, plain = make(len(shape)), make(None)
    run = cpu_math.engine.run
    with cpu_math.scope():
        xs = [as_ndarray(cpu_math, v) for v in values]
        y = run(per_example, *xs)
        expected = [run(plain, *(as_ndarray(cpu_math, x) for x in ex)).numpy() for ex in example]
        assert y.shape == ((B,) if any(pattern) else ())
        np.testing.assert_allclose(y.numpy(), np.array(expected).reshape(y.shape), rtol=1e-6)
        if not grad:
            return
        dy = rng.standard_normal(y.shape).astype(np.float32)
        grads = per_example.backward(cpu_math, as_ndarray(cpu_math, dy), *xs, y)
        for i, (g, p) in enumerate(zip(grads, pattern)):
            loop = [plain.backward(cpu_math, as_ndarray(cpu_math, dy[b] if any(pattern) else dy),
                                   *(as_ndarray(cpu_math, x) for x in example[b]),
                                   as_ndarray(cpu_math, np.asarray(expected[b])))[i].numpy()
                    for b in range(n)]
            # a batched input's gradient per example; a shared one's, the sum over the examples
            want = np.stack(loop) if p else np.sum(loop, axis=0)
            np.testing.assert_allclose(g.numpy(), want, rtol=1e-5, atol=1e-6, err_msg=f"gradient {i}")


@pytest.mark.parametrize("op", [costs.MeanSquaredCost(example_rank=2), reduction.ArgMaxEquals(example_rank=2)],
                         ids=lambda op: op.name)
def test_per_example_forms_check_the_examples(op: Op, cpu_math: dl.NDArrayMath) -> None:
    with pytest.raises(ShapeError, match=r"must have the same shape in their last 2 axes \(one example\); "
                                         r"got x1.shape=\(4, 2, 3\) and x2.shape=\(3, 2\)"):
        cpu_math.engine.run(op, NDArray.zeros([4, 2, 3]), NDArray.zeros([3, 2]))
    with pytest.raises(ShapeError, match="could not be broadcast"):  # two batches of other sizes
        cpu_math.engine.run(op, NDArray.zeros([4, 2, 3]), NDArray.zeros([5, 2, 3]))
    with pytest.raises(ShapeError, match="must have the same shape in their last 2 axes"):  # rank < 2
        cpu_math.engine.run(op, NDArray.zeros([3]), NDArray.zeros([3]))


@pytest.mark.parametrize(
    ("a", "b", "batched"),
    [("T", "R", (True, False)), ("R", "T", (False, True)), ("T", "T", (True, True)), ("R", "T", (True, True))],
)
def test_matmul_with_transposed_operands_it_cannot_batch_is_refused(
    cpu_math: dl.NDArrayMath, a: str, b: str, batched: tuple[bool, bool]
) -> None:
    """The batch rule folds A·B and a batched A times a shared op(B); any other orientation with
    a batched operand is an error naming the node, never a wrong product."""
    from deeplearn.math.ops.linalg import MatMul, MatrixOrientation

    o = {"R": MatrixOrientation.REGULAR, "T": MatrixOrientation.TRANSPOSED}
    g = dl.Graph()
    x1, x2 = g.placeholder("x1", [3, 3]), g.placeholder("x2", [3, 3])
    op = MatMul(o[a], o[b])
    y = g._add_op("mm", op, batching.rule_for(op), [x1, x2], op.infer(x1.spec, x2.spec))
    session = dl.Session(g, cpu_math)
    ones = np.ones((2, 3, 3), np.float32)
    feeds = {x1: ListProvider(ones) if batched[0] else dl.NDArray.from_numpy(ones[0]),
             x2: ListProvider(ones) if batched[1] else dl.NDArray.from_numpy(ones[0])}
    with pytest.raises(ValueError, match="mm: a matrix product with a transposed operand cannot run"):
        session.eval_batch(y, feeds, 2)
