"""The benchmarks demo (demos/benchmarks/): its measuring code, its parameters, its live run through
the real server, and its page in Chromium.

Without a browser: each op computes what it names (against NumPy), the timing is bench/'s own
harness (the very functions, not a copy) and gives sane figures that grow with the size, every
array a measurement makes is disposed, the GPU is measured only when ``dl.ENV`` says CUDA is
available, the plain script prints its table, bad parameters get clear messages (from the script,
from ``parse_params`` and as the server's 400), and the index lists the demo with its thumbnail.

In the browser (skipped with the reason where Playwright or Chromium is missing, as
tests/demos/test_browser.py is): the page measures, its charts and table grow while it runs, it
ends with one dot and one row per figure on log axes labelled with the sizes, it shows bad
parameters as a message and measures again when restarted, and logs no console errors.
"""

from __future__ import annotations

import doctest
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import bench.harness
import deeplearn as dl
from demos.benchmarks import benchmarks as bm
from demos.server import DemoServer, list_demos
from tests.demos.test_demo_server import _serve, request, sse_events

REPO = Path(__file__).resolve().parents[2]
DEMOS = REPO / "demos"

try:  # the browser tests' fixtures; their module skips itself where Playwright or Chromium is missing
    from tests.demos import test_browser as shared
except pytest.skip.Exception as e:
    shared, NO_BROWSER = None, str(e)
else:
    NO_BROWSER = ""
    base_url, browser, page = shared.base_url, shared.browser, shared.page



def in_browser(test: Any) -> Any:
    """Marks a test of the page in Chromium: skipped, with the reason, where there is no browser."""
    for mark in (pytest.mark.browser, pytest.mark.timeout(180),
                 pytest.mark.skipif(shared is None, reason=NO_BROWSER or "no browser")):
        test = mark(test)
    return test


def load_live() -> ModuleType:
    """demos/benchmarks/live.py, imported by path as the server does."""
    name = "test_benchmarks_live"
    spec = importlib.util.spec_from_file_location(name, DEMOS / "benchmarks" / "live.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


live = load_live()


@pytest.fixture(scope="module")
def real_server() -> Iterator[DemoServer]:
    yield from _serve(DEMOS, default_demo="benchmarks")


# ---------------------------------------------------------------------------------------------
# The measuring code
# ---------------------------------------------------------------------------------------------


def test_sizes_double_from_the_smallest_to_the_largest() -> None:
    assert bm.sizes_between(32, 512) == [32, 64, 128, 256, 512]
    assert bm.sizes_between(4, 1024) == [2**k for k in range(2, 11)]
    assert bm.sizes_between(100, 300) == [100, 200, 300]
    assert bm.sizes_between(7, 7) == [7]
    for smallest, largest in ((3, 8), (64, 32), (8, 2048)):
        with pytest.raises(ValueError, match="The sizes must satisfy 4 <= smallest <= largest <= 1024"):
            bm.sizes_between(smallest, largest)


def conv_same_3x3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A 3×3 cross-correlation with "same" zero padding, written out: the oracle for conv2d."""
    rows, cols, _ = x.shape
    padded = np.pad(x.astype(np.float64), ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((rows, cols, w.shape[3])) + b
    for dy in range(3):
        for dx in range(3):
            out += padded[dy:dy + rows, dx:dx + cols] @ w[dy, dx]
    return out


def test_each_op_computes_what_it_names(math: dl.NDArrayMath) -> None:
    """On every backend (the ``math`` fixture: CUDA only where there is a GPU)."""
    for name, oracle in (("mat_mul", lambda a, b: a @ b), ("conv2d", conv_same_3x3),
                         ("add", lambda a, b: a + b), ("sum", lambda a: a.sum())):
        system = bm.OpSystem(bm.OPS[name], 6, math, seed=1)
        inputs = [x.numpy().astype(np.float64) for x in system.inputs]
        assert [x.shape for x in inputs] == bm.OPS[name].shapes(6)
        system.run(2)
        system.sync()
        got = system.result()["out"]
        np.testing.assert_allclose(got, oracle(*inputs), rtol=1e-4, atol=1e-4, err_msg=name)
        system.close()


def test_timing_is_bench_harness_itself() -> None:
    """The page makes bench/'s measurement by importing it, not a second harness."""
    assert bm.warm_up is bench.harness.warm_up
    assert bm.time_repeat is bench.harness.time_repeat
    assert bm.summarize is bench.harness.summarize
    assert bm.Settings is bench.harness.Settings
    assert issubclass(bm.OpSystem, bench.harness.System)


def test_measure_gives_sane_figures_that_grow_with_the_size() -> None:
    cpu = dl.NDArrayMathCPU()
    small = bm.measure("mat_mul", 8, cpu, repeats=5)
    large = bm.measure("mat_mul", 384, cpu, repeats=7)
    for row, n, repeats in ((small, 8, 5), (large, 384, 7)):
        assert row["op"] == "mat_mul" and row["n"] == n and row["backend"] == "cpu"
        assert row["shape"] == f"{n}×{n}, {n}×{n}" and row["unit"] == "GFLOP/s"
        assert row["repeats"] == repeats and row["calls_per_repeat"] >= 1
        assert 0 < row["us_min"] <= row["us"] <= row["us_max"]
        assert row["spread_pct"] == pytest.approx(100 * (row["us_max"] - row["us_min"]) / row["us"])
        assert row["rate"] == pytest.approx(2 * n**3 / (row["us"] * 1e-6) / 1e9)
    # 110 592 times the arithmetic: far slower, whatever the machine (and however busy it is:
    # the margin is wide because other work may share the cores; so no check of the repeat's length).
    assert large["us"] > 5 * small["us"]


def test_a_measurement_disposes_every_array_it_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dl.NDArray] = []

    class Recording(bm.OpSystem):
        def run(self, n: int) -> None:
            super().run(n)
            made.append(self.out)

        def close(self) -> None:
            made.extend(self.inputs)
            super().close()

    monkeypatch.setattr(bm, "OpSystem", Recording)
    bm.measure("conv2d", 8, dl.NDArrayMathCPU())
    assert len(made) > 3 and all(a.is_disposed for a in made)


