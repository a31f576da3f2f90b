"""Small float32 matrix products by kernels of our own, kept per geometry where they beat cuBLAS.

A training step's products are small: mlp's are 128 rows by 512 or 784 columns. The tile grid
cuBLAS's ``sgemm`` picks for them fills a few of an H100's 132 multiprocessors, so it splits the
inner dimension and adds the parts in a second kernel, or leaves most of the chip idle; cuBLASLt's
other algorithms did no better at these shapes (bench/NOTES.md, commit 85fffc2). The kernels
here are tiled SIMT products (no TF32: every multiply-add is a float32 ``fmaf``):

* a thread block computes a ``bm × bn`` tile of C, each thread a ``tm × tn`` patch of it, from
  ``bk``-deep slices of A and B staged through shared memory;
* the plain kernel (``TILINGS``) reads the next slice into registers while the current one is
  multiplied, and takes any operands; the pipelined one (``PIPELINED``) copies slices with
  ``cp.async`` several ahead, without registers on the way, and needs 16-byte aligned operands
  whose rows are whole 16-byte pieces (``vectorizable``);
* with ``splits`` > 1 the inner dimension is cut into that many chunks, one per grid layer; each
  layer writes its partial product and a second kernel adds the layers in order (z = 0, 1, ...),
  so a plan gives the same bits on every call. (Having each tile's last block add them instead,
  one kernel fewer, was timed slower at every shape of mlp on an H100: bench/NOTES.md.)
* on Hopper and later (compute capability 9.0), a split of 2 to ``MAX_CLUSTER`` layers may also
  run ``clustered``: the layers of a tile are one thread block cluster, whose blocks add their
  parts through each other's shared memory, in the same order, after a barrier of the cluster.
  The same bits as the two kernels, in one, and no parts in global memory.

The first product of each geometry (m, n, k and which operands are transposed) times, on
operands of its shape drawn at random, cuBLAS's ``sgemm`` and every candidate plan
(``candidates``: a handful of tilings, each split 1 to 16 ways, kept to grids of a sensible
size) with ``cuda_timing.best_ms``, which times the GPU's work alone, as inside a captured graph. A candidate counts only if its product
agrees with ``sgemm``'s (to 1e-5 of the largest value); ``sgemm`` comes first and keeps the
geometry unless a plan is more than ``NEAR`` faster, since a plan changes the order of the
additions and so the bits. Products outside ``[_MIN_WORK, _MAX_WORK]`` multiply-adds are never
timed: below, a launch costs more than the arithmetic; above, cuBLAS's large tiles fill the chip.

A choice lasts for the process (a captured CUDA graph may hold its kernel), and gives the same
bits on every call, except that a pipelined plan gives way to ``sgemm`` for an operand off
16-byte alignment (a view into a larger array). ``plan_log`` names each geometry's;
``benchmark = False`` turns the timing off (every product then runs ``sgemm``). A geometry
first seen while a stream is being captured cannot be timed, and keeps ``sgemm``.

Example (on a GPU):
    >>> a = cupy.ones((128, 784), cupy.float32); b = cupy.ones((784, 512), cupy.float32)  # doctest: +SKIP
    >>> cuda_gemm.gemm(a, b, False, False)  # the first call plans (128, 512, 784, False, False)  # doctest: +SKIP
    >>> cuda_sgemm.plan_log  # doctest: +SKIP
    {Geometry(m=128, n=512, k=784, a_transposed=False, b_transposed=False): 'tiles 32x32x32/4x4, 3 stages, split 9'}

This module imports CuPy lazily, like ``deeplearn/math/backends/cuda.py``.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from deeplearn.math.backends import cuda_timing
from deeplearn.math.backends.cuda_sgemm_kernels import SOURCE, source

__all__ = [
    "MAX_CLUSTER",
    "NEAR",
    "Sgemm",
    "PIPELINED",
    "TILINGS",
    "Geometry",
    "Plan",
    "Tiling",
    "benchmark",
    "candidates",
    "clusterable",
    "eligible",
    "parts_for",
    "plan_for",
    "plan_log",
    "run",
    "runs",
    "sizes",
    "source",
    "sum_grid",
    "vectorizable",
    "whole_pieces",
]

_log = logging.getLogger(__name__)

benchmark = True
"""Time our plans against ``sgemm`` at each eligible geometry's first product (else ``sgemm``)."""

