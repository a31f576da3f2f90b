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
