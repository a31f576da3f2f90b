"""deeplearn.js's other tutorial of the era, "Introduction and core concepts" (intro.md), as a script.

Run it with ``python examples/intro.py`` (``--seed N`` repeats a run exactly). It computes the mean
squared difference of two vectors with NDArrayMath, then trains a one-layer Graph,
``output = multiplier · input`` with a random 1×3 multiplier, on three examples whose labels are
4/3 of the sum of the input (SGD, learning rate 1e-5, 10 batches of 3), and evaluates it on
(0.1, 0.2, 0.3).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import deeplearn as dl
from deeplearn import (
    Array1D,
    Array2D,
    CostReduction,
    FeedEntry,
    Graph,
    InCPUMemoryShuffledInputProviderBuilder,
    Scalar,
    Session,
    SGDOptimizer,
)

__all__ = ["IntroResult", "main", "run_intro"]


@dataclass
class IntroResult:
    mean_squared_difference: float
    output_shape: tuple[int, ...]
    costs: list[float] = field(default_factory=list)
    test_output_shape: tuple[int, ...] = ()
    test_output: float = float("nan")


def run_intro(seed: int | None = None, log: Callable[..., Any] = print,
              math: dl.NDArrayMath | None = None) -> IntroResult:
    """Runs the tutorial's code, printing what it printed; returns the numbers.

    Example:
        >>> r = run_intro(seed=0, log=lambda *args: None)
        >>> r.mean_squared_difference, r.output_shape, len(r.costs)
        (0.6666666865348816, (1,), 10)
    """
    math = math or dl.ENV.math

    # NDArrayMath: operations run at once, on the GPU when there is one.
    a = Array1D.new([1.0, 2.0, 3.0], math=math)
    b = Array1D.new([0.0, 2.0, 4.0], math=math)
    with math.scope():
        diff = math.subtract(a, b)
        squared_diff = math.multiply(diff, diff)
        total = math.sum(squared_diff)
        size = Scalar.new(a.size, math=math)
        average = math.divide(total, size)
        log("mean squared difference: " + str(average.get()))
        msd = average.get()

    # A Graph: placeholders are input containers, variables hold what training updates.
    g = Graph()
    input_shape = [3]
    input_tensor = g.placeholder("input", input_shape)
    label_shape = [1]
    label_tensor = g.placeholder("label", label_shape)
    multiplier = g.variable("multiplier", Array2D.rand_normal([1, 3], seed=seed, math=math))
    # Top level graph methods take Tensors and return Tensors.
    output_tensor = g.matmul(multiplier, input_tensor)
    cost_tensor = g.mean_squared_cost(label_tensor, output_tensor)
    # Tensors, like NDArrays, have a shape attribute.
    log(output_tensor.shape)
    run = IntroResult(msd, output_tensor.shape)

    learning_rate = 0.00001
    batch_size = 3
    session = Session(g, math)
    optimizer = SGDOptimizer(learning_rate)

    inputs = [Array1D.new([1.0, 2.0, 3.0], math=math), Array1D.new([10.0, 20.0, 30.0], math=math),
              Array1D.new([100.0, 200.0, 300.0], math=math)]
    labels = [Array1D.new([4.0], math=math), Array1D.new([40.0], math=math), Array1D.new([400.0], math=math)]

    # Shuffles inputs and labels and keeps them mutually in sync.
    shuffled_input_provider_builder = InCPUMemoryShuffledInputProviderBuilder([inputs, labels], seed=seed)
    input_provider, label_provider = shuffled_input_provider_builder.get_input_providers()

    # Maps tensors to InputProviders.
    feed_entries = [FeedEntry(input_tensor, input_provider), FeedEntry(label_tensor, label_provider)]

    num_batches = 10
    for i in range(num_batches):
        # Wrap session.train in a scope so the cost gets cleaned up automatically.
        with math.scope():
            # Train takes a cost tensor to minimize. Trains one batch. Returns the average cost
            # as a Scalar.
            cost = session.train(cost_tensor, feed_entries, batch_size, optimizer, CostReduction.MEAN)
            log(f"last average cost ({i}): {cost.get()}")
            run.costs.append(cost.get())

    with math.scope():
        test_input = Array1D.new([0.1, 0.2, 0.3], math=math)
        test_output = session.eval(output_tensor, [FeedEntry(input_tensor, test_input)])
        log("---inference output---")
        log(f"shape: {list(test_output.shape)}")
        log(f"value: {test_output.get(0)}")
        run.test_output_shape, run.test_output = test_output.shape, test_output.get(0)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="deeplearn.js's intro tutorial, in Python.")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run exactly")
    args = parser.parse_args(argv)
    run_intro(args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
