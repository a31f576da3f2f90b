"""The nn-art demo (demos/nn_art): the CPPN against a NumPy oracle, its live run through the real
server, and the page in Chromium driven by Playwright.

The browser tests follow tests/demos/test_browser.py (the real server as ``python -m demos``,
Debian's Chromium, no browser download) and skip, with the reason, where Playwright or Chromium is
missing or ``DEEPLEARN_NO_BROWSER=1``; the other tests run everywhere.
"""

from __future__ import annotations

import base64
import colorsys
import doctest
import gc
import http.client
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import deeplearn as dl
from demos.server import DemoServer, make_server

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
NN_ART = REPO / "demos" / "nn_art"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


cppn_module = _load("test_nn_art_cppn", NN_ART / "nn_art.py")
live = _load("test_nn_art_live", NN_ART / "live.py")
CPPN = cppn_module.CPPN


# ---------------------------------------------------------------------------------------------
# The network, against NumPy
# ---------------------------------------------------------------------------------------------


def oracle(cppn: Any, z: tuple[float, float]) -> np.ndarray:
    """The picture computed in float64 NumPy from the CPPN's own weights, with the colour spaces
    converted one pixel at a time by the standard library (colorsys) and the usual YUV formula."""
    def values(a: dl.NDArray) -> np.ndarray:
        return np.asarray(a.get_values(), dtype=np.float64).reshape(a.shape)

    acts: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "tanh": np.tanh, "sin": np.sin, "relu": lambda x: np.maximum(x, 0), "step": lambda x: (x > 0) * 1.0,
        "sigmoid": lambda x: 1 / (1 + np.exp(-x))}
    act, sigmoid = acts[cppn.activation], acts["sigmoid"]
    s = cppn.size
    xs = (np.arange(s) - s / 2) / s
    coords = np.array([[x, y, np.hypot(x, y), z[0], z[1]] for y in xs for x in xs])
    h = coords @ np.concatenate([values(cppn.w_xyr), values(cppn.w_z)])
    if cppn.w_out is None:
        out = 1 / (1 + np.exp(-h))
    else:
        h = act(h)
        for w in cppn.hidden:
            h = act(h @ values(w))
        out = sigmoid(h @ values(cppn.w_out))
    mode = cppn.color_mode
    rgba = np.ones((s * s, 4))
    if mode == "bw":
        rgba[:, :3] = out[:, :1]
    elif mode in ("rgb", "rgba"):
        rgba[:, :out.shape[1]] = out
    elif mode.startswith("hsv"):
        rgba[:, :3] = [colorsys.hsv_to_rgb(*p[:3]) for p in out]
    else:
        y, u, v = np.clip(out[:, 0], 0.2, 0.8), out[:, 1] - 0.5, out[:, 2] - 0.5
        rgb = np.stack([y + 1.402 * v, y - 0.34413 * u - 0.71414 * v, y + 1.772 * u], axis=1)
        rgba[:, :3] = np.clip(rgb, 0, 1)
    if mode.endswith("a") and mode != "rgba":
        rgba[:, 3] = out[:, 3]
    return (rgba * 255).reshape(s, s, 4)


@pytest.mark.parametrize("color_mode", list(cppn_module.COLOR_MODES))
@pytest.mark.parametrize(("activation", "depth"), [("tanh", 3), ("sin", 2), ("relu", 1), ("step", 2),
                                                    ("sigmoid", 1), ("tanh", 0)])
