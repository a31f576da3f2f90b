"""Runs systems on a problem: the one-step equality check, then the timing.

Timing (bench/README.md, How a figure is made): warm-up, then at least 5 repeats of N steps with the device
synchronised before and after each repeat; N is chosen so that a repeat lasts about
``target_s``. Figures are the median over repeats of the time per step, with the spread
(min and max) beside it.
"""

from __future__ import annotations

import math
import statistics
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.peers.base import System, Unavailable
from bench.workloads import Problem

__all__ = [
    "OP_TOLERANCE",
    "TRAIN_TOLERANCE",
    "Reference",
    "Settings",
    "compare",
    "run_problem",
    "time_repeat",
    "warm_up",
]

TRAIN_TOLERANCE = 2e-2
"""Training: max |Δw_system − Δw_ref| over every weight, relative to max |Δw_ref| of that weight
(Δw = the change made by one step), plus a float32 rounding allowance on the weight itself.
Loose enough for float32 reduction order and the rare relu that flips at zero between float32
and float64, tight enough that a wrong gradient, learning rate or batch scaling fails by far."""

COST_TOLERANCE = 1e-3
"""Relative error allowed in the cost of the checked step."""

OP_TOLERANCE = {"matmul": 1e-3, "elementwise": 1e-6}
"""Op workloads: max |out_system − out_ref| relative to max |out_ref|."""


@dataclass
class Settings:
    repeats: int = 5
    target_s: float = 0.2
    warmup_s: float = 0.2
    max_steps: int = 10_000


@dataclass
class Reference:
    """The result every system is compared with: deeplearn's (``name``) or the float64 oracle."""

    name: str
    result: dict[str, np.ndarray]
    cost: float | None


def compare(
    problem: Problem, result: dict[str, np.ndarray], cost: float | None, ref: Reference
) -> dict[str, Any]:
    """Checks one step of a system against ``ref``; returns the check record (``ok`` and the
    worst relative error, and what failed when it failed)."""
    check: dict[str, Any] = {"against": ref.name, "ok": True, "max_rel_err": 0.0, "failures": []}
    missing = sorted(set(ref.result) - set(result))
    if missing:
        check.update(ok=False, failures=[f"missing results: {missing}"])
        return check
    worst = 0.0
    for name, want in ref.result.items():
        got = np.asarray(result[name], dtype=np.float64)
        want = np.asarray(want, dtype=np.float64)
        if got.shape != want.shape:
            check["failures"].append(f"{name}: shape {got.shape} but the reference has {want.shape}")
            continue
        if not np.all(np.isfinite(got)):
            check["failures"].append(f"{name}: has NaN or infinite values")
            continue
        if problem.kind == "train":
            init = problem.init[name].astype(np.float64)
            d_got, d_want = got - init, want - init
            scale = float(np.max(np.abs(d_want))) if d_want.size else 0.0
            # float32 rounding of the stored weight itself, a few ulps
            slack = 4 * np.finfo(np.float32).eps * np.abs(want)
            excess = np.abs(d_got - d_want) - slack
            err = float(np.max(excess)) / scale if scale > 0 else float(np.max(np.abs(d_got)))
            tol = TRAIN_TOLERANCE
        else:
            scale = float(np.max(np.abs(want))) if want.size else 0.0
            err = float(np.max(np.abs(got - want))) / (scale if scale > 0 else 1.0)
            tol = OP_TOLERANCE[problem.workload]
        err = max(err, 0.0)
        worst = max(worst, err)
        if err > tol:
            check["failures"].append(f"{name}: relative error {err:.3g} > {tol:g}")
    if problem.kind == "train" and ref.cost is not None:
        if cost is None:
            check["failures"].append("no cost returned")
        else:
            cerr = abs(cost - ref.cost) / max(abs(ref.cost), 1e-12)
            check["cost"], check["cost_ref"], check["cost_rel_err"] = cost, ref.cost, cerr
            if not math.isfinite(cost) or cerr > COST_TOLERANCE:
                check["failures"].append(f"cost {cost:.6g} but the reference has {ref.cost:.6g}")
    check["max_rel_err"] = worst
    check["ok"] = not check["failures"]
    return check


def warm_up(system: System, settings: Settings) -> int:
    """Warm-up (at least two steps and about ``warmup_s``), then the number of steps N that
    makes one timed repeat last about ``target_s``."""
    clock = time.perf_counter
    start, steps = clock(), 0
    while steps < 2 or (clock() - start < settings.warmup_s and steps < settings.max_steps):
        system.run(1)
        system.sync()  # synchronised, so that a slow step counts
        steps += 1
    per_step = (clock() - start) / steps
    # Refine with a batch of unsynchronised steps (per-step sync hides the GPU's pipelining).
    k = max(1, min(settings.max_steps, int(0.25 * settings.target_s / max(per_step, 1e-9))))
    system.sync()
    t0 = clock()
    system.run(k)
    system.sync()
    per_step = (clock() - t0) / k
    return max(1, min(settings.max_steps, math.ceil(settings.target_s / max(per_step, 1e-9))))


def time_repeat(system: System, n: int) -> float:
    """One timed repeat: µs per step over ``n`` steps, synchronised before and after."""
    system.sync()
    t0 = time.perf_counter()
    system.run(n)
    system.sync()
    return (time.perf_counter() - t0) / n * 1e6


