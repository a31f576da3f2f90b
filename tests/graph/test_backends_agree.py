"""The same training gives the same numbers on the CPU and on the GPU (within float32 tolerance):
the digits classifier, trained from the same initial weights on the same batches."""

from __future__ import annotations

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import CostReduction, FeedEntry, Session
from deeplearn.math.backends import cuda_available
from tests.conftest import installed_math
from tests.graph.test_training import _digits, _digits_graph


def _train_digits(math: dl.NDArrayMath, steps: int) -> tuple[list[float], dict[str, np.ndarray], float]:
    with installed_math(math):  # the initializers allocate the variables on this backend
        x_train, y_train, x_test, y_test = _digits()
        g, x, label, cost, accuracy = _digits_graph()
        session = Session(g, math)
        builder = (dl.InGPUMemoryShuffledInputProviderBuilder if math.backend.name == "cuda"
                   else dl.InCPUMemoryShuffledInputProviderBuilder)
        xp, yp = builder([x_train, y_train], seed=0).get_input_providers()
        optimizer = dl.MomentumOptimizer(0.1, 0.9)
        costs = []
        for _ in range(steps):
            with math.scope():
                costs.append(session.train(cost, [FeedEntry(x, xp), FeedEntry(label, yp)], 32, optimizer,
                                           CostReduction.MEAN).get())
        tx, ty = builder([x_test, y_test], seed=0).get_input_providers()
        correct = session.eval_batch(accuracy, [FeedEntry(x, tx), FeedEntry(label, ty)], len(x_test))
        weights = {node.name: session.eval(node.output, []).numpy()
                   for node in g.get_nodes() if type(node).__name__ == "VariableNode"}
        return costs, weights, float(correct.get_values().mean())


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="compares the CUDA backend with the CPU: needs CuPy and a GPU")
def test_digits_classifier_trains_to_the_same_weights_on_cpu_and_gpu() -> None:
    cpu_costs, cpu_weights, cpu_accuracy = _train_digits(dl.NDArrayMathCPU(), 100)
    gpu_costs, gpu_weights, gpu_accuracy = _train_digits(dl.NDArrayMathGPU(), 100)
    np.testing.assert_allclose(gpu_costs, cpu_costs, rtol=1e-3, atol=1e-4)
    assert cpu_weights.keys() == gpu_weights.keys() and len(cpu_weights) == 4
    for name, w in cpu_weights.items():
        np.testing.assert_allclose(gpu_weights[name], w, rtol=1e-3, atol=1e-4, err_msg=name)
    assert gpu_accuracy == pytest.approx(cpu_accuracy, abs=0.01) and cpu_accuracy > 0.85
