"""What the models share: their variables, checks of their inputs, ceil-mode pooling and top-k classes.

deeplearn.js's models (``models/util.ts`` and each model's file) kept these inline; here they are
written once. Nothing here is a public model; ``top_k`` and ``max_pool_ceil`` are exported from
``deeplearn.models`` because users of the models need them too.
"""

from __future__ import annotations

import math as _math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from deeplearn.data.checkpoint import CheckpointLoader
from deeplearn.environment import ENV
from deeplearn.math.ndarray import NDArray
from deeplearn.math.ndarray_math import NDArrayMath
from deeplearn.types import DTypeError, Shape, ShapeError

__all__ = [
    "CHECKPOINT_ZOO",
    "ShapeRule",
    "check_image",
    "load_checkpoint_variables",
    "max_pool_ceil",
    "random_variables",
    "top_k",
    "top_k_classes",
    "variables_from_mapping",
]

CHECKPOINT_ZOO = "https://storage.googleapis.com/learnjs-data/checkpoint_zoo/"
"""Where deeplearn.js's models kept their weights (its ``GOOGLE_CLOUD_STORAGE_DIR``)."""

ShapeRule = Callable[[Mapping[str, Shape]], dict[str, Shape]]
"""Given the shapes a checkpoint or mapping offers, the shape each needed variable must have
(a rule may read the offered shapes, e.g. to take the number of classes from them)."""


