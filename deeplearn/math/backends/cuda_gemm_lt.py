"""Each matrix product's algorithm, chosen by timing: cuBLASLt's candidates against cuBLAS's own pick.

A training step's products are small (mlp's are 128 rows by 512 or 784 columns): the tile grid
cuBLAS's ``sgemm`` picks for them fills a few of an H100's or H200's 132 multiprocessors, and
each product takes ~10 µs where the arithmetic needs a fraction of that. cuBLASLt can split the
inner dimension over more thread blocks (split-K) and offers other tiles; its heuristics rank
them without running them. So the first product of each geometry (m, n, k and which operands
are transposed) times, on its own operands:

* cuBLAS's ``sgemm`` (what ``cuda_gemm`` runs without this module), first in the order;
* the algorithms cuBLASLt's heuristics propose, best first;
* for the first few of those, the same algorithm with the inner dimension split 2 to 32 ways
  (``_SPLITS``), where cuBLASLt accepts the configuration (``matmul_algo_check``).

Only plain fp32 products are candidates (compute type ``COMPUTE_32F``: no TF32, no reduced
precision), and every split-K reduction is one that adds the parts in a fixed order (in place
behind counters, or in the workspace), so a kept algorithm gives the same bits on every call.
A candidate is kept only if its output on the operands agrees with ``sgemm``'s (to 1e-5 of the
largest value: a wrong layout is far off); of those that agree, ``cuda_timing.pick`` keeps the
first within 10 % of the fastest. Ties go to ``sgemm``: a choice changes the bits of the
products (another order of the additions), so it is made only where it pays.

A choice is kept for the life of the process (a captured CUDA graph may hold its kernel) and
made once even when threads race to it; ``plan_log`` names it. A geometry seen first while a
stream is being captured cannot be timed: it keeps ``sgemm`` (logged). ``benchmark = False``
turns the timing off: every geometry then runs ``sgemm``, as before this module. Products whose
operands are not 16-byte aligned (a view into an array, say) run ``sgemm``.

This module imports CuPy and nvmath-python lazily, like ``cuda_gemm``.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from deeplearn.math.backends import cuda_timing

__all__ = ["Geometry", "LtPlan", "benchmark", "plan_for", "plan_log", "run"]

_log = logging.getLogger(__name__)

benchmark = True
"""Time cuBLASLt's algorithms against ``sgemm`` at each geometry's first product (else ``sgemm``)."""

_CANDIDATES = 24  # algorithms asked of cuBLASLt's heuristics per geometry
_SPLIT_FIRST = 4  # how many of them are also tried split over the inner dimension
_SPLITS = (2, 4, 8, 16, 32)
_AGREEMENT = 1e-5  # of the largest |value|: another order of the additions, not another product
_ALIGNMENT = 16  # bytes; the heuristics are asked for algorithms that need no more
_WORK_PER_TIMING = 1 << 27  # multiply-adds per timed batch of launches, at least (~0.1 ms of H200 work)


class Geometry(NamedTuple):
    """A product C[m, n] = op(A)·op(B) with inner dimension k, A or B transposed or not."""

    m: int
    n: int
    k: int
    a_transposed: bool
    b_transposed: bool


class LtPlan(NamedTuple):
    """One geometry's cuBLASLt product: its descriptors, the algorithm kept and its workspace."""

    desc: int
    a_layout: int  # of cuBLASLt's A, which is our B (see ``cuda_gemm.gemm`` on the orders)
    b_layout: int  # of cuBLASLt's B, our A
    c_layout: int
    algo: np.ndarray  # one cublasLtMatmulAlgo_t, kept alive for its address
    workspace: int
    name: str


_PLANS: dict[Geometry, LtPlan | None] = {}
plan_log: dict[Geometry, str] = {}
"""Per geometry planned, the product kept: ``"sgemm"`` or cuBLASLt's algorithm (id, tile, split)."""

_LOCK = threading.Lock()


@functools.cache
def _lt() -> tuple[Any, int]:
    """nvmath-python's cuBLASLt bindings and this process's cuBLASLt handle."""
    from nvmath.bindings import cublasLt

    return cublasLt, cublasLt.create()


def _set(
    setter: Callable[..., Any], dtype_of: Callable[[int], Any], target: int, attr: Any, value: int
) -> None:
    """Sets one cuBLASLt attribute from a Python int, in the C type cuBLASLt reads it as."""
    buf = np.array(value, dtype=dtype_of(attr))
    setter(target, attr, buf.ctypes.data, buf.itemsize)


