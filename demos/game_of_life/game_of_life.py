"""deeplearn.js's game_of_life demo in Python: a network learns Conway's Game of Life from examples.

Run it with ``python demos/game_of_life/game_of_life.py`` (``--seed N`` repeats a run exactly,
``--batches N`` trains longer or shorter), or live in the browser with
``./scripts/watch-demo demos/game_of_life``.

The data are generated: random boards (each cell alive with probability 1/2) and their next
generation by Conway's rule, where a cell is alive in the next generation when it has exactly 3
live neighbours, or when it is alive and has 2; cells beyond the edge of the board count as dead.
Every batch is a fresh set of boards, so the network cannot learn the boards by heart, only the
rule.

The network looks at each cell's 3×3 neighbourhood, which is all the rule looks at: a 3×3
convolution with 8 filters, a 1×1 convolution with 8 (both ReLU), and a 1×1 convolution with one
output whose sigmoid is the predicted chance that the cell is alive. It is trained with Adam on the
log loss (binary cross-entropy), as deeplearn.js's demo was. (That demo used fully connected
layers over the whole board, which learn the rule far more slowly; convolutions also work on a
board of any size.)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

import deeplearn as dl
from deeplearn import (
    AdamOptimizer,
    CostReduction,
    FeedEntry,
    Graph,
    InCPUMemoryShuffledInputProviderBuilder,
    InOrderInputProvider,
    NDArray,
    Session,
    Tensor,
    VarianceScalingInitializer,
)

__all__ = ["BATCH_SIZE", "BOARD_SIZE", "FILTERS", "LEARNING_RATE", "NUM_BATCHES", "GameOfLifeModel",
           "accuracy", "main", "next_generation", "random_boards"]

BOARD_SIZE = 8
BATCH_SIZE = 32
NUM_BATCHES = 1500
LEARNING_RATE = 0.03
FILTERS = 8


def next_generation(boards: np.ndarray) -> np.ndarray:
    """Conway's rule applied once to each of ``boards`` ([n, rows, cols] of 0 and 1); cells beyond
    the edge are dead.

    Example:
        >>> blinker = np.array([[[0, 0, 0], [1, 1, 1], [0, 0, 0]]])
        >>> next_generation(blinker)[0].astype(int).tolist()
        [[0, 1, 0], [0, 1, 0], [0, 1, 0]]
    """
    rows, cols = boards.shape[1:]
    padded = np.pad(boards, ((0, 0), (1, 1), (1, 1)))
    # Each cell's live neighbours: the board shifted one step in each of the 8 directions, summed.
    neighbours = sum(padded[:, 1 + dy:1 + dy + rows, 1 + dx:1 + dx + cols]
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
    born = neighbours == 3
    survives = (boards == 1) & (neighbours == 2)
    return (born | survives).astype(np.float32)


def random_boards(count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random size × size boards, each cell alive (1) with probability 1/2."""
    return rng.integers(0, 2, size=(count, size, size)).astype(np.float32)


