"""Per-op host overhead of eager NDArrayMath against the backend library called directly
(NumPy on the CPU, CuPy on the GPU), on arrays small enough that launching is all there is.

Usage: python bench/overhead.py [--backend cpu|cuda] [--profile OP] [--out DIR|FILE.json] [--no-save]
Prints µs per call for each op, for deeplearn (the op and the ``dispose`` of its result) and for
the library by hand: the median of 15 repeats of 1000 calls, interleaved (ours, theirs, ...), their
difference (deeplearn's own host cost) and ratio, and the same for the fastest repeat of each (on
a shared machine, the one least slowed by its neighbours). The bar (bench/README.md) is deeplearn
≤ 1.2 × the library's own call. Writes the figures to
``bench/results/overhead-<device>-<date>-<commit>.json`` (schema ``deeplearn-overhead/1``, which
``report.py`` leaves alone) unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__" or str(ROOT) not in sys.path:
    # `python bench/overhead.py` puts bench/ first on sys.path; import everything as the bench package.
    if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
        sys.path.pop(0)
    sys.path.insert(0, str(ROOT))

import numpy as np

import deeplearn as dl
from bench import devinfo

SCHEMA = "deeplearn-overhead/1"
BAR = 1.2
CALLS, REPEATS = 1000, 15


def _time(
    ours: Callable[[], Any], theirs: Callable[[], Any], sync: Callable[[], None], calls: int = CALLS
) -> tuple[list[float], list[float]]:
    """µs per call of ``ours`` and of ``theirs``, one sample per repeat, the repeats interleaved
    (ours, theirs, ours, ...) so that a busy neighbour on a shared machine slows both alike."""
    samples: tuple[list[float], list[float]] = ([], [])
    for fn in (ours, theirs):
        fn()
    sync()
    for _ in range(REPEATS):
        for fn, runs in zip((ours, theirs), samples, strict=True):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            sync()
            runs.append((time.perf_counter() - t0) / calls * 1e6)
    return samples


def cases(math: dl.NDArrayMath, xp: Any) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    a_h = np.linspace(-1, 1, 1024, dtype=np.float32)
    m_h = np.linspace(-1, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    a, b = dl.Array1D.new(a_h, math=math), dl.Array1D.new(a_h[::-1].copy(), math=math)
    m = dl.Array2D.new([64, 64], m_h, math=math)
    ra, rb, rm = xp.asarray(a_h), xp.asarray(a_h[::-1].copy()), xp.asarray(m_h)

    # (Each deeplearn case is one lambda, as the library's is: a nested lambda would add a
    # Python call, ~0.08 µs, that no user's code pays.)
    return {
        "add": (lambda: math.add(a, b).dispose(), lambda: xp.add(ra, rb)),
        "relu": (lambda: math.relu(a).dispose(), lambda: xp.maximum(ra, 0)),
        "exp": (lambda: math.exp(a).dispose(), lambda: xp.exp(ra)),
        "sum": (lambda: math.sum(a).dispose(), lambda: xp.sum(ra)),
        "mat_mul": (lambda: math.mat_mul(m, m).dispose(), lambda: xp.matmul(rm, rm)),
        "transpose": (lambda: math.transpose(m).dispose(), lambda: xp.ascontiguousarray(rm.T)),
    }


class _Methods:
    """An API of Python methods over the library, as NDArrayMath's are, doing nothing else."""

    def __init__(self, xp: Any) -> None:
        self._add = xp.add

    def add(self, a: Any, b: Any) -> Any:
        return self._add(a, b)


def api_floor(math: dl.NDArrayMath, xp: Any, sync: Callable[[], None]) -> dict[str, float]:
    """What an eager op costs beyond the library's call whatever the engine does, as long as
    the op is a Python method and its result an NDArray freed by ``dispose`` (deeplearn.js's
    API, docs/design.md §1), in µs: ``method``, one Python method between the caller and the
    library's call; ``dispose``, disposing a result. Their sum is a floor under every op's
    overhead column, to hold against the margin the bar leaves (0.2 × the library's call).

    Example:
        >>> floor = api_floor(math, np, lambda: None)
        >>> sorted(floor), floor["method"] > 0 and floor["dispose"] > 0
        (['dispose', 'method'], True)
    """
    a_h = np.linspace(-1, 1, 16, dtype=np.float32)
    ra, rb = xp.asarray(a_h), xp.asarray(a_h)
    methods, add = _Methods(xp), xp.add
    x = dl.Array1D.new(a_h, math=math)
    storage = x.storage
    live, key, data = storage._live, id(storage), storage.data

    def revive() -> None:  # undoes dispose, so that the next call disposes a live array again
        x._disposed = False
        storage.refs = 1
        storage.data = data
        live[key] = storage.nbytes

    def live_again() -> None:
        x.dispose()
        revive()

    s_method, s_bare = _time(lambda: methods.add(ra, rb), lambda: add(ra, rb), sync, calls=CALLS * 10)
    s_dispose, s_revive = _time(live_again, revive, sync, calls=CALLS * 10)
    x.dispose()
    return {
        "method": max(statistics.median(s_method) - statistics.median(s_bare), 0.0),
        "dispose": max(statistics.median(s_dispose) - statistics.median(s_revive), 0.0),
    }


