"""Element-wise kernels over large float32 arrays that move 16 bytes per thread and operand.

CuPy's ElementwiseKernel gives each thread one element: one 4-byte load per operand. On an H100
or an H200 that keeps too few bytes in flight to cover the memory's latency, and relu or add of
64 M floats ran at ~2 TB/s on both chips (642 µs for the benchmark's pair), where PyTorch's
kernels, which load 16 bytes at a time, reach ~4 TB/s on the H200. So an op with a C expression
(``c_expr``) on non-empty float32 arrays all of the output's shape (no broadcasting), C-ordered
and 16-byte aligned, can run here (``run``); an eager op does from ``MIN_ELEMENTS`` elements on,
and a captured step's kernels at every size (their host cost is paid once, at capture). Below
``MIN_ELEMENTS``, an eager op whose shapes the engine has learnt runs the kernel's tail code
alone, launched with its arguments worked out once (``launcher``). Each
thread loads a ``float4`` of every operand, applies the expression to its four lanes and stores
a ``float4``; the last ``n % 4`` elements are done one by one by the grid's first threads. The
output may be one of the inputs (an update in place): each element is read, then written, by the
same thread; an output that overlaps an input only in part is refused (``overlaps_in_part``: the
caller copies that input first, as ``cuda.write_into`` does). Anything else runs CuPy's kernel.
The expression is the op's own, applied to the same values, and compiled with the same defaults
as CuPy's ElementwiseKernel (NVRTC's, which contract a multiply and an add into one fused
multiply-add where it can): the results are the bits of CuPy's kernel, tested for every op with
a C expression, except which NaN a NaN result is (the compiler may return the input's NaN in one
kernel and the canonical 0x7fffffff in the other, as relu's select did on an H100).

This module imports CuPy lazily, like ``deeplearn/math/backends/cuda.py``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MIN_ELEMENTS", "launcher", "overlaps_in_part", "run", "source"]

_log = logging.getLogger(__name__)

MIN_ELEMENTS = 1 << 18
"""The size from which an eager op (``cuda.cuda_kernel``) runs here rather than CuPy's kernel.
Below it the host's part is most of an op's cost, and ``run``'s checks cost more host time than
its launch saves: on an H100 at 0277a23 an eager ``add`` of 1,024 floats took 15.0 µs this way
and 11.7 through CuPy's ElementwiseKernel."""

_THREADS = 256
_MAX_BLOCKS = 1 << 16  # past this many blocks, threads loop over the rest (grid-stride)
_ALIGNMENT = 16
_LANES = ("x", "y", "z", "w")


def source(c_expr: str, names: Sequence[str]) -> str:
    """The CUDA C of the kernel that applies ``c_expr`` (which reads ``names`` and writes
    ``y``, as a CuPy ElementwiseKernel's body does) to float4 lanes, then to the tail.

    Example:
        >>> "dl_vector" in source("y = a + b", ("a", "b"))
        True
    """
    params = ", ".join(f"const float* {v}_" for v in names)
    lanes = []
    for lane in _LANES:
        loads = " ".join(f"T {v} = {v}4.{lane};" for v in names)
        lanes.append(f"        {{ {loads} T y; {c_expr}; out4.{lane} = y; }}")
    vector_loads = " ".join(f"const float4 {v}4 = reinterpret_cast<const float4*>({v}_)[i];" for v in names)
    tail_loads = " ".join(f"T {v} = {v}_[t];" for v in names)
    return "\n".join(
        [
            "typedef float T;",
            f'extern "C" __global__ void __launch_bounds__({_THREADS}) dl_vector({params}, float* y_, '
            "long long n4, long long n) {",
            "    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;",
            "    const long long stride = (long long)gridDim.x * blockDim.x;",
            "    for (long long i = first; i < n4; i += stride) {",
            f"        {vector_loads}",
            "        float4 out4;",
            *lanes,
            "        reinterpret_cast<float4*>(y_)[i] = out4;",
            "    }",
            "    const long long t = 4 * n4 + first;",
            f"    if (t < n) {{ {tail_loads} T y; {c_expr}; y_[t] = y; }}",
            "}",
            "",
        ]
    )


@functools.lru_cache(maxsize=256)  # (an op's fields may change its expression: step's alpha)
def _kernel(c_expr: str, names: tuple[str, ...]) -> Any:
    """The compiled kernel of ``c_expr``, or None where it does not compile as plain CUDA C
    (an expression written for CuPy's own helpers): CuPy's kernel runs it then."""
    import cupy

    # No options: NVRTC's defaults, as CuPy's ElementwiseKernel compiles (the same bits).
    kernel = cupy.RawKernel(source(c_expr, names), "dl_vector")
    try:
        kernel.compile()
    except cupy.cuda.compiler.CompileException as e:  # nothing ran: CuPy's kernel runs it
        _log.warning("the vector kernel of %r does not compile (%s); CuPy's kernel runs it", c_expr, e)
        return None
    return kernel


