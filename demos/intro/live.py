"""The live run behind http://localhost:8080/demos/intro/: the code of deeplearn.js's
"Introduction and core concepts" tutorial, step by step, on ``dl.ENV.math``.

First the mean squared difference of two vectors with NDArrayMath (computed at once), then a small
Graph, ``output = multiplier · input`` with a random 1×3 ``multiplier``, trained with SGD on three
examples whose labels are 4/3 of the input's sum, and asked to predict for (0.1, 0.2, 0.3).

Events, in order: ``start``, ``backend``, ``mean_squared_difference``, ``graph``, ``data``, one
``batch`` per batch, possibly ``warning``, and ``done``.

Example:
    >>> events = []
    >>> run(parse_params({"seed": "1", "batches": "2", "delay_ms": "0"}), lambda e, p: events.append(e))
    >>> events[:3], events.count("batch"), events[-1]
    (['start', 'backend', 'mean_squared_difference'], 2, 'done')
"""

from __future__ import annotations

import math as pymath
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import deeplearn as dl
from deeplearn import Array1D, Array2D, Scalar
from demos.server import (
    CostWatch,
    backend_info,
    check_known,
    float_param,
    int_param,
    optional_int_param,
)

INPUTS = [[1.0, 2.0, 3.0], [10.0, 20.0, 30.0], [100.0, 200.0, 300.0]]
LABELS = [[4.0], [40.0], [400.0]]
TEST_INPUT = [0.1, 0.2, 0.3]
EXPECTED = 0.4  # every example has label = 4/3·sum(input), so (0.1, 0.2, 0.3) should give 0.4
MAX_TOTAL_DELAY_S = 4.0
MAX_VALUES = 16

PARAMS = frozenset({"learning_rate", "batches", "seed", "delay_ms", "a", "b"})


@dataclass(frozen=True)
class Params:
    """What the page may choose. Defaults are the tutorial's."""

    learning_rate: float = 1e-5
    batches: int = 10
    seed: int | None = None
    delay_ms: int = 200
    a: tuple[float, ...] = (1.0, 2.0, 3.0)
    b: tuple[float, ...] = (0.0, 2.0, 4.0)


