"""bench/ncu_step.py launches a captured step once inside the profiler's range, or says that it
needs a GPU."""

from __future__ import annotations

import pytest

from bench.ncu_step import launch_once, main
from deeplearn.math.backends import cuda_available


def test_one_captured_step_is_launched_or_the_gpu_is_asked_for() -> None:
    if not cuda_available():
        with pytest.raises(SystemExit, match="needs a GPU"):
            main(["quad", "--warmup", "2"])
        return
    lines = launch_once("quad", warmup=2)
    assert lines[-1].startswith("graph nodes: ")
    assert any("Fused" in line for line in lines)  # quad's step: one fused kernel
