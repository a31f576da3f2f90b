"""ONNX export of a Graph's inference path: ``export_onnx``.

The exported model computes what ``Session.eval_batch`` computes: the subgraph that gives the
requested tensors from the inputs it needs, for a whole batch at once. Each input becomes an ONNX
graph input with its per-example shape behind a leading dynamic ``batch`` dimension; variables
and constants become initializers (their current values), shared by every example as a Session
shares them. Each node's op maps to ONNX nodes through ``CONVERTERS``, a table keyed by op class
(as ``deeplearn/graph/batching.py``'s ``RULES`` is), so that supporting an op is one entry; a
converter lays the batch out exactly as the op's batch rule does (docs/design.md §5). An op that
is not in the table raises a ValueError naming it, before anything is written.

``onnx`` is needed (the ``export`` extra: ``pip install -e '.[export]'``) and imported only when
``export_onnx`` runs; ``onnxruntime`` runs the result.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deeplearn import util
from deeplearn.graph import batching
from deeplearn.graph.graph import ConstantNode, Graph, Node, PlaceholderNode, Tensor, VariableNode
from deeplearn.math.ops import arithmetic, conv, costs, elementwise, layout, linalg, pool, reduction
from deeplearn.math.ops.base import Op, normalize_axes
from deeplearn.math.ops.reduction import example_axes
from deeplearn.types import DType
from deeplearn.data.files import write_atomic

if TYPE_CHECKING:
    import onnx

__all__ = ["CONVERTERS", "DEFAULT_OPSET", "MIN_OPSET", "Converter", "converter_for", "export_onnx"]

DEFAULT_OPSET = 17
"""The ONNX opset written unless ``opset=`` says otherwise (every current runtime runs it)."""

MIN_OPSET = 15
"""The oldest opset the converters can write (``Shape`` with ``start``/``end`` needs 15)."""

BATCH = "batch"
"""The name of the leading dynamic dimension of every graph input and output."""

_NP_DTYPES: dict[DType, Any] = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


@dataclass(frozen=True)
class _Value:
    """An ONNX value that holds a Graph tensor: its name, and whether it has the batch axis."""

    name: str
    tensor: Tensor
    batched: bool

    @property
    def rank(self) -> int:
        """The rank of the ONNX value: the tensor's, plus one for the batch axis."""
        return self.tensor.rank + int(self.batched)