NEAR = 1.03
"""``sgemm`` keeps a geometry unless a plan of ours is faster than it by more than this ratio."""

_MIN_WORK = 1 << 18  # multiply-adds: below this a product is all launch, and sgemm is as good
_MAX_WORK = 1 << 28  # above, cuBLAS's own tiles fill the chip (mlpbig's 4096³ is 2³⁶)
_MAX_BLOCKS = 1024  # a grid larger than ~8 waves of 132 multiprocessors gains nothing more
_MIN_BLOCKS = 8
_AGREEMENT = 1e-5  # of the largest |value|: another order of the additions, not another product
_WORK_PER_TIMING = 1 << 27  # multiply-adds per timed batch of launches, at least
_SUM_THREADS = 256
# Driver errors with which a clustered launch is refused, the context left sound: an invalid
# cluster size, an invalid value (reported for cluster launches on some GPUs), too few resources.
_REFUSED_CLUSTER = frozenset({912, 1, 701})


class Geometry(NamedTuple):
    """A product C[m, n] = op(A)·op(B) with inner dimension k, A or B transposed or not."""

    m: int
    n: int
    k: int
    a_transposed: bool
    b_transposed: bool

    @classmethod
    def of(cls, a: Any, b: Any, a_transposed: bool, b_transposed: bool) -> Geometry:
        """The product op(a)·op(b) of matrices ``a`` and ``b``.

        Example:
            >>> Geometry.of(np.empty((784, 128)), np.empty((784, 512)), True, False)
            Geometry(m=128, n=512, k=784, a_transposed=True, b_transposed=False)
        """
        m, k = (a.shape[1], a.shape[0]) if a_transposed else a.shape
        return cls(m, b.shape[0] if b_transposed else b.shape[1], k, a_transposed, b_transposed)


class Tiling(NamedTuple):
    """A block's ``bm × bn`` tile of C, ``bk`` deep per slice; each thread's ``tm × tn`` patch;
    with ``stages`` (≥ 2) the pipelined kernel, that many slices in shared memory at once."""

    bm: int
    bn: int
    bk: int
    tm: int
    tn: int
    stages: int = 0

    @property
    def threads(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)

    @property
    def name(self) -> str:
        staged = f", {self.stages} stages" if self.stages else ""
        return f"tiles {self.bm}x{self.bn}x{self.bk}/{self.tm}x{self.tn}{staged}"

    def flags(self, a_transposed: bool, b_transposed: bool) -> tuple[bool, bool]:
        """The kernel's two layout flags for operands stored so: the pipelined kernel's say
        which operands are stored with k running fastest (and its threads' patches are then
        strided across the tile: ``deeplearn_store``); the plain kernel's, which are stored
        with m (A transposed: (k, m)) or n (B not transposed: (k, n)) running fastest."""
        if self.stages:
            return not a_transposed, b_transposed
        return a_transposed, not b_transposed

    def template(self, a_transposed: bool, b_transposed: bool) -> tuple[str, str]:
        """(the kernel family's name, its template arguments) for operands stored so."""
        sizes = f"{self.bm}, {self.bn}, {self.bk}, {self.tm}, {self.tn}"
        flags = ", ".join(str(f).lower() for f in self.flags(a_transposed, b_transposed))
        if self.stages:
            return "deeplearn_sgemm_async", f"{sizes}, {self.stages}, {flags}"
        return "deeplearn_sgemm", f"{sizes}, {flags}"

    def kernel(self, a_transposed: bool, b_transposed: bool, cluster: int = 0) -> str:
        """The name of this tiling's kernel instance for operands stored so; with ``cluster``,
        the one whose split layers, that many, are a thread block cluster."""
        family, params = self.template(a_transposed, b_transposed)
        return f"{family}_cluster<{params}, {cluster}>" if cluster else f"{family}<{params}>"

    def shared_bytes(self, clustered: bool = False) -> int:
        """The static shared memory of a block: its slices of A and B (the plain kernel's two
        [bk][rows + 4] buffers, or the pipelined one's ``stages`` slices as each operand is
        stored), and a clustered kernel's tile of C."""
        if self.stages:
            floats = self.stages * sum(max(r * (self.bk + 4), self.bk * (r + 4)) for r in (self.bm, self.bn))
        else:
            floats = 2 * self.bk * (self.bm + 4 + self.bn + 4)
        return 4 * (floats + (self.bm * self.bn if clustered else 0))


