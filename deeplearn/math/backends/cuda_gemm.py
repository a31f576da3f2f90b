"""Matrix products on the GPU as one cuBLAS call each, through nvmath-python's bindings.

CuPy refuses every cuBLAS call while a stream is being captured into a CUDA graph, so a
training step with a matrix product could not run as one graph. cuBLAS itself records into a
graph when the handle has a workspace of its own (``cublasSetWorkspace``): calling ``sgemm``
through nvmath-python's thin bindings, on a handle we own, does. It is also a shorter path than
``cupy.matmul`` for the small products a step is made of (one call, no dispatch on layouts).
Each small geometry's first product chooses, by timing, between ``sgemm`` and tiled kernels of
our own (``cuda_sgemm``), which fill more of the GPU at a training step's 128-row shapes.

A ``GemmContext`` is a cuBLAS handle and its workspace. Each thread has one for eager products;
a captured Program (``deeplearn/compile/cuda_graph.py``) gets its own (``use_context``), so a
graph's products never share a workspace with work that other streams run meanwhile.

Only float32 products of non-empty matrices go through here; ``available()`` is False without
nvmath-python (the ``cuda12``/``cuda13`` extras install it), and then the backend uses CuPy.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from deeplearn.math.backends import cuda_sgemm

__all__ = ["GemmContext", "available", "gemm", "launcher", "planned", "swap_context", "use_context"]

_WORKSPACE_BYTES = 32 << 20  # what cuBLAS asks for on Hopper to pick any of its kernels
_ONE = np.ones((), np.float32)  # alpha and beta, read by cuBLAS from host memory at the call
_ZERO = np.zeros((), np.float32)
_ONE_AT, _ZERO_AT = _ONE.ctypes.data, _ZERO.ctypes.data  # (read once: ``ctypes.data`` costs ~0.5 µs)


@functools.cache
def _bindings() -> Any:
    try:
        from nvmath.bindings import cublas
    except Exception:  # noqa: BLE001 - not installed, or its CUDA libraries are missing
        return None
    return cublas


def available() -> bool:
    """Whether nvmath-python's cuBLAS bindings import (never raises)."""
    return _bindings() is not None


class GemmContext:
    """A cuBLAS handle with a workspace of its own (see the module docstring), both made at
    the first product run on it: a context no product uses costs no memory."""

    def __init__(self) -> None:
        self._cublas = _bindings()
        self.handle: Any = None
        self.workspace: Any = None
        self.stream = -1
        # Buffers that products captured on this context use besides their operands and result
        # (a split product's parts, ``cuda_sgemm.run``): kept while the context lives, as long
        # as a CapturedProgram keeps its graph, or for good on a thread's own context.
        self.held: list[Any] = []

    def open(self) -> None:
        import cupy

        self.handle = self._cublas.create()
        self.workspace = cupy.cuda.Memory(_WORKSPACE_BYTES)  # not from a pool: it lives as long as the handle
        self._cublas.set_workspace(self.handle, self.workspace.ptr, _WORKSPACE_BYTES)

    def use_stream(self, stream: int) -> None:
        """Runs this context's products on ``stream`` from now on."""
        if self.handle is None:
            self.open()
        self._cublas.set_stream(self.handle, stream)
        # cublasSetStream resets the handle to cuBLAS's own workspace pool, from which a product
        # captured in a CUDA graph allocates (MemAlloc and MemFree nodes): ours again.
        self._cublas.set_workspace(self.handle, self.workspace.ptr, _WORKSPACE_BYTES)
        self.stream = stream

    def sgemm(self, a: Any, b: Any, a_transposed: bool, b_transposed: bool, c: Any) -> None:
        """c = op(a)·op(b) by cuBLAS's ``sgemm`` on this context's stream (``gemm`` sets it)."""
        m, n = c.shape
        self._cublas.sgemm(
            self.handle,
            int(b_transposed),
            int(a_transposed),
            n,
            m,
            a.shape[0] if a_transposed else a.shape[1],
            _ONE_AT,
            b.data.ptr,
            b.shape[1],
            a.data.ptr,
            a.shape[1],
            _ZERO_AT,
            c.data.ptr,
            n,
        )

    def __del__(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(Exception):  # interpreter shutdown
                self._cublas.destroy(self.handle)


_LOCAL = threading.local()


def _context() -> GemmContext:
    context: GemmContext | None = getattr(_LOCAL, "context", None)
    if context is None:
        context = _LOCAL.context = GemmContext()
    return context


def swap_context(context: GemmContext | None) -> GemmContext | None:
    """Runs this thread's products on ``context`` from now on (None: the thread's own, made
    when first needed); returns the one it replaces."""
    previous: GemmContext | None = getattr(_LOCAL, "context", None)
    _LOCAL.context = context
    return previous


@contextlib.contextmanager
def use_context(context: GemmContext) -> Iterator[None]:
    """Runs this thread's products on ``context`` inside the block."""
    previous = swap_context(context)
    try:
        yield
    finally:
        swap_context(previous)


def gemm(a: Any, b: Any, a_transposed: bool, b_transposed: bool) -> Any:
    """op(a)·op(b) for C-ordered float32 CuPy matrices, on the current stream: by the plan of
    ours ``cuda_sgemm`` kept for this geometry, else by cuBLAS's ``sgemm``.

    cuBLAS is column-major: a C-ordered (r, c) matrix is, to it, the (c, r) matrix with leading
    dimension c. So the C-ordered product C = op(A)·op(B) is computed as the column-major
    Cᵀ = op(B)ᵀ·op(A)ᵀ, whose operands are the buffers of B and A as they are, each transposed
    only when the caller asked for its transpose.
    """
    return _product(cuda_sgemm.Geometry.of(a, b, a_transposed, b_transposed), a, b)


def _product(geometry: cuda_sgemm.Geometry, a: Any, b: Any) -> Any:
    import cupy

    c = cupy.empty((geometry.m, geometry.n), dtype=np.float32)
    context, plan = planned(geometry, a, b)
    if plan is not None:
        cuda_sgemm.run(plan, geometry, a, b, c, context.held)
    else:
        context.sgemm(a, b, geometry.a_transposed, geometry.b_transposed, c)
    return c


def launcher(geometry: cuda_sgemm.Geometry, fallback: Any) -> Any:
    """``gemm`` of C-ordered float32 matrices of ``geometry``'s shapes as a function of the two
    matrices, the geometry worked out once: for an eager ``mat_mul`` whose shapes and dtypes an
    Engine has learnt (``cuda.MathBackendCUDA.direct_kernel``). Operands that are not C-ordered
    go to ``fallback``.
    """

    def product(a: Any, b: Any) -> Any:
        if not (a._c_contiguous and b._c_contiguous):  # (CuPy's own flags: see cuda_vector.launcher)
            return fallback(a, b)
        return _product(geometry, a, b)

    return product


def planned(geometry: cuda_sgemm.Geometry, a: Any, b: Any) -> tuple[GemmContext, cuda_sgemm.Plan | None]:
    """This thread's context, running on the current stream, and the plan of ours that
    ``cuda_sgemm`` keeps for ``geometry`` where it can run on ``a`` and ``b`` (None: ``sgemm``)."""
    import cupy

    context = _context()
    stream = cupy.cuda.get_current_stream().ptr
    if stream != context.stream:
        context.use_stream(stream)
    plan = cuda_sgemm.plan_for(geometry, context.sgemm)
    return context, plan if plan is not None and cuda_sgemm.runs(plan, geometry, a, b) else None
