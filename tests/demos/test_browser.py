"""The demo pages in a real browser: Debian's Chromium driven by Playwright, against the real server.

Runs only where both are present (``./scripts/test`` installs them: the ``browser`` extra and the
``chromium`` package); Playwright never downloads a browser here. ``DEEPLEARN_NO_BROWSER=1`` skips
them even where both are present (``./scripts/test`` then installs neither).
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

if os.environ.get("DEEPLEARN_NO_BROWSER") == "1":
    pytest.skip("DEEPLEARN_NO_BROWSER=1: the browser tests are turned off", allow_module_level=True)
if sync_playwright is None:
    pytest.skip("the Python package playwright is not installed (pip install -e '.[browser]'; ./scripts/test "
                "does it)", allow_module_level=True)
if CHROMIUM is None:
    pytest.skip("Chromium is not installed (apt-get install --no-install-recommends chromium; ./scripts/test "
                "does it)", allow_module_level=True)


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The real server (what ./scripts/watch-demo runs) on a free port; yields http://localhost:PORT."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "demos", "demos/ml_beginners", "--port", "0", "--quiet"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("Serving "):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"the demo server did not start: {line!r} {err}")
        url = line.split(" at ")[1].split()[0]            # http://localhost:PORT/demos/ml_beginners/
        yield url.split("/demos/")[0]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert sync_playwright is not None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; fails the test if the page's JavaScript throws or logs an error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.set_default_timeout(30_000)
    yield pg
    context.close()
    # A 400 for deliberately bad input is logged by Chromium as a failed resource load.
    problems = [p for p in problems if "status of 400" not in p]
    assert not problems, problems


def runs(page: Page) -> int:
    """How many runs the page has started (it counts them in <body data-runs>)."""
    return int(page.evaluate("Number(document.body.dataset.runs || 0)"))


def wait_until_finished(page: Page, run: int = 1) -> str:
    """Waits until the page's run number ``run`` has ended; returns "done" or "error"."""
    page.wait_for_function(
        "run => Number(document.body.dataset.runs || 0) >= run"
        " && ['done', 'error'].includes(document.body.dataset.state)", arg=run)
    return str(page.evaluate("document.body.dataset.state"))


def cost_points(page: Page) -> list[tuple[int, float]]:
    points = page.eval_on_selector_all(
        "#cost-chart circle.cost-point", "els => els.map(e => [e.dataset.batch, e.dataset.cost])")
    return [(int(b), float(c)) for b, c in points]


# ---------------------------------------------------------------------------------------------
# Screenshots: "not blank" without Pillow
# ---------------------------------------------------------------------------------------------


