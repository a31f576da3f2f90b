"""MathBackendCPU: NDArray data in host memory as NumPy arrays; kernels are the ops' generic
``forward`` run with ``xp = numpy``, plus overrides keyed by op class where a profile showed
the generic kernel to be the bottleneck (``scaled_array_add``: every optimizer update)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from deeplearn.math.ops.arithmetic import ScaledArrayAdd
from deeplearn.math.ops.base import Op
from deeplearn.types import RawArray

__all__ = ["MathBackendCPU", "cpu_kernel"]


@functools.singledispatch
def cpu_kernel(op: Op, *arrays: np.ndarray) -> Any:
    """Runs ``op`` on the CPU. Ops without a CPU-specific kernel use their generic forward."""
    return op.forward(np, *arrays)


@cpu_kernel.register
def _scaled_array_add(
    op: ScaledArrayAdd, c1: np.ndarray, a: np.ndarray, c2: np.ndarray, b: np.ndarray
) -> Any:
    """c1·a + c2·b; with c1 = 1 (SGD's, Momentum's, RMSProp's and Adagrad's updates, w + c·g)
    a pass and a temporary fewer. 1·a is a exactly (NaN, ±inf and -0 included), so the result
    is the generic kernel's bit for bit."""
    if a.dtype == b.dtype == c1.dtype == c2.dtype and a.dtype.kind == "f" and c1.reshape(()) == 1:
        y = c2.reshape(()) * b
        y += a
        return y
    return op.forward(np, c1, a, c2, b)


class MathBackendCPU:
    """Host memory and NumPy kernels."""

    name = "cpu"
    xp = np

    def execute(self, op: Op, *arrays: RawArray) -> Any:
        with np.errstate(all="ignore"):  # NaN/inf are values here, as in deeplearn.js
            return cpu_kernel(op, *arrays)

    def kernel_for(self, op: Op) -> Any:
        """The kernel ``execute`` would run for ``op``, called as ``kernel(op, *arrays)``, without
        the per-call floating-point guard: for callers that run many kernels inside one
        ``errors_ignored()`` block (a replayed Session plan)."""
        return cpu_kernel.dispatch(type(op))

    def errors_ignored(self) -> Any:
        """The floating-point guard ``execute`` puts around each kernel."""
        return np.errstate(all="ignore")

    def asarray(self, values: Any, dtype: Any = None) -> np.ndarray:
        if hasattr(values, "__cuda_array_interface__") and hasattr(values, "get"):
            values = values.get()  # a CuPy array: copy to the host
        elif not isinstance(values, np.ndarray) and hasattr(values, "__dlpack__"):
            try:
                values = np.from_dlpack(values)
            except (RuntimeError, BufferError, TypeError):
                values = np.asarray(values)
        with np.errstate(all="ignore"):
            return np.asarray(values, dtype=dtype)

    def gather_rows(self, data: RawArray, rows: RawArray) -> RawArray:
        """``data[rows]`` along the first axis."""
        return np.take(data, rows, axis=0)

    def to_numpy(self, data: RawArray) -> np.ndarray:
        return np.asarray(data)

    def synchronize(self) -> None:
        return None

    def has_nan(self, data: RawArray) -> bool:
        return bool(data.dtype.kind == "f" and np.isnan(data).any())
