"""The live run behind http://localhost:8080/demos/ml_beginners/: the seed tutorial's code
("Guide for non-ML experts"), step by step, on ``dl.ENV.math`` (the GPU when there is one).

The server (demos/server.py) calls :func:`parse_params` on the page's query string and
then :func:`run`, which reports each step through ``emit(event, payload)``; the page draws them.
The code is that of ``demos/ml_beginners/ml_beginners.py`` (the tutorial line for line), with the
``print`` calls replaced by events, a and b and c read after every batch, a pause between batches
so a person can watch, and the learning rate, number of batches and seed taken from the page
(tests/demos/test_demo_server.py checks that both give the same numbers).

Events, in order: ``start``, ``backend``, ``matrix_times_vector``, ``graph`` (the random a, b, c
and the inference at x = 4), ``data``, one ``batch`` per batch (its average cost and the new a, b,
c), possibly ``warning`` (the cost blew up), and ``done`` (the trained a, b, c and the result).

Example:
    >>> events = []
    >>> run(parse_params({"seed": "1", "batches": "3", "delay_ms": "0"}), lambda e, p: events.append(e))
    >>> events[:3], events.count("batch"), events[-1]
    (['start', 'backend', 'matrix_times_vector'], 3, 'done')
"""

from __future__ import annotations

import random
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

# The four labelled examples of the tutorial: y = 3x² + 2x + 1 plus a little noise.
XS = [0.0, 1.0, 2.0, 3.0]
YS = [1.1, 5.9, 16.8, 33.9]
EXPECTED = 57.0  # 3·4² + 2·4 + 1, "result should be ~57.0"
MAX_TOTAL_DELAY_S = 4.0  # pacing so a person can watch; never more than this for a whole run

PARAMS = frozenset({"learning_rate", "batches", "seed", "delay_ms"})


@dataclass(frozen=True)
class Params:
    """What the page may choose. Defaults are the tutorial's."""

    learning_rate: float = 0.01
    batches: int = 20
    seed: int | None = None
    delay_ms: int = 120


def parse_params(query: Mapping[str, str]) -> Params:
    """Validates the page's query; raises ValueError with a message the page shows as it is.

    Example:
        >>> parse_params({"learning_rate": "0.02", "batches": "5", "seed": "7"}).batches
        5
        >>> parse_params({"learning_rate": "abc"})
        Traceback (most recent call last):
        ...
        ValueError: Learning rate must be a number greater than 0 and at most 10; got 'abc'.
    """
    check_known(query, PARAMS)
    return Params(
        learning_rate=float_param(query, "learning_rate", "Learning rate", 0.01, low=0.0, high=10.0),
        batches=int_param(query, "batches", "Number of batches", 20, low=1, high=1000),
        seed=optional_int_param(query, "seed", "Seed", low=0, high=2**32 - 1),
        delay_ms=int_param(query, "delay_ms", "Delay between batches (ms)", 120, low=0, high=2000),
    )


def run(params: Params, emit: Callable[[str, Mapping[str, Any]], None]) -> None:
    """Runs the tutorial with ``params``, reporting each step through ``emit``."""
    seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)  # the tutorial's Math.random(), made reproducible by the seed
    emit("start", {"params": {**asdict(params), "seed": seed, "batch_size": len(XS)}})

    math = dl.ENV.math
    emit("backend", backend_info(math))

    with math.scope():
        # Forward mode: a matrix times a vector, computed right away.
        matrix_shape = [2, 3]  # 2 rows, 3 columns.
        matrix = Array2D.new(matrix_shape, [10, 20, 30, 40, 50, 60])
        vector = Array1D.new([0, 1, 2])
        result = math.matrix_times_vector(matrix, vector)
        emit("matrix_times_vector", {
            "matrix": _values(matrix).reshape(matrix_shape).tolist(),
            "vector": _values(vector).tolist(),
            "shape": list(result.shape),
            "result": _values(result).tolist(),
        })

    # The graph of y = a·x² + b·x + c, with a, b, c random to start with.
    graph = dl.Graph()
    x = graph.placeholder("x", [])
    a = graph.variable("a", Scalar.new(rng.random()))
    b = graph.variable("b", Scalar.new(rng.random()))
    c = graph.variable("c", Scalar.new(rng.random()))
    order2 = graph.multiply(a, graph.square(x))
    order1 = graph.multiply(b, x)
    y = graph.add(graph.add(order2, order1), c)
    y_label = graph.placeholder("y label", [])
    cost = graph.mean_squared_cost(y, y_label)
    session = dl.Session(graph, math)

    def coefficients() -> dict[str, float]:
        # A variable evaluates to its current value; no feed is needed.
        return {name: float(session.eval(t, []).get()) for name, t in (("a", a), ("b", b), ("c", c))}

    def infer_at_4() -> float:
        return float(session.eval(y, [{"tensor": x, "data": Scalar.new(4)}]).get())

    with math.scope():
        # Inference: a, b, c are random, so this is a guess.
        emit("graph", {**coefficients(), "x": 4, "inference": infer_at_4()})

        # Training on the four examples, shuffled.
        xs = [Scalar.new(v) for v in XS]
        ys = [Scalar.new(v) for v in YS]
        emit("data", {"xs": XS, "ys": YS, "truth": {"a": 3, "b": 2, "c": 1}})
        # When training, it's important to shuffle your data! (seeded too, so a run repeats exactly)
        builder = dl.InCPUMemoryShuffledInputProviderBuilder([xs, ys], seed=seed)
        x_provider, y_provider = builder.get_input_providers()
        batch_size = len(xs)
        optimizer = dl.SGDOptimizer(params.learning_rate)
        delay = min(params.delay_ms / 1000.0, MAX_TOTAL_DELAY_S / params.batches)
        watch = CostWatch()
        for i in range(params.batches):
            with math.scope():
                # Trains one batch; returns the batch's average cost.
                cost_value = session.train(
                    cost, [{"tensor": x, "data": x_provider}, {"tensor": y_label, "data": y_provider}],
                    batch_size, optimizer, dl.CostReduction.MEAN)
                batch_cost = float(cost_value.get())
                emit("batch", {"batch": i + 1, "batches": params.batches, "cost": batch_cost,
                               **coefficients(), "inference": infer_at_4()})
            if watch.blew_up(batch_cost):
                emit("warning", {"message": (
                    f"The cost is growing instead of shrinking (batch {i + 1}: {batch_cost:.4g}): "
                    f"the learning rate {params.learning_rate:g} is too big, so each step overshoots. "
                    "Try a smaller one, such as 0.01.")})
            if delay > 0 and i + 1 < params.batches:
                time.sleep(delay)

        # The trained model at x = 4 should give ~57.0.
        emit("done", {**coefficients(), "x": 4, "result": infer_at_4(), "expected": EXPECTED})


def _values(x: dl.NDArray) -> Any:
    return x.get_values()
