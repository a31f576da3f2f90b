"""Doctest namespace: docstring examples may use dl, np, math (a CPU NDArrayMath) and the array classes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import deeplearn as dl


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace: dict[str, Any]) -> None:
    doctest_namespace.update(
        dl=dl, np=np, math=dl.NDArrayMathCPU(), Scalar=dl.Scalar, Array1D=dl.Array1D,
        Array2D=dl.Array2D, Array3D=dl.Array3D, Array4D=dl.Array4D, NDArray=dl.NDArray,
    )


# Docstring examples that need an optional extra, by doctest name: skipped (saying which extra)
# where that package is not installed, as the tests that need it are.
_DOCTESTS_NEEDING = {"deeplearn.graph_runner.TensorBoardLogger": ("tensorboardX", "train")}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import importlib.util

    for item in items:
        need = _DOCTESTS_NEEDING.get(item.name)
        if need is not None and importlib.util.find_spec(need[0]) is None:
            reason = f"{need[0]} comes with the {need[1]} extra (pip install -e '.[{need[1]}]')"
            item.add_marker(pytest.mark.skip(reason=reason))
