"""SqueezeNet 1.1 against the float64 NumPy oracle (tests/models/oracle.py) on every backend, with
random weights written as a deeplearn.js checkpoint; its interface, errors and memory.

Tolerance: max |ours - oracle| <= 1e-5 x max |oracle logit| (float32 against float64; measured
about 5e-7 on the CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import deeplearn as dl
from deeplearn.models import ACTIVATION_NAMES, IMAGENET_CLASSES, SqueezeNet, model_util, squeezenet
from tests.models import oracle
from tests.models.conftest import image, relative_error

RTOL = 1e-5


def _array(math: dl.NDArrayMath, x: np.ndarray) -> dl.NDArray:
    return dl.NDArray.from_numpy(x, "float32", math=math)


@pytest.mark.parametrize("flavor", ["deeplearnjs", "torchvision"])
@pytest.mark.parametrize("size", [227, 224, 63, 31])
def test_logits_match_the_numpy_oracle(
    math: dl.NDArrayMath, squeezenet_folder: Path, squeezenet_weights: dict[str, np.ndarray], flavor: str, size: int
) -> None:
    """227 is deeplearn.js's size (ceil and floor pools differ at the 2nd and 3rd pool: 14x14 vs
    13x13 before the average), 224 torchvision's (they agree), 63 and 31 the small end."""
    net = SqueezeNet(math, flavor=flavor)  # type: ignore[arg-type]
    net.load(squeezenet_folder)
    x = image(np.random.default_rng(size), size, size)
    expected = oracle.squeezenet(squeezenet_weights, x.astype(np.float64), flavor)["logits"]
    logits = net.predict(_array(math, x))
    assert logits.shape == (1000,) and logits.dtype == "float32"
    assert relative_error(logits.get_values(), expected) <= RTOL
    net.dispose()


@pytest.mark.parametrize("flavor", ["deeplearnjs", "torchvision"])
def test_every_named_activation_matches_the_oracle(
    math: dl.NDArrayMath, squeezenet_weights: dict[str, np.ndarray], flavor: str
) -> None:
    net = SqueezeNet(math, flavor=flavor)  # type: ignore[arg-type]
    net.set_variables(squeezenet_weights)
    x = image(np.random.default_rng(7), 71, 67)  # not square: height and width are kept apart
    expected = oracle.squeezenet(squeezenet_weights, x.astype(np.float64), flavor)
    assert list(expected)[:-1] == list(ACTIVATION_NAMES)
    for name in ACTIVATION_NAMES:
        logits, activation = net.predict_with_activation(_array(math, x), name)  # type: ignore[arg-type]
        assert activation is not None and activation.shape == expected[name].shape, name
        assert relative_error(activation.get_values().reshape(activation.shape), expected[name]) <= RTOL, name
        assert relative_error(logits.get_values(), expected["logits"]) <= RTOL
    assert net.predict_with_activation(_array(math, x)).activation is None


def test_a_batch_gives_each_image_its_logits(math: dl.NDArrayMath, squeezenet_weights: dict[str, np.ndarray]) -> None:
    net = SqueezeNet(math)
    net.set_variables(squeezenet_weights)
    rng = np.random.default_rng(3)
    batch = np.stack([image(rng, 47, 47) for _ in range(3)])
    logits = net.predict(_array(math, batch))
    assert logits.shape == (3, 1000)
    for i in range(3):
        expected = oracle.squeezenet(squeezenet_weights, batch[i].astype(np.float64))["logits"]
        assert relative_error(logits.get_values().reshape(3, 1000)[i], expected) <= RTOL


def test_int32_pixels_are_read_as_numbers(math: dl.NDArrayMath, squeezenet_weights: dict[str, np.ndarray]) -> None:
    net = SqueezeNet(math)
    net.set_variables(squeezenet_weights)
    pixels = np.random.default_rng(4).integers(0, 256, (40, 40, 3))
    got = net.predict(dl.NDArray.from_numpy(pixels.astype(np.int32), "int32", math=math)).get_values()
    assert relative_error(got, oracle.squeezenet(squeezenet_weights, pixels.astype(np.float64))["logits"]) <= RTOL


