"""The code of the seed tutorial, deeplearn.js's "Guide for non-ML experts", line for line in Python.

Run it with ``python demos/ml_beginners/ml_beginners.py`` (add ``--seed N`` to repeat a run
exactly), or live in the browser with ``./scripts/watch-demo demos/ml_beginners``.

It computes a matrix times a vector with NDArrayMath, then builds a Graph of the quadratic
y = a·x² + b·x + c with random a, b, c, infers y at x = 4, trains a, b, c on four noisy examples
of y = 3x² + 2x + 1 with SGD (20 batches of 4, learning rate 0.01), printing the average cost of
each batch, and infers y at x = 4 again: "result should be ~57.0".

``run_tutorial`` does all of that and returns the numbers, so tests and the live page can reuse it.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import deeplearn as dl
from deeplearn import (
    Array1D,
    Array2D,
    CostReduction,
    Graph,
    InCPUMemoryShuffledInputProviderBuilder,
    NDArray,
    Scalar,
    Session,
    SGDOptimizer,
    Tensor,
)

__all__ = ["LEARNING_RATE", "NUM_BATCHES", "XS", "YS", "TutorialResult", "main", "run_tutorial"]

# The values given here are for values a = 3, b = 2, c = 1, with random noise added to the
# output so it's not a perfect fit.
XS = [0, 1, 2, 3]
YS = [1.1, 5.9, 16.8, 33.9]
NUM_BATCHES = 20
LEARNING_RATE = 0.01


@dataclass
class TutorialResult:
    """The numbers one run of the tutorial printed."""

    matrix_times_vector_shape: tuple[int, ...]
    matrix_times_vector: list[float]
    initial: dict[str, float]  # the random a, b, c
    initial_result: float  # y at x = 4 before training
    costs: list[float] = field(default_factory=list)  # the average cost of each batch
    final: dict[str, float] = field(default_factory=dict)  # a, b, c after training
    result: float = float("nan")  # y at x = 4 after training, ~57.0


def run_tutorial(seed: int | None = None, log: Callable[..., Any] = print, math: dl.NDArrayMath | None = None,
                 num_batches: int = NUM_BATCHES, learning_rate: float = LEARNING_RATE) -> TutorialResult:
    """Runs the tutorial, printing through ``log`` what the original printed to the console.

    Args:
        seed: seeds the random a, b, c and the shuffling (None: different every run, as the
            original's Math.random()).
        log: called like ``print`` for every line of output.
        math: the NDArrayMath to use (default ``dl.ENV.math``: the GPU when there is one).
        num_batches, learning_rate: the tutorial's 20 and 0.01 unless changed.

    Example:
        >>> r = run_tutorial(seed=0, log=lambda *args: None)
        >>> len(r.costs), abs(r.result - 57.0) < 1.0
        (20, True)
    """
    rng = random.Random(seed)  # Math.random()
    math = math or dl.ENV.math

    # Forward mode inference / numeric computation: a matrix times a vector.
    matrix_shape = [2, 3]  # 2 rows, 3 columns.
    matrix = Array2D.new(matrix_shape, [10, 20, 30, 40, 50, 60], math=math)
    vector = Array1D.new([0, 1, 2], math=math)
    result: NDArray = math.matrix_times_vector(matrix, vector)

    log("result shape:", result.shape)
    log("result", result.get_values())
    run = TutorialResult(tuple(result.shape), result.get_values().tolist(), {}, float("nan"))

    # Training: delayed execution, Graphs, and Sessions.
    graph = Graph()
    # Make a new input in the graph, called 'x', with shape [] (a Scalar).
    x: Tensor = graph.placeholder("x", [])
    # Make new variables in the graph, 'a', 'b', 'c' with shape [] and random initial values.
    a: Tensor = graph.variable("a", Scalar.new(rng.random(), math=math))
    b: Tensor = graph.variable("b", Scalar.new(rng.random(), math=math))
    c: Tensor = graph.variable("c", Scalar.new(rng.random(), math=math))
    # Make new tensors representing the output of the operations of the quadratic.
    order2: Tensor = graph.multiply(a, graph.square(x))
    order1: Tensor = graph.multiply(b, x)
    y: Tensor = graph.add(graph.add(order2, order1), c)

    # When training, we need to provide a label and a cost function.
    y_label: Tensor = graph.placeholder("y label", [])
    # Provide a mean squared cost function for training. cost = (y - yLabel)^2
    cost: Tensor = graph.mean_squared_cost(y, y_label)

    # At this point the graph is set up, but has not yet been evaluated.
    # **deeplearn** needs a Session object to evaluate a graph.
    session = Session(graph, math)

    def coefficients() -> dict[str, float]:
        return {name: session.eval(t).get() for name, t in (("a", a), ("b", b), ("c", c))}

    # For more information on scope / track, see deeplearn.js's tutorial on performance: every
    # NDArray made inside the scope is freed when it ends.
    with math.scope():
        # Inference
        # Now we ask the graph to evaluate (infer) and give us the result when providing a value
        # 4 for "x".
        # NOTE: "a", "b", and "c" are randomly initialized, so this will give us something random.
        result = session.eval(y, [{"tensor": x, "data": Scalar.new(4, math=math)}])
        log("result", result.get_values())
        run.initial, run.initial_result = coefficients(), result.get()

        # Training
        # Now let's learn the coefficients of this quadratic given some data.
        # To do this, we need to provide examples of x and y.
        # The values given here are for values a = 3, b = 2, c = 1, with random noise added to
        # the output so it's not a perfect fit.
        xs: list[Scalar] = [Scalar.new(v, math=math) for v in XS]
        ys: list[Scalar] = [Scalar.new(v, math=math) for v in YS]
        # When training, it's important to shuffle your data!
        shuffled_input_provider_builder = InCPUMemoryShuffledInputProviderBuilder([xs, ys], seed=rng.randrange(2**32))
        x_provider, y_provider = shuffled_input_provider_builder.get_input_providers()

        # Training is broken up into batches.
        batch_size = len(xs)
        # Before we start training, we need to provide an optimizer. This is the object that is
        # responsible for updating weights. The learning rate param is a value that represents
        # how large of a step to make when updating weights. If this is too big, you may
        # overstep and oscillate. If it is too small, the model may take a long time to train.
        optimizer = SGDOptimizer(learning_rate)
        for _ in range(num_batches):
            # Train takes a cost tensor to minimize; this call trains one batch and returns the
            # average cost of the batch as a Scalar.
            cost_value = session.train(
                cost,
                # Map input providers to Tensors on the graph.
                [{"tensor": x, "data": x_provider}, {"tensor": y_label, "data": y_provider}],
                batch_size, optimizer, CostReduction.MEAN)

            log("average cost: " + str(cost_value.get()))
            run.costs.append(cost_value.get())

        # Now print the value from the trained model for x = 4, should be ~57.0.
        result = session.eval(y, [{"tensor": x, "data": Scalar.new(4, math=math)}])
        log("result should be ~57.0:")
        log(result.get_values())
        run.final, run.result = coefficients(), result.get()
    return run


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python demos/ml_beginners/ml_beginners.py [--seed N]``."""
    parser = argparse.ArgumentParser(description="The seed tutorial of deeplearn.js, in Python.")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run exactly")
    args = parser.parse_args(argv)
    run_tutorial(args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