class _Builder:
    """Collects the ONNX nodes and initializers of one export (``onnx`` is passed in, imported
    only when an export runs)."""

    def __init__(self, onnx_module: Any, opset: int) -> None:
        self.onnx = onnx_module
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()

    # -- names and constants ---------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        """A value name not used yet: ``hint``, else ``hint_2``, ``hint_3``, ..."""
        base = "".join(c if c.isalnum() or c in "_-./" else "_" for c in hint) or "value"
        for name in itertools.chain([base], (f"{base}_{i}" for i in itertools.count(2))):
            if name not in self._used:
                self._used.add(name)
                return name
        raise AssertionError("unreachable")

    def initializer(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, values: Sequence[int], hint: str = "shape") -> str:
        """A 1-D int64 constant (shapes, axes)."""
        return self.initializer(np.asarray(list(values), dtype=np.int64).reshape(-1), hint)

    def scalar(self, value: float, hint: str = "c") -> str:
        """A float32 scalar constant."""
        return self.initializer(np.asarray(value, dtype=np.float32), hint)

    # -- nodes -----------------------------------------------------------------------------------
    def add(self, op_type: str, inputs: Sequence[str], hint: str, **attrs: Any) -> str:
        """Appends one ONNX node of one output and returns that output's name."""
        out = self.fresh(hint)
        self.nodes.append(
            self.onnx.helper.make_node(
                op_type, list(inputs), [out], name=self.fresh(f"{op_type}_{out}"), **attrs
            )
        )
        return out

    def cast(self, name: str, have: DType, want: DType) -> str:
        """``name`` as ``want`` (no node when it already is)."""
        if have == want:
            return name
        return self.add("Cast", [name], f"{name}_{want}", to=_onnx_dtype(self.onnx, want))

    def as_output_dtype(self, x: _Value, node: Node) -> str:
        """``x`` cast to the dtype of ``node``'s output (the dtype the op computes in)."""
        return self.cast(x.name, x.tensor.dtype, node.output.dtype)

    def reshape(self, name: str, shape: Sequence[int], batched: bool) -> str:
        """``name`` with the per-example ``shape``, behind its batch axis when ``batched``."""
        if not batched:
            return self.add("Reshape", [name, self.ints(shape)], f"{name}_reshaped", allowzero=1)
        if util.size_from_shape(tuple(shape)) > 0:
            target = self.ints([-1, *shape])
        else:  # -1 cannot stand for the batch when an example is empty
            target = self.add("Concat", [self.batch_of(name), self.ints(shape)], f"{name}_shape", axis=0)
        return self.add("Reshape", [name, target], f"{name}_reshaped", allowzero=1)

    def batch_of(self, name: str) -> str:
        """The batch size of the batched value ``name``, as a 1-D int64 of one element."""
        return self.add("Shape", [name], f"{name}_batch", start=0, end=1)

    def tile(self, name: str, shape: Sequence[int], like: str) -> str:
        """The unbatched ``name`` (per-example ``shape``) repeated along the batch of ``like``."""
        lead = self.add("Unsqueeze", [name, self.ints([0], "axes")], f"{name}_lead")
        target = self.add(
            "Concat", [self.batch_of(like), self.ints([1] * len(shape))], f"{name}_tiles", axis=0
        )
        return self.add("Expand", [lead, target], f"{name}_tiled")

    def reduce(self, op_type: str, name: str, axes: Sequence[int], keepdims: bool) -> str:
        """ReduceSum/ReduceMean over ``axes`` (none: the value as it is, not ONNX's "all")."""
        if not axes:
            return name
        if op_type == "ReduceSum" or self.opset >= 18:  # axes became an input in 13 / 18
            return self.add(
                op_type, [name, self.ints(axes, "axes")], f"{name}_{op_type}", keepdims=int(keepdims)
            )
        return self.add(op_type, [name], f"{name}_{op_type}", axes=list(axes), keepdims=int(keepdims))


def _onnx_dtype(onnx_module: Any, dtype: DType) -> int:
    types = onnx_module.TensorProto
    return {"float32": types.FLOAT, "int32": types.INT32, "bool": types.BOOL}[dtype]  # type: ignore[no-any-return]


Converter = Callable[[_Builder, Node, list[_Value]], str]
"""Writes the ONNX nodes of one Graph node, given its inputs' values, and returns the name of
the value that holds its output (batched when any input is, as the node's batch rule has it)."""


# -- element-wise ---------------------------------------------------------------------------------


def _unary(op_type: str, **attrs: Any) -> Converter:
    """An element-wise op of one input that is one ONNX op, computed in the output's dtype."""

    def convert(b: _Builder, node: Node, xs: list[_Value]) -> str:
        return b.add(op_type, [b.as_output_dtype(xs[0], node)], node.name, **attrs)

    return convert


def _square(b: _Builder, node: Node, xs: list[_Value]) -> str:
    x = b.as_output_dtype(xs[0], node)
    return b.add("Mul", [x, x], node.name)


def _rounding(op_type: str) -> Converter:
    """ceil/floor: integers are their own ceiling and floor (ONNX's Ceil and Floor take floats)."""

    def convert(b: _Builder, node: Node, xs: list[_Value]) -> str:
        x = b.as_output_dtype(xs[0], node)
        return b.add("Identity" if node.output.dtype != "float32" else op_type, [x], node.name)

    return convert


def _leaky_relu(b: _Builder, node: Node, xs: list[_Value]) -> str:
    op = node.op
    assert isinstance(op, elementwise.LeakyRelu)
    return b.add("LeakyRelu", [b.as_output_dtype(xs[0], node)], node.name, alpha=float(op.alpha))