def random_variables(shapes: Mapping[str, Shape], seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights of the given shapes, of a sensible scale: filters [fH, fW, in, out]
    He-normal (std sqrt(2 / (fH·fW·in)); depthwise: fH·fW), variances 1 and everything else of rank 1 zero. For
    trying a model without downloading its weights, and for tests.

    Example:
        >>> weights = random_variables({"w": (3, 3, 2, 4), "b": (4,)}, seed=1)
        >>> weights["w"].shape, weights["w"].dtype, weights["b"].tolist()
        ((3, 3, 2, 4), dtype('float32'), [0.0, 0.0, 0.0, 0.0])
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if len(shape) == 4:  # a depthwise filter [fH, fW, channels, 1] sees fH·fW inputs
            fan_in = shape[0] * shape[1] * (1 if name.endswith("depthwise_weights") else shape[2])
            values = rng.normal(0.0, (2.0 / max(1, fan_in)) ** 0.5, shape)
        else:
            values = np.full(shape, 1.0 if name.endswith(("moving_variance", "gamma")) else 0.0)
        out[name] = values.astype(np.float32)
    return out


def top_k(values: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest of ``values`` (flattened) in descending order, and their indices.

    Equal values come in index order (a stable sort, as deeplearn.js's ``model_util.topK``).

    Example:
        >>> values, indices = top_k(np.array([0.1, 0.5, 0.2, 0.5]), 3)
        >>> values.tolist(), indices.tolist()
        ([0.5, 0.5, 0.2], [1, 3, 2])
    """
    flat = np.asarray(values).reshape(-1)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= flat.size:
        raise ValueError(f"top_k: k must be an int in [0, {flat.size}]; got k = {k!r}.")
    order = np.argsort(-flat, kind="stable")[: int(k)]
    return flat[order], order.astype(np.int32)


def top_k_classes(
    math: NDArrayMath, logits: NDArray, k: int, class_names: Sequence[str], where: str
) -> dict[str, float]:
    """The ``k`` most probable classes of ``logits`` [num_classes]: {name: softmax probability},
    most probable first. A name that two classes share is reported once, with the larger
    probability (deeplearn.js's object kept the later, smaller one)."""
    if not isinstance(logits, NDArray):
        raise TypeError(f"{where}: logits must be an NDArray; got {type(logits).__name__}.")
    if logits.rank != 1 or logits.shape[0] != len(class_names):
        raise ShapeError(
            f"{where}: logits must be [{len(class_names)}], one per class; got logits.shape={logits.shape} "
            "(for a batch, pass one row: logits[i] of predict's [batch, classes] as math.slice2d(...))."
        )
    probabilities = math.scope(lambda: math.softmax(logits.as_type("float32")))
    try:
        values, indices = top_k(probabilities.get_values(), k)
    finally:
        probabilities.dispose()
    result: dict[str, float] = {}
    for value, index in zip(values.tolist(), indices.tolist(), strict=True):
        # deeplearn.js: its object kept a shared name's later (smaller) probability.
        result.setdefault(class_names[index], float(value))
    return result


def check_image(x: Any, where: str, *, batch: bool = True, channels: int = 3) -> None:
    """``x`` must be an NDArray [height, width, channels] (or, with ``batch``, [batch, height,
    width, channels]) of a numeric dtype."""
    if not isinstance(x, NDArray):
        raise TypeError(f"{where}: input must be an NDArray; got {type(x).__name__}.")
    ranks = (3, 4) if batch else (3,)
    if x.rank not in ranks or x.shape[-1] != channels:
        expected = f"[height, width, {channels}]" + (
            f" or [batch, height, width, {channels}]" if batch else ""
        )
        raise ShapeError(f"{where}: input must be {expected}; got input.shape={x.shape}.")
    if x.dtype == "bool":
        raise DTypeError(f"{where}: input must be numeric (pixel values); got input.dtype='bool'.")


def _shape_problems(offered: Mapping[str, Shape], expected: Mapping[str, Shape]) -> list[str]:
    missing = [name for name in expected if name not in offered]
    wrong = [
        f"{name!r}: {tuple(offered[name])} (expected {shape})"
        for name, shape in expected.items()
        if name in offered and tuple(offered[name]) != tuple(shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing variables {missing}")
    if wrong:
        problems.append("wrong shapes " + ", ".join(wrong))
    return problems


def load_checkpoint_variables(
    math: NDArrayMath,
    url_path: str | os.PathLike[str],
    rule: ShapeRule,
    where: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> dict[str, NDArray]:
    """The variables ``rule`` asks for, read from a deeplearn.js checkpoint (a folder or an
    http(s) URL, through ``CheckpointLoader``), as arrays owned by the caller (in no scope).

    The manifest is checked first, so a checkpoint of another model fails before anything is
    downloaded; variables the model does not use are not read."""
    loader = CheckpointLoader(url_path, math, cache_dir=cache_dir, progress=progress)
    manifest = loader.get_checkpoint_manifest()
    offered = {name: tuple(entry["shape"]) for name, entry in manifest.items()}
    expected = rule(offered)
    problems = _shape_problems(offered, expected)
    if problems:
        raise ValueError(
            f"{where}: the checkpoint at {os.fspath(url_path)!r} does not fit; got {'; '.join(problems)}."
        )
    with math.scope() as scope:
        variables = {name: loader.get_variable(name).as_type("float32") for name in expected}
        scope.keep(variables)
    return variables


def variables_from_mapping(
    math: NDArrayMath, values: Mapping[str, Any], rule: ShapeRule, where: str
) -> dict[str, NDArray]:
    """Copies of ``values`` ({name: NDArray or array-like}) as float32 arrays on ``math``'s
    backend, owned by the caller (in no scope). Every name ``rule`` asks for must be there with
    its shape, and no other name (a misspelt name is an error, not a silently unused array)."""
    if not isinstance(values, Mapping):
        raise TypeError(
            f"{where}: variables must be a mapping of name to array; got {type(values).__name__}."
        )
    hosts = {name: np.asarray(value, dtype=np.float32) for name, value in values.items()}
    expected = rule({name: host.shape for name, host in hosts.items()})
    problems = _shape_problems({name: host.shape for name, host in hosts.items()}, expected)
    unexpected = sorted(name for name in hosts if name not in expected)
    if unexpected:
        problems.append(f"unexpected variables {unexpected}")
    if problems:
        raise ValueError(f"{where}: the variables do not fit; got {'; '.join(problems)}.")
    with math.scope() as scope:
        variables = {name: NDArray.from_numpy(hosts[name], "float32", math=math) for name in expected}
        scope.keep(variables)
    return variables


def resolve_math(math: NDArrayMath | None) -> NDArrayMath:
    """``math``, or ``dl.ENV.math`` where it is None."""
    return ENV.math if math is None else math


def ceil_mode_padding(size: int, filter_size: int, stride: int) -> int:
    """The rows (or columns) ceil-mode pooling adds after ``size``: the last window may run past
    the edge, but must start inside the input (PyTorch's ``ceil_mode=True`` with no padding).

    Example:
        >>> ceil_mode_padding(56, 3, 2), ceil_mode_padding(55, 3, 2)
        (1, 0)
    """
    out = _math.ceil((size - filter_size) / stride) + 1
    if (out - 1) * stride >= size:
        out -= 1
    return max(0, (out - 1) * stride + filter_size - size)


def max_pool_ceil(math: NDArrayMath, x: NDArray, filter_size: int, stride: int) -> NDArray:
    """Max pooling with PyTorch's ``ceil_mode=True`` (and no padding): the output has
    ``ceil((in - f)/s) + 1`` rows and columns, a window running past the bottom or right edge
    taking the maximum of the cells it covers. Written as -inf rows and columns concatenated
    after the edge, then ``max_pool(..., 'valid')`` (a padded cell never wins; a NaN still
    makes its window NaN).

    Example:
        >>> x = Array3D.new([4, 4, 1], list(range(16)))
        >>> max_pool_ceil(math, x, 3, 2).get_values()  # 'valid' would give one window: [10.]
        array([10., 11., 14., 15.], dtype=float32)
    """
    rank = x.rank
    h_axis, w_axis = rank - 3, rank - 2
    pad_h = ceil_mode_padding(x.shape[h_axis], filter_size, stride)
    pad_w = ceil_mode_padding(x.shape[w_axis], filter_size, stride)

    def pooled() -> NDArray:
        y = x
        for axis, pad in ((h_axis, pad_h), (w_axis, pad_w)):
            if pad:
                shape = list(y.shape)
                shape[axis] = pad
                block = NDArray.make(shape, np.full(shape, -np.inf, np.float32), "float32", math=math)
                y = math.concat(y, block, axis)
        return math.max_pool(y, filter_size, stride, "valid")

    result: NDArray = math.scope(pooled)
    return result
