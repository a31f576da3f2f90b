"""The complementary_color_prediction and game_of_life demos and the index of the demos, without a
browser: the data each demo generates against an independent oracle, the plain scripts, their
live runs streamed through the real server and the real library (they learn, repeat with a seed,
refuse bad parameters and agree with the scripts), and the index at ``/``.
(tests/demos/test_browser_color_and_life.py drives the same pages in Chromium.)
"""

from __future__ import annotations

import colorsys
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from demos.server import DemoServer, list_demos
from tests.demos.test_demo_server import _serve, request, sse_events

REPO = Path(__file__).resolve().parents[2]
DEMOS = REPO / "demos"


def load(path: Path) -> ModuleType:
    """A demo's plain script or live.py, imported by path as the server does."""
    name = f"test_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


colors = load(DEMOS / "complementary_color_prediction" / "complementary_color_prediction.py")
life = load(DEMOS / "game_of_life" / "game_of_life.py")


def live_module(demo: str) -> ModuleType:
    return load(DEMOS / demo / "live.py")


@pytest.fixture(scope="module")
def real_server() -> Iterator[DemoServer]:
    """The server on the repository's demos/ folder, as `watch-demo demos/game_of_life` starts it."""
    yield from _serve(DEMOS, default_demo="game_of_life")


def stream(server: DemoServer, demo: str, query: str) -> list[tuple[str, Any]]:
    reply = request(server, f"/demos/{demo}/run?{query}")
    assert reply.status == 200, reply.text
    return sse_events(reply.text)


# ---------------------------------------------------------------------------------------------
# The generated data
# ---------------------------------------------------------------------------------------------


def test_complement_turns_the_hue_by_180_degrees_and_keeps_saturation_and_lightness() -> None:
    rng = np.random.default_rng(0)
    for rgb in rng.integers(0, 256, size=(2000, 3)).tolist():
        out = colors.complement(rgb)
        assert all(isinstance(v, int) and 0 <= v <= 255 for v in out)
        # In RGB the hue turned by 180° is max + min − each channel (docs of the script).
        assert out == [max(rgb) + min(rgb) - v for v in rgb], rgb
        assert colors.complement(out) == rgb                     # turning twice comes back
        h, lightness, s = colorsys.rgb_to_hls(*(v / 255 for v in rgb))
        h2, lightness2, s2 = colorsys.rgb_to_hls(*(v / 255 for v in out))
        assert lightness2 == pytest.approx(lightness, abs=1e-9) and s2 == pytest.approx(s, abs=1e-9)
        if s > 0:
            turned = (h2 - h) % 1.0
            assert turned == pytest.approx(0.5, abs=0.5 / 255), rgb   # within rounding to whole channels
    assert colors.complement([90, 90, 90]) == [90, 90, 90]             # a gray is its own complement
    assert colors.complements([[255, 0, 0], [0, 0, 255]]).tolist() == [[0, 255, 255], [255, 255, 0]]


def _next_cell(board: np.ndarray, r: int, c: int) -> int:
    """Conway's rule for one cell, written out, cells beyond the edge dead: the oracle."""
    rows, cols = board.shape
    live = sum(int(board[r + dr, c + dc]) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
               if (dr, dc) != (0, 0) and 0 <= r + dr < rows and 0 <= c + dc < cols)
    return int(live == 3 or (board[r, c] == 1 and live == 2))


@pytest.mark.parametrize("size", [3, 5, 8])
def test_next_generation_follows_conways_rule(size: int) -> None:
    boards = life.random_boards(50, size, np.random.default_rng(size))
    assert boards.shape == (50, size, size) and set(np.unique(boards)) <= {0.0, 1.0}
    nxt = life.next_generation(boards)
    for board, got in zip(boards, nxt, strict=True):
        expected = [[_next_cell(board, r, c) for c in range(size)] for r in range(size)]
        assert got.astype(int).tolist() == expected