# The tilings the H100 probe of mlp's eight products found best, one shape or another (bench/NOTES.md).
TILINGS = (
    Tiling(64, 32, 16, 4, 2),
    Tiling(32, 32, 16, 2, 2),
    Tiling(64, 64, 16, 4, 4),
    Tiling(32, 64, 32, 4, 2),
    Tiling(16, 64, 16, 2, 4),
    Tiling(128, 32, 8, 4, 4),
)
PIPELINED = (  # for 16-byte aligned operands (``vectorizable``); tm and tn multiples of 4
    Tiling(64, 64, 16, 4, 4, 3),
    Tiling(32, 64, 16, 4, 4, 4),
    Tiling(64, 32, 16, 4, 4, 4),
    Tiling(32, 32, 32, 4, 4, 3),
    Tiling(128, 64, 16, 8, 4, 3),
    Tiling(64, 64, 8, 4, 4, 4),
    Tiling(32, 32, 16, 4, 4, 4),
    Tiling(64, 32, 32, 4, 4, 3),
)
MAX_SPLITS = 16  # more parts than this cost more to add than the grid gains
MAX_CLUSTER = 8  # the largest thread block cluster every Hopper GPU runs (a portable size)
_CLUSTER_TILE = 32 * 32  # elements of C at most in a clustered tile (the tilings split plans won with)
_SHARED_LIMIT = 48 << 10  # static shared memory a block may have


def clusterable(tiling: Tiling) -> bool:
    """Whether ``tiling`` has clustered kernels: a tile of at most ``_CLUSTER_TILE`` elements
    whose slices and part fit a block's static shared memory.

    Example:
        >>> clusterable(Tiling(32, 32, 16, 2, 2)), clusterable(Tiling(64, 32, 16, 4, 2))
        (True, False)
    """
    return tiling.bm * tiling.bn <= _CLUSTER_TILE and tiling.shared_bytes(True) <= _SHARED_LIMIT


