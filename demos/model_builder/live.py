"""The live run behind http://localhost:8080/demos/model_builder/: a model made of the page's layers
trains on the embedded MNIST sample with GraphRunner, on ``dl.ENV.math`` (the GPU when there is one).

The model, the data and the training are those of ``model_builder.py`` beside this file; this file
takes the layers, the optimizer and its hyperparameters, the batch size, the number of batches and
the seed from the page's query, and reports what GraphRunner's observer hears.

Two kinds of request:

* ``check=1``: the layers are checked (as every request's are, in :func:`parse_params`, whose
  ``ValueError`` the server answers with 400 and the message) and one ``model`` event gives every
  layer's output shape and the number of weights. Nothing trains. The page asks this as the layers
  are edited.
* otherwise a run: ``start``, ``backend``, ``model``, for a data set that is downloaded (full
  MNIST, Fashion-MNIST, CIFAR-10) ``download`` events (the file, its bytes so far and its size, the
  bytes so far of all the files and their total, about ten times a second; once each file when it
  is in the cache or the user's folder, ``$DEEPLEARN_DATASETS``), then ``data`` (the test images of the grid, their
  labels and the split), then as GraphRunner reports: ``progress`` (the batch, its average cost and
  examples per second, about four times a second) and ``accuracy`` (the share of the 1,000 held-out
  digits right and the predictions for the grid, about once a second), and ``done``. The page stops
  a run by closing the stream; ``resume=1`` then goes on from the weights (and the optimizer's state,
  when the optimizer is unchanged) where the last run stopped, if the layers and the seed are the
  same; the optimizer, its hyperparameters and the batch size may change in between.

Example:
    >>> events = []
    >>> run(parse_params({"layers": "flatten, dense:10", "batches": "3", "seed": "1"}),
    ...     lambda e, p: events.append(e))
    >>> [e for e in events if e not in ("progress", "accuracy")]
    ['start', 'backend', 'model', 'data', 'done']
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import deeplearn as dl
from deeplearn.data.download import DownloadError
from demos.model_builder import model_builder as mb
from demos.server import CostWatch, backend_info, check_known, float_param, int_param, optional_int_param

GRID_PER_DIGIT = 4  # the grid shows this many held-out images of each digit
DATASETS = {key: dataset.label for key, dataset in mb.DATASETS.items()}
MAX_TRAIN = 20_000  # of a full data set's training examples, the page trains on the first 20,000 ...
MAX_TEST = 1_000    # ... and measures the accuracy on the first 1,000 of its test examples

HYPERPARAMETERS = ("momentum", "gamma", "beta1", "beta2")
PARAMS = frozenset({"dataset", "layers", "optimizer", "learning_rate", *HYPERPARAMETERS,
                    "batch_size", "batches", "seed", "check", "resume"})


@dataclass(frozen=True)
class Params:
    """What the page may choose."""

    layers: str = mb.PRESETS[mb.DEFAULT_MODEL]   # normalised: the layers as parse_layers reads them back
    optimizer: str = mb.DEFAULT_OPTIMIZER
    learning_rate: float = mb.DEFAULT_LEARNING_RATES[mb.DEFAULT_OPTIMIZER]
    momentum: float = 0.9
    gamma: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    batch_size: int = mb.DEFAULT_BATCH_SIZE
    batches: int = 1500
    seed: int | None = None
    dataset: str = "mnist"
    check: bool = False
    resume: bool = False

    def hyperparameters(self) -> dict[str, float]:
        """The optimizer's own hyperparameters (those it takes besides the learning rate)."""
        return {name: getattr(self, name) for name, _, _ in mb.OPTIMIZERS[self.optimizer]}


def _flag(query: Mapping[str, str], name: str) -> bool:
    text = query.get(name, "0").strip()
    if text not in ("0", "1", ""):
        raise ValueError(f"{name} must be 0 or 1; got {text!r}.")
    return text == "1"


def _below_one(query: Mapping[str, str], name: str, label: str, default: float) -> float:
    """A decay rate or momentum: a number from 0 up to, not including, 1."""
    text = query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < 1:  # NaN fails too
        raise ValueError(f"{label} must be a number from 0 up to (not including) 1; got {text.strip()!r}.")
    return value