def summarize(samples: list[float], n: int) -> dict[str, Any]:
    med = statistics.median(samples)
    return {
        "us_per_step": med,
        "us_min": min(samples),
        "us_max": max(samples),
        "spread_pct": 100.0 * (max(samples) - min(samples)) / med if med > 0 else 0.0,
        "repeats": len(samples),
        "steps_per_repeat": n,
        "samples_us": samples,
        "steps_per_s": 1e6 / med if med > 0 else None,
    }


def _short_error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    first = text.splitlines()[0] if text else type(e).__name__
    return first[:400]


def _fail(rec: dict[str, Any], status: str, e: BaseException, log: Callable[[str], None]) -> None:
    rec["status"], rec["reason"] = status, _short_error(e) if status == "error" else str(e)
    if status == "error":
        rec["traceback"] = traceback.format_exc(limit=8)
        log(f"  {rec['system']:<18} ERROR: {rec['reason']}")
    else:
        log(f"  {rec['system']:<18} skipped: {rec['reason']}")
    rec.pop("timing", None)


def _close(system: System | None) -> None:
    if system is not None:
        try:
            system.close()
        except Exception:  # noqa: BLE001, S110 - closing is best effort
            pass


def run_problem(
    problem: Problem,
    factories: Sequence[Callable[[str], System]],
    backend: str,
    settings: Settings,
    oracle: Reference | None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Runs every system on ``problem`` and returns one record per system.

    Phase 1, one system after the other: set up, check one step against deeplearn's Session
    (or, when that is not available, deeplearn eager, else ``oracle``; the deeplearn systems come
    first in ``factories`` and are themselves checked against the float64 ``oracle``), warm up,
    read peak memory. Phase 2: the timed repeats, interleaved round-robin over the systems that
    agreed, so that noise from a shared machine falls on every system alike.
    """
    records: list[dict[str, Any]] = []
    live: list[tuple[dict[str, Any], System, int]] = []
    ref: Reference | None = None
    try:
        for factory in factories:
            rec: dict[str, Any] = {
                "system": getattr(factory, "id", "?"),
                "label": getattr(factory, "label", "?"),
                "status": "ok",
            }
            records.append(rec)
            system: System | None = None
            t_setup = time.perf_counter()
            try:
                system = factory(backend)
                system.reset_memory_stats()
                system.prepare(problem)
                rec["setup_s"] = time.perf_counter() - t_setup
                cost = system.first_step()
                system.sync()
                result = system.result()
                is_deeplearn = rec["system"].startswith("deeplearn")
                against = oracle if (is_deeplearn or ref is None) else ref
                if against is not None:
                    rec["check"] = compare(problem, result, cost, against)
                    if is_deeplearn and ref is not None and rec["check"]["ok"]:
                        # the eager path is also compared with the Session
                        rec["check_vs_" + ref.name] = compare(problem, result, cost, ref)
                if "check" in rec and not rec["check"]["ok"]:
                    rec["status"] = "mismatch"
                    rec["reason"] = "; ".join(rec["check"]["failures"])
                    log(f"  {rec['system']:<18} MISMATCH against {rec['check']['against']}: {rec['reason']}")
                    _close(system)
                    continue
                if is_deeplearn and ref is None:
                    ref = Reference(rec["system"], result, cost)
                n = warm_up(system, settings)
                rec["peak_memory_bytes"] = system.peak_memory()
                if system.memory_note and rec["peak_memory_bytes"] is not None:
                    rec["memory_note"] = system.memory_note
                live.append((rec, system, n))
                check = rec.get("check")
                log(
                    f"  {rec['system']:<18} ready in {rec['setup_s']:.1f} s"
                    + (
                        f", step equal to {check['against']} (rel. err. {check['max_rel_err']:.1e})"
                        if check
                        else ""
                    )
                )
            except Unavailable as e:
                _fail(rec, "skipped", e, log)
                _close(system)
            except Exception as e:  # noqa: BLE001 - a failing system is a result, not a crash
                _fail(rec, "error", e, log)
                _close(system)
        samples: dict[int, list[float]] = {id(rec): [] for rec, _, _ in live}
        for _ in range(settings.repeats):
            for rec, system, n in live:
                if rec["status"] != "ok":
                    continue
                try:
                    samples[id(rec)].append(time_repeat(system, n))
                except Exception as e:  # noqa: BLE001
                    _fail(rec, "error", e, log)
        for rec, _, n in live:
            if rec["status"] == "ok":
                rec["timing"] = summarize(samples[id(rec)], n)
                _add_rates(problem, rec)
                t = rec["timing"]
                log(
                    f"  {rec['system']:<18} {t['us_per_step']:12.1f} us/step"
                    f"  ({t['us_min']:.1f}-{t['us_max']:.1f}, {n} steps x {t['repeats']})"
                )
    finally:
        for _, system, _ in live:
            _close(system)
    _add_ratios(records)
    return records


def _add_rates(problem: Problem, rec: dict[str, Any]) -> None:
    us = rec["timing"]["us_per_step"]
    if problem.flops_per_step and problem.workload in ("matmul", "mlpbig"):
        rec["tflops"] = problem.flops_per_step / (us * 1e-6) / 1e12
    if problem.bytes_per_step:
        rec["gbps"] = problem.bytes_per_step / (us * 1e-6) / 1e9


def _add_ratios(records: list[dict[str, Any]]) -> None:
    """``time_vs_session``: the system's time per step divided by deeplearn Session's (below 1:
    the system is faster than deeplearn; above 1: slower)."""
    base = next((r for r in records if r["system"] == "deeplearn-session" and "timing" in r), None)
    for r in records:
        if base is not None and "timing" in r:
            r["time_vs_session"] = r["timing"]["us_per_step"] / base["timing"]["us_per_step"]
