"""The complementary_color_prediction and game_of_life pages and the index of the demos in a real
browser: Debian's Chromium driven by Playwright, against the real server (the fixtures and the
skips of tests/demos/test_browser.py: these tests run where those do).

Each page trains while it is watched (its swatches or boards and its charts change during the run),
ends with what the run learned, restarts with new parameters, shows bad parameters as a message and
keeps working, and logs no console errors (the ``page`` fixture fails the test on any).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.demos import test_browser as shared
from tests.demos.test_browser import Page, assert_not_blank, cost_points, wait_until_finished

# The fixtures of test_browser.py: the real server, Chromium, and a page that fails on console errors.
base_url, browser, page = shared.base_url, shared.browser, shared.page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]


def reported_batch(page: Page, selector: str) -> int:
    """The batch whose predictions the page shows now (the element's data-batch; 0 before any)."""
    return int(page.evaluate(f"Number(document.querySelector('{selector}').dataset.batch || 0)"))


def wait_for_batch(page: Page, selector: str, at_least: int) -> None:
    page.wait_for_function(f"Number(document.querySelector('{selector}').dataset.batch || 0) >= {at_least}")


# ---------------------------------------------------------------------------------------------
# complementary_color_prediction
# ---------------------------------------------------------------------------------------------


def predicted_colors(page: Page) -> list[str]:
    return page.eval_on_selector_all("#swatch-rows .swatch.predicted", "els => els.map(e => e.dataset.rgb || '')")


def test_colors_train_live_and_come_close(page: Page, base_url: str, tmp_path: Path) -> None:
    page.goto(f"{base_url}/demos/complementary_color_prediction/?seed=1&delay_ms=30")
    # The swatches change while it trains: the guesses at one report and at a later one differ.
    wait_for_batch(page, "#swatches", 100)
    early = predicted_colors(page)
    wait_for_batch(page, "#swatches", reported_batch(page, "#swatches") + 400)
    assert page.evaluate("document.body.dataset.state") in ("running", "done")
    later = predicted_colors(page)
    assert len(early) == 8 and all(early) and later != early
    assert wait_until_finished(page) == "done", page.inner_text("#message")

    assert page.inner_text("#backend-name").startswith(("CPU", "GPU"))
    points = cost_points(page)
    assert [b for b, _ in points] == list(range(20, 2001, 20))     # one point per report, 100 in all
    assert points[-1][1] < points[0][1] / 5
    truths = page.eval_on_selector_all("#swatch-rows .swatch.truth", "els => els.map(e => e.dataset.rgb)")
    assert truths[0] == "57,230,217"                                 # the complement of (230, 57, 70)
    offs = [float(t) for t in page.eval_on_selector_all("#swatch-rows td.diff", "els => els.map(e => e.textContent)")]
    assert len(offs) == 8 and max(offs) < 25
    error = float(page.get_attribute("#result-value", "data-value") or "nan")
    assert error < 10, error
    assert "learned the rule" in page.inner_text("#result-verdict")
    assert page.is_hidden("#message")
    assert_not_blank(page, tmp_path / "complementary_color_prediction.png")


def test_colors_restart_and_bad_input(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/demos/complementary_color_prediction/?seed=2&batches=200&delay_ms=0")
    assert wait_until_finished(page) == "done", page.inner_text("#message")
    first = predicted_colors(page)
    assert len(cost_points(page)) == 100

    page.fill("#batch_size", "0")
    page.click("#restart")
    assert wait_until_finished(page, run=2) == "error"
    assert page.inner_text("#message") == "Batch size must be a whole number from 1 to 5000; got '0'."
    assert cost_points(page) == [] and predicted_colors(page) == []

    page.fill("#batch_size", "100")
    page.fill("#learning_rate", "0.2")
    page.fill("#batches", "50")
    page.click("#restart")
    assert wait_until_finished(page, run=3) == "done", page.inner_text("#message")
    assert page.is_hidden("#message")
    assert [b for b, _ in cost_points(page)] == list(range(1, 51))   # the chart restarted, it did not append
    assert predicted_colors(page) != first
    assert "learning_rate=0.2" in page.url and "batch_size=100" in page.url


# ---------------------------------------------------------------------------------------------
# game_of_life
# ---------------------------------------------------------------------------------------------


def wrong_cells(page: Page) -> list[int]:
    return page.eval_on_selector_all("#boards svg.prediction", "els => els.map(e => Number(e.dataset.wrong))")


def test_life_trains_live_and_learns_the_rule(page: Page, base_url: str, tmp_path: Path) -> None:
    page.goto(f"{base_url}/demos/game_of_life/?seed=1&delay_ms=30")
    wait_for_batch(page, "#boards", 15)
    early = wrong_cells(page)
    assert len(early) == 4 and sum(early) > 0                          # at first it gets cells wrong
    assert wait_until_finished(page) == "done", page.inner_text("#message")

    examples = page.locator("#boards .example")
    assert examples.count() == 4
    for i in range(4):
        for kind in ("start", "truth"):
            assert examples.nth(i).locator(f"svg.{kind} rect.cell").count() == 64      # 8 × 8 cells
    assert wrong_cells(page) == [0, 0, 0, 0]                            # and at the end none
    costs = [c for _, c in cost_points(page)]
    assert len(costs) == 100 and costs[-1] < costs[0] / 5
    boards_right = page.eval_on_selector_all("#accuracy-chart circle.boards-point",
                                             "els => els.map(e => Number(e.dataset.value))")
    assert len(boards_right) == 100 and boards_right[0] < 5 and boards_right[-1] == 100
    assert float(page.get_attribute("#result-value", "data-value") or "nan") == 100
    assert page.inner_text("#cells-now") == "100 %"
    assert page.is_hidden("#message")
    assert_not_blank(page, tmp_path / "game_of_life.png")


def test_life_restart_with_another_board_and_bad_input(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/demos/game_of_life/?seed=2&batches=50&delay_ms=0")
    assert wait_until_finished(page) == "done", page.inner_text("#message")
    assert len(cost_points(page)) == 50

    page.fill("#size", "2")
    page.click("#restart")
    assert wait_until_finished(page, run=2) == "error"
    assert page.inner_text("#message") == "Board size must be a whole number from 3 to 16; got '2'."
    assert cost_points(page) == [] and page.locator("#boards .example").count() == 0

    page.fill("#size", "5")
    page.fill("#batches", "300")
    page.click("#restart")
    assert wait_until_finished(page, run=3) == "done", page.inner_text("#message")
    assert page.is_hidden("#message")
    assert [b for b, _ in cost_points(page)] == list(range(3, 301, 3))
    assert page.locator("#boards .example").first.locator("svg.start rect.cell").count() == 25   # 5 × 5
    assert "size=5" in page.url


# ---------------------------------------------------------------------------------------------
# The index
# ---------------------------------------------------------------------------------------------


def test_index_lists_every_demo_and_leads_to_it(page: Page, base_url: str, tmp_path: Path) -> None:
    page.goto(f"{base_url}/")
    folders = sorted(p.name for p in (REPO / "demos").iterdir()
                     if (p / "index.html").is_file() and not p.name.startswith(("_", ".")))
    cards = page.locator("#index li.card")
    assert cards.count() == len(folders)
    links = page.eval_on_selector_all("#index li.card > a", "els => els.map(e => e.getAttribute('href'))")
    assert links == [f"/demos/{name}/" for name in folders]
    for name in ("ml_beginners", "intro", "complementary_color_prediction", "game_of_life"):
        card = page.locator(f"#demo-{name}")
        assert card.locator("p").inner_text().strip()                 # a description
        # The thumbnail loaded (an image that failed has no natural width).
        assert card.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    assert page.locator(".tag").count() == 1                          # the demo watch-demo was started with
    assert_not_blank(page, tmp_path / "index.png")

    page.click("#demo-game_of_life > a")
    # The path alone: a run writes its settings into the query (history.replaceState), which
    # can happen before this wait starts on a busy machine, and an exact URL then never comes.
    page.wait_for_url(lambda url: url.split("?")[0] == f"{base_url}/demos/game_of_life/")
    wait_for_batch(page, "#boards", 15)                               # it runs (closing the page ends the run)
    assert page.is_hidden("#message")
