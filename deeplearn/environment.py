"""ENV: the process-wide default NDArrayMath and backend choice.

The backend is ``DEEPLEARN_BACKEND`` ("cpu" or "cuda") when set, else CUDA when CuPy sees a GPU,
else the CPU. ``ENV.math`` is created on first use, so importing deeplearn never touches the GPU.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deeplearn.math.backends.backend import MathBackend
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["ENV", "Environment", "memory"]


class Environment:
    """Holds the default math (``ENV.math``) and answers which backends exist."""

    def __init__(self) -> None:
        self._math: NDArrayMath | None = None
        self._lock = threading.Lock()

    @staticmethod
    def get_best_backend() -> str:
        """"cuda" when CuPy sees a GPU, else "cpu" (``DEEPLEARN_BACKEND`` overrides)."""
        from deeplearn.math.backends import backend_names, cuda_available

        forced = os.environ.get("DEEPLEARN_BACKEND", "").strip().lower()
        if forced:
            if forced not in backend_names():
                raise ValueError(f"DEEPLEARN_BACKEND must be one of {backend_names()}; got {forced!r}.")
            return forced
        return "cuda" if cuda_available() else "cpu"

    @staticmethod
    def register_backend(name: str, factory: Callable[[], MathBackend]) -> None:
        """Registers a backend factory under ``name`` (deeplearn.js ``ENV.registerBackend``)."""
        from deeplearn.math.backends import register_backend

        register_backend(name, factory)

    def get_backend(self, name: str) -> MathBackend:
        """The backend of ``ENV.math`` when it is called ``name``, else a new one.

        Example:
            >>> dl.ENV.get_backend("cpu").name
            'cpu'
        """
        from deeplearn.math.backends import create_backend

        if self._math is not None and self._math.backend.name == name:
            return self._math.backend
        return create_backend(name)

    @property
    def math(self) -> NDArrayMath:
        """The default NDArrayMath, created on first use on the best backend."""
        if self._math is None:
            with self._lock:
                if self._math is None:
                    from deeplearn.math.ndarray_math import NDArrayMath

                    self._math = NDArrayMath(self.get_best_backend())
        return self._math

    def set_math(self, math: NDArrayMath) -> None:
        """Makes ``math`` the default (factories create arrays on its backend)."""
        self._math = math

    def reset(self) -> None:
        """Forgets the default math; the next ``ENV.math`` makes a new one."""
        self._math = None


ENV = Environment()


def memory() -> dict[str, Any]:
    """Live arrays and bytes, in total and per backend (the backend's pool too, on CUDA).

    Example:
        >>> sorted(memory())
        ['backends', 'num_arrays', 'num_bytes']
    """
    from deeplearn.math.scope import REGISTRY

    backends: dict[str, Any] = {}
    for name in REGISTRY.backends():
        backends[name] = {"num_arrays": REGISTRY.num_arrays(name), "num_bytes": REGISTRY.num_bytes(name)}
        if name == "cuda":
            from deeplearn.math.backends.cuda import pool_usage

            backends[name].update(pool_usage())
    return {"num_arrays": REGISTRY.num_arrays(), "num_bytes": REGISTRY.num_bytes(), "backends": backends}
