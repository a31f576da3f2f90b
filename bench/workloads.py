"""The six benchmark workloads: model, sizes, data, initial weights and work counts.

Every system (deeplearn and each peer) builds its run from the same ``Problem``: the same model
description, the same float32 data and the same initial weights, so that one training step of
every system can be compared number for number before anything is timed.

Models are described as a list of layers that every peer interprets the same way:

* ``Dense(name, n_in, n_out, relu)``: ``y = x·W + b`` (W is ``[n_in, n_out]``), then relu if asked.
* ``Conv(name, field, c_in, c_out, relu)``: 2-D cross-correlation, stride 1, 'same' zero padding
  ``(field - 1) // 2`` (field is odd), NHWC activations, HWIO filters, plus bias, then relu.
* ``Pool()``: max-pool 2×2, stride 2, no padding (height and width are even).
* ``Flatten()``: ``[B, H, W, C]`` to ``[B, H·W·C]`` in row-major (h, w, c) order.
* ``Quad()``: the seed's ``y = a·x² + b·x + c`` with scalar variables a, b, c.

Costs are deeplearn's per-example costs averaged over the batch (``Session.train`` applies
``-lr / batch`` times the sum of per-example gradients, i.e. SGD on the batch mean):

* ``"mse"``: per example the mean over its elements of ½(prediction − label)².
* ``"xent"``: per example −Σ label·log(softmax(logits) + 1e-5).

Example:
    >>> p = make_problem("quad", "cpu", quick=True)
    >>> p.batch, sorted(p.init)
    (20, ['a', 'b', 'c'])
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "DESCRIPTIONS",
    "OP_WORKLOADS",
    "TRAIN_WORKLOADS",
    "WORKLOADS",
    "XENT_EPSILON",
    "Conv",
    "Dense",
    "Flatten",
    "Layer",
    "Pool",
    "Problem",
    "Quad",
    "make_problem",
]

WORKLOADS = ("quad", "mlp", "mlpbig", "cnn", "matmul", "elementwise")
TRAIN_WORKLOADS = ("quad", "mlp", "mlpbig", "cnn")
OP_WORKLOADS = ("matmul", "elementwise")

XENT_EPSILON = 1e-5
"""deeplearn.js adds 1e-5 inside the log of softmax_cross_entropy_cost."""

DESCRIPTIONS = {
    "quad": "y = a·x² + b·x + c, mean_squared_cost, SGD(0.01)",
    "mlp": "relu MLP, softmax_cross_entropy_cost, SGD(0.1)",
    "mlpbig": "relu MLP (last layer linear), mean_squared_cost, SGD(1.0)",
    "cnn": (
        "conv5x5 same+relu+maxpool2, conv5x5 same+relu+maxpool2, dense relu, dense, softmax xent, SGD(0.05)"
    ),
    "matmul": "math.mat_mul(a, b), square float32 matrices",
    "elementwise": "math.relu(x) and math.add(x, y) on float32 vectors",
}


@dataclass(frozen=True)
class Dense:
    name: str
    n_in: int
    n_out: int
    relu: bool


@dataclass(frozen=True)
class Conv:
    name: str
    field: int
    c_in: int
    c_out: int
    relu: bool


@dataclass(frozen=True)
class Pool:
    """Max-pool 2×2, stride 2, no padding."""


@dataclass(frozen=True)
class Flatten:
    pass


@dataclass(frozen=True)
class Quad:
    pass


Layer = Dense | Conv | Pool | Flatten | Quad


@dataclass
class Problem:
    """One workload at one size: everything a system needs to build its run.

    Attributes:
        workload: one of ``WORKLOADS``.
        kind: "train" (one step = one SGD step on the batch) or "op" (one step = the op(s) once).
        sizes: the sizes that define this run (recorded in the results).
        layers: the model, for "train" problems.
        cost: "mse" or "xent", for "train" problems.
        input_shape: the shape of one example (no batch dimension), for "train" problems.
        batch: examples per step ("train"); the dataset is exactly one batch, so every step sees
            the same examples whatever the order a shuffled provider gives them in.
        lr: the SGD learning rate.
        data: float32 arrays: "x" and "y" (batched) for "train"; the operands for "op".
        init: float32 initial parameters by name, in model order ("train" only).
        flops_per_step: floating-point operations of one step where they are counted (matrix
            products: forward, and backward for the weights and for every input but the data).
        bytes_per_step: bytes read and written by one step (elementwise).
    """

    workload: str
    kind: Literal["train", "op"]
    sizes: dict[str, Any]
    batch: int = 0
    lr: float = 0.0
    layers: list[Layer] = field(default_factory=list)
    cost: str = ""
    input_shape: tuple[int, ...] = ()
    data: dict[str, np.ndarray] = field(default_factory=dict)
    init: dict[str, np.ndarray] = field(default_factory=dict)
    flops_per_step: float | None = None
    bytes_per_step: float | None = None

    def summary(self) -> dict[str, Any]:
        """What the results file records about this problem."""
        return {
            "id": self.workload,
            "kind": self.kind,
            "description": DESCRIPTIONS[self.workload],
            "sizes": dict(self.sizes),
            "batch": self.batch or None,
            "learning_rate": self.lr or None,
            "flops_per_step": self.flops_per_step,
            "bytes_per_step": self.bytes_per_step,
        }


# Sizes: "gpu" are the workloads' sizes (bench/README.md); "cpu" keeps the small models as they are and scales the
# compute-bound ones to what a 2-core machine runs in seconds; "quick" is for the test suite.
_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "quad": {"gpu": {"batch": 20}, "cpu": {"batch": 20}, "quick": {"batch": 20}},
    "mlp": {
        "gpu": {"units": [784, 512, 512, 10], "batch": 128},
        "cpu": {"units": [784, 512, 512, 10], "batch": 128},
        "quick": {"units": [32, 16, 16, 10], "batch": 8},
    },
    "mlpbig": {
        "gpu": {"units": [4096, 4096, 4096, 4096], "batch": 4096},
        "cpu": {"units": [1024, 1024, 1024, 1024], "batch": 1024},
        "quick": {"units": [24, 24, 24, 24], "batch": 8},
    },
    "cnn": {
        "gpu": {
            "image": [28, 28, 1],
            "channels": [32, 64],
            "field": 5,
            "dense": 1024,
            "classes": 10,
            "batch": 64,
        },
        "cpu": {
            "image": [28, 28, 1],
            "channels": [32, 64],
            "field": 5,
            "dense": 1024,
            "classes": 10,
            "batch": 64,
        },
        "quick": {"image": [8, 8, 1], "channels": [4, 8], "field": 5, "dense": 16, "classes": 10, "batch": 4},
    },
    "matmul": {"gpu": {"n": 8192}, "cpu": {"n": 2048}, "quick": {"n": 64}},
    "elementwise": {"gpu": {"n": 64 * 2**20}, "cpu": {"n": 16 * 2**20}, "quick": {"n": 4096}},
}

# mlpbig's cost is a mean over 4096 outputs and 4096 examples, so its gradients are ~1e-6:
# learning rate 1 moves the weights by ~1e-4 of their size per step, far above float32 rounding,
# which the one-step equality check needs in order to see a wrong gradient.
_LEARNING_RATES = {"quad": 0.01, "mlp": 0.1, "mlpbig": 1.0, "cnn": 0.05}


def size_class(backend: str, quick: bool, full: bool = False) -> str:
    """ "quick", "gpu" or "cpu": which size table a run uses (``full`` forces the GPU sizes)."""
    if quick:
        return "quick"
    if full or backend == "cuda":
        return "gpu"
    return "cpu"


def make_problem(
    workload: str, backend: str, quick: bool = False, full: bool = False, seed: int = 0
) -> Problem:
    """Builds ``workload``'s problem for ``backend`` ("cpu"/"cuda") with seeded data and weights."""
    if workload not in WORKLOADS:
        raise ValueError(f"make_problem: workload must be one of {WORKLOADS}; got {workload!r}.")
    sizes = dict(_SIZES[workload][size_class(backend, quick, full)])
    rng = np.random.default_rng([seed, WORKLOADS.index(workload)])
    builder = {
        "quad": _quad,
        "mlp": _mlp,
        "mlpbig": _mlpbig,
        "cnn": _cnn,
        "matmul": _matmul,
        "elementwise": _elementwise,
    }[workload]
    problem = builder(sizes, rng)
    problem.sizes = sizes
    for a in (*problem.data.values(), *problem.init.values()):
        a.setflags(write=False)  # shared by every system: none may write into it
    return problem


