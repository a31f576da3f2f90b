"""Random weights for the models, as deeplearn.js checkpoint folders (write_checkpoint), made
here with their own generator (not deeplearn.models.random_variables)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deeplearn import write_checkpoint
from deeplearn.models import mobilenet, squeezenet


def he_weights(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """Filters He-normal, biases and batch-norm offsets small normal, variances and scales
    positive: activations keep their scale through the layers, so the logits differ per image."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        if len(shape) == 4:
            fan_in = shape[0] * shape[1] * (1 if "depthwise" in name else shape[2])
            out[name] = rng.normal(0, np.sqrt(2 / fan_in), shape)
        elif name.endswith(("moving_variance", "gamma")):
            out[name] = rng.uniform(0.5, 1.5, shape)
        else:
            out[name] = rng.normal(0, 0.1, shape)
    return {name: value.astype(np.float32) for name, value in out.items()}


@pytest.fixture(scope="session")
def squeezenet_weights() -> dict[str, np.ndarray]:
    return he_weights(squeezenet.variable_shapes(), seed=1)


@pytest.fixture(scope="session")
def squeezenet_folder(tmp_path_factory: pytest.TempPathFactory, squeezenet_weights: dict[str, np.ndarray]) -> Path:
    folder = tmp_path_factory.mktemp("squeezenet1_1")
    write_checkpoint(folder, squeezenet_weights)
    return folder


@pytest.fixture(scope="session")
def mobilenet_weights() -> dict[str, np.ndarray]:
    return he_weights(mobilenet.variable_shapes(), seed=2)


@pytest.fixture(scope="session")
def mobilenet_folder(tmp_path_factory: pytest.TempPathFactory, mobilenet_weights: dict[str, np.ndarray]) -> Path:
    folder = tmp_path_factory.mktemp("mobilenet_v1_1.0_224")
    write_checkpoint(folder, mobilenet_weights)
    return folder


def image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Random pixel values 0-255, [height, width, 3]."""
    return rng.uniform(0, 255, (height, width, 3)).astype(np.float32)


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """max |got - expected| / max |expected|: the error relative to the logits' scale."""
    return float(np.abs(np.asarray(got, np.float64) - expected).max() / np.abs(expected).max())
