"""Shared fixtures: ``math`` runs a test on every backend (CUDA only where CuPy sees a GPU)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import deeplearn as dl
from deeplearn.environment import ENV
from deeplearn.math.backends import cuda_available

_ONLY = os.environ.get("DEEPLEARN_TEST_BACKENDS", "cpu,cuda").split(",")
BACKENDS = [
    pytest.param(name, marks=[pytest.mark.gpu] if name == "cuda" else [], id=name)
    for name in ("cpu", "cuda")
    if name in _ONLY
]


@contextmanager
def installed_math(m: dl.NDArrayMath) -> Iterator[dl.NDArrayMath]:
    """``m`` as ENV.math inside the block (factories allocate on its backend); the previous
    default, possibly none yet, is put back after."""
    previous = ENV._math
    ENV.set_math(m)
    try:
        yield m
    finally:
        ENV._math = previous


@pytest.fixture(params=BACKENDS)
def math(request: pytest.FixtureRequest) -> Iterator[dl.NDArrayMath]:
    """An NDArrayMath per backend, installed as ENV.math so factories allocate there too."""
    name = request.param
    if name == "cuda" and not cuda_available():
        pytest.skip("CUDA backend: CuPy with a visible NVIDIA GPU is not available on this machine")
    with installed_math(dl.NDArrayMath(name)) as m:
        yield m


@pytest.fixture
def cpu_math() -> Iterator[dl.NDArrayMath]:
    """The CPU math, installed as ENV.math."""
    with installed_math(dl.NDArrayMathCPU()) as m:
        yield m


def as_ndarray(math: dl.NDArrayMath, x: np.ndarray, dtype: str | None = None) -> dl.NDArray:
    """Wraps a NumPy array as an NDArray on ``math``'s backend, keeping float64 data as is (the
    gradient checks run float32 ops in double precision)."""
    if dtype is None:
        dtype = "bool" if x.dtype == np.bool_ else "int32" if x.dtype.kind in "iu" else "float32"
    raw = math.backend.asarray(x if x.dtype != np.int64 else x.astype(np.int32))
    return dl.NDArray._wrap(raw, math.backend, dtype)  # type: ignore[arg-type]
