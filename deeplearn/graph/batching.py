"""Batch rules: how each Graph node runs, with or without a leading batch axis.

Graph shapes are per example (docs/design.md §5). When a Session trains, every value computed from a
fed tensor carries a leading batch axis of size B, while variables and constants do not. A node's
rule runs the node's op once on such arrays and sends gradients back with the same layout: a
batched input gets a batched gradient, an unbatched input (a variable) gets the gradient summed
over the batch — the sum of the per-example gradients, exactly what deeplearn.js accumulated by
looping over examples. With no batched input a rule computes exactly the per-example op.

The rules are a table keyed by op class, ``RULES``. An op that is not in it runs as it is
(``NATIVE``): right for every op that already treats leading axes as a batch of examples, i.e. the
element-wise ops of one input, softmax, max_pool, and the per-example forms of the reductions and
costs that Graph nodes carry (``reduction.paired_examples``). The rules in the table only lay the
arrays out (align, tile, fold the batch into a matrix) around the op's own ``forward`` and
``backward``: no op's formula is written here. This module is the only place that knows about the
batch axis.

Example:
    >>> from deeplearn.math.ops import elementwise, linalg
    >>> rule_for(elementwise.Relu()) is NATIVE, rule_for(linalg.MatMul()) is MATMUL
    (True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from deeplearn.math.ops import arithmetic, conv, elementwise, layout, linalg, reduction
from deeplearn.math.ops.base import Op, unbroadcast

if TYPE_CHECKING:
    from deeplearn.graph.graph import Node
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = [
    "BROADCAST",
    "CONV2D",
    "MATMUL",
    "NATIVE",
    "NO_GRADIENT",
    "RESHAPE",
    "RULES",
    "SCALED_ARRAY_ADD",
    "TILED",
    "BatchRule",
    "BroadcastRule",
    "Conv2DRule",
    "MatMulRule",
    "NativeRule",
    "NoGradientRule",
    "ReshapeRule",
    "ScaledArrayAddRule",
    "TiledRule",
    "rule_for",
]

Grads = list["NDArray | None"]
REGULAR, TRANSPOSED = linalg.MatrixOrientation.REGULAR, linalg.MatrixOrientation.TRANSPOSED


class BatchRule:
    """How the nodes of one kind of op run.

    ``xs[i]`` has shape ``(B, *node.inputs[i].shape)`` when ``batched[i]``, else
    ``node.inputs[i].shape``; the output is batched when any input is. ``backward`` returns one
    gradient per input with that input's array shape (None for an input that gets none), and
    may skip inputs whose ``wants`` entry is False.
    """

    def forward(
        self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]
    ) -> NDArray:
        raise NotImplementedError

    def backward(
        self,
        math: NDArrayMath,
        node: Node,
        dy: NDArray,
        xs: Sequence[NDArray],
        batched: Sequence[bool],
        y: NDArray,
        wants: Sequence[bool],
    ) -> Grads:
        raise NotImplementedError


# -- small helpers -------------------------------------------------------------------------------


def _batch_size(xs: Sequence[NDArray], batched: Sequence[bool]) -> int:
    return next(x.shape[0] for x, b in zip(xs, batched, strict=True) if b)


def _op(node: Node) -> Op:
    """The node's op; every node that has a rule of the table has one."""
    assert node.op is not None, f"{node!r} has no op"
    return node.op


def _transpose(math: NDArrayMath, x: NDArray, perm: Sequence[int]) -> NDArray:
    """``x`` permuted; a free reshape when only size-1 axes move (vectors as matrices)."""
    moved = [p for p in perm if x.shape[p] != 1]
    if moved == sorted(moved):
        return x.reshape(tuple(x.shape[p] for p in perm))
    return math.transpose(x, list(perm))


def _given_back(
    math: NDArrayMath,
    grads: Sequence[NDArray | None],
    views: Sequence[NDArray],
    xs: Sequence[NDArray],
    wants: Sequence[bool],
) -> Grads:
    """The op's gradients, one per argument made from the view ``views[i]`` of ``xs[i]``, as the
    gradients of the ``xs``: summed over the axes the view was broadcast or tiled along (the
    batch, for an unbatched input of a batched output), then given the input's shape."""
    return [
        None if g is None or not w else unbroadcast(math, g, v.shape).reshape(x.shape)
        for g, v, x, w in zip(grads, views, xs, wants, strict=True)
    ]