def _vector(query: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    text = query.get(name)
    if text is None:
        return default
    rule = f"{name} must be numbers separated by commas, such as 1, 2, 3; got {text.strip()!r}."
    parts = [p for p in re.split(r"[,\s]+", text.strip().strip("[]")) if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(rule) from None
    if not values or not all(pymath.isfinite(v) for v in values):
        raise ValueError(rule)
    if len(values) > MAX_VALUES:
        raise ValueError(f"{name} may have at most {MAX_VALUES} values; got {len(values)}.")
    return values


def parse_params(query: Mapping[str, str]) -> Params:
    """Validates the page's query; raises ValueError with a message the page shows as it is.

    Example:
        >>> parse_params({"a": "1, 2", "b": "3 4"}).b
        (3.0, 4.0)
        >>> parse_params({"a": "1, 2", "b": "3"})
        Traceback (most recent call last):
        ...
        ValueError: a and b must have the same number of values; got 2 and 1.
    """
    check_known(query, PARAMS)
    a = _vector(query, "a", Params.a)
    b = _vector(query, "b", Params.b)
    if len(a) != len(b):
        raise ValueError(f"a and b must have the same number of values; got {len(a)} and {len(b)}.")
    return Params(
        learning_rate=float_param(query, "learning_rate", "Learning rate", 1e-5, low=0.0, high=1.0),
        batches=int_param(query, "batches", "Number of batches", 10, low=1, high=1000),
        seed=optional_int_param(query, "seed", "Seed", low=0, high=2**32 - 1),
        delay_ms=int_param(query, "delay_ms", "Delay between batches (ms)", 200, low=0, high=2000),
        a=a,
        b=b,
    )


def run(params: Params, emit: Callable[[str, Mapping[str, Any]], None]) -> None:
    """Runs the intro tutorial with ``params``, reporting each step through ``emit``."""
    seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**32)
    emit("start", {"params": {**asdict(params), "seed": seed, "batch_size": len(INPUTS)}})
    math = dl.ENV.math
    emit("backend", backend_info(math))

    with math.scope():
        # The mean squared difference of two vectors, computed right away.
        a = Array1D.new(list(params.a))
        b = Array1D.new(list(params.b))
        diff = math.subtract(a, b)
        squared = math.multiply(diff, diff)
        squared_diff_sum = math.sum(squared)
        size = Scalar.new(a.size)
        average = math.divide(squared_diff_sum, size)
        emit("mean_squared_difference", {
            "a": list(params.a), "b": list(params.b), "diff": diff.get_values().tolist(),
            "squared": squared.get_values().tolist(), "sum": float(squared_diff_sum.get()),
            "size": a.size, "average": float(average.get()),
        })

    # A graph: output = multiplier · input, with a random multiplier.
    g = dl.Graph()
    input_tensor = g.placeholder("input", [3])
    label_tensor = g.placeholder("label", [1])
    multiplier = g.variable("multiplier", Array2D.rand_normal([1, 3], seed=seed))
    output_tensor = g.matmul(multiplier, input_tensor)
    cost_tensor = g.mean_squared_cost(label_tensor, output_tensor)
    session = dl.Session(g, math)

    def weights() -> list[float]:
        return [float(v) for v in session.eval(multiplier, []).get_values().reshape(-1)]

    with math.scope():
        # Tensors, like NDArrays, have a shape, known before anything runs.
        emit("graph", {"multiplier": weights(), "input_shape": list(input_tensor.shape),
                       "output_shape": list(output_tensor.shape)})

        inputs = [Array1D.new(v) for v in INPUTS]
        labels = [Array1D.new(v) for v in LABELS]
        emit("data", {"inputs": INPUTS, "labels": [v[0] for v in LABELS]})
        # Shuffles inputs and labels and keeps them in sync.
        input_provider, label_provider = dl.InCPUMemoryShuffledInputProviderBuilder(
            [inputs, labels], seed=seed).get_input_providers()
        feed_entries = [{"tensor": input_tensor, "data": input_provider},
                        {"tensor": label_tensor, "data": label_provider}]
        optimizer = dl.SGDOptimizer(params.learning_rate)
        batch_size = len(inputs)
        delay = min(params.delay_ms / 1000.0, MAX_TOTAL_DELAY_S / params.batches)
        watch = CostWatch()
        for i in range(params.batches):
            with math.scope():
                # Trains one batch and returns its average cost.
                cost = float(session.train(cost_tensor, feed_entries, batch_size, optimizer,
                                           dl.CostReduction.MEAN).get())
                # What the model now answers for the first example, (1, 2, 3), whose label is 4.
                answer = session.eval(output_tensor, [{"tensor": input_tensor, "data": inputs[0]}])
                emit("batch", {"batch": i + 1, "batches": params.batches, "cost": cost, "multiplier": weights(),
                               "answer_for_first": float(answer.get(0))})
            if watch.blew_up(cost):
                emit("warning", {"message": (
                    f"The cost is growing instead of shrinking (batch {i + 1}: {cost:.4g}): the learning "
                    f"rate {params.learning_rate:g} is too big for inputs as large as 300. "
                    "Try a smaller one, such as 0.00001.")})
            if delay > 0 and i + 1 < params.batches:
                time.sleep(delay)

        # Predict: session.eval takes an NDArray as the input's data.
        test_output = session.eval(output_tensor, [{"tensor": input_tensor, "data": Array1D.new(TEST_INPUT)}])
        emit("done", {"multiplier": weights(), "test_input": TEST_INPUT, "shape": list(test_output.shape),
                      "output": float(test_output.get(0)), "expected": EXPECTED})