def _step(b: _Builder, node: Node, xs: list[_Value]) -> str:
    """1 above 0, alpha at and below it, NaN kept (``elementwise.Step``)."""
    op = node.op
    assert isinstance(op, elementwise.Step)
    x = b.as_output_dtype(xs[0], node)
    low = b.add("Where", [b.add("IsNaN", [x], "isnan"), x, b.scalar(op.alpha)], "low")
    return b.add("Where", [b.add("Greater", [x, b.scalar(0.0)], "above"), b.scalar(1.0), low], node.name)


def _clip(b: _Builder, node: Node, xs: list[_Value]) -> str:
    op = node.op
    assert isinstance(op, elementwise.Clip)
    x = b.as_output_dtype(xs[0], node)
    return b.add("Clip", [x, b.scalar(op.min_value), b.scalar(op.max_value)], node.name)


def _broadcast_view(b: _Builder, node: Node, x: _Value) -> str:
    """``x`` laid out as ``batching.BroadcastRule`` lays it out: a size-1 input is a scalar per
    example, and a batched input has its batch axis in front of the ones that align it with the
    output's rank."""
    out_shape, t = node.output.shape, x.tensor
    shape = () if t.size == 1 and t.shape != out_shape else t.shape
    if x.batched:
        shape = (1,) * (len(out_shape) - len(shape)) + shape
    return x.name if shape == t.shape else b.reshape(x.name, shape, x.batched)


def _binary(op_type: str) -> Converter:
    """add, subtract, multiply, divide: ONNX's broadcasting on the views of ``_broadcast_view``."""

    def convert(b: _Builder, node: Node, xs: list[_Value]) -> str:
        views = [_broadcast_view(b, node, x) for x in xs]
        args = [b.cast(v, x.tensor.dtype, node.output.dtype) for v, x in zip(views, xs, strict=True)]
        return b.add(op_type, args, node.name)

    return convert


def _scaled_array_add(b: _Builder, node: Node, xs: list[_Value]) -> str:
    """c1·x1 + c2·x2 (inputs c1, x1, c2, x2): each coefficient one number per example, a scalar
    or [B, 1, ..., 1] (``batching.ScaledArrayAddRule``)."""
    rank = len(node.output.shape)
    args = []
    for i, x in enumerate(xs):
        name = b.reshape(x.name, (1,) * rank if x.batched else (), x.batched) if i in (0, 2) else x.name
        args.append(b.cast(name, x.tensor.dtype, node.output.dtype))
    c1, x1, c2, x2 = args
    return b.add("Add", [b.add("Mul", [c1, x1], "c1x1"), b.add("Mul", [c2, x2], "c2x2")], node.name)


def _tiled(b: _Builder, node: Node, xs: list[_Value]) -> list[str]:
    """The inputs, in the output's dtype, the unbatched ones repeated along the batch when some
    are batched (``batching.TiledRule``: the op needs equal shapes or ranks)."""
    like = next((x.name for x in xs if x.batched), None)
    out = []
    for x in xs:
        name = b.as_output_dtype(x, node)
        out.append(b.tile(name, x.tensor.shape, like) if like is not None and not x.batched else name)
    return out


def _prelu(b: _Builder, node: Node, xs: list[_Value]) -> str:
    return b.add("PRelu", _tiled(b, node, xs), node.name)


def _concat(b: _Builder, node: Node, xs: list[_Value]) -> str:
    op = node.op
    assert isinstance(op, layout.Concat)
    return b.add("Concat", _tiled(b, node, xs), node.name, axis=op.axis)


# -- reductions and layout ------------------------------------------------------------------------


def _reduction(op_type: str) -> Converter:
    """sum, mean over the op's axes of the value as it is (the Graph's reduce_sum names the
    example's axes from the end, so the batch axis stays)."""

    def convert(b: _Builder, node: Node, xs: list[_Value]) -> str:
        op = node.op
        assert isinstance(op, (reduction.Sum, reduction.Mean))
        (x,) = xs
        name = b.cast(x.name, x.tensor.dtype, node.output.dtype)
        return b.reduce(op_type, name, op.axes(x.rank), op.keep_dims)

    return convert


