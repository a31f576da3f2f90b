"""Profiling aids for speed work: where the host time of deeplearn's steps goes (cProfile), and
on the GPU how many kernels one step launches and how long each op takes on the device; for JAX,
how many kernels its compiled step launches, read from the optimized program XLA runs
(``profile_xla``).

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
import re
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench.peers.base import System
from bench.workloads import Problem
from deeplearn.math.backends import cuda_timing

__all__ = ["profile_system", "profile_xla", "xla_kernels"]


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


_NO_KERNEL = frozenset(
    {"parameter", "constant", "tuple", "get-tuple-element", "bitcast", "after-all", "opt-barrier"}
)
"""HLO operations that launch nothing: they name, group or reinterpret buffers."""

_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_CALLEE = re.compile(r"\bto_apply=%?([\w.\-]+)")
_OPCODE = re.compile(r"\s*([a-z][\w\-]*)\(")


def xla_kernels(hlo: str) -> dict[str, int]:
    """How many operations of each kind the entry computation of an optimized HLO module
    (``jax.jit(f).lower(...).compile().as_text()``) runs: each fusion is one kernel, each
    library call (``custom-call``: a cuBLAS GEMM, a cuDNN convolution) one call that may launch
    a kernel or two, any other operation left standing (a ``dot``, a ``copy``, a ``reduce``) one
    kernel. A ``call`` (XLA outlines a run of kernels into one to replay it as a command buffer)
    counts what it calls; a fusion's body is not looked into.

    Example:
        >>> hlo = chr(10).join([
        ...     "%fused (p: f32[4]) -> f32[4] {",
        ...     "  %p = f32[4]{0} parameter(0)",
        ...     "  ROOT %n = f32[4]{0} negate(%p)",
        ...     "}",
        ...     "ENTRY %main (x: f32[4]) -> (f32[4], f32[]) {",
        ...     "  %x = f32[4]{0} parameter(0)",
        ...     "  %f = f32[4]{0} fusion(%x), kind=kLoop, calls=%fused",
        ...     "  %r = f32[] reduce(%f, %c), dimensions={0}, to_apply=%add",
        ...     "  ROOT %t = (f32[4]{0}, f32[]) tuple(%f, %r)",
        ...     "}",
        ... ])
        >>> xla_kernels(hlo)
        {'fusion': 1, 'reduce': 1}
    """
    computations: dict[str, list[tuple[str, str | None]]] = {}
    entry: str | None = None
    current: list[tuple[str, str | None]] | None = None
    for line in hlo.splitlines():
        if not line.startswith(" "):
            head = _COMPUTATION.match(line)
            if head is not None:
                current = computations.setdefault(head.group(1), [])
                if line.startswith("ENTRY"):
                    entry = head.group(1)
            elif line.startswith("}"):
                current = None
            continue
        opcode = _opcode(line)
        if current is not None and opcode is not None:
            callee = _CALLEE.search(line) if opcode == "call" else None
            current.append((opcode, callee.group(1) if callee else None))
    counts: dict[str, int] = {}

    def count(name: str, depth: int) -> None:
        for opcode, callee in computations.get(name, ()):
            if callee is not None and depth < 8:
                count(callee, depth + 1)
            elif opcode not in _NO_KERNEL:
                counts[opcode] = counts.get(opcode, 0) + 1

    if entry is not None:
        count(entry, 0)
    return dict(sorted(counts.items()))


def _opcode(line: str) -> str | None:
    """The opcode of an HLO instruction line (``  %y = f32[4]{0} negate(%x)``): the word before
    the first parenthesis after the result's type, which may itself be a tuple in parentheses."""
    _, eq, rest = line.partition(" = ")
    if not eq:
        return None
    rest = rest.lstrip()
    if rest.startswith("("):  # a tuple type: skip to its closing parenthesis
        depth = 0
        for i, ch in enumerate(rest):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                rest = rest[i + 1 :]
                break
    else:
        rest = rest.partition(" ")[2]
    word = _OPCODE.match(rest)
    return word.group(1) if word else None


def profile_xla(
    factory: type[System], problem: Problem, backend: str, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """The kernels of a JAX system's compiled step (``xla_kernels`` of the program XLA runs for
    ``problem`` on ``backend``), logged and returned as data."""
    system: Any = factory(backend)
    try:
        system.prepare(problem)
        if problem.kind == "train":
            lowered = system.step.lower(system.params, system.x, system.y)
        else:
            lowered = system.op.lower(system.data)
        kinds = xla_kernels(lowered.compile().as_text())
    finally:
        system.close()
    total = sum(kinds.values())
    detail = ", ".join(f"{n} {op}" for op, n in kinds.items())
    log(f"\n--- {factory.label}, {problem.workload}: compiled step, {total} kernels ({detail}) ---")
    return {"system": factory.id, "workload": problem.workload, "xla_kernels": total, "xla_ops": kinds}


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
        captured.lose_rows()  # launches the cursors were not fed for moved the rows on
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
    # The engine calls the backend's execute it looked up when made (Engine._execute): both;
    # and no kernel directly (Known.direct), so that every op goes through it.
    backend.execute, engine._execute = timed_execute, timed_execute
    direct, engine._direct_kernel = engine._direct_kernel, None
    engine.kernels_changed()
    try:
        cuda_timing.hold(min(5.0, 1.5 * host_s + 0.01))
        system.run(1)
        system.sync()
    finally:
        del backend.execute  # back to the class's method
        engine._execute = backend.execute
        engine._direct_kernel = direct
        engine.kernels_changed()
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
