"""The benchmark harness stays runnable: ``bench/run.py --quick`` on the CPU writes a results file
of the documented schema, the one-step equality check catches a wrong peer, and the report renders.
Speed is never asserted here."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import report
from bench.harness import Reference, Settings, compare, run_problem
from bench.peers import DeeplearnEager, DeeplearnSession, NumPyPeer
from bench.peers.handwritten import oracle_step
from bench.workloads import TRAIN_WORKLOADS, WORKLOADS, make_problem

ROOT = Path(__file__).resolve().parents[2]
FAST = Settings(repeats=5, target_s=0.002, warmup_s=0.0)
STATUSES = {"ok", "skipped", "error", "mismatch"}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--quick",
            "--backend",
            "cpu",
            "--out",
            str(out),
            "--target-s",
            "0.002",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.exists(), f"no results file; stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc, json.loads(out.read_text())


def test_quick_run_writes_the_documented_schema(quick_run: tuple[Any, dict[str, Any]]) -> None:
    proc, doc = quick_run
    assert doc["schema"] == "deeplearn-bench/1"
    assert doc["backend"] == "cpu" and doc["quick"] is True
    assert isinstance(doc["commit"], str) and doc["commit"]
    assert doc["device"]["kind"] == "cpu" and doc["device"]["name"]
    for key in ("python", "numpy", "cupy", "torch", "jax", "deeplearn"):
        assert key in doc["versions"]
    assert doc["versions"]["numpy"] == np.__version__
    assert [w["id"] for w in doc["workloads"]] == list(WORKLOADS)
    assert doc["finished"] is True
    for w in doc["workloads"]:
        ids = [r["system"] for r in w["systems"]]
        assert ids[:3] == ["deeplearn-session", "deeplearn-eager", "numpy"], ids
        for r in w["systems"]:
            assert r["status"] in STATUSES
            if r["status"] != "ok":
                assert r["reason"], r
                assert "timing" not in r  # no figure for a system that did not run or disagreed
                continue
            t = r["timing"]
            assert t["repeats"] >= 5 and len(t["samples_us"]) == t["repeats"]
            assert t["us_min"] <= t["us_per_step"] <= t["us_max"]
            assert t["steps_per_s"] == pytest.approx(1e6 / t["us_per_step"])
            assert r["check"]["ok"] is True and r["check"]["max_rel_err"] >= 0
            assert r["time_vs_session"] > 0
            if w["id"] in ("matmul", "mlpbig"):
                assert r["tflops"] > 0
            if w["id"] == "elementwise":
                assert r["gbps"] > 0
        by_id = {r["system"]: r for r in w["systems"]}
        # deeplearn is checked against the float64 oracle, the peers against deeplearn's Session
        for sid in ("deeplearn-session", "deeplearn-eager"):
            assert by_id[sid]["status"] == "ok", by_id[sid]
            assert by_id[sid]["check"]["against"] == "oracle-float64"
        assert by_id["numpy"]["status"] == "ok", by_id["numpy"]
        assert by_id["numpy"]["check"]["against"] == "deeplearn-session"
        assert by_id["deeplearn-session"]["time_vs_session"] == 1.0
        for sid, module in (("torch", "torch"), ("jax", "jax")):
            want = "ok" if _installed(module) else "skipped"
            assert by_id[sid]["status"] == want, by_id[sid]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "deeplearn Session" in proc.stdout and "us/step" in proc.stdout


class _WrongLearningRate(NumPyPeer):
    id = "numpy-wrong-lr"
    label = "NumPy, learning rate doubled"

    def prepare(self, problem: Any) -> None:
        super().prepare(problem)
        self.model.lr = 2 * problem.lr


class _SumNotMean(NumPyPeer):
    """Forgets the 1/batch of Session.train's update (a summed, not averaged, gradient)."""

    id = "numpy-sum"
    label = "NumPy, batch sum"

    def prepare(self, problem: Any) -> None:
        super().prepare(problem)
        self.model.lr = problem.lr * problem.batch


