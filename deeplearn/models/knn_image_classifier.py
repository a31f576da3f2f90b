"""The KNN image classifier of deeplearn.js's ``deeplearn-knn-image-classifier`` package.

Teach it classes from a few images each, then classify new images: each image becomes its
SqueezeNet logits, normalised to unit length, so the matrix product of the stored examples with
a new image's vector gives their cosine similarities; the ``k`` most similar examples vote, and
each class's confidence is its share of the ``k`` votes (ties in similarity go to the example
added first, ties in votes to the lower class index).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from deeplearn.math.ndarray import NDArray, Scalar
from deeplearn.math.ndarray_math import NDArrayMath
from deeplearn.models import model_util
from deeplearn.models.squeezenet import SqueezeNet

__all__ = ["ClassPrediction", "KNNImageClassifier"]

# deeplearn.js: the logits were divided by 300 before their norm was taken, so that the sum of
# squares fitted its half-float textures. It does not change the unit vector; kept for fidelity.
_SQUASH_LOGITS_DENOMINATOR = 300.0


class ClassPrediction(NamedTuple):
    """What ``predict_class`` returns (deeplearn.js's ``{classIndex, confidences}``)."""

    class_index: int
    """The class with the most votes (the lowest index among equals); -1 when no image was added."""
    confidences: list[float]
    """Per class, its share of the k nearest examples (they sum to 1; all 0 with no images)."""


class KNNImageClassifier:
    """A k-nearest-neighbours classifier over SqueezeNet's logits, with deeplearn.js's interface:
    ``load()``, ``add_image()``, ``clear_class()``, ``predict()``, ``predict_class()``,
    ``get_class_example_count()``, ``dispose()``.

    Args:
        num_classes: how many classes it can learn (0 to num_classes - 1).
        k: how many nearest examples vote.
        math: where it runs (default ``dl.ENV.math``).
        squeeze_net: the network whose logits it compares (default a new ``SqueezeNet(math)``,
            whose weights ``load()`` reads; one already loaded needs no ``load()``).

    Example:
        >>> import tempfile
        >>> from deeplearn.models import KNNImageClassifier, random_variables
        >>> from deeplearn.models.squeezenet import variable_shapes
        >>> rng = np.random.default_rng(0)
        >>> folder = tempfile.mkdtemp()  # random SqueezeNet weights, deeplearn.js's format
        >>> dl.write_checkpoint(folder, random_variables(variable_shapes()))
        >>> knn = KNNImageClassifier(2, 1, math)
        >>> knn.load(folder)  # knn.load() reads deeplearn.js's SqueezeNet checkpoint over https
        >>> dark = Array3D.new([48, 48, 3], rng.uniform(0, 40, 48 * 48 * 3))
        >>> bright = Array3D.new([48, 48, 3], rng.uniform(200, 255, 48 * 48 * 3))
        >>> knn.add_image(dark, 0)
        >>> knn.add_image(bright, 1)
        >>> knn.get_class_example_count()
        [1, 1]
        >>> knn.predict_class(bright)
        ClassPrediction(class_index=1, confidences=[0.0, 1.0])
        >>> knn.dispose()
    """

    def __init__(
        self, num_classes: int, k: int, math: NDArrayMath | None = None, squeeze_net: SqueezeNet | None = None
    ) -> None:
        for name, value in (("num_classes", num_classes), ("k", k)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"KNNImageClassifier: {name} must be a positive int; got {name} = {value!r}."
                )
        self.num_classes = num_classes
        self.k = k
        self.math = model_util.resolve_math(
            math if math is not None or squeeze_net is None else squeeze_net.math
        )
        self.squeeze_net = SqueezeNet(self.math) if squeeze_net is None else squeeze_net
        self._class_logits: list[NDArray | None] = [None] * num_classes
        self._class_example_count: list[int] = [0] * num_classes
        self._train_logits: NDArray | None = None  # every class's rows, concatenated; made lazily

    def load(
        self,
        url_path: str | os.PathLike[str] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
    ) -> None:
        """Loads SqueezeNet's weights (default: deeplearn.js's checkpoint; see ``SqueezeNet.load``)."""
        self.squeeze_net.load(url_path, cache_dir=cache_dir, progress=progress)

    def _check_loaded(self, where: str) -> None:
        if not self.squeeze_net.is_loaded:
            raise RuntimeError(f"{where}: the weights are not loaded; call load() first.")

    def _check_class(self, class_index: int, where: str) -> None:
        if (
            isinstance(class_index, bool)
            or not isinstance(class_index, int)
            or not 0 <= class_index < self.num_classes
        ):
            raise ValueError(
                f"{where}: class_index must be an int in [0, {self.num_classes}); got class_index = {class_index!r}."
            )

    def _normalized_logits(self, image: NDArray) -> NDArray:
        """The image's SqueezeNet logits as a unit vector [num_logits] (deeplearn.js's
        ``normalizeVector``)."""
        math = self.math
        squashed = math.divide(
            self.squeeze_net.predict(image), Scalar.new(_SQUASH_LOGITS_DENOMINATOR, math=math)
        )
        return math.divide(squashed, math.sqrt(math.sum(math.multiply(squashed, squashed))))

    def add_image(self, image: NDArray, class_index: int) -> None:
        """Adds ``image`` [height, width, 3] (pixel values 0-255) as an example of ``class_index``."""
        where = "KNNImageClassifier.add_image"
        self._check_loaded(where)
        self._check_class(class_index, where)
        model_util.check_image(image, where, batch=False)
        self._clear_train_logits()
        math = self.math
        previous = self._class_logits[class_index]

        def added() -> NDArray:
            row = self._normalized_logits(image)
            row = row.reshape([1, row.shape[0]])
            return row if previous is None else math.concat(previous, row, 0)

        with math.scope() as scope:
            rows = scope.keep(math.scope(added))
        if previous is not None:
            previous.dispose()
        self._class_logits[class_index] = rows
        self._class_example_count[class_index] += 1

    def clear_class(self, class_index: int) -> None:
        """Forgets every example of ``class_index``."""
        self._check_class(class_index, "KNNImageClassifier.clear_class")
        rows = self._class_logits[class_index]
        if rows is not None:
            rows.dispose()
        self._class_logits[class_index] = None
        self._class_example_count[class_index] = 0
        self._clear_train_logits()

    def predict(self, image: NDArray) -> NDArray:
        """The cosine similarity of ``image`` to every stored example [num_examples], the
        examples in class order, each class's in the order they were added. (deeplearn.js:
        "You are probably looking for predict_class".)

        Raises:
            ValueError: no image has been added yet.
        """
        where = "KNNImageClassifier.predict"
        self._check_loaded(where)
        model_util.check_image(image, where, batch=False)
        train = self._train_matrix(where)
        math = self.math

        def similarities() -> NDArray:
            row = self._normalized_logits(image)
            return math.mat_mul(train, row.reshape([row.shape[0], 1])).reshape([train.shape[0]])

        result: NDArray = math.scope(similarities)
        return result

    def predict_class(self, image: NDArray) -> ClassPrediction:
        """The class of ``image`` by a vote of its ``k`` most similar examples (fewer when
        fewer were added), and each class's share of the votes. With no example added, class
        -1 and confidences of 0 (deeplearn.js meant to return that, but failed instead)."""
        where = "KNNImageClassifier.predict_class"
        self._check_loaded(where)
        model_util.check_image(image, where, batch=False)
        num_examples = sum(self._class_example_count)
        if num_examples == 0:  # deeplearn.js: meant to return this, but failed on a null
            return ClassPrediction(-1, [0.0] * self.num_classes)
        similarities = self.predict(image)
        try:
            values = similarities.get_values()
        finally:
            similarities.dispose()
        k = min(self.k, num_examples)
        _, nearest = model_util.top_k(values, k)
        ends, end = [], 0  # the index after each class's last example
        for count in self._class_example_count:
            end += count
            ends.append(end)
        votes = [0] * self.num_classes
        for index in nearest.tolist():
            votes[next(c for c, e in enumerate(ends) if index < e)] += 1
        confidences = [v / k for v in votes]
        best, class_index = 0.0, -1
        for c, confidence in enumerate(confidences):
            if confidence > best:
                best, class_index = confidence, c
        return ClassPrediction(class_index, confidences)

    def get_class_example_count(self) -> list[int]:
        """How many examples each class has (a copy)."""
        return list(self._class_example_count)

    def get_class_logits_matrices(self) -> list[NDArray | None]:
        """Each class's examples as unit logit rows [count, num_logits] (None for a class with
        none). The arrays stay the classifier's: do not dispose them."""
        return list(self._class_logits)

    def _train_matrix(self, where: str) -> NDArray:
        if self._train_logits is None:
            present = [rows for rows in self._class_logits if rows is not None]
            if not present:
                raise ValueError(f"{where}: no image has been added; call add_image() first.")
            math = self.math

            def concatenated() -> NDArray:
                matrix = math.clone(present[0])
                for rows in present[1:]:
                    matrix = math.concat(matrix, rows, 0)
                return matrix

            with math.scope() as scope:
                self._train_logits = scope.keep(math.scope(concatenated))
        return self._train_logits

    def _clear_train_logits(self) -> None:
        if self._train_logits is not None:
            self._train_logits.dispose()
            self._train_logits = None

    def dispose(self) -> None:
        """Frees the examples and SqueezeNet's weights."""
        self.squeeze_net.dispose()
        self._clear_train_logits()
        for c, rows in enumerate(self._class_logits):
            if rows is not None:
                rows.dispose()
            self._class_logits[c] = None
        self._class_example_count = [0] * self.num_classes