def parse_params(query: Mapping[str, str]) -> Params:
    """Validates the page's query, the layers included; raises ValueError with a message the page
    shows as it is.

    Example:
        >>> parse_params({"layers": "flatten,dense:10"}).layers
        'flatten, dense:10'
        >>> parse_params({"layers": "flatten, dense:12"})
        Traceback (most recent call last):
        ...
        ValueError: The last layer gives [12]; it must give [10], one score per digit. End with a flatten (if needed) and a dense:10 layer.
    """
    check_known(query, PARAMS)
    dataset = query.get("dataset", "mnist").strip() or "mnist"
    if dataset not in DATASETS:
        raise ValueError(f"Unknown data set {dataset!r}; this page has: {', '.join(DATASETS)}.")
    optimizer = query.get("optimizer", mb.DEFAULT_OPTIMIZER).strip().lower() or mb.DEFAULT_OPTIMIZER
    if optimizer not in mb.OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; the optimizers are {', '.join(mb.OPTIMIZERS)}.")
    text = query.get("layers", "").strip() or Params.layers
    try:
        layers = mb.parse_layers(text)
        mb.check_model(layers, mb.DATASETS[dataset].image_shape)
    except mb.ModelError as e:
        raise ValueError(str(e)) from None
    hyper = {name: _below_one(query, name, label, default)
             for name, (label, default) in {"momentum": ("Momentum", 0.9), "gamma": ("Decay (γ)", 0.9),
                                            "beta1": ("β1", 0.9), "beta2": ("β2", 0.999)}.items()}
    return Params(
        layers=", ".join(str(layer) for layer in layers),
        optimizer=optimizer,
        learning_rate=float_param(query, "learning_rate", "Learning rate",
                                  mb.DEFAULT_LEARNING_RATES[optimizer], low=0.0, high=1000.0),
        **hyper,
        batch_size=int_param(query, "batch_size", "Batch size", Params.batch_size, low=1, high=1000),
        batches=int_param(query, "batches", "Number of batches", Params.batches, low=1, high=100_000),
        seed=optional_int_param(query, "seed", "Seed", low=0, high=2**31 - 1),
        dataset=dataset,
        check=_flag(query, "check"),
        resume=_flag(query, "resume"),
    )


def model_summary(params: Params) -> dict[str, Any]:
    """Every layer with its output shape, and the number of weights (the ``model`` event).

    Example:
        >>> model_summary(parse_params({"layers": "flatten, dense:10"}))["layers"][1]
        {'spec': 'dense:10', 'kind': 'dense', 'args': [10], 'shape': [10]}
    """
    layers = mb.parse_layers(params.layers)
    image_shape = mb.DATASETS[params.dataset].image_shape
    shapes = mb.check_model(layers, image_shape)
    return {"input": list(image_shape), "parameters": mb.count_parameters(layers, image_shape),
            "layers": [{"spec": str(layer), "kind": layer.kind, "args": list(layer.args), "shape": list(shape.dims)}
                       for layer, shape in zip(layers, shapes, strict=True)]}


# What the last run left, so that the next may resume it (runs take turns: the server runs one at a time).
_last: dict[str, Any] = {}
_data: dict[str, mb.Data] = {}


def _load_data(key: str, emit: Callable[[str, Mapping[str, Any]], None]) -> mb.Data:
    """The data set, loaded once per server; a full one's files found or downloaded (``download``
    events), its first MAX_TRAIN training and MAX_TEST test examples kept."""
    if key not in _data:
        def on_progress(name: str, done: int, size: int, all_done: int, total: int) -> None:
            emit("download", {"dataset": DATASETS[key], "file": name, "done": done, "size": size,
                              "all_done": all_done, "total": total})

        _data[key] = mb.load_dataset(key, on_progress=on_progress, max_train=MAX_TRAIN, max_test=MAX_TEST)
    return _data[key]


def _grid(data: mb.Data) -> np.ndarray:
    """The held-out images the page shows: the first GRID_PER_DIGIT of each digit, digits interleaved."""
    picks = [np.flatnonzero(data.test_labels == d)[:GRID_PER_DIGIT] for d in range(mb.NUM_CLASSES)]
    return np.stack(picks, axis=1).reshape(-1)