def test_the_gpu_is_measured_only_when_env_says_cuda_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    real_get = dl.ENV.get
    for cuda, backends in ((False, ["cpu"]), (True, ["cpu", "cuda"])):
        monkeypatch.setattr(dl.ENV, "get", lambda f, cuda=cuda: cuda if f == "CUDA_AVAILABLE" else real_get(f))
        assert bm.available_backends() == backends
    monkeypatch.setattr(dl.ENV, "get", real_get)
    assert bm.available_backends() == (["cpu", "cuda"] if dl.ENV.get("CUDA_AVAILABLE") else ["cpu"])
    assert isinstance(bm.make_math("cpu"), dl.NDArrayMathCPU)


def test_run_benchmarks_reports_each_row_as_it_is_measured() -> None:
    seen: list[tuple[str, int, str]] = []
    rows = bm.run_benchmarks(["sum", "add"], [8, 16], repeats=5, backends=["cpu"],
                             report=lambda row: seen.append((row["op"], row["n"], row["backend"])))
    assert seen == [("sum", 8, "cpu"), ("sum", 16, "cpu"), ("add", 8, "cpu"), ("add", 16, "cpu")]
    assert [(r["op"], r["n"], r["backend"]) for r in rows] == seen
    assert {r["unit"] for r in rows} == {"GB/s"}


