"""deeplearn.js's complementary-color-prediction demo in Python: a small network learns to predict
the complement of a color.

Run it with ``python demos/complementary_color_prediction/complementary_color_prediction.py``
(``--seed N`` repeats a run exactly, ``--batches N`` trains longer or shorter), or live in the
browser with ``./scripts/watch-demo demos/complementary_color_prediction``.

The data are generated: 100 000 random RGB colors, each with its complement computed as
deeplearn.js's demo computed it, the hue turned half way round the color wheel (180°) with the
saturation and the lightness kept. (In RGB that comes to max + min − each channel:
(200, 120, 40) → (40, 120, 200).) Channels are scaled from 0..255 to 0..1 for the network.

The network is the demo's: fully connected layers of 64, 32 and 16 ReLU units and a linear layer
of 3, trained with SGD on the mean squared cost in batches of 300, the learning rate lowered by
15% every so many batches. deeplearn.js started at 0.042 and lowered it every 42 batches for
4242 batches; starting at 0.5 and lowering it every 300 batches gets further in 2000.
"""

from __future__ import annotations

import argparse
import colorsys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import deeplearn as dl
from deeplearn import (
    CostReduction,
    FeedEntry,
    Graph,
    InCPUMemoryShuffledInputProviderBuilder,
    InOrderInputProvider,
    Session,
    SGDOptimizer,
    VarianceScalingInitializer,
)

__all__ = ["BATCH_SIZE", "EXAMPLES", "LEARNING_RATE", "NUM_BATCHES", "ComplementaryColorModel",
           "average_error", "complement", "complements", "main", "random_colors"]

EXAMPLES = 100_000          # generated training examples
BATCH_SIZE = 300
NUM_BATCHES = 2000
LEARNING_RATE = 0.5         # at the start; lowered by DECAY every DECAY_EVERY batches
DECAY = 0.85
DECAY_EVERY = 300
HIDDEN_LAYERS = (64, 32, 16)


def complement(rgb: Sequence[int]) -> list[int]:
    """The complementary color of ``rgb`` (three channels, 0 to 255): the same saturation and
    lightness, the hue turned by 180°.

    Example:
        >>> complement([255, 0, 0]), complement([200, 120, 40]), complement([128, 128, 128])
        ([0, 255, 255], [40, 120, 200], [128, 128, 128])
    """
    hue, lightness, saturation = colorsys.rgb_to_hls(*(c / 255 for c in rgb))
    turned = colorsys.hls_to_rgb((hue + 0.5) % 1.0, lightness, saturation)
    return [round(c * 255) for c in turned]


def complements(colors: Any) -> np.ndarray:
    """The complements of ``colors`` ([n, 3], 0..255), as an [n, 3] array."""
    return np.array([complement(c) for c in np.asarray(colors).tolist()])


