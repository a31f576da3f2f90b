"""``cuda_timing.hold`` (deeplearn/math/backends/cuda_timing.py): on a GPU it keeps the stream
busy for about the time asked; without one it says so by returning False, never raising."""

from __future__ import annotations

import pytest

from deeplearn.math.backends import cuda_available, cuda_timing


@pytest.mark.skipif(cuda_available(), reason="checks the machine without a GPU")
def test_without_a_gpu_hold_queues_nothing_and_does_not_raise() -> None:
    assert cuda_timing.hold(0.001) is False
    assert cuda_timing.hold(0.001) is False  # (the reason is logged once)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and an NVIDIA GPU")
def test_hold_keeps_the_stream_busy_for_about_the_time_asked() -> None:
    import cupy

    stream = cupy.cuda.get_current_stream()
    cuda_timing.hold(0.001, stream)  # compiled and loaded before the timing
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record(stream)
    assert cuda_timing.hold(0.02, stream) is True
    stop.record(stream)
    stop.synchronize()
    ms = cupy.cuda.get_elapsed_time(start, stop)
    assert 10 <= ms <= 200, f"held the stream for {ms:.1f} ms, asked 20"