def overlaps_in_part(x: Any, out: Any) -> bool:
    """Whether ``x``'s memory overlaps ``out``'s without being the same elements: an
    element-wise kernel would then read values another thread has already overwritten."""
    start, end = x.data.ptr, x.data.ptr + x.nbytes
    out_start = out.data.ptr
    return bool(start != out_start and start < out_start + out.nbytes and out_start < end)


def run(c_expr: str, names: tuple[str, ...], arrays: Sequence[Any], out: Any = None) -> Any:
    """``c_expr`` over ``arrays`` (read as ``names``) into ``out`` (a new array if None); None,
    having run nothing, where this kernel does not apply (see the module docstring)."""
    first = arrays[0]
    n = first.size
    if not n:
        return None
    for x in arrays:
        if (
            x.dtype != np.float32
            or x.shape != first.shape
            or not x.flags.c_contiguous
            or x.data.ptr % _ALIGNMENT
        ):
            return None
    if out is not None and (
        out.shape != first.shape
        or out.dtype != np.float32
        or not out.flags.c_contiguous
        or out.data.ptr % _ALIGNMENT
        or any(overlaps_in_part(x, out) for x in arrays)
    ):
        return None
    kernel = _kernel(c_expr, names)
    if kernel is None:
        return None
    import cupy

    if out is None:
        out = cupy.empty(first.shape, np.float32)  # (CuPy's pool: 256-byte aligned)
    n4 = n // 4
    blocks = max(1, min(_MAX_BLOCKS, -(-n4 // _THREADS)))
    kernel((blocks,), (_THREADS,), (*arrays, out, np.int64(n4), np.int64(n)))
    return out


def launcher(c_expr: str, names: tuple[str, ...], shape: tuple[int, ...], fallback: Any) -> Any:
    """A function of float32 arrays of ``shape`` that returns ``c_expr`` over them in a new
    array, with the fewest host steps: for an eager op whose shapes and dtypes an Engine has
    learnt (``cuda.MathBackendCUDA.direct_kernel``), on arrays below ``MIN_ELEMENTS``. None
    where the kernel does not compile or ``shape`` is empty.

    It launches this module's kernel with its vector part empty (``n4 = 0``), so each thread
    runs the tail's code on one element and no alignment is asked of the arrays, through
    ``Function.linear_launch`` (the grid from the count, in compiled code) and ``ndarray``
    itself rather than ``cupy.empty``. An array that is not C-ordered (an NDArray's storage
    always is: ``Engine.result``, ``NDArray._wrap``) goes to ``fallback``, CuPy's kernel; the
    check reads CuPy's ``_c_contiguous``, as ``flags.c_contiguous`` builds an object (0.22 µs
    against 0.04 on an H100's host). A probe there (bench/NOTES.md, "Eager launches worked out
    once"): CuPy's ElementwiseKernel took 6.86 µs a call for an ``add`` of 1,024 floats, this
    launch 6.08 with a Function looked up once, CuPy's own ``add`` 7.42.
    """
    kernel = _kernel(c_expr, names)
    n = math.prod(shape)
    if kernel is None or not n:
        return None
    import cupy

    ndarray, float32, n4, count = cupy.ndarray, np.float32, np.int64(0), np.int64(n)
    # One and two operands written out (every op but a few): no argument tuples to pack and
    # unpack, no loop. (``kernel.kernel``: the Function loaded on the current device, as
    # RawKernel finds it.)
    if len(names) == 1:

        def launch_one(x: Any) -> Any:
            if not x._c_contiguous:
                return fallback(x)
            out = ndarray(shape, float32)
            kernel.kernel.linear_launch(n, (x, out, n4, count), 0, _THREADS)
            return out

        return launch_one
    if len(names) == 2:

        def launch_two(a: Any, b: Any) -> Any:
            if not (a._c_contiguous and b._c_contiguous):
                return fallback(a, b)
            out = ndarray(shape, float32)
            kernel.kernel.linear_launch(n, (a, b, out, n4, count), 0, _THREADS)
            return out

        return launch_two

    def launch(*arrays: Any) -> Any:
        for x in arrays:
            if not x._c_contiguous:
                return fallback(*arrays)
        out = ndarray(shape, float32)
        kernel.kernel.linear_launch(n, (*arrays, out, n4, count), 0, _THREADS)
        return out

    return launch