def test_next_generation_moves_a_glider_and_keeps_a_block() -> None:
    board = np.zeros((1, 10, 10))
    board[0, 1, 2] = board[0, 2, 3] = board[0, 3, 1] = board[0, 3, 2] = board[0, 3, 3] = 1   # a glider
    board[0, 7:9, 7:9] = 1                                                                   # a block
    later = board
    for _ in range(4):
        later = life.next_generation(later)
    expected = np.zeros((10, 10))
    expected[2:5, 2:5] = board[0, 1:4, 1:4]   # the glider, one cell down and right
    expected[7:9, 7:9] = 1
    assert later[0].tolist() == expected.tolist()


def test_accuracy_counts_cells_and_whole_boards() -> None:
    truth = np.array([[[1, 0], [0, 1]], [[0, 0], [1, 1]]])
    guess = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.6, 0.0], [1.0, 1.0]]])
    assert life.accuracy(guess, truth) == (7 / 8, 0.5)


# ---------------------------------------------------------------------------------------------
# The plain scripts
# ---------------------------------------------------------------------------------------------


def test_color_script_trains_and_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert colors.main(["--seed", "1", "--batches", "200"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("batch 100: cost ") and out[1].startswith("batch 200: cost ")
    assert out[2].startswith("average error on 1000 new colors: ")
    assert out[3].startswith("rgb(255, 0, 0): predicted rgb(")
    assert out[3].endswith(", true complement rgb(0, 255, 255)")


def test_life_script_trains_and_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert life.main(["--seed", "1", "--batches", "200", "--size", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["batch 100", "batch 200"]
    assert "of the cells and" in out[-1] and "of the boards right" in out[-1]


@pytest.mark.parametrize("module", [colors, life], ids=["complementary_color_prediction", "game_of_life"])
def test_script_docstring_examples(module: ModuleType) -> None:
    """The scripts' examples run (pytest collects doctests under deeplearn/ only; the live.py
    examples run in tests/demos/test_demo_server.py)."""
    import doctest

    result = doctest.testmod(module, extraglobs={"np": np}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_color_model_is_reproducible_with_a_seed() -> None:
    def trained(seed: int) -> list[list[int]]:
        model = colors.ComplementaryColorModel(seed=seed, examples=2000)
        for _ in range(20):
            model.train_batch(fetch_cost=False)
        return model.predict([[10, 200, 30], [0, 0, 0]]).tolist()

    assert trained(4) == trained(4)
    assert trained(4) != trained(5)


def test_predict_keeps_the_order_of_its_inputs() -> None:
    model = life.GameOfLifeModel(size=4, seed=0)
    boards = life.random_boards(7, 4, np.random.default_rng(1))
    together = model.predict(boards)
    one_by_one = np.concatenate([model.predict(boards[i:i + 1]) for i in range(7)])
    np.testing.assert_allclose(together, one_by_one, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Live runs through the real server
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_color_stream_learns_the_complements(real_server: DemoServer) -> None:
    events = stream(real_server, "complementary_color_prediction", "seed=1&delay_ms=0")
    names = [name for name, _ in events]
    assert names == ["start", "backend", "data"] + ["batch"] * 100 + ["done", "end"], names
    data = dict(events)
    assert data["start"]["params"] == {"learning_rate": 0.5, "batches": 2000, "batch_size": 300, "seed": 1,
                                       "delay_ms": 0, "examples": 100_000}
    assert data["backend"]["name"] in ("cpu", "cuda")
    shown = data["data"]["colors"]
    assert data["data"]["complements"] == [colors.complement(c) for c in shown]
    batches = [p for name, p in events if name == "batch"]
    assert [b["batch"] for b in batches] == list(range(20, 2001, 20))
    assert [b["learning_rate"] for b in batches[:2]] == [0.5, 0.5]
    assert batches[-1]["learning_rate"] == pytest.approx(0.5 * 0.85**6)         # lowered every 300 batches
    assert batches[-1]["cost"] < batches[0]["cost"] / 5
    assert batches[-1]["error"] < batches[0]["error"] / 2
    for b in batches:
        assert len(b["predictions"]) == len(shown)
        assert all(0 <= v <= 255 and isinstance(v, int) for color in b["predictions"] for v in color)
    done = data["done"]
    assert done["error"] < done["good_error"] == 10                             # learned
    assert done["predictions"] == batches[-1]["predictions"]


def test_color_stream_agrees_with_the_script(real_server: DemoServer) -> None:
    """The live page runs the script's model: the same seed gives the same network."""
    events = stream(real_server, "complementary_color_prediction", "seed=3&batches=60&delay_ms=0")
    model = colors.ComplementaryColorModel(seed=3)
    costs = [model.train_batch(fetch_cost=True) for _ in range(60)]
    # With fewer than 100 batches every batch is reported.
    assert [p["cost"] for name, p in events if name == "batch"] == pytest.approx(costs, rel=1e-4)
    live = live_module("complementary_color_prediction")
    assert dict(events)["done"]["predictions"] == model.predict(live.SHOWN_COLORS).tolist()


@pytest.mark.slow
def test_life_stream_learns_the_rule(real_server: DemoServer) -> None:
    events = stream(real_server, "game_of_life", "seed=1&delay_ms=0")
    names = [name for name, _ in events]
    assert names == ["start", "backend", "data"] + ["batch"] * 100 + ["done", "end"], names
    data = dict(events)
    assert data["start"]["params"] == {"size": 8, "learning_rate": 0.03, "batches": 1500, "batch_size": 32,
                                       "seed": 1, "delay_ms": 0}
    boards = np.array(data["data"]["boards"])
    assert boards.shape == (4, 8, 8)
    assert data["data"]["next"] == life.next_generation(boards).astype(int).tolist()
    batches = [p for name, p in events if name == "batch"]
    assert [b["batch"] for b in batches] == list(range(15, 1501, 15))
    assert batches[-1]["cost"] < batches[0]["cost"] / 5
    assert batches[0]["boards_right"] < 5
    done = data["done"]
    assert done["cells_right"] == 100 and done["boards_right"] == 100                # learned the rule
    predicted = np.array(done["predictions"])
    assert predicted.shape == (4, 8, 8) and ((predicted > 0.5) == (np.array(data["data"]["next"]) == 1)).all()


def test_life_stream_agrees_with_the_script_and_repeats_with_a_seed(real_server: DemoServer) -> None:
    query = "seed=5&batches=30&size=5&delay_ms=0"
    first = stream(real_server, "game_of_life", query)
    assert stream(real_server, "game_of_life", query) == first
    assert stream(real_server, "game_of_life", query.replace("seed=5", "seed=6")) != first
    model = life.GameOfLifeModel(size=5, seed=5)
    costs = [model.train_batch(fetch_cost=True) for _ in range(30)]
    assert [p["cost"] for name, p in first if name == "batch"] == pytest.approx(costs, rel=1e-4)


@pytest.mark.parametrize(("demo", "query", "message"), [
    ("complementary_color_prediction", "learning_rate=-1",
     "Learning rate must be a number greater than 0 and at most 10; got '-1'."),
    ("complementary_color_prediction", "batches=0", "Number of batches must be a whole number from 1 to 20000; got '0'."),
    ("complementary_color_prediction", "batch_size=many", "Batch size must be a whole number from 1 to 5000; got 'many'."),
    ("complementary_color_prediction", "seed=-1", "Seed must be a whole number from 0 to 4294967295; got '-1'."),
    ("complementary_color_prediction", "size=5",
     "Unknown parameter 'size'; this demo takes: batch_size, batches, delay_ms, learning_rate, seed."),
    ("game_of_life", "size=2", "Board size must be a whole number from 3 to 16; got '2'."),
    ("game_of_life", "size=17", "Board size must be a whole number from 3 to 16; got '17'."),
    ("game_of_life", "learning_rate=nan", "Learning rate must be a number greater than 0 and at most 10; got 'nan'."),
    ("game_of_life", "batch_size=1001", "Batch size must be a whole number from 1 to 1000; got '1001'."),
])
def test_bad_parameters_are_400_with_a_message(real_server: DemoServer, demo: str, query: str, message: str) -> None:
    reply = request(real_server, f"/demos/{demo}/run?{query}")
    assert reply.status == 400
    assert reply.json() == {"error": message}


def test_color_too_big_a_learning_rate_warns(real_server: DemoServer) -> None:
    events = stream(real_server, "complementary_color_prediction", "seed=1&learning_rate=10&batches=100&delay_ms=0")
    warnings = [p["message"] for name, p in events if name == "warning"]
    assert len(warnings) == 1 and "too big" in warnings[0]
    assert events[-1] == ("end", {})
    # The page still gets colors it can draw (a blown-up network's NaN is shown as 0).
    assert all(0 <= v <= 255 for color in dict(events)["done"]["predictions"] for v in color)


# ---------------------------------------------------------------------------------------------
# The index at /
# ---------------------------------------------------------------------------------------------


def demo_folders() -> list[str]:
    return sorted(p.name for p in DEMOS.iterdir()
                  if (p / "index.html").is_file() and not p.name.startswith(("_", ".")))


def test_index_lists_every_demo_with_a_description(real_server: DemoServer) -> None:
    reply = request(real_server, "/")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
    assert request(real_server, "/demos/").text == reply.text
    names = demo_folders()
    assert {"ml_beginners", "intro", "complementary_color_prediction", "game_of_life"} <= set(names)
    entries = list_demos(DEMOS)
    assert [e.name for e in entries] == names
    for entry in entries:
        assert f'<li class="card" id="demo-{entry.name}"><a href="/demos/{entry.name}/">' in reply.text
        assert entry.title and entry.description and "\n" not in entry.description
        assert request(real_server, f"/demos/{entry.name}/").status == 200
    by_name = {e.name: e for e in entries}
    assert by_name["game_of_life"].title == "Game of Life"
    assert by_name["complementary_color_prediction"].title == "Complementary color prediction"
    assert by_name["ml_beginners"].title == "Guide for non-ML experts"
    # ml_beginners has no description of its own: the first sentence of its lede.
    assert by_name["ml_beginners"].description.startswith("This page runs the tutorial's Python code")
    assert by_name["ml_beginners"].description.endswith("from four examples.")
    # The demo watch-demo was started with is marked.
    card = reply.text.split('id="demo-game_of_life"')[1].split("</li>")[0]
    assert 'class="tag"' in card and reply.text.count('class="tag"') == 1


@pytest.mark.parametrize("demo", ["ml_beginners", "intro", "complementary_color_prediction", "game_of_life"])
def test_index_thumbnails_are_served(real_server: DemoServer, demo: str) -> None:
    entry = {e.name: e for e in list_demos(DEMOS)}[demo]
    assert entry.thumbnail == f"/demos/_index/thumbnails/{demo}.svg"
    reply = request(real_server, entry.thumbnail)
    assert reply.status == 200 and reply.headers["content-type"] == "image/svg+xml"
    assert reply.text.startswith("<svg") and "<script" not in reply.text
    assert request(real_server, "/demos/_index/index.css").status == 200


def test_index_escapes_what_pages_say_and_falls_back_to_the_title(tmp_path: Path) -> None:
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "index.html").write_text(
        '<title>A &lt;b&gt; &amp; "quote" · x</title>'
        '<meta name="description" content="Uses &lt;script&gt;alert(1)&lt;/script&gt;.">')
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "index.html").write_text("<p>no title, no lede</p>")
    (tmp_path / "_private").mkdir()
    (tmp_path / "_private" / "index.html").write_text("<title>hidden</title>")
    entries = list_demos(tmp_path)
    assert [(e.name, e.title, e.description) for e in entries] == [
        ("bare", "bare", ""), ("odd", 'A <b> & "quote"', "Uses <script>alert(1)</script>.")]
    for server in _serve(tmp_path):
        page = request(server, "/").text
        assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "A &lt;b&gt; &amp; &quot;quote&quot;" in page and "hidden" not in page
