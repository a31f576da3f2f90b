"""Backends: where data lives and kernels run. CuPy is imported only by ``cuda.py``."""

from __future__ import annotations

from collections.abc import Callable

from deeplearn.math.backends.backend import MathBackend
from deeplearn.math.backends.cpu import MathBackendCPU

__all__ = [
    "MathBackend",
    "MathBackendCPU",
    "create_backend",
    "cuda_available",
    "register_backend",
    "backend_names",
]


def cuda_available() -> bool:
    """Whether CuPy is installed and sees at least one GPU (never raises)."""
    from deeplearn.math.backends import cuda

    return cuda.is_available()


def _cuda() -> MathBackend:
    from deeplearn.math.backends.cuda import MathBackendCUDA

    return MathBackendCUDA()


_CPU = MathBackendCPU()
"""The CPU backend every NDArrayMathCPU shares: it keeps no state, and one object means an array
made by one CPU math is no foreign array to another (no conversion on each op it enters)."""

_FACTORIES: dict[str, Callable[[], MathBackend]] = {"cpu": lambda: _CPU, "cuda": _cuda}


def register_backend(name: str, factory: Callable[[], MathBackend]) -> None:
    """Makes ``NDArrayMath(name)`` build its backend with ``factory()`` (deeplearn.js's
    ``ENV.registerBackend``); "cpu" and "cuda" are built in."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_backend: name must be a non-empty string; got {name!r}.")
    if not callable(factory):
        raise TypeError(f"register_backend: factory must be callable; got {factory!r}.")
    _FACTORIES[name] = factory


def backend_names() -> list[str]:
    """The names ``create_backend`` accepts."""
    return list(_FACTORIES)


def create_backend(name: str) -> MathBackend:
    """The backend called ``name`` ("cpu", "cuda", or one registered with register_backend): the
    one CPU backend, else a new one."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"create_backend: backend must be one of {backend_names()}; got {name!r}.")
    return factory()