def test_get_top_k_classes_is_the_softmax_top_k_with_imagenet_names(
    math: dl.NDArrayMath, squeezenet_weights: dict[str, np.ndarray]
) -> None:
    net = SqueezeNet(math)
    net.set_variables(squeezenet_weights)
    x = image(np.random.default_rng(5), 63, 63)
    logits = net.predict(_array(math, x))
    expected_logits = oracle.squeezenet(squeezenet_weights, x.astype(np.float64))["logits"]
    probabilities = np.exp(expected_logits - expected_logits.max())
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities)[:5]
    gaps = -np.diff(np.sort(expected_logits)[::-1][:6])
    assert gaps.min() > 10 * RTOL * np.abs(expected_logits).max(), "no near-ties in this top 5"
    top = net.get_top_k_classes(logits, 5)
    assert list(top) == [IMAGENET_CLASSES[i] for i in order]
    np.testing.assert_allclose(list(top.values()), probabilities[order], rtol=1e-4, atol=1e-6)
    assert net.get_top_k_classes(logits, 0) == {}


def test_top_k_classes_orders_ties_by_index_and_names_a_shared_name_once(math: dl.NDArrayMath) -> None:
    net = SqueezeNet(math)
    values = np.zeros(1000, np.float32)
    values[[517, 134]] = [5.0, 4.0]  # both are "crane": reported once, with the larger probability
    values[[10, 3]] = 2.0  # a tie: the lower index first
    top = net.get_top_k_classes(_array(math, values), 4)
    p = np.exp(values.astype(np.float64))
    p /= p.sum()
    assert list(top) == ["crane", IMAGENET_CLASSES[3], IMAGENET_CLASSES[10]]
    np.testing.assert_allclose(list(top.values()), p[[517, 3, 10]], rtol=1e-5)


def test_top_k_errors(math: dl.NDArrayMath) -> None:
    net = SqueezeNet(math)
    with pytest.raises(dl.ShapeError, match=r"logits must be \[1000\]"):
        net.get_top_k_classes(_array(math, np.zeros((2, 1000))), 3)
    with pytest.raises(ValueError, match=r"k must be an int in \[0, 1000\]; got k = 1001"):
        net.get_top_k_classes(_array(math, np.zeros(1000)), 1001)
    with pytest.raises(TypeError, match="logits must be an NDArray"):
        net.get_top_k_classes(np.zeros(1000), 3)  # type: ignore[arg-type]


def test_load_checks_the_checkpoint_and_loads_nothing_from_a_wrong_one(
    tmp_path: Path, squeezenet_weights: dict[str, np.ndarray], cpu_math: dl.NDArrayMath
) -> None:
    broken = dict(squeezenet_weights)
    del broken["fire5/expand3x3_b:0"]
    broken["fire2/squeeze1x1_W:0"] = np.zeros((1, 1, 64, 17), np.float32)
    broken["unused"] = np.zeros(2, np.float32)  # a checkpoint may hold more than the model reads
    dl.write_checkpoint(tmp_path, broken)
    net = SqueezeNet(cpu_math)
    before = cpu_math.get_num_arrays()
    with pytest.raises(ValueError, match=r"missing variables \['fire5/expand3x3_b:0'\]; wrong shapes "
                                         r"'fire2/squeeze1x1_W:0': \(1, 1, 64, 17\) \(expected \(1, 1, 64, 16\)\)"):
        net.load(tmp_path)
    assert not net.is_loaded and cpu_math.get_num_arrays() == before
    with pytest.raises(RuntimeError, match=r"SqueezeNet.predict_with_activation: the weights are not loaded; "
                                           r"call load\(\) first"):
        net.predict(_array(cpu_math, np.zeros((31, 31, 3))))


def test_set_variables_refuses_unknown_names(cpu_math: dl.NDArrayMath, squeezenet_weights: dict[str, np.ndarray]) -> None:
    net = SqueezeNet(cpu_math)
    with pytest.raises(ValueError, match=r"unexpected variables \['conv1_W'\]"):
        net.set_variables({**squeezenet_weights, "conv1_W": np.zeros(3)})
    assert not net.is_loaded


def test_a_checkpoint_with_other_classes_gives_that_many_logits(
    tmp_path: Path, squeezenet_weights: dict[str, np.ndarray], cpu_math: dl.NDArrayMath
) -> None:
    rng = np.random.default_rng(6)
    weights = {**squeezenet_weights, "conv10_W:0": rng.normal(0, 0.05, (1, 1, 512, 3)).astype(np.float32),
               "conv10_b:0": np.zeros(3, np.float32)}
    dl.write_checkpoint(tmp_path, weights)
    net = SqueezeNet(cpu_math, class_names=["cat", "dog", "bird"])
    net.load(tmp_path)
    x = image(rng, 40, 40)
    logits = net.predict(_array(cpu_math, x))
    assert net.num_classes == 3 and logits.shape == (3,)
    assert relative_error(logits.get_values(), oracle.squeezenet(weights, x.astype(np.float64))["logits"]) <= RTOL
    assert set(net.get_top_k_classes(logits, 3)) == {"cat", "dog", "bird"}


