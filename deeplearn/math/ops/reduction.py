"""The NDArrayMath family of reductions and arg ops (sum mean min max arg_min arg_max
arg_max_equals log_sum_exp softmax top_k norm moments).

Reductions take ``axis`` (None = every axis, an int, or a sequence of ints; negative axes count
from the end) and ``keep_dims``. NaN in a reduced group gives NaN (deeplearn.js semantics);
arg ops follow NumPy on NaN (the index of the first NaN) rather than deeplearn.js's int32
sentinel (docs/design.md §4). Kernels here are xp-generic; gradients are NDArrayMath calls.
"""

from __future__ import annotations

import functools
import math as pymath
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np

from deeplearn import util
from deeplearn.math.ops.arithmetic import ArithmeticMath
from deeplearn.math.ops.base import (
    Op,
    SameRankOp,
    Spec,
    axis_tuple,
    broadcast_shapes,
    check_arrays,
    normalize_axes,
    reduced_shape,
)
from deeplearn.math.ops.elementwise import ElementwiseMath
from deeplearn.types import DType, RawArray, Shape, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = [
    "ReductionMath",
    "Moments",
    "Sum",
    "Mean",
    "Min",
    "Max",
    "ArgMin",
    "ArgMax",
    "ArgMaxEquals",
    "LogSumExp",
    "Softmax",
    "TopK",
    "Norm",
    "axis_attr",
    "example_axes",
    "paired_examples",
]

T = TypeVar("T", bound="NDArray")
Axis = int | Sequence[int] | None
NormOrd = str | float


def axis_attr(axis: Axis, where: str) -> tuple[int, ...] | None:
    """A user's ``axis`` argument as a hashable op attribute (None, or a tuple of ints)."""
    return None if axis is None else axis_tuple(axis, where)


def _as_float(xp: ModuleType, x: RawArray) -> RawArray:
    """int32/bool data as float32; float data (float32, or float64 in gradient checks) as is."""
    return x if x.dtype.kind == "f" else x.astype(xp.float32)


def _expand_to(math: NDArrayMath, dy: NDArray, shape: Shape, axes: tuple[int, ...]) -> NDArray:
    """Broadcasts a reduced gradient back over the reduced ``axes`` to ``shape``."""
    kept = reduced_shape(shape, axes, True)
    dy = dy.reshape(kept)
    if kept == tuple(shape):
        return dy
    return math.tile(dy, [d if k == 1 and d != 1 else 1 for d, k in zip(shape, kept, strict=True)])


def _group_positions(math: NDArrayMath, shape: Shape, axes: tuple[int, ...]) -> NDArray:
    """An int32 array broadcastable to ``shape``: each element's flat row-major index within
    its reduced group (the index ArgMax/ArgMin return for that group)."""
    pos = np.zeros([1] * len(shape), dtype=np.int64)
    for ax in axes:
        step = np.arange(shape[ax]).reshape([-1 if i == ax else 1 for i in range(len(shape))])
        pos = pos * shape[ax] + step
    from deeplearn.math.ndarray import NDArray

    return NDArray.from_numpy(pos.astype(np.int32), "int32", math=math)


_R = TypeVar("_R", bound="_Reduction")


@functools.lru_cache(maxsize=1024)
def _normalized_axes(axis: tuple[int, ...] | None, rank: int, where: str) -> tuple[int, ...]:
    """``normalize_axes``, remembered: every replayed reduction asks it again (errors are not
    remembered, so they are raised every time)."""
    return normalize_axes(axis, rank, where)


@dataclass(frozen=True)
class _Reduction(Op, abstract=True):
    """Base of the reductions: ``axis`` (None or a tuple) and ``keep_dims``."""

    axis: tuple[int, ...] | None = None
    keep_dims: bool = False

    def axes(self, rank: int) -> tuple[int, ...]:
        return _normalized_axes(self.axis, rank, self.name)

    def out_shape(self, x: Spec) -> Shape:
        return reduced_shape(x.shape, self.axes(x.rank), self.keep_dims)

    def _check_not_empty(self, x: Spec) -> None:
        axes = self.axes(x.rank)
        if any(x.shape[a] == 0 for a in axes):
            raise ShapeError(
                f"{self.name}: the reduced axes must not be empty; got x.shape={x.shape} and axis={self.axis}."
            )