def test_every_pixel_matches_numpy(activation: str, depth: int, color_mode: str) -> None:
    math = dl.NDArrayMathCPU()
    cppn = CPPN(size=12, width=7, depth=depth, activation=activation, color_mode=color_mode, seed=5,
                math=math)
    z = (0.3, -0.8)
    gc.collect()  # arrays of earlier tests awaiting the cycle collector would be counted out mid-render
    before = math.get_num_arrays()
    image = cppn.render(z)
    # render's scope leaves nothing behind (counted only when no other thread, such as a demo
    # server's run left over from another test, may be making CPU arrays at the same time)
    assert threading.active_count() > 1 or math.get_num_arrays() == before
    want = oracle(cppn, z)
    assert image.shape == (12, 12, 4) and image.dtype == np.uint8
    if activation == "step":  # a pre-activation within float32 rounding of 0 may step either way
        assert np.mean(np.abs(image - want) <= 1.01) > 0.97
    else:
        assert np.max(np.abs(image - want)) <= 1.01, (activation, color_mode)
    assert len({tuple(p) for p in image.reshape(-1, 4).tolist()}) > 1 or activation == "step"
    held = [*cppn.weight_arrays(), cppn.coords]
    cppn.dispose()
    assert all(a.is_disposed for a in held)


def test_pixel_coordinates_and_latent_path() -> None:
    coords = cppn_module.pixel_coordinates(4)
    assert coords.shape == (16, 3) and coords.dtype == np.float32
    assert coords[0].tolist() == pytest.approx([-0.5, -0.5, 0.5 ** 0.5])  # top left
    assert coords[5].tolist() == pytest.approx([-0.25, -0.25, 0.125 ** 0.5])
    assert coords[15, :2].tolist() == [0.25, 0.25]
    zs = np.array([cppn_module.latent_at(t) for t in np.linspace(0, 60, 600)])
    assert np.all(np.abs(zs) <= 1) and zs.min() < -0.99 and zs.max() > 0.99
    assert np.abs(np.diff(zs, axis=0)).max() < 0.12  # it drifts (at most 2π/5.7 a second); no jumps


def test_same_seed_same_network_and_layers_are_kept_when_the_network_changes() -> None:
    math = dl.NDArrayMathCPU()

    def weights(**kw: Any) -> list[np.ndarray]:
        args = {"size": 8, "width": 10, "depth": 3, "activation": "tanh", "color_mode": "rgb", "seed": 11,
                **kw}
        cppn = CPPN(math=math, **args)
        try:
            return [w.get_values() for w in cppn.weight_arrays()]
        finally:
            cppn.dispose()

    base = weights()
    assert all(np.array_equal(a, b) for a, b in zip(base, weights(), strict=True))
    assert not np.array_equal(base[0], weights(seed=12)[0])
    deeper = weights(depth=4)
    # One more hidden layer: the same first layers and output layer.
    assert all(np.array_equal(a, b) for a, b in zip(base[:3], deeper[:3], strict=True))
    assert np.array_equal(base[-1], deeper[-1])
    rgba = weights(color_mode="rgba")  # RGB's three outputs kept, alpha added
    assert np.array_equal(rgba[-1].reshape(10, 4)[:, :3].reshape(-1), base[-1])