def random_colors(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random RGB colors, [count, 3] whole numbers from 0 to 255."""
    return rng.integers(0, 256, size=(count, 3))


def to_network(colors: Any) -> np.ndarray:
    """Colors (0..255) as the network sees them: float32 from 0 to 1."""
    return np.asarray(colors, dtype=np.float32) / 255


def from_network(values: np.ndarray) -> np.ndarray:
    """The network's outputs as colors: whole numbers, clipped to 0..255 (NaN, from a network
    whose training blew up, becomes 0)."""
    return np.clip(np.rint(np.nan_to_num(values * 255)), 0, 255).astype(int)


def average_error(predicted: Any, truth: Any) -> float:
    """How far ``predicted`` colors are from ``truth``: the mean absolute difference per channel,
    on the 0..255 scale.

    Example:
        >>> average_error([[0, 250, 255]], complements([[255, 0, 0]]))
        1.6666666666666667
    """
    return float(np.abs(np.asarray(predicted) - np.asarray(truth)).mean())


class ComplementaryColorModel:
    """The graph, its Session, the generated data and the optimizer.

    Args:
        seed: seeds the data, the initial weights and the shuffling (None: a new run each time).
        learning_rate, batch_size, examples: as the module's constants unless changed.
        math: the NDArrayMath to run on (default ``dl.ENV.math``: the GPU when there is one).

    Example:
        >>> model = ComplementaryColorModel(seed=0, examples=1000)
        >>> costs = [model.train_batch(fetch_cost=True) for _ in range(3)]
        >>> model.predict([[255, 0, 0]]).shape
        (1, 3)
    """

    def __init__(self, seed: int | None = None, learning_rate: float = LEARNING_RATE, batch_size: int = BATCH_SIZE,
                 examples: int = EXAMPLES, math: dl.NDArrayMath | None = None) -> None:
        self.math = math or dl.ENV.math
        self.batch_size = batch_size
        self.initial_learning_rate = learning_rate
        self.batches_trained = 0
        rng = np.random.default_rng(seed)

        graph = Graph()
        # The input: a color's three channels; the target: its complement's.
        self.input_tensor = graph.placeholder("input RGB value", [3])
        self.target_tensor = graph.placeholder("output RGB value", [3])
        # Fully connected layers, each with fewer units than the one before; the last gives the
        # three channels of the predicted complement.
        weights = VarianceScalingInitializer(seed=int(rng.integers(2**32)))
        layer = self.input_tensor
        for i, units in enumerate(HIDDEN_LAYERS):
            layer = graph.layers.dense(f"fully_connected_{i}", layer, units, graph.relu, kernel_initializer=weights)
        self.prediction_tensor = graph.layers.dense(f"fully_connected_{len(HIDDEN_LAYERS)}", layer, 3,
                                                    kernel_initializer=weights)
        # We optimize using the mean squared cost.
        self.cost_tensor = graph.mean_squared_cost(self.target_tensor, self.prediction_tensor)
        self.session = Session(graph, self.math)

        # The training data: random colors and their complements, shuffled together.
        colors = random_colors(examples, rng)
        builder = InCPUMemoryShuffledInputProviderBuilder([to_network(colors), to_network(complements(colors))],
                                                          seed=int(rng.integers(2**32)))
        input_provider, target_provider = builder.get_input_providers()
        self.feed_entries = [FeedEntry(self.input_tensor, input_provider),
                             FeedEntry(self.target_tensor, target_provider)]
        self.optimizer = SGDOptimizer(learning_rate)

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next batch: lowered by 15% every DECAY_EVERY batches."""
        return self.initial_learning_rate * DECAY ** (self.batches_trained // DECAY_EVERY)

    def train_batch(self, fetch_cost: bool) -> float | None:
        """Trains one batch; returns its average cost when ``fetch_cost`` (reading it back from
        the GPU costs time, so most batches do not)."""
        self.optimizer.learning_rate = self.learning_rate
        with self.math.scope():
            cost = self.session.train(self.cost_tensor, self.feed_entries, self.batch_size, self.optimizer,
                                      CostReduction.MEAN if fetch_cost else CostReduction.NONE)
            self.batches_trained += 1
            return float(cost.get()) if fetch_cost else None

    def predict(self, colors: Any) -> np.ndarray:
        """The predicted complements of ``colors`` ([n, 3], 0..255), in one batched pass."""
        inputs = to_network(colors).reshape(-1, 3)
        # In order, so that the i-th result belongs to the i-th color.
        provider = InOrderInputProvider(inputs)
        try:
            with self.math.scope():
                out = self.session.eval_batch(self.prediction_tensor, [FeedEntry(self.input_tensor, provider)],
                                              len(inputs))
                return from_network(out.numpy())
        finally:
            provider.dispose()


def main(argv: list[str] | None = None, log: Callable[..., Any] = print) -> int:
    """Command line: trains, printing the cost every 100 batches, then a few predictions."""
    parser = argparse.ArgumentParser(description="A network learns to predict a color's complement.")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run exactly")
    parser.add_argument("--batches", type=int, default=NUM_BATCHES, help=f"batches to train (default {NUM_BATCHES})")
    args = parser.parse_args(argv)

    model = ComplementaryColorModel(seed=args.seed)
    for step in range(args.batches):
        # Read the cost back only every 100 batches.
        fetch = step % 100 == 99 or step == args.batches - 1
        cost = model.train_batch(fetch_cost=fetch)
        if fetch:
            log(f"batch {step + 1}: cost {cost:.6f}, learning rate {model.learning_rate:.4g}")

    test_colors = random_colors(1000, np.random.default_rng(12345))
    error = average_error(model.predict(test_colors), complements(test_colors))
    log(f"average error on 1000 new colors: {error:.1f} of 255")
    shown = [[255, 0, 0], [200, 120, 40], [42, 157, 143], [128, 128, 128]]
    for color, predicted in zip(shown, model.predict(shown).tolist(), strict=True):
        log(f"rgb{tuple(color)}: predicted rgb{tuple(predicted)}, true complement rgb{tuple(complement(color))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
