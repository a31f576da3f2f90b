"""Graph construction: every builder's shape rule, its errors (raised at build time, with the eager
op's message plus the graph tensors involved), and the structure helpers."""

from __future__ import annotations

import re

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Graph, NDArray, Scalar, ShapeError
from deeplearn.graph import ConstantNode, PlaceholderNode, VariableNode


def _ph(g: Graph, *shapes: tuple[int, ...]) -> list[dl.Tensor]:
    return [g.placeholder(f"t{i}", s) for i, s in enumerate(shapes)]


OK = [
    # (method, input shapes, extra args, expected per-example shape)
    ("add", [(2, 3), (2, 3)], (), (2, 3)),
    ("add", [(), (2, 3)], (), (2, 3)),
    ("add", [(2, 3), ()], (), (2, 3)),
    ("add", [(2, 3), (3,)], (), (2, 3)),
    ("add", [(3,), (2, 3)], (), (2, 3)),
    ("add", [(1, 1), (3,)], (), (3,)),  # a size-1 input acts as a scalar
    ("subtract", [(5, 4), (5, 4)], (), (5, 4)),
    ("subtract", [(), (5, 4)], (), (5, 4)),
    ("multiply", [(5, 4), ()], (), (5, 4)),
    ("divide", [(5, 4), (5, 4)], (), (5, 4)),
    ("fused_linear_combination", [(3, 4), (3, 4), (), ()], (), (3, 4)),
    ("reduce_sum", [(5, 4, 4, 9)], (), ()),
    ("reshape", [(5, 4)], ([20],), (20,)),
    ("reshape", [(5, 4)], ([2, -1],), (2, 10)),
    ("concat3d", [(5, 3, 3), (5, 4, 3)], (1,), (5, 7, 3)),
    ("concat3d", [(5, 4, 3), (5, 4, 1)], (2,), (5, 4, 4)),
    ("concat3d", [(1, 4, 3), (5, 4, 3)], (0,), (6, 4, 3)),
    ("matmul", [(5, 4), (4, 6)], (), (5, 6)),
    ("matmul", [(4,), (4, 6)], (), (6,)),
    ("matmul", [(5, 4), (4,)], (), (5,)),
    ("max_pool", [(4, 4, 2)], (2, 2, 0), (2, 2, 2)),
    ("max_pool", [(5, 5, 3)], (3,), (5, 5, 3)),  # default pad keeps the size at stride 1
    ("exp", [(5, 4)], (), (5, 4)),
    ("log", [(5, 4)], (), (5, 4)),
    ("relu", [(5, 4)], (), (5, 4)),
    ("leaky_relu", [(5, 4)], (0.2,), (5, 4)),
    ("prelu", [(5, 4), (5, 4)], (), (5, 4)),
    ("elu", [(5, 4)], (), (5, 4)),
    ("tanh", [(5, 4)], (), (5, 4)),
    ("sigmoid", [(5, 4)], (), (5, 4)),
    ("square", [(5, 4)], (), (5, 4)),
    ("softmax", [(10,)], (), (10,)),
    ("softmax_cross_entropy_cost", [(5, 4), (5, 4)], (), ()),
    ("mean_squared_cost", [(5, 4), (5, 4)], (), ()),
    ("argmax", [(5, 4)], (), ()),
    ("argmax_equals", [(5, 4), (5, 4)], (), ()),
]


@pytest.mark.parametrize(("method", "shapes", "args", "expected"), OK, ids=[f"{m}{s}" for m, s, _, _ in OK])
def test_shape_rule(method: str, shapes: list[tuple[int, ...]], args: tuple[object, ...],
                    expected: tuple[int, ...]) -> None:
    g = Graph()
    out = getattr(g, method)(*_ph(g, *shapes), *args)
    assert out.shape == expected
    assert out.node.graph is g and g.get_nodes()[-1] is out.node


