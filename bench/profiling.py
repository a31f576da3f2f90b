"""Profiling aids for speed work: where the host time of deeplearn's steps goes (cProfile), and
on the GPU how many kernels one step launches and how long each op takes on the device.

The per-op device times come from CUDA events recorded around every backend call of one step
(``math.backend.execute``), so they include every kernel an op launches. The step is queued behind
a kernel that keeps the GPU busy for longer than the host takes to issue the whole step
(``deeplearn.math.backends.cuda_timing.hold``), so the events measure kernel time, not the
host's launch gaps (unless the step itself waits for the GPU, e.g. to read a value back). CuPy
is imported lazily.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench.peers.base import System
from bench.workloads import Problem
from deeplearn.math.backends import cuda_timing

__all__ = ["profile_system"]


def profile_system(
    factory: type[System],
    problem: Problem,
    backend: str,
    seconds: float = 1.0,
    top: int = 25,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Prints the top host-time functions of ``factory``'s steps on ``problem`` and, on CUDA, the
    per-op device time of one step; returns both as data."""
    system = factory(backend)
    report: dict[str, Any] = {"system": factory.id, "workload": problem.workload}
    try:
        system.prepare(problem)
        system.first_step()
        system.run(1)
        system.sync()
        t0 = time.perf_counter()
        system.run(1)
        system.sync()
        per_step = max(time.perf_counter() - t0, 1e-6)
        steps = max(1, min(1000, int(seconds / per_step)))
        profiler = cProfile.Profile()
        profiler.enable()
        system.run(steps)
        system.sync()
        profiler.disable()
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf).sort_stats("tottime")
        stats.print_stats(top)
        log(f"\n--- cProfile: {factory.label}, {problem.workload}, {steps} steps, sorted by own time ---")
        log(_trim_pstats(buf.getvalue()))
        report["host_profile_steps"] = steps
        report["host_top"] = _top_entries(stats, top)
        for step in _cpu_steps(system):
            report.setdefault("cpu_steps", []).append(step)
            log(
                f"\n--- {factory.label}, {problem.workload}: compiled CPU step, {step['kernels']} kernels, "
                f"{step['written']} writing into arrays made once, {step['doubled']} double-buffered "
                f"variables ---"
            )
        if backend == "cuda" and hasattr(system, "math"):
            graphs = _captured_graph_times(system)
            if graphs:
                report["captured_graphs"] = graphs
                for g in graphs:
                    log(
                        f"\n--- {factory.label}, {problem.workload}: captured step, graph nodes {g['kernels']} "
                        f"({g['program_steps']} Program steps), {g['device_us']:.1f} us device per launch "
                        f"(back to back), {g['host_launch_us']:.1f} us host per launch ---"
                    )
            kernels = _device_op_times(system)
            report["device_ops"] = kernels
            _print_device_ops(kernels, factory.label, problem.workload, log)
            plans = _cudnn_plans()
            if plans:
                report["cudnn_plans"] = plans
                log(f"\n--- cuDNN plans kept so far ({len(plans)} geometries) ---")
                for line in plans:
                    log(f"  {line}")
    finally:
        system.close()
    return report


def _cudnn_plans() -> list[str]:
    """One line per convolution geometry that cuDNN runs (``cuda_cudnn.plan_log``): which
    engine configuration was kept. Empty where cuDNN is not installed or ran nothing."""
    try:
        from deeplearn.math.backends import cuda_cudnn
    except ImportError:
        return []
    return [
        f"{g.kind} x{g.x} w{g.w} y{g.y} pads {g.pre}/{g.post} strides {g.stride}: {name}"
        for g, name in cuda_cudnn.plan_log.items()
    ]


