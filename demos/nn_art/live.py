"""The live run behind http://localhost:8080/demos/nn_art/: random CPPN art (deeplearn.js's nn-art),
rendered frame after frame on ``dl.ENV.math`` while the latent vector moves.

The server (demos/server.py) calls :func:`parse_params` on the page's query string and then
:func:`run`, which builds the random network of ``nn_art.py`` and streams frames: each is the whole
picture, every pixel through the network at once, sent to the page as RGBA bytes (base64) with the
time it took. A run animates for at most ``seconds`` (the page then starts the next stretch where
this one stopped, so another demo's run gets its turn in between), or renders ``frames`` frames (the
page asks for one when it re-renders while paused).

Events, in order: ``start`` (the parameters, with the seed picked when none was given),
``backend``, ``network`` (its layers and size), one ``frame`` per frame, and ``done`` (where the
animation stopped, so the page can go on from there).

Example:
    >>> events = []
    >>> run(parse_params({"seed": "1", "size": "16", "frames": "2"}), lambda e, p: events.append((e, p)))
    >>> [name for name, _ in events]
    ['start', 'backend', 'network', 'frame', 'frame', 'done']
    >>> frame = events[3][1]
    >>> frame["size"], len(base64.b64decode(frame["rgba"])), frame["ms"] > 0
    (16, 1024, True)
"""

from __future__ import annotations

import base64
import importlib.util
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import deeplearn as dl
from demos.server import backend_info, check_known, float_param, int_param, optional_int_param

PARAMS = frozenset({"activation", "color", "depth", "width", "size", "seed", "speed", "t", "frames",
                    "seconds", "max_fps"})
MAX_SIZE = 512   # pixels a side: 262,144 pixels, each through the whole network, every frame
MAX_WIDTH = 64
MAX_DEPTH = 8
COLOR_LABELS = {"rgb": "RGB", "rgba": "RGBA", "hsv": "HSV", "hsva": "HSVA", "yuv": "YUV", "yuva": "YUVA",
                "bw": "grayscale"}
_LOADING = threading.Lock()  # the server parses each request's parameters in its own thread


def _load_cppn() -> ModuleType:
    """nn_art.py, the plain script beside this file, imported by path (demos/nn_art is no package);
    again when it changed, so an edit shows on the next run as an edit of live.py does."""
    path = Path(__file__).with_name("nn_art.py")
    name = "deeplearn_demo_nn_art_cppn"
    with _LOADING:
        stamp = path.stat().st_mtime_ns
        module = sys.modules.get(name)
        if module is None or getattr(module, "_stamp", None) != stamp:
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # registered before it runs, as an import would be
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
            module._stamp = stamp  # type: ignore[attr-defined]
        return module


@dataclass(frozen=True)
class Params:
    """What the page may choose. The defaults: the original's width (30) and activation, a deeper
    network than its default (a richer picture), its 128-pixel canvas."""

    activation: str = "tanh"
    color: str = "rgb"
    depth: int = 4
    width: int = 30
    size: int = 128
    seed: int | None = None
    speed: float = 1.0
    t: float = 0.0
    frames: int | None = None
    seconds: float = 15.0
    max_fps: int = 30


def _choice(query: Mapping[str, str], name: str, label: str, choices: Mapping[str, str], default: str) -> str:
    text = query.get(name)
    if text is None:
        return default
    value = text.strip().lower()
    if value not in choices:
        raise ValueError(f"{label} must be one of {', '.join(choices)}; got {text.strip()!r}.")
    return value


def parse_params(query: Mapping[str, str]) -> Params:
    """Validates the page's query; raises ValueError with a message the page shows as it is.

    Example:
        >>> parse_params({"activation": "sin", "color": "hsv", "size": "64"}).size
        64
        >>> parse_params({"size": "4096"})
        Traceback (most recent call last):
        ...
        ValueError: Image size must be a whole number from 8 to 512; got '4096'.
        >>> parse_params({"activation": "swish"})
        Traceback (most recent call last):
        ...
        ValueError: Activation must be one of tanh, sin, relu, step, sigmoid; got 'swish'.
    """
    check_known(query, PARAMS)
    cppn = _load_cppn()
    return Params(
        activation=_choice(query, "activation", "Activation", cppn.ACTIVATIONS, "tanh"),
        color=_choice(query, "color", "Color mode", cppn.COLOR_MODES, "rgb"),
        depth=int_param(query, "depth", "Hidden layers", 4, low=0, high=MAX_DEPTH),
        width=int_param(query, "width", "Neurons per layer", 30, low=1, high=MAX_WIDTH),
        size=int_param(query, "size", "Image size", 128, low=8, high=MAX_SIZE),
        seed=optional_int_param(query, "seed", "Seed", low=0, high=2**32 - 1),
        speed=float_param(query, "speed", "Speed", 1.0, low=0.0, high=10.0),
        t=float_param(query, "t", "Start time", 0.0, low=0.0, high=1e9, low_inclusive=True),
        frames=optional_int_param(query, "frames", "Number of frames", low=1, high=100_000),
        seconds=float_param(query, "seconds", "Seconds per run", 15.0, low=0.0, high=600.0),
        max_fps=int_param(query, "max_fps", "Frames per second at most", 30, low=1, high=120),
    )


def run(params: Params, emit: Callable[[str, Mapping[str, Any]], None]) -> None:
    """Renders frames of a random CPPN with ``params``, reporting each through ``emit``."""
    cppn_module = _load_cppn()
    seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**32)
    emit("start", {"params": {**asdict(params), "seed": seed}})
    math = dl.ENV.math
    emit("backend", backend_info(math))

    with math.scope():  # frees the network's arrays when the run ends, however it ends
        cppn = cppn_module.CPPN(params.size, params.width, params.depth, params.activation, params.color,
                                seed, math)
        pixels = params.size * params.size
        emit("network", {"layers": cppn.layer_shapes(), "weights": cppn.num_weights, "pixels": pixels,
                         "multiply_adds": pixels * cppn.num_weights, "activation": params.activation,
                         "color": COLOR_LABELS[params.color]})
        started = time.monotonic()
        frame_interval = 1.0 / params.max_fps
        t = params.t
        frame = 0
        while True:
            frame_start = time.monotonic()
            # Animation time follows the clock (times the speed), so the picture moves at the same
            # pace however long a frame takes to compute.
            t = params.t + params.speed * (frame_start - started)
            z = cppn_module.latent_at(t)
            tick = time.perf_counter()
            image = cppn.render(z)  # the network for every pixel, the colours, the copy to the host
            ms = 1000.0 * (time.perf_counter() - tick)
            frame += 1
            emit("frame", {"frame": frame, "t": t, "z": list(z), "ms": ms, "size": params.size,
                           "rgba": base64.b64encode(image.tobytes()).decode("ascii")})
            if params.frames is not None and frame >= params.frames:
                reason = "frames"
                break
            if time.monotonic() - started >= params.seconds:
                reason = "time"
                break
            rest = frame_interval - (time.monotonic() - frame_start)
            if rest > 0:
                time.sleep(rest)
    emit("done", {"t": t, "frames": frame, "reason": reason})