# -- the default: the op as it is ----------------------------------------------------------------


class NativeRule(BatchRule):
    """The op runs on its inputs as they are, with its own gradient: right for every op that
    treats leading axes as independent examples (element-wise ops of one input, softmax along
    the last axis, max_pool of NHWC batches, the per-example forms of reductions and costs).

    Subclasses change only how the inputs are laid out for the op: ``views`` gives each input
    as a view that broadcasts as the examples need, ``args`` the op's arguments made from them
    (the views, or copies tiled along the batch). A gradient comes back through the same
    layout, summed over whatever was broadcast.
    """

    def views(self, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> list[NDArray]:
        return list(xs)

    def args(self, math: NDArrayMath, views: list[NDArray], batched: Sequence[bool]) -> list[NDArray]:
        return views

    def forward(
        self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]
    ) -> NDArray:
        args = self.args(math, self.views(node, xs, batched), batched)
        return math.engine.run(_op(node), *args)

    def backward(
        self,
        math: NDArrayMath,
        node: Node,
        dy: NDArray,
        xs: Sequence[NDArray],
        batched: Sequence[bool],
        y: NDArray,
        wants: Sequence[bool],
    ) -> Grads:
        views = self.views(node, xs, batched)
        grads = _op(node).backward(math, dy, *self.args(math, views, batched), y)
        return _given_back(math, grads, views, xs, wants)


class NoGradientRule(NativeRule):
    """Ops whose value is piecewise constant (argmax, argmax_equals): no gradient, rather than
    the op's "has no gradient" error."""

    def backward(
        self,
        math: NDArrayMath,
        node: Node,
        dy: NDArray,
        xs: Sequence[NDArray],
        batched: Sequence[bool],
        y: NDArray,
        wants: Sequence[bool],
    ) -> Grads:
        return [None] * len(xs)  # zero almost everywhere


# -- element-wise ops of several inputs ----------------------------------------------------------