def _describe(lt: Any, g: Geometry) -> tuple[int, int, int, int]:
    """The operation and layout descriptors of ``g``, column-major as cuBLASLt reads them:
    the C-ordered C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ (as in ``cuda_gemm``)."""
    from nvmath.bindings import cublas

    f32 = 0  # CUDA_R_32F
    desc = lt.matmul_desc_create(cublas.ComputeType.COMPUTE_32F, f32)
    attrs = lt.MatmulDescAttribute
    _set(
        lt.matmul_desc_set_attribute,
        lt.get_matmul_desc_attribute_dtype,
        desc,
        attrs.TRANSA,
        int(g.b_transposed),
    )
    _set(
        lt.matmul_desc_set_attribute,
        lt.get_matmul_desc_attribute_dtype,
        desc,
        attrs.TRANSB,
        int(g.a_transposed),
    )
    # Our B, C-ordered [k, n] (or [n, k] transposed), is the column-major [n, k] (or [k, n]).
    a_layout = lt.matrix_layout_create(f32, *((g.k, g.n, g.k) if g.b_transposed else (g.n, g.k, g.n)))
    b_layout = lt.matrix_layout_create(f32, *((g.m, g.k, g.m) if g.a_transposed else (g.k, g.m, g.k)))
    c_layout = lt.matrix_layout_create(f32, g.n, g.m, g.n)
    return desc, a_layout, b_layout, c_layout


def _candidates(
    lt: Any, handle: int, layouts: tuple[int, int, int, int], workspace: int
) -> list[tuple[np.ndarray, int]]:
    """(algorithm, workspace bytes) pairs to time, in the heuristics' order, each followed by
    its split-K variants (for the first ``_SPLIT_FIRST``) that cuBLASLt accepts."""
    desc, a, b, c = layouts
    pref = lt.matmul_preference_create()
    try:
        p = lt.MatmulPreferenceAttribute
        dtype_of = lt.get_matmul_preference_attribute_dtype
        _set(lt.matmul_preference_set_attribute, dtype_of, pref, p.MAX_WORKSPACE_BYTES, workspace)
        for attr in (
            p.MIN_ALIGNMENT_A_BYTES,
            p.MIN_ALIGNMENT_B_BYTES,
            p.MIN_ALIGNMENT_C_BYTES,
            p.MIN_ALIGNMENT_D_BYTES,
        ):
            _set(lt.matmul_preference_set_attribute, dtype_of, pref, attr, _ALIGNMENT)
        results = np.zeros(_CANDIDATES, dtype=lt.matmul_heuristic_result_dtype)
        count = np.zeros(1, np.int32)
        lt.matmul_algo_get_heuristic(
            handle, desc, a, b, c, c, pref, _CANDIDATES, results.ctypes.data, count.ctypes.data
        )
    finally:
        lt.matmul_preference_destroy(pref)
    found: list[tuple[np.ndarray, int]] = []
    for i in range(int(count[0])):
        if results[i]["state"] != 0:  # CUBLAS_STATUS_SUCCESS
            continue
        found.append((results[i : i + 1]["algo"].copy(), int(results[i]["workspace_size"])))
        if i < _SPLIT_FIRST:
            found += _split_variants(lt, handle, layouts, results[i : i + 1]["algo"], workspace)
    return found


def _split_variants(
    lt: Any, handle: int, layouts: tuple[int, int, int, int], algo: np.ndarray, workspace: int
) -> list[tuple[np.ndarray, int]]:
    """``algo`` with its inner dimension split ``_SPLITS`` ways, reduced in the workspace in a
    fixed order, where cuBLASLt accepts it within ``workspace`` bytes."""
    desc, a, b, c = layouts
    cfg = lt.MatmulAlgoConfigAttribute
    dtype_of = lt.get_matmul_algo_config_attribute_dtype
    variants = []
    for splits in _SPLITS:
        variant = algo.copy()
        check = np.zeros(1, dtype=lt.matmul_heuristic_result_dtype)
        try:
            _set(lt.matmul_algo_config_set_attribute, dtype_of, variant.ctypes.data, cfg.SPLITK_NUM, splits)
            # CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE: the parts summed in the workspace, in order.
            _set(lt.matmul_algo_config_set_attribute, dtype_of, variant.ctypes.data, cfg.REDUCTION_SCHEME, 2)
            lt.matmul_algo_check(handle, desc, a, b, c, c, variant.ctypes.data, check.ctypes.data)
        except Exception:  # noqa: BLE001 - a configuration cuBLASLt does not support is no candidate
            continue
        size = int(check[0]["workspace_size"])
        if size <= workspace:
            variants.append((variant, size))
    return variants


def _name(lt: Any, algo: np.ndarray) -> str:
    """``algo``'s id, tile and split, as the log names it."""
    cfg = lt.MatmulAlgoConfigAttribute
    parts = []
    for label, attr in (("id", cfg.ID), ("tile", cfg.TILE_ID), ("split", cfg.SPLITK_NUM)):
        buf = np.zeros(1, dtype=lt.get_matmul_algo_config_attribute_dtype(attr))
        written = np.zeros(1, np.uint64)
        try:
            lt.matmul_algo_config_get_attribute(
                algo.ctypes.data, attr, buf.ctypes.data, buf.itemsize, written.ctypes.data
            )
        except Exception:  # noqa: BLE001 - a name is for the log only
            continue
        parts.append(f"{label} {int(buf[0])}")
    return "cublasLt " + ", ".join(parts)