def test_script_docstring_examples() -> None:
    """(pytest collects doctests under deeplearn/ only; live.py's run in tests/demos/test_demo_server.py.)"""
    result = doctest.testmod(bm, extraglobs={"dl": dl}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------------------------
# The plain script and bad parameters
# ---------------------------------------------------------------------------------------------


def test_script_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert bm.main(["--op", "mat_mul", "--min-size", "8", "--max-size", "32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("backends: cpu") and "median of 5 repeats" in lines[0]
    assert lines[1].split()[:3] == ["op", "n", "where"]
    rows = [line.split() for line in lines[2:]]
    backends = bm.available_backends()
    assert [(r[0], int(r[1]), r[2]) for r in rows] == [("mat_mul", n, b) for n in (8, 16, 32) for b in backends]
    assert all(float(r[3]) > 0 and r[-1] == "GFLOP/s" for r in rows)


@pytest.mark.parametrize(("args", "message"), [
    (["--op", "fft"], "Unknown op 'fft'; the ops are: mat_mul, conv2d, add, sum."),
    (["--max-size", "4096"], "The sizes must satisfy 4 <= smallest <= largest <= 1024; got 32 and 4096."),
    (["--min-size", "64", "--max-size", "32"], "The sizes must satisfy 4 <= smallest <= largest <= 1024; got 64 and 32."),
    (["--repeats", "2"], "--repeats must be from 5 to 100; got 2."),
])
def test_script_refuses_bad_arguments(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bm.main(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith(message)


@pytest.mark.parametrize(("query", "message"), [
    ({"ops": "mat_mul,fft"}, "Unknown op 'fft'; the ops are: mat_mul, conv2d, add, sum."),
    ({"ops": " , "}, "Name at least one op: mat_mul, conv2d, add, sum."),
    ({"min_size": "2"}, "Smallest size n must be a whole number from 4 to 1024; got '2'."),
    ({"max_size": "5000"}, "Largest size n must be a whole number from 4 to 1024; got '5000'."),
    ({"max_size": "big"}, "Largest size n must be a whole number from 4 to 1024; got 'big'."),
    ({"min_size": "256", "max_size": "128"}, "The smallest size (256) must not be larger than the largest (128)."),
    ({"repeats": "1"}, "Repeats must be a whole number from 5 to 100; got '1'."),
    ({"size": "8"}, "Unknown parameter 'size'; this demo takes: max_size, min_size, ops, repeats."),
])
def test_bad_parameters_get_a_clear_message(query: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as error:
        live.parse_params(query)
    assert str(error.value) == message


def test_parameters_and_their_defaults() -> None:
    assert live.parse_params({}) == live.Params(("mat_mul", "conv2d", "add", "sum"), 32, 512, 5)
    assert live.parse_params({"ops": "sum sum add", "min_size": "4", "max_size": "1024", "repeats": "100"}) == \
        live.Params(("sum", "add"), 4, 1024, 100)


# ---------------------------------------------------------------------------------------------
# The live run through the real server, and the index
# ---------------------------------------------------------------------------------------------


def test_live_run_streams_each_figure(real_server: DemoServer) -> None:
    reply = request(real_server, "/demos/benchmarks/run?ops=sum,mat_mul&min_size=8&max_size=32&repeats=5")
    assert reply.status == 200, reply.text
    events = sse_events(reply.text)
    names = [name for name, _ in events]
    backends = bm.available_backends()
    total = 2 * 3 * len(backends)
    assert names == ["start", "backend", *["point"] * total, "done", "end"]
    start: dict[str, Any] = events[0][1]
    assert start["sizes"] == [8, 16, 32] and start["points"] == total
    assert [b["name"] for b in start["backends"]] == backends
    assert [op["name"] for op in start["ops"]] == ["sum", "mat_mul"] and start["ops"][1]["unit"] == "GFLOP/s"
    assert events[1][1]["label"].startswith("CPU (NumPy)")
    points = [p for name, p in events if name == "point"]
    assert [(p["op"], p["n"], p["backend"]) for p in points] == [
        (op, n, b) for op in ("sum", "mat_mul") for n in (8, 16, 32) for b in backends]
    assert all(0 < p["us_min"] <= p["us"] <= p["us_max"] and p["repeats"] == 5 for p in points)
    assert events[-2][1]["points"] == total and events[-2][1]["seconds"] > 0


def test_live_run_refuses_bad_parameters_and_the_server_keeps_serving(real_server: DemoServer) -> None:
    reply = request(real_server, "/demos/benchmarks/run?max_size=99999")
    assert reply.status == 400
    assert reply.json() == {"error": "Largest size n must be a whole number from 4 to 1024; got '99999'."}
    assert request(real_server, "/demos/benchmarks/run?ops=add&min_size=4&max_size=4").status == 200


def test_index_lists_the_demo_with_its_thumbnail(real_server: DemoServer) -> None:
    entry = {e.name: e for e in list_demos(DEMOS)}["benchmarks"]
    assert entry.title == "Benchmarks" and entry.description.startswith("Times deeplearn's ops")
    assert entry.thumbnail == "/demos/_index/thumbnails/benchmarks.svg"
    index = request(real_server, "/").text
    assert '<li class="card" id="demo-benchmarks"><a href="/demos/benchmarks/">' in index
    thumbnail = request(real_server, entry.thumbnail)
    assert thumbnail.status == 200 and thumbnail.headers["content-type"] == "image/svg+xml"
    assert thumbnail.text.startswith("<svg") and "<script" not in thumbnail.text
    for path in ("", "benchmarks.js", "benchmarks.py", "live.py"):
        assert request(real_server, f"/demos/benchmarks/{path}").status == 200, path


# ---------------------------------------------------------------------------------------------
# The page in Chromium
# ---------------------------------------------------------------------------------------------

FIGURES = """() => ({
  state: document.body.dataset.state,
  dots: document.querySelectorAll('#charts circle.point').length,
  rows: document.querySelectorAll('#rows tr').length,
})"""


def dots(page: Any, op: str) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        f"#chart-{op} circle.point",
        "els => els.map(e => ({n: Number(e.dataset.n), us: Number(e.dataset.us), backend: e.dataset.backend}))")


@in_browser
def test_page_measures_and_plots_live(page: Any, base_url: str, tmp_path: Path) -> None:
    backends = bm.available_backends()
    total = 3 * 6 * len(backends)
    # 20 repeats: long enough (several seconds) to watch the charts and the table grow.
    page.goto(f"{base_url}/demos/benchmarks/?ops=mat_mul,add,sum&min_size=8&max_size=256&repeats=20")
    page.wait_for_function("Number(document.getElementById('points-now').textContent) >= 2")
    during = page.evaluate(FIGURES)
    assert during["state"] == "running" and 2 <= during["dots"] == during["rows"] < total, during
    assert shared is not None and shared.wait_until_finished(page) == "done", page.inner_text("#message")

    after = page.evaluate(FIGURES)
    assert after["dots"] == after["rows"] == total
    assert page.inner_text("#points-now") == page.inner_text("#points-total") == str(total)
    assert page.locator("#charts .chart").count() == 3
    assert page.inner_text("#backend-name").startswith("CPU (NumPy)")
    for op in ("mat_mul", "add", "sum"):
        points = dots(page, op)
        assert sorted((p["n"], p["backend"]) for p in points) == sorted((n, b) for n in (8, 16, 32, 64, 128, 256)
                                                                       for b in backends)
        assert all(p["us"] > 0 for p in points)
        # The x ticks are labelled with sizes (powers of two), not their logarithms.
        ticks = page.eval_on_selector_all(f"#chart-{op} text.tick[text-anchor='middle']",
                                          "els => els.map(e => Number(e.textContent))")
        assert ticks and set(ticks) <= {2**k for k in range(2, 11)}, ticks
    cpu = {p["n"]: p["us"] for p in dots(page, "mat_mul") if p["backend"] == "cpu"}
    assert cpu[256] > 3 * cpu[8]                                   # a matrix product grows like n³
    assert page.locator("#rows tr[data-op='mat_mul'][data-n='256'] td").nth(7).inner_text().endswith("GFLOP/s")
    assert page.is_hidden("#message")
    assert page.is_hidden("#legend [data-backend='cuda']") == ("cuda" not in backends)
    shared.assert_not_blank(page, tmp_path / "benchmarks.png")


@in_browser
def test_page_restart_and_bad_input(page: Any, base_url: str) -> None:
    assert shared is not None
    page.goto(f"{base_url}/demos/benchmarks/?ops=add&min_size=16&max_size=64")
    assert shared.wait_until_finished(page) == "done", page.inner_text("#message")
    assert page.evaluate(FIGURES)["rows"] == 3 * len(bm.available_backends())

    page.fill("#max_size", "5000")
    page.click("#restart")
    assert shared.wait_until_finished(page, run=2) == "error"
    assert page.inner_text("#message") == "Largest size n must be a whole number from 4 to 1024; got '5000'."
    assert page.evaluate(FIGURES)["dots"] == page.evaluate(FIGURES)["rows"] == 0   # cleared, not kept

    page.fill("#max_size", "32")
    page.fill("#ops", "sum, fft")
    page.click("#restart")
    assert shared.wait_until_finished(page, run=3) == "error"
    assert page.inner_text("#message") == "Unknown op 'fft'; the ops are: mat_mul, conv2d, add, sum."

    page.fill("#ops", "sum, conv2d")
    page.click("#restart")
    assert shared.wait_until_finished(page, run=4) == "done", page.inner_text("#message")
    assert page.is_hidden("#message")
    ops = page.eval_on_selector_all("#rows tr", "els => els.map(e => e.dataset.op + '@' + e.dataset.n)")
    per_backend = len(bm.available_backends())
    assert ops == [f"{op}@{n}" for op in ("sum", "conv2d") for n in (16, 32) for _ in range(per_backend)]
    assert "ops=sum" in page.url and "max_size=32" in page.url

