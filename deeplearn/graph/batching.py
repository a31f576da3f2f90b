"""Batch rules: how each kind of Graph node runs, with or without a leading batch axis.

Graph shapes are per example (docs/design.md §5). When a Session trains, every value computed from a
fed tensor carries a leading batch axis of size B, while variables and constants do not. Each
node's ``op_rule`` runs its op once on such arrays and sends gradients back with the same layout:
a batched input gets a batched gradient, an unbatched input (a variable) gets the gradient summed
over the batch — the sum of the per-example gradients, exactly what deeplearn.js accumulated by
looping over examples. With no batched input a rule computes exactly the per-example op.

Every rule is written with NDArrayMath calls and the ops' own ``forward``/``backward``, so it runs
on any backend. This module is the only place that knows about the batch axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from deeplearn.math.ndarray import Scalar
from deeplearn.math.ops import arithmetic, costs, layout, reduction
from deeplearn.math.ops.base import unbroadcast
from deeplearn.math.ops.linalg import MatrixOrientation
from deeplearn.types import Shape

if TYPE_CHECKING:
    from deeplearn.graph.graph import Node
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = [
    "ARGMAX",
    "ARGMAX_EQUALS",
    "BROADCAST",
    "CONV2D",
    "EQUAL_SHAPES",
    "LINEAR_COMBINATION",
    "MATMUL",
    "MEAN_SQUARED_COST",
    "NATIVE",
    "REDUCE_SUM",
    "SOFTMAX_CROSS_ENTROPY",
    "BatchRule",
    "BroadcastRule",
    "ConcatRule",
    "MatMulRule",
    "NativeRule",
    "ReshapeRule",
]

Grads = list["NDArray | None"]
REGULAR, TRANSPOSED = MatrixOrientation.REGULAR, MatrixOrientation.TRANSPOSED


class BatchRule:
    """How one kind of node runs.

    ``xs[i]`` has shape ``(B, *node.inputs[i].shape)`` when ``batched[i]``, else
    ``node.inputs[i].shape``; the output is batched when any input is. ``backward`` returns one
    gradient per input with that input's array shape (None for an input that gets none), and
    may skip inputs whose ``wants`` entry is False.
    """

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        raise NotImplementedError

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        raise NotImplementedError


# -- small helpers -------------------------------------------------------------------------------


def _batch_size(xs: Sequence[NDArray], batched: Sequence[bool]) -> int:
    return next(x.shape[0] for x, b in zip(xs, batched) if b)


def _sum_to(math: NDArrayMath, g: NDArray, aligned: Shape, target: Shape) -> NDArray:
    """``g`` summed over the axes broadcast from ``aligned``, reshaped to ``target``."""
    return unbroadcast(math, g, aligned).reshape(target)


def _transpose(math: NDArrayMath, x: NDArray, perm: Sequence[int]) -> NDArray:
    """``x`` permuted; a free reshape when only size-1 axes move (vectors as matrices)."""
    moved = [p for p in perm if x.shape[p] != 1]
    if moved == sorted(moved):
        return x.reshape(tuple(x.shape[p] for p in perm))
    return math.transpose(x, list(perm))


def _per_example_axes(x: NDArray, batched: bool) -> list[int]:
    return list(range(1 if batched else 0, x.rank))


def _per_input(math: NDArrayMath, grads: list[NDArray], batched: Sequence[bool], wants: Sequence[bool]) -> Grads:
    """Gradients computed at the output's layout, given back per input: an unbatched input of a
    batched output gets its gradient summed over the batch."""
    out_b = any(batched)
    return [None if not w else math.sum(g, 0) if out_b and not b else g
            for g, b, w in zip(grads, batched, wants)]


def _lead(dy: NDArray, batched: bool, rank: int) -> NDArray:
    """A per-example scalar gradient (shape (B,) or ()) shaped to broadcast against rank-``rank``
    per-example values."""
    return dy.reshape((dy.shape[0],) + (1,) * rank) if batched else dy


# -- ops that accept a leading batch axis as they are -------------------------------------------


class NativeRule(BatchRule):
    """One-input ops that already treat leading axes as independent examples: element-wise ops,
    softmax (along the last axis), max_pool (NHWC with a batch). The op runs unchanged."""

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        return math.engine.run(node.op, xs[0])  # type: ignore[arg-type,no-any-return]

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        return list(node.op.backward(math, dy, *xs, y))  # type: ignore[union-attr]


class BroadcastRule(BatchRule):
    """Element-wise ops of several inputs. Per example, a size-1 input acts as a scalar (as
    deeplearn.js's scalarPlusArray & co.) and the others broadcast right-aligned; a batched input
    gets its batch axis in front of size-1 axes that align it with the output's rank.

    ``equal_shapes``: the op accepts equal shapes only (prelu), so unbatched inputs are tiled
    along the batch when another input is batched.
    """

    def __init__(self, equal_shapes: bool = False) -> None:
        self.equal_shapes = equal_shapes

    def _align(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> list[NDArray]:
        out_shape = node.output.shape
        batch = _batch_size(xs, batched) if any(batched) else 0
        aligned = []
        for x, b, t in zip(xs, batched, node.inputs):
            shape = () if t.size == 1 and t.shape != out_shape else t.shape
            if b:
                shape = (batch,) + (1,) * (len(out_shape) - len(shape)) + shape
            aligned.append(x.reshape(shape) if shape != x.shape else x)
        return aligned

    def _tiled(self, math: NDArrayMath, node: Node, aligned: list[NDArray], batched: Sequence[bool]) -> list[NDArray]:
        if not self.equal_shapes or not any(batched) or all(batched):
            return aligned
        batch = _batch_size(aligned, batched)
        return [x if b else math.tile(x.reshape((1, *x.shape)), [batch] + [1] * x.rank)
                for x, b in zip(aligned, batched)]

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        args = self._tiled(math, node, self._align(math, node, xs, batched), batched)
        return math.engine.run(node.op, *args)  # type: ignore[arg-type,no-any-return]

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        aligned = self._align(math, node, xs, batched)
        grads = node.op.backward(math, dy, *self._tiled(math, node, aligned, batched), y)  # type: ignore[union-attr]
        return [None if g is None or not w else _sum_to(math, g, a.shape, x.shape)
                for g, a, x, w in zip(grads, aligned, xs, wants)]


# -- matrix products ----------------------------------------------------------------------------


def _product(math: NDArrayMath, p: NDArray, p_batched: bool, q: NDArray, q_batched: bool,
             tp: bool, tq: bool, out_batched: bool) -> NDArray:
    """op(P)·op(Q) per example, where op transposes when ``tp``/``tq``. P and Q are matrices, with
    a leading batch axis when batched. When ``out_batched`` is False but an operand is batched,
    the per-example products are summed over the batch (the gradient of an unbatched operand).

    Every case is one ``mat_mul`` (plus transposes that are free for vectors), except a product
    of two batched operands kept per example, which broadcasts and sums.
    """
    op_p, op_q = (TRANSPOSED if tp else REGULAR), (TRANSPOSED if tq else REGULAR)
    if not p_batched and not q_batched:
        return math.mat_mul(p, q, op_p, op_q)
    if not out_batched:
        # The gradient of an unbatched operand: dA = dY·Bᵀ with B unbatched would keep dY's batch,
        # so here both operands are batched. Σ_b op(P_b)·op(Q_b) is one product of the
        # examples laid side by side: [op(P_1) … op(P_B)] · [op(Q_1); …; op(Q_B)].
        assert p_batched and q_batched, "a product summed over the batch needs two batched operands"
        b = p.shape[0]
        if tp:
            left, op_p = p.reshape((b * p.shape[1], p.shape[2])), TRANSPOSED
        else:
            left, op_p = _transpose(math, p, (1, 0, 2)).reshape((p.shape[1], b * p.shape[2])), REGULAR
        if tq:
            right, op_q = _transpose(math, q, (1, 0, 2)).reshape((q.shape[1], b * q.shape[2])), TRANSPOSED
        else:
            right, op_q = q.reshape((b * q.shape[1], q.shape[2])), REGULAR
        return math.mat_mul(left, right, op_p, op_q)
    if p_batched and not q_batched:
        pm = _transpose(math, p, (0, 2, 1)) if tp else p  # (B, m, k)
        b, m, k = pm.shape
        return math.mat_mul(pm.reshape((b * m, k)), q, REGULAR, op_q).reshape((b, m, -1))
    if q_batched and not p_batched:
        # (op(P)·op(Q_b))ᵀ = op(Q_b)ᵀ·op(P)ᵀ: the batched operand goes on the left.
        rt = _product(math, q, True, p, False, not tq, not tp, True)
        return _transpose(math, rt, (0, 2, 1))
    # Both batched, kept per example: (B, m, k, 1) · (B, 1, k, n) summed over k.
    pm = _transpose(math, p, (0, 2, 1)) if tp else p
    qm = _transpose(math, q, (0, 2, 1)) if tq else q
    prod = math.multiply(pm.reshape((*pm.shape, 1)), qm.reshape((qm.shape[0], 1, *qm.shape[1:])))
    return math.sum(prod, 2)


class MatMulRule(BatchRule):
    """matrix·matrix, vector·matrix and matrix·vector, as matrices ([k] is [1, k] on the left,
    [k, 1] on the right). A batched vector times a matrix is one mat_mul [B, k]·[k, n]."""

    @staticmethod
    def _matrices(node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> tuple[NDArray, NDArray]:
        x1, x2 = xs
        t1, t2 = node.inputs
        lead1 = x1.shape[:1] if batched[0] else ()
        lead2 = x2.shape[:1] if batched[1] else ()
        a = x1 if t1.rank == 2 else x1.reshape((*lead1, 1, t1.shape[0]))
        b = x2 if t2.rank == 2 else x2.reshape((*lead2, t2.shape[0], 1))
        return a, b

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        a, b = self._matrices(node, xs, batched)
        y = _product(math, a, batched[0], b, batched[1], False, False, any(batched))
        lead = y.shape[:1] if any(batched) else ()
        return y.reshape((*lead, *node.output.shape))

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        a, b = self._matrices(node, xs, batched)
        out_b = any(batched)
        rows, cols = a.shape[-2], b.shape[-1]
        dy_m = dy.reshape(((dy.shape[0],) if out_b else ()) + (rows, cols))
        da = db = None
        if wants[0]:  # dA = dY·Bᵀ
            da = _product(math, dy_m, out_b, b, batched[1], False, True, batched[0]).reshape(xs[0].shape)
        if wants[1]:  # dB = Aᵀ·dY
            db = _product(math, a, batched[0], dy_m, out_b, True, False, batched[1]).reshape(xs[1].shape)
        return [da, db]


# -- reductions, layout -------------------------------------------------------------------------


class ReduceSumRule(BatchRule):
    """The sum of every element of each example: a batched input sums over its non-batch axes."""

    @staticmethod
    def _op(x: NDArray, batched: bool) -> reduction.Sum:
        return reduction.Sum(axis=tuple(_per_example_axes(x, batched)))

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        return math.engine.run(self._op(xs[0], batched[0]), xs[0])  # type: ignore[no-any-return]

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        return list(self._op(xs[0], batched[0]).backward(math, dy, xs[0], y))


class ReshapeRule(BatchRule):
    """A view with another per-example shape; the batch axis stays in front."""

    def __init__(self, shape: Shape) -> None:
        self.shape = tuple(shape)

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        lead = xs[0].shape[:1] if batched[0] else ()
        return xs[0].reshape((*lead, *self.shape))

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        return [dy.reshape(xs[0].shape)]


class ConcatRule(BatchRule):
    """concat3d along a per-example ``axis`` (axis + 1 with a batch axis); an unbatched input
    is tiled along the batch when the other is batched."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def _args(self, math: NDArrayMath, xs: Sequence[NDArray], batched: Sequence[bool]) -> tuple[layout.Concat, list[NDArray]]:
        if not any(batched):
            return layout.Concat(self.axis), list(xs)
        batch = _batch_size(xs, batched)
        args = [x if b else math.tile(x.reshape((1, *x.shape)), [batch] + [1] * x.rank) for x, b in zip(xs, batched)]
        return layout.Concat(self.axis + 1), args

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        op, args = self._args(math, xs, batched)
        return math.engine.run(op, *args)  # type: ignore[no-any-return]

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        # deeplearn.js: Concat3D.backProp threw "not implemented"; the gradient is dy split.
        op, args = self._args(math, xs, batched)
        grads = op.backward(math, dy, args[0], args[1], y)
        return [g if b or not any(batched) else math.sum(g, 0) for g, b in zip(grads, batched)]


class Conv2DRule(BatchRule):
    """conv2d(x, w) + b: the op takes NHWC batches natively; the weights must be unbatched."""

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        x, w, b = xs
        _check_unbatched_weights(batched)
        y = math.engine.run(node.op, x, w)  # type: ignore[arg-type]
        return math.add(y, b.reshape((b.shape[0], 1, 1, b.shape[1])) if batched[2] else b)

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        x, w, _ = xs
        op = node.op
        # Only the bias was batched: x·w is shared, and its gradients are linear in dy.
        dy_xw = math.sum(dy, 0) if batched[2] and not batched[0] else dy
        dx = math.conv2d_der_input(x.shape, dy_xw, w, op.strides, op.pad) if wants[0] else None  # type: ignore[union-attr]
        dw = math.conv2d_der_filter(x, dy_xw, w.shape, op.strides, op.pad) if wants[1] else None  # type: ignore[union-attr]
        db = None
        if wants[2]:  # Σ dy over rows and columns (and over the batch for an unbatched bias)
            db = math.sum(dy, [1, 2]) if batched[2] else math.conv2d_der_bias(dy)
        return [dx, dw, db]


def _check_unbatched_weights(batched: Sequence[bool]) -> None:
    if batched[1]:
        raise NotImplementedError(
            "Session: conv2d with weights fed per example is not supported; feed the weights "
            "with NDArrays (Session.eval) or make them variables."
        )


# -- c1·x1 + c2·x2 -------------------------------------------------------------------------------


class LinearCombinationRule(BroadcastRule):
    """y = c1·x1 + c2·x2 (inputs x1, x2, c1, c2; c1 and c2 are scalars per example)."""

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        if not any(batched):
            x1, x2, c1, c2 = xs
            return math.engine.run(arithmetic.ScaledArrayAdd(), c1, x1, c2, x2)  # type: ignore[no-any-return]
        x1, x2, c1, c2 = self._align(math, node, xs, batched)
        return math.add(math.multiply(c1, x1), math.multiply(c2, x2))

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        x1, x2, c1, c2 = aligned = self._align(math, node, xs, batched)
        # dx1 = c1·dy, dx2 = c2·dy, dc1 = Σ x1·dy, dc2 = Σ x2·dy (per example)
        grads = [math.multiply(c1, dy), math.multiply(c2, dy), math.multiply(x1, dy), math.multiply(x2, dy)]
        return [_sum_to(math, g, a.shape, x.shape) if w else None
                for g, a, x, w in zip(grads, aligned, xs, wants)]


# -- costs and metrics (one value per example) --------------------------------------------------


class MeanSquaredCostRule(BatchRule):
    """cost = (1/N) Σ ½(label − prediction)² per example (N elements per example)."""

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        if not any(batched):
            return math.engine.run(costs.MeanSquaredCost(), *xs)  # type: ignore[no-any-return]
        d = math.subtract(xs[0], xs[1])
        half_over_n = Scalar.new(0.5 / node.inputs[0].size, math=math)
        return math.multiply(math.sum(math.square(d), _per_example_axes(d, True)), half_over_n)

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        # d cost/d label = dy·(label − prediction)/N, d cost/d prediction = its negative: the
        # MeanSquaredCost op's gradient, with N counted per example.
        out_b = any(batched)
        scale = math.divide(_lead(dy, out_b, node.inputs[0].rank), Scalar.new(node.inputs[0].size, math=math))
        g = math.multiply(math.subtract(xs[0], xs[1]), scale)
        return _per_input(math, [g, math.neg(g)], batched, wants)


class SoftmaxCrossEntropyRule(BatchRule):
    """cost = −Σ target · log(softmax(x) + 1e-5) per example (softmax along the last axis)."""

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        if not any(batched):
            return math.engine.run(costs.SoftmaxCrossEntropyCost(), *xs)  # type: ignore[no-any-return]
        x, target = xs
        q = math.add(math.softmax(x), Scalar.new(costs.SOFTMAX_CE_EPSILON, math=math))
        prod = math.multiply(target, math.log(q))
        return math.neg(math.sum(prod, _per_example_axes(prod, True)))

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        # The op's own gradient is element-wise in dy, and softmax and its sums run along the
        # last axis, so a per-example dy shaped (B, 1, ...) gives every example its gradient.
        out_b = any(batched)
        dyl = _lead(dy, out_b, node.inputs[0].rank)
        grads = costs.SoftmaxCrossEntropyCost().backward(math, dyl, xs[0], xs[1], y)
        return _per_input(math, list(grads), batched, wants)


class ArgMaxRule(BatchRule):
    """The flat index of each example's largest element (int32); no gradient."""

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        x = xs[0]
        if not batched[0]:
            return math.arg_max(x)
        return math.arg_max(x.reshape((x.shape[0], -1)), 1)

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        return [None]  # piecewise constant: zero almost everywhere


class ArgMaxEqualsRule(BatchRule):
    """Whether each example's two argmaxes are equal (bool); no gradient."""

    def forward(self, math: NDArrayMath, node: Node, xs: Sequence[NDArray], batched: Sequence[bool]) -> NDArray:
        if not any(batched):
            return math.engine.run(reduction.ArgMaxEquals(), *xs)  # type: ignore[no-any-return]
        args = [math.arg_max(x.reshape((x.shape[0], -1)), 1) if b else math.arg_max(x)
                for x, b in zip(xs, batched)]
        return math.equal(*args)

    def backward(self, math: NDArrayMath, node: Node, dy: NDArray, xs: Sequence[NDArray],
                 batched: Sequence[bool], y: NDArray, wants: Sequence[bool]) -> Grads:
        return [None, None]


NATIVE = NativeRule()
BROADCAST = BroadcastRule()
EQUAL_SHAPES = BroadcastRule(equal_shapes=True)
MATMUL = MatMulRule()
REDUCE_SUM = ReduceSumRule()
CONV2D = Conv2DRule()
LINEAR_COMBINATION = LinearCombinationRule()
MEAN_SQUARED_COST = MeanSquaredCostRule()
SOFTMAX_CROSS_ENTROPY = SoftmaxCrossEntropyRule()
ARGMAX = ArgMaxRule()
ARGMAX_EQUALS = ArgMaxEqualsRule()