def accuracy(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """The share of cells the prediction gets right (a chance above 1/2 counts as alive), and the
    share of boards it gets entirely right.

    Example:
        >>> accuracy(np.array([[[0.9, 0.2]], [[0.6, 0.7]]]), np.array([[[1, 0]], [[1, 0]]]))
        (0.75, 0.5)
    """
    right = (predicted > 0.5) == (truth > 0.5)
    return float(right.mean()), float(right.reshape(len(right), -1).all(axis=1).mean())


class GameOfLifeModel:
    """The graph, its Session and the optimizer, for boards of ``size`` × ``size``.

    Args:
        size: the board's side.
        seed: seeds the boards and the initial weights (None: a new run each time).
        learning_rate, batch_size, filters: as the module's constants unless changed.
        math: the NDArrayMath to run on (default ``dl.ENV.math``: the GPU when there is one).

    Example:
        >>> model = GameOfLifeModel(size=5, seed=0)
        >>> cost = model.train_batch(fetch_cost=True)
        >>> model.predict(random_boards(2, 5, np.random.default_rng(0))).shape
        (2, 5, 5)
    """

    def __init__(self, size: int = BOARD_SIZE, seed: int | None = None, learning_rate: float = LEARNING_RATE,
                 batch_size: int = BATCH_SIZE, filters: int = FILTERS, math: dl.NDArrayMath | None = None) -> None:
        self.math = math or dl.ENV.math
        self.size = size
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.batches_trained = 0

        graph = Graph()
        # A board, and the next generation to learn: [rows, cols, 1] (one channel: alive or not).
        self.board_tensor = graph.placeholder("board", [size, size, 1])
        self.target_tensor = graph.placeholder("next generation", [size, size, 1])
        init = VarianceScalingInitializer(seed=int(self.rng.integers(2**32)))

        def conv(name: str, x: Tensor, field_size: int, depth: int) -> Tensor:
            # Weights [field, field, in depth, out depth] and a bias per output; the padding keeps
            # the board's size, and counts what lies beyond the edge as dead (zero).
            w = graph.variable(f"{name}-weights", init.initialize([field_size, field_size, x.shape[2], depth],
                                                                  field_size * field_size * x.shape[2], depth))
            b = graph.variable(f"{name}-bias", NDArray.zeros([depth]))
            return graph.conv2d(x, w, b, field_size, depth)

        hidden = graph.relu(conv("neighbourhood", self.board_tensor, 3, filters))
        hidden = graph.relu(conv("hidden", hidden, 1, filters))
        self.prediction_tensor = graph.sigmoid(conv("alive", hidden, 1, 1))
        self.cost_tensor = self.log_loss(graph, self.target_tensor, self.prediction_tensor)
        self.session = Session(graph, self.math)
        self.optimizer = AdamOptimizer(learning_rate, 0.9, 0.999)

    @staticmethod
    def log_loss(graph: Graph, label: Tensor, prediction: Tensor) -> Tensor:
        """The mean over the cells of −(y·log(p + ε) + (1 − y)·log(1 − p + ε)), ε = 1e-7."""
        epsilon = graph.constant(1e-7)
        one = graph.constant(1.0)
        alive = graph.multiply(label, graph.log(graph.add(prediction, epsilon)))
        dead = graph.multiply(graph.subtract(one, label), graph.log(graph.add(graph.subtract(one, prediction), epsilon)))
        total = graph.reduce_sum(graph.add(alive, dead))
        return graph.divide(total, graph.constant(-float(label.size)))

    def train_batch(self, fetch_cost: bool) -> float | None:
        """Trains one batch of fresh random boards; returns its average cost when ``fetch_cost``
        (reading it back from the GPU costs time, so most batches do not)."""
        boards = random_boards(self.batch_size, self.size, self.rng)
        builder = InCPUMemoryShuffledInputProviderBuilder([boards[..., None], next_generation(boards)[..., None]],
                                                          seed=int(self.rng.integers(2**32)))
        board_provider, target_provider = builder.get_input_providers()
        feeds = [FeedEntry(self.board_tensor, board_provider), FeedEntry(self.target_tensor, target_provider)]
        with self.math.scope():
            cost = self.session.train(self.cost_tensor, feeds, self.batch_size, self.optimizer,
                                      CostReduction.MEAN if fetch_cost else CostReduction.NONE)
            self.batches_trained += 1
            return float(cost.get()) if fetch_cost else None

    def predict(self, boards: np.ndarray) -> np.ndarray:
        """The predicted chance that each cell of each of ``boards`` is alive in the next
        generation ([n, size, size]), in one batched pass."""
        # In order, so that the i-th result belongs to the i-th board.
        provider = InOrderInputProvider(np.asarray(boards, np.float32)[..., None])
        try:
            with self.math.scope():
                out = self.session.eval_batch(self.prediction_tensor, [FeedEntry(self.board_tensor, provider)],
                                              len(boards))
                return out.numpy().reshape(boards.shape)
        finally:
            provider.dispose()


def main(argv: list[str] | None = None, log: Callable[..., Any] = print) -> int:
    """Command line: trains, printing the cost and the accuracy on 500 new boards every 100 batches."""
    parser = argparse.ArgumentParser(description="A network learns Conway's Game of Life.")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run exactly")
    parser.add_argument("--batches", type=int, default=NUM_BATCHES, help=f"batches to train (default {NUM_BATCHES})")
    parser.add_argument("--size", type=int, default=BOARD_SIZE, help=f"the board's side (default {BOARD_SIZE})")
    args = parser.parse_args(argv)

    model = GameOfLifeModel(size=args.size, seed=args.seed)
    test_boards = random_boards(500, args.size, np.random.default_rng(12345))
    test_next = next_generation(test_boards)
    for step in range(args.batches):
        # Read the cost back only every 100 batches.
        fetch = step % 100 == 99 or step == args.batches - 1
        cost = model.train_batch(fetch_cost=fetch)
        if fetch:
            cells, boards = accuracy(model.predict(test_boards), test_next)
            log(f"batch {step + 1}: cost {cost:.4f}, on 500 new boards {100 * cells:.1f}% of the cells "
                f"and {100 * boards:.1f}% of the boards right")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