class _WrongMatmul(NumPyPeer):
    id = "numpy-transposed"
    label = "NumPy, a·bᵀ"

    def run(self, n: int) -> None:
        for _ in range(n):
            self.out = {"out": self.data["a"] @ self.data["b"].T}


@pytest.mark.parametrize("workload", ["mlp", "cnn"])
def test_equality_check_catches_a_wrong_peer(workload: str) -> None:
    problem = make_problem(workload, "cpu", quick=True)
    oracle = Reference("oracle-float64", *oracle_step(problem))
    logs: list[str] = []
    records = run_problem(
        problem,
        [DeeplearnEager, NumPyPeer, _WrongLearningRate, _SumNotMean],
        "cpu",
        FAST,
        oracle,
        log=logs.append,
    )
    status = {r["system"]: r for r in records}
    assert status["deeplearn-eager"]["status"] == "ok"
    assert status["numpy"]["status"] == "ok"
    assert status["numpy"]["check"]["against"] == "deeplearn-eager"
    for sid in ("numpy-wrong-lr", "numpy-sum"):
        r = status[sid]
        assert r["status"] == "mismatch", r
        assert "timing" not in r and "relative error" in r["reason"]
        assert any("MISMATCH" in line and sid in line for line in logs)


def test_equality_check_catches_a_wrong_op() -> None:
    problem = make_problem("matmul", "cpu", quick=True)
    oracle = Reference("oracle-float64", *oracle_step(problem))
    records = run_problem(problem, [NumPyPeer, _WrongMatmul], "cpu", FAST, oracle, log=lambda s: None)
    assert [r["status"] for r in records] == ["ok", "mismatch"]


@pytest.mark.parametrize("workload", TRAIN_WORKLOADS)
def test_compare_measures_the_step_not_the_weights(workload: str) -> None:
    problem = make_problem(workload, "cpu", quick=True)
    result, cost = oracle_step(problem)
    ref = Reference("oracle-float64", result, cost)
    same = compare(problem, {k: v.astype(np.float32) for k, v in result.items()}, cost, ref)
    assert same["ok"] and same["max_rel_err"] < 1e-3
    # a step of 0.9× the right size: the weights are still within 1e-3 of each other, the step is not
    shrunk = {k: problem.init[k] + 0.9 * (v - problem.init[k]) for k, v in result.items()}
    bad = compare(problem, shrunk, cost, ref)
    assert not bad["ok"] and bad["max_rel_err"] > 0.05
    assert not compare(problem, result, cost * 1.1, ref)["ok"]


def test_report_renders_tables_and_standing(quick_run: tuple[Any, dict[str, Any]], tmp_path: Path) -> None:
    _, doc = quick_run
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.json").write_text(json.dumps(doc))
    md, png = tmp_path / "RESULTS.md", tmp_path / "RESULTS.png"
    assert (
        report.main(
            ["--results", str(tmp_path / "results"), "--md", str(md), "--png", str(png), "--include-quick"]
        )
        == 0
    )
    text = md.read_text()
    assert "## " + doc["device"]["name"] in text
    for w in WORKLOADS:
        assert f"### {w}:" in text and f"**{w}**" in text
    assert "| deeplearn Session |" in text and "| NumPy by hand |" in text
    assert "deeplearn Session (" in text  # a standing sentence with its figure
    if _installed("matplotlib"):
        assert png.exists() and png.stat().st_size > 0
    else:
        assert "matplotlib is not installed" in text and not png.exists()
    # quick runs are left out unless asked for
    assert report.main(["--results", str(tmp_path / "results"), "--md", str(md), "--png", str(png)]) == 0
    assert "No results yet" in md.read_text()