def _softmax(b: _Builder, node: Node, xs: list[_Value]) -> str:
    return b.add("Softmax", [b.as_output_dtype(xs[0], node)], node.name, axis=-1)


def _reshape(b: _Builder, node: Node, xs: list[_Value]) -> str:
    """A reshape node (no op): the per-example shape changes, the batch axis stays."""
    return b.reshape(xs[0].name, node.output.shape, xs[0].batched)


# -- matrix products ------------------------------------------------------------------------------


def _matrix(b: _Builder, x: _Value, vector_shape: tuple[int, int]) -> str:
    """``x`` as a matrix (a batch of matrices): a vector becomes ``vector_shape``."""
    return x.name if x.tensor.rank == 2 else b.reshape(x.name, vector_shape, x.batched)


def _matmul(b: _Builder, node: Node, xs: list[_Value]) -> str:
    """matrix·matrix, vector·matrix, matrix·vector ([k] is [1, k] on the left and [k, 1] on the
    right, as ``batching.MatMulRule`` has it), one ONNX MatMul for the batch (it broadcasts a
    shared operand over the batch of the other)."""
    op = node.op
    assert isinstance(op, linalg.MatMul)
    x1, x2 = xs
    a = b.cast(_matrix(b, x1, (1, x1.tensor.size)), x1.tensor.dtype, node.output.dtype)
    c = b.cast(_matrix(b, x2, (x2.tensor.size, 1)), x2.tensor.dtype, node.output.dtype)
    for i, (x, orientation) in enumerate(((x1, op.a_orientation), (x2, op.b_orientation))):
        if orientation == linalg.MatrixOrientation.TRANSPOSED:
            perm = [0, 2, 1] if x.batched else [1, 0]
            if i == 0:
                a = b.add("Transpose", [a], f"{a}_t", perm=perm)
            else:
                c = b.add("Transpose", [c], f"{c}_t", perm=perm)
    y = b.add("MatMul", [a, c], node.name)
    if x1.tensor.rank == 2 and x2.tensor.rank == 2:
        return y
    return b.reshape(y, node.output.shape, x1.batched or x2.batched)


# -- images ---------------------------------------------------------------------------------------


def _nchw(b: _Builder, x: _Value) -> str:
    """The NHWC image ``x`` (float32) as an NCHW batch (a batch of one when unbatched)."""
    name = b.cast(x.name, x.tensor.dtype, "float32")
    if not x.batched:
        name = b.add("Unsqueeze", [name, b.ints([0], "axes")], f"{name}_batch1")
    return b.add("Transpose", [name], f"{name}_nchw", perm=[0, 3, 1, 2])


def _nhwc(b: _Builder, name: str, batched: bool, node: Node) -> str:
    """The NCHW result back in NHWC, without the batch of one when the output is unbatched."""
    y = b.add("Transpose", [name], f"{node.name}_nhwc", perm=[0, 2, 3, 1])
    return y if batched else b.reshape(y, node.output.shape, False)


def _window_attrs(info: Any, filter_size: Sequence[int]) -> dict[str, list[int]]:
    pad = info.pad_info
    return {
        "kernel_shape": list(filter_size),
        "strides": [info.stride_height, info.stride_width],
        "pads": [pad.top, pad.left, pad.bottom, pad.right],
    }