class BroadcastRule(NativeRule):
    """Element-wise ops of two inputs (add, subtract, multiply, divide). Per example, a size-1
    input acts as a scalar (as deeplearn.js's scalarPlusArray & co.) and the others broadcast
    right-aligned; so a batched input's view has its batch axis in front of the size-1 axes that
    align it with the output's rank (a batched [3] against a shared [2, 3] is [B, 1, 3])."""

    def views(self, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> list[NDArray]:
        out_shape = node.output.shape
        out = []
        for x, b, t in zip(xs, batched, node.inputs, strict=True):
            shape = () if t.size == 1 and t.shape != out_shape else t.shape
            if b:
                shape = (x.shape[0],) + (1,) * (len(out_shape) - len(shape)) + shape
            out.append(x.reshape(shape) if shape != x.shape else x)
        return out


class TiledRule(NativeRule):
    """Ops whose inputs must have equal shapes (prelu) or ranks (concat along an axis counted
    from the end): when some are batched, the others are tiled along the batch, and their
    gradients summed over it.

    ``inputs``: the indices of the inputs that must match (None: all of them).
    """

    def __init__(self, inputs: tuple[int, ...] | None = None) -> None:
        self.inputs = inputs

    def _tiles(self, i: int, b: bool, batched: Sequence[bool]) -> bool:
        return not b and any(batched) and (self.inputs is None or i in self.inputs)

    def views(self, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> list[NDArray]:
        return [
            x.reshape((1, *x.shape)) if self._tiles(i, b, batched) else x
            for i, (x, b) in enumerate(zip(xs, batched, strict=True))
        ]

    def args(self, math: NDArrayMath, views: list[NDArray], batched: Sequence[bool]) -> list[NDArray]:
        if not any(batched):
            return views
        batch = _batch_size(views, batched)
        return [
            math.tile(v, [batch] + [1] * (v.rank - 1)) if self._tiles(i, b, batched) else v
            for i, (v, b) in enumerate(zip(views, batched, strict=True))
        ]


class ScaledArrayAddRule(TiledRule):
    """y = c1·x1 + c2·x2 (fused_linear_combination; inputs c1, x1, c2, x2, the coefficients
    scalars per example).

    With shared coefficients the op runs as it is, x1 and x2 tiled to one batch when only one of
    them is batched (the op needs equal shapes). The op's coefficients are single numbers, so
    coefficients fed per example run unfused instead: y = c1·x1 + c2·x2 as two broadcast products
    and a sum, what the graph computes without the fused node, each product with Multiply's own
    gradient. (A per-example form of ScaledArrayAdd in arithmetic.py would remove this path.)
    """

    def __init__(self) -> None:
        super().__init__(inputs=(1, 3))

    @staticmethod
    def _unfused(node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> list[NDArray] | None:
        """c1, x1, c2, x2 as views for the unfused products (each coefficient a scalar, or [B]
        as [B, 1, ..., 1] against its term), or None when no coefficient is batched."""
        if not (batched[0] or batched[2]):
            return None
        lead = (1,) * len(node.output.shape)
        return [
            (x.reshape((x.shape[0], *lead)) if b else x.reshape(())) if i in (0, 2) else x
            for i, (x, b) in enumerate(zip(xs, batched, strict=True))
        ]

    def forward(
        self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]
    ) -> NDArray:
        views = self._unfused(node, xs, batched)
        if views is None:
            return super().forward(math, node, xs, batched)
        c1, x1, c2, x2 = views
        return math.add(math.multiply(c1, x1), math.multiply(c2, x2))

    def backward(
        self,
        math: NDArrayMath,
        node: Node,
        dy: NDArray,
        xs: Sequence[NDArray],
        batched: Sequence[bool],
        y: NDArray,
        wants: Sequence[bool],
    ) -> Grads:
        views = self._unfused(node, xs, batched)
        if views is None:
            return super().backward(math, node, dy, xs, batched, y, wants)
        c1, x1, c2, x2 = views
        # The sum hands dy to both products. (Multiply's gradient does not read its output.)
        dc1, dx1 = arithmetic.Multiply().backward(math, dy, c1, x1, y)
        dc2, dx2 = arithmetic.Multiply().backward(math, dy, c2, x2, y)
        return _given_back(math, [dc1, dx1, dc2, dx2], views, xs, wants)


# -- matrix products ----------------------------------------------------------------------------


class MatMulRule(BatchRule):
    """matrix·matrix, vector·matrix and matrix·vector, as matrices ([k] is [1, k] on the left,
    [k, 1] on the right).

    With one operand batched, the batch is folded into the rows of one matrix product, which the
    MatMul op computes, and differentiates, once: a batched A [B, m, k] times a shared B is
    [B·m, k]·B (a batched vector times a weight matrix, the dense layer, is [B, k]·[k, n]), and
    a shared A times a batched B is, transposed, [B·n, k]·Aᵀ (A·B_b = (B_bᵀ·Aᵀ)ᵀ). The shared
    operand's gradient from the folded product is already the sum over the batch.
    """

    _TIMES_TRANSPOSED = linalg.MatMul(REGULAR, TRANSPOSED)

    @staticmethod
    def _matrices(node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> tuple[NDArray, NDArray]:
        op = _op(node)
        if isinstance(op, linalg.MatMul) and any(batched) and _unfoldable(op, batched):
            # The folds below lay the batch out for A·B, and for a batched A times a shared op(B)
            # (Graph.matmul builds no other): refuse the rest rather than compute a wrong product.
            raise ValueError(
                f"{node.name}: a matrix product with a transposed operand cannot run with a batched "
                f"operand; got orientations ({op.a_orientation.name}, {op.b_orientation.name}) and "
                f"batched={tuple(batched)}."
            )
        x1, x2 = xs
        t1, t2 = node.inputs
        lead1 = x1.shape[:1] if batched[0] else ()
        lead2 = x2.shape[:1] if batched[1] else ()
        a = x1 if t1.rank == 2 else x1.reshape((*lead1, 1, t1.shape[0]))
        b = x2 if t2.rank == 2 else x2.reshape((*lead2, t2.shape[0], 1))
        return a, b

    def _fold(
        self, math: NDArrayMath, node: Node, a: NDArray, b: NDArray, batched: Sequence[bool]
    ) -> tuple[linalg.MatMul, NDArray, NDArray, bool]:
        """(op, left, right, swapped): the one product op(left, right) that holds every example's
        product; ``swapped`` when it holds them transposed, as [B·n, m]."""
        if batched[1] and not batched[0]:
            bt = _transpose(math, b, (0, 2, 1))  # [B, n, k]: free for a batch of vectors
            return self._TIMES_TRANSPOSED, bt.reshape((-1, bt.shape[2])), a, True
        op = _op(node)
        assert isinstance(op, linalg.MatMul)
        return op, a.reshape((-1, a.shape[-1])), b, False

    @staticmethod
    def _folded(math: NDArrayMath, m: NDArray, swapped: bool) -> NDArray:
        """Products laid out per example, [B, m, n] (or [m, n]), as the folded product holds them."""
        if swapped:
            mt = _transpose(math, m, (0, 2, 1))
            return mt.reshape((-1, mt.shape[2]))
        return m.reshape((-1, m.shape[-1]))

    def forward(
        self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]
    ) -> NDArray:
        a, b = self._matrices(node, xs, batched)
        lead = (_batch_size(xs, batched),) if any(batched) else ()
        if all(batched):
            y = _per_example_product(math, a, b)
        else:
            op, left, right, swapped = self._fold(math, node, a, b, batched)
            y = math.engine.run(op, left, right)
            if swapped:  # [B·n, m] back to [B, m, n]
                y = _transpose(math, y.reshape((b.shape[0], b.shape[2], a.shape[0])), (0, 2, 1))
        return y.reshape((*lead, *node.output.shape))

    def backward(
        self,
        math: NDArrayMath,
        node: Node,
        dy: NDArray,
        xs: Sequence[NDArray],
        batched: Sequence[bool],
        y: NDArray,
        wants: Sequence[bool],
    ) -> Grads:
        a, b = self._matrices(node, xs, batched)
        lead = (_batch_size(xs, batched),) if any(batched) else ()
        per_example = (*lead, a.shape[-2], b.shape[-1])
        if all(batched):
            da, db = _per_example_product_grads(math, dy.reshape(per_example), a, b)
        else:
            op, left, right, swapped = self._fold(math, node, a, b, batched)
            dy_f = self._folded(math, dy.reshape(per_example), swapped)
            y_f = self._folded(math, y.reshape(per_example), swapped)
            d_left, d_right = op.backward(math, dy_f, left, right, y_f)
            if swapped:  # d_left holds the examples' dB_bᵀ
                da, db = (
                    d_right,
                    _transpose(math, d_left.reshape((b.shape[0], b.shape[2], b.shape[1])), (0, 2, 1)),
                )
            else:
                da, db = d_left, d_right
        return [da.reshape(xs[0].shape) if wants[0] else None, db.reshape(xs[1].shape) if wants[1] else None]


def _unfoldable(op: linalg.MatMul, batched: Sequence[bool]) -> bool:
    """Whether MatMulRule cannot lay out ``op``'s product with this batching (a transposed A
    with a batched operand, or a transposed B with a batched B)."""
    if (op.a_orientation, op.b_orientation) == (REGULAR, REGULAR):
        return False
    return not (op.a_orientation == REGULAR and batched[0] and not batched[1])


# MatMul takes matrices only, and two batched operands (one product per example) cannot share
# one matrix product: y_b = A_b·B_b is then taken as what it is, Σ_k A_b[:, k]·B_b[k, :], a
# broadcast product [B, m, k, 1]·[B, 1, k, n] summed over k, differentiated by Multiply's gradient.
# (A batched form of MatMul in linalg.py, xp.matmul's, would remove these two functions.)


def _per_example_product(math: NDArrayMath, a: NDArray, b: NDArray) -> NDArray:
    return math.sum(math.multiply(a.reshape((*a.shape, 1)), b.reshape((b.shape[0], 1, *b.shape[1:]))), 2)


def _per_example_product_grads(
    math: NDArrayMath, dy: NDArray, a: NDArray, b: NDArray
) -> tuple[NDArray, NDArray]:
    a4, b4 = a.reshape((*a.shape, 1)), b.reshape((b.shape[0], 1, *b.shape[1:]))
    dy4 = dy.reshape((dy.shape[0], dy.shape[1], 1, dy.shape[2]))  # the sum over k hands dy to every k
    da4, db4 = arithmetic.Multiply().backward(math, dy4, a4, b4, dy4)  # (its output is not read)
    return da4.reshape(a.shape), db4.reshape(b.shape)


# -- layout --------------------------------------------------------------------------------------


class ReshapeRule(BatchRule):
    """A view with another per-example shape (the node's output shape); the batch axis stays in
    front. Reshape nodes carry no op: the view is free, and no Op describes one."""

    def forward(
        self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]
    ) -> NDArray:
        lead = xs[0].shape[:1] if batched[0] else ()
        return xs[0].reshape((*lead, *node.output.shape))

    def backward(
        self,
        math: NDArrayMath,
        node: Node,
        dy: NDArray,
        xs: Sequence[NDArray],
        batched: Sequence[bool],
        y: NDArray,
        wants: Sequence[bool],
    ) -> Grads:
        return [dy.reshape(xs[0].shape)]


# -- images --------------------------------------------------------------------------------------


class Conv2DRule(BatchRule):
    """conv2d(x, w) + b (inputs x, w, b; the op is the Conv2D of x and w, which takes NHWC
    batches as they are). The bias, one value per output channel, is added after it, broadcast
    over rows and columns (and examples). The weights must be unbatched."""

    @staticmethod
    def _bias(b: NDArray, batched: bool) -> NDArray:
        """The bias as a view that broadcasts against the convolution's output."""
        return b.reshape((b.shape[0], 1, 1, b.shape[1])) if batched else b

    def forward(
        self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]
    ) -> NDArray:
        x, w, b = xs
        _check_unbatched_weights(batched)
        return math.add(math.engine.run(_op(node), x, w), self._bias(b, batched[2]))

    def backward(
        self,
        math: NDArrayMath,
        node: Node,
        dy: NDArray,
        xs: Sequence[NDArray],
        batched: Sequence[bool],
        y: NDArray,
        wants: Sequence[bool],
    ) -> Grads:
        x, w, b = xs
        # Only the bias was batched: x∗w is one image shared by the examples, with the sum of
        # their gradients. (Conv2D's gradient reads x and w, not its output.)
        dy_conv = math.sum(dy, 0) if batched[2] and not batched[0] else dy
        dx, dw = _op(node).backward(math, dy_conv, x, w, y)
        bias = self._bias(b, batched[2])
        db = unbroadcast(math, dy, bias.shape).reshape(b.shape)  # dy summed where the bias was broadcast
        return [dx if wants[0] else None, dw if wants[1] else None, db if wants[2] else None]


