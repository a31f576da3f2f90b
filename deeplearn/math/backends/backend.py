"""MathBackend: where NDArray data lives and where kernels run."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from deeplearn.types import RawArray

if TYPE_CHECKING:
    from deeplearn.math.ops.base import Op

__all__ = ["MathBackend"]


class MathBackend(Protocol):
    """The storage and kernel interface every backend implements ("cpu", "cuda")."""

    @property
    def name(self) -> str:
        """ "cpu" or "cuda"."""
        ...

    @property
    def xp(self) -> ModuleType:
        """numpy or cupy: the module whose functions the kernels call."""
        ...

    def execute(self, op: Op, *arrays: RawArray) -> Any:
        """Runs ``op``'s kernel (the generic ``forward`` or a backend override)."""
        ...

    def asarray(self, values: Any, dtype: Any = None) -> RawArray:
        """Moves or converts ``values`` (NumPy, CuPy, lists, DLPack) into this backend's memory."""
        ...

    def gather_rows(self, data: RawArray, rows: RawArray) -> RawArray:
        """``data[rows]`` along the first axis (data movement: a provider's batch)."""
        ...

    def to_numpy(self, data: RawArray) -> np.ndarray:
        """A host NumPy copy (or view on the CPU) of ``data``."""
        ...

    def synchronize(self) -> None:
        """Blocks until every kernel queued so far has finished."""
        ...

    def has_nan(self, data: RawArray) -> bool:
        """Whether ``data`` holds a NaN (debug mode)."""
        ...