def run(params: Params, emit: Callable[[str, Mapping[str, Any]], None]) -> None:
    """Checks the layers (``check``), or trains the model with ``params``, reporting through ``emit``."""
    summary = model_summary(params)
    if params.check:
        emit("model", summary)
        return
    seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**31)
    math = dl.ENV.math
    key = (params.dataset, params.layers, seed, id(math))
    optimizer_key = (params.optimizer, params.learning_rate, tuple(sorted(params.hyperparameters().items())))
    resumed = params.resume and _last.get("key") == key
    if not resumed:
        if _last.get("model") is not None:
            _last["model"].dispose()
        _last.clear()
    emit("start", {"params": {**asdict(params), "seed": seed}, "resumed": resumed,
                   "batches_before": _last["model"].batches_trained if resumed else 0})
    if params.resume and not resumed:
        emit("warning", {"message": "There was no stopped run of this model to resume (its layers or seed "
                                    "changed, or the server restarted): training starts from new weights."})
    emit("backend", backend_info(math))
    emit("model", summary)
    try:
        data = _load_data(params.dataset, emit)
    except (DownloadError, ValueError) as e:   # offline, or a file that is not the original: said, not a traceback
        emit("error", {"message": str(e)})
        return
    grid = _grid(data)
    pixels = (data.test_images[grid] * 255).round().astype(np.uint8)
    dataset = mb.DATASETS[params.dataset]
    emit("data", {"dataset": DATASETS[params.dataset], "train": len(data.train_labels),
                  "test": len(data.test_labels), "grid_labels": data.test_labels[grid].tolist(),
                  "grid_pixels": base64.b64encode(pixels.tobytes()).decode("ascii"),
                  "image_size": dataset.image_shape[0], "channels": dataset.image_shape[2],
                  "classes": list(dataset.classes)})

    if resumed:
        model: mb.Model = _last["model"]
    else:
        model = mb.Model(mb.parse_layers(params.layers), data, math, seed)
        _last.update(key=key, model=model)
    if resumed and _last.get("optimizer_key") == optimizer_key:
        optimizer = _last["optimizer"]
    else:
        optimizer = mb.make_optimizer(params.optimizer, params.learning_rate, **params.hyperparameters())
        _last.update(optimizer_key=optimizer_key, optimizer=optimizer)

    grid_images = data.test_images[grid]
    speed = {"seconds_per_example": 0.0, "batches": 0}
    watch = CostWatch()
    started = time.perf_counter()

    def on_speed(examples_per_sec: float) -> None:
        speed["seconds_per_example"] += 1 / examples_per_sec if examples_per_sec > 0 else 0.0
        speed["batches"] += 1

    def on_cost(cost: dl.Scalar) -> None:
        value = float(cost.get())
        per_example = speed["seconds_per_example"] / max(speed["batches"], 1)
        emit("progress", {"batch": model.batches_trained, "cost": value,
                          "examples_per_sec": 1 / per_example if per_example > 0 else None})
        speed.update(seconds_per_example=0.0, batches=0)
        if watch.blew_up(value):
            emit("warning", {"message": (
                f"The cost is growing instead of shrinking (batch {model.batches_trained}: {value:.4g}): the "
                f"learning rate {params.learning_rate:g} is too big for {params.optimizer}. Stop, lower it and "
                f"resume, or train again.")})

    def on_accuracy(accuracy: dl.NDArray) -> None:
        emit("accuracy", {"batch": model.batches_trained, "accuracy": 100 * float(accuracy.get()),
                          "predictions": model.predict(grid_images)})

    observer = dl.GraphRunnerEventObserver(avg_cost_callback=on_cost, metric_callback=on_accuracy,
                                           train_examples_per_sec_callback=on_speed)
    model.train(optimizer, params.batch_size, params.batches, observer)
    accuracy = model.accuracy()
    emit("done", {"batch": model.batches_trained, "accuracy": 100 * accuracy,
                  "predictions": model.predict(grid_images), "seconds": time.perf_counter() - started})
