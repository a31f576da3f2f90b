"""Eager gradients (math.gradients / value_and_gradients) against finite differences of an
independent NumPy version of the same function."""

from __future__ import annotations

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, Array2D, ShapeError


def _numpy_f(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> float:
    h = np.maximum(x.reshape(2, 3) @ w + b, 0)  # relu(x·W + b), b broadcast over rows
    return float(np.sum(np.tanh(h) * h) + np.sum(x**2) / 2)


def _numeric(f, inputs: list[np.ndarray], i: int, eps: float = 1e-6) -> np.ndarray:
    x = inputs[i]
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = f(*inputs)
        x[idx] = old - eps
        minus = f(*inputs)
        x[idx] = old
        g[idx] = (plus - minus) / (2 * eps)
    return g


def test_gradients_of_a_composite_match_finite_differences(math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(0)
    x0, w0, b0 = rng.normal(size=6), rng.normal(size=(3, 4)), rng.normal(size=4)
    x, w, b = Array1D.new(x0), Array2D.new([3, 4], w0), Array1D.new(b0)

    def f() -> dl.NDArray:
        h = math.relu(math.add(math.mat_mul(x.reshape([2, 3]), w), b))  # a reshape view in the path
        return math.add(math.sum(math.multiply(math.tanh(h), h)), math.divide(math.sum(math.square(x)), dl.Scalar.new(2)))

    value, grads = math.value_and_gradients(f, {"x": x, "w": w, "b": b})
    inputs = [x0.copy(), w0.copy(), b0.copy()]
    assert value.get() == pytest.approx(_numpy_f(*inputs), rel=1e-5)
    for i, name in enumerate(["x", "w", "b"]):
        assert grads[name].shape == inputs[i].shape
        np.testing.assert_allclose(grads[name].numpy(), _numeric(_numpy_f, inputs, i), rtol=1e-3, atol=1e-4, err_msg=name)


def test_gradients_of_one_array_and_of_an_unused_one(math: dl.NDArrayMath) -> None:
    x, unused = Array1D.new([1.0, -2.0, 3.0]), Array1D.new([5.0])
    assert math.gradients(lambda: math.sum(math.multiply(x, x)), x).get_values().tolist() == [2.0, -4.0, 6.0]
    assert math.gradients(lambda: math.sum(x), unused).get_values().tolist() == [0.0]


def test_intermediates_are_disposed_and_results_survive(cpu_math: dl.NDArrayMath) -> None:
    x = Array1D.new([1.0, 2.0])
    before = cpu_math.get_num_arrays()
    with cpu_math.scope():
        value, grad = cpu_math.value_and_gradients(lambda: cpu_math.sum(cpu_math.exp(cpu_math.square(x))), x)
        assert cpu_math.get_num_arrays() == before + 2 and not value.is_disposed and not grad.is_disposed
    assert value.is_disposed and grad.is_disposed and cpu_math.get_num_arrays() == before


def test_a_non_scalar_output_is_refused(cpu_math: dl.NDArrayMath) -> None:
    x = Array1D.new([1.0, 2.0])
    before = cpu_math.get_num_arrays()
    with pytest.raises(ShapeError, match="Cannot compute gradient of non-scalar y output; got y of shape"):
        cpu_math.gradients(lambda: cpu_math.square(x), x)
    assert cpu_math.get_num_arrays() == before  # what f made is disposed
    with pytest.raises(TypeError, match="x must be an NDArray"):
        cpu_math.gradients(lambda: cpu_math.sum(x), [x])  # type: ignore[arg-type]
