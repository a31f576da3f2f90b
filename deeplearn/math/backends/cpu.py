"""MathBackendCPU: NDArray data in host memory as NumPy arrays; kernels are the ops' generic
``forward`` run with ``xp = numpy``, plus overrides keyed by op class where a profile showed
the generic kernel to be the bottleneck (``scaled_array_add``: every optimizer update; ``relu``
and ``sum``: the host cost of an eager op, bench/overhead.py)."""

from __future__ import annotations

import contextvars
import functools
import importlib
import threading
from typing import Any

import numpy as np

from deeplearn.math.ops.arithmetic import ScaledArrayAdd
from deeplearn.math.ops.base import Op
from deeplearn.math.ops.elementwise import Relu
from deeplearn.math.ops.reduction import Sum
from deeplearn.types import RawArray

__all__ = ["MathBackendCPU", "cpu_kernel"]

# NaN/inf are values here, as in deeplearn.js, so every kernel runs as in np.errstate(all=
# "ignore"). NumPy 2 keeps that state in a context variable, and entering and leaving an
# np.errstate around each kernel cost ~0.85 µs, setting and resetting the variable by hand
# ~0.3 µs (NumPy 2.4, 2-core Xeon). ``execute`` instead runs each kernel inside a context of its
# own (``contextvars.Context.run``, ~0.04 µs) in which the variable holds the caller's state
# with every error ignored, exactly what np.errstate(all="ignore") would have set: one context
# per thread (a context is entered by one thread at a time), made again when the caller's state
# changes (an np.errstate or np.setbufsize of theirs). Kernels read no other context variable.
# Where a NumPy lacks the variable, np.errstate itself.
_umath = importlib.import_module("numpy._core.umath")
_ERROR_STATE: Any = getattr(_umath, "_extobj_contextvar", None)
_make_error_state: Any = getattr(_umath, "_make_extobj", None)
_IN_KERNEL: contextvars.ContextVar[bool] = contextvars.ContextVar("deeplearn_cpu_kernel", default=False)
"""True inside the kernel context: a kernel that runs another through ``execute`` (none of
ours does) is already there."""


class _KernelContext(threading.local):
    """Per thread: (the caller's error state it was made from, the context kernels run in)."""

    made: tuple[Any, contextvars.Context | None] = (object(), None)


_KERNEL_CONTEXT = _KernelContext()


def _kernel_context(caller_state: Any) -> contextvars.Context:
    """A context in which NumPy's error state is ``caller_state`` ignoring every error, and in
    which ``_IN_KERNEL`` is true; remembered for this thread."""
    context = contextvars.Context()
    context.run(_ERROR_STATE.set, _make_error_state(all="ignore"))  # made in the caller's state
    context.run(_IN_KERNEL.set, True)
    _KERNEL_CONTEXT.made = (caller_state, context)
    return context


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


_ZEROS: dict[Any, Any] = {}
"""The NumPy scalar 0 of each dtype, made once."""


@cpu_kernel.register
def _relu(op: Relu, x: np.ndarray) -> Any:
    """The generic kernel with its zero made once: making ``x.dtype.type(0)`` on every call
    cost ~0.35 µs, most of a relu of 1024 floats (~0.75 µs)."""
    zero = _ZEROS.get(x.dtype)
    if zero is None:
        zero = _ZEROS[x.dtype] = x.dtype.type(0)
    return np.maximum(x, zero)


@cpu_kernel.register
def _sum(op: Sum, x: np.ndarray) -> Any:
    """``np.add.reduce``, which is what ``np.sum`` runs, without np.sum's Python wrapper
    (~1.1 µs of a 2 µs sum of 1024 floats). A sum over every axis goes into a 0-d array rather
    than becoming a NumPy scalar that the engine would have to convert."""
    axes = op.axes(x.ndim)
    dtype = np.int32 if x.dtype.kind in "biu" else x.dtype
    if x.ndim == 0 or (len(axes) == x.ndim and not op.keep_dims):
        return _add_reduce(x, axis=axes, dtype=dtype, keepdims=op.keep_dims, out=np.empty((), dtype))
    return _add_reduce(x, axis=axes, dtype=dtype, keepdims=op.keep_dims)


_add_reduce: Any = np.add.reduce


_KERNELS: dict[type, Any] = {}
"""The kernel ``cpu_kernel`` dispatches each op class to, looked up once (singledispatch's own
lookup costs ~0.3 µs a call); forgotten whenever a kernel is registered."""

_register: Any = cpu_kernel.register


def _register_kernel(cls: Any, func: Any = None) -> Any:
    """``cpu_kernel.register``, which also makes ``execute`` forget the kernels it looked up."""
    registered = _register(cls, func)
    _KERNELS.clear()
    if func is None and isinstance(cls, type):  # @cpu_kernel.register(SomeOp): registers later
        decorate = registered

        def register_then_forget(f: Any) -> Any:
            out = decorate(f)
            _KERNELS.clear()
            return out

        return register_then_forget
    return registered


cpu_kernel.register = _register_kernel  # type: ignore[method-assign]


_generic_kernel = cpu_kernel.dispatch(Op)


def _kernel_of(op_class: type) -> Any:
    kernel = _KERNELS[op_class] = cpu_kernel.dispatch(op_class)
    return kernel


class MathBackendCPU:
    """Host memory and NumPy kernels."""

    name = "cpu"
    xp = np

    def execute(self, op: Op, *arrays: RawArray) -> Any:
        kernel = _KERNELS.get(type(op)) or _kernel_of(type(op))
        if kernel is _generic_kernel:
            kernel, arrays = op.forward, (np, *arrays)  # what it does, without its call
        else:
            arrays = (op, *arrays)
        if _ERROR_STATE is None:
            with np.errstate(all="ignore"):
                return kernel(*arrays)
        if _IN_KERNEL.get():
            return kernel(*arrays)
        state = _ERROR_STATE.get()
        made_for, context = _KERNEL_CONTEXT.made
        if made_for is not state or context is None:
            context = _kernel_context(state)
        return context.run(kernel, *arrays)

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