def _f32(a: Any) -> np.ndarray:
    return np.array(a, dtype=np.float32, order="C")  # keeps 0-d scalars 0-d


def _dense_init(rng: np.random.Generator, n_in: int, n_out: int, relu: bool) -> tuple[np.ndarray, np.ndarray]:
    # He-style scale for relu layers; small non-zero biases so the bias paths are checked too.
    std = np.sqrt((2.0 if relu else 1.0) / n_in)
    return _f32(rng.normal(0, std, (n_in, n_out))), _f32(rng.uniform(-0.1, 0.1, n_out))


def _one_hot(rng: np.random.Generator, batch: int, classes: int) -> np.ndarray:
    return _f32(np.eye(classes)[rng.integers(0, classes, batch)])


def _mlp_layers(units: list[int], last_relu: bool = False) -> list[Layer]:
    n = len(units) - 1
    return [Dense(f"dense{i + 1}", units[i], units[i + 1], relu=(i < n - 1) or last_relu) for i in range(n)]


def _init_dense_layers(rng: np.random.Generator, layers: list[Layer]) -> dict[str, np.ndarray]:
    init: dict[str, np.ndarray] = {}
    for layer in layers:
        if isinstance(layer, Dense):
            init[f"{layer.name}-weights"], init[f"{layer.name}-bias"] = _dense_init(
                rng, layer.n_in, layer.n_out, layer.relu
            )
        elif isinstance(layer, Conv):
            fan_in = layer.field * layer.field * layer.c_in
            init[f"{layer.name}-weights"] = _f32(
                rng.normal(0, np.sqrt(2.0 / fan_in), (layer.field, layer.field, layer.c_in, layer.c_out))
            )
            init[f"{layer.name}-bias"] = _f32(rng.uniform(-0.1, 0.1, layer.c_out))
    return init


