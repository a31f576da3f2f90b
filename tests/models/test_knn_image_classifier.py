"""The KNN image classifier against a NumPy oracle: the oracle's SqueezeNet logits of each image
(tests/models/oracle.py, float64), normalised to unit length; cosine similarities as their dot
products; the k most similar examples (the earlier-added first among equals) vote.

Tolerance: similarities within 1e-5 (they are cosines, at most 1); votes exactly equal, on data
whose k-th and (k+1)-th similarities are at least 1e-3 apart (checked), with mixed votes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import deeplearn as dl
from deeplearn.models import ClassPrediction, KNNImageClassifier, SqueezeNet
from tests.models import oracle
from tests.models.conftest import image

SIZE = 40


def _unit_logits(weights: dict[str, np.ndarray], pixels: np.ndarray) -> np.ndarray:
    logits = oracle.squeezenet(weights, pixels.astype(np.float64))["logits"]
    return logits / np.linalg.norm(logits)


def _oracle_vote(similarities: np.ndarray, counts: list[int], k: int) -> tuple[int, list[float]]:
    k = min(k, len(similarities))
    nearest = sorted(range(len(similarities)), key=lambda i: (-similarities[i], i))[:k]
    owner = np.repeat(np.arange(len(counts)), counts)  # the class of each stored example, in order
    votes = np.bincount(owner[nearest], minlength=len(counts))
    confidences = [float(v) / k for v in votes]
    best = int(np.argmax(votes))  # the first class among equals
    return best, confidences


def _images(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # Three looks: dark, bright and striped images, so that classes differ and examples vary.
    looks = [lambda: image(rng, SIZE, SIZE) * 0.3, lambda: 255 - image(rng, SIZE, SIZE) * 0.3,
             lambda: np.where(np.arange(SIZE)[:, None, None] % 8 < 4, 255.0, 0.0) * np.ones((SIZE, SIZE, 3))
             + image(rng, SIZE, SIZE) * 0.2]
    return [looks[i % 3]().astype(np.float32) for i in range(n)]


def test_predict_and_predict_class_match_the_oracle(
    math: dl.NDArrayMath, squeezenet_folder: Path, squeezenet_weights: dict[str, np.ndarray]
) -> None:
    knn = KNNImageClassifier(3, 5, math)  # 5 of 9 examples vote: 3 of one class, 2 of another
    knn.load(squeezenet_folder)
    examples = _images(0, 9)  # example i is of look i % 3; classes are given by look, out of order
    classes = [2, 0, 1, 2, 0, 1, 2, 0, 1]
    for pixels, c in zip(examples, classes):
        knn.add_image(dl.NDArray.from_numpy(pixels, math=math), c)
    assert knn.get_class_example_count() == [3, 3, 3]
    stored = [p for c in range(3) for p, pc in zip(examples, classes) if pc == c]  # class order
    matrix = np.stack([_unit_logits(squeezenet_weights, p) for p in stored])
    for query in _images(1, 6):
        expected = matrix @ _unit_logits(squeezenet_weights, query)
        similarities = knn.predict(dl.NDArray.from_numpy(query, math=math))
        assert similarities.shape == (9,)
        np.testing.assert_allclose(similarities.get_values(), expected, atol=1e-5)
        ranked = np.sort(expected)[::-1]
        assert ranked[4] - ranked[5] > 1e-3, "the 5th and 6th nearest are apart"
        got = knn.predict_class(dl.NDArray.from_numpy(query, math=math))
        assert got == ClassPrediction(*_oracle_vote(expected, [3, 3, 3], 5))
        assert sorted(got.confidences) == [0.0, 0.4, 0.6]
    knn.dispose()


def test_fewer_examples_than_k_and_clearing_a_class(
    math: dl.NDArrayMath, squeezenet_weights: dict[str, np.ndarray]
) -> None:
    net = SqueezeNet(math)
    net.set_variables(squeezenet_weights)
    knn = KNNImageClassifier(4, 5, squeeze_net=net)  # an already loaded SqueezeNet: no load() needed
    assert knn.math is math
    pictures = _images(2, 3)
    query = dl.NDArray.from_numpy(pictures[0], math=math)
    assert knn.predict_class(query) == ClassPrediction(-1, [0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"KNNImageClassifier.predict: no image has been added"):
        knn.predict(query)
    knn.add_image(dl.NDArray.from_numpy(pictures[0], math=math), 3)
    knn.add_image(dl.NDArray.from_numpy(pictures[1], math=math), 1)
    assert knn.predict_class(query) == ClassPrediction(1, [0.0, 0.5, 0.0, 0.5])  # k = 2: a tie, class 1 first
    knn.clear_class(1)
    assert knn.get_class_example_count() == [0, 0, 0, 1]
    assert knn.get_class_logits_matrices()[1] is None
    rows = knn.get_class_logits_matrices()[3]
    assert rows is not None and rows.shape == (1, 1000)
    np.testing.assert_allclose(rows.get_values(), _unit_logits(squeezenet_weights, pictures[0]), atol=1e-6)
    assert knn.predict_class(query) == ClassPrediction(3, [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(knn.predict(query).get_values(), [1.0], atol=1e-6)


def test_errors(cpu_math: dl.NDArrayMath, squeezenet_weights: dict[str, np.ndarray]) -> None:
    knn = KNNImageClassifier(2, 1, cpu_math)
    x = dl.NDArray.from_numpy(np.zeros((SIZE, SIZE, 3)), math=cpu_math)
    with pytest.raises(RuntimeError, match=r"KNNImageClassifier.add_image: the weights are not loaded; call load"):
        knn.add_image(x, 0)
    with pytest.raises(RuntimeError, match="predict_class: the weights are not loaded"):
        knn.predict_class(x)
    knn.squeeze_net.set_variables(squeezenet_weights)
    for bad in (2, -1, True):
        with pytest.raises(ValueError, match=r"class_index must be an int in \[0, 2\)"):
            knn.add_image(x, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"class_index must be an int in \[0, 2\)"):
        knn.clear_class(5)
    with pytest.raises(dl.ShapeError, match=r"input must be \[height, width, 3\]; got input.shape=\(1, 40, 40, 3\)"):
        knn.add_image(dl.NDArray.from_numpy(np.zeros((1, SIZE, SIZE, 3)), math=cpu_math), 0)
    for name, args in (("num_classes", (0, 1)), ("k", (2, 0))):
        with pytest.raises(ValueError, match=f"{name} must be a positive int"):
            KNNImageClassifier(*args, cpu_math)
    assert knn.get_class_example_count() == [0, 0]


def test_no_array_outlives_dispose(cpu_math: dl.NDArrayMath, squeezenet_folder: Path) -> None:
    before = cpu_math.get_num_arrays()
    knn = KNNImageClassifier(2, 3, cpu_math)
    knn.load(squeezenet_folder)
    pictures = [dl.NDArray.from_numpy(p, math=cpu_math) for p in _images(3, 4)]
    with cpu_math.scope():  # examples added inside a scope stay the classifier's
        for i, p in enumerate(pictures):
            knn.add_image(p, i % 2)
    loaded = cpu_math.get_num_arrays()
    with cpu_math.scope():
        knn.predict_class(pictures[0])
        knn.predict(pictures[1])
    assert cpu_math.get_num_arrays() == loaded + 1  # the lazily built matrix of every example
    knn.clear_class(0)
    assert cpu_math.get_num_arrays() == loaded - 1  # class 0's rows and the matrix are gone
    knn.dispose()
    for p in pictures:
        p.dispose()
    assert cpu_math.get_num_arrays() == before
