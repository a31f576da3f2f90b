"""Timing GPU work between two CUDA events, without the host's time in it.

Two events recorded around some launches time everything the stream does between them; when
the host issues the launches slower than the GPU runs them, the GPU waits for the host and the
interval counts that wait. ``hold(seconds)`` first queues a kernel that keeps the GPU busy for
about ``seconds`` (one thread spinning on the clock), so that the launches issued next queue up
behind it and then run back to back: the interval is then the GPU's time alone, as it is inside
a captured CUDA graph. (The benchmarks' profiler, ``bench/profiling.py``, times ops this way.)

``best_ms`` times a launch that way, and ``pick`` chooses among candidates so timed (cuDNN's
plans, ``cuda_cudnn``).

This module imports CuPy lazily, like ``deeplearn/math/backends/cuda.py``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["NEAR", "best_ms", "hold", "pick"]

NEAR = 1.10
"""A candidate this close to the fastest (time ratio) counts as fast as it (``pick``)."""

_log = logging.getLogger(__name__)

_SOURCE = r"""
extern "C" __global__ void deeplearn_hold(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) { }
}
"""


@functools.cache
def _kernel() -> tuple[Any, float]:
    """The spinning kernel and the GPU's clock in cycles per second."""
    import cupy

    kernel = cupy.RawKernel(_SOURCE, "deeplearn_hold")
    khz = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["clockRate"]
    return kernel, float(khz) * 1e3


_FAILED: list[str] = []


def hold(seconds: float, stream: Any = None) -> bool:
    """Queues a kernel on ``stream`` (the current one by default) that keeps the GPU busy for
    about ``seconds``; False, having queued nothing, where it cannot (the reason logged once).
    Never raises.

    Example:
        >>> held = hold(0.002)  # then record an event, issue the launches, record another
    """
    try:
        import cupy

        kernel, hz = _kernel()
        with stream if stream is not None else cupy.cuda.get_current_stream():
            kernel((1,), (1,), (cupy.int64(int(seconds * hz)),))
    except Exception as e:  # noqa: BLE001 - no compiler, no device: the timings keep the host's time
        if not _FAILED:
            _FAILED.append(f"{type(e).__name__}: {e}")
            _log.info("cuda_timing.hold cannot run (%s); GPU timings include the host's", _FAILED[0])
        return False
    return True


def best_ms(
    launch: Callable[[], Any], stream: Any, launches: int = 4, runs: int = 3, hold_s: float = 0.0005
) -> float:
    """The least time, in milliseconds, of ``runs`` timings of ``launches`` calls of ``launch``
    on ``stream``, each queued behind ``hold`` so that the events time the GPU's work alone.
    The GPU is held for ``hold_s`` at first (enough for a few library calls to queue; a caller
    whose launch is many kernels passes more), then for at least twice as long as the host took
    to issue the last timing's launches (else the host's time would add to theirs).

    Example:
        >>> ms = best_ms(lambda: x.sum(), cupy.cuda.get_current_stream())  # doctest: +SKIP
    """
    import cupy

    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    ms = float("inf")
    for _ in range(runs):  # noise only ever adds: the least is the closest
        hold(hold_s, stream)
        start.record(stream)
        issued = time.perf_counter()
        for _ in range(launches):
            launch()
        hold_s = max(hold_s, 2 * (time.perf_counter() - issued))
        stop.record(stream)
        stop.synchronize()
        ms = min(ms, cupy.cuda.get_elapsed_time(start, stop))
    return ms


def pick(timed: Sequence[tuple[int, float]], near: float = NEAR) -> int:
    """The candidate to keep among ``timed`` ((index, time), in order of preference): the
    first whose time is within ``near`` times the fastest's. Breaking near ties by the order,
    not by the timings' noise, makes processes on the same GPU tend to keep the same choice.

    Example:
        >>> pick([(0, 9.0), (3, 1.05), (5, 1.0)])  # 3 is within 10 % of the fastest, and first
        3
        >>> pick([(0, 9.0), (3, 1.2), (5, 1.0)])
        5
    """
    if not timed:
        raise ValueError("cuda_timing.pick: needs at least one timed candidate; got none.")
    fastest = min(t for _, t in timed)
    return next(index for index, t in timed if t <= fastest * near)