@dataclass(frozen=True)
class Sum(_Reduction):
    """y = Σ x over ``axis``. float32 → float32; int32 and bool → int32 (deeplearn.js SumTypes)."""

    name = "sum"

    def infer(self, x: Spec) -> Spec:
        dtype: DType = "float32" if x.dtype == "float32" else "int32"
        return Spec(self.out_shape(x), dtype)

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        dtype = xp.int32 if x.dtype.kind in "biu" else None
        return xp.sum(x, axis=self.axes(x.ndim), dtype=dtype, keepdims=self.keep_dims)

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        return (_expand_to(math, dy, x.shape, self.axes(x.rank)),)  # every element gets dy of its group


@dataclass(frozen=True)
class Mean(_Reduction):
    """y = Σ x / N over ``axis``; always float32 (int32 and bool too)."""

    name = "mean"

    def infer(self, x: Spec) -> Spec:
        return Spec(self.out_shape(x), "float32")

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        axes = self.axes(x.ndim)
        if any(x.shape[a] == 0 for a in axes):
            # 0/0 = NaN per group (deeplearn.js's Σ/N), without NumPy's "Mean of empty slice" warning
            return xp.full(reduced_shape(x.shape, axes, self.keep_dims), xp.nan, dtype=xp.float32)
        if x.dtype.kind != "f":  # int/bool: exact float64 accumulation, then float32
            return xp.mean(x, axis=axes, dtype=xp.float64, keepdims=self.keep_dims).astype(xp.float32)
        return xp.mean(x, axis=axes, keepdims=self.keep_dims)

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        from deeplearn.math.ndarray import Scalar

        axes = self.axes(x.rank)
        n = pymath.prod(x.shape[a] for a in axes)
        return (math.divide(_expand_to(math, dy, x.shape, axes), Scalar.new(n, math=math)),)  # dy / N


@dataclass(frozen=True)
class _Extremum(_Reduction, abstract=True):
    """min/max: NaN in a group gives NaN; the gradient goes to the first arg position."""

    def infer(self, x: Spec) -> Spec:
        self._check_not_empty(x)
        return Spec(self.out_shape(x), x.dtype)

    def _arg(self, math: NDArrayMath, x: NDArray, axes: tuple[int, ...]) -> NDArray:
        raise NotImplementedError

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        # dy flows to one element per group: the first position of the extremum (the index
        # arg_max/arg_min return), as maxPoolBackprop routes to the first max. Ties do not split.
        axes = self.axes(x.rank)
        kept = reduced_shape(x.shape, axes, True)
        first = math.equal(_group_positions(math, x.shape, axes), self._arg(math, x, axes).reshape(kept))
        return (math.multiply(dy.reshape(kept), first.as_type("float32")),)


@dataclass(frozen=True)
class Min(_Extremum):
    """y = min x over ``axis``; NaN anywhere in a group gives NaN."""

    name = "min"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        # NOTE: deeplearn.js 0.3.17's CPU min seeds every row with the array's first element
        # (reference §14.15); we compute the true minimum.
        return xp.min(x, axis=self.axes(x.ndim), keepdims=self.keep_dims)

    def _arg(self, math: NDArrayMath, x: NDArray, axes: tuple[int, ...]) -> NDArray:
        return math.arg_min(x, axes)


@dataclass(frozen=True)
class Max(_Extremum):
    """y = max x over ``axis``; NaN anywhere in a group gives NaN."""

    name = "max"

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return xp.max(x, axis=self.axes(x.ndim), keepdims=self.keep_dims)

    def _arg(self, math: NDArrayMath, x: NDArray, axes: tuple[int, ...]) -> NDArray:
        return math.arg_max(x, axes)


