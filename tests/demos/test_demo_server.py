"""The demo server (demos/server.py) without a browser: files, 404s, no escape from demos/, SSE
runs, bad parameters, and its limits: the Host check, the bounded run queue, the connection cap
and the request deadline.

Most tests use a small fake demo folder (its live.py needs nothing from the library), so they
check the server alone; the last ones stream the real demos' runs through the real library.
Tests that wait on the server poll with a deadline (``wait_for``) and fail rather than hang.
"""

from __future__ import annotations

import doctest
import errno
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import demos.server as demo_server
from demos.server import DemoServer, make_server

REPO = Path(__file__).resolve().parents[2]
SECRET = "TOP-SECRET-OUTSIDE-DEMOS"

FAKE_LIVE = '''
from demos.server import check_known, int_param

def parse_params(query):
    check_known(query, {"n", "boom"})
    return {"n": int_param(query, "n", "n", 2, low=1, high=5), "boom": query.get("boom") == "1"}

def run(params, emit):
    for i in range(params["n"]):
        emit("tick", {"i": i, "half": i / 2, "nan": float("nan")})
    if params["boom"]:
        raise RuntimeError("the model exploded")
'''


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def fake_demos(tmp_path: Path) -> Path:
    """tmp/demos/{echo,static,_shared}, with a secret file next to demos/ and a symlink to it."""
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "pyproject.toml").write_text(f"[project]\nname = '{SECRET}'\n")
    demos = tmp_path / "demos"
    echo = demos / "echo"
    echo.mkdir(parents=True)
    (echo / "index.html").write_text("<!doctype html><title>echo</title>ECHO PAGE")
    (echo / "echo.js").write_text("console.log('echo');")
    (echo / "live.py").write_text(FAKE_LIVE)
    (echo / "data.bin").write_bytes(b"\x00\x01" + SECRET.encode())
    (echo / "link.txt").symlink_to(tmp_path / "secret.txt")
    (demos / ".hidden.txt").write_text(SECRET)
    (demos / "static").mkdir()
    (demos / "static" / "index.html").write_text("STATIC PAGE")
    (demos / "_shared").mkdir()
    (demos / "_shared" / "demo.css").write_text("body { color: red; }")
    return demos


def _serve(demos: Path, default_demo: str | None = None, **limits: Any) -> Iterator[DemoServer]:
    server = make_server(demos, port=0, default_demo=default_demo, quiet=True, **limits)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server(fake_demos: Path) -> Iterator[DemoServer]:
    yield from _serve(fake_demos, default_demo="echo")


