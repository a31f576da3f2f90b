"""CheckpointLoader over http(s): downloaded once into the cache, checked, resumed; served by a
local HTTP server (127.0.0.1, an ephemeral port, a thread). No other network is used."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from deeplearn import Array1D, CheckpointLoader, NDArray, write_checkpoint
from deeplearn.data import download
from deeplearn.data.download import DownloadError

VARIABLES = {
    "dense/kernel:0": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
    "w": np.array([1.5, -2.0, 3.25], dtype=np.float32),
    "step": np.array(16777217, dtype=np.int32),
    "mask": np.array([True, False, True]),
}


@dataclass
class Server:
    """Serves the files of ``folder`` under ``/ckpt/``, recording each request's path and Range
    header. ``truncate[name] = n`` sends the first n bytes of the next response for ``name``
    (announcing them all), then closes; ``replace[name]`` serves other bytes instead."""

    folder: Path
    range_ok: bool = True
    truncate: dict[str, int] = field(default_factory=dict)
    replace: dict[str, bytes] = field(default_factory=dict)
    log: list[tuple[str, str | None]] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/ckpt/"

    def requested(self) -> list[str]:
        return [path for path, _ in self.log]

    def start(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            server.log.append((path, self.headers.get("Range")))
            name = path.removeprefix("/ckpt/")
            file = server.folder / name
            if not path.startswith("/ckpt/") or "/" in name or not file.is_file():
                self.send_error(404)
                return
            body = server.replace.get(name, file.read_bytes())
            start = _range_start(self.headers.get("Range")) if server.range_ok else None
            if start is not None and start >= len(body):
                self.send_error(416)
                return
            self.send_response(200 if start is None else 206)
            if start is not None:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                body = body[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = server.truncate.pop(name, None)
            self.wfile.write(body if cut is None else body[:cut])
            self.wfile.flush()
            self.close_connection = True

    return Handler


def _range_start(header: str | None) -> int | None:
    if header is None or not header.startswith("bytes=") or not header.endswith("-"):
        return None
    return int(header[len("bytes="):-1])


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DEEPLEARN_CACHE pointing to an empty folder, and no proxy between us and 127.0.0.1."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def server(tmp_path: Path, cache: Path) -> Iterator[Server]:
    """A server of a checkpoint of VARIABLES written by write_checkpoint."""
    write_checkpoint(tmp_path / "served", VARIABLES)
    s = Server(tmp_path / "served")
    s.start()
    yield s
    s.stop()


def _manifest(server: Server) -> dict[str, dict[str, object]]:
    return json.loads((server.folder / "manifest.json").read_text())  # type: ignore[no-any-return]


def _set_manifest(server: Server, manifest: dict[str, dict[str, object]]) -> None:
    (server.folder / "manifest.json").write_text(json.dumps(manifest))


def _check_values(loaded: dict[str, NDArray]) -> None:
    assert set(loaded) == set(VARIABLES)
    for name, expected in VARIABLES.items():
        assert loaded[name].shape == expected.shape
        np.testing.assert_array_equal(loaded[name].numpy(), expected)


def test_a_first_load_downloads_and_a_second_reads_the_cache(server: Server, cache: Path) -> None:
    loader = CheckpointLoader(server.url)
    _check_values(loader.get_all_variables())
    files = {entry["filename"] for entry in _manifest(server).values()}
    assert sorted(server.requested()) == sorted(f"/ckpt/{f}" for f in [*files, "manifest.json"])
    assert loader.path.parent == cache / "checkpoints" and loader.path.name.startswith("ckpt-")
    assert {p.name for p in loader.path.iterdir()} == {*files, "manifest.json"}  # no partial files
    server.stop()
    again = CheckpointLoader(server.url.rstrip("/"))  # deeplearn.js added the '/', so do we
    assert again.path == loader.path
    _check_values(again.get_all_variables())
    assert len(server.log) == len(files) + 1


def test_variables_are_downloaded_when_first_read(server: Server) -> None:
    loader = CheckpointLoader(server.url)
    np.testing.assert_array_equal(loader.get_variable("w").numpy(), VARIABLES["w"])
    np.testing.assert_array_equal(loader.get_variable("w").numpy(), VARIABLES["w"])
    assert server.requested() == ["/ckpt/manifest.json", "/ckpt/w"]


def test_the_cache_dir_argument_wins_over_the_environment(server: Server, tmp_path: Path, cache: Path) -> None:
    loader = CheckpointLoader(server.url, cache_dir=tmp_path / "elsewhere")
    assert loader.get_variable("step").get() == 16777217
    assert loader.path.parent == tmp_path / "elsewhere" / "checkpoints" and not cache.exists()


def test_offline_a_file_not_in_the_cache_is_a_clear_error(server: Server) -> None:
    loader = CheckpointLoader(server.url)
    loader.get_checkpoint_manifest()
    server.stop()
    with pytest.raises(DownloadError, match=r"CheckpointLoader.get_variable: .*/ckpt/w could not be downloaded "
                                            r"\(.*\), and it is not in the cache folder") as info:
        loader.get_variable("w")
    assert isinstance(info.value, OSError) and isinstance(info.value.__cause__, OSError)
    with pytest.raises(DownloadError, match=r"CheckpointLoader: .*/ckpt/manifest.json could not be downloaded"):
        CheckpointLoader(server.url, cache_dir=loader.path / "empty").get_checkpoint_manifest()


def test_an_http_error_is_a_download_error(server: Server) -> None:
    with pytest.raises(DownloadError, match=r"/nothing-here/manifest.json could not be downloaded \(HTTP 404"):
        CheckpointLoader(server.url.replace("/ckpt/", "/nothing-here/")).get_checkpoint_manifest()


def test_a_truncated_response_is_detected_not_cached_and_resumed_with_a_range(server: Server) -> None:
    loader = CheckpointLoader(server.url)
    server.truncate["w"] = 5
    with pytest.raises(DownloadError, match=r"response for .*/ckpt/w was cut off: 5 of 12 bytes arrived"):
        loader.get_variable("w")
    assert not (loader.path / "w").exists()
    assert (loader.path / ".dl-w.part").stat().st_size == 5
    np.testing.assert_array_equal(loader.get_variable("w").numpy(), VARIABLES["w"])
    assert server.log[-1] == ("/ckpt/w", "bytes=5-")
    assert (loader.path / "w").stat().st_size == 12 and not (loader.path / ".dl-w.part").exists()


def test_a_server_without_ranges_restarts_the_download(server: Server) -> None:
    server.range_ok = False
    loader = CheckpointLoader(server.url)
    server.truncate["dense_kernel0"] = 7
    with pytest.raises(DownloadError, match="cut off: 7 of 24 bytes"):
        loader.get_variable("dense/kernel:0")
    np.testing.assert_array_equal(loader.get_variable("dense/kernel:0").numpy(), VARIABLES["dense/kernel:0"])
    assert server.log[-1] == ("/ckpt/dense_kernel0", "bytes=7-")  # asked for, answered with the whole file


def test_a_partial_file_as_long_as_the_whole_is_restarted(server: Server) -> None:
    loader = CheckpointLoader(server.url)
    loader.get_checkpoint_manifest()
    (loader.path / ".dl-w.part").write_bytes(b"x" * 12)  # the server answers 416: nothing past byte 12
    np.testing.assert_array_equal(loader.get_variable("w").numpy(), VARIABLES["w"])
    assert [r for _, r in server.log[-2:]] == ["bytes=12-", None]


def test_a_file_of_the_wrong_size_is_refused_and_not_cached(server: Server) -> None:
    loader = CheckpointLoader(server.url)
    server.replace["w"] = b"\0" * 16
    with pytest.raises(ValueError, match=r"get_variable: .*/ckpt/w must have 12 bytes; the server announced 16"):
        loader.get_variable("w")
    server.replace["w"] = b"\0" * 8
    with pytest.raises(ValueError, match=r"get_variable: .*/ckpt/w must have 12 bytes; got 8 bytes \(it is not "):
        loader.get_variable("w")
    assert sorted(p.name for p in loader.path.iterdir()) == ["manifest.json"]


def test_a_sha256_in_the_manifest_is_checked(server: Server) -> None:
    manifest = _manifest(server)
    right = hashlib.sha256((server.folder / "w").read_bytes()).hexdigest()
    manifest["w"]["sha256"] = right
    manifest["step"]["sha256"] = "0" * 64
    _set_manifest(server, manifest)
    loader = CheckpointLoader(server.url)
    np.testing.assert_array_equal(loader.get_variable("w").numpy(), VARIABLES["w"])
    with pytest.raises(ValueError, match=r"get_variable: .*/ckpt/step must have SHA-256 0{64}; got [0-9a-f]{64} "
                                         r"\(it is not cached\)"):
        loader.get_variable("step")
    assert not (loader.path / "step").exists() and not (loader.path / ".dl-step.part").exists()
    (loader.path / "w").write_bytes(np.zeros(3, "<f4").tobytes())  # the same size, other bytes: read, refused
    with pytest.raises(ValueError, match=f"must have SHA-256 {right}"):
        loader.get_variable("w")


@pytest.mark.parametrize("filename", [
    "../outside", "/etc/passwd", "..", ".", "sub/w", "sub\\w", "%2e%2e%2foutside", "a%2Fb", "w?x=1", "w#x",
    "http:w", "//evil.example/w", ".hidden", ".dl-w.part", "manifest.json", "", "w\0",
])
def test_manifest_entries_can_never_name_a_file_outside_the_checkpoint(server: Server, filename: str) -> None:
    manifest = _manifest(server)
    manifest["w"]["filename"] = filename
    _set_manifest(server, manifest)
    loader = CheckpointLoader(server.url)
    with pytest.raises(ValueError, match=r"CheckpointLoader: the file of 'w' must be a plain"):
        loader.get_checkpoint_manifest()
    assert server.requested() == ["/ckpt/manifest.json"]
    assert not loader.path.exists() or not list(loader.path.iterdir())  # the manifest is not cached


def test_a_manifest_that_is_not_one_is_not_cached(server: Server) -> None:
    (server.folder / "manifest.json").write_text("{not json")
    loader = CheckpointLoader(server.url)
    with pytest.raises(ValueError, match="is not valid JSON"):
        loader.get_checkpoint_manifest()
    assert not list(loader.path.iterdir())


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://127.0.0.1/ckpt/", "a local folder, a file:// URL or an http"),
    ("http:///ckpt/", "with a host"),
    ("http://user:secret@127.0.0.1/ckpt/", "no credentials"),
    ("http://127.0.0.1/ckpt/#part", "or fragment"),
    ("http://127.0.0.1/ckpt/?version=2", "must not have a query"),
])
def test_bad_urls_are_refused_at_once(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CheckpointLoader(url)


def test_loaders_in_threads_download_each_file_once(server: Server) -> None:
    results: list[dict[str, NDArray]] = []
    threads = [threading.Thread(target=lambda: results.append(CheckpointLoader(server.url).get_all_variables()))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for loaded in results:
        _check_values(loaded)
    assert sorted(server.requested()) == sorted(set(server.requested()))


def test_a_progress_bar_shows_the_bytes(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm", reason="tqdm comes with the train extra (pip install -e '.[train]')")
    CheckpointLoader(server.url, progress=True).get_variable("w")
    err = capsys.readouterr().err
    assert "manifest.json:" in err and "w:" in err and "/12.0" in err


def test_download_caches_one_url_once(server: Server, cache: Path) -> None:
    url = server.url + "w"
    data = (server.folder / "w").read_bytes()
    path = download.download(url, size=12, sha256=hashlib.sha256(data).hexdigest())
    assert path.read_bytes() == data and path.name == "w" and cache in path.parents
    server.stop()
    assert download.download(url) == path
    with pytest.raises(ValueError, match="download: sha256 must be 64 hex digits"):
        download.download(url, sha256="abc")


def test_a_write_checkpoint_folder_loads_over_http_unchanged(server: Server) -> None:
    """write_checkpoint's fresh suffixed names (an overwrite) are URL-safe too."""
    write_checkpoint(server.folder, {"w": Array1D.new([7, 8, 9]), "extra": Array1D.new([1])})
    loaded = CheckpointLoader(server.url).get_all_variables()
    np.testing.assert_array_equal(loaded["w"].numpy(), [7, 8, 9])
