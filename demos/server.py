"""The demo server behind ``./scripts/watch-demo demos/NAME``: the demo pages and their live runs.

It lives beside the demos, not in the library: it needs a checkout (the demos are not in the
wheel), and it runs as ``python -m demos demos/NAME`` from the repository root.

It serves the files of ``demos/`` (and nothing outside it) at ``/demos/...``, and streams a live run
of a demo's Python code as Server-Sent Events at ``/demos/NAME/run?param=value...``. A demo folder
has this layout::

    demos/NAME/index.html   the page (plain HTML/CSS/JS; demos/_shared/ holds what pages share)
    demos/NAME/live.py      optional: the code that runs when the page asks for /demos/NAME/run

``/`` (and ``/demos/``) is the index of the demos, made from the folders as they are: every folder
with an ``index.html`` (and a name not starting with ``_``), listed by its page's ``<title>`` (up
to a `` · ``) and its ``<meta name="description">`` (else the first sentence of its
``<p class="lede">``), with the thumbnail ``demos/_index/thumbnails/NAME.svg`` (or ``.png``) when
there is one.

``live.py`` defines two functions (and may import the helpers below from ``demos.server``)::

    def parse_params(query: Mapping[str, str]) -> Any   # raises ValueError("<message for the page>")
    def run(params: Any, emit: Callable[[str, dict], None]) -> None

``run`` calls ``emit(event_name, payload)`` as things happen; each call becomes one SSE event
(``event: NAME`` / ``data: JSON``), written to the browser at once. The server adds a final ``end``
event, or an ``error`` event with a message when ``run`` raises. Bad parameters are answered with
``400`` and a JSON ``{"error": message}`` before anything runs, and the server keeps serving.

Files are read from disk on every request and ``live.py`` is re-imported when it changes, so an edit
shows on the next reload of the page: that is the "watch" in watch-demo.

The server runs code on request, so it is careful about who may ask and how much:

* It listens on 127.0.0.1 unless told otherwise, and answers only requests whose ``Host`` header
  names this machine by a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``) or the address it
  was told to listen on, with its port: a page on another site that re-points its own name at
  127.0.0.1 (DNS rebinding) gets ``403``.
* One run at a time, because runs share ``dl.ENV.math`` (its scopes are not meant for two threads
  at once); a few more may wait for their turn, each for a bounded time. A run beyond that, or one
  that waited too long, gets ``503`` with a JSON ``{"error": message}`` that the page shows.
* At most ``max_connections`` connections are handled at once; more wait in the listen backlog
  (a real one, not the standard library's 5) until one ends. A connection must send its whole
  request within ``request_deadline_s`` (one deadline, not a timeout per read, so a client that
  dribbles a byte at a time is cut off too), and every write must make progress within
  ``DemoHandler.timeout`` seconds.

Standard library only (``http.server.ThreadingHTTPServer``), no web framework (docs/design.md §9).

Example:
    >>> import tempfile
    >>> server = make_server(tempfile.mkdtemp(), port=0, quiet=True)   # port 0: any free port
    >>> server.url_for("ml_beginners").startswith("http://localhost:")
    True
    >>> server.server_close()
"""

from __future__ import annotations

import argparse
import errno
import html
import importlib.util
import io
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "DemoServer",
    "DemoHandler",
    "make_server",
    "main",
    "float_param",
    "int_param",
    "optional_int_param",
    "check_known",
    "finite",
    "backend_info",
    "CostWatch",
    "DemoEntry",
    "list_demos",
]

DEFAULT_PORT = 8080
LIVE_MODULE = "live.py"
RUN_ENDPOINT = "run"
INDEX_ASSETS = "_index"  # demos/_index/: the index page's stylesheet and the demos' thumbnails

# Limits (see the module docstring); make_server takes the first four as arguments.
MAX_CONNECTIONS = 64       # connections handled at once; more wait in the listen backlog
REQUEST_DEADLINE_S = 5.0   # to send the whole request (line and headers; a browser sends them at once)
MAX_WAITING_RUNS = 4       # runs that may wait while one runs; more are answered 503
RUN_WAIT_S = 30.0          # the longest a run waits for its turn before it is answered 503
LISTEN_BACKLOG = 1024      # connections the kernel holds for accept() (capped by net.core.somaxconn)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_WILDCARDS = ("", "0.0.0.0", "::")

