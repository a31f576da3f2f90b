"""MobileNet v1 against the float64 NumPy oracle (tests/models/oracle.py) on every backend, with
random weights (and batch-norm statistics) written as a deeplearn.js checkpoint.

Tolerance: max |ours - oracle| <= 1e-5 x max |oracle logit|."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import deeplearn as dl
from deeplearn.models import IMAGENET_CLASSES, MOBILENET_CLASSES, MobileNet, mobilenet
from tests.models import oracle
from tests.models.conftest import image, relative_error


@pytest.mark.parametrize("size", [224, 97, 32])
def test_logits_match_the_numpy_oracle(
    math: dl.NDArrayMath, mobilenet_folder: Path, mobilenet_weights: dict[str, np.ndarray], size: int
) -> None:
    net = MobileNet(math)
    net.load(mobilenet_folder)
    x = image(np.random.default_rng(size), size, size)
    logits = net.predict(dl.NDArray.from_numpy(x, "float32", math=math))
    assert logits.shape == (1001,)
    assert relative_error(logits.get_values(), oracle.mobilenet(mobilenet_weights, x.astype(np.float64))) <= 1e-5
    net.dispose()


def test_a_batch_gives_each_image_its_logits(math: dl.NDArrayMath, mobilenet_weights: dict[str, np.ndarray]) -> None:
    net = MobileNet(math)
    net.set_variables(mobilenet_weights)
    rng = np.random.default_rng(1)
    batch = np.stack([image(rng, 40, 56) for _ in range(2)])
    logits = net.predict(dl.NDArray.from_numpy(batch, "float32", math=math)).get_values().reshape(2, 1001)
    for i in range(2):
        assert relative_error(logits[i], oracle.mobilenet(mobilenet_weights, batch[i].astype(np.float64))) <= 1e-5


def test_top_k_classes_name_output_zero_background(math: dl.NDArrayMath) -> None:
    assert len(MOBILENET_CLASSES) == 1001 and MOBILENET_CLASSES[1:] == IMAGENET_CLASSES
    net = MobileNet(math)
    values = np.zeros(1001, np.float32)
    values[[0, 1, 1000]] = [3.0, 2.0, 1.0]
    top = net.get_top_k_classes(dl.NDArray.from_numpy(values, math=math), 3)
    p = np.exp(values.astype(np.float64))
    p /= p.sum()
    assert list(top) == ["background", "tench, Tinca tinca", IMAGENET_CLASSES[999]]
    np.testing.assert_allclose(list(top.values()), p[[0, 1, 1000]], rtol=1e-5)


def test_load_checks_names_and_shapes(tmp_path: Path, mobilenet_weights: dict[str, np.ndarray],
                                      cpu_math: dl.NDArrayMath) -> None:
    weights = {k: v for k, v in mobilenet_weights.items() if k != "MobilenetV1/Conv2d_7_pointwise/BatchNorm/gamma"}
    dl.write_checkpoint(tmp_path, weights)
    net = MobileNet(cpu_math)
    with pytest.raises(ValueError, match=r"MobileNet.load: .* missing variables "
                                         r"\['MobilenetV1/Conv2d_7_pointwise/BatchNorm/gamma'\]"):
        net.load(tmp_path)
    assert not net.is_loaded
    with pytest.raises(RuntimeError, match="call load"):
        net.predict(dl.NDArray.from_numpy(np.zeros((32, 32, 3)), math=cpu_math))


def test_memory_and_the_default_checkpoint(cpu_math: dl.NDArrayMath, mobilenet_weights: dict[str, np.ndarray]) -> None:
    assert MobileNet.CHECKPOINT_URL == "https://storage.googleapis.com/learnjs-data/checkpoint_zoo/mobilenet_v1_1.0_224/"
    before = cpu_math.get_num_arrays()
    net = MobileNet(cpu_math)
    net.set_variables(mobilenet_weights)
    assert cpu_math.get_num_arrays() == before + len(mobilenet.variable_shapes())
    x = dl.NDArray.from_numpy(np.zeros((32, 32, 3)), math=cpu_math)
    with cpu_math.scope():
        net.get_top_k_classes(net.predict(x), 5)
    net.dispose()
    x.dispose()
    assert cpu_math.get_num_arrays() == before