@pytest.fixture(scope="module")
def real_server() -> Iterator[DemoServer]:
    """The server on the repository's demos/ folder, running the real library."""
    yield from _serve(REPO / "demos", default_demo="ml_beginners")


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def request(server: DemoServer, raw_path: str, method: str = "GET", host: str | None = None) -> Reply:
    """Sends ``raw_path`` exactly as written (http.client neither normalises nor re-quotes it), with
    the Host header ``127.0.0.1:PORT``, or ``host`` ("" sends none)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, raw_path, skip_host=host is not None, skip_accept_encoding=True)
        if host:
            conn.putheader("Host", host)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


def sse_events(body: str) -> list[tuple[str, Any]]:
    """(event, data) pairs of a text/event-stream body."""
    events = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
        events.append((name, json.loads("\n".join(data))))
    return events


# ---------------------------------------------------------------------------------------------
# Files and routes
# ---------------------------------------------------------------------------------------------


def test_serves_the_demo_page_and_its_files(server: DemoServer) -> None:
    page = request(server, "/demos/echo/")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "ECHO PAGE" in page.text
    js = request(server, "/demos/echo/echo.js")
    assert js.status == 200 and js.headers["content-type"].startswith("text/javascript")
    css = request(server, "/demos/_shared/demo.css")
    assert css.status == 200 and "color: red" in css.text
    assert request(server, "/demos/static/").text == "STATIC PAGE"
    assert request(server, "/demos/echo/index.html").text == page.text


def test_head_has_no_body(server: DemoServer) -> None:
    reply = request(server, "/demos/echo/", method="HEAD")
    assert reply.status == 200
    assert reply.body == b""
    assert int(reply.headers["content-length"]) == len("<!doctype html><title>echo</title>ECHO PAGE")


def test_redirects(server: DemoServer) -> None:
    folder = request(server, "/demos/echo")
    assert (folder.status, folder.headers["location"]) == (302, "/demos/echo/")
    index = request(server, "/demos")
    assert (index.status, index.headers["location"]) == (302, "/demos/")


@pytest.mark.parametrize("path", ["/", "/demos/"])
def test_demo_index_lists_the_demos(server: DemoServer, path: str) -> None:
    reply = request(server, path)  # the root is the index too (tests/demos/test_color_and_life.py has more)
    assert reply.status == 200
    assert 'href="/demos/echo/"' in reply.text and 'href="/demos/static/"' in reply.text
    assert "_shared" not in reply.text.split("<ul>")[1]


@pytest.mark.parametrize("path", [
    "/nope", "/index.html", "/demos/nope/", "/demos/echo/missing.js", "/demos/static/run",
    "/demos/nope/run", "/favicon.ico", "/demos/echo/data.bin",
])
def test_unknown_paths_are_404(server: DemoServer, path: str) -> None:
    reply = request(server, path)
    assert reply.status == 404, path
    assert SECRET not in reply.text


ESCAPES = [
    "/../pyproject.toml",
    "/../secret.txt",
    "/demos/../pyproject.toml",
    "/demos/../secret.txt",
    "/demos/echo/../../secret.txt",
    "/demos/%2e%2e/secret.txt",
    "/demos/%2E%2E/pyproject.toml",
    "/demos/..%2fsecret.txt",
    "/demos/echo/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/demos/echo/%252e%252e/%252e%252e/secret.txt",
    "/demos/echo/..%5c..%5csecret.txt",
    "/demos/echo/%00../../secret.txt",
    "/demos/.hidden.txt",
    "/demos/echo/link.txt",
    "//secret.txt",
    "/demos//../secret.txt",
    "/demos/%2fetc%2fpasswd",
    "/demos/echo/..;/..;/secret.txt",
    "/demos/C:%5cWindows%5cwin.ini",
    "/demos/%c0%ae%c0%ae/secret.txt",
    "/demos/echo/%ff%fe",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_no_path_escapes_demos(server: DemoServer, path: str) -> None:
    reply = request(server, path)
    assert reply.status in (404, 400), (path, reply.status)
    assert SECRET not in reply.text, path
    # The server keeps serving after a hostile request.
    assert request(server, "/demos/echo/").status == 200


@pytest.mark.parametrize("path", ["/../pyproject.toml", "/demos/../pyproject.toml", "/demos/%2e%2e/pyproject.toml",
                                  "/demos/ml_beginners/..%2f..%2fpyproject.toml", "/demos/../README.md",
                                  "/demos/../scripts/test", "/demos/__init__.py", "/demos/__pycache__/"])
def test_no_path_escapes_in_the_repository(real_server: DemoServer, path: str) -> None:
    reply = request(real_server, path)
    assert reply.status == 404, path
    assert "[project]" not in reply.text and "pipefail" not in reply.text and '"""' not in reply.text


# ---------------------------------------------------------------------------------------------
# Live runs (fake demo)
# ---------------------------------------------------------------------------------------------


def test_run_streams_server_sent_events(server: DemoServer) -> None:
    reply = request(server, "/demos/echo/run?n=3")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.headers["cache-control"] == "no-store"
    events = sse_events(reply.text)
    assert events == [
        ("tick", {"i": 0, "half": 0.0, "nan": None}),   # NaN is not JSON: it arrives as null
        ("tick", {"i": 1, "half": 0.5, "nan": None}),
        ("tick", {"i": 2, "half": 1.0, "nan": None}),
        ("end", {}),
    ]


@pytest.mark.parametrize(("query", "message"), [
    ("n=0", "n must be a whole number from 1 to 5; got '0'."),
    ("n=abc", "n must be a whole number from 1 to 5; got 'abc'."),
    ("n=", "n must be a whole number from 1 to 5; got ''."),
    ("m=1", "Unknown parameter 'm'; this demo takes: boom, n."),
])
def test_bad_parameters_are_400_with_a_message(server: DemoServer, query: str, message: str) -> None:
    reply = request(server, f"/demos/echo/run?{query}")
    assert reply.status == 400
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"error": message}
    assert sse_events(request(server, "/demos/echo/run?n=1").text)[-1] == ("end", {})