def png_summary(data: bytes) -> dict[str, Any]:
    """Width, height and how busy a PNG is: the fraction of non-zero bytes in its filtered scanlines.
    A blank (one-colour) image filters to almost nothing but zeros; a page of text and charts does not."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    nonzero = len(raw) - raw.count(0)
    return {"width": width, "height": height, "busy": nonzero / max(len(raw), 1)}


def assert_not_blank(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    shot = png_summary(path.read_bytes())
    blank_page = page.context.new_page()
    blank_page.set_content("<html><body style='background:#f5f7fb'></body></html>")
    blank = png_summary(blank_page.screenshot(full_page=True))
    blank_page.close()
    assert shot["width"] == 1280 and shot["height"] >= 900, shot
    assert blank["busy"] < 0.01, blank  # the yardstick works: a blank page is not busy
    assert shot["busy"] > 10 * max(blank["busy"], 0.002), (shot, blank)


# ---------------------------------------------------------------------------------------------
# ml_beginners
# ---------------------------------------------------------------------------------------------


def test_ml_beginners_trains_live_and_reaches_57(page: Page, base_url: str, tmp_path: Path) -> None:
    # A short pause between batches, so the chart can be seen growing.
    page.goto(f"{base_url}/demos/ml_beginners/?seed=1&delay_ms=40")
    page.wait_for_function(
        "(() => { const n = document.querySelectorAll('#cost-chart circle.cost-point').length;"
        " return n > 0 && n < 20; })()")
    assert wait_until_finished(page) == "done", page.inner_text("#message")

    backend = page.inner_text("#backend-name")
    assert backend.startswith(("CPU", "GPU")), backend
    assert [t.strip() for t in page.locator("#mxv .matrix").nth(2).locator("span").all_inner_texts()] == ["80", "170"]
    for k in "abc":
        assert 0 <= float(page.inner_text(f"#start-{k}")) < 1

    points = cost_points(page)
    assert [b for b, _ in points] == list(range(1, 21))        # one point per batch
    costs = [c for _, c in points]
    assert costs[-1] < costs[0] / 100                           # and it falls
    assert min(costs) >= costs[-1] * 0.5
    result = float(page.get_attribute("#result-value", "data-value") or "nan")
    assert abs(result - 57.0) < 1.0, result
    assert "should be ~57.0" in page.inner_text("#step-result")
    assert page.locator("#fit-chart circle.data-point").count() == 4
    assert page.locator("#fit-chart path.fit-curve").count() == 1
    note = page.text_content("#fit-chart text.note") or ""             # the model's point at x = 4
    assert note.startswith("x = 4 → ") and float(note.split("→")[1]) == pytest.approx(result, abs=0.05)
    assert page.is_hidden("#message")
    assert_not_blank(page, tmp_path / "ml_beginners.png")


def test_ml_beginners_restart_with_another_learning_rate(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/demos/ml_beginners/?seed=1&delay_ms=0")
    assert wait_until_finished(page) == "done"
    first_costs = [c for _, c in cost_points(page)]
    first_result = page.get_attribute("#result-value", "data-value")

    page.fill("#learning_rate", "0.02")
    page.fill("#batches", "30")
    page.click("#restart")
    assert wait_until_finished(page, run=2) == "done", page.inner_text("#message")
    points = cost_points(page)
    assert [b for b, _ in points] == list(range(1, 31))        # the chart restarted, it did not append
    costs = [c for _, c in points]
    # Same seed, same start: the first batch's cost is measured before any update, so it agrees;
    # the bigger steps then take the cost down faster.
    assert costs[0] == pytest.approx(first_costs[0], rel=1e-4)
    assert costs[5] < first_costs[5]
    result = page.get_attribute("#result-value", "data-value")
    assert result != first_result
    assert abs(float(result or "nan") - 57.0) < 1.0
    assert "learning_rate=0.02" in page.url                    # the run can be shared as a link


@pytest.mark.parametrize(("field", "value", "message"), [
    ("#learning_rate", "-0.01", "Learning rate must be a number greater than 0 and at most 10; got '-0.01'."),
    ("#learning_rate", "fast", "Learning rate must be a number greater than 0 and at most 10; got 'fast'."),
    ("#batches", "0", "Number of batches must be a whole number from 1 to 1000; got '0'."),
])
def test_ml_beginners_bad_input_shows_a_message(page: Page, base_url: str, field: str, value: str,
                                                 message: str) -> None:
    page.goto(f"{base_url}/demos/ml_beginners/?seed=2&delay_ms=0")
    assert wait_until_finished(page) == "done"
    page.fill(field, value)
    page.click("#restart")
    assert wait_until_finished(page, run=2) == "error"
    assert page.is_visible("#message")
    assert page.inner_text("#message") == message
    assert cost_points(page) == []
    # The server keeps serving: correct the input and train again.
    page.fill("#learning_rate", "0.01")
    page.fill("#batches", "5")
    page.click("#restart")
    assert wait_until_finished(page, run=3) == "done"
    assert page.is_hidden("#message")
    assert len(cost_points(page)) == 5


# ---------------------------------------------------------------------------------------------
# intro
# ---------------------------------------------------------------------------------------------


def test_intro_page(page: Page, base_url: str, tmp_path: Path) -> None:
    page.goto(f"{base_url}/demos/intro/?seed=1&delay_ms=0")
    assert wait_until_finished(page) == "done", page.inner_text("#message")
    assert float(page.get_attribute("#msd-value", "data-value") or "nan") == pytest.approx(2 / 3, rel=1e-6)
    assert page.inner_text("#output-shape") == "[1]"
    costs = [c for _, c in cost_points(page)]
    assert len(costs) == 10 and costs[-1] < costs[0] / 10
    assert float(page.get_attribute("#result-value", "data-value") or "nan") == pytest.approx(0.4, abs=0.05)
    assert_not_blank(page, tmp_path / "intro.png")

    page.fill("#b", "1, 2")
    page.click("#restart")
    assert wait_until_finished(page, run=2) == "error"
    assert page.inner_text("#message") == "a and b must have the same number of values; got 3 and 2."