def _conv2d(b: _Builder, node: Node, xs: list[_Value]) -> str:
    """conv2d(x, w) + bias (``batching.Conv2DRule``), as ONNX Conv on NCHW; weights must be
    shared by the examples."""
    op = node.op
    assert isinstance(op, conv.Conv2D)
    x, w, bias = xs
    if w.batched:
        raise ValueError(
            f"export_onnx: conv2d weights fed per example cannot be expressed in ONNX yet "
            f"(node {node.name!r}); got w={w.tensor!r} among the inputs. Make them a variable."
        )
    info = op.conv_info(x.tensor.shape, w.tensor.shape)
    weights = b.add("Transpose", [b.cast(w.name, w.tensor.dtype, "float32")], "w_oihw", perm=[3, 2, 0, 1])
    bias_f = b.cast(bias.name, bias.tensor.dtype, "float32")
    args = [_nchw(b, x), weights] + ([] if bias.batched else [bias_f])
    y = b.add("Conv", args, node.name, **_window_attrs(info, w.tensor.shape[:2]))
    y = _nhwc(b, y, x.batched, node)
    if bias.batched:  # one bias per example: [B, 1, 1, depth] against [1 or B, rows, cols, depth]
        y = b.add("Add", [y, b.reshape(bias_f, (1, 1, bias.tensor.shape[0]), True)], f"{node.name}_biased")
    return y


def _pool(op_type: str, negate: bool = False, **attrs: Any) -> Converter:
    """max_pool, avg_pool (padding counted, as deeplearn.js divides by the whole window),
    min_pool (the max pool of −x, negated)."""

    def convert(b: _Builder, node: Node, xs: list[_Value]) -> str:
        op = node.op
        assert isinstance(op, pool.PoolOp)
        (x,) = xs
        info = op.pool_info(x.tensor.shape)
        name = _nchw(b, x)
        if negate:
            name = b.add("Neg", [name], f"{name}_neg")
        y = b.add(op_type, [name], node.name, **_window_attrs(info, op.filter_size), **attrs)
        if negate:
            y = b.add("Neg", [y], f"{y}_neg")
        return _nhwc(b, y, x.batched, node)

    return convert


# -- costs and metrics ----------------------------------------------------------------------------


def _mean_squared_cost(b: _Builder, node: Node, xs: list[_Value]) -> str:
    """mean(½·(x1 − x2)²) over each example's axes (``costs.MeanSquaredCost``'s per-example form)."""
    op = node.op
    assert isinstance(op, costs.MeanSquaredCost)
    x1, x2 = (b.cast(x.name, x.tensor.dtype, "float32") for x in xs)
    d = b.add("Sub", [x1, x2], "d")
    half_d_d = b.add("Mul", [b.add("Mul", [b.scalar(0.5), d], "half_d"), d], "half_d_d")
    rank = max(x.rank for x in xs)
    return b.reduce("ReduceMean", half_d_d, example_axes(rank, op.example_rank), False)


def _softmax_cross_entropy_cost(b: _Builder, node: Node, xs: list[_Value]) -> str:
    """−Σ target·log(softmax(x) + 1e-5) over each example's axes (deeplearn.js's epsilon)."""
    op = node.op
    assert isinstance(op, costs.SoftmaxCrossEntropyCost)
    x, target = (b.cast(v.name, v.tensor.dtype, "float32") for v in xs)
    p = b.add("Softmax", [x], "p", axis=-1)
    log_q = b.add("Log", [b.add("Add", [p, b.scalar(costs.SOFTMAX_CE_EPSILON, "epsilon")], "q")], "log_q")
    terms = b.add("Mul", [target, log_q], "terms")
    rank = max(v.rank for v in xs)
    return b.add("Neg", [b.reduce("ReduceSum", terms, example_axes(rank, op.example_rank), False)], node.name)


def _flat_arg_max(b: _Builder, name: str, rank: int, axes: Sequence[int]) -> str:
    """The int64 index of the first maximum over ``axes`` of ``name``, flat (row-major) over them:
    the axes moved to the end and flattened into one, as ``reduction.ArgMax`` groups them."""
    rest = [i for i in range(rank) if i not in axes]
    perm = rest + list(axes)
    if perm != list(range(rank)):
        name = b.add("Transpose", [name], f"{name}_grouped", perm=perm)
    lead = b.add("Shape", [name], f"{name}_lead", start=0, end=len(rest))
    target = b.add("Concat", [lead, b.ints([-1])], f"{name}_flat_shape", axis=0)
    flat = b.add("Reshape", [name, target], f"{name}_flat")
    return b.add("ArgMax", [flat], f"{name}_argmax", axis=-1, keepdims=0, select_last_index=0)


