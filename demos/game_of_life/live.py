"""The live run behind http://localhost:8080/demos/game_of_life/: a network learns Conway's Game of
Life from random boards and their next generation, on ``dl.ENV.math`` (the GPU when there is one).

The server (demos/server.py) calls :func:`parse_params` on the page's query string and then
:func:`run`, which reports through ``emit(event, payload)``; the page draws it. The model, the
data and the training step are those of ``game_of_life.py`` beside this file (the plain script);
this file adds the reporting, a pause between reports so a person can watch, and takes the board
size, learning rate, number of batches, batch size and seed from the page. (watch-demo re-imports
this file when it changes; after editing the script, restart watch-demo.)

Events, in order: ``start``, ``backend``, ``data`` (the boards shown and their next generation),
about a hundred ``batch`` events (the batch's cost, the share of cells and of whole boards the
network gets right on new boards, and its predictions for the boards shown), possibly ``warning``
(the cost blew up), and ``done``.

Example:
    >>> events = []
    >>> run(parse_params({"seed": "1", "batches": "3", "size": "4", "delay_ms": "0"}), lambda e, p: events.append(e))
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
from demos.game_of_life import game_of_life as model_code
from demos.server import (
    CostWatch,
    backend_info,
    check_known,
    float_param,
    int_param,
    optional_int_param,
)

SHOWN_BOARDS = 4         # boards whose predicted next generation the page shows
TEST_BOARDS = 500        # new boards (never trained on) for the accuracy
REPORTS = 100            # about this many updates of the page per run
MAX_TOTAL_DELAY_S = 5.0  # pacing so a person can watch; never more than this for a whole run

PARAMS = frozenset({"size", "learning_rate", "batches", "batch_size", "seed", "delay_ms"})


@dataclass(frozen=True)
class Params:
    """What the page may choose. Defaults are the script's."""

    size: int = model_code.BOARD_SIZE
    learning_rate: float = model_code.LEARNING_RATE
    batches: int = model_code.NUM_BATCHES
    batch_size: int = model_code.BATCH_SIZE
    seed: int | None = None
    delay_ms: int = 30


def parse_params(query: Mapping[str, str]) -> Params:
    """Validates the page's query; raises ValueError with a message the page shows as it is.

    Example:
        >>> parse_params({"size": "6", "batches": "500"}).size
        6
        >>> parse_params({"size": "2"})
        Traceback (most recent call last):
        ...
        ValueError: Board size must be a whole number from 3 to 16; got '2'.
    """
    check_known(query, PARAMS)
    return Params(
        size=int_param(query, "size", "Board size", Params.size, low=3, high=16),
        learning_rate=float_param(query, "learning_rate", "Learning rate", Params.learning_rate, low=0.0, high=10.0),
        batches=int_param(query, "batches", "Number of batches", Params.batches, low=1, high=20_000),
        batch_size=int_param(query, "batch_size", "Batch size", Params.batch_size, low=1, high=1000),
        seed=optional_int_param(query, "seed", "Seed", low=0, high=2**32 - 1),
        delay_ms=int_param(query, "delay_ms", "Delay between updates (ms)", Params.delay_ms, low=0, high=2000),
    )


def run(params: Params, emit: Callable[[str, Mapping[str, Any]], None]) -> None:
    """Trains the model with ``params``, reporting through ``emit``."""
    seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**32)
    emit("start", {"params": {**asdict(params), "seed": seed}})
    math = dl.ENV.math
    emit("backend", backend_info(math))

    model = model_code.GameOfLifeModel(size=params.size, seed=seed, learning_rate=params.learning_rate,
                                       batch_size=params.batch_size, math=math)
    # New boards, drawn apart from the training boards: the first few are shown on the page.
    test_boards = model_code.random_boards(TEST_BOARDS, params.size, np.random.default_rng([seed, 1]))
    test_next = model_code.next_generation(test_boards)
    shown = test_boards[:SHOWN_BOARDS]
    emit("data", {"size": params.size, "boards": shown.astype(int).tolist(),
                  "next": test_next[:SHOWN_BOARDS].astype(int).tolist(), "test_boards": TEST_BOARDS})

    def progress() -> dict[str, Any]:
        predicted = model.predict(test_boards)
        cells, boards = model_code.accuracy(predicted, test_next)
        return {"cells_right": 100 * cells, "boards_right": 100 * boards,
                "predictions": np.round(predicted[:SHOWN_BOARDS].astype(float), 3).tolist()}

    report_every = max(1, params.batches // REPORTS)
    reports = -(-params.batches // report_every)
    delay = min(params.delay_ms / 1000.0, MAX_TOTAL_DELAY_S / reports)
    watch = CostWatch()
    for i in range(params.batches):
        # Only the batches that are reported read their cost back.
        report = (i + 1) % report_every == 0 or i + 1 == params.batches
        cost = model.train_batch(fetch_cost=report)
        if not report or cost is None:
            continue
        emit("batch", {"batch": i + 1, "batches": params.batches, "cost": cost, **progress()})
        if watch.blew_up(cost):
            emit("warning", {"message": (
                f"The cost is growing instead of shrinking (batch {i + 1}: {cost:.4g}): the learning rate "
                f"{params.learning_rate:g} is too big, so each step overshoots. Try a smaller one, such as 0.03.")})
        if delay > 0 and i + 1 < params.batches:
            time.sleep(delay)

    emit("done", {**progress(), "expected": 100})