# What may be served: the page's own kinds of files. Anything else is a 404, so a stray
# secret or binary in demos/ is never handed out.
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".py": "text/plain; charset=utf-8",
}

Emit = Callable[[str, Mapping[str, Any]], None]


# ---------------------------------------------------------------------------------------------
# Parameter helpers for live.py modules (the server validates; the page only shows the message)
# ---------------------------------------------------------------------------------------------


def check_known(query: Mapping[str, str], known: set[str] | frozenset[str]) -> None:
    """Raises ValueError when the query names a parameter the demo does not take.

    Example:
        >>> check_known({"batches": "3"}, {"batches", "seed"})
        >>> check_known({"bathces": "3"}, {"batches"})
        Traceback (most recent call last):
        ...
        ValueError: Unknown parameter 'bathces'; this demo takes: batches.
    """
    for name in query:
        if name not in known:
            raise ValueError(f"Unknown parameter {name!r}; this demo takes: {', '.join(sorted(known))}.")


def float_param(query: Mapping[str, str], name: str, label: str, default: float, *,
                low: float, high: float, low_inclusive: bool = False) -> float:
    """The float ``query[name]`` (``default`` when absent), which must lie in ``(low, high]``
    (``[low, high]`` with ``low_inclusive``); ValueError with a message for the page otherwise.

    Example:
        >>> float_param({"learning_rate": "0.05"}, "learning_rate", "Learning rate", 0.01, low=0, high=10)
        0.05
        >>> float_param({"learning_rate": "-1"}, "learning_rate", "Learning rate", 0.01, low=0, high=10)
        Traceback (most recent call last):
        ...
        ValueError: Learning rate must be a number greater than 0 and at most 10; got '-1'.
    """
    text = query.get(name)
    if text is None:
        return default
    lower = f"at least {low:g}" if low_inclusive else f"greater than {low:g}"
    rule = f"{label} must be a number {lower} and at most {high:g}; got {text.strip()!r}."
    try:
        value = float(text)
    except ValueError:
        raise ValueError(rule) from None
    ok_low = value >= low if low_inclusive else value > low
    if not (math.isfinite(value) and ok_low and value <= high):
        raise ValueError(rule)
    return value


def int_param(query: Mapping[str, str], name: str, label: str, default: int, *, low: int, high: int) -> int:
    """The whole number ``query[name]`` (``default`` when absent) in ``[low, high]``; ValueError
    with a message for the page otherwise.

    Example:
        >>> int_param({"batches": "0"}, "batches", "Number of batches", 20, low=1, high=500)
        Traceback (most recent call last):
        ...
        ValueError: Number of batches must be a whole number from 1 to 500; got '0'.
    """
    text = query.get(name)
    if text is None:
        return default
    rule = f"{label} must be a whole number from {low} to {high}; got {text.strip()!r}."
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(rule) from None
    if not low <= value <= high:
        raise ValueError(rule)
    return value