def test_input_and_argument_errors(cpu_math: dl.NDArrayMath, squeezenet_weights: dict[str, np.ndarray]) -> None:
    net = SqueezeNet(cpu_math)
    net.set_variables(squeezenet_weights)
    with pytest.raises(dl.ShapeError, match=r"input must be \[height, width, 3\] or \[batch, height, width, 3\]; "
                                            r"got input.shape=\(32, 32, 4\)"):
        net.predict(_array(cpu_math, np.zeros((32, 32, 4))))
    with pytest.raises(TypeError, match="input must be an NDArray; got ndarray"):
        net.predict(np.zeros((32, 32, 3)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="activation_name must be one of"):
        net.predict_with_activation(_array(cpu_math, np.zeros((32, 32, 3))), "pool1")  # type: ignore[arg-type]
    with pytest.raises(dl.ShapeError):  # too small for the three pools
        net.predict(_array(cpu_math, np.zeros((20, 20, 3))))
    with pytest.raises(ValueError, match="flavor must be 'deeplearnjs' or 'torchvision'"):
        SqueezeNet(cpu_math, flavor="keras")  # type: ignore[arg-type]


def test_predict_keeps_only_its_results_and_dispose_frees_the_weights(
    cpu_math: dl.NDArrayMath, squeezenet_folder: Path
) -> None:
    before = cpu_math.get_num_arrays()
    net = SqueezeNet(cpu_math)
    with cpu_math.scope():  # weights loaded inside a scope outlive it
        net.load(squeezenet_folder)
    loaded = cpu_math.get_num_arrays()
    assert loaded - before == len(squeezenet.variable_shapes())
    x = _array(cpu_math, np.zeros((40, 40, 3)))
    with cpu_math.scope():
        logits, activation = net.predict_with_activation(x, "fire3")
        assert cpu_math.get_num_arrays() == loaded + 3  # the image, the logits and the activation
        net.get_top_k_classes(logits, 5)
        assert cpu_math.get_num_arrays() == loaded + 3
    assert logits.is_disposed and activation is not None and activation.is_disposed
    assert cpu_math.get_num_arrays() == loaded + 1
    net.dispose()
    assert not net.is_loaded and cpu_math.get_num_arrays() == before + 1
    net.dispose()  # twice is harmless


def test_load_reads_deeplearn_js_zoo_by_default(monkeypatch: pytest.MonkeyPatch, cpu_math: dl.NDArrayMath,
                                                 squeezenet_folder: Path) -> None:
    """No network: the loader is given the folder instead, and the URL it was asked for is kept."""
    asked: list[str] = []
    real = model_util.CheckpointLoader

    def loader(url_path: str, math: dl.NDArrayMath, **kwargs: object) -> dl.CheckpointLoader:
        asked.append(url_path)
        return real(squeezenet_folder, math)

    monkeypatch.setattr(model_util, "CheckpointLoader", loader)
    net = SqueezeNet(cpu_math)
    net.load()
    assert asked == ["https://storage.googleapis.com/learnjs-data/checkpoint_zoo/squeezenet1_1/"]
    assert net.is_loaded


def test_max_pool_ceil_matches_the_oracle(math: dl.NDArrayMath) -> None:
    rng = np.random.default_rng(8)
    for h, w in [(4, 4), (5, 6), (56, 55), (27, 28), (3, 3), (2, 7)]:
        x = rng.normal(size=(h, w, 2))
        got = dl.models.max_pool_ceil(math, _array(math, x), 3, 2)
        expected = oracle.max_pool(x, 3, 2, ceil=True)
        assert got.shape == expected.shape, (h, w)
        np.testing.assert_allclose(got.get_values().reshape(got.shape), expected, rtol=1e-6)
    x = rng.normal(size=(2, 6, 6, 1))
    x[1, 5, 5, 0] = np.nan  # a NaN in the partial last window makes it NaN
    got = dl.models.max_pool_ceil(math, _array(math, x), 3, 2).get_values().reshape(2, 3, 3, 1)
    assert np.isnan(got[1, 2, 2, 0]) and not np.isnan(got[0]).any()
    np.testing.assert_allclose(got[0], oracle.max_pool(x[0], 3, 2, ceil=True), rtol=1e-6)
