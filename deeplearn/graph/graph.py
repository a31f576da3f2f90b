"""Graph, Tensor and the Nodes: delayed-execution descriptions of a computation.

A Graph is a list of Nodes; each builder method creates one Node, checks its input shapes at
once (with the op's own shape rule, so eager and graph calls share one message) and returns the
Node's output Tensor. Tensors hold shapes, not data. Shapes are **per example**: a Session adds
the batch axis when it trains (docs/design.md §5). Each node that computes something carries the op
(``deeplearn/math/ops/``) that computes it for one example, in the per-example form where the
op has one (a cost of one example, not of the whole batch). This module holds no execution code:
how each node runs, with or without a batch axis, is the batch rule of its op's class
(``deeplearn/graph/batching.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deeplearn import util
from deeplearn.graph import batching
from deeplearn.math.ndarray import NDArray
from deeplearn.math.ops import arithmetic, conv, costs, elementwise, layout, linalg, pool, reduction
from deeplearn.math.ops.base import Op, Spec
from deeplearn.math.ops.conv_util import compute_default_pad
from deeplearn.math.scope import REGISTRY
from deeplearn.types import DType, DTypeError, Shape, ShapeError

if TYPE_CHECKING:
    from deeplearn.graph.layers import GraphLayers

__all__ = [
    "ConstantNode",
    "Graph",
    "Node",
    "OpNode",
    "PlaceholderNode",
    "Tensor",
    "VariableNode",
]

_tensor_ids = itertools.count()
_node_ids = itertools.count()


@dataclass(eq=False)
class Tensor:
    """A value in a Graph: a shape and dtype (per example), and the node that computes it.

    Two tensors of equal shape are different tensors (identity, not value, equality), so
    tensors can key dicts.

    Example:
        >>> g = dl.Graph()
        >>> x = g.placeholder("x", [2, 3])
        >>> x.shape, x.name, x.node.graph is g
        ((2, 3), 'x', True)
    """

    shape: Shape
    node: Node = field(repr=False)
    dtype: DType = "float32"
    id: int = field(default_factory=lambda: next(_tensor_ids))

    @property
    def spec(self) -> Spec:
        return Spec(self.shape, self.dtype)

    @property
    def name(self) -> str:
        """The name of the node that computes this tensor ('x', 'add', 'Constant', ...)."""
        return self.node.name

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return util.size_from_shape(self.shape)

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, shape={self.shape})"

    __hash__ = object.__hash__


class Node:
    """One operation of a Graph, with its input tensors and its output tensor.

    ``op`` is the math op the node computes, its inputs being the op's arguments in order (None
    for placeholders, variables and constants, and for reshape, a view that no op describes).
    ``op_rule`` says how the node runs, with or without a batch axis: the batch rule of the op's
    class (``batching.rule_for``); None for the inputs, whose values the Session loads.
    """

    def __init__(
        self,
        graph: Graph,
        name: str,
        inputs: Sequence[Tensor],
        spec: Spec,
        op: Op | None = None,
        op_rule: batching.BatchRule | None = None,
    ) -> None:
        self.graph = graph
        self.name = name
        self.inputs: tuple[Tensor, ...] = tuple(inputs)
        self.op = op
        self.op_rule = op_rule
        self.id = next(_node_ids)
        self.output = Tensor(tuple(spec.shape), self, spec.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, shape={self.output.shape})"


class VariableNode(Node):
    """A trainable value; ``data`` holds its current NDArray (optimizers replace it)."""

    def __init__(self, graph: Graph, name: str, data: NDArray) -> None:
        super().__init__(graph, name, (), data.spec)
        self.data = data
        # Whether ``data`` was made by a Session (an optimizer update): such arrays belong to
        # the graph and are disposed when replaced; the user's initial array never is.
        self.owns_data = False


class PlaceholderNode(Node):
    """An input that must be fed (or cut off by a feed downstream) when evaluated."""


class ConstantNode(Node):
    """A fixed value; gradients never flow into it."""

    def __init__(self, graph: Graph, name: str, data: NDArray) -> None:
        super().__init__(graph, name, (), data.spec)
        self.data = data


class OpNode(Node):
    """A node computed from its inputs: ``op_rule`` runs ``op`` on them."""


class Graph:
    """A delayed-execution computation: build it with these methods, run it with a Session.

    Every method checks shapes when called and raises ShapeError naming the tensors involved.

    Example:
        >>> g = dl.Graph()
        >>> x = g.placeholder("x", [])
        >>> a = g.variable("a", Scalar.new(2))
        >>> y = g.add(g.multiply(a, g.square(x)), g.constant(1))
        >>> y.shape
        ()
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._layers: GraphLayers | None = None

    # -- inputs ----------------------------------------------------------------------------
    def variable(self, name: str, data: NDArray) -> Tensor:
        """Adds a trainable variable holding ``data`` (an NDArray; numbers and nested lists
        are converted to float32) and returns its tensor.

        Example:
            >>> g = dl.Graph()
            >>> g.variable("w", NDArray.zeros([2, 3])).shape
            (2, 3)
        """
        if data is None:
            raise ValueError(f"Graph.variable: data for variable {name!r} must be an NDArray; got None.")
        return self._add_node(VariableNode(self, name, _as_ndarray(data, "Graph.variable")))

    def placeholder(self, name: str, shape: Sequence[int]) -> Tensor:
        """Adds an input of the given per-example ``shape``; feed it when evaluating.

        Example:
            >>> dl.Graph().placeholder("x", [1, 2, 3]).shape
            (1, 2, 3)
        """
        shape_t = util.as_shape(shape, "Graph.placeholder")
        if any(d < 0 for d in shape_t):
            raise ShapeError(f"Graph.placeholder: dimensions must be >= 0; got shape={shape_t} for {name!r}.")
        spec = Spec(shape_t)
        return self._add_node(PlaceholderNode(self, name, (), spec))

    def constant(self, value: NDArray | float | Sequence[Any]) -> Tensor:
        """Adds a constant: an NDArray, a number (a Scalar) or nested lists (shape inferred).

        Example:
            >>> dl.Graph().constant([[1, 2, 3], [4, 5, 6]]).shape
            (2, 3)
        """
        if value is None:
            raise ValueError("Graph.constant: value must be an NDArray, a number or nested lists; got None.")
        if isinstance(value, NDArray):
            data = value
        else:
            data = _as_ndarray(value, "Graph.constant")
            # Made here, so owned by the graph: no user scope may dispose it.
            REGISTRY.untrack_everywhere(data)
        return self._add_node(ConstantNode(self, "Constant", data))

    # -- element-wise arithmetic -----------------------------------------------------------
    def add(self, x1: Tensor, x2: Tensor) -> Tensor:
        """y = x1 + x2. One input may be a scalar (size 1), or the shapes match, or one is 2-D
        and the other 1-D matching its last dimension.

        Example:
            >>> g = dl.Graph()
            >>> g.add(g.placeholder("m", [2, 3]), g.placeholder("v", [3])).shape
            (2, 3)
        """
        return self._binary("add", arithmetic.Add(), x1, x2, allow_2d_1d=True)

    def subtract(self, x1: Tensor, x2: Tensor) -> Tensor:
        """y = x1 − x2; one input may be a scalar (size 1), else the shapes must match.

        Example:
            >>> g = dl.Graph()
            >>> g.subtract(g.placeholder("x", [2]), g.constant(1)).shape
            (2,)
        """
        return self._binary("subtract", arithmetic.Subtract(), x1, x2)

    def multiply(self, x1: Tensor, x2: Tensor) -> Tensor:
        """y = x1 · x2 element-wise; one input may be a scalar (size 1), else the shapes must match.

        Example:
            >>> g = dl.Graph()
            >>> g.multiply(g.constant(2), g.placeholder("x", [3])).shape
            (3,)
        """
        return self._binary("multiply", arithmetic.Multiply(), x1, x2)

    def divide(self, x1: Tensor, x2: Tensor) -> Tensor:
        """y = x1 / x2 element-wise; one input may be a scalar (size 1), else the shapes must match.

        Example:
            >>> g = dl.Graph()
            >>> g.divide(g.placeholder("x", [5, 4]), g.placeholder("y", [5, 4])).shape
            (5, 4)
        """
        return self._binary("divide", arithmetic.Divide(), x1, x2)

    def fused_linear_combination(self, x1: Tensor, x2: Tensor, c1: Tensor, c2: Tensor) -> Tensor:
        """y = c1·x1 + c2·x2 for scalar tensors c1, c2 and equal-shape x1, x2.

        Example:
            >>> g = dl.Graph()
            >>> x = g.placeholder("x", [3, 4])
            >>> g.fused_linear_combination(x, x, g.constant(1), g.constant(2)).shape
            (3, 4)
        """
        op = arithmetic.ScaledArrayAdd()
        spec = self._infer("fused_linear_combination", op, (c1, x1, c2, x2), ("c1", "x1", "c2", "x2"))
        return self._add("fused_linear_combination", op, (c1, x1, c2, x2), spec)

    # -- reductions, layout, products ------------------------------------------------------
    def reduce_sum(self, x: Tensor) -> Tensor:
        """y = the sum of every element of x (a scalar).

        Example:
            >>> g = dl.Graph()
            >>> g.reduce_sum(g.placeholder("x", [5, 4, 4, 9])).shape
            ()
        """
        op = reduction.Sum(axis=_example_axes(x))
        spec = self._infer("reduce_sum", op, (x,), ("x",))
        return self._add("reduce_sum", op, (x,), spec)

    def reshape(self, x: Tensor, shape: Sequence[int]) -> Tensor:
        """y = x with another shape of the same size (one dimension may be -1).

        Example:
            >>> g = dl.Graph()
            >>> g.reshape(g.placeholder("x", [5, 4]), [20]).shape
            (20,)
        """
        self._check_same_graph("reshape", (x,))
        try:
            new_shape = util.infer_from_implicit_shape(
                util.as_shape(shape, "Graph.reshape"), x.size, "Graph.reshape"
            )
        except ShapeError as e:
            raise _with_tensors(e, "reshape", (x,), ("x",)) from None
        return self._add_op("reshape", None, batching.RESHAPE, (x,), Spec(new_shape, x.dtype))

    def concat3d(self, x1: Tensor, x2: Tensor, axis: int) -> Tensor:
        """y = the rank-3 x1 and x2 joined along ``axis``.

        Example:
            >>> g = dl.Graph()
            >>> g.concat3d(g.placeholder("a", [5, 3, 3]), g.placeholder("b", [5, 4, 3]), 1).shape
            (5, 7, 3)
        """
        for name, t in (("x1", x1), ("x2", x2)):
            if t.rank != 3:
                raise ShapeError(f"Graph.concat3d: {name} must be rank 3; got {name}={t!r}.")
        # The node's axis counts from the end, so that a leading batch axis leaves it in place.
        return self._add_per_example(
            "concat3d", layout.Concat(axis), layout.Concat(axis % 3 - 3), (x1, x2), ("x1", "x2")
        )

    def matmul(self, x1: Tensor, x2: Tensor) -> Tensor:
        """The product x1·x2 of matrix·matrix ([m, k]·[k, n] → [m, n]), vector·matrix
        ([k]·[k, n] → [n]) or matrix·vector ([m, k]·[k] → [m]).

        Example:
            >>> g = dl.Graph()
            >>> g.matmul(g.placeholder("v", [4]), g.placeholder("m", [4, 6])).shape
            (6,)
        """
        if x1.rank not in (1, 2) or x2.rank not in (1, 2) or (x1.rank == 1 and x2.rank == 1):
            raise ShapeError(
                "Graph.matmul: the inputs must be matrix·matrix, vector·matrix or matrix·vector; "
                f"got x1={x1!r} and x2={x2!r}."
            )
        a = Spec(x1.shape if x1.rank == 2 else (1, *x1.shape), x1.dtype)
        b = Spec(x2.shape if x2.rank == 2 else (*x2.shape, 1), x2.dtype)
        op = linalg.MatMul()
        try:
            out = op.infer(a, b)
        except (ShapeError, DTypeError) as e:
            raise _with_tensors(e, "matmul", (x1, x2), ("x1", "x2")) from None
        shape = (
            out.shape
            if x1.rank == 2 and x2.rank == 2
            else (out.shape[1],)
            if x1.rank == 1
            else (out.shape[0],)
        )
        return self._add("matmul", op, (x1, x2), Spec(shape, out.dtype))

    # -- images ----------------------------------------------------------------------------
    def conv2d(
        self,
        x: Tensor,
        w: Tensor,
        b: Tensor,
        field_size: int,
        output_depth: int,
        stride: int = 1,
        zero_pad: int | None = None,
    ) -> Tensor:
        """2-D convolution of the [rows, cols, depth] x with weights w [field_size, field_size,
        depth, output_depth] and bias b [output_depth]. ``zero_pad`` defaults to the padding
        that keeps the size at stride 1 (deeplearn.js ``computeDefaultPad``).

        Example:
            >>> g = dl.Graph()
            >>> x = g.placeholder("x", [5, 5, 3])
            >>> w = g.variable("w", NDArray.zeros([3, 3, 3, 8])); b = g.variable("b", NDArray.zeros([8]))
            >>> g.conv2d(x, w, b, 3, 8).shape
            (5, 5, 8)
        """
        if x.rank != 3:
            raise ShapeError(f"Graph.conv2d: x must be rank 3 [rows, cols, depth]; got x={x!r}.")
        if w.rank != 4:
            raise ShapeError(f"Graph.conv2d: w must be rank 4 [fH, fW, inDepth, outDepth]; got w={w!r}.")
        if b.rank != 1:
            raise ShapeError(f"Graph.conv2d: b must be rank 1 [outDepth]; got b={b!r}.")
        expected = (field_size, field_size, x.shape[2], output_depth)
        if w.shape != expected or b.shape != (output_depth,):
            # Checked here rather than at the first run, as deeplearn.js did for w.
            raise ShapeError(
                f"Graph.conv2d: w must have shape [field_size, field_size, x depth, output_depth] = "
                f"{list(expected)} and b shape [{output_depth}]; got w={w!r} and b={b!r}."
            )
        pad = compute_default_pad(x.shape, field_size, stride) if zero_pad is None else zero_pad
        op = conv.Conv2D(strides=stride, pad=pad)
        spec = self._infer("conv2d", op, (x, w), ("x", "w"))
        return self._add("conv2d", op, (x, w, b), spec)  # the op is x∗w; its rule adds b

    def max_pool(self, x: Tensor, field_size: int, stride: int = 1, zero_pad: int | None = None) -> Tensor:
        """Max pooling of the [rows, cols, depth] x over field_size × field_size windows.

        Example:
            >>> g = dl.Graph()
            >>> g.max_pool(g.placeholder("x", [4, 4, 2]), 2, 2, 0).shape
            (2, 2, 2)
        """
        if x.rank != 3:
            raise ShapeError(f"Graph.max_pool: x must be rank 3 [rows, cols, depth]; got x={x!r}.")
        pad = compute_default_pad(x.shape, field_size, stride) if zero_pad is None else zero_pad
        op = pool.MaxPool(filter_size=field_size, strides=stride, pad=pad)
        spec = self._infer("max_pool", op, (x,), ("x",))
        return self._add("max_pool", op, (x,), spec)

    # -- activations -----------------------------------------------------------------------
    def exp(self, x: Tensor) -> Tensor:
        """y = eˣ element-wise.

        Example:
            >>> g = dl.Graph()
            >>> g.exp(g.placeholder("x", [5, 4])).shape
            (5, 4)
        """
        return self._unary("exp", elementwise.Exp(), x)

    def log(self, x: Tensor) -> Tensor:
        """y = ln x element-wise.

        Example:
            >>> g = dl.Graph()
            >>> g.log(g.placeholder("x", [5, 4])).shape
            (5, 4)
        """
        return self._unary("log", elementwise.Log(), x)

    def relu(self, x: Tensor) -> Tensor:
        """y = max(0, x) element-wise.

        Example:
            >>> g = dl.Graph()
            >>> g.relu(g.placeholder("x", [5, 4])).shape
            (5, 4)
        """
        return self._unary("relu", elementwise.Relu(), x)

    def leaky_relu(self, x: Tensor, alpha: float) -> Tensor:
        """y = x for x ≥ 0, alpha·x below.

        Example:
            >>> g = dl.Graph()
            >>> g.leaky_relu(g.placeholder("x", [5, 4]), 0.2).shape
            (5, 4)
        """
        return self._unary("leaky_relu", elementwise.LeakyRelu(alpha), x)

    def prelu(self, x: Tensor, alpha: Tensor) -> Tensor:
        """y = x for x ≥ 0, alpha·x below, with a tensor ``alpha`` of x's shape.

        Example:
            >>> g = dl.Graph()
            >>> x = g.placeholder("x", [5, 4])
            >>> g.prelu(x, g.variable("alpha", NDArray.zeros([5, 4]))).shape
            (5, 4)
        """
        op = elementwise.Prelu()
        spec = self._infer("prelu", op, (x, alpha), ("x", "alpha"))
        return self._add("prelu", op, (x, alpha), spec)

    def elu(self, x: Tensor) -> Tensor:
        """y = x for x ≥ 0, eˣ − 1 below.

        Example:
            >>> g = dl.Graph()
            >>> g.elu(g.placeholder("x", [5, 4])).shape
            (5, 4)
        """
        return self._unary("elu", elementwise.Elu(), x)

    def tanh(self, x: Tensor) -> Tensor:
        """y = tanh x element-wise.

        Example:
            >>> g = dl.Graph()
            >>> g.tanh(g.placeholder("x", [5, 4])).shape
            (5, 4)
        """
        return self._unary("tanh", elementwise.Tanh(), x)

    def sigmoid(self, x: Tensor) -> Tensor:
        """y = 1 / (1 + e⁻ˣ) element-wise.

        Example:
            >>> g = dl.Graph()
            >>> g.sigmoid(g.placeholder("x", [5, 4])).shape
            (5, 4)
        """
        return self._unary("sigmoid", elementwise.Sigmoid(), x)

    def square(self, x: Tensor) -> Tensor:
        """y = x² element-wise.

        Example:
            >>> g = dl.Graph()
            >>> g.square(g.placeholder("x", [5, 4])).shape
            (5, 4)
        """
        return self._unary("square", elementwise.Square(), x)

    def softmax(self, x: Tensor) -> Tensor:
        """y = the softmax of the vector x (deeplearn.js's Graph softmax is 1-D only).

        Example:
            >>> g = dl.Graph()
            >>> g.softmax(g.placeholder("logits", [10])).shape
            (10,)
        """
        if x.rank != 1:
            raise ShapeError(f"Graph.softmax: x must be 1-D; got x={x!r}.")
        op = reduction.Softmax()
        spec = self._infer("softmax", op, (x,), ("x",))
        return self._add("softmax", op, (x,), spec)

    # -- costs and metrics -----------------------------------------------------------------
    def softmax_cross_entropy_cost(self, x: Tensor, target: Tensor) -> Tensor:
        """cost = −Σ target · log(softmax(x)) (a scalar per example); x and target must have
        the same shape.

        Example:
            >>> g = dl.Graph()
            >>> g.softmax_cross_entropy_cost(g.placeholder("x", [10]), g.placeholder("t", [10])).shape
            ()
        """
        return self._add_per_example(
            "softmax_cross_entropy_cost",
            costs.SoftmaxCrossEntropyCost(),
            costs.SoftmaxCrossEntropyCost(example_rank=x.rank),
            (x, target),
            ("x", "target"),
        )

    def mean_squared_cost(self, label: Tensor, prediction: Tensor) -> Tensor:
        """cost = mean of ½(label − prediction)² (a scalar per example); the shapes must match.

        Example:
            >>> g = dl.Graph()
            >>> g.mean_squared_cost(g.placeholder("y", [4]), g.placeholder("p", [4])).shape
            ()
        """
        return self._add_per_example(
            "mean_squared_cost",
            costs.MeanSquaredCost(),
            costs.MeanSquaredCost(example_rank=label.rank),
            (label, prediction),
            ("label", "prediction"),
        )

    def argmax(self, x: Tensor) -> Tensor:
        """y = the flat index of the largest element of x (an int32 scalar).

        deeplearn.js declared this tensor's shape [1] while its value was a scalar; here the
        tensor's shape is () like its value.

        Example:
            >>> g = dl.Graph()
            >>> t = g.argmax(g.placeholder("x", [3]))
            >>> t.shape, t.dtype
            ((), 'int32')
        """
        op = reduction.ArgMax(axis=_example_axes(x))
        spec = self._infer("argmax", op, (x,), ("x",))
        return self._add("argmax", op, (x,), spec)

    def argmax_equals(self, x1: Tensor, x2: Tensor) -> Tensor:
        """y = whether argmax(x1) == argmax(x2) (a bool scalar); the shapes must match.

        Example:
            >>> g = dl.Graph()
            >>> g.argmax_equals(g.placeholder("a", [5, 4]), g.placeholder("b", [5, 4])).dtype
            'bool'
        """
        return self._add_per_example(
            "argmax_equals",
            reduction.ArgMaxEquals(),
            reduction.ArgMaxEquals(example_rank=x1.rank),
            (x1, x2),
            ("x1", "x2"),
        )

    # -- structure -------------------------------------------------------------------------
    @property
    def layers(self) -> GraphLayers:
        """Layer helpers (``graph.layers.dense``)."""
        if self._layers is None:
            from deeplearn.graph.layers import GraphLayers

            self._layers = GraphLayers(self)
        return self._layers

    def get_nodes(self) -> list[Node]:
        """Every node, in creation order.

        Example:
            >>> g = dl.Graph(); x = g.placeholder("x", []); y = g.square(x)
            >>> [n.name for n in g.get_nodes()]
            ['x', 'square']
        """
        return list(self.nodes)

    # -- helpers ---------------------------------------------------------------------------
    def _unary(self, method: str, op: Op, x: Tensor) -> Tensor:
        spec = self._infer(method, op, (x,), ("x",))
        return self._add(method, op, (x,), spec)

    def _binary(self, method: str, op: Op, x1: Tensor, x2: Tensor, allow_2d_1d: bool = False) -> Tensor:
        self._check_same_graph(method, (x1, x2))
        # deeplearn.js: a size-1 input acts as a scalar (scalarPlusArray & co.), whatever its rank.
        e1 = () if x1.size == 1 and x1.shape != x2.shape else x1.shape
        e2 = () if x2.size == 1 and x1.shape != x2.shape else x2.shape
        try:
            spec = op.infer(Spec(e1, x1.dtype), Spec(e2, x2.dtype))
        except (ShapeError, DTypeError) as e:
            raise _with_tensors(e, method, (x1, x2), ("x1", "x2")) from None
        # Graph is stricter than NDArrayMath's NumPy broadcasting (deeplearn.js graph.ts).
        ok = e1 == () or e2 == () or x1.shape == x2.shape
        if allow_2d_1d:
            ok = ok or (x1.rank, x2.rank) in ((2, 1), (1, 2)) and x1.shape[-1] == x2.shape[-1]
        if not ok:
            what = "one input must be a scalar, or the shapes must match"
            if allow_2d_1d:
                what += ", or one input must be 1-D matching the other's (2-D) last dimension"
            raise ShapeError(f"Graph.{method}: {what}; got x1={x1!r} and x2={x2!r}.")
        return self._add(method, op, (x1, x2), spec)

    def _infer(self, method: str, op: Op, inputs: Sequence[Tensor], names: Sequence[str]) -> Spec:
        """The op's own shape rule on the inputs' specs, with the user's tensors named on error."""
        self._check_same_graph(method, inputs)
        try:
            spec = op.infer(*(t.spec for t in inputs))
        except (ShapeError, DTypeError) as e:
            raise _with_tensors(e, method, inputs, names) from None
        return spec  # type: ignore[no-any-return]

    def _check_same_graph(self, method: str, inputs: Sequence[Tensor]) -> None:
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"Graph.{method}: inputs must be Tensors of this graph; got {t!r}.")
            if t.node.graph is not self:
                raise ValueError(f"Graph.{method}: {t!r} belongs to another Graph.")

    def _add(self, name: str, op: Op, inputs: Sequence[Tensor], spec: Spec) -> Tensor:
        """Adds a node computing ``op`` of ``inputs`` (its arguments, in order), run by the batch
        rule of the op's class."""
        return self._add_op(name, op, batching.rule_for(op), inputs, spec)

    def _add_per_example(
        self, name: str, one: Op, op: Op, inputs: Sequence[Tensor], names: Sequence[str]
    ) -> Tensor:
        """Adds a node computing ``op``, the per-example form of ``one``: the inputs are checked
        as one example, by ``one`` (``op`` would take a leading axis of either for a batch).

        Example:
            >>> g = dl.Graph(); a, b = g.placeholder("a", [2]), g.placeholder("b", [1, 2])
            >>> g.mean_squared_cost(a, b)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            deeplearn.types.ShapeError: mean_squared_cost: x1 and x2 must have the same shape; ...
        """
        return self._add(name, op, inputs, self._infer(name, one, inputs, names))

    def _add_op(
        self, name: str, op: Op | None, rule: batching.BatchRule, inputs: Sequence[Tensor], spec: Spec
    ) -> Tensor:
        """Adds a node run by ``rule``, a rule of its own (reshape's, which has no op)."""
        return self._add_node(OpNode(self, name, inputs, spec, op, rule))

    def _add_node(self, node: Node) -> Tensor:
        self.nodes.append(node)
        return node.output


def _example_axes(x: Tensor) -> tuple[int, ...]:
    """Every axis of one example of ``x``, counted from the end so that a leading batch axis is
    not among them: a reduction over these gives one value per example."""
    return tuple(range(-x.rank, 0))


def _with_tensors(e: Exception, method: str, inputs: Sequence[Tensor], names: Sequence[str]) -> Exception:
    """The op's error (same type, same message) followed by which graph tensors were involved."""
    named = ", ".join(f"{n}={t!r}" for n, t in zip(names, inputs, strict=True))
    return type(e)(f"{e} (in Graph.{method}: {named})")


def _as_ndarray(value: Any, where: str) -> NDArray:
    if isinstance(value, NDArray):
        return value
    try:
        return NDArray.make(util.infer_shape(value), value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: expected an NDArray, a number or nested lists; got {value!r}.") from e
