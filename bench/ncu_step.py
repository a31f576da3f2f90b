"""One launch of a workload's captured training step, for Nsight Compute to time kernel by kernel.

A captured step is one CUDA graph: the bench times it whole (``python bench/run.py --profile``
gives its device time per launch). To see each kernel, this script trains the workload's
deeplearn Session until its step is captured, prints the Program's steps (what each kernel
computes), then launches the graph once between ``cudaProfilerStart`` and ``cudaProfilerStop``,
which ncu, started with ``--profile-from-start off``, profiles alone. ncu runs each kernel by
itself, so each pays a launch that the graph partly hides: the kernels' sum exceeds the step.

Usage (on a machine with an NVIDIA GPU; ``bench/results/ncu-*.csv`` were made so):

    ncu --clock-control none --cache-control none --graph-profiling node \\
        --profile-from-start off --csv --metrics gpu__time_duration.sum --print-units base \\
        python bench/ncu_step.py mlp

``--clock-control none`` leaves the GPU's clocks as a real run finds them; ``--cache-control
none`` leaves the caches warm, as the kernels find them inside the graph.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__" or str(ROOT) not in sys.path:
    # `python bench/ncu_step.py` puts bench/ first on sys.path; import everything as the bench package.
    if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
        sys.path.pop(0)
    sys.path.insert(0, str(ROOT))

from bench.peers.base import Unavailable  # noqa: E402
from bench.peers.deeplearn_peer import DeeplearnSession  # noqa: E402
from bench.profiling import _training_programs  # noqa: E402
from bench.workloads import TRAIN_WORKLOADS, make_problem  # noqa: E402


def launch_once(workload: str, warmup: int = 30) -> list[str]:
    """Trains ``workload``'s Session ``warmup`` steps on the GPU, then launches each captured
    step once inside the profiler's range; returns the Programs' steps, a line each."""
    try:
        import cupy
    except ImportError as e:
        raise Unavailable("CuPy is not installed") from e
    system = DeeplearnSession("cuda")
    system.prepare(make_problem(workload, "cuda"))
    system.first_step()
    system.run(warmup)
    system.sync()
    lines = []
    for program in _training_programs(system):
        captured = program.capture
        if not captured:
            continue
        for k, step in enumerate(program.steps):
            shapes = [tuple(spec.shape) for spec in step.specs]
            lines.append(f"{k:3d} {type(step.op).__name__} -> {shapes}")
        stream = cupy.cuda.get_current_stream()
        captured.graph.launch(stream)  # once outside the range: nothing lazy is left inside it
        stream.synchronize()
        cupy.cuda.runtime.profilerStart()
        captured.graph.launch(stream)
        stream.synchronize()
        cupy.cuda.runtime.profilerStop()
        captured.lose_rows()  # launches the cursors were not fed for moved the rows on
        lines.append(f"graph nodes: {captured.node_kinds()}")
    system.close()
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("workload", choices=TRAIN_WORKLOADS)
    p.add_argument("--warmup", type=int, default=30, help="training steps before the launch profiled")
    args = p.parse_args(argv)
    try:
        lines = launch_once(args.workload, args.warmup)
    except Unavailable as e:
        raise SystemExit(f"bench/ncu_step.py needs a GPU: {e}.") from e
    print("\n".join(lines))


if __name__ == "__main__":
    main()