def _check_unbatched_weights(batched: Sequence[bool]) -> None:
    if batched[1]:
        raise NotImplementedError(
            "Session: conv2d with weights fed per example is not supported; feed the weights "
            "with NDArrays (Session.eval) or make them variables."
        )


# -- the table -----------------------------------------------------------------------------------

NATIVE = NativeRule()
NO_GRADIENT = NoGradientRule()
BROADCAST = BroadcastRule()
TILED = TiledRule()
SCALED_ARRAY_ADD = ScaledArrayAddRule()
MATMUL = MatMulRule()
RESHAPE = ReshapeRule()
CONV2D = Conv2DRule()

RULES: dict[type[Op], BatchRule] = {
    arithmetic.Add: BROADCAST,
    arithmetic.Subtract: BROADCAST,
    arithmetic.Multiply: BROADCAST,
    arithmetic.Divide: BROADCAST,
    arithmetic.ScaledArrayAdd: SCALED_ARRAY_ADD,
    elementwise.Prelu: TILED,
    layout.Concat: TILED,
    linalg.MatMul: MATMUL,
    conv.Conv2D: CONV2D,
    reduction.ArgMax: NO_GRADIENT,
    reduction.ArgMaxEquals: NO_GRADIENT,
}
"""The batch rule of each op class that needs one; every other op runs as it is (``NATIVE``)."""


def rule_for(op: Op) -> BatchRule:
    """The batch rule of ``op``'s class: its entry in ``RULES``, else ``NATIVE``."""
    return RULES.get(type(op), NATIVE)