def run(plan: LtPlan, a: Any, b: Any, c: Any, workspace: int, stream: int, one: int, zero: int) -> None:
    """c = op(a)·op(b) by ``plan`` on ``stream``, the workspace at address ``workspace``
    (at least ``plan.workspace`` bytes), alpha and beta read from host addresses."""
    lt, handle = _lt()
    lt.matmul(
        handle,
        plan.desc,
        one,
        b.data.ptr,
        plan.a_layout,
        a.data.ptr,
        plan.b_layout,
        zero,
        c.data.ptr,
        plan.c_layout,
        c.data.ptr,
        plan.c_layout,
        plan.algo.ctypes.data,
        workspace,
        plan.workspace,
        stream,
    )


def aligned(*arrays: Any) -> bool:
    """Whether every array starts at an address the planned algorithms accept."""
    return all(x.data.ptr % _ALIGNMENT == 0 for x in arrays)


def plan_for(
    g: Geometry,
    a: Any,
    b: Any,
    sgemm: Callable[[Any], None],
    workspace: tuple[int, int],
    one: int,
    zero: int,
) -> LtPlan | None:
    """The cuBLASLt plan kept for ``g`` (None: ``sgemm`` runs it), chosen at its first call on
    the operands ``a`` and ``b`` (see the module docstring). ``sgemm(out)`` writes cuBLAS's
    product into ``out``; ``workspace`` is (address, bytes) of the caller's workspace."""
    try:
        return _PLANS[g]
    except KeyError:
        pass
    import cupy

    with _LOCK:
        if g in _PLANS:
            return _PLANS[g]
        stream = cupy.cuda.get_current_stream()
        if not benchmark or stream.is_capturing():
            if benchmark:
                _log.info("matrix product %s first seen while a stream is captured: it keeps sgemm", g)
            _PLANS[g], plan_log[g] = None, "sgemm"
            return None
        try:
            plan = _choose(g, a, b, sgemm, workspace, one, zero, stream)
        except Exception as e:  # noqa: BLE001 - no cuBLASLt, out of memory: sgemm as before
            _log.info("cuBLASLt could not plan %s (%s: %s); it runs sgemm", g, type(e).__name__, e)
            plan = None
        _PLANS[g] = plan
        plan_log[g] = "sgemm" if plan is None else plan.name
        _log.debug("matrix product %s: %s", g, plan_log[g])
        return plan


def _choose(
    g: Geometry,
    a: Any,
    b: Any,
    sgemm: Callable[[Any], None],
    workspace: tuple[int, int],
    one: int,
    zero: int,
    stream: Any,
) -> LtPlan | None:
    import cupy

    lt, handle = _lt()
    layouts = _describe(lt, g)
    keep = False
    try:
        candidates = _candidates(lt, handle, layouts, workspace[1])
        # Scratch outputs from CuPy's default pool, not from a captured Program's own pool.
        with cupy.cuda.using_allocator(cupy.get_default_memory_pool().malloc):
            want = cupy.empty((g.m, g.n), np.float32)
            out = cupy.empty_like(want)
        sgemm(want)
        tolerance = _AGREEMENT * float(cupy.abs(want).max()) + 1e-30
        launches = max(2, min(64, _WORK_PER_TIMING // max(1, g.m * g.n * g.k)))
        timed = [(-1, cuda_timing.best_ms(lambda: sgemm(out), stream, launches))]
        for index, (algo, size) in enumerate(candidates):
            plan = LtPlan(*layouts, algo, size, "")
            try:
                out.fill(np.nan)
                run(plan, a, b, out, workspace[0], stream.ptr, one, zero)
                if not float(cupy.abs(out - want).max()) <= tolerance:  # (NaN: a cell it did not write)
                    continue
                ms = cuda_timing.best_ms(
                    functools.partial(run, plan, a, b, out, workspace[0], stream.ptr, one, zero),
                    stream,
                    launches,
                )
            except Exception as e:  # noqa: BLE001 - a candidate that does not run is no candidate
                _log.debug("cuBLASLt algorithm %d for %s failed: %s", index, g, e)
                continue
            timed.append((index, ms))
        chosen = cuda_timing.pick(timed)
        _log.debug(
            "matrix product %s timed (candidate, ms per %d launches): %s; kept %d", g, launches, timed, chosen
        )
        if chosen < 0:
            return None
        algo, size = candidates[chosen]
        keep = True
        return LtPlan(*layouts, algo, size, _name(lt, algo))
    finally:
        if not keep:
            desc, *matrices = layouts
            lt.matmul_desc_destroy(desc)
            for layout in matrices:
                lt.matrix_layout_destroy(layout)