def _group_last(xp: ModuleType, x: RawArray, axes: tuple[int, ...]) -> RawArray:
    """``x`` with the reduced ``axes`` moved to the end (in order) and flattened into one."""
    rest = [i for i in range(x.ndim) if i not in axes]
    kept = tuple(x.shape[i] for i in rest)
    group = pymath.prod(x.shape[i] for i in axes)
    return xp.transpose(x, rest + list(axes)).reshape(kept + (group,))


@dataclass(frozen=True)
class _ArgReduction(Op, abstract=True):
    """arg_min/arg_max: the int32 index of the extremum within each reduced group, flat
    (row-major) over the reduced axes; a flat index over all axes when ``axis`` is None."""

    axis: tuple[int, ...] | None = None

    def infer(self, x: Spec) -> Spec:
        axes = normalize_axes(self.axis, x.rank, self.name)
        if any(x.shape[a] == 0 for a in axes):
            raise ShapeError(
                f"{self.name}: the reduced axes must not be empty; got x.shape={x.shape} and axis={self.axis}."
            )
        return Spec(reduced_shape(x.shape, axes, False), "int32")

    def _index(self, xp: ModuleType, grouped: RawArray) -> RawArray:
        raise NotImplementedError

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        # deeplearn.js: ties give the first index. NaN: NumPy's rule (the first NaN's index),
        # not deeplearn.js 0.3's int32 sentinel (docs/design.md §4); conformance: argMax.nan, argMin.nan.
        grouped = _group_last(xp, x, normalize_axes(self.axis, x.ndim, self.name))
        return xp.asarray(self._index(xp, grouped), dtype=xp.int32)


@dataclass(frozen=True)
class ArgMin(_ArgReduction):
    """y = the first index of min x over ``axis`` (int32)."""

    name = "arg_min"

    def _index(self, xp: ModuleType, grouped: RawArray) -> RawArray:
        return xp.argmin(grouped, axis=-1)


@dataclass(frozen=True)
class ArgMax(_ArgReduction):
    """y = the first index of max x over ``axis`` (int32)."""

    name = "arg_max"

    def _index(self, xp: ModuleType, grouped: RawArray) -> RawArray:
        return xp.argmax(grouped, axis=-1)


# -- per-example forms ----------------------------------------------------------------------------
#
# An op that reduces all of its input to one value (a cost, arg_max_equals) has a per-example
# form: with ``example_rank=k`` only the last k axes of each input are one example, reduced to
# one value, and the leading axes are a batch of examples that broadcast between the inputs.
# A Graph node carries this form, so that the one op computes one example and a Session's
# stacked batch alike (docs/design.md §5).


def example_axes(rank: int, example_rank: int | None) -> tuple[int, ...]:
    """The axes of one example in an array of ``rank``: the last ``example_rank`` (every axis
    when None).

    Example:
        >>> example_axes(3, 2), example_axes(2, None), example_axes(1, 0)
        ((1, 2), (0, 1), ())
    """
    k = rank if example_rank is None else example_rank
    return tuple(range(rank - k, rank))


def paired_examples(op: Op, a: Spec, b: Spec, example_rank: int | None, names: tuple[str, str]) -> Shape:
    """The output shape of ``op``, which reduces each example of ``a`` and ``b`` to one value:
    the inputs' examples (their last ``example_rank`` axes; all of them when None) must have
    the same shape, and the leading axes broadcast. Raises ShapeError naming ``op`` otherwise.

    Example:
        >>> paired_examples(ArgMaxEquals(2), Spec((8, 2, 3)), Spec((2, 3)), 2, ("x1", "x2"))
        (8,)
    """
    k = example_rank
    if k is None and a.shape == b.shape:
        return ()
    if k is None or not 0 <= k <= min(a.rank, b.rank) or a.shape[a.rank - k :] != b.shape[b.rank - k :]:
        per_example = "" if k is None else f" in their last {k} axes (one example)"
        raise ShapeError(
            f"{op.name}: {names[0]} and {names[1]} must have the same shape{per_example}; got "
            f"{names[0]}.shape={a.shape} and {names[1]}.shape={b.shape}."
        )
    return broadcast_shapes(a.shape[: a.rank - k], b.shape[: b.rank - k], op.name)


