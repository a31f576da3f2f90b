"""Backends: where data lives and kernels run. CuPy is imported only by ``cuda.py``."""

from __future__ import annotations

from deeplearn.math.backends.backend import MathBackend
from deeplearn.math.backends.cpu import MathBackendCPU

__all__ = ["MathBackend", "MathBackendCPU", "create_backend", "cuda_available"]


def cuda_available() -> bool:
    """Whether CuPy is installed and sees at least one GPU (never raises)."""
    from deeplearn.math.backends import cuda

    return cuda.is_available()


def create_backend(name: str) -> MathBackend:
    """The backend called ``name`` ("cpu" or "cuda")."""
    if name == "cpu":
        return MathBackendCPU()
    if name == "cuda":
        from deeplearn.math.backends.cuda import MathBackendCUDA

        return MathBackendCUDA()
    raise ValueError(f"create_backend: backend must be 'cpu' or 'cuda'; got {name!r}.")