class Plan(NamedTuple):
    """One geometry's product of ours: a tiling, and the inner dimension cut into ``splits``
    chunks of ``chunk`` (a multiple of the tiling's ``bk``; the last chunk may be shorter),
    whose parts a second kernel adds, or, ``clustered``, the blocks of a cluster."""

    tiling: Tiling
    splits: int
    chunk: int
    clustered: bool = False

    @property
    def name(self) -> str:
        return f"{self.tiling.name}, split {self.splits}{' in a cluster' if self.clustered else ''}"

    def kernel(self, a_transposed: bool, b_transposed: bool) -> str:
        """The name of its kernel instance for operands stored so."""
        return self.tiling.kernel(a_transposed, b_transposed, self.splits if self.clustered else 0)

    def grid(self, g: Geometry) -> tuple[int, int, int]:
        return (-(-g.n // self.tiling.bn), -(-g.m // self.tiling.bm), self.splits)


def candidates(g: Geometry, pipelined: bool = False, clustered: bool = False) -> list[Plan]:
    """The plans worth timing for ``g``: each tiling (the pipelined ones too where asked, for
    operands that allow them), split so that every chunk holds work (no empty grid layer) and
    the grid has between ``_MIN_BLOCKS`` and ``_MAX_BLOCKS`` blocks; where ``clustered`` is
    asked (a GPU with clusters), each split of 2 to ``MAX_CLUSTER`` of a ``clusterable`` tiling
    clustered too.

    Example:
        >>> [p.name for p in candidates(Geometry(128, 512, 784, False, False))][:2]
        ['tiles 64x32x16/4x2, split 1', 'tiles 64x32x16/4x2, split 2']
    """
    plans = []
    for tiling in TILINGS + (PIPELINED if pipelined else ()):
        for splits in range(1, MAX_SPLITS + 1):
            chunk = -(-(-(-g.k // splits)) // tiling.bk) * tiling.bk  # ⌈⌈k/splits⌉ / bk⌉·bk
            if -(-g.k // chunk) != splits:
                continue  # fewer chunks than asked: the same as a smaller split
            plan = Plan(tiling, splits, chunk)
            gx, gy, gz = plan.grid(g)
            if _MIN_BLOCKS <= gx * gy * gz <= _MAX_BLOCKS:
                plans.append(plan)
                if clustered and 2 <= splits <= MAX_CLUSTER and clusterable(tiling):
                    plans.append(plan._replace(clustered=True))
    return plans


def whole_pieces(g: Geometry) -> bool:
    """Whether every row of ``g``'s C-ordered operands is whole 16-byte pieces (their leading
    dimensions, A's ``k`` or ``m`` and B's ``n`` or ``k``, multiples of 4 floats): the
    geometry's half of what the pipelined kernels need (``vectorizable``).

    Example:
        >>> whole_pieces(Geometry(128, 512, 784, False, False)), whole_pieces(Geometry(128, 10, 512, False, False))
        (True, False)
    """
    return (g.m if g.a_transposed else g.k) % 4 == 0 and (g.k if g.b_transposed else g.n) % 4 == 0


def vectorizable(g: Geometry, a: Any, b: Any) -> bool:
    """Whether the pipelined kernels can read ``a`` and ``b`` (C-ordered operands of ``g``): 16
    bytes at a time, from 16-byte aligned addresses, every row starting on one."""
    return a.data.ptr % 16 == 0 and b.data.ptr % 16 == 0 and whole_pieces(g)


def runs(plan: Plan, g: Geometry, a: Any, b: Any) -> bool:
    """Whether ``plan`` can run on these operands (a pipelined plan needs ``vectorizable`` ones:
    a later product of the same geometry may come on a view that is not)."""
    return not plan.tiling.stages or vectorizable(g, a, b)


def eligible(g: Geometry) -> bool:
    """Whether ``g``'s first product times our plans (its size is in the range they can win)."""
    return _MIN_WORK <= g.m * g.n * g.k <= _MAX_WORK


@functools.cache
def _pipelines() -> bool:
    """Whether this GPU has ``cp.async`` (compute capability 8.0 and later)."""
    import cupy

    return int(cupy.cuda.Device().compute_capability) >= 80


@functools.cache
def _clusters() -> bool:
    """Whether this GPU has thread block clusters (compute capability 9.0 and later)."""
    import cupy

    return int(cupy.cuda.Device().compute_capability) >= 90


def _family(a_transposed: bool, b_transposed: bool, pipelined: bool, clustered: bool) -> list[str]:
    """The names of a kernel family's instances for one operand layout: every tiling of the
    plain or the pipelined kernel, or, ``clustered``, every cluster size of each clusterable one."""
    tilings = PIPELINED if pipelined else TILINGS
    if not clustered:
        return [t.kernel(a_transposed, b_transposed) for t in tilings]
    sizes = range(2, MAX_CLUSTER + 1)
    return [t.kernel(a_transposed, b_transposed, s) for t in tilings if clusterable(t) for s in sizes]


@functools.cache
def _module(a_transposed: bool, b_transposed: bool, pipelined: bool, clustered: bool = False) -> Any:
    """One kernel family's kernels (``_family``) for one operand layout, compiled by NVRTC at
    first use (CuPy keeps the binary on disk, so a later process loads it); None, logged once,
    where it does not compile (and then no plan of that family is timed)."""
    import cupy

    names = _family(a_transposed, b_transposed, pipelined, clustered)
    try:
        module = cupy.RawModule(code=SOURCE, options=("-std=c++17",), name_expressions=names)
        module.get_function(names[0])  # compiles now, not at the first launch
    except Exception as e:  # noqa: BLE001 - no NVRTC, a compiler that refuses it
        family = ("pipelined" if pipelined else "plain") + (" clustered" if clustered else "")
        _log.info(
            "our %s matrix products do not compile here (%s: %s); their plans are not timed",
            family,
            type(e).__name__,
            e,
        )
        return None
    return module


def run(plan: Plan, g: Geometry, a: Any, b: Any, c: Any, held: list[Any] | None = None) -> None:
    """c = op(a)·op(b) by ``plan`` on the current stream (C-ordered float32 CuPy matrices).

    A split plan's kernels also write and read a buffer of parts. Captured into a CUDA graph,
    they go on using it at every replay, so while the stream is being captured the buffer is
    appended to ``held`` (a list that lives as long as the graph: see ``cuda_gemm``), lest the
    memory pool hand it to someone else. (A CapturedProgram's private pool keeps it anyway.)
    """
    kernel, adder = _functions(plan, g.a_transposed, g.b_transposed)
    parts = parts_for(plan, g, held)
    kernel(
        plan.grid(g), (plan.tiling.threads,), (a, b, c, c if parts is None else parts, *sizes(plan, g, a, b))
    )
    if parts is not None:
        adder(*sum_grid(g), (parts, c, np.int64(g.m * g.n), np.int32(plan.splits)))


def sizes(plan: Plan, g: Geometry, a: Any, b: Any) -> tuple[np.int32, ...]:
    """The sizes a plan's product kernel takes after its pointers: m, n, k, the operands' row
    lengths as stored, and the plan's chunk of k."""
    i32 = np.int32
    return i32(g.m), i32(g.n), i32(g.k), i32(a.shape[1]), i32(b.shape[1]), i32(plan.chunk)


def sum_grid(g: Geometry) -> tuple[tuple[int], tuple[int]]:
    """The grid and block of the kernel that adds a split's parts: a thread per element of C."""
    return (-(-(g.m * g.n) // _SUM_THREADS),), (_SUM_THREADS,)


def parts_for(plan: Plan, g: Geometry, held: list[Any] | None) -> Any:
    """The buffer a split added by a second kernel writes its parts into (None for any other
    plan): new, and appended to ``held`` while the current stream is being captured (see
    ``run``)."""
    if plan.splits == 1 or plan.clustered:
        return None
    import cupy

    parts = cupy.empty((plan.splits, g.m, g.n), np.float32)
    if held is not None and cupy.cuda.get_current_stream().is_capturing():
        held.append(parts)
    return parts


@functools.cache
def _functions(plan: Plan, a_transposed: bool, b_transposed: bool) -> tuple[Any, Any]:
    """``plan``'s kernel for operands stored so, and the kernel that adds split parts, looked up
    once: a lookup is a driver call and builds the instance's name, on every eager product."""
    module = _module(a_transposed, b_transposed, bool(plan.tiling.stages), plan.clustered)
    return module.get_function(plan.kernel(a_transposed, b_transposed)), module.get_function(
        "deeplearn_sgemm_sum"
    )


_PLANS: dict[Geometry, Plan | None] = {}
plan_log: dict[Geometry, str] = {}
"""Per eligible geometry seen, the product kept: ``"sgemm"`` or our plan's name."""

_LOCK = threading.Lock()


Sgemm = Callable[[Any, Any, bool, bool, Any], None]
"""``sgemm(a, b, a_transposed, b_transposed, out)``: cuBLAS's product op(a)·op(b) into ``out``."""


def plan_for(g: Geometry, sgemm: Sgemm) -> Plan | None:
    """The plan kept for ``g`` (None: ``sgemm`` runs it), chosen at its first product (see the
    module docstring) on operands of its shape drawn from a normal distribution (not the
    caller's, which may be zeros, or hold a NaN that every candidate would disagree on).
    Never raises for want of a compiler or memory: then ``sgemm`` is kept."""
    try:
        return _PLANS[g]
    except KeyError:
        if not (benchmark and eligible(g)):
            return None
    import cupy

    with _LOCK:
        if g in _PLANS:
            return _PLANS[g]
        stream = cupy.cuda.get_current_stream()
        plan = None
        if stream.is_capturing():
            _log.info("matrix product %s first seen while a stream is captured: it keeps sgemm", g)
        else:
            try:
                plan = _choose(g, sgemm, stream)
            except Exception as e:  # noqa: BLE001 - no compiler, out of memory: sgemm as before
                _log.info(
                    "could not time our products for %s (%s: %s); it runs sgemm", g, type(e).__name__, e
                )
        _PLANS[g] = plan
        plan_log[g] = "sgemm" if plan is None else plan.name
        _log.debug("matrix product %s: %s", g, plan_log[g])
        return plan


def _choose(g: Geometry, sgemm: Sgemm, stream: Any) -> Plan | None:
    import cupy

    pipelined = whole_pieces(g) and _pipelines()
    plans = [
        p
        for p in candidates(g, pipelined, _clusters())
        if _module(g.a_transposed, g.b_transposed, bool(p.tiling.stages), p.clustered) is not None
    ]
    at, bt = g.a_transposed, g.b_transposed
    # Scratch operands and outputs from CuPy's default pool, not from a captured Program's own.
    with cupy.cuda.using_allocator(cupy.get_default_memory_pool().malloc):
        rng = cupy.random.default_rng(0)
        a = rng.standard_normal((g.k, g.m) if at else (g.m, g.k), dtype=np.float32)
        b = rng.standard_normal((g.n, g.k) if bt else (g.k, g.n), dtype=np.float32)
        want = cupy.empty((g.m, g.n), np.float32)
        out = cupy.empty_like(want)
        sgemm(a, b, at, bt, want)
        tolerance = _AGREEMENT * float(cupy.abs(want).max())
        launches = max(2, min(64, _WORK_PER_TIMING // (g.m * g.n * g.k)))
        timed = [(-1, cuda_timing.best_ms(lambda: sgemm(a, b, at, bt, out), stream, launches))]
        for index, plan in enumerate(plans):
            out.fill(np.nan)  # a cell the plan does not write fails the agreement below
            try:
                run(plan, g, a, b, out)
            except cupy.cuda.driver.CUDADriverError as e:
                # A cluster this GPU cannot place is refused at launch, leaving the context
                # sound: that plan alone is out. Any other error is raised (a fault after the
                # launch would break every later call; it must not pass for a refusal).
                if not plan.clustered or e.status not in _REFUSED_CLUSTER:
                    raise
                _log.warning("our product %s cannot launch on this GPU (%s): not kept", plan.name, e)
                continue
            if not float(cupy.abs(out - want).max()) <= tolerance:
                _log.warning("our product %s disagrees with sgemm on %s: not kept", plan.name, g)
                continue
            timed.append(
                (
                    index,
                    cuda_timing.best_ms(functools.partial(run, plan, g, a, b, out), stream, launches),
                )
            )
    chosen = cuda_timing.pick(timed, NEAR)
    _log.debug(
        "matrix product %s timed (candidate, ms per %d launches): %s; kept %d", g, launches, timed, chosen
    )
    return None if chosen < 0 else plans[chosen]
