"""Turns the results files (``bench/results/*.json``) into ``bench/RESULTS.md`` and a chart.

Usage::

    python bench/report.py                       # bench/results/*.json -> bench/RESULTS.md, bench/RESULTS.png
    python bench/report.py --results DIR --md OUT.md --png OUT.png --notes NOTES.md

A summary of deeplearn against the fastest peer on every device, the hand-written analysis of
``bench/NOTES.md`` when it exists, then for each device (its latest full run): the plain statement
of where deeplearn stands against each peer, the bar (bench/README.md), the kernels one step
launches (from the device's latest run made with ``--profile``), one table per workload; then
the history of deeplearn's figures across commits. The chart needs matplotlib (``pip install -e '.[bench]'``);
without it the report says so and has no chart. Runs made with ``--quick`` are left out unless
``--include-quick`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["load_results", "main", "render_chart", "render_markdown"]

DEEPLEARN = ("deeplearn-session", "deeplearn-eager")
PAR = 0.05
"""Times within 5 % of each other are reported as on par (the spread of a shared machine)."""


def load_results(folder: Path, include_quick: bool = False) -> list[dict[str, Any]]:
    """Every results document in ``folder`` (oldest first); quick runs only when asked."""
    docs = []
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"report: skipping {path.name}: {e}", file=sys.stderr)
            continue
        if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("deeplearn-bench/"):
            continue
        if doc.get("quick") and not include_quick:
            continue
        doc["_file"] = path.name
        docs.append(doc)
    docs.sort(key=lambda d: d.get("created", ""))
    return docs


def _device_key(doc: dict[str, Any]) -> str:
    return f"{doc['device']['name']} [{doc['backend']}]"


def _latest_per_device(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per device, its latest full run: the latest (``docs`` come oldest first) of the runs that
    measured as many workloads as any run on it, or that set out to and were stopped by a time
    limit first (``finished`` false, no ``--workloads``), whose missing workloads are then those
    of the latest full run before it, each marked with that run (``_run``). A run of a few
    workloads (``--workloads quad``, to check one change) shows in the history, not in place of
    the full picture."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        runs.setdefault(_device_key(doc), []).append(doc)
    latest: dict[str, dict[str, Any]] = {}
    for key, device_runs in runs.items():
        most = max(len(doc["workloads"]) for doc in device_runs)
        full = [doc for doc in device_runs if len(doc["workloads"]) == most]
        doc = full[-1]
        stopped = [d for d in device_runs if _stopped(d) and d.get("created", "") > doc.get("created", "")]
        if stopped:
            measured = {w["id"] for w in stopped[-1]["workloads"]}
            earlier = [{**w, "_run": doc} for w in doc["workloads"] if w["id"] not in measured]
            doc = {**stopped[-1], "workloads": stopped[-1]["workloads"] + earlier}
        latest[key] = doc
    # GPUs first, then CPUs; by name within each
    return dict(sorted(latest.items(), key=lambda kv: (kv[1]["backend"] != "cuda", kv[0])))


def _stopped(doc: dict[str, Any]) -> bool:
    """Whether ``doc`` is a run of every workload that a time limit stopped before the last."""
    return doc.get("finished") is False and "--workloads" not in str(doc.get("command", ""))


def _commit_of(entry: dict[str, Any], doc: dict[str, Any]) -> str:
    """The commit whose run measured ``entry`` (``doc``'s own, or an earlier run's: ``_run``)."""
    return str(entry.get("_run", doc)["commit"])


def _us(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _bytes(n: int | None) -> str:
    if n is None:
        return ""
    if n >= 2**20:
        return f"{n / 2**20:,.0f} MiB"
    return f"{n / 2**10:,.0f} KiB"


def _times(x: float) -> str:
    return f"{x:.1f}×" if x < 10 else f"{x:.0f}×"


def _system(entry: dict[str, Any], sid: str) -> dict[str, Any] | None:
    return next((r for r in entry["systems"] if r["system"] == sid), None)


def _timed(rec: dict[str, Any] | None) -> float | None:
    return rec["timing"]["us_per_step"] if rec and "timing" in rec else None


def _workload_table(entry: dict[str, Any]) -> list[str]:
    wid = entry["id"]
    rate = "TFLOP/s" if wid in ("matmul", "mlpbig") else "GB/s" if wid == "elementwise" else None
    head = (
        ["system", "µs/step (median)", "min–max", "steps/s"]
        + ([rate] if rate else [])
        + ["time ÷ Session", "peak memory", "one-step check"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in entry["systems"]:
        if "timing" not in r:
            reason = str(r.get("reason", "")).replace("|", "\\|")[:200]
            cells = [r["label"], f"**{r['status']}**: {reason}"] + [""] * (len(head) - 2)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        t = r["timing"]
        check = r.get("check")
        check_txt = f"ok ({check['max_rel_err']:.0e} vs {check['against']})" if check else "not checked"
        mem = r.get("peak_memory_bytes")
        cells = [
            r["label"],
            _us(t["us_per_step"]),
            f"{_us(t['us_min'])}–{_us(t['us_max'])}",
            f"{t['steps_per_s']:,.1f}",
        ]
        if rate:
            v = r.get("tflops") if rate == "TFLOP/s" else r.get("gbps")
            cells.append("" if v is None else f"{v:,.2f}")
        ratio = r.get("time_vs_session")
        cells += ["" if ratio is None else f"{ratio:.2f}", _bytes(mem), check_txt]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _standing(entry: dict[str, Any]) -> list[str]:
    """Plain sentences: deeplearn Session (and eager) against each peer on one workload."""
    out = []
    for sid in DEEPLEARN:
        mine = _system(entry, sid)
        t_mine = _timed(mine)
        label = "deeplearn Session" if sid == "deeplearn-session" else "deeplearn eager"
        if t_mine is None:
            if mine is not None:
                out.append(
                    f"- {label}: **no figure** ({mine['status']}: {str(mine.get('reason', ''))[:160]})."
                )
            continue
        wins, losses, par = [], [], []
        for r in entry["systems"]:
            if r["system"] in DEEPLEARN or "timing" not in r:
                continue
            ratio = r["timing"]["us_per_step"] / t_mine
            if abs(ratio - 1) < PAR:
                par.append(r["label"])
            elif ratio > 1:
                wins.append(f"{_times(ratio)} faster than {r['label']}")
            else:
                losses.append(f"{r['label']} is {_times(1 / ratio)} faster")
        parts = []
        if losses:
            parts.append("**loses**: " + "; ".join(losses))
        if par:
            parts.append(f"on par (within {PAR:.0%}) with " + ", ".join(par))
        if wins:
            parts.append("wins: " + "; ".join(wins))
        if not parts:
            parts.append("no peer timed")
        out.append(f"- {label} ({_us(t_mine)} µs/step): " + ". ".join(parts) + ".")
    missing = [
        f"{r['label']} ({r['status']}: {str(r.get('reason', ''))[:100]})"
        for r in entry["systems"]
        if r["system"] not in DEEPLEARN and "timing" not in r
    ]
    if missing:
        out.append("- Not timed: " + "; ".join(missing) + ".")
    return out


def _bar(doc: dict[str, Any]) -> list[str]:
    """the bar (bench/README.md), checked against this run's figures."""
    by_id = {w["id"]: w for w in doc["workloads"]}
    rows: list[tuple[str, str, str, str]] = []

    def session(wid: str) -> float | None:
        return _timed(_system(by_id[wid], "deeplearn-session")) if wid in by_id else None

    def peer(wid: str, sid: str) -> dict[str, Any] | None:
        return _system(by_id[wid], sid) if wid in by_id else None

    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else "**met**" if ok else "**not met**"

    if doc["backend"] == "cuda":
        for wid, limit in (("quad", 10.0), ("mlp", 25.0)):
            s = session(wid)
            rows.append(
                (wid, f"Session ≤ {limit:.0f} µs/step", _us(s), verdict(None if s is None else s <= limit))
            )
        s, g = session("cnn"), _timed(peer("cnn", "torch-cudagraph"))
        rows.append(
            (
                "cnn",
                "Session faster than PyTorch + CUDA graph",
                f"{_us(s)} vs {_us(g)}",
                verdict(None if s is None or g is None else s < g),
            )
        )
        best = (
            [
                _timed(_system(by_id["mlpbig"], r["system"]))
                for r in by_id["mlpbig"]["systems"]
                if r["system"] not in DEEPLEARN
            ]
            if "mlpbig" in by_id
            else []
        )
        best = [b for b in best if b is not None]
        s = session("mlpbig")
        rows.append(
            (
                "mlpbig",
                "Session within 5 % of the fastest peer (GEMM-bound)",
                f"{_us(s)} vs {_us(min(best)) if best else ''}",
                verdict(None if s is None or not best else s <= 1.05 * min(best)),
            )
        )
        # elementwise: the bar asks for 90 % of the copy bandwidth; the closest figure measured
        # here is PyTorch eager, the fastest unfused peer (fused peers move fewer bytes than counted)
        for wid, sid, frac, what in (
            ("matmul", "cupy", 0.95, "TFLOP/s ≥ 95 % of cuBLAS through CuPy"),
            ("elementwise", "torch", 0.90, "GB/s ≥ 90 % of PyTorch eager's (unfused)"),
        ):
            key = "tflops" if wid == "matmul" else "gbps"
            mine = [(_system(by_id[wid], d) or {}).get(key) for d in DEEPLEARN] if wid in by_id else []
            mine = [m for m in mine if m is not None]
            ref = (peer(wid, sid) or {}).get(key)
            val = max(mine) if mine else None
            rows.append(
                (
                    wid,
                    f"deeplearn {what}",
                    f"{val or 0:.2f} vs {ref or 0:.2f}" if val and ref else "",
                    verdict(None if val is None or ref is None else val >= frac * ref),
                )
            )
    else:
        s, n = session("mlp"), _timed(peer("mlp", "numpy"))
        rows.append(
            (
                "mlp",
                "Session within 10 % of NumPy by hand",
                f"{_us(s)} vs {_us(n)}",
                verdict(None if s is None or n is None else s <= 1.10 * n),
            )
        )
        s, j = session("quad"), _timed(peer("quad", "jax"))
        rows.append(
            (
                "quad",
                "Session no slower than JAX jit",
                f"{_us(s)} vs {_us(j)}",
                verdict(None if s is None or j is None else s <= j),
            )
        )
    lines = ["| workload | bar (bench/README.md) | measured (µs/step or rate) | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return lines


def _kernels_per_step(docs: list[dict[str, Any]], key: str) -> list[str]:
    """The kernels one step launches, from the device's latest run made with ``--profile``:
    deeplearn Session's compiled step (a CUDA graph's nodes and its device time per launch, or
    a CPU step's kernels) beside JAX's compiled step (``bench/profiling.py``'s ``xla_kernels``);
    empty where no run of the device was profiled."""
    doc = next((d for d in reversed(docs) if _device_key(d) == key and _profiled(d)), None)
    if doc is None:
        return []
    lines = [
        f"From `python bench/run.py --profile` at commit `{doc['commit']}` (file `{doc['_file']}`). "
        "deeplearn: the nodes of the Session's captured CUDA graph (kernels, and copies where "
        "any) or the kernels of its compiled CPU step, and the graph's device time per launch "
        "(launches back to back) as a share of the timed step; JAX: the operations its compiled "
        "step runs (each fusion one kernel, each library call one call).",
        "",
        "| workload | deeplearn Session kernels | device µs per launch | share of the step | "
        "JAX jit kernels |",
        "|---|---|---|---|---|",
    ]
    for entry in doc["workloads"]:
        profiles = {p.get("system"): p for p in entry.get("profiles", [])}
        session, jax = profiles.get("deeplearn-session", {}), profiles.get("jax", {})
        if not session and not jax:
            continue
        graphs, steps = session.get("captured_graphs") or [], session.get("cpu_steps") or []
        count = device = share = ""
        if graphs:
            g = graphs[0]
            kinds = g.get("kernels") or {}
            count = ", ".join(f"{n} {kind}" for kind, n in kinds.items()) or "not read"
            device = _us(g["device_us"])
            timed = _timed(_system(entry, "deeplearn-session"))
            share = f"{g['device_us'] / timed:.0%}" if timed else ""
        elif steps:
            count = f"{steps[0]['kernels']} (CPU)"
        ops = jax.get("xla_ops") or {}
        xla = f"{jax['xla_kernels']} ({', '.join(f'{n} {op}' for op, n in ops.items())})" if jax else ""
        lines.append(f"| {entry['id']} | {count} | {device} | {share} | {xla} |")
    return lines


def _profiled(doc: dict[str, Any]) -> bool:
    return any(entry.get("profiles") for entry in doc["workloads"])


def _summary(latest: dict[str, dict[str, Any]]) -> list[str]:
    """One row per device and workload: deeplearn's figures beside the fastest peer's."""
    head = (
        "| device | workload | commit | deeplearn Session µs | deeplearn eager µs | fastest peer | its µs | "
        "Session ÷ fastest peer |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for key, doc in latest.items():
        for entry in doc["workloads"]:
            s = _timed(_system(entry, "deeplearn-session"))
            e = _timed(_system(entry, "deeplearn-eager"))
            peers = [r for r in entry["systems"] if r["system"] not in DEEPLEARN and "timing" in r]
            best = min(peers, key=lambda r: r["timing"]["us_per_step"]) if peers else None
            b = best["timing"]["us_per_step"] if best else None
            ratio = f"{s / b:.2f}" if s and b else ""
            lines.append(
                f"| {key} | {entry['id']} | {_commit_of(entry, doc)} | {_us(s) or 'no figure'} | {_us(e) or 'no figure'} | "
                f"{best['label'] if best else ''} | {_us(b)} | {ratio} |"
            )
    return lines


def _history(docs: list[dict[str, Any]]) -> list[str]:
    lines = []
    devices: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        devices.setdefault(_device_key(doc), []).append(doc)
    for key, runs in devices.items():
        if len(runs) < 2:
            continue
        wids = list(dict.fromkeys(w["id"] for doc in runs for w in doc["workloads"]))  # every one measured
        lines += [
            f"**{key}**: deeplearn Session µs/step by commit",
            "",
            "| date | commit | " + " | ".join(wids) + " |",
            "|---|---|" + "---|" * len(wids),
        ]
        for doc in runs:
            by_id = {w["id"]: w for w in doc["workloads"]}
            cells = [_us(_timed(_system(by_id[w], "deeplearn-session"))) if w in by_id else "" for w in wids]
            lines.append(f"| {doc['created'][:10]} | {doc['commit']} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _versions(doc: dict[str, Any]) -> str:
    v = doc.get("versions", {})
    parts = [f"{k} {v[k]}" for k in ("python", "numpy", "cupy", "torch", "jax") if v.get(k)]
    d = doc["device"]
    extra = [f"driver {d['driver']}" for _ in [0] if d.get("driver")]
    extra += [f"CUDA {d['cuda_runtime']}" for _ in [0] if d.get("cuda_runtime")]
    extra += [f"BLAS {d['blas']}" for _ in [0] if d.get("blas")]
    return ", ".join(parts + extra)


def render_markdown(
    docs: list[dict[str, Any]], chart: str | None, chart_note: str | None, notes: str | None = None
) -> str:
    """The whole of RESULTS.md (``notes``: hand-written analysis, placed after the summary)."""
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python bench/report.py` from `bench/results/*.json` (written by",
        "`python bench/run.py`); do not edit by hand. Workloads and the bar: `bench/README.md`.",
        "Every figure is the median time of one step over at least 5 synchronised repeats; every system's",
        "step was first checked equal to deeplearn's (and deeplearn's to a float64 oracle) — a mismatch",
        'or an error is shown in place of a figure. "time ÷ Session" below 1 means the system is faster',
        "than deeplearn's Session, above 1 slower.",
        "",
    ]
    if not docs:
        return "\n".join(lines + ["No results yet: run `python bench/run.py`.", ""])
    if chart:
        lines += [f"![µs per step by system and workload]({chart})", ""]
    elif chart_note:
        lines += [f"_Chart: {chart_note}_", ""]
    latest = _latest_per_device(docs)
    intro = (
        "The latest full run on each device (a run stopped by its time limit, completed by the run before it: "
        'see the commit column); "Session ÷ fastest peer" above 1 means deeplearn is that '
        "many times slower than the fastest peer measured beside it."
    )
    lines += ["## Summary", "", intro, ""]
    lines += _summary(latest) + [""]
    if notes:
        lines += [notes.strip(), ""]
    for key, doc in latest.items():
        dirty = " (uncommitted changes)" if doc.get("dirty") else ""
        about = (
            f"Commit `{doc['commit']}`{dirty}, {doc['created'][:10]}; {_versions(doc)}; "
            f"file `{doc['_file']}`."
        )
        earlier = [e for e in doc["workloads"] if "_run" in e]
        if earlier:
            files = dict.fromkeys(f"`{e['_run']['_file']}` (commit `{e['_run']['commit']}`)" for e in earlier)
            about += (
                f" That run was stopped by its time limit before {', '.join(e['id'] for e in earlier)}: "
                f"their figures are from {', '.join(files)}."
            )
        lines += [f"## {key}", "", about, ""]
        lines += ["### Where deeplearn stands", ""]
        for entry in doc["workloads"]:
            lines += [f"**{entry['id']}**", ""] + _standing(entry) + [""]
        lines += ["### The bar", ""] + _bar(doc) + [""]
        kernels = _kernels_per_step(docs, key)
        if kernels:
            lines += ["### Kernels per step", ""] + kernels + [""]
        for entry in doc["workloads"]:
            sizes = ", ".join(f"{k} {v}" for k, v in entry["sizes"].items())
            lines += [f"### {entry['id']}: {entry['description']}", "", f"Sizes: {sizes}.", ""]
            lines += _workload_table(entry) + [""]
    hist = _history(docs)
    if hist:
        lines += ["## History", ""] + hist
    return "\n".join(lines).rstrip() + "\n"


def render_chart(docs: list[dict[str, Any]], path: Path) -> str | None:
    """Draws µs/step per workload and system (log scale), one panel per device; returns None when
    done, else why there is no chart."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "skipped: matplotlib is not installed (pip install -e '.[bench]')"
    latest = list(_latest_per_device(docs).items())
    if not latest:
        return "skipped: no results"
    fig, axes = plt.subplots(len(latest), 1, figsize=(13, 4.2 * len(latest)), squeeze=False)
    for ax, (key, doc) in zip(axes[:, 0], latest):
        workloads = [w for w in doc["workloads"]]
        systems: list[tuple[str, str]] = []
        for w in workloads:
            for r in w["systems"]:
                if (r["system"], r["label"]) not in systems:
                    systems.append((r["system"], r["label"]))
        width = 0.8 / max(1, len(systems))
        for i, (sid, label) in enumerate(systems):
            xs, ys = [], []
            for j, w in enumerate(workloads):
                t = _timed(_system(w, sid))
                if t is not None:
                    xs.append(j + (i - (len(systems) - 1) / 2) * width)
                    ys.append(t)
            ax.bar(xs, ys, width, label=label)
        ax.set_yscale("log")
        ax.set_xticks(range(len(workloads)), [w["id"] for w in workloads])
        ax.set_ylabel("µs per step (log)")
        ax.set_title(f"{key}, commit {doc['commit']}")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/report.py", description="results JSON -> RESULTS.md and a chart")
    p.add_argument("--results", default=str(ROOT / "bench" / "results"))
    p.add_argument("--md", default=str(ROOT / "bench" / "RESULTS.md"))
    p.add_argument("--png", default=str(ROOT / "bench" / "RESULTS.png"))
    p.add_argument(
        "--notes",
        default=str(ROOT / "bench" / "NOTES.md"),
        help="hand-written analysis included after the summary (default bench/NOTES.md)",
    )
    p.add_argument("--include-quick", action="store_true")
    args = p.parse_args(argv)
    docs = load_results(Path(args.results), args.include_quick)
    md_path, png_path = Path(args.md), Path(args.png)
    note = render_chart(docs, png_path) if docs else "skipped: no results"
    chart = None
    if note is None:
        try:
            chart = str(png_path.relative_to(md_path.parent))
        except ValueError:
            chart = str(png_path)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    notes_path = Path(args.notes)
    notes = notes_path.read_text() if notes_path.exists() else None
    md_path.write_text(render_markdown(docs, chart, note, notes))
    print(f"wrote {md_path}" + (f" and {png_path}" if chart else f" ({note})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
