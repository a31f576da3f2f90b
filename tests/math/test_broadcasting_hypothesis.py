"""Property tests: the broadcasting binary ops agree with NumPy on random broadcastable shapes
(values include NaN, ±0 and ties), refuse non-broadcastable shapes with a ShapeError that names
the method, and their gradients sum back over the broadcast axes."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deeplearn as dl
from deeplearn.math.backends import cuda_available
from deeplearn.math.ops.arithmetic import Add, Multiply, Subtract
from deeplearn.types import ShapeError
from tests.conftest import BACKENDS, as_ndarray

REFERENCE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "maximum": np.maximum,  # NumPy's maximum/minimum propagate NaN, as deeplearn.js does
    "minimum": np.minimum,
    "equal": np.equal,
}

_MATHS: dict[str, dl.NDArrayMath] = {}


def _math(backend: str) -> dl.NDArrayMath:
    if backend == "cuda" and not cuda_available():
        pytest.skip("CUDA backend: CuPy with a visible NVIDIA GPU is not available on this machine")
    if backend not in _MATHS:
        _MATHS[backend] = dl.NDArrayMath(backend)
    return _MATHS[backend]


# A few special values (ties, 0, NaN, inf) mixed with ordinary float32 numbers. No subnormals
# (inputs or results): CuPy compiles every kernel with -ftz=true, so the GPU flushes them to 0.
# No -0.0: CuPy's transfer of a 0-d host array drops the sign of zero (so 1 / -0 gives +inf).
ELEMENTS = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 2.5, float("nan"), float("inf")]),
    st.floats(-1e3, 1e3, width=32).filter(lambda v: abs(v) > 1e-6),
)
SHAPE_PAIRS = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4)


def _array(data: st.DataObject, shape: tuple[int, ...]) -> np.ndarray:
    return data.draw(hnp.arrays(np.float32, shape, elements=ELEMENTS))


@pytest.mark.parametrize("name", REFERENCE)
@pytest.mark.parametrize("backend", [p.values[0] for p in BACKENDS], ids=str)
@settings(max_examples=40, deadline=None)
@given(data=st.data(), shapes=SHAPE_PAIRS)
def test_broadcasting_matches_numpy(backend: str, name: str, data: st.DataObject, shapes: object) -> None:
    math = _math(backend)
    (shape_a, shape_b), out_shape = shapes.input_shapes, shapes.result_shape  # type: ignore[attr-defined]
    a, b = _array(data, shape_a), _array(data, shape_b)
    y = getattr(math, name)(as_ndarray(math, a), as_ndarray(math, b))
    with np.errstate(all="ignore"):
        expected = REFERENCE[name](a, b)
    assert y.shape == out_shape == expected.shape
    assert y.dtype == ("bool" if name == "equal" else "float32")
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6, atol=0)


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


_SHAPE = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)
INCOMPATIBLE = st.tuples(_SHAPE, _SHAPE).filter(lambda p: not _broadcastable(*p))


@pytest.mark.parametrize("name", REFERENCE)
@settings(max_examples=25, deadline=None)
@given(shapes=INCOMPATIBLE)
def test_non_broadcastable_shapes_raise_a_shape_error_naming_the_method(
    name: str, shapes: tuple[tuple[int, ...], tuple[int, ...]]
) -> None:
    math = _math("cpu")
    a, b = (as_ndarray(math, np.ones(s, np.float32)) for s in shapes)
    message = f"{name}: operands could not be broadcast together; got shapes {shapes[0]} and {shapes[1]}"
    with pytest.raises(ShapeError, match="^" + re.escape(message)):
        getattr(math, name)(a, b)


@pytest.mark.parametrize(
    "name", ["add_strict", "subtract_strict", "multiply_strict", "divide_strict", "equal_strict"]
)
@settings(max_examples=25, deadline=None)
@given(data=st.data(), shapes=SHAPE_PAIRS)
def test_strict_variants_accept_only_equal_shapes(name: str, data: st.DataObject, shapes: object) -> None:
    math = _math("cpu")
    shape_a, shape_b = shapes.input_shapes  # type: ignore[attr-defined]
    a, b = _array(data, shape_a), _array(data, shape_b)
    call = lambda: getattr(math, name)(as_ndarray(math, a), as_ndarray(math, b))
    if shape_a != shape_b:
        with pytest.raises(ShapeError, match=rf"^{name}: shapes must match"):
            call()
    else:
        with np.errstate(all="ignore"):
            expected = REFERENCE[name.removesuffix("_strict")](a, b)
        np.testing.assert_allclose(call().numpy(), expected, rtol=1e-6, atol=0)


def _sum_to_shape(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """NumPy's own reduction of a broadcast gradient back to an input's shape."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


@pytest.mark.parametrize("op", [Add(), Subtract(), Multiply()], ids=lambda op: op.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data(), shapes=SHAPE_PAIRS)
def test_broadcast_gradients_sum_over_broadcast_axes(op: object, data: st.DataObject, shapes: object) -> None:
    math = _math("cpu")
    (shape_a, shape_b), out_shape = shapes.input_shapes, shapes.result_shape  # type: ignore[attr-defined]
    finite = st.floats(-10, 10, width=32)
    a = data.draw(hnp.arrays(np.float64, shape_a, elements=finite))
    b = data.draw(hnp.arrays(np.float64, shape_b, elements=finite))
    dy = data.draw(hnp.arrays(np.float64, out_shape, elements=finite))
    math.engine.keep_float64 = True
    try:
        nd_a, nd_b = as_ndarray(math, a), as_ndarray(math, b)
        y = math.engine.run(op, nd_a, nd_b)
        da, db = op.backward(math, as_ndarray(math, dy), nd_a, nd_b, y)  # type: ignore[attr-defined]
    finally:
        math.engine.keep_float64 = False
    name = op.name  # type: ignore[attr-defined]
    local = {"add": (dy, dy), "subtract": (dy, -dy), "multiply": (dy * b, dy * a)}[name]
    assert da.shape == shape_a and db.shape == shape_b
    np.testing.assert_allclose(
        da.numpy(), _sum_to_shape(np.broadcast_to(local[0], out_shape), shape_a), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        db.numpy(), _sum_to_shape(np.broadcast_to(local[1], out_shape), shape_b), rtol=1e-12, atol=1e-12
    )