def test_report_keeps_the_latest_full_run_in_front_of_a_later_partial_one(
    quick_run: tuple[Any, dict[str, Any]], tmp_path: Path
) -> None:
    """A run of one workload made after a full run (to check one change) adds its figure to the
    history; the summary and the device's tables stay those of the full run."""
    _, doc = quick_run
    full = json.loads(json.dumps(doc))
    partial = json.loads(json.dumps(doc))
    partial["workloads"] = [w for w in partial["workloads"] if w["id"] == "quad"]
    partial["commit"], partial["created"] = "partial", doc["created"] + "z"  # (later)
    latest = report._latest_per_device([full, partial])
    assert list(latest.values()) == [full]
    history = "\n".join(report._history([full, partial]))
    assert all(f" {w} " in history.split("\n")[2] for w in WORKLOADS)  # every column, the quad-only row too
    assert "| partial |" in history
    full["_file"], partial["_file"] = "full.json", "partial.json"  # (as load_results names them)
    text = report.render_markdown([full, partial], None, None)
    for w in WORKLOADS:
        assert f"### {w}:" in text


def test_report_completes_a_later_run_stopped_by_its_time_limit_with_the_full_run_before(
    quick_run: tuple[Any, dict[str, Any]], tmp_path: Path
) -> None:
    """A later run of every workload that its time limit stopped (``finished`` false) stands in
    front of the full run before it, for the workloads it measured; the others keep the full
    run's figures, and the summary and the device's section name each one's commit."""
    _, doc = quick_run
    full = json.loads(json.dumps(doc))
    stopped = json.loads(json.dumps(doc))
    stopped["workloads"] = [w for w in stopped["workloads"] if w["id"] in ("quad", "mlp")]
    stopped["commit"], stopped["created"], stopped["finished"] = "stopped", doc["created"] + "z", False
    stopped["command"] = "python bench/run.py --backend cpu --profile"
    full["_file"], stopped["_file"] = "full.json", "stopped.json"
    (latest,) = report._latest_per_device([full, stopped]).values()
    assert latest["commit"] == "stopped"
    assert [w["id"] for w in latest["workloads"]] == ["quad", "mlp"] + [
        w for w in WORKLOADS if w not in ("quad", "mlp")
    ]
    assert [report._commit_of(w, latest) for w in latest["workloads"]] == ["stopped"] * 2 + [
        doc["commit"]
    ] * (len(WORKLOADS) - 2)
    text = report.render_markdown([full, stopped], None, None)
    assert "stopped by its time limit before" in text and "`full.json`" in text
    summary = text.split("## Summary")[1].split("\n\n")[2]
    assert "| quad | stopped |" in summary and f"| matmul | {doc['commit']} |" in summary
    # the same run chosen to measure two workloads (``--workloads``) stays in the history only
    stopped["command"] += " --workloads quad,mlp"
    assert list(report._latest_per_device([full, stopped]).values()) == [full]


def test_a_run_saves_its_document_after_each_workload() -> None:
    """What ``bench/run.py`` writes after each workload: the document so far, not finished, so
    that a run stopped by a time limit keeps what it measured; the last workload finishes it."""
    from bench import run

    saved: list[tuple[list[str], bool]] = []
    doc = run.run_benchmarks(
        "cpu",
        ["quad", "matmul", "elementwise"],
        quick=True,
        systems=[DeeplearnSession, NumPyPeer],
        settings=FAST,
        log=lambda line: None,
        save=lambda d: saved.append(([w["id"] for w in d["workloads"]], d["finished"])),
    )
    assert saved == [(["quad"], False), (["quad", "matmul"], False)]
    assert [w["id"] for w in doc["workloads"]] == ["quad", "matmul", "elementwise"] and doc["finished"]


def test_systems_skip_with_a_reason_when_their_library_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.peers.base import Unavailable
    from bench.peers.torch_peer import TorchEager

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(Unavailable, match="PyTorch is not installed"):
        TorchEager("cpu")
    problem = make_problem("quad", "cpu", quick=True)
    records = run_problem(problem, [TorchEager], "cpu", FAST, None, log=lambda s: None)
    assert records[0]["status"] == "skipped" and "PyTorch" in records[0]["reason"]


def test_deeplearn_session_is_first_and_the_reference() -> None:
    # The order matters: peers are checked against the first deeplearn system that agrees with
    # the oracle, which is the Session when it works.
    from bench.peers import SYSTEMS

    assert SYSTEMS[0] is DeeplearnSession and SYSTEMS[1] is DeeplearnEager