def test_the_script_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "art.png"
    command = [sys.executable, str(NN_ART / "nn_art.py"), "--seed", "2", "--size", "32", "--color", "hsv",
               "--out", str(out)]
    result = subprocess.run(command, check=False, cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DEEPLEARN_BACKEND": "cpu"})
    assert result.returncode == 0, result.stderr
    assert "frame time on cpu:" in result.stdout
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert int.from_bytes(data[16:20], "big") == 32 and int.from_bytes(data[20:24], "big") == 32


def test_nn_art_docstring_examples() -> None:
    # live.py's examples run in tests/demos/test_demo_server.py, with every demo's; nn_art.py's here.
    result = doctest.testmod(cppn_module, extraglobs={"dl": dl}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------------------------
# The live run, through the real server
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    srv = make_server(REPO / "demos", port=0, default_demo="nn_art", quiet=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def get(server: DemoServer, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def events(body: str) -> list[tuple[str, Any]]:
    out = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_the_page_and_its_files_are_served(server: DemoServer) -> None:
    status, page = get(server, "/demos/nn_art/")
    assert status == 200 and '<canvas id="art"' in page and 'src="nn_art.js"' in page
    for name in ("nn_art.js", "nn_art.css", "live.py", "nn_art.py"):
        assert get(server, f"/demos/nn_art/{name}")[0] == 200, name
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from the network


def test_a_run_streams_frames(server: DemoServer) -> None:
    status, body = get(server, "/demos/nn_art/run?seed=4&size=20&frames=3&color=hsva&activation=sin&depth=2"
                               "&width=9&t=1.5")
    assert status == 200
    evs = events(body)
    assert [n for n, _ in evs] == ["start", "backend", "network"] + ["frame"] * 3 + ["done", "end"]
    data = dict(evs[:3])
    assert data["start"]["params"] == {"activation": "sin", "color": "hsva", "depth": 2, "width": 9,
                                       "size": 20, "seed": 4, "speed": 1.0, "t": 1.5, "frames": 3,
                                       "seconds": 15.0, "max_fps": 30}
    assert data["backend"]["name"] in ("cpu", "cuda")
    assert data["network"]["layers"] == [[5, 9], [9, 9], [9, 4]]
    assert data["network"]["weights"] == 5 * 9 + 9 * 9 + 9 * 4
    assert data["network"]["multiply_adds"] == 400 * data["network"]["weights"]
    frames = [p for n, p in evs if n == "frame"]
    assert [f["frame"] for f in frames] == [1, 2, 3]
    ts = [f["t"] for f in frames]
    assert ts[0] == pytest.approx(1.5, abs=0.05) and ts[0] < ts[1] < ts[2]  # the clock moves z
    for f in frames:
        assert f["size"] == 20 and f["ms"] > 0
        assert f["z"] == pytest.approx(list(cppn_module.latent_at(f["t"])))
        assert len(base64.b64decode(f["rgba"])) == 20 * 20 * 4
    assert evs[-2][1] == {"t": ts[-1], "frames": 3, "reason": "frames"}

    # The frame is the network's picture for that z: the same seed, rendered here, gives the same bytes.
    cppn = CPPN(20, 9, 2, "sin", "hsva", 4, dl.ENV.math)
    try:
        mine = cppn.render(tuple(frames[0]["z"]))
    finally:
        cppn.dispose()
    theirs = np.frombuffer(base64.b64decode(frames[0]["rgba"]), np.uint8).reshape(20, 20, 4)
    assert np.abs(mine.astype(int) - theirs).max() <= 1


def test_a_run_stops_after_its_seconds(server: DemoServer) -> None:
    status, body = get(server, "/demos/nn_art/run?seed=1&size=8&seconds=0.3&max_fps=20")
    assert status == 200
    evs = events(body)
    done = evs[-2][1]
    assert done["reason"] == "time" and 2 <= done["frames"] <= 8
    assert done["t"] == pytest.approx(0.3, abs=0.1)
    assert [n for n, _ in evs].count("frame") == done["frames"]


@pytest.mark.parametrize(("query", "message"), [
    ("size=4096", "Image size must be a whole number from 8 to 512; got '4096'."),
    ("size=big", "Image size must be a whole number from 8 to 512; got 'big'."),
    ("depth=9", "Hidden layers must be a whole number from 0 to 8; got '9'."),
    ("width=0", "Neurons per layer must be a whole number from 1 to 64; got '0'."),
    ("activation=swish", "Activation must be one of tanh, sin, relu, step, sigmoid; got 'swish'."),
    ("color=cmyk", "Color mode must be one of rgb, rgba, hsv, hsva, yuv, yuva, bw; got 'cmyk'."),
    ("speed=-1", "Speed must be a number greater than 0 and at most 10; got '-1'."),
    ("seed=-3", "Seed must be a whole number from 0 to 4294967295; got '-3'."),
    ("zoom=2", ("Unknown parameter 'zoom'; this demo takes: activation, color, depth, frames, max_fps, "
                "seconds, seed, size, speed, t, width.")),
])
def test_bad_parameters_are_a_message(server: DemoServer, query: str, message: str) -> None:
    status, body = get(server, f"/demos/nn_art/run?{query}")
    assert status == 400
    assert json.loads(body) == {"error": message}


# ---------------------------------------------------------------------------------------------
# The page in Chromium
# ---------------------------------------------------------------------------------------------

NO_BROWSER = ""
try:
    from tests.demos import test_browser as shared
except pytest.skip.Exception as e:  # test_browser.py skips itself where Playwright or Chromium is missing
    shared, NO_BROWSER = None, str(e)
else:
    # The fixtures of test_browser.py: the real server, Chromium, a page that fails on console errors.
    base_url, browser, page = shared.base_url, shared.browser, shared.page


def browser_test(test: Any) -> Any:
    """Marks a test that drives Chromium: skipped, with test_browser.py's reason, where it cannot run."""
    marks = (pytest.mark.browser, pytest.mark.timeout(180), pytest.mark.skipif(shared is None, reason=NO_BROWSER))
    for mark in marks:
        test = mark(test)
    return test


def body_number(page: Page, key: str) -> int:
    return int(page.evaluate(f"Number(document.body.dataset.{key} || 0)"))


def wait_for_frames(page: Page, frames: int, run: int = 1) -> None:
    """Waits until render number ``run`` has drawn at least ``frames`` frames."""
    page.wait_for_function(
        "([run, frames]) => Number(document.body.dataset.runs || 0) === run"
        " && Number(document.body.dataset.frames || 0) >= frames", arg=[run, frames])


def pixels(page: Page) -> tuple[int, list[int]]:
    """The canvas's size and its RGBA bytes."""
    size, data = page.evaluate(
        "(() => { const c = document.getElementById('art');"
        " return [c.width, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; })()")
    return int(size), list(data)


@browser_test
def test_it_renders_and_the_frames_move(page: Page, base_url: str, tmp_path: Path) -> None:
    # seconds=0.5: the server ends a run after half a second of animation, and the page goes on
    # with the next one from where it stopped (by default every 15 s, so other demos get a turn).
    page.goto(f"{base_url}/demos/nn_art/?seed=3&size=48&max_fps=20&seconds=0.5")
    wait_for_frames(page, 2)
    assert page.evaluate("document.body.dataset.state") == "running"
    assert page.inner_text("#backend-name").startswith(("CPU", "GPU"))
    assert float(page.get_attribute("#frame-ms", "data-ms") or "nan") > 0
    assert page.inner_text("#frame-ms").endswith(" ms")
    assert page.inner_text("#layers") == "5 → 30 → 30 → 30 → 30 → 3"
    assert page.inner_text("#multiply-adds") == f"{48 * 48 * (5 * 30 + 3 * 30 * 30 + 30 * 3):,}"
    size, first = pixels(page)
    assert size == 48 and len(first) == 48 * 48 * 4
    colours = set(zip(first[0::4], first[1::4], first[2::4], strict=True))
    assert len(colours) > 50                                                        # a picture
    assert all(a == 255 for a in first[3::4])                                       # RGB is opaque
    seen = body_number(page, "frames")
    wait_for_frames(page, seen + 3)
    assert pixels(page)[1] != first                                                 # z moved: the picture too
    assert page.is_hidden("#message")
    assert "seed=3" in page.url and "size=48" in page.url                           # a link to this picture
    page.wait_for_function("Number(document.getElementById('t').textContent) > 1.6")  # four runs on,
    assert body_number(page, "runs") == 1                                           # one animation
    assert page.evaluate("document.body.dataset.state") == "running"
    shot = tmp_path / "nn_art.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@browser_test
def test_changing_an_option_re_renders(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/demos/nn_art/?seed=3&size=40&max_fps=20")
    wait_for_frames(page, 1)
    before = pixels(page)[1]

    page.select_option("#color", "bw")                      # a select re-renders as soon as it changes
    wait_for_frames(page, 1, run=2)
    _, gray = pixels(page)
    assert gray != before
    assert gray[0::4] == gray[1::4] == gray[2::4]           # grayscale: r = g = b everywhere
    assert page.inner_text("#layers").endswith("→ 1")

    page.fill("#size", "24")                                # a text field on Enter
    page.press("#size", "Enter")
    wait_for_frames(page, 1, run=3)
    assert pixels(page)[0] == 24
    assert page.inner_text("#pixels") == "576"

    page.fill("#depth", "1")
    page.select_option("#activation", "step")               # hard edges: few distinct gray levels
    page.wait_for_function("Number(document.body.dataset.runs) >= 4"
                           " && Number(document.body.dataset.frames) >= 1"
                           " && document.getElementById('layers').textContent === '5 → 30 → 1'")
    assert "activation=step" in page.url and "depth=1" in page.url

    seed = page.input_value("#seed")
    runs = body_number(page, "runs")
    page.click("#new-network")                              # another seed, another picture
    wait_for_frames(page, 1, run=runs + 1)
    assert page.input_value("#seed") != seed
    assert page.evaluate("document.body.dataset.state") == "running"


@browser_test
def test_pause_keeps_the_picture_and_play_goes_on(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/demos/nn_art/?seed=5&size=32&max_fps=20")
    wait_for_frames(page, 3)
    page.click("#pause")
    page.wait_for_function("document.body.dataset.state === 'paused'")
    assert page.inner_text("#pause") == "Play"
    frames, picture = body_number(page, "frames"), pixels(page)[1]
    t_paused = float(page.inner_text("#t"))
    page.wait_for_timeout(600)
    assert body_number(page, "frames") == frames and pixels(page)[1] == picture   # it stopped

    page.select_option("#activation", "sin")                # while paused: one new frame, still paused
    page.wait_for_function("Number(document.body.dataset.runs) === 2"
                           " && document.body.dataset.state === 'paused'")
    assert body_number(page, "frames") == 1
    assert pixels(page)[1] != picture
    assert float(page.inner_text("#t")) == pytest.approx(t_paused, abs=0.1)        # z did not move

    page.click("#pause")                                    # play: the same render goes on, from that z
    assert page.inner_text("#pause") == "Pause"
    page.wait_for_function("Number(document.body.dataset.frames) >= 4"
                           " && document.body.dataset.state === 'running'")
    assert body_number(page, "runs") == 2
    assert float(page.inner_text("#t")) > t_paused


@pytest.mark.parametrize(("field", "value", "message"), [
    ("#size", "5000", "Image size must be a whole number from 8 to 512; got '5000'."),
    ("#depth", "deep", "Hidden layers must be a whole number from 0 to 8; got 'deep'."),
    ("#speed", "0", "Speed must be a number greater than 0 and at most 10; got '0'."),
])
@browser_test
def test_a_bad_parameter_shows_a_message(page: Page, base_url: str, field: str, value: str,
                                        message: str) -> None:
    page.goto(f"{base_url}/demos/nn_art/?seed=2&size=32&max_fps=20")
    wait_for_frames(page, 1)
    page.fill(field, value)
    page.click("#render")
    page.wait_for_function("document.body.dataset.state === 'error'")
    assert page.is_visible("#message")
    assert page.inner_text("#message") == message
    assert "Traceback" not in page.content()
    # Corrected, it renders again.
    page.fill("#size", "32")
    page.fill("#depth", "2")
    page.fill("#speed", "1")
    page.click("#render")
    page.wait_for_function("document.body.dataset.state === 'running'"
                           " && Number(document.body.dataset.frames) >= 1")
    assert page.is_hidden("#message")
    assert page.inner_text("#layers") == "5 → 30 → 30 → 3"
