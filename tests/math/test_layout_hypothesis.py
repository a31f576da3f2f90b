"""Property tests of the layout ops on random shapes, on the CPU: reshape (with -1), transpose,
slice and concat agree with NumPy indexing and undo each other."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import deeplearn as dl

SETTINGS = settings(max_examples=60, deadline=None)
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


def _array(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-5, 5, shape).astype(np.float32)


@st.composite
def reshapes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A shape and another shape of the same size with one dimension written as -1."""
    shape = draw(shapes)
    size = int(np.prod(shape))
    dims, rest = [], size
    for _ in range(draw(st.integers(0, 3))):
        d = draw(st.sampled_from([k for k in range(1, rest + 1) if rest % k == 0]))
        dims.append(d)
        rest //= d
    dims.append(rest)
    order = draw(st.permutations(dims))
    implicit = draw(st.integers(0, len(order) - 1))
    return shape, tuple(-1 if i == implicit else d for i, d in enumerate(order))


@SETTINGS
@given(reshapes())
def test_reshape_with_minus_one_round_trips(case: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    shape, new_shape = case
    math = dl.NDArrayMathCPU()
    data = _array(shape)
    x = dl.NDArray.from_numpy(data, math=math)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        y = math.reshape(x, new_shape)
    assert y.shape == np.reshape(data, new_shape).shape
    np.testing.assert_array_equal(y.numpy(), np.reshape(data, new_shape))
    np.testing.assert_array_equal(y.reshape(shape).numpy(), data)


@SETTINGS
@given(shapes.flatmap(lambda s: st.tuples(st.just(s), st.permutations(range(len(s))))))
def test_transpose_matches_numpy_and_its_inverse_undoes_it(case: tuple[tuple[int, ...], list[int]]) -> None:
    shape, perm = case
    math = dl.NDArrayMathCPU()
    data = _array(shape)
    x = dl.NDArray.from_numpy(data, math=math)
    y = math.transpose(x, perm)
    np.testing.assert_array_equal(y.numpy(), np.transpose(data, perm))
    inverse = list(np.argsort(perm))
    np.testing.assert_array_equal(math.transpose(y, inverse).numpy(), data)
    np.testing.assert_array_equal(math.transpose(x).numpy(), data.T)  # default: reversed axes


@st.composite
def windows(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    shape = draw(shapes)
    begin = tuple(draw(st.integers(0, d)) for d in shape)
    size = tuple(draw(st.integers(0, d - b)) for d, b in zip(shape, begin))
    return shape, begin, size


@SETTINGS
@given(windows())
def test_slice_matches_numpy_indexing(case: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]) -> None:
    shape, begin, size = case
    math = dl.NDArrayMathCPU()
    data = _array(shape)
    y = math.slice(dl.NDArray.from_numpy(data, math=math), begin, size)
    expected = data[tuple(slice(b, b + s) for b, s in zip(begin, size))]
    assert y.shape == size
    np.testing.assert_array_equal(y.numpy(), expected)
    rank_method = getattr(math, f"slice{len(shape)}d")
    args = (begin[0], size[0]) if len(shape) == 1 else (begin, size)
    np.testing.assert_array_equal(rank_method(dl.NDArray.from_numpy(data, math=math), *args).numpy(), expected)


@SETTINGS
@given(shapes.flatmap(lambda s: st.tuples(st.just(s), st.integers(0, len(s) - 1), st.data())))
def test_slices_concatenated_give_back_the_array(case: tuple[tuple[int, ...], int, st.DataObject]) -> None:
    shape, axis, data_strategy = case
    split = data_strategy.draw(st.integers(0, shape[axis]))
    math = dl.NDArrayMathCPU()
    data = _array(shape)
    x = dl.NDArray.from_numpy(data, math=math)
    head_size = tuple(split if i == axis else d for i, d in enumerate(shape))
    tail_begin = tuple(split if i == axis else 0 for i in range(len(shape)))
    tail_size = tuple(d - split if i == axis else d for i, d in enumerate(shape))
    head = math.slice(x, (0,) * len(shape), head_size)
    tail = math.slice(x, tail_begin, tail_size)
    concat = getattr(math, f"concat{len(shape)}d")
    joined = concat(head, tail) if len(shape) == 1 else concat(head, tail, axis)
    np.testing.assert_array_equal(joined.numpy(), data)
    np.testing.assert_array_equal(math.concat(head, tail, axis - len(shape)).numpy(), data)  # negative axis


@SETTINGS
@given(shapes.flatmap(lambda s: st.tuples(st.just(s), st.lists(st.integers(0, 3), min_size=len(s),
                                                                max_size=len(s)))))
def test_tile_matches_numpy(case: tuple[tuple[int, ...], list[int]]) -> None:
    shape, reps = case
    math = dl.NDArrayMathCPU()
    data = _array(shape)
    np.testing.assert_array_equal(math.tile(dl.NDArray.from_numpy(data, math=math), reps).numpy(),
                                  np.tile(data, reps))
