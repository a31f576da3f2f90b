"""OpCases of the layout ops; oracles index and copy element by element where NumPy's own
function would be the kernel itself."""

from __future__ import annotations

from typing import Any

import numpy as np

from deeplearn.math.ops.layout import Clone, Concat, Gather, Slice, Tile, Transpose
from tests.op_cases import OpCase

INT_INPUT = "int32/bool input: there is nothing to differentiate"


def _slice_ref(begin: tuple[int, ...], size: tuple[int, ...]) -> Any:
    def ref(x: np.ndarray) -> np.ndarray:
        out = np.empty(size, dtype=x.dtype)
        for idx in np.ndindex(*size):
            out[idx] = x[tuple(i + b for i, b in zip(idx, begin))]
        return out

    return ref


def _concat_ref(axis: int) -> Any:
    def ref(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ax = axis % a.ndim
        shape = list(a.shape)
        shape[ax] += b.shape[ax]
        out = np.empty(shape, dtype=a.dtype)
        for idx in np.ndindex(*shape):
            if idx[ax] < a.shape[ax]:
                out[idx] = a[idx]
            else:
                out[idx] = b[idx[:ax] + (idx[ax] - a.shape[ax],) + idx[ax + 1:]]
        return out

    return ref


def _transpose_ref(perm: tuple[int, ...] | None) -> Any:
    def ref(x: np.ndarray) -> np.ndarray:
        p = tuple(reversed(range(x.ndim))) if perm is None else perm
        out = np.empty([x.shape[i] for i in p], dtype=x.dtype)
        for idx in np.ndindex(*out.shape):
            src = [0] * x.ndim
            for i, axis in enumerate(p):
                src[axis] = idx[i]
            out[idx] = x[tuple(src)]
        return out

    return ref


def _tile_ref(reps: tuple[int, ...]) -> Any:
    def ref(x: np.ndarray) -> np.ndarray:
        out = np.empty([d * r for d, r in zip(x.shape, reps)], dtype=x.dtype)
        for idx in np.ndindex(*out.shape):
            out[idx] = x[tuple(i % d for i, d in zip(idx, x.shape))]
        return out

    return ref


def _gather_ref(x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    out = np.empty((len(indices), *x.shape[1:]), dtype=x.dtype)
    for i, row in enumerate(indices):
        out[i] = x[int(row)]
    return out


def _gather_inputs(rows: int, taken: int, tail: tuple[int, ...], dtype: str = "float32") -> Any:
    """x with ``rows`` rows, and ``taken`` indices into them, repeats included (each row taken
    twice checks that the gradient adds both)."""

    def make(rng: np.random.Generator) -> list[np.ndarray]:
        shape = (rows, *tail)
        x = rng.uniform(-2, 2, shape) if dtype == "float32" else rng.integers(-9, 10, shape)
        indices = np.concatenate([np.arange(rows), rng.integers(0, rows, max(taken - rows, 0))])[:taken]
        return [x.astype(dtype), rng.permutation(indices).astype(np.int32)]

    return make


CASES: list[OpCase] = [
    OpCase(Clone(), ((3, 4),), lambda x: x.copy()),
    OpCase(Clone(), ((5,),), lambda x: x.copy(), dtypes=("bool",), grad=False, why_no_grad=INT_INPUT,
           label="(bool)"),
    OpCase(Slice((1,), (3,)), ((5,),), _slice_ref((1,), (3,))),
    OpCase(Slice((1, 1), (3, 2)), ((4, 3),), _slice_ref((1, 1), (3, 2))),
    OpCase(Slice((0, 1, 1), (2, 1, 1)), ((2, 2, 2),), _slice_ref((0, 1, 1), (2, 1, 1))),
    OpCase(Slice((1, 0, 1, 0), (1, 2, 2, 3)), ((2, 3, 3, 3),), _slice_ref((1, 0, 1, 0), (1, 2, 2, 3))),
    OpCase(Slice((0, 2), (2, 0)), ((3, 4),), _slice_ref((0, 2), (2, 0)), label="(empty)"),
    OpCase(Slice((1, 0), (2, 3)), ((3, 3),), _slice_ref((1, 0), (2, 3)), dtypes=("int32",), low=-9, high=9,
           grad=False, why_no_grad=INT_INPUT, label="(int32)"),
    OpCase(Concat(0), ((1,), (2,)), _concat_ref(0)),
    OpCase(Concat(0), ((2, 3), (1, 3)), _concat_ref(0)),
    OpCase(Concat(1), ((2, 3), (2, 2)), _concat_ref(1)),
    OpCase(Concat(2), ((2, 2, 2), (2, 2, 3)), _concat_ref(2)),
    OpCase(Concat(-3), ((1, 2, 2), (2, 2, 2)), _concat_ref(-3), label="(axis=-3)"),
    OpCase(Concat(3), ((1, 2, 1, 2), (1, 2, 1, 1)), _concat_ref(3)),
    OpCase(Concat(1), ((2, 2), (2, 1)), _concat_ref(1), dtypes=("int32", "int32"), low=-9, high=9,
           grad=False, why_no_grad=INT_INPUT, label="(int32)"),
    OpCase(Transpose(), ((2, 3),), _transpose_ref(None)),
    OpCase(Transpose((1, 0, 2)), ((2, 3, 4),), _transpose_ref((1, 0, 2))),
    OpCase(Transpose((2, 0, 3, 1)), ((2, 3, 1, 2),), _transpose_ref((2, 0, 3, 1))),
    OpCase(Transpose(), ((2, 3, 4),), _transpose_ref(None), label="(reverse)"),
    OpCase(Tile((2,)), ((3,),), _tile_ref((2,))),
    OpCase(Tile((1, 2)), ((2, 2),), _tile_ref((1, 2))),
    OpCase(Tile((3, 1, 2)), ((2, 2, 1),), _tile_ref((3, 1, 2))),
    OpCase(Tile((2, 2)), ((2, 3),), _tile_ref((2, 2)), dtypes=("bool",), grad=False, why_no_grad=INT_INPUT,
           label="(bool)"),
    OpCase(Tile((2, 1)), ((2, 3),), _tile_ref((2, 1)), dtypes=("int32",), low=-9, high=9, grad=False,
           why_no_grad=INT_INPUT, label="(int32)"),
    OpCase(Gather(), ((4, 3), (6,)), _gather_ref, make_inputs=_gather_inputs(4, 6, (3,))),
    OpCase(Gather(), ((5,), (3,)), _gather_ref, make_inputs=_gather_inputs(5, 3, ())),
    OpCase(Gather(), ((3, 2, 2), (7,)), _gather_ref, make_inputs=_gather_inputs(3, 7, (2, 2))),
    OpCase(Gather(), ((1, 4), (3,)), _gather_ref, make_inputs=_gather_inputs(1, 3, (4,)), label="(one row)"),
    OpCase(Gather(), ((4, 2), (5,)), _gather_ref, make_inputs=_gather_inputs(4, 5, (2,), "int32"), grad=False,
           why_no_grad=INT_INPUT, label="(int32)"),
]