@dataclass(frozen=True)
class ArgMaxEquals(Op):
    """y = (arg_max(x1) == arg_max(x2)), flat indices, as a bool Scalar.

    ``example_rank=k``: the per-example form, one bool per example (see ``paired_examples``).

    Example:
        >>> math.engine.run(ArgMaxEquals(1), Array2D.new([2, 3], [0, 1, 0, 1, 0, 0]),
        ...                 Array1D.new([0, 9, 0])).get_values()
        array([ True, False])
    """

    name = "arg_max_equals"
    example_rank: int | None = None

    def infer(self, x1: Spec, x2: Spec) -> Spec:
        shape = paired_examples(self, x1, x2, self.example_rank, ("x1", "x2"))
        if x1.size == 0:
            raise ShapeError(f"arg_max_equals: the inputs must not be empty; got x1.shape={x1.shape}.")
        return Spec(shape, "bool")

    def forward(self, xp: ModuleType, x1: RawArray, x2: RawArray) -> RawArray:
        # deeplearn.js: a NaN gave the bool sentinel; here NaN counts as the maximum (NumPy's
        # argmax), so the result is a plain bool. conformance: argMaxEquals.nan
        return xp.asarray(self._flat_arg_max(xp, x1) == self._flat_arg_max(xp, x2))

    def _flat_arg_max(self, xp: ModuleType, x: RawArray) -> RawArray:
        """The flat index of each example's maximum (of the whole of ``x`` when not per example)."""
        lead = x.shape[: x.ndim - len(example_axes(x.ndim, self.example_rank))]
        return xp.argmax(x.reshape((*lead, -1)), axis=-1)


