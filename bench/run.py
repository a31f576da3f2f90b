"""deeplearn's benchmarks against PyTorch, JAX and hand-written NumPy/CuPy, in one command.

Usage::

    python bench/run.py                          # every workload on the best backend
    python bench/run.py --backend all            # the GPU and then the CPU (one file each)
    python bench/run.py --workloads mlp,quad --backend cpu
    python bench/run.py --quick                  # tiny sizes: checks the harness, not speed
    python bench/run.py --profile --workloads mlp

For every workload (``bench/workloads.py``) and every system (``bench/peers/``): one step from
the same initial weights is compared with deeplearn's Session (and deeplearn with a float64
oracle) before anything is timed; a mismatch is reported as such, with no figure. Then warm-up
and at least 5 synchronised repeats of N steps. Prints a table per workload and writes
``bench/results/<device>-<date>-<commit>.json``, after each workload (``"finished"`` says
whether the run got to its end: one stopped by a time limit keeps what it measured);
``bench/report.py`` turns those files into ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__" or str(ROOT) not in sys.path:
    # `python bench/run.py` puts bench/ first on sys.path; import everything as the bench package.
    if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
        sys.path.pop(0)
    sys.path.insert(0, str(ROOT))

# JAX must not grab most of the GPU's memory before the other systems run.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from bench import devinfo
from bench.harness import Reference, Settings, run_problem
from bench.peers import SYSTEMS, System, systems_for
from bench.workloads import WORKLOADS, Problem, make_problem

__all__ = ["SCHEMA", "main", "run_benchmarks"]

SCHEMA = "deeplearn-bench/1"


def _oracle(problem: Problem, backend: str) -> Reference:
    from bench.peers.handwritten import oracle_step

    xp: Any = None
    if backend == "cuda":
        try:
            import cupy

            xp = cupy
        except ImportError:
            xp = None
    if xp is None:
        import numpy

        xp = numpy
    result, cost = oracle_step(problem, xp)
    if xp.__name__ == "cupy":
        xp.get_default_memory_pool().free_all_blocks()
    return Reference("oracle-float64", result, cost)


def run_benchmarks(
    backend: str,
    workloads: Sequence[str],
    *,
    quick: bool = False,
    full: bool = False,
    systems: Sequence[type[System]] | None = None,
    settings: Settings | None = None,
    profile: bool = False,
    log: Callable[[str], None] = print,
    save: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Runs ``workloads`` on ``backend`` for ``systems`` (default: those of the backend);
    returns the results document (see ``SCHEMA``). ``save(doc)``, when given, is called after
    each workload with the document so far (``"finished": False`` until the last), so that a
    run stopped by a time limit keeps what it measured."""
    settings = settings or (Settings(repeats=5, target_s=0.01, warmup_s=0.0) if quick else Settings())
    factories = list(systems) if systems is not None else systems_for(backend)
    commit, dirty = devinfo.git_commit()
    device = devinfo.device_info(backend)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": dirty,
        "backend": backend,
        "quick": quick,
        "command": " ".join(["python", "bench/run.py", *sys.argv[1:]]) if sys.argv else None,
        "device": device,
        "versions": devinfo.versions(),
        "settings": {
            "repeats": settings.repeats,
            "target_repeat_s": settings.target_s,
            "warmup_s": settings.warmup_s,
        },
        "workloads": [],
        "finished": False,
    }
    log(f"== {device['name']} [{backend}], commit {commit}{' (dirty)' if dirty else ''} ==")
    started = time.perf_counter()
    for workload in workloads:
        t0 = time.perf_counter()
        problem = make_problem(workload, backend, quick=quick, full=full)
        log(f"\n{workload}: {_sizes_text(problem)}")
        try:
            oracle: Reference | None = _oracle(problem, backend)
        except Exception as e:  # noqa: BLE001 - without an oracle the peers still check against deeplearn
            log(f"  float64 oracle failed: {type(e).__name__}: {e}")
            oracle = None
        records = run_problem(problem, factories, backend, settings, oracle, log=log)
        entry = problem.summary()
        entry["systems"] = records
        entry["wall_s"] = time.perf_counter() - t0
        doc["workloads"].append(entry)
        log(format_table(entry, device))
        if profile:
            from bench.profiling import profile_system, profile_xla

            entry["profiles"] = []
            for factory in factories:
                profile = profile_system if factory.id.startswith("deeplearn") else None
                if factory.id == "jax":
                    profile = profile_xla  # its kernels, read from the program XLA compiled
                if profile is None:
                    continue
                try:
                    entry["profiles"].append(profile(factory, problem, backend, log=log))
                except Exception as e:  # noqa: BLE001
                    log(f"  profiling {factory.id} failed: {type(e).__name__}: {e}")
        doc["wall_s"] = time.perf_counter() - started
        if save is not None and workload != workloads[-1]:
            save(doc)
    doc["wall_s"] = time.perf_counter() - started
    doc["finished"] = True
    return doc


