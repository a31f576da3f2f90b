"""The live run behind http://localhost:8080/demos/complementary_color_prediction/: a network learns
to predict a color's complement, on ``dl.ENV.math`` (the GPU when there is one).

The server (demos/server.py) calls :func:`parse_params` on the page's query string and then
:func:`run`, which reports through ``emit(event, payload)``; the page draws it. The model, the
data and the training step are those of ``complementary_color_prediction.py`` beside this file (the
plain script); this file adds the reporting, a pause between reports so a person can watch, and
takes the learning rate, number of batches, batch size and seed from the page. (watch-demo
re-imports this file when it changes; after editing the script, restart watch-demo.)

Events, in order: ``start``, ``backend``, ``data`` (the colors shown and their true complements),
about a hundred ``batch`` events (the batch's cost, the learning rate, the predicted complements
of the colors shown, the average error on new colors), possibly ``warning`` (the cost blew up),
and ``done``.

Example:
    >>> events = []
    >>> run(parse_params({"seed": "1", "batches": "3", "delay_ms": "0"}), lambda e, p: events.append(e))
    >>> events[:3], events.count("batch"), events[-1]
    (['start', 'backend', 'data'], 3, 'done')
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import deeplearn as dl
from demos.complementary_color_prediction import complementary_color_prediction as model_code
from demos.server import (
    CostWatch,
    backend_info,
    check_known,
    float_param,
    int_param,
    optional_int_param,
)

# The colors whose predicted complements the page shows as the network learns.
SHOWN_COLORS = [[230, 57, 70], [255, 183, 3], [42, 157, 143], [69, 123, 157],
                [131, 56, 236], [106, 153, 78], [244, 162, 97], [128, 128, 128]]
TEST_COLORS = 500        # new colors (not trained on) for the average error
REPORTS = 100            # about this many updates of the page per run
MAX_TOTAL_DELAY_S = 5.0  # pacing so a person can watch; never more than this for a whole run
GOOD_ERROR = 10.0        # an average error below this (of 255) counts as learned

PARAMS = frozenset({"learning_rate", "batches", "batch_size", "seed", "delay_ms"})


@dataclass(frozen=True)
class Params:
    """What the page may choose. Defaults are the script's."""

    learning_rate: float = model_code.LEARNING_RATE
    batches: int = model_code.NUM_BATCHES
    batch_size: int = model_code.BATCH_SIZE
    seed: int | None = None
    delay_ms: int = 30


def parse_params(query: Mapping[str, str]) -> Params:
    """Validates the page's query; raises ValueError with a message the page shows as it is.

    Example:
        >>> parse_params({"learning_rate": "0.2", "batches": "500"}).batches
        500
        >>> parse_params({"batch_size": "0"})
        Traceback (most recent call last):
        ...
        ValueError: Batch size must be a whole number from 1 to 5000; got '0'.
    """
    check_known(query, PARAMS)
    return Params(
        learning_rate=float_param(query, "learning_rate", "Learning rate", Params.learning_rate, low=0.0, high=10.0),
        batches=int_param(query, "batches", "Number of batches", Params.batches, low=1, high=20_000),
        batch_size=int_param(query, "batch_size", "Batch size", Params.batch_size, low=1, high=5000),
        seed=optional_int_param(query, "seed", "Seed", low=0, high=2**32 - 1),
        delay_ms=int_param(query, "delay_ms", "Delay between updates (ms)", Params.delay_ms, low=0, high=2000),
    )


def run(params: Params, emit: Callable[[str, Mapping[str, Any]], None]) -> None:
    """Trains the model with ``params``, reporting through ``emit``."""
    seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**32)
    emit("start", {"params": {**asdict(params), "seed": seed, "examples": model_code.EXAMPLES}})
    math = dl.ENV.math
    emit("backend", backend_info(math))

    model = model_code.ComplementaryColorModel(seed=seed, learning_rate=params.learning_rate,
                                               batch_size=params.batch_size, math=math)
    # New colors, drawn apart from the training colors, for the average error.
    test_colors = model_code.random_colors(TEST_COLORS, np.random.default_rng([seed, 1]))
    test_truth = model_code.complements(test_colors)
    emit("data", {"colors": SHOWN_COLORS, "complements": model_code.complements(SHOWN_COLORS).tolist(),
                  "examples": model_code.EXAMPLES, "test_colors": TEST_COLORS})

    report_every = max(1, params.batches // REPORTS)
    reports = -(-params.batches // report_every)
    delay = min(params.delay_ms / 1000.0, MAX_TOTAL_DELAY_S / reports)
    watch = CostWatch()
    for i in range(params.batches):
        learning_rate = model.learning_rate
        # Only the batches that are reported read their cost back.
        report = (i + 1) % report_every == 0 or i + 1 == params.batches
        cost = model.train_batch(fetch_cost=report)
        if not report or cost is None:
            continue
        emit("batch", {"batch": i + 1, "batches": params.batches, "cost": cost, "learning_rate": learning_rate,
                       "predictions": model.predict(SHOWN_COLORS).tolist(),
                       "error": model_code.average_error(model.predict(test_colors), test_truth)})
        if watch.blew_up(cost):
            emit("warning", {"message": (
                f"The cost is growing instead of shrinking (batch {i + 1}: {cost:.4g}): the learning rate "
                f"{params.learning_rate:g} is too big, so each step overshoots. Try a smaller one, such as 0.5.")})
        if delay > 0 and i + 1 < params.batches:
            time.sleep(delay)

    error = model_code.average_error(model.predict(test_colors), test_truth)
    emit("done", {"predictions": model.predict(SHOWN_COLORS).tolist(), "error": error, "expected": 0,
                  "good_error": GOOD_ERROR})
