"""OpCases of the reductions and arg ops, each with a NumPy oracle written without the kernels.

Oracles reduce one axis at a time or loop over groups with np.ndindex, so a mistake in the
kernels' axis handling (transpose-and-flatten, keepdims) does not repeat in the oracle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from deeplearn.math.ops.reduction import (
    ArgMax,
    ArgMaxEquals,
    ArgMin,
    LogSumExp,
    Max,
    Mean,
    Min,
    Norm,
    Softmax,
    Sum,
    TopK,
)
from tests.op_cases import OpCase

INT_INPUT = "int32/bool input: there is nothing to differentiate"
INT_OUTPUT = "integer output: the gradient is zero almost everywhere and undefined at ties"


def _axes(axis: tuple[int, ...] | None, rank: int) -> list[int]:
    return list(range(rank)) if axis is None else sorted(a % rank for a in axis)


def _reduce(fn: Callable[..., Any], axis: tuple[int, ...] | None, keep_dims: bool) -> Callable[[np.ndarray], Any]:
    """Applies a one-axis NumPy reduction axis by axis, from the last reduced axis down."""

    def ref(x: np.ndarray) -> Any:
        y = x
        for a in reversed(_axes(axis, x.ndim)):
            y = fn(y, axis=a, keepdims=True)
        if not keep_dims:
            y = y.reshape([d for i, d in enumerate(y.shape) if i not in _axes(axis, x.ndim)])
        return y

    return ref


def _arg_ref(pick: Callable[[np.ndarray], int], axis: tuple[int, ...] | None) -> Callable[[np.ndarray], Any]:
    """For every group (an index of the kept axes), the flat index within the reduced axes."""

    def ref(x: np.ndarray) -> Any:
        red = _axes(axis, x.ndim)
        kept = [i for i in range(x.ndim) if i not in red]
        out = np.zeros([x.shape[i] for i in kept], dtype=np.int32)
        for k in np.ndindex(*out.shape):
            index: list[Any] = [slice(None)] * x.ndim
            for i, v in zip(kept, k):
                index[i] = v
            out[k] = pick(x[tuple(index)].ravel())  # the remaining axes are the reduced ones, in order
        return out

    return ref


def _first_max(v: np.ndarray) -> int:
    return next(i for i, e in enumerate(v) if e == max(v))


def _first_min(v: np.ndarray) -> int:
    return next(i for i, e in enumerate(v) if e == min(v))


def _lse_ref(axis: tuple[int, ...] | None, keep_dims: bool) -> Callable[[np.ndarray], Any]:
    def ref(x: np.ndarray) -> Any:
        m = x.max()  # one shift for every group: exact enough in float64 for these ranges
        return np.log(_reduce(np.sum, axis, keep_dims)(np.exp(x - m))) + m

    return ref


def _softmax_ref(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for k in np.ndindex(*x.shape[:-1]):
        row = x[k]
        e = np.array([math.exp(v - max(row)) for v in row])
        out[k] = e / e.sum()
    return out


def _top_k_ref(k: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def ref(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = list(x.ravel())
        order = sorted(range(len(flat)), key=lambda i: (-flat[i], i))[:k]
        return np.array([flat[i] for i in order]), np.array(order, dtype=np.int32)

    return ref


def _norm_ref(ord_: Any, axis: tuple[int, ...] | None, keep_dims: bool) -> Callable[[np.ndarray], Any]:
    def ref(x: np.ndarray) -> Any:
        vector_ord = 2 if ord_ == "euclidean" else ord_
        if axis is None:  # every element as one vector (np.linalg.norm reads 2-D as a matrix)
            y = np.linalg.norm(x.ravel(), ord=vector_ord)
            return np.reshape(y, [1] * x.ndim) if keep_dims else y
        if len(axis) == 1:
            return np.linalg.norm(x, ord=vector_ord, axis=axis[0], keepdims=keep_dims)
        return np.linalg.norm(x, ord="fro" if ord_ == "euclidean" else ord_, axis=axis, keepdims=keep_dims)

    return ref


def _ties(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.integers(0, 3, (4, 5)).astype(np.float32)]


def _arg_max_equals_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    a = rng.uniform(-2, 2, (6,)).astype(np.float32)
    b = a * 2 + 1  # same arg max
    return [a, b]


_GRAD_NORM = "the gradient is implemented for ord 2/'euclidean'/'fro' and vector ord 1 only"

CASES: list[OpCase] = [
    OpCase(Sum(), ((3, 4),), _reduce(np.sum, None, False)),
    OpCase(Sum((1,)), ((3, 4),), _reduce(np.sum, (1,), False), label="(axis=1)"),
    OpCase(Sum((0,), True), ((3, 4),), _reduce(np.sum, (0,), True), label="(axis=0,keep)"),
    OpCase(Sum((-1, 0)), ((2, 3, 4),), _reduce(np.sum, (-1, 0), False), label="(axis=-1,0)"),
    OpCase(Sum(None, True), ((2, 3),), _reduce(np.sum, None, True), label="(keep)"),
    OpCase(Sum((1,)), ((3, 4),), _reduce(np.sum, (1,), False), dtypes=("int32",), low=-5, high=5,
           grad=False, why_no_grad=INT_INPUT, label="(int32)"),
    OpCase(Sum(), ((3, 4),), lambda x: np.int32(x.astype(np.int64).sum()), dtypes=("bool",),
           grad=False, why_no_grad=INT_INPUT, label="(bool)"),
    OpCase(Mean(), ((3, 4),), lambda x: np.sum(x) / x.size),
    OpCase(Mean((1,), True), ((3, 4),), lambda x: _reduce(np.sum, (1,), True)(x) / 4, label="(axis=1,keep)"),
    OpCase(Mean((0, 2)), ((2, 3, 4),), lambda x: _reduce(np.sum, (0, 2), False)(x) / 8, label="(axis=0,2)"),
    OpCase(Mean(), ((3, 4),), lambda x: np.sum(x.astype(np.float64)) / x.size, dtypes=("int32",),
           low=-5, high=5, grad=False, why_no_grad=INT_INPUT, label="(int32)"),
    OpCase(Min(), ((3, 4),), _reduce(np.amin, None, False)),
    OpCase(Min((0,)), ((3, 4),), _reduce(np.amin, (0,), False), label="(axis=0)"),
    OpCase(Min((0, 2), True), ((2, 3, 4),), _reduce(np.amin, (0, 2), True), label="(axis=0,2,keep)"),
    OpCase(Max(), ((3, 4),), _reduce(np.amax, None, False)),
    OpCase(Max((-1,)), ((3, 4),), _reduce(np.amax, (-1,), False), label="(axis=-1)"),
    OpCase(Max((1, 2), True), ((2, 3, 4),), _reduce(np.amax, (1, 2), True), label="(axis=1,2,keep)"),
    OpCase(Max((1,)), ((3, 4),), _reduce(np.amax, (1,), False), dtypes=("int32",), low=-5, high=5,
           grad=False, why_no_grad=INT_INPUT, label="(int32)"),
    OpCase(ArgMin(), ((3, 4),), _arg_ref(_first_min, None), grad=False, why_no_grad=INT_OUTPUT),
    OpCase(ArgMin((0,)), ((3, 4),), _arg_ref(_first_min, (0,)), grad=False, why_no_grad=INT_OUTPUT,
           label="(axis=0)"),
    OpCase(ArgMin((2, 0)), ((2, 3, 4),), _arg_ref(_first_min, (0, 2)), grad=False, why_no_grad=INT_OUTPUT,
           label="(axis=2,0)"),
    OpCase(ArgMax(), ((3, 4),), _arg_ref(_first_max, None), grad=False, why_no_grad=INT_OUTPUT),
    OpCase(ArgMax((1,)), ((3, 4),), _arg_ref(_first_max, (1,)), grad=False, why_no_grad=INT_OUTPUT,
           label="(axis=1)"),
    OpCase(ArgMax((0, 1)), ((2, 3, 4),), _arg_ref(_first_max, (0, 1)), grad=False, why_no_grad=INT_OUTPUT,
           label="(axis=0,1)"),
    OpCase(ArgMax((1,)), ((4, 5),), _arg_ref(_first_max, (1,)), make_inputs=_ties, grad=False,
           why_no_grad=INT_OUTPUT, label="(ties)"),
    OpCase(ArgMin(), ((4, 5),), _arg_ref(_first_min, None), make_inputs=_ties, grad=False,
           why_no_grad=INT_OUTPUT, label="(ties)"),
    OpCase(ArgMax((0,)), ((3, 4),), _arg_ref(_first_max, (0,)), dtypes=("int32",), low=-3, high=3,
           grad=False, why_no_grad=INT_OUTPUT, label="(int32)"),
    OpCase(ArgMaxEquals(), ((6,), (6,)), lambda a, b: np.bool_(_first_max(a) == _first_max(b)),
           grad=False, why_no_grad="bool output", label="(random)"),
    OpCase(ArgMaxEquals(), ((6,), (6,)), lambda a, b: np.bool_(_first_max(a) == _first_max(b)),
           make_inputs=_arg_max_equals_inputs, grad=False, why_no_grad="bool output", label="(equal)"),
    OpCase(ArgMaxEquals(), ((2, 3), (2, 3)), lambda a, b: np.bool_(_first_max(a.ravel()) == _first_max(b.ravel())),
           grad=False, why_no_grad="bool output"),
    OpCase(LogSumExp(), ((3, 4),), _lse_ref(None, False)),
    OpCase(LogSumExp((0,), True), ((3, 4),), _lse_ref((0,), True), label="(axis=0,keep)"),
    OpCase(LogSumExp((1,)), ((2, 3, 4),), _lse_ref((1,), False), label="(axis=1)"),
    OpCase(LogSumExp((-1,)), ((3, 4),), _lse_ref((-1,), False), low=500, high=520, label="(large)"),
    OpCase(Softmax(), ((5,),), _softmax_ref),
    OpCase(Softmax(), ((3, 4),), _softmax_ref),
    OpCase(Softmax(2), ((2, 2, 3),), _softmax_ref, label="(dim=rank-1)"),
    OpCase(Softmax(), ((3, 4),), _softmax_ref, low=-1000, high=1000, rtol=1e-4, atol=1e-6,
           grad=False, why_no_grad="saturated outputs: finite differences of exp(±1000) are meaningless",
           label="(huge)"),
    OpCase(TopK(3), ((7,),), _top_k_ref(3), grad=False,
           why_no_grad="multi-output op: the finite-difference check handles one output"),
    OpCase(TopK(5), ((3, 4),), _top_k_ref(5), grad=False,
           why_no_grad="multi-output op: the finite-difference check handles one output"),
    OpCase(TopK(6), ((4, 5),), _top_k_ref(6), make_inputs=_ties, grad=False,
           why_no_grad="multi-output op: the finite-difference check handles one output", label="(ties)"),
    OpCase(TopK(4), ((3, 3),), _top_k_ref(4), dtypes=("int32",), low=-4, high=4, grad=False,
           why_no_grad="multi-output op with int32 input", label="(int32)"),
    OpCase(Norm(), ((3, 4),), _norm_ref("euclidean", None, False)),
    OpCase(Norm(2, (1,)), ((3, 4),), _norm_ref(2, (1,), False), label="(2,axis=1)"),
    OpCase(Norm("euclidean", (0,), True), ((3, 4),), _norm_ref("euclidean", (0,), True), label="(axis=0,keep)"),
    OpCase(Norm(1), ((5,),), _norm_ref(1, None, False), label="(1)"),
    OpCase(Norm(1, (-1,)), ((3, 4),), _norm_ref(1, (-1,), False), label="(1,axis=-1)"),
    OpCase(Norm(math.inf), ((3, 4),), _norm_ref(math.inf, None, False), grad=False, why_no_grad=_GRAD_NORM,
           label="(inf)"),
    OpCase(Norm(-math.inf, (0,)), ((3, 4),), _norm_ref(-math.inf, (0,), False), grad=False,
           why_no_grad=_GRAD_NORM, label="(-inf,axis=0)"),
    OpCase(Norm("fro", (0, 1)), ((3, 4),), _norm_ref("fro", (0, 1), False), label="(fro)"),
    OpCase(Norm("euclidean", (0, 2), True), ((2, 3, 4),), _norm_ref("euclidean", (0, 2), True),
           label="(euclidean,axis=0,2,keep)"),
    OpCase(Norm(1, (0, 1)), ((3, 4),), _norm_ref(1, (0, 1), False), grad=False, why_no_grad=_GRAD_NORM,
           label="(matrix 1)"),
    OpCase(Norm(1, (1, 0)), ((3, 4),), _norm_ref(1, (1, 0), False), grad=False, why_no_grad=_GRAD_NORM,
           label="(matrix 1,axis=1,0)"),
    OpCase(Norm(math.inf, (0, 1)), ((3, 4),), _norm_ref(math.inf, (0, 1), False), grad=False,
           why_no_grad=_GRAD_NORM, label="(matrix inf)"),
    OpCase(Norm(-math.inf, (2, 0), True), ((2, 3, 4),), _norm_ref(-math.inf, (2, 0), True), grad=False,
           why_no_grad=_GRAD_NORM, label="(matrix -inf,axis=2,0,keep)"),
]