def optional_int_param(query: Mapping[str, str], name: str, label: str, *, low: int, high: int) -> int | None:
    """Like :func:`int_param`, but an absent or blank value gives None (e.g. "pick a seed for me").

    Example:
        >>> optional_int_param({"seed": " "}, "seed", "Seed", low=0, high=9) is None
        True
    """
    text = query.get(name)
    if text is None or not text.strip():
        return None
    return int_param(query, name, label, 0, low=low, high=high)


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, so it is valid JSON for the browser
    (JSON has no NaN or Infinity; a diverging run produces both).

    Example:
        >>> finite({"cost": float("nan"), "xs": [1.0, float("inf")]})
        {'cost': None, 'xs': [1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def backend_info(math: Any) -> dict[str, str]:
    """What the page says about where the numbers are computed.

    Example:
        >>> backend_info(dl.NDArrayMathCPU())["name"]
        'cpu'
    """
    name = str(math.backend.name)
    labels = {"cpu": "CPU (NumPy)", "cuda": "GPU (CUDA, through CuPy)"}
    info = {"name": name, "label": labels.get(name, name)}
    device = getattr(math.backend, "device_name", None)
    if device:
        info["device"] = str(device() if callable(device) else device)
    return info


class CostWatch:
    """Tells a training run, once, that its cost is blowing up (the learning rate is too big):
    a cost that is not finite, or above 100 times the first batch's cost (100 at least).

    Example:
        >>> watch = CostWatch()
        >>> [watch.blew_up(cost) for cost in (2.0, 150.0, 300.0, float("nan"))]
        [False, False, True, False]
    """

    def __init__(self) -> None:
        self.first_cost: float | None = None
        self.warned = False

    def blew_up(self, cost: float) -> bool:
        """Whether to warn now: True for the first blown-up batch only."""
        self.first_cost = cost if self.first_cost is None else self.first_cost
        if not self.warned and (not math.isfinite(cost) or cost > 100 * max(self.first_cost, 1.0)):
            self.warned = True
            return True
        return False


# ---------------------------------------------------------------------------------------------
# The index of the demos
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoEntry:
    """One demo as the index lists it."""

    name: str              # the folder's name: the page is /demos/NAME/
    title: str
    description: str
    thumbnail: str | None  # the thumbnail's URL, or None


class _PageInfo(HTMLParser):
    """What the index needs from a demo's page: its <title>, its <meta name="description"> and the
    text of its first <p class="lede">."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.description = ""
        self.lede = ""
        self._reading: str | None = None  # "title" or "lede" while inside one
        self._seen: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "meta" and attributes.get("name", "").lower() == "description" and not self.description:
            self.description = attributes.get("content", "")
        elif tag == "title" and "title" not in self._seen:
            self._reading = "title"
        elif tag == "p" and "lede" in attributes.get("class", "").split() and "lede" not in self._seen:
            self._reading = "lede"

    def handle_endtag(self, tag: str) -> None:
        if self._reading is not None and tag == {"title": "title", "lede": "p"}[self._reading]:
            self._seen.add(self._reading)
            self._reading = None

    def handle_data(self, data: str) -> None:
        if self._reading == "title":
            self.title += data
        elif self._reading == "lede":
            self.lede += data


def _one_line(text: str) -> str:
    return " ".join(text.split())


def list_demos(demos_dir: str | os.PathLike[str]) -> list[DemoEntry]:
    """Every demo in ``demos_dir`` (a folder with an index.html, not named ``_...`` or ``.*``),
    sorted by folder name, with what the index shows of it.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()); (root / "hello").mkdir()
        >>> page = '<title>Hello · a demo</title><p class="lede">Says <b>hi</b>. Then stops.</p>'
        >>> _ = (root / "hello" / "index.html").write_text(page)
        >>> list_demos(root)
        [DemoEntry(name='hello', title='Hello', description='Says hi.', thumbnail=None)]
    """
    root = Path(demos_dir)
    entries = []
    for folder in sorted(root.iterdir()):
        page = folder / "index.html"
        if folder.name.startswith(("_", ".")) or not page.is_file():
            continue
        info = _PageInfo()
        info.feed(page.read_text(encoding="utf-8", errors="replace"))
        info.close()
        title = _one_line(info.title).split(" · ")[0] or folder.name
        # The first sentence of the lede, when the page has no description of its own.
        first_sentence = re.split(r"(?<=[.!?])\s", _one_line(info.lede), maxsplit=1)[0]
        description = _one_line(info.description) or first_sentence
        thumbnail = next((f"/demos/{INDEX_ASSETS}/thumbnails/{folder.name}{ext}" for ext in (".svg", ".png")
                          if (root / INDEX_ASSETS / "thumbnails" / f"{folder.name}{ext}").is_file()), None)
        entries.append(DemoEntry(folder.name, title, description, thumbnail))
    return entries


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class _ClientGone(Exception):
    """The browser closed the stream (a restart or a closed tab): stop the run quietly."""


class _LiveModules:
    """Imports each demo's live.py by file path, again whenever the file changes."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[int, ModuleType]] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> ModuleType:
        stamp = path.stat().st_mtime_ns
        with self._lock:
            hit = self._cache.get(path)
            if hit is not None and hit[0] == stamp:
                return hit[1]
            name = f"deeplearn_demo_{path.parent.name}_live"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            # Registered before it runs, as an import would be: dataclasses and pickling look the
            # module up by name.
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
            for needed in ("parse_params", "run"):
                if not callable(getattr(module, needed, None)):
                    raise ImportError(f"{path} must define {needed}(); see demos/server.py")
            self._cache[path] = (stamp, module)
            return module


class _RunQueue:
    """Whose turn it is to run: one run at a time, at most ``max_waiting`` waiting behind it, none
    waiting longer than ``wait_s``. Runs share ``dl.ENV.math``, whose scopes are not meant for two
    threads at once."""

    def __init__(self, max_waiting: int, wait_s: float) -> None:
        self.max_waiting = max_waiting
        self.wait_s = wait_s
        self.admitted = 0  # running and waiting
        self._turn = threading.Lock()
        self._count = threading.Lock()

    def enter(self) -> str | None:
        """Waits for a turn and takes it; None, or why this run gets none (then nothing is held)."""
        with self._count:
            if self.admitted > self.max_waiting:
                return f"a run is going and {self.max_waiting} more are waiting for their turn"
            self.admitted += 1
        if self._turn.acquire(timeout=self.wait_s):
            return None
        with self._count:
            self.admitted -= 1
        return f"this run waited {self.wait_s:g} s for the runs before it"

    def leave(self) -> None:
        """Ends the turn that :meth:`enter` gave."""
        self._turn.release()
        with self._count:
            self.admitted -= 1


class DemoServer(ThreadingHTTPServer):
    """A threaded HTTP server for the folder ``demos_dir`` (served at ``/demos/``), with the limits
    of the module docstring."""

    daemon_threads = True  # a Ctrl-C must not wait for a browser that keeps a stream open
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], demos_dir: str | os.PathLike[str],
                 default_demo: str | None = None, quiet: bool = False, *,
                 max_connections: int = MAX_CONNECTIONS, request_deadline_s: float = REQUEST_DEADLINE_S,
                 max_waiting_runs: int = MAX_WAITING_RUNS, run_wait_s: float = RUN_WAIT_S) -> None:
        self.demos_dir = Path(demos_dir).resolve()
        if not self.demos_dir.is_dir():
            raise FileNotFoundError(f"demo folder {str(demos_dir)!r} does not exist")
        self.default_demo = default_demo
        self.quiet = quiet
        self.request_deadline_s = request_deadline_s
        self.runs = _RunQueue(max_waiting_runs, run_wait_s)
        self.live_modules = _LiveModules()
        self.max_connections = max_connections
        self._open: set[socket.socket] = set()  # the connections being handled
        self._slots = threading.Condition()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, DemoHandler)
        # The Host headers answered: the loopback names and the address listened on, with the port
        # (and without it on port 80, where browsers leave it out).
        names = set(LOOPBACK_NAMES)
        host = address[0].lower()
        if host not in _WILDCARDS:
            names.add(f"[{host}]" if ":" in host else host)
        with_port = {f"{n}:{self.port}" for n in names}
        self.allowed_hosts = frozenset(with_port | names if self.port == 80 else with_port)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url_for(self, demo: str | None = None) -> str:
        """The page's URL, with ``localhost`` as the seed tutorial writes it."""
        host = str(self.server_address[0])
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "::1", "localhost") else host
        shown = f"[{shown}]" if ":" in shown else shown
        path = f"/demos/{demo}/" if demo else "/demos/"
        return f"http://{shown}:{self.port}{path}"

    @property
    def open_connections(self) -> int:
        """How many connections are being handled now (at most ``max_connections``)."""
        with self._slots:
            return len(self._open)

    def get_request(self) -> tuple[socket.socket, Any]:
        # With every slot taken the connection stays in the listen backlog until one is free. The
        # wait is short so that shutdown() is not held up: an OSError tells serve_forever to come
        # back on its next turn. Only serve_forever's thread adds connections, so the slot found
        # free is still free after accept().
        with self._slots:
            if not self._slots.wait_for(lambda: len(self._open) < self.max_connections, timeout=0.05):
                raise OSError("every connection slot is taken")
        request, address = super().get_request()
        with self._slots:
            self._open.add(request)
        return request, address

    def shutdown_request(self, request: Any) -> None:
        # Called when a connection ends, and again by socketserver when a Ctrl-C interrupts
        # the start of its thread: the slot is given back once.
        try:
            super().shutdown_request(request)
        finally:
            with self._slots:
                if request in self._open:
                    self._open.discard(request)
                    self._slots.notify()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that resets or stalls is ordinary traffic, not a failure of the server.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _HeadReader(io.RawIOBase):
    """The connection's bytes, read against one deadline for the whole request head rather than a
    timeout per read: a client that sends a byte now and then cannot hold its thread past it."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request was not sent in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class DemoHandler(BaseHTTPRequestHandler):
    """Routes: ``/`` and ``/demos/`` → the index of the demos; ``/demos/NAME/run`` → a live run as
    SSE; anything else under ``/demos/`` → a file of ``demos/``; the rest → 404."""

    server: DemoServer
    server_version = "deeplearn-demo/1"
    timeout = 30  # seconds a write may stall (a browser that stopped reading) before the handler gives up

    def setup(self) -> None:
        super().setup()
        # One deadline for the request head (http.server only has a timeout per read).
        self.rfile.close()
        deadline = time.monotonic() + self.server.request_deadline_s
        self.rfile = io.BufferedReader(_HeadReader(self.connection, deadline))

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.connection.settimeout(self.timeout)  # the head is read: from here on, writes
        return ok

    # -- routing ------------------------------------------------------------------------------

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._route(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._route(head=False)

    def _route(self, head: bool) -> None:
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or hosts[0].strip().lower() not in self.server.allowed_hosts:
            # A page elsewhere whose name now resolves to 127.0.0.1 (DNS rebinding) sends its own
            # name here; so does anything that is not a browser on this machine.
            shown = ", ".join(repr(h) for h in hosts) or "none"
            self._send_text(HTTPStatus.FORBIDDEN,
                            f"This server answers only to {self.server.url_for()} (or 127.0.0.1, [::1] "
                            f"with port {self.server.port}); the request named the host {shown}.\n", head)
            return
        split = urlsplit(self.path)
        raw_path = split.path
        if raw_path in ("", "/"):
            self._send_index(head)
            return
        segments = self._safe_segments(raw_path)
        if segments is None or not segments or segments[0] != "demos":
            self._send_text(HTTPStatus.NOT_FOUND, "Not found.\n", head)
            return
        rest = segments[1:]
        if not rest:
            if not raw_path.endswith("/"):
                self._redirect("/demos/")
                return
            self._send_index(head)
            return
        if len(rest) == 2 and rest[1] == RUN_ENDPOINT:
            self._run_demo(rest[0], split.query, head)
            return
        self._send_file(rest, raw_path, head)

    @staticmethod
    def _safe_segments(raw_path: str) -> list[str] | None:
        """The path's segments after percent-decoding, or None when one of them could climb out
        of ``demos/`` or reach a hidden file (``..``, ``.``, ``.git``, an encoded ``/`` or ``\\``,
        a NUL). Decoding happens before splitting so that ``%2e%2e%2f`` is caught too."""
        try:
            decoded = unquote(raw_path, errors="strict") if "%" in raw_path else raw_path
        except UnicodeDecodeError:  # e.g. the overlong %c0%ae, an old trick for "."
            return None
        if "\x00" in decoded or "\\" in decoded:
            return None
        segments = [s for s in decoded.split("/") if s != ""]
        for s in segments:
            if s.startswith(".") or s.startswith("__") or ":" in s:
                return None
        return segments

    # -- responses ----------------------------------------------------------------------------

    def _send_text(self, status: HTTPStatus, text: str, head: bool,
                   content_type: str = "text/plain; charset=utf-8",
                   headers: Mapping[str, str] | None = None) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_json(self, status: HTTPStatus, payload: Mapping[str, Any], head: bool,
                   headers: Mapping[str, str] | None = None) -> None:
        self._send_text(status, json.dumps(finite(payload)) + "\n", head, "application/json", headers)

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_index(self, head: bool) -> None:
        """The index of the demos: a card for each, the one watch-demo was started with marked."""
        cards = []
        for demo in list_demos(self.server.demos_dir):
            name = html.escape(demo.name)
            image = (f'<img src="{html.escape(demo.thumbnail)}" alt="" width="160" height="100">'
                     if demo.thumbnail else '<span class="no-thumbnail"></span>')
            started = (' <span class="tag" title="the demo ./scripts/watch-demo was started with">started</span>'
                       if demo.name == self.server.default_demo else "")
            cards.append(
                f'<li class="card" id="demo-{name}"><a href="/demos/{name}/">{image}'
                f'<b>{html.escape(demo.title)}</b></a>{started}<p>{html.escape(demo.description)}</p>'
                f"<code>./scripts/watch-demo demos/{name}</code></li>")
        items = "\n".join(cards)
        page = ("<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
                "<meta name=viewport content='width=device-width, initial-scale=1'><title>deeplearn demos</title>"
                "<link rel=icon href='data:,'><link rel=stylesheet href=/demos/_shared/demo.css>"
                f"<link rel=stylesheet href=/demos/{INDEX_ASSETS}/index.css></head>\n"
                "<body><div class=page id=index><header class=top><div><h1>deeplearn demos</h1>"
                "<p class=lede>Each page runs its Python code live with <b>deeplearn</b> on this server and shows "
                "it as it goes. Nothing is loaded from the network.</p></div></header>\n"
                f"<ul>\n{items}\n</ul></div></body></html>\n")
        self._send_text(HTTPStatus.OK, page, head, "text/html; charset=utf-8")

    def _send_file(self, rest: list[str], raw_path: str, head: bool) -> None:
        root = self.server.demos_dir
        target = root.joinpath(*rest)
        try:
            resolved = target.resolve(strict=True)
        except (OSError, RuntimeError):
            self._send_text(HTTPStatus.NOT_FOUND, "Not found.\n", head)
            return
        # The last guard: whatever the segments were, the file must lie inside demos/ (this also
        # refuses symbolic links that point elsewhere).
        if not resolved.is_relative_to(root):
            self._send_text(HTTPStatus.NOT_FOUND, "Not found.\n", head)
            return
        if resolved.is_dir():
            if not raw_path.endswith("/"):
                self._redirect(raw_path + "/")
                return
            resolved = resolved / "index.html"
            if not resolved.is_file():
                self._send_text(HTTPStatus.NOT_FOUND, "Not found.\n", head)
                return
        content_type = _CONTENT_TYPES.get(resolved.suffix.lower())
        if content_type is None or not resolved.is_file():
            self._send_text(HTTPStatus.NOT_FOUND, "Not found.\n", head)
            return
        body = resolved.read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")  # edits show on the next reload
        self.end_headers()
        if not head:
            self.wfile.write(body)

    # -- live runs ----------------------------------------------------------------------------

    def _run_demo(self, name: str, query_string: str, head: bool) -> None:
        live_path = self.server.demos_dir / name / LIVE_MODULE
        if not live_path.is_file() or not live_path.resolve().is_relative_to(self.server.demos_dir):
            self._send_text(HTTPStatus.NOT_FOUND, f"Demo {name!r} has no live run.\n", head)
            return
        try:
            module = self.server.live_modules.get(live_path)
        except Exception as e:  # noqa: BLE001 - a broken live.py is reported, the server stays up
            self.log_error("cannot load %s: %s", live_path, e)
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"The demo's code failed to load: {e}"},
                            head)
            return
        # The last value wins for a repeated name, as with most form handlers.
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        try:
            params = module.parse_params(query)
        except ValueError as e:
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(e)}, head)
            return
        if head:
            self._send_stream_headers()
            return
        why_not = self.server.runs.enter()
        if why_not is not None:
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE,
                            {"error": f"The server is busy: {why_not}. Try again in a moment."}, head,
                            headers={"Retry-After": "5"})
            return
        try:
            self._send_stream_headers()
            self._stream_run(module, params)
        finally:
            self.server.runs.leave()

    def _send_stream_headers(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.send_header("Connection", "close")
        self.end_headers()

    def _stream_run(self, module: ModuleType, params: Any) -> None:
        """Runs ``module.run(params, emit)`` (its turn taken), each event written as it comes."""
        self.close_connection = True

        def emit(event: str, payload: Mapping[str, Any]) -> None:
            data = json.dumps(finite(dict(payload)), separators=(",", ":"))
            try:
                self.wfile.write(f"event: {event}\ndata: {data}\n\n".encode())
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, TimeoutError) as e:
                raise _ClientGone from e

        try:
            module.run(params, emit)
            emit("end", {})
        except _ClientGone:
            return
        except Exception as e:  # noqa: BLE001 - the page shows the failure; the server stays up
            if not self.server.quiet:
                traceback.print_exc()
            try:
                emit("error", {"message": f"The run failed: {type(e).__name__}: {e}"})
            except _ClientGone:
                return

    # -- logging ------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        if not self.server.quiet:
            sys.stderr.write(f"[{self.log_date_time_string()}] {format % args}\n")


def make_server(demos_dir: str | os.PathLike[str], port: int = DEFAULT_PORT, host: str = "127.0.0.1",
                default_demo: str | None = None, quiet: bool = False, **limits: Any) -> DemoServer:
    """A :class:`DemoServer` bound to ``host:port`` (``port=0`` picks a free one), not yet serving.

    ``limits`` may set ``max_connections``, ``request_deadline_s``, ``max_waiting_runs`` and
    ``run_wait_s`` (defaults: the constants of the same names in capitals).
    Raises OSError (errno EADDRINUSE) when the port is taken.
    """
    return DemoServer((host, port), demos_dir, default_demo=default_demo, quiet=quiet, **limits)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="watch-demo",
        description="Serve a deeplearn demo page and run its code live (Ctrl-C stops).",
    )
    parser.add_argument("demo", nargs="?", default="demos/ml_beginners",
                        help="the demo folder, e.g. demos/ml_beginners (default)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1, this machine only); the server "
                             "answers requests to localhost, 127.0.0.1, [::1] and this address")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``python -m demos demos/NAME [--port N] [--host H]`` (from the repository root): what
    watch-demo runs."""
    args = _parse_args(argv)
    demo_dir = Path(args.demo)
    if not (demo_dir / "index.html").is_file():
        print(f"watch-demo: {args.demo!r} is not a demo folder (it needs an index.html), "
              f"e.g. demos/ml_beginners.", file=sys.stderr)
        return 2
    demo_dir = demo_dir.resolve()
    if not 0 <= args.port <= 65535:
        print(f"watch-demo: --port must be from 0 to 65535; got {args.port}.", file=sys.stderr)
        return 2
    try:
        server = make_server(demo_dir.parent, args.port, args.host, default_demo=demo_dir.name,
                             quiet=args.quiet)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            print(f"watch-demo: port {args.port} is already in use (is another watch-demo running?). "
                  f"Stop it, or pick another port with --port, e.g. --port {args.port + 1}.", file=sys.stderr)
        else:
            print(f"watch-demo: cannot listen on {args.host}:{args.port}: {e.strerror or e}.", file=sys.stderr)
        return 1
    print(f"Serving {demo_dir.parent.name}/{demo_dir.name} at {server.url_for(demo_dir.name)}  "
          f"(every demo: {server.url_for().removesuffix('demos/')}; Ctrl-C to stop)", flush=True)
    # Ctrl-C stops the server, even when started from a script that ignores SIGINT for its
    # background jobs; so does a plain `kill` (SIGTERM).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nwatch-demo: stopped.", flush=True)
    finally:
        server.server_close()
    return 0