def test_a_failing_run_reports_an_error_event_and_the_server_keeps_serving(server: DemoServer) -> None:
    events = sse_events(request(server, "/demos/echo/run?n=1&boom=1").text)
    assert [name for name, _ in events] == ["tick", "error"]
    assert events[-1][1]["message"] == "The run failed: RuntimeError: the model exploded"
    assert request(server, "/demos/echo/").status == 200


def test_a_broken_live_module_is_500_and_the_server_keeps_serving(server: DemoServer, fake_demos: Path) -> None:
    live = fake_demos / "echo" / "live.py"
    live.write_text("def run(params, emit): pass\n")  # no parse_params
    os.utime(live, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    reply = request(server, "/demos/echo/run")
    assert reply.status == 500
    assert "parse_params" in reply.json()["error"]
    assert request(server, "/demos/echo/").status == 200


def test_live_module_is_reloaded_when_it_changes(server: DemoServer, fake_demos: Path) -> None:
    assert sse_events(request(server, "/demos/echo/run?n=1").text)[0][0] == "tick"
    live = fake_demos / "echo" / "live.py"
    live.write_text(FAKE_LIVE.replace('emit("tick"', 'emit("tock"'))
    later = time.time_ns() + 2 * 10**9  # a different mtime, whatever the file system's resolution
    os.utime(live, ns=(later, later))
    assert sse_events(request(server, "/demos/echo/run?n=1").text)[0][0] == "tock"


def test_a_closed_stream_stops_the_run_and_frees_the_lock(fake_demos: Path) -> None:
    slow = fake_demos / "slow"
    slow.mkdir()
    (slow / "index.html").write_text("slow")
    (slow / "live.py").write_text(textwrap.dedent('''
        import time
        def parse_params(query):
            return None
        def run(params, emit):
            for i in range(10_000):
                emit("tick", {"i": i, "pad": "x" * 1000})
                time.sleep(0.001)
    '''))
    for server in _serve(fake_demos):
        conn = socket.create_connection(("127.0.0.1", server.port))
        conn.sendall(f"GET /demos/slow/run HTTP/1.0\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        received = b""
        while b"event: tick" not in received:
            chunk = conn.recv(4096)
            assert chunk, received
            received += chunk
        conn.close()  # the browser pressed "restart"
        # The next run must get the lock soon, not after the 10 s the first would take.
        start = time.monotonic()
        assert sse_events(request(server, "/demos/echo/run?n=1").text)[-1] == ("end", {})
        assert time.monotonic() - start < 5


# ---------------------------------------------------------------------------------------------
# Limits: who may ask, and how much (each test ends by itself: waits poll with a deadline)
# ---------------------------------------------------------------------------------------------

GATE_LIVE = '''
import pathlib, time

def parse_params(query):
    return None

def run(params, emit):
    emit("started", {})
    gate = pathlib.Path(__file__).with_name("open")
    for _ in range(6000):  # 60 s at most, so that a failing test still ends
        if gate.exists():
            return
        time.sleep(0.01)
'''


def wait_for(condition: Any, what: str, timeout_s: float = 30) -> None:
    """Polls ``condition()`` until it is true; fails (rather than hangs) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


@pytest.fixture
def gate_demo(fake_demos: Path) -> Path:
    """demos/gate: a run that emits "started", then holds its turn until the file gate/open exists."""
    gate = fake_demos / "gate"
    gate.mkdir()
    (gate / "index.html").write_text("gate")
    (gate / "live.py").write_text(GATE_LIVE)
    return gate


def in_background(fn: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    """Runs ``fn(*args)`` in a daemon thread; the list gets its result (or its exception)."""
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(fn(*args))
        except Exception as e:  # noqa: BLE001 - handed to the test
            out.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


@pytest.mark.parametrize("host", [
    "evil.example:{port}",            # DNS rebinding: the attacker's name, resolved to 127.0.0.1
    "localhost.evil.example:{port}",
    "localhost:{other}",              # another port: another origin
    "127.0.0.1",                      # no port, and the server is not on port 80
    "localhost:{port}@evil.example",
    "",                               # no Host header at all
])
@pytest.mark.parametrize("path", ["/demos/echo/", "/demos/echo/run?n=1", "/"])
def test_requests_naming_another_host_are_refused(server: DemoServer, host: str, path: str) -> None:
    header = host.format(port=server.port, other=server.port + 1)
    reply = request(server, path, host=header)
    assert reply.status == 403, (header, reply.status)
    assert "ECHO PAGE" not in reply.text and "event:" not in reply.text
    assert f"http://localhost:{server.port}/" in reply.text


def test_a_repeated_host_header_is_refused(server: DemoServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("GET", "/demos/echo/", skip_host=True)
        conn.putheader("Host", f"localhost:{server.port}")
        conn.putheader("Host", "evil.example")
        conn.endheaders()
        assert conn.getresponse().status == 403
    finally:
        conn.close()


@pytest.mark.parametrize("host", ["localhost:{port}", "LOCALHOST:{port}", "127.0.0.1:{port}", "[::1]:{port}"])
def test_loopback_names_with_the_port_are_served(server: DemoServer, host: str) -> None:
    reply = request(server, "/demos/echo/", host=host.format(port=server.port))
    assert reply.status == 200 and "ECHO PAGE" in reply.text


def test_the_server_listens_on_loopback_only_by_default(fake_demos: Path) -> None:
    server = make_server(fake_demos, port=0, quiet=True)
    try:
        assert server.server_address[0] == "127.0.0.1"
        loopback = ("localhost", "127.0.0.1", "[::1]")
        assert server.allowed_hosts == {f"{name}:{server.port}" for name in loopback}
    finally:
        server.server_close()
    assert demo_server._parse_args([]).host == "127.0.0.1"


def test_a_named_listen_address_is_also_an_allowed_host(fake_demos: Path) -> None:
    server = make_server(fake_demos, port=0, host="127.0.0.2", quiet=True)
    try:
        assert f"127.0.0.2:{server.port}" in server.allowed_hosts
        assert not any(h.startswith("0.0.0.0") for h in server.allowed_hosts)
    finally:
        server.server_close()


def test_the_listen_backlog_is_not_the_standard_librarys_five(server: DemoServer) -> None:
    assert server.request_queue_size >= 128


def test_runs_beyond_the_queue_are_answered_busy(fake_demos: Path, gate_demo: Path) -> None:
    for server in _serve(fake_demos, max_waiting_runs=1, run_wait_s=60):
        first, first_out = in_background(request, server, "/demos/gate/run")
        wait_for(lambda: server.runs.admitted == 1, "the first run has its turn")
        second, second_out = in_background(request, server, "/demos/echo/run?n=1")
        wait_for(lambda: server.runs.admitted == 2, "the second run waits")

        busy = request(server, "/demos/echo/run?n=1")   # one running, one waiting: no room
        assert busy.status == 503
        assert busy.headers["content-type"] == "application/json"
        assert busy.headers["retry-after"] == "5"
        assert busy.json()["error"].startswith("The server is busy: a run is going and 1 more are waiting")
        assert request(server, "/demos/echo/").status == 200   # files are still served meanwhile

        (gate_demo / "open").touch()
        first.join(timeout=60)
        second.join(timeout=60)
        assert [name for name, _ in sse_events(first_out[0].text)] == ["started", "end"]
        assert sse_events(second_out[0].text)[-1] == ("end", {})
        assert server.runs.admitted == 0


def test_a_run_that_waits_too_long_is_answered_busy(fake_demos: Path, gate_demo: Path) -> None:
    for server in _serve(fake_demos, run_wait_s=0.2):
        first, first_out = in_background(request, server, "/demos/gate/run")
        wait_for(lambda: server.runs.admitted == 1, "the first run has its turn")
        late = request(server, "/demos/echo/run?n=1")
        assert late.status == 503
        assert "this run waited 0.2 s for the runs before it" in late.json()["error"]
        (gate_demo / "open").touch()
        first.join(timeout=60)
        assert sse_events(first_out[0].text)[-1] == ("end", {})
        assert sse_events(request(server, "/demos/echo/run?n=1").text)[-1] == ("end", {})


@pytest.mark.timeout(120)
def test_two_hundred_concurrent_runs_each_get_an_answer(server: DemoServer) -> None:
    """Every client gets the run's events or a 503 with the busy message: no reset, no hang."""
    results: list[Any] = [None] * 200

    def client(i: int) -> None:
        try:
            results[i] = request(server, "/demos/echo/run?n=2")
        except Exception as e:  # noqa: BLE001 - collected for the assertion below
            results[i] = e

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    errors = [r for r in results if not isinstance(r, Reply)]
    assert not errors, errors[:3]
    statuses = {r.status for r in results}
    assert statuses <= {200, 503}, statuses
    for r in results:
        if r.status == 200:
            assert [name for name, _ in sse_events(r.text)] == ["tick", "tick", "end"]
        else:
            assert r.json()["error"].startswith("The server is busy")
    assert 200 in statuses
    assert server.runs.admitted == 0


def _idle_connection(server: DemoServer) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    conn.sendall(b"GET /demos/echo/ HTTP/1.0\r\n")  # and never the rest of the head
    return conn


def test_connection_slots_are_taken_and_given_back_once(fake_demos: Path) -> None:
    server = make_server(fake_demos, port=0, quiet=True, max_connections=1)
    clients = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(2)]
    try:
        first, _ = server.get_request()
        assert server.open_connections == 1
        with pytest.raises(OSError, match="every connection slot is taken"):
            server.get_request()             # the second stays in the listen backlog
        server.shutdown_request(first)
        server.shutdown_request(first)       # what socketserver does when a Ctrl-C interrupts a thread's start
        assert server.open_connections == 0
        second, _ = server.get_request()
        assert server.open_connections == 1
        server.shutdown_request(second)
    finally:
        for c in clients:
            c.close()
        server.server_close()


def test_connections_beyond_the_cap_wait_until_one_ends(fake_demos: Path) -> None:
    for server in _serve(fake_demos, max_connections=2):
        idle = [_idle_connection(server), _idle_connection(server)]
        waiting, out = in_background(request, server, "/demos/echo/")
        waiting.join(timeout=0.3)
        assert waiting.is_alive() and not out   # both slots are held: it waits, unanswered
        idle[0].close()                         # one slot frees: the waiting request is served
        waiting.join(timeout=30)
        assert out and isinstance(out[0], Reply) and out[0].status == 200, out
        idle[1].close()


def test_a_client_that_dribbles_its_request_is_cut_off_at_the_deadline(fake_demos: Path) -> None:
    """A byte every 50 ms never trips a per-read timeout; the deadline for the whole head does, and
    the connection's slot goes to the next client."""
    for server in _serve(fake_demos, max_connections=1, request_deadline_s=0.5):
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        after, out = in_background(request, server, "/demos/echo/")
        head = b"GET /demos/echo/ HTTP/1.0\r\nX-Pad: " + b"x" * 10_000
        cut = False
        for i in range(len(head)):   # 10,000 bytes: 500 s, far past the deadline
            try:
                slow.sendall(head[i:i + 1])
            except OSError:          # reset by the server
                cut = True
                break
            if select_readable(slow):
                cut = slow.recv(1024) == b""   # closed by the server, with no answer
                break
            time.sleep(0.05)
        slow.close()
        assert cut
        after.join(timeout=30)
        assert out and isinstance(out[0], Reply) and out[0].status == 200, out


def select_readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def test_server_and_live_module_docstring_examples() -> None:
    """The examples in demos/server.py and in each demo's live.py run (pytest collects doctests
    under deeplearn/ only)."""
    import importlib.util

    import deeplearn as dl

    modules: list[Any] = [demo_server]
    for live in sorted((REPO / "demos").glob("*/live.py")):
        spec = importlib.util.spec_from_file_location(f"doctest_{live.parent.name}_live", live)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        finally:
            del sys.modules[spec.name]
        modules.append(module)
    for module in modules:
        result = doctest.testmod(module, extraglobs={"dl": dl}, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_the_server_passes_mypy_strict() -> None:
    """demos/server.py is outside the package that tests/test_typing.py checks; it is held to the same bar."""
    pytest.importorskip("mypy", reason="mypy comes with the test extra (pip install -e '.[test]')")
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "demos/server.py",
                             "demos/__main__.py"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def test_main_says_clearly_when_the_port_is_taken(fake_demos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = demo_server.main([str(fake_demos / "echo"), "--port", str(port), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"port {port} is already in use" in err and "--port" in err


def test_main_refuses_a_folder_that_is_not_a_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_server.main([str(tmp_path), "--port", "0"]) == 2
    assert "is not a demo folder" in capsys.readouterr().err


def test_errno_of_a_taken_port_is_eaddrinuse() -> None:
    # main() relies on this to tell "port taken" from other bind failures.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError) as info:
            make_server(REPO / "demos", port=taken.getsockname()[1], quiet=True)
    assert info.value.errno == errno.EADDRINUSE


@pytest.mark.skipif(shutil.which("bash") is None, reason="scripts/watch-demo is a bash script")
@pytest.mark.skipif(not (Path(sys.prefix) / ".deeplearn-installed").is_file(),
                    reason="this Python is not a virtualenv set up by scripts/_venv.sh, which watch-demo would "
                           "(re)install with pip")
def test_watch_demo_prints_the_url_and_stops_cleanly_on_ctrl_c() -> None:
    env = {**os.environ, "DEEPLEARN_VENV": sys.prefix, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [str(REPO / "scripts" / "watch-demo"), "demos/ml_beginners", "--port", "0", "--quiet"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Serving demos/ml_beginners at http://localhost:"), line
        url = line.split(" at ")[1].split()[0]
        assert url.endswith("/demos/ml_beginners/")
        port = int(url.split(":")[2].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/demos/ml_beginners/")
        assert conn.getresponse().status == 200
        conn.close()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# The real demos, through the real library
# ---------------------------------------------------------------------------------------------


def test_ml_beginners_stream(real_server: DemoServer) -> None:
    reply = request(real_server, "/demos/ml_beginners/run?seed=1&delay_ms=0")
    assert reply.status == 200
    events = sse_events(reply.text)
    names = [name for name, _ in events]
    assert names[:5] == ["start", "backend", "matrix_times_vector", "graph", "data"], names
    assert names[5:] == ["batch"] * 20 + ["done", "end"], names
    data = dict(events[:5])
    assert data["start"]["params"] == {"learning_rate": 0.01, "batches": 20, "seed": 1, "delay_ms": 0,
                                       "batch_size": 4}
    assert data["backend"]["name"] in ("cpu", "cuda")
    mxv = data["matrix_times_vector"]
    assert mxv["shape"] == [2] and mxv["result"] == [80.0, 170.0]
    start = data["graph"]
    for k in "abc":
        assert 0 <= start[k] < 1  # the tutorial's Math.random()
    assert start["inference"] == pytest.approx(16 * start["a"] + 4 * start["b"] + start["c"], rel=1e-5)
    assert data["data"]["xs"] == [0.0, 1.0, 2.0, 3.0]
    batches = [p for name, p in events if name == "batch"]
    assert [b["batch"] for b in batches] == list(range(1, 21))
    costs = [b["cost"] for b in batches]
    assert costs[-1] < costs[0] / 100
    done = events[-2][1]
    assert abs(done["result"] - 57.0) < 1.0
    assert done["result"] == pytest.approx(16 * done["a"] + 4 * done["b"] + done["c"], rel=1e-5)


def test_ml_beginners_is_reproducible_with_a_seed(real_server: DemoServer) -> None:
    def final(query: str) -> Any:
        return sse_events(request(real_server, f"/demos/ml_beginners/run?{query}").text)[-2][1]

    assert final("seed=5&batches=3&delay_ms=0") == final("seed=5&batches=3&delay_ms=0")
    assert final("seed=5&batches=3&delay_ms=0") != final("seed=6&batches=3&delay_ms=0")


@pytest.mark.parametrize(("query", "message"), [
    ("learning_rate=-0.01", "Learning rate must be a number greater than 0 and at most 10; got '-0.01'."),
    ("learning_rate=abc", "Learning rate must be a number greater than 0 and at most 10; got 'abc'."),
    ("learning_rate=0", "Learning rate must be a number greater than 0 and at most 10; got '0'."),
    ("learning_rate=nan", "Learning rate must be a number greater than 0 and at most 10; got 'nan'."),
    ("learning_rate=", "Learning rate must be a number greater than 0 and at most 10; got ''."),
    ("batches=0", "Number of batches must be a whole number from 1 to 1000; got '0'."),
    ("batches=2.5", "Number of batches must be a whole number from 1 to 1000; got '2.5'."),
    ("seed=-3", "Seed must be a whole number from 0 to 4294967295; got '-3'."),
])
def test_ml_beginners_bad_parameters(real_server: DemoServer, query: str, message: str) -> None:
    reply = request(real_server, f"/demos/ml_beginners/run?{query}")
    assert reply.status == 400
    assert reply.json() == {"error": message}


def test_ml_beginners_too_big_a_learning_rate_warns(real_server: DemoServer) -> None:
    events = sse_events(request(real_server, "/demos/ml_beginners/run?seed=1&learning_rate=0.5&delay_ms=0").text)
    warnings = [p["message"] for name, p in events if name == "warning"]
    assert len(warnings) == 1 and "too big" in warnings[0]
    assert events[-1] == ("end", {})


def test_cost_watch_warns_once_when_the_cost_blows_up() -> None:
    watch = demo_server.CostWatch()
    # The first cost sets the bar: 100 times it, and never below 100.
    assert [watch.blew_up(c) for c in (0.5, 99.0, 100.0, 100.5, 1e9)] == [False, False, False, True, False]
    watch = demo_server.CostWatch()
    assert [watch.blew_up(c) for c in (3.0, 300.0, 301.0, 302.0)] == [False, False, True, False]
    for bad in (float("nan"), float("inf")):
        watch = demo_server.CostWatch()
        assert [watch.blew_up(c) for c in (1.0, bad, bad)] == [False, True, False]


def test_intro_too_big_a_learning_rate_warns(real_server: DemoServer) -> None:
    events = sse_events(request(real_server, "/demos/intro/run?seed=1&learning_rate=0.01&delay_ms=0").text)
    warnings = [p["message"] for name, p in events if name == "warning"]
    assert len(warnings) == 1 and "too big for inputs as large as 300" in warnings[0]
    assert events[-1] == ("end", {})


def test_intro_stream(real_server: DemoServer) -> None:
    events = sse_events(request(real_server, "/demos/intro/run?seed=1&delay_ms=0").text)
    names = [name for name, _ in events]
    assert names[:4] == ["start", "backend", "mean_squared_difference", "graph"], names
    assert names[4:] == ["data"] + ["batch"] * 10 + ["done", "end"], names
    msd = dict(events)["mean_squared_difference"]
    assert msd["diff"] == [1.0, 0.0, -1.0]
    assert msd["average"] == pytest.approx(2 / 3, rel=1e-6)
    assert dict(events)["graph"]["output_shape"] == [1]
    costs = [p["cost"] for name, p in events if name == "batch"]
    assert costs[-1] < costs[0] / 10
    assert dict(events)["done"]["output"] == pytest.approx(0.4, abs=0.05)


def test_intro_bad_vectors(real_server: DemoServer) -> None:
    reply = request(real_server, "/demos/intro/run?a=1,2,3&b=1,2")
    assert reply.status == 400
    assert reply.json() == {"error": "a and b must have the same number of values; got 3 and 2."}
    reply = request(real_server, "/demos/intro/run?a=1,x,3")
    assert reply.status == 400
    assert reply.json() == {"error": "a must be numbers separated by commas, such as 1, 2, 3; got '1,x,3'."}


def test_ml_beginners_stream_agrees_with_the_tutorial_script(real_server: DemoServer) -> None:
    """The live page runs the same computation as demos/ml_beginners/ml_beginners.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ml_beginners_tutorial", REPO / "demos/ml_beginners/ml_beginners.py")
    assert spec is not None and spec.loader is not None
    tutorial = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = tutorial
    try:
        spec.loader.exec_module(tutorial)
        script = tutorial.run_tutorial(seed=3, log=lambda *args: None)
    finally:
        del sys.modules[spec.name]
    events = sse_events(request(real_server, "/demos/ml_beginners/run?seed=3&delay_ms=0").text)
    live = dict(events)
    assert live["matrix_times_vector"]["result"] == script.matrix_times_vector
    assert {k: live["graph"][k] for k in "abc"} == pytest.approx(script.initial, rel=1e-6)
    assert [p["cost"] for name, p in events if name == "batch"] == pytest.approx(script.costs, rel=1e-4)
    assert live["done"]["result"] == pytest.approx(script.result, rel=1e-5)