ERRORS = [
    # (method, input shapes, extra args, exception, message fragment)
    ("add", [(5, 4), (1, 2, 3)], (), ShapeError, "could not be broadcast"),
    ("add", [(5, 3), (5,)], (), ShapeError, "could not be broadcast"),
    ("add", [(2, 3), (1, 3)], (), ShapeError, "Graph.add: one input must be a scalar"),
    ("add", [(2, 3, 4), (4,)], (), ShapeError, "Graph.add: one input must be a scalar"),
    ("subtract", [(5, 4), (1, 2, 3)], (), ShapeError, "could not be broadcast"),
    ("subtract", [(2, 3), (3,)], (), ShapeError, "Graph.subtract: one input must be a scalar, or the shapes must match;"),
    ("multiply", [(5, 4), (1, 2, 3)], (), ShapeError, "could not be broadcast"),
    ("multiply", [(2, 3), (3,)], (), ShapeError, "Graph.multiply"),
    ("divide", [(2, 3), (3,)], (), ShapeError, "Graph.divide"),
    ("fused_linear_combination", [(3, 4), (3, 4), (), (1, 2)], (), ShapeError, "c2 must be a scalar"),
    ("fused_linear_combination", [(3, 4), (4, 3), (), ()], (), ShapeError, "shapes must match"),
    ("reshape", [(5, 4)], ([3, 7],), ShapeError, "Graph.reshape: new shape and old shape must have the same number"),
    ("concat3d", [(5, 4), (1, 2, 3)], (0,), ShapeError, "Graph.concat3d: x1 must be rank 3"),
    ("concat3d", [(5, 4, 1), (1, 2)], (0,), ShapeError, "Graph.concat3d: x2 must be rank 3"),
    ("concat3d", [(5, 4, 1), (1, 2, 1)], (0,), ShapeError, "concat3d: a and b must match in every dimension but axis 0"),
    ("concat3d", [(5, 4, 1), (1, 2, 1)], (1,), ShapeError, "but axis 1"),
    ("concat3d", [(5, 4, 1), (1, 2, 1)], (2,), ShapeError, "but axis 2"),
    ("concat3d", [(5, 4, 1), (5, 4, 1)], (3,), ShapeError, "concat3d: axis must be in [-3, 3); got axis=3"),
    ("matmul", [(5, 4, 3), (1, 2)], (), ShapeError, "Graph.matmul: the inputs must be matrix·matrix"),
    ("matmul", [(5, 4), (1, 2, 3)], (), ShapeError, "Graph.matmul"),
    ("matmul", [(5, 4), (5, 5)], (), ShapeError, "mat_mul: inner dimensions must match"),
    ("matmul", [(5,), (4, 5)], (), ShapeError, "inner dimensions must match"),
    ("matmul", [(4,), (4,)], (), ShapeError, "Graph.matmul"),
    ("max_pool", [(5, 4)], (4, 1, 1), ShapeError, "Graph.max_pool: x must be rank 3"),
    ("prelu", [(5, 4), (1, 2, 3)], (), ShapeError, "prelu: x and alpha must have the same shape"),
    ("softmax", [(2, 3)], (), ShapeError, "Graph.softmax: x must be 1-D"),
    ("softmax_cross_entropy_cost", [(5, 4), (5, 4, 3)], (), ShapeError, "must have the same shape"),
    ("mean_squared_cost", [(5, 4), (5, 4, 3)], (), ShapeError, "must have the same shape"),
    ("argmax_equals", [(5, 4), (5, 4, 3)], (), ShapeError, "must have the same shape"),
]


@pytest.mark.parametrize(("method", "shapes", "args", "error", "fragment"), ERRORS,
                         ids=[f"{m}{s}{a}" for m, s, a, _, _ in ERRORS])
def test_shape_errors_at_build_time(method: str, shapes: list[tuple[int, ...]], args: tuple[object, ...],
                                    error: type[Exception], fragment: str) -> None:
    g = Graph()
    inputs = _ph(g, *shapes)
    before = len(g.get_nodes())
    with pytest.raises(error, match=re.escape(fragment)) as info:
        getattr(g, method)(*inputs, *args)
    # The message names the graph's tensors, and no node was added.
    assert "Tensor('t" in str(info.value)
    assert len(g.get_nodes()) == before


def test_graph_and_eager_share_the_message(cpu_math: dl.NDArrayMath) -> None:
    with pytest.raises(ShapeError) as eager:
        cpu_math.mat_mul(NDArray.zeros([5, 4]), NDArray.zeros([5, 5]))
    g = Graph()
    with pytest.raises(ShapeError) as graph:
        g.matmul(g.placeholder("w", [5, 4]), g.placeholder("x", [5, 5]))
    assert str(graph.value).startswith(str(eager.value))
    assert "x1=Tensor('w', shape=(5, 4))" in str(graph.value) and "x2=Tensor('x', shape=(5, 5))" in str(graph.value)

    with pytest.raises(ShapeError) as eager:
        cpu_math.add(NDArray.zeros([5, 4]), NDArray.zeros([1, 2, 3]))
    with pytest.raises(ShapeError) as graph:
        g.add(g.placeholder("a", [5, 4]), g.placeholder("b", [1, 2, 3]))
    assert str(graph.value).startswith(str(eager.value))