def _dense_flops(batch: int, dims: list[tuple[int, int]]) -> float:
    # Forward x·W, backward dW = xᵀ·dy for every layer, dx = dy·Wᵀ for every layer but the first
    # (the data needs no gradient): 2·B·in·out operations each.
    total = 0.0
    for i, (n_in, n_out) in enumerate(dims):
        total += (3 if i > 0 else 2) * 2.0 * batch * n_in * n_out
    return total


def _quad(sizes: dict[str, Any], rng: np.random.Generator) -> Problem:
    batch = int(sizes["batch"])
    x = rng.uniform(-2, 2, batch)
    y = 3 * x * x + 2 * x + 1 + rng.normal(0, 0.1, batch)
    init = {"a": _f32(rng.uniform(-1, 1)), "b": _f32(rng.uniform(-1, 1)), "c": _f32(rng.uniform(-1, 1))}
    return Problem(
        "quad",
        "train",
        sizes,
        batch=batch,
        lr=_LEARNING_RATES["quad"],
        layers=[Quad()],
        cost="mse",
        input_shape=(),
        data={"x": _f32(x), "y": _f32(y)},
        init=init,
    )


def _mlp(sizes: dict[str, Any], rng: np.random.Generator) -> Problem:
    units, batch = list(sizes["units"]), int(sizes["batch"])
    layers = _mlp_layers(units)
    init = _init_dense_layers(rng, layers)
    x = _f32(rng.uniform(0, 1, (batch, units[0])))
    return Problem(
        "mlp",
        "train",
        sizes,
        batch=batch,
        lr=_LEARNING_RATES["mlp"],
        layers=layers,
        cost="xent",
        input_shape=(units[0],),
        data={"x": x, "y": _one_hot(rng, batch, units[-1])},
        init=init,
        flops_per_step=_dense_flops(batch, list(itertools.pairwise(units))),
    )


def _mlpbig(sizes: dict[str, Any], rng: np.random.Generator) -> Problem:
    units, batch = list(sizes["units"]), int(sizes["batch"])
    layers = _mlp_layers(units)
    init = _init_dense_layers(rng, layers)
    x = _f32(rng.normal(0, 1, (batch, units[0])))
    y = _f32(rng.normal(0, 1, (batch, units[-1])))
    return Problem(
        "mlpbig",
        "train",
        sizes,
        batch=batch,
        lr=_LEARNING_RATES["mlpbig"],
        layers=layers,
        cost="mse",
        input_shape=(units[0],),
        data={"x": x, "y": y},
        init=init,
        flops_per_step=_dense_flops(batch, list(itertools.pairwise(units))),
    )


def _cnn(sizes: dict[str, Any], rng: np.random.Generator) -> Problem:
    h, w, c = sizes["image"]
    c1, c2 = sizes["channels"]
    f, dense, classes, batch = (
        int(sizes["field"]),
        int(sizes["dense"]),
        int(sizes["classes"]),
        int(sizes["batch"]),
    )
    flat = (h // 4) * (w // 4) * c2
    layers: list[Layer] = [
        Conv("conv1", f, c, c1, relu=True),
        Pool(),
        Conv("conv2", f, c1, c2, relu=True),
        Pool(),
        Flatten(),
        Dense("dense1", flat, dense, relu=True),
        Dense("dense2", dense, classes, relu=False),
    ]
    init = _init_dense_layers(rng, layers)
    x = _f32(rng.uniform(0, 1, (batch, h, w, c)))
    # Forward, weight-gradient and (but for the first conv) input-gradient products, as for dense.
    conv_flops = (
        2 * 2.0 * batch * h * w * f * f * c * c1 + 3 * 2.0 * batch * (h // 2) * (w // 2) * f * f * c1 * c2
    )
    return Problem(
        "cnn",
        "train",
        sizes,
        batch=batch,
        lr=_LEARNING_RATES["cnn"],
        layers=layers,
        cost="xent",
        input_shape=(h, w, c),
        data={"x": x, "y": _one_hot(rng, batch, classes)},
        init=init,
        flops_per_step=conv_flops + 3 * 2.0 * batch * (flat * dense + dense * classes),
    )


def _matmul(sizes: dict[str, Any], rng: np.random.Generator) -> Problem:
    n = int(sizes["n"])
    a = _f32(rng.uniform(-1, 1, (n, n)))
    b = _f32(rng.uniform(-1, 1, (n, n)))
    return Problem("matmul", "op", sizes, data={"a": a, "b": b}, flops_per_step=2.0 * n**3)


def _elementwise(sizes: dict[str, Any], rng: np.random.Generator) -> Problem:
    n = int(sizes["n"])
    x = _f32(rng.uniform(-1, 1, n))
    y = _f32(rng.uniform(-1, 1, n))
    # relu reads x and writes r; add reads x and y and writes s: 5 float32 arrays of n.
    return Problem("elementwise", "op", sizes, data={"x": x, "y": y}, bytes_per_step=5 * 4.0 * n)