def _trim_pstats(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(lines[start:])


def _top_entries(stats: pstats.Stats, top: int) -> list[dict[str, Any]]:
    rows = []
    entries = stats.stats.items()  # type: ignore[attr-defined]
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in entries:
        rows.append(
            {
                "function": f"{filename}:{line}({func})",
                "calls": ncalls,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
            }
        )
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    return rows[:top]


def _training_programs(system: Any) -> list[Any]:
    """The recorded training Programs of a deeplearn Session system (none for other systems)."""
    session = getattr(system, "session", None)
    if session is None:
        return []
    return [
        p for plan in session._plans.values() for step in plan._steps.values() for p in step.training.values()
    ]


def _cpu_steps(system: Any) -> list[dict[str, int]]:
    """For a Session whose training steps run compiled on the CPU (``deeplearn/compile/cpu_step.py``):
    per step, its kernels, how many write into arrays made once, and its double-buffered variables."""
    out = []
    for program in _training_programs(system):
        step = program.capture
        if type(step).__name__ != "CpuStep":
            continue
        out.append(
            {
                "kernels": len(step._steps),
                "written": sum(w is not None for w in step._writers),
                "doubled": len(step._other),
            }
        )
    return out


def _captured_graph_times(system: Any, launches: int = 200) -> list[dict[str, Any]]:
    """For a Session whose steps run as CUDA graphs: per graph, its kernel nodes, its device
    time per launch (``launches`` launches back to back between two events: the floor of a
    step whatever the host does) and the host time of one launch call. The launches run the
    step again, so the system's result is not checked after this."""
    import cupy

    out = []
    for program in _training_programs(system):
        captured = program.capture
        if not captured:
            continue
        stream = cupy.cuda.get_current_stream()
        captured.graph.launch(stream)  # warm
        stream.synchronize()
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        cuda_timing.hold(0.05)  # the host queues every launch before the first one runs
        t0 = time.perf_counter()
        start.record(stream)
        for _ in range(launches):
            captured.graph.launch(stream)
        end.record(stream)
        host = (time.perf_counter() - t0) / launches
        end.synchronize()
        out.append(
            {
                "kernels": captured.node_kinds(),
                "program_steps": len(program.steps),
                "device_us": cupy.cuda.get_elapsed_time(start, end) * 1e3 / launches,
                "host_launch_us": host * 1e6,
            }
        )
    return out


def _device_op_times(system: Any) -> list[dict[str, Any]]:
    """Runs one step with a CUDA event pair around each backend call; per op name: count, device
    time (sum of event intervals) and host wall time. A Session's step runs through its rules
    for this (``replay_plans`` off), so its ops are counted one by one, as a captured step
    records them."""
    import cupy

    session = getattr(system, "session", None)
    if session is not None:
        session.replay_plans = False

    backend, engine = system.math.backend, system.math.engine
    original = backend.execute
    events: list[tuple[str, Any, Any, float]] = []

    def timed_execute(op: Any, *arrays: Any) -> Any:
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        t0 = time.perf_counter()
        start.record()
        out = original(op, *arrays)
        end.record()
        events.append((getattr(op, "name", type(op).__name__), start, end, time.perf_counter() - t0))
        return out

    # how long the host takes to issue one step, to size the spin kernel
    system.sync()
    t0 = time.perf_counter()
    system.run(1)
    host_s = time.perf_counter() - t0
    system.sync()
    # The engine calls the backend's execute it looked up when made (Engine._execute): both.
    backend.execute, engine._execute = timed_execute, timed_execute
    try:
        cuda_timing.hold(min(5.0, 1.5 * host_s + 0.01))
        system.run(1)
        system.sync()
    finally:
        del backend.execute  # back to the class's method
        engine._execute = backend.execute
    agg: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "device_us": 0.0, "host_us": 0.0})
    for name, start, end, host in events:
        end.synchronize()
        a = agg[name]
        a["count"] += 1
        a["device_us"] += cupy.cuda.get_elapsed_time(start, end) * 1e3
        a["host_us"] += host * 1e6
    rows = [{"op": k, **v} for k, v in agg.items()]
    rows.sort(key=lambda r: r["device_us"], reverse=True)
    return rows


def _print_device_ops(
    rows: list[dict[str, Any]], label: str, workload: str, log: Callable[[str], None]
) -> None:
    total_n = sum(r["count"] for r in rows)
    total_dev = sum(r["device_us"] for r in rows)
    total_host = sum(r["host_us"] for r in rows)
    log(
        f"\n--- one step of {label}, {workload}: {total_n} backend calls, "
        f"{total_dev:.1f} us device, {total_host:.1f} us host inside the calls ---"
    )
    log(
        f"{'op':<28}{'calls':>7}{'device us':>12}{'host us':>12}"
        "   (device: GPU time between the op's first and last kernel)"
    )
    for r in rows:
        log(f"{r['op']:<28}{r['count']:>7}{r['device_us']:>12.1f}{r['host_us']:>12.1f}")
