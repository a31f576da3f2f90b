"""Timing GPU work between two CUDA events, without the host's time in it.

Two events recorded around some launches time everything the stream does between them; when
the host issues the launches slower than the GPU runs them, the GPU waits for the host and the
interval counts that wait. ``hold(seconds)`` first queues a kernel that keeps the GPU busy for
about ``seconds`` (one thread spinning on the clock), so that the launches issued next queue up
behind it and then run back to back: the interval is then the GPU's time alone, as it is inside
a captured CUDA graph. (The benchmarks' profiler, ``bench/profiling.py``, times ops this way.)

This module imports CuPy lazily, like ``deeplearn/math/backends/cuda.py``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

__all__ = ["hold"]

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