def _arg_max(b: _Builder, node: Node, xs: list[_Value]) -> str:
    op = node.op
    assert isinstance(op, reduction.ArgMax)
    (x,) = xs
    index = _flat_arg_max(b, x.name, x.rank, normalize_axes(op.axis, x.rank, op.name))
    return b.add("Cast", [index], node.name, to=_onnx_dtype(b.onnx, "int32"))


def _arg_max_equals(b: _Builder, node: Node, xs: list[_Value]) -> str:
    op = node.op
    assert isinstance(op, reduction.ArgMaxEquals)
    a1, a2 = (_flat_arg_max(b, x.name, x.rank, example_axes(x.rank, op.example_rank)) for x in xs)
    return b.add("Equal", [a1, a2], node.name)


# -- the table ------------------------------------------------------------------------------------

CONVERTERS: dict[type[Op], Converter] = {
    arithmetic.Add: _binary("Add"),
    arithmetic.Subtract: _binary("Sub"),
    arithmetic.Multiply: _binary("Mul"),
    arithmetic.Divide: _binary("Div"),
    arithmetic.ScaledArrayAdd: _scaled_array_add,
    elementwise.Neg: _unary("Neg"),
    elementwise.Abs: _unary("Abs"),
    elementwise.Square: _square,
    elementwise.Ceil: _rounding("Ceil"),
    elementwise.Floor: _rounding("Floor"),
    elementwise.Exp: _unary("Exp"),
    elementwise.Log: _unary("Log"),
    elementwise.Sqrt: _unary("Sqrt"),
    elementwise.Relu: _unary("Relu"),
    elementwise.Elu: _unary("Elu", alpha=1.0),
    elementwise.Selu: _unary("Selu", alpha=elementwise.SELU_ALPHA, gamma=elementwise.SELU_SCALE),
    elementwise.LeakyRelu: _leaky_relu,
    elementwise.Prelu: _prelu,
    elementwise.Sigmoid: _unary("Sigmoid"),
    elementwise.Tanh: _unary("Tanh"),
    elementwise.Step: _step,
    elementwise.Clip: _clip,
    elementwise.Sin: _unary("Sin"),
    elementwise.Cos: _unary("Cos"),
    elementwise.Tan: _unary("Tan"),
    elementwise.Asin: _unary("Asin"),
    elementwise.Acos: _unary("Acos"),
    elementwise.Atan: _unary("Atan"),
    elementwise.Sinh: _unary("Sinh"),
    elementwise.Cosh: _unary("Cosh"),
    reduction.Sum: _reduction("ReduceSum"),
    reduction.Mean: _reduction("ReduceMean"),
    reduction.Softmax: _softmax,
    reduction.ArgMax: _arg_max,
    reduction.ArgMaxEquals: _arg_max_equals,
    layout.Concat: _concat,
    linalg.MatMul: _matmul,
    conv.Conv2D: _conv2d,
    pool.MaxPool: _pool("MaxPool"),
    pool.MinPool: _pool("MaxPool", negate=True),
    pool.AvgPool: _pool("AveragePool", count_include_pad=1),
    costs.MeanSquaredCost: _mean_squared_cost,
    costs.SoftmaxCrossEntropyCost: _softmax_cross_entropy_cost,
}
"""The ONNX converter of each op class a Graph node can carry; an op not here cannot be exported."""


def converter_for(node: Node) -> Converter | None:
    """The converter of ``node``: its op class's entry, the reshape converter for a reshape node
    (which has no op), None when the op cannot be exported.

    Example:
        >>> g = dl.Graph(); x = g.placeholder("x", [2, 3])
        >>> [converter_for(t.node) is not None for t in (g.relu(x), g.reshape(x, [6]), x)]
        [True, True, False]
    """
    if node.op is None:
        return _reshape if node.op_rule is batching.RESHAPE else None
    return CONVERTERS.get(type(node.op))