def _shifted_exp(xp: ModuleType, x: RawArray, axes: tuple[int, ...]) -> tuple[RawArray, RawArray]:
    """(exp(x − m), m) with m = max x over ``axes`` (keepdims), the stabilising shift.

    A non-finite m (±inf, or NaN) is replaced by 0 so that inf − inf makes no NaN: all −inf
    gives exp = 0, a +inf gives exp = inf, and a NaN still propagates through exp(NaN).
    """
    m = xp.max(x, axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    return xp.exp(x - m), m


def _stable_lse(xp: ModuleType, x: RawArray, axes: tuple[int, ...]) -> RawArray:
    """log Σ exp(x) over ``axes`` with keepdims, as m + log Σ exp(x − m)."""
    e, m = _shifted_exp(xp, _as_float(xp, x), axes)
    return xp.log(xp.sum(e, axis=axes, keepdims=True)) + m


@dataclass(frozen=True)
class LogSumExp(_Reduction):
    """y = log Σ exp(x) over ``axis``, computed stably; NaN propagates; float32 output."""

    name = "log_sum_exp"

    def infer(self, x: Spec) -> Spec:
        self._check_not_empty(x)  # no maximum of an empty group to shift by
        return Spec(self.out_shape(x), "float32")

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        axes = self.axes(x.ndim)
        y = _stable_lse(xp, x, axes)
        return y if self.keep_dims else y.reshape(reduced_shape(x.shape, axes, False))

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        kept = reduced_shape(x.shape, self.axes(x.rank), True)
        softmax = math.exp(math.subtract(x, y.reshape(kept)))
        return (math.multiply(dy.reshape(kept), softmax),)  # dy · exp(x − y)


@dataclass(frozen=True)
class Softmax(SameRankOp):
    """y = exp(x − log_sum_exp(x)) = eˣ / Σ eˣ along the last dimension; a NaN makes its row NaN."""

    name = "softmax"
    dim: int = -1

    def infer(self, logits: Spec) -> Spec:
        if logits.rank == 0:
            raise ShapeError(f"softmax: logits must have rank >= 1; got logits.shape={logits.shape}.")
        if self.dim not in (-1, logits.rank - 1):
            raise ShapeError(
                f"softmax: only the last dimension is supported; got dim={self.dim} for rank {logits.rank}."
            )
        if logits.shape[-1] == 0:  # no maximum to shift by, and nothing to normalise over
            raise ShapeError(
                f"softmax: the last dimension of logits must not be empty; got logits.shape={logits.shape}."
            )
        return Spec(logits.shape, "float32")

    def forward(self, xp: ModuleType, logits: RawArray) -> RawArray:
        # deeplearn.js: exp(x − logSumExp(x)) with the max subtracted, so softmax([1000, 1000])
        # = [.5, .5]; conformance: softmax.overflow, softmax.huge_difference, softmax.nan.
        # NOTE: written as e / Σ e with e = exp(x − max), the same value without the rounding
        # of logSumExp at large |x| (float32 exp(x − lse) gives 0.499985 for [-1000, -1000]).
        e, _ = _shifted_exp(xp, _as_float(xp, logits), (logits.ndim - 1,))
        return e / xp.sum(e, axis=-1, keepdims=True)

    def backward(self, math: NDArrayMath, dy: NDArray, logits: NDArray, y: NDArray) -> tuple[NDArray]:
        dot = math.sum(math.multiply(dy, y), -1, True)
        return (math.multiply(y, math.subtract(dy, dot)),)  # y · (dy − Σ dy·y)


@dataclass(frozen=True)
class TopK(Op):
    """(values, indices) of the k largest elements of the flattened x, in descending order;
    equal values keep index order; NaN counts as larger than every number (as in max)."""

    name = "top_k"
    k: int = 1

    def infer(self, x: Spec) -> tuple[Spec, Spec]:
        if self.k < 0 or self.k > x.size:
            raise ShapeError(f"top_k: k must be in [0, x.size]; got k={self.k} and x.shape={x.shape}.")
        return Spec((self.k,), x.dtype), Spec((self.k,), "int32")

    def forward(self, xp: ModuleType, x: RawArray) -> tuple[RawArray, RawArray]:
        flat = x.reshape(-1)
        key = -flat.astype(xp.float64)  # float64 holds every int32 exactly and negates safely
        order = xp.argsort(key, kind="stable")  # NaN keys sort last
        not_nan = (~xp.isnan(key[order])).astype(xp.int8)
        order = order[xp.argsort(not_nan, kind="stable")]  # ... so move them first
        indices = order[: self.k]
        return flat[indices], indices.astype(xp.int32)


_VECTOR_ORDS = (1, 2, "euclidean", pymath.inf, -pymath.inf)
_MATRIX_ORDS = (1, "fro", "euclidean", pymath.inf, -pymath.inf)


def _ord_in(ord_: Any, allowed: tuple[Any, ...]) -> bool:
    """Whether ``ord_`` is one of ``allowed`` (strings match strings, numbers match numbers)."""
    if isinstance(ord_, str):
        return ord_ in [a for a in allowed if isinstance(a, str)]
    if isinstance(ord_, bool) or not isinstance(ord_, (int, float, np.integer, np.floating)):
        return False
    return any(not isinstance(a, str) and ord_ == a for a in allowed)


@dataclass(frozen=True)
class Norm(Op):
    """Vector norms (1, 2/'euclidean', ±inf) over one axis or all elements, and matrix norms
    (1, ±inf, 'fro'/'euclidean') over two axes; float32 output."""

    name = "norm"
    ord: NormOrd = "euclidean"
    axis: tuple[int, ...] | None = None
    keep_dims: bool = False

    def _is_matrix(self) -> bool:
        return self.axis is not None and len(self.axis) == 2

    def infer(self, x: Spec) -> Spec:
        axes = normalize_axes(self.axis, x.rank, "norm")
        if self.axis is not None and len(self.axis) not in (1, 2):
            raise ValueError(
                f"norm: axis must name one axis (vector norm) or two (matrix norm); got axis={self.axis}."
            )
        if self._is_matrix() and not _ord_in(self.ord, _MATRIX_ORDS):
            raise ValueError(
                f"norm: ord must be 1, inf, -inf, 'fro' or 'euclidean' for a matrix norm; got ord={self.ord!r}."
            )
        if not self._is_matrix() and not _ord_in(self.ord, _VECTOR_ORDS):
            raise ValueError(
                f"norm: ord must be 1, 2, inf, -inf or 'euclidean' for a vector norm; got ord={self.ord!r}."
            )
        self._check_extremum_not_empty(x, axes)
        return Spec(reduced_shape(x.shape, axes, self.keep_dims), "float32")

    def _check_extremum_not_empty(self, x: Spec, axes: tuple[int, ...]) -> None:
        """The norms that take a maximum or minimum (ord ±inf, and the matrix ord 1) have none
        over an empty axis; the sums (1, 2, 'fro', 'euclidean') are 0 there, as in NumPy."""
        if self._is_matrix():
            rows, cols = (ax % x.rank for ax in self.axis)  # type: ignore[union-attr]
            over: tuple[int, ...]
            if self.ord == 1:
                over = (cols,)  # the maximum over columns of the column sums
            elif self.ord in (pymath.inf, -pymath.inf):
                over = (rows,)  # the extremum over rows of the row sums
            else:
                return
        elif self.ord in (pymath.inf, -pymath.inf):
            over = axes
        else:
            return
        if any(x.shape[a] == 0 for a in over):
            raise ShapeError(
                f"norm: ord={self.ord!r} takes a maximum or minimum, which an empty axis has not; "
                f"got x.shape={x.shape} and axis={self.axis}."
            )

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        x = _as_float(xp, x)
        axes = normalize_axes(self.axis, x.ndim, "norm")
        a, o = xp.abs(x), self.ord
        if not self._is_matrix():  # all elements, or one axis, as vectors
            if o == 1:
                y = xp.sum(a, axis=axes, keepdims=True)
            elif o == pymath.inf:
                y = xp.max(a, axis=axes, keepdims=True)
            elif o == -pymath.inf:
                y = xp.min(a, axis=axes, keepdims=True)
            else:
                y = xp.sqrt(xp.sum(a * a, axis=axes, keepdims=True))
        else:  # NumPy's reading of axis=(rows, cols): 1 = max column sum, inf = max row sum
            rows, cols = (ax % x.ndim for ax in self.axis)  # type: ignore[union-attr]
            if o == 1:
                y = xp.max(xp.sum(a, axis=rows, keepdims=True), axis=cols, keepdims=True)
            elif o == pymath.inf:
                y = xp.max(xp.sum(a, axis=cols, keepdims=True), axis=rows, keepdims=True)
            elif o == -pymath.inf:
                y = xp.min(xp.sum(a, axis=cols, keepdims=True), axis=rows, keepdims=True)
            else:
                y = xp.sqrt(xp.sum(x * x, axis=axes, keepdims=True))
        return y if self.keep_dims else y.reshape(reduced_shape(x.shape, axes, False))

    def backward(self, math: NDArrayMath, dy: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray]:
        kept = reduced_shape(x.shape, normalize_axes(self.axis, x.rank, "norm"), True)
        dy = dy.reshape(kept)
        if self.ord in (2, "euclidean", "fro"):
            return (math.multiply(dy, math.divide(x, y.reshape(kept))),)  # dy · x / ‖x‖
        if self.ord == 1 and not self._is_matrix():
            sign = math.subtract(math.step(x), math.step(math.neg(x)))
            return (math.multiply(dy, sign),)  # dy · sign(x)
        raise NotImplementedError(
            f"norm: the gradient is implemented for ord 2, 'euclidean', 'fro' and vector ord 1; got ord={self.ord!r}."
        )


def _reduction(op: type[_R], axis: Axis, keep_dims: object, where: str) -> _R:
    """A reduction op from a user's ``axis`` and ``keep_dims`` (a bool: "no" is not true)."""
    if (axis is None or type(axis) is int) and type(keep_dims) is bool:
        # The common arguments, already checked: the op made for them before (ops are frozen,
        # so one serves every call). Making it costs ~0.5 µs, a lookup ~0.05. Other types (a
        # list axis, np.int64, 1.0, 1 for True) take the checks below every time.
        key = (op, axis, keep_dims)
        made = _REDUCTIONS.get(key)
        if made is None:
            if len(_REDUCTIONS) >= 1024:
                _REDUCTIONS.clear()
            made = _REDUCTIONS[key] = op(axis_attr(axis, where), keep_dims)
        return made
    return op(axis_attr(axis, where), util.as_bool(keep_dims, where, "keep_dims"))


_REDUCTIONS: dict[tuple[type, int | None, bool], Any] = {}
"""The reduction ops ``_reduction`` made, by (class, axis, keep_dims)."""


class Moments(NamedTuple):
    """The result of ``moments``: unpacks as ``mean, variance = math.moments(x)``."""

    mean: NDArray
    variance: NDArray


# The field-less op a method below runs, made once (why: ArithmeticMath's, arithmetic.py).
_ARG_MAX_EQUALS = ArgMaxEquals()


class ReductionMath(ElementwiseMath, ArithmeticMath):
    """The methods of NDArrayMath for reductions and arg ops."""

    def sum(self, x: NDArray, axis: Axis = None, keep_dims: bool = False) -> NDArray:
        """Sums ``x`` over ``axis`` (every axis when None).

        float32 gives float32; int32 and bool give int32.

        Example:
            >>> math.sum(Array2D.new([2, 3], [1, 2, 3, 0, 0, 1]), 1).get_values()
            array([6., 1.], dtype=float32)
        """
        return self.engine.run(_reduction(Sum, axis, keep_dims, "sum"), x)

    def mean(self, x: NDArray, axis: Axis = None, keep_dims: bool = False) -> NDArray:
        """Mean of ``x`` over ``axis`` (every axis when None); always float32.

        Example:
            >>> math.mean(Array1D.new([1, 2, 3, 4], "int32")).get()
            2.5
        """
        return self.engine.run(_reduction(Mean, axis, keep_dims, "mean"), x)

    def min(self, x: NDArray, axis: Axis = None, keep_dims: bool = False) -> NDArray:
        """Minimum of ``x`` over ``axis``; NaN in a reduced group gives NaN.

        Example:
            >>> math.min(Array2D.new([2, 3], [3, -1, 0, 100, -7, 2]), 0).get_values()
            array([ 3., -7.,  0.], dtype=float32)
        """
        return self.engine.run(_reduction(Min, axis, keep_dims, "min"), x)

    def max(self, x: NDArray, axis: Axis = None, keep_dims: bool = False) -> NDArray:
        """Maximum of ``x`` over ``axis``; NaN in a reduced group gives NaN.

        Example:
            >>> math.max(Array2D.new([2, 3], [3, -1, 0, 100, -7, 2])).get()
            100.0
        """
        return self.engine.run(_reduction(Max, axis, keep_dims, "max"), x)

    def arg_min(self, x: NDArray, axis: Axis = None) -> NDArray:
        """int32 index of the minimum over ``axis``: a flat index over all elements when None,
        a flat index within the reduced axes otherwise; the first index on ties.

        Example:
            >>> math.arg_min(Array2D.new([2, 3], [3, -1, 0, 100, -7, 2])).get()
            4
        """
        return self.engine.run(ArgMin(axis_attr(axis, "arg_min")), x)

    def arg_max(self, x: NDArray, axis: Axis = None) -> NDArray:
        """int32 index of the maximum over ``axis`` (flat over all elements when None); the
        first index on ties; a NaN counts as the maximum (NumPy's rule).

        Example:
            >>> math.arg_max(Array2D.new([2, 3], [3, -1, 0, 100, -7, 2]), 0).get_values()
            array([1, 0, 1], dtype=int32)
        """
        return self.engine.run(ArgMax(axis_attr(axis, "arg_max")), x)

    def arg_max_equals(self, x1: NDArray, x2: NDArray) -> NDArray:
        """A bool Scalar: whether the flat arg_max of ``x1`` and ``x2`` agree (shapes must match).

        Example:
            >>> math.arg_max_equals(Array1D.new([5, 0, 3, 7]), Array1D.new([-1, -2, -3, 0])).get()
            True
        """
        return self.engine.run(_ARG_MAX_EQUALS, x1, x2)

    def log_sum_exp(self, x: NDArray, axis: Axis = None, keep_dims: bool = False) -> NDArray:
        """log Σ exp(x) over ``axis``, computed stably as max + log Σ exp(x − max).

        Example:
            >>> round(math.log_sum_exp(Array1D.new([1000, 1000])).get(), 2)  # 1000 + log 2
            1000.69
        """
        op = _reduction(LogSumExp, axis, keep_dims, "log_sum_exp")
        return self.engine.run(op, x)

    def softmax(self, logits: T, dim: int = -1) -> T:
        """exp(x − log_sum_exp(x)) along the last dimension (the only one supported).

        Example:
            >>> math.softmax(Array1D.new([1000, 1000])).get_values()
            array([0.5, 0.5], dtype=float32)
        """
        return self.engine.run(Softmax(util.as_int(dim, "softmax", "dim")), logits)

    def top_k(self, x: NDArray, k: int) -> tuple[NDArray, NDArray]:
        """The ``k`` largest values of the flattened ``x`` in descending order, and their flat
        int32 indices (equal values in index order).

        Example:
            >>> values, indices = math.top_k(Array1D.new([1, -1, 100, -5, 5]), 2)
            >>> values.get_values(), indices.get_values()
            (array([100.,   5.], dtype=float32), array([2, 4], dtype=int32))
        """
        return self.engine.run(TopK(util.as_int(k, "top_k", "k")), x)

    def norm(
        self, x: NDArray, ord: NormOrd = "euclidean", axis: Axis = None, keep_dims: bool = False
    ) -> NDArray:
        """The norm of ``x``: a vector norm over all elements (axis None) or one axis
        (ord 1, 2, 'euclidean', inf, -inf), or a matrix norm over two axes (ord 1, inf, -inf,
        'fro', 'euclidean'). Other ords raise ValueError. Always float32.

        Example:
            >>> math.norm(Array1D.new([3, -4])).get()
            5.0
            >>> math.norm(Array2D.new([3, 2], [1, 2, -3, 1, 1, 1]), 1, [0, 1]).get()
            5.0
        """
        op = Norm(ord, axis_attr(axis, "norm"), util.as_bool(keep_dims, "norm", "keep_dims"))
        return self.engine.run(op, x)

    def moments(self, x: NDArray, axis: Axis = None, keep_dims: bool = False) -> Moments:
        """Mean and population variance (÷N) of ``x`` over ``axis``, as float32.

        Example:
            >>> mean, variance = math.moments(Array1D.new([1, 2, 3, 0]))
            >>> mean.get(), variance.get()
            (1.5, 1.25)
        """
        check_arrays("moments", x=x)
        normalize_axes(axis_attr(axis, "moments"), x.rank, "moments")  # its errors name moments, not mean
        keep_dims = util.as_bool(keep_dims, "moments", "keep_dims")
        if x.dtype != "float32":
            x = x.as_type("float32")
        mean = self.mean(x, axis, True)
        variance = self.mean(self.square(self.subtract(x, mean)), axis, keep_dims)
        if not keep_dims:
            mean = mean.reshape(variance.shape)
        return Moments(mean, variance)