def test_conv2d_shapes_and_errors() -> None:
    g = Graph()
    x = g.placeholder("x", [5, 4, 3])
    w = g.variable("w", NDArray.zeros([4, 4, 3, 10]))
    b = g.variable("b", NDArray.zeros([10]))
    assert g.conv2d(x, w, b, 4, 10, 1, 1).shape == (4, 3, 10)  # (5-4+2)/1+1, (4-4+2)/1+1
    assert g.conv2d(x, w, b, 4, 10, 1).shape == (4, 3, 10)  # default pad floor((5·0 - 1 + 4)/2) = 1
    w3 = g.variable("w3", NDArray.zeros([3, 3, 3, 10]))
    assert g.conv2d(x, w3, b, 3, 10).shape == (5, 4, 10)  # odd fields keep the size at stride 1
    with pytest.raises(ShapeError, match="Graph.conv2d: x must be rank 3"):
        g.conv2d(g.placeholder("x2", [5, 4]), w, b, 4, 10)
    with pytest.raises(ShapeError, match="Graph.conv2d: b must be rank 1"):
        g.conv2d(x, w, g.placeholder("b2", [5, 5]), 4, 10)
    with pytest.raises(ShapeError, match=re.escape("Graph.conv2d: w must have shape [field_size, field_size")):
        g.conv2d(x, g.variable("w2", NDArray.zeros([1, 2, 3, 4])), b, 4, 10)
    with pytest.raises(ShapeError, match="must be an integer"):
        g.conv2d(g.placeholder("x3", [5, 5, 3]), w, b, 4, 10, 2, 0)  # (5-4)/2+1 is not an integer


def test_inputs() -> None:
    g = Graph()
    assert g.placeholder("x", [1, 2, 3]).shape == (1, 2, 3)
    assert isinstance(g.placeholder("y", []).node, PlaceholderNode)
    v = g.variable("v", NDArray.zeros([2, 3]))
    assert v.shape == (2, 3) and isinstance(v.node, VariableNode) and v.name == "v"
    with pytest.raises(ValueError, match="Graph.variable: data for variable 'w' must be an NDArray; got None"):
        g.variable("w", None)  # type: ignore[arg-type]
    assert g.variable("n", 3.5).shape == ()  # numbers and lists are converted
    for value, shape in [(3, ()), ([1, 2, 3], (3,)), ([[1, 2, 3], [4, 5, 6]], (2, 3)),
                         ([[[[1]], [[2]], [[3]]], [[[4]], [[5]], [[6]]]], (2, 3, 1, 1))]:
        c = g.constant(value)
        assert c.shape == shape and isinstance(c.node, ConstantNode)
        np.testing.assert_array_equal(c.node.data.get_values(), np.ravel(value))
    assert g.constant(Scalar.new(2)).shape == ()
    with pytest.raises(ValueError, match="Graph.constant"):
        g.constant(None)  # type: ignore[arg-type]


def test_constants_survive_the_scope_they_were_made_in(cpu_math: dl.NDArrayMath) -> None:
    g = Graph()
    with cpu_math.scope():
        c = g.constant([1, 2])
    assert not c.node.data.is_disposed


def test_tensor_identity_and_types() -> None:
    g = Graph()
    a, b = g.placeholder("a", [2]), g.placeholder("a", [2])
    assert a != b and len({a, b}) == 2
    assert repr(a) == "Tensor('a', shape=(2,))"
    assert g.argmax(a).dtype == "int32" and g.argmax_equals(a, b).dtype == "bool"
    other = Graph().placeholder("z", [2])
    with pytest.raises(ValueError, match="belongs to another Graph"):
        g.add(a, other)
    with pytest.raises(TypeError, match="inputs must be Tensors"):
        g.exp(np.zeros(2))  # type: ignore[arg-type]


def test_get_nodes_in_creation_order() -> None:
    g = Graph()
    x = g.placeholder("x", [])
    y = g.square(x)
    z = g.add(y, g.constant(1))
    assert [n.name for n in g.get_nodes()] == ["x", "square", "Constant", "add"]
    assert z.node.inputs[0] is y


def test_layers_dense() -> None:
    g = Graph()
    x = g.placeholder("x", [4])
    h = g.layers.dense("hidden", x, 3, lambda t: g.relu(t))
    assert h.shape == (3,) and h.node.name == "relu"
    variables = {n.name: n for n in g.get_nodes() if isinstance(n, VariableNode)}
    assert variables["hidden-weights"].output.shape == (4, 3)
    np.testing.assert_array_equal(variables["hidden-bias"].data.get_values(), np.zeros(3))
    out = g.layers.dense("out", h, 2, use_bias=False, kernel_initializer=dl.OnesInitializer())
    assert out.shape == (2,) and out.node.name == "matmul"
    with pytest.raises(ShapeError, match="GraphLayers.dense: x must be 1-D"):
        g.layers.dense("bad", g.placeholder("m", [2, 2]), 3)


def test_placeholder_rejects_negative_dimensions() -> None:
    with pytest.raises(ShapeError, match=r"Graph.placeholder: dimensions must be >= 0; got shape=\(-1, 3\)"):
        Graph().placeholder("q", [-1, 3])
