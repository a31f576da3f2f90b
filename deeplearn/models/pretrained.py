"""What SqueezeNet and MobileNet share: weights read from a deeplearn.js checkpoint or set from
a mapping, checked against the network's variable shapes; the top classes of its logits; dispose.

A subclass names its checkpoint (``CHECKPOINT_URL``), its variables (``_variable_shapes``) and the
one that tells how many classes it has (``_LOGITS_BIAS``), and computes its logits from ``_vars``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from deeplearn.math.ndarray import NDArray
from deeplearn.math.ndarray_math import NDArrayMath
from deeplearn.models import model_util
from deeplearn.types import Shape

__all__ = ["PretrainedClassifier"]


class PretrainedClassifier:
    """A classifier whose weights come from a deeplearn.js checkpoint (see the module docstring).

    Args:
        math: where it runs (default ``dl.ENV.math``: CUDA where CuPy sees a GPU, else the CPU).
        class_names: the name of each output.
    """

    CHECKPOINT_URL: ClassVar[str]
    """The checkpoint ``load()`` reads by default."""

    def __init__(self, math: NDArrayMath | None, class_names: Sequence[str]) -> None:
        self.math = model_util.resolve_math(math)
        self.class_names: tuple[str, ...] = tuple(class_names)
        self._variables: dict[str, NDArray] | None = None

    _LOGITS_BIAS: ClassVar[str]
    """The variable of one value per class (the last layer's bias), which tells how many."""

    _variable_shapes: ClassVar[Callable[..., dict[str, Shape]]]
    """The network's variable shapes for a number of classes, with a default (the module's
    ``variable_shapes``)."""

    @classmethod
    def _shape_rule(cls, offered: Mapping[str, Shape]) -> dict[str, Shape]:
        """The shapes to expect, with the number of classes taken from ``_LOGITS_BIAS`` if
        offered (else the default of ``_variable_shapes``)."""
        bias = offered.get(cls._LOGITS_BIAS)
        if bias is not None and len(bias) == 1 and bias[0] > 0:
            return cls._variable_shapes(bias[0])
        return cls._variable_shapes()

    # -- weights ---------------------------------------------------------------------------------
    def load(
        self,
        url_path: str | os.PathLike[str] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
    ) -> None:
        """Reads the weights from a deeplearn.js checkpoint: a folder or an http(s) URL
        (default ``CHECKPOINT_URL``, downloaded once into the cache; see ``CheckpointLoader``).

        Raises:
            ValueError: the checkpoint lacks a variable or has one of another shape (the
                message lists them all); nothing is loaded then.
            DownloadError: a file could not be downloaded.
        """
        variables = model_util.load_checkpoint_variables(
            self.math,
            self.CHECKPOINT_URL if url_path is None else url_path,
            self._shape_rule,
            f"{type(self).__name__}.load",
            cache_dir=cache_dir,
            progress=progress,
        )
        self._set(variables)

    def set_variables(self, variables: Mapping[str, Any]) -> None:
        """Sets the weights from a mapping of the checkpoint's variable names (see the module's
        ``variable_shapes``) to NDArrays or array-likes, which are copied. Every variable must
        be there with its shape, and no other."""
        where = f"{type(self).__name__}.set_variables"
        self._set(model_util.variables_from_mapping(self.math, variables, self._shape_rule, where))

    @property
    def is_loaded(self) -> bool:
        """Whether the weights are loaded (and not disposed)."""
        return self._variables is not None

    def _set(self, variables: dict[str, NDArray]) -> None:
        self._dispose_variables()
        self._variables = variables

    def _vars(self, where: str) -> dict[str, NDArray]:
        if self._variables is None:
            raise RuntimeError(f"{where}: the weights are not loaded; call load() first.")
        return self._variables

    # -- results ---------------------------------------------------------------------------------
    def get_top_k_classes(self, logits: NDArray, top_k: int) -> dict[str, float]:
        """The ``top_k`` most probable classes of ``logits`` (one image's): {class name: softmax
        probability over all the outputs}, most probable first (deeplearn.js's
        ``getTopKClasses``, synchronous)."""
        return model_util.top_k_classes(
            self.math, logits, top_k, self.class_names, f"{type(self).__name__}.get_top_k_classes"
        )

    def dispose(self) -> None:
        """Frees the weights; ``load()`` may be called again afterwards."""
        self._dispose_variables()

    def _dispose_variables(self) -> None:
        if self._variables is not None:
            for array in self._variables.values():
                array.dispose()
            self._variables = None
