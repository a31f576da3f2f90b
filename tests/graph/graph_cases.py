"""The graph-op table: one GraphCase per Graph builder configuration, with a NumPy oracle of the
per-example forward value written independently of the kernels (loops for conv and pooling)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deeplearn import Graph, Tensor
from deeplearn.types import Shape


@dataclass(frozen=True)
class GraphCase:
    """``build(g, inputs)`` adds the op to ``g``; ``reference(*arrays)`` is one example's value.

    ``fixed``: indices of inputs that must stay unbatched (conv2d weights). ``grad``: whether the
    output is differentiable (argmax is not). ``positive``: indices of inputs drawn from
    [0.5, 2] (log, divisors).
    """

    name: str
    shapes: tuple[Shape, ...]
    build: Callable[[Graph, list[Tensor]], Tensor]
    reference: Callable[..., Any]
    fixed: tuple[int, ...] = ()
    grad: bool = True
    positive: tuple[int, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.name}{[list(s) for s in self.shapes]}"


def _scalar_if_size1(a: np.ndarray, other: np.ndarray) -> np.ndarray:
    return a.reshape(()) if a.size == 1 and a.shape != other.shape else a


def _binary(f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda a, b: f(_scalar_if_size1(a, b), _scalar_if_size1(b, a))


def _pad(x: np.ndarray, p: int, fill: float = 0.0) -> np.ndarray:
    return np.pad(x, ((p, p), (p, p), (0, 0)), constant_values=fill)


def conv2d_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """y[i, j, o] = b[o] + Σ x_padded[i·s + di, j·s + dj, c] · w[di, dj, c, o], by loops."""
    xp = _pad(x, pad)
    f = w.shape[0]
    rows = (xp.shape[0] - f) // stride + 1
    cols = (xp.shape[1] - f) // stride + 1
    y = np.zeros((rows, cols, w.shape[3]))
    for i in range(rows):
        for j in range(cols):
            window = xp[i * stride:i * stride + f, j * stride:j * stride + f, :]
            y[i, j] = np.tensordot(window, w, axes=([0, 1, 2], [0, 1, 2])) + b
    return y


def max_pool_reference(x: np.ndarray, f: int, stride: int, pad: int) -> np.ndarray:
    xp = _pad(x, pad, -np.inf)
    rows = (xp.shape[0] - f) // stride + 1
    cols = (xp.shape[1] - f) // stride + 1
    y = np.zeros((rows, cols, x.shape[2]))
    for i in range(rows):
        for j in range(cols):
            y[i, j] = xp[i * stride:i * stride + f, j * stride:j * stride + f, :].max(axis=(0, 1))
    return y


def softmax_reference(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


CASES: list[GraphCase] = [
    GraphCase("add", ((2, 3), (2, 3)), lambda g, t: g.add(*t), _binary(np.add)),
    GraphCase("add", ((2, 3), (3,)), lambda g, t: g.add(*t), _binary(np.add)),
    GraphCase("add", ((3,), (2, 3)), lambda g, t: g.add(*t), _binary(np.add)),
    GraphCase("add", ((), (2, 3)), lambda g, t: g.add(*t), _binary(np.add)),
    GraphCase("add", ((1, 1), (3,)), lambda g, t: g.add(*t), _binary(np.add)),
    GraphCase("subtract", ((2, 3), (2, 3)), lambda g, t: g.subtract(*t), _binary(np.subtract)),
    GraphCase("subtract", ((), (3,)), lambda g, t: g.subtract(*t), _binary(np.subtract)),
    GraphCase("subtract", ((3,), ()), lambda g, t: g.subtract(*t), _binary(np.subtract)),
    GraphCase("multiply", ((2, 3), (2, 3)), lambda g, t: g.multiply(*t), _binary(np.multiply)),
    GraphCase("multiply", ((), (3,)), lambda g, t: g.multiply(*t), _binary(np.multiply)),
    GraphCase("divide", ((2, 3), (2, 3)), lambda g, t: g.divide(*t), _binary(np.divide), positive=(1,)),
    GraphCase("divide", ((3,), ()), lambda g, t: g.divide(*t), _binary(np.divide), positive=(1,)),
    GraphCase("divide", ((), (3,)), lambda g, t: g.divide(*t), _binary(np.divide), positive=(1,)),
    GraphCase("fused_linear_combination", ((2, 3), (2, 3), (), ()),
              lambda g, t: g.fused_linear_combination(*t), lambda x1, x2, c1, c2: c1 * x1 + c2 * x2),
    GraphCase("fused_linear_combination", ((3,), (3,), (1, 1), (1,)),  # size-1 coefficients
              lambda g, t: g.fused_linear_combination(*t),
              lambda x1, x2, c1, c2: c1.reshape(()) * x1 + c2.reshape(()) * x2),
    GraphCase("reduce_sum", ((2, 3),), lambda g, t: g.reduce_sum(t[0]), np.sum),
    GraphCase("reduce_sum", ((),), lambda g, t: g.reduce_sum(t[0]), np.sum),
    GraphCase("reshape", ((2, 3),), lambda g, t: g.reshape(t[0], [3, 2]), lambda x: x.reshape(3, 2)),
    GraphCase("concat3d", ((1, 2, 3), (2, 2, 3)), lambda g, t: g.concat3d(*t, 0),
              lambda a, b: np.concatenate([a, b], 0)),
    GraphCase("concat3d", ((2, 1, 3), (2, 2, 3)), lambda g, t: g.concat3d(*t, 1),
              lambda a, b: np.concatenate([a, b], 1)),
    GraphCase("concat3d", ((2, 2, 1), (2, 2, 3)), lambda g, t: g.concat3d(*t, 2),
              lambda a, b: np.concatenate([a, b], 2)),
    GraphCase("matmul", ((2, 3), (3, 4)), lambda g, t: g.matmul(*t), np.matmul),
    GraphCase("matmul", ((3,), (3, 4)), lambda g, t: g.matmul(*t), np.matmul),
    GraphCase("matmul", ((2, 3), (3,)), lambda g, t: g.matmul(*t), np.matmul),
    GraphCase("matmul", ((1, 3), (3, 1)), lambda g, t: g.matmul(*t), np.matmul),
    GraphCase("matmul", ((4,), (4, 1)), lambda g, t: g.matmul(*t), np.matmul),
    GraphCase("matmul", ((3, 4), (4, 2)), lambda g, t: g.matmul(*t), np.matmul),
    GraphCase("conv2d", ((5, 5, 2), (3, 3, 2, 4), (4,)), lambda g, t: g.conv2d(*t, 3, 4),
              lambda x, w, b: conv2d_reference(x, w, b, 1, 1), fixed=(1,)),
    GraphCase("conv2d", ((6, 6, 1), (2, 2, 1, 3), (3,)), lambda g, t: g.conv2d(*t, 2, 3, 2, 0),
              lambda x, w, b: conv2d_reference(x, w, b, 2, 0), fixed=(1,)),
    GraphCase("max_pool", ((4, 4, 2),), lambda g, t: g.max_pool(t[0], 2, 2, 0),
              lambda x: max_pool_reference(x, 2, 2, 0)),
    GraphCase("max_pool", ((5, 5, 1),), lambda g, t: g.max_pool(t[0], 3, 1),
              lambda x: max_pool_reference(x, 3, 1, 1)),
    GraphCase("exp", ((2, 3),), lambda g, t: g.exp(t[0]), np.exp),
    GraphCase("log", ((2, 3),), lambda g, t: g.log(t[0]), np.log, positive=(0,)),
    GraphCase("relu", ((2, 3),), lambda g, t: g.relu(t[0]), lambda x: np.maximum(x, 0)),
    GraphCase("leaky_relu", ((2, 3),), lambda g, t: g.leaky_relu(t[0], 0.2), lambda x: np.where(x >= 0, x, 0.2 * x)),
    GraphCase("prelu", ((2, 3), (2, 3)), lambda g, t: g.prelu(*t), lambda x, a: np.where(x >= 0, x, a * x)),
    GraphCase("elu", ((2, 3),), lambda g, t: g.elu(t[0]), lambda x: np.where(x >= 0, x, np.expm1(x))),
    GraphCase("tanh", ((2, 3),), lambda g, t: g.tanh(t[0]), np.tanh),
    GraphCase("sigmoid", ((2, 3),), lambda g, t: g.sigmoid(t[0]), lambda x: 1 / (1 + np.exp(-x))),
    GraphCase("square", ((2, 3),), lambda g, t: g.square(t[0]), np.square),
    GraphCase("softmax", ((4,),), lambda g, t: g.softmax(t[0]), softmax_reference),
    GraphCase("softmax_cross_entropy_cost", ((4,), (4,)), lambda g, t: g.softmax_cross_entropy_cost(*t),
              lambda x, target: -np.sum(target * np.log(softmax_reference(x) + 1e-5)), positive=(1,)),
    GraphCase("softmax_cross_entropy_cost", ((2, 3), (2, 3)), lambda g, t: g.softmax_cross_entropy_cost(*t),
              lambda x, target: -np.sum(target * np.log(softmax_reference(x) + 1e-5)), positive=(1,)),
    GraphCase("mean_squared_cost", ((2, 3), (2, 3)), lambda g, t: g.mean_squared_cost(*t),
              lambda a, b: np.mean(0.5 * (a - b) ** 2)),
    GraphCase("mean_squared_cost", ((), ()), lambda g, t: g.mean_squared_cost(*t),
              lambda a, b: 0.5 * (a - b) ** 2),
    GraphCase("argmax", ((2, 3),), lambda g, t: g.argmax(t[0]), lambda x: np.argmax(x), grad=False),
    GraphCase("argmax", ((),), lambda g, t: g.argmax(t[0]), lambda x: np.argmax(x), grad=False),
    GraphCase("argmax_equals", ((4,), (4,)), lambda g, t: g.argmax_equals(*t),
              lambda a, b: np.argmax(a) == np.argmax(b), grad=False),
    GraphCase("argmax_equals", ((2, 3), (2, 3)), lambda g, t: g.argmax_equals(*t),
              lambda a, b: np.argmax(a) == np.argmax(b), grad=False),
]