def _sizes_text(problem: Problem) -> str:
    s = problem.sizes
    if problem.workload in ("mlp", "mlpbig"):
        return f"{'-'.join(map(str, s['units']))}, batch {s['batch']}"
    if problem.workload == "cnn":
        return (
            f"{'x'.join(map(str, s['image']))} input, conv {s['field']}x{s['field']} {s['channels']}, "
            f"dense {s['dense']}, batch {s['batch']}"
        )
    if problem.workload == "matmul":
        return f"{s['n']}x{s['n']} by {s['n']}x{s['n']}"
    if problem.workload == "elementwise":
        return f"{s['n']:,} floats"
    return f"batch {s['batch']}"


def _fmt(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


def format_table(entry: dict[str, Any], device: dict[str, Any]) -> str:
    """The terminal table of one workload's records."""
    extra = (
        "TFLOP/s" if entry["id"] in ("matmul", "mlpbig") else "GB/s" if entry["id"] == "elementwise" else ""
    )
    head = (
        f"{'system':<22}{'us/step':>12}{'spread':>8}{'steps/s':>10}{extra:>9}{'÷Session':>10}"
        f"{'peak MiB':>10}  check"
    )
    lines = [head, "-" * len(head)]
    for r in entry["systems"]:
        if "timing" not in r:
            lines.append(f"{r['label']:<22}  {r['status'].upper()}: {r.get('reason', '')}"[:160])
            continue
        t = r["timing"]
        rate = r.get("tflops") if extra == "TFLOP/s" else r.get("gbps") if extra else None
        mem = r.get("peak_memory_bytes")
        check = r.get("check")
        check_txt = f"ok {check['max_rel_err']:.1e} vs {check['against']}" if check else "unchecked"
        lines.append(
            f"{r['label']:<22}{t['us_per_step']:>12.1f}{'±' + format(t['spread_pct'] / 2, '.0f') + '%':>8}"
            f"{t['steps_per_s']:>10.1f}{_fmt(rate, '.2f'):>9}{_fmt(r.get('time_vs_session'), '.2f'):>10}"
            f"{_fmt(mem / 2**20 if mem else None, '.0f'):>10}  {check_txt}"
        )
    return "\n".join(lines)


def output_path(doc: dict[str, Any], out: str | None) -> Path:
    """``out`` itself when it names a .json file, else
    ``<out or bench/results>/<device>-<date>-<commit>.json``."""
    if out and out.endswith(".json"):
        return Path(out)
    folder = Path(out) if out else ROOT / "bench" / "results"
    date = doc["created"][:10].replace("-", "")
    name = f"{devinfo.slug(doc['device']['name'])}-{date}-{devinfo.slug(doc['commit'])}"
    if doc.get("quick"):
        name += "-quick"
    return folder / f"{name}.json"


def write_results(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=_json_default) + "\n")
    tmp.replace(path)


def _json_default(o: Any) -> Any:
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all)",
    )
    p.add_argument(
        "--backend", default=None, help="cpu, cuda or all (default: cuda when CuPy sees a GPU, else cpu)"
    )
    p.add_argument(
        "--systems",
        default=None,
        help=f"comma-separated system ids (default: those of the backend): {','.join(s.id for s in SYSTEMS)}",
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes and short timing: checks the harness, not speed"
    )
    p.add_argument(
        "--full-size", action="store_true", help="use the GPU sizes (bench/README.md) on the CPU too"
    )
    p.add_argument("--out", default=None, help="results folder (default bench/results) or a .json file path")
    p.add_argument(
        "--profile",
        action="store_true",
        help=(
            "also profile deeplearn's steps (cProfile top functions; per-op device times on the GPU) "
            "and count the kernels of JAX's compiled step"
        ),
    )
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (at least 5)")
    p.add_argument("--target-s", type=float, default=None, help="seconds per timed repeat")
    return p.parse_args(argv)


def _backends(choice: str | None) -> list[str]:
    from deeplearn.math.backends import cuda_available

    if choice in (None, ""):
        return ["cuda" if cuda_available() else "cpu"]
    if choice == "all":
        return (["cuda"] if cuda_available() else []) + ["cpu"]
    if choice not in ("cpu", "cuda"):
        raise SystemExit(f"--backend must be cpu, cuda or all; got {choice!r}")
    return [choice]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in workloads if w not in WORKLOADS]
    if bad:
        raise SystemExit(f"unknown workloads {bad}; choose from {','.join(WORKLOADS)}")
    settings = Settings(repeats=5, target_s=0.01, warmup_s=0.0) if args.quick else Settings()
    if args.repeats is not None:
        settings.repeats = max(5, args.repeats)
    if args.target_s is not None:
        settings.target_s = args.target_s
    only = [s.strip() for s in args.systems.split(",")] if args.systems else None
    status = 0
    for backend in _backends(args.backend):
        systems = systems_for(backend, only)
        doc = run_benchmarks(
            backend,
            workloads,
            quick=args.quick,
            full=args.full_size,
            systems=systems,
            settings=settings,
            profile=args.profile,
            save=lambda doc: write_results(doc, output_path(doc, args.out)),
        )
        path = output_path(doc, args.out)
        write_results(doc, path)
        print(f"\nwrote {path} ({doc['wall_s']:.0f} s)")
        if any(r["status"] in ("mismatch", "error") for w in doc["workloads"] for r in w["systems"]):
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