def output_path(doc: dict[str, Any], out: str | None) -> Path:
    """``out`` itself when it names a .json file, else
    ``<out or bench/results>/overhead-<device>-<date>-<commit>.json``."""
    if out and out.endswith(".json"):
        return Path(out)
    folder = Path(out) if out else ROOT / "bench" / "results"
    date = doc["created"][:10].replace("-", "")
    return (
        folder / f"overhead-{devinfo.slug(doc['device']['name'])}-{date}-{devinfo.slug(doc['commit'])}.json"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--backend", default=None)
    p.add_argument("--profile", default=None, help="also cProfile this op's deeplearn call")
    p.add_argument("--out", default=None, help="results folder (default bench/results) or a .json file path")
    p.add_argument("--no-save", action="store_true", help="print the figures only")
    args = p.parse_args()
    math = dl.NDArrayMath(args.backend) if args.backend else dl.ENV.math
    xp = math.backend.xp
    sync = math.backend.synchronize
    backend = math.backend.name
    commit, dirty = devinfo.git_commit()
    device = devinfo.device_info(backend)
    print(f"{device['name']} [{backend}], commit {commit}{' (dirty)' if dirty else ''}")
    print(f"µs per call, median of {REPEATS} interleaved repeats of {CALLS} calls")
    print(f"{'':<10} {'median':^39} | {'best repeat':^27}")
    print(
        f"{'op':<10} {'deeplearn':>10} {'by hand':>10} {'overhead':>9} {'ratio':>6} |"
        f" {'deeplearn':>10} {'by hand':>8} {'ratio':>6}"
    )
    table = cases(math, xp)
    ops: dict[str, Any] = {}
    for name, (ours, theirs) in table.items():
        s_ours, s_theirs = _time(ours, theirs, sync)
        t_ours, t_theirs = statistics.median(s_ours), statistics.median(s_theirs)
        b_ours, b_theirs = min(s_ours), min(s_theirs)
        ratio = t_ours / t_theirs
        ops[name] = {
            "deeplearn_us": round(t_ours, 3),
            "by_hand_us": round(t_theirs, 3),
            "overhead_us": round(t_ours - t_theirs, 3),
            "ratio": round(ratio, 3),
            "meets_bar": ratio <= BAR,
            "best_deeplearn_us": round(b_ours, 3),
            "best_by_hand_us": round(b_theirs, 3),
            "best_ratio": round(b_ours / b_theirs, 3),
            "deeplearn_samples_us": [round(s, 3) for s in s_ours],
            "by_hand_samples_us": [round(s, 3) for s in s_theirs],
        }
        print(
            f"{name:<10} {t_ours:>10.2f} {t_theirs:>10.2f} {t_ours - t_theirs:>9.2f} {ratio:>6.2f} |"
            f" {b_ours:>10.2f} {b_theirs:>8.2f} {b_ours / b_theirs:>6.2f}"
        )
    floor = api_floor(math, xp, sync)
    least = floor["method"] + floor["dispose"]
    print(
        f"\nthe API's floor: a Python method {floor['method']:.3f} µs + dispose {floor['dispose']:.3f}"
        f" = {least:.3f} µs of overhead whatever the engine does; the bar's margin ({BAR - 1:.1f} × by hand):"
    )
    for name, op in ops.items():
        margin = (BAR - 1) * op["by_hand_us"]
        op["bar_margin_us"] = round(margin, 3)
        op["margin_above_floor"] = margin > least
        print(
            f"{name:<10} {margin:>6.3f} µs  {'room above the floor' if margin > least else 'below the floor'}"
        )
    if not args.no_save:
        doc = {
            "schema": SCHEMA,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "commit": commit,
            "dirty": dirty,
            "backend": backend,
            "command": " ".join(["python", "bench/overhead.py", *sys.argv[1:]]),
            "device": device,
            "versions": devinfo.versions(),
            "settings": {"calls_per_repeat": CALLS, "repeats": REPEATS, "bar_ratio": BAR},
            "ops": ops,
            "api_floor_us": {k: round(v, 3) for k, v in floor.items()},
        }
        path = output_path(doc, args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(path)
        print(f"wrote {path}")
    if args.profile:
        ours = table[args.profile][0]
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(20000):
            ours()
        sync()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