# -- the export -----------------------------------------------------------------------------------


def export_onnx(
    graph: Graph,
    outputs: Tensor | Sequence[Tensor],
    path: str | os.PathLike[str] | None = None,
    inputs: Sequence[Tensor] | None = None,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """Exports the part of ``graph`` that computes ``outputs`` as an ONNX model, for a batch.

    The model computes what ``Session.eval_batch(outputs, ...)`` does: every input and output
    has the tensor's per-example shape behind a leading dynamic ``batch`` dimension, and an
    output that depends on no input is repeated along the batch. Variables and constants are
    stored in the model with their current values. Inputs and outputs are named after their
    tensors (``name_2``, ``name_3`` ... where names repeat; characters other than letters,
    digits and ``_-./`` become ``_``): ``model.graph.input`` and ``model.graph.output`` give the
    exact names. The model passes ``onnx.checker`` before it is returned or written.

    Args:
        graph: the Graph.
        outputs: the tensor, or tensors, the model computes.
        path: where to write the model (atomically: a temporary file in the same folder, then
            a rename); None writes nothing.
        inputs: the tensors fed to the model; by default every placeholder ``outputs`` need.
            Any tensor may be an input: the graph is cut there, as a Session feed cuts it.
        opset: the ONNX opset to write (``MIN_OPSET`` or later).

    Returns:
        The ``onnx.ModelProto`` (``model.SerializeToString()`` gives its bytes).

    Raises:
        ValueError: an op that ONNX cannot express yet (naming it and its node), a placeholder
            the outputs need that is not among ``inputs``, outputs that need no input, or an
            unsupported ``opset``; nothing is written then.
        ImportError: ``onnx`` is not installed (``pip install -e '.[export]'``).

    Example:
        >>> import pytest; _ = pytest.importorskip("onnx")
        >>> g = dl.Graph()
        >>> x = g.placeholder("x", [3])
        >>> y = g.layers.dense("dense", x, 2, g.relu)
        >>> model = dl.export_onnx(g, y)
        >>> [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim])
        ...  for i in (*model.graph.input, *model.graph.output)]
        [('x', ['batch', 3]), ('relu', ['batch', 2])]
    """
    where = "export_onnx"
    wanted = _as_tensors(outputs, graph, "outputs", where)
    if not wanted:
        raise ValueError(f"{where}: outputs must name at least one tensor; got outputs={outputs!r}.")
    fed = None if inputs is None else list(dict.fromkeys(_as_tensors(inputs, graph, "inputs", where)))
    nodes, fed = _subgraph(graph, wanted, fed, where)
    _check_convertible(nodes, wanted, where)
    if not fed:
        raise ValueError(
            f"{where}: the outputs must depend on at least one input (the batch comes from the "
            f"inputs); got outputs={wanted!r} and inputs={list(fed)!r}."
        )
    onnx_module = _import_onnx(where)
    if not MIN_OPSET <= opset <= onnx_module.defs.onnx_opset_version():
        raise ValueError(
            f"{where}: opset must be between {MIN_OPSET} and {onnx_module.defs.onnx_opset_version()} "
            f"(this onnx's newest); got opset={opset!r}."
        )
    model = _build_model(onnx_module, opset, nodes, wanted, fed)
    onnx_module.checker.check_model(model, full_check=True)
    if path is not None:
        write_atomic(Path(path), model.SerializeToString())
    return model


def _as_tensors(value: Tensor | Sequence[Tensor], graph: Graph, arg: str, where: str) -> list[Tensor]:
    tensors = [value] if isinstance(value, Tensor) else list(value)
    for t in tensors:
        if not isinstance(t, Tensor) or t.node.graph is not graph:
            raise ValueError(f"{where}: {arg} must be Tensors of the graph; got {arg}={value!r}.")
    return tensors


def _subgraph(
    graph: Graph, wanted: list[Tensor], fed: list[Tensor] | None, where: str
) -> tuple[list[Node], list[Tensor]]:
    """The nodes that compute ``wanted`` from ``fed`` (graph order), and the inputs: ``fed``,
    or the placeholders reached when it is None."""
    stop = set(fed or ())
    needed: set[Node] = set()
    placeholders: set[Tensor] = set()
    stack = [t for t in wanted if t not in stop]
    while stack:
        node = stack.pop().node
        if node in needed:
            continue
        needed.add(node)
        if isinstance(node, PlaceholderNode):
            placeholders.add(node.output)
        stack.extend(t for t in node.inputs if t not in stop)
    if fed is None:
        fed = [n.output for n in graph.nodes if n.output in placeholders]
    elif placeholders:
        missing = [t for t in (n.output for n in graph.nodes) if t in placeholders]
        raise ValueError(
            f"{where}: every placeholder the outputs need must be among inputs; got outputs="
            f"{wanted!r} and inputs={fed!r}, missing {missing!r}."
        )
    nodes = [n for n in graph.nodes if n in needed and not isinstance(n, PlaceholderNode)]
    return nodes, fed


def _check_convertible(nodes: list[Node], wanted: list[Tensor], where: str) -> None:
    """ValueError naming the first node whose op has no ONNX converter."""
    for node in nodes:
        if isinstance(node, (VariableNode, ConstantNode)) or converter_for(node) is not None:
            continue
        op = (
            f"{type(node).__name__} without an op"
            if node.op is None
            else f"{node.op.name} ({type(node.op).__name__})"
        )
        raise ValueError(
            f"{where}: every op the outputs need must have an ONNX form; this one cannot be "
            f"expressed in ONNX yet: {op} (node {node.name!r}); got outputs={wanted!r}."
        )


def _import_onnx(where: str) -> Any:
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError as e:
        raise ImportError(
            f"{where}: needs the onnx package; install the export extra: pip install -e '.[export]'."
        ) from e
    return onnx


def _build_model(
    onnx_module: Any, opset: int, nodes: list[Node], wanted: list[Tensor], fed: list[Tensor]
) -> onnx.ModelProto:
    helper = onnx_module.helper
    b = _Builder(onnx_module, opset)
    values: dict[Tensor, _Value] = {}
    graph_inputs = []
    for t in fed:
        values[t] = _Value(b.fresh(t.name), t, True)
        graph_inputs.append(_value_info(onnx_module, values[t].name, t))
    output_names = [b.fresh(t.name) for t in wanted]  # public names first: internal ones avoid them
    for node in nodes:
        t = node.output
        if isinstance(node, (VariableNode, ConstantNode)):
            array = np.asarray(node.data.numpy(), dtype=_NP_DTYPES[t.dtype]).reshape(t.shape)
            values[t] = _Value(b.initializer(array, node.name), t, False)
            continue
        converter = converter_for(node)
        assert converter is not None  # _check_convertible ran
        xs = [values[i] for i in node.inputs]
        values[t] = _Value(converter(b, node, xs), t, any(x.batched for x in xs))
    batch_source = values[fed[0]].name
    graph_outputs = []
    for t, name in zip(wanted, output_names, strict=True):
        v = values[t]
        source = v.name if v.batched else b.tile(v.name, t.shape, batch_source)
        b.nodes.append(helper.make_node("Identity", [source], [name], name=b.fresh(f"output_{name}")))
        graph_outputs.append(_value_info(onnx_module, name, t))
    onnx_graph = helper.make_graph(b.nodes, "deeplearn", graph_inputs, graph_outputs, b.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model: onnx.ModelProto = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="deeplearn")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    return model


def _value_info(onnx_module: Any, name: str, t: Tensor) -> Any:
    """A graph input's or output's type: the tensor's dtype, [batch, *its per-example shape]."""
    return onnx_module.helper.make_tensor_value_info(
        name, _onnx_dtype(onnx_module, t.dtype), [BATCH, *t.shape]
    )
