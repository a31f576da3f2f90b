"""The model builder's full data sets (MNIST, Fashion-MNIST, CIFAR-10): the registry of their files
and published hashes, the idx and CIFAR parsers on small synthetic files in the real formats, the
download through a loopback HTTP server into a temporary cache (and the cache used with the server
stopped), a file that is not the original, the user's folder, and the page's download progress and
offline message through the real demo server. Nothing here reaches the internet: the registry's
URLs and hashes are pointed at the synthetic files for each test.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import pickle
import re
import socket
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deeplearn.data.download import DownloadError
from demos.model_builder import live
from demos.model_builder import model_builder as mb
from demos.server import DemoServer
from tests.demos.test_demo_server import _serve, request, sse_events

REPO = Path(__file__).resolve().parents[2]
IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")


# ---------------------------------------------------------------------------------------------
# Synthetic files in the real formats, and a loopback server for them
# ---------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) as a gzipped idx file: 0, 0, 0x08, the number of dimensions, each as a
    big-endian uint32, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes(), mtime=0)


def balanced_labels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.arange(n) % 10).astype(np.uint8)


def mnist_like(n_train: int = 400, n_test: int = 40, seed: int = 0) -> dict[str, Any]:
    """Random images (they compress badly, so the files are of some size) and balanced labels."""
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte.gz": balanced_labels(n_train, seed + 1),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte.gz": balanced_labels(n_test, seed + 2)}
    return {"arrays": arrays, "files": {name: idx_bytes(a) for name, a in arrays.items()}}


def cifar_like(per_batch: int = 20, n_test: int = 40, seed: int = 0) -> dict[str, Any]:
    """A cifar-10-python.tar.gz: data_batch_1 to _5 and test_batch, each a pickled dict of
    ``data`` (n × 3072: the red, green and blue planes of 32 × 32) and ``labels``, plus the
    batches.meta the real archive has."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    batches = {}
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
        for i, name in enumerate(names):
            if name == "batches.meta":
                blob = pickle.dumps({b"label_names": [b"airplane"] * 10})
            else:
                n = n_test if name == "test_batch" else per_batch
                data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
                labels = balanced_labels(n, seed + i).tolist()
                batches[name] = (data, labels)
                blob = pickle.dumps({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                                     b"filenames": [b"x.png"] * n})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return {"batches": batches, "files": {"cifar-10-python.tar.gz": buffer.getvalue()}}


class Served:
    """A loopback HTTP server (127.0.0.1, an ephemeral port, in a thread) for files in a folder;
    ``chunk_delay_s`` sends each 16 KiB after a pause, so that a download takes a while."""

    def __init__(self, folder: Path, chunk_delay_s: float = 0.0) -> None:
        outer = self
        self.requests: list[str] = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.requests.append(self.path)
                super().do_GET()

            def copyfile(self, source: Any, outputfile: Any) -> None:
                while chunk := source.read(16384):
                    outputfile.write(chunk)
                    outputfile.flush()
                    time.sleep(chunk_delay_s)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)


def point_registry(monkeypatch: pytest.MonkeyPatch, key: str, files: dict[str, bytes], base_url: str,
                   *, sha256: dict[str, str] | None = None) -> mb.Dataset:
    """The registry's entry ``key`` with its files' URLs on ``base_url`` and the synthetic files'
    sizes and SHA-256 (or the given ones)."""
    old = mb.DATASETS[key]
    new = replace(old, files=tuple(
        mb.RemoteFile(f.name, len(files[f.name]),
                      (sha256 or {}).get(f.name, hashlib.sha256(files[f.name]).hexdigest()), (base_url + f.name,))
        for f in old.files))
    monkeypatch.setitem(mb.DATASETS, key, new)
    return new


def closed_port_url() -> str:
    """A loopback URL where nothing listens: what an offline machine sees."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def no_user_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mb.DATA_DIR_ENV, raising=False)


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------


def test_the_registry_names_the_published_files_sizes_and_sha256() -> None:
    assert list(mb.DATASETS) == ["mnist", "mnist_full", "fashion_mnist", "cifar10"]
    assert mb.DATASETS["mnist"].format == "sample" and not mb.DATASETS["mnist"].files
    for key in ("mnist_full", "fashion_mnist"):
        d = mb.DATASETS[key]
        assert d.image_shape == (28, 28, 1) and d.format == "idx" and len(d.classes) == 10
        assert [f.name for f in d.files] == list(IDX_NAMES)
    c = mb.DATASETS["cifar10"]
    assert c.image_shape == (32, 32, 3) and [f.name for f in c.files] == ["cifar-10-python.tar.gz"]
    assert c.files[0].size == 170_498_071
    assert mb.DATASETS["mnist_full"].files[0].sha256 == "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    for d in mb.DATASETS.values():
        for f in d.files:
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256) and f.size > 0 and f.urls
            assert all(u.startswith(("http://", "https://")) and u.endswith("/" + f.name) for u in f.urls)
    # The page lists the same data sets, with their image shapes.
    html = (REPO / "demos" / "model_builder" / "index.html").read_text()
    assert re.findall(r'<option value="(\w+)">', html.split('id="dataset"')[1].split("</select>")[0]) \
        == list(mb.DATASETS)
    js = (REPO / "demos" / "model_builder" / "model_builder.js").read_text()
    shapes = re.search(r"const SHAPES = \{(.*?)\};", js).group(1)
    assert {k: tuple(int(v) for v in dims.split(", ")) for k, dims in re.findall(r"(\w+): \[([\d, ]+)\]", shapes)} \
        == {k: d.image_shape for k, d in mb.DATASETS.items()}
    readme = (REPO / "demos" / "model_builder" / "data" / "README.md").read_text()
    for d in mb.DATASETS.values():
        for f in d.files:
            assert f.sha256 in readme, f.name


# ---------------------------------------------------------------------------------------------
# The parsers
# ---------------------------------------------------------------------------------------------


def test_read_idx_reads_images_and_labels_and_refuses_what_is_not_idx(tmp_path: Path) -> None:
    synthetic = mnist_like(30, 10)
    for name, array in synthetic["arrays"].items():
        (tmp_path / name).write_bytes(synthetic["files"][name])
        got = mb.read_idx(tmp_path / name)
        assert got.dtype == np.uint8 and np.array_equal(got, array), name
    (tmp_path / "raw").write_bytes(gzip.decompress(synthetic["files"]["t10k-labels-idx1-ubyte.gz"]))
    assert np.array_equal(mb.read_idx(tmp_path / "raw"), synthetic["arrays"]["t10k-labels-idx1-ubyte.gz"])

    (tmp_path / "bad").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="bad is not an idx file"):
        mb.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"the header says \(5,\)"):
        mb.read_idx(tmp_path / "short")


def test_read_cifar_reads_the_pickled_batches_as_rows_cols_rgb(tmp_path: Path) -> None:
    synthetic = cifar_like(per_batch=6, n_test=10)
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(synthetic["files"]["cifar-10-python.tar.gz"])
    train_x, train_y, test_x, test_y = mb.read_cifar(path)
    assert train_x.shape == (30, 32, 32, 3) and test_x.shape == (10, 32, 32, 3) and train_x.dtype == np.uint8
    data, labels = synthetic["batches"]["data_batch_2"]
    assert train_y[6:12].tolist() == labels
    first = data[0]
    # The first 1024 bytes are the red plane, row by row; then green; then blue.
    assert train_x[6, 0, 1, 0] == first[1] and train_x[6, 1, 0, 1] == first[1024 + 32] and \
        train_x[6, 31, 31, 2] == first[3071]
    assert np.array_equal(test_x.reshape(10, -1, 3).transpose(0, 2, 1).reshape(10, -1),
                          synthetic["batches"]["test_batch"][0])
    assert test_y.tolist() == synthetic["batches"]["test_batch"][1]

    broken = tmp_path / "other.tar.gz"
    with tarfile.open(broken, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ValueError, match="not CIFAR-10's python version"):
        mb.read_cifar(broken)


# ---------------------------------------------------------------------------------------------
# Downloads, the cache, the user's folder
# ---------------------------------------------------------------------------------------------


def test_a_download_through_a_loopback_server_is_cached_and_used_with_the_server_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_user_folder: None) -> None:
    synthetic = mnist_like(400, 40)
    write_files(tmp_path / "served", synthetic["files"])
    server = Served(tmp_path / "served")
    dataset = point_registry(monkeypatch, "fashion_mnist", synthetic["files"], server.url)
    heard: list[tuple[str, int, int, int, int]] = []
    try:
        data = mb.load_dataset("fashion_mnist", cache_dir=tmp_path / "cache", progress=False,
                               on_progress=lambda *a: heard.append(a))
    finally:
        server.stop()
    assert sorted(server.requests) == sorted("/" + n for n in IDX_NAMES)
    arrays = synthetic["arrays"]
    assert data.train_images.shape == (400, 28, 28, 1) and data.test_images.shape == (40, 28, 28, 1)
    assert data.train_images.dtype == np.float32
    assert np.array_equal(data.train_images[..., 0], arrays["train-images-idx3-ubyte.gz"] / np.float32(255))
    assert np.array_equal(data.test_labels, arrays["t10k-labels-idx1-ubyte.gz"])
    # Progress: every file to its end, the bytes of all the files counting up to their total.
    assert heard[-1][3:] == (dataset.size, dataset.size)
    assert [h[3] for h in heard] == sorted(h[3] for h in heard)
    assert {h[0] for h in heard if h[1] == h[2]} == set(IDX_NAMES)
    cached = sorted(p.name for p in (tmp_path / "cache" / "downloads").rglob("*") if p.is_file())
    assert cached == sorted(IDX_NAMES)

    # The server is gone: the second load reads the cache.
    again = mb.load_dataset("fashion_mnist", cache_dir=tmp_path / "cache", progress=False, max_train=100)
    assert np.array_equal(again.train_images, data.train_images[:100]) and np.array_equal(again.test_labels,
                                                                                         data.test_labels)


def test_cifar10_downloads_and_parses_into_32_by_32_by_3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_user_folder: None) -> None:
    synthetic = cifar_like(per_batch=8, n_test=20)
    write_files(tmp_path / "served", synthetic["files"])
    server = Served(tmp_path / "served")
    point_registry(monkeypatch, "cifar10", synthetic["files"], server.url)
    try:
        data = mb.load_dataset("cifar10", cache_dir=tmp_path / "cache", progress=False)
    finally:
        server.stop()
    assert data.train_images.shape == (40, 32, 32, 3) and data.test_images.shape == (20, 32, 32, 3)
    first = synthetic["batches"]["data_batch_1"][0][0]
    assert data.train_images[0, 0, 0].tolist() == [first[0] / np.float32(255), first[1024] / np.float32(255),
                                                   first[2048] / np.float32(255)]


def test_a_file_that_is_not_the_original_is_a_clear_error_and_is_not_cached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_user_folder: None) -> None:
    synthetic = mnist_like(20, 20)
    write_files(tmp_path / "served", synthetic["files"])
    server = Served(tmp_path / "served")
    point_registry(monkeypatch, "mnist_full", synthetic["files"], server.url,
                   sha256={"train-labels-idx1-ubyte.gz": "0" * 64})
    try:
        with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz.*SHA-256|SHA-256.*train-labels") as e:
            mb.load_dataset("mnist_full", cache_dir=tmp_path / "cache", progress=False)
    finally:
        server.stop()
    assert "Traceback" not in str(e.value)
    cached = {p.name for p in (tmp_path / "cache" / "downloads").rglob("*") if p.is_file()}
    assert "train-labels-idx1-ubyte.gz" not in cached and "train-images-idx3-ubyte.gz" in cached


def test_offline_is_a_download_error_that_says_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_user_folder: None) -> None:
    point_registry(monkeypatch, "mnist_full", mnist_like(10, 10)["files"], closed_port_url())
    with pytest.raises(DownloadError) as e:
        mb.load_dataset("mnist_full", cache_dir=tmp_path / "cache", progress=False)
    message = str(e.value)
    assert message.startswith("MNIST could not be downloaded: train-images-idx3-ubyte.gz is not in the cache")
    assert "(offline?)" in message and "$DEEPLEARN_DATASETS" in message and "embedded MNIST sample" in message


def test_the_users_folder_is_used_first_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synthetic = mnist_like(20, 20)
    point_registry(monkeypatch, "mnist_full", synthetic["files"], closed_port_url())   # no network at all
    write_files(tmp_path / "mine" / "mnist_full", synthetic["files"])
    monkeypatch.setenv(mb.DATA_DIR_ENV, str(tmp_path / "mine"))
    data = mb.load_dataset("mnist_full", cache_dir=tmp_path / "cache", progress=False)
    assert np.array_equal(data.train_labels, synthetic["arrays"]["train-labels-idx1-ubyte.gz"])
    assert not (tmp_path / "cache").exists()                      # nothing was downloaded or copied

    (tmp_path / "mine" / "mnist_full" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the original")
    with pytest.raises(ValueError, match="is not the original t10k-labels-idx1-ubyte.gz of MNIST"):
        mb.load_dataset("mnist_full", cache_dir=tmp_path / "cache", progress=False)


# ---------------------------------------------------------------------------------------------
# The page's runs through the real demo server
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_server() -> Iterator[DemoServer]:
    yield from _serve(REPO / "demos", default_demo="model_builder")


@pytest.fixture
def fresh_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_user_folder: None) -> None:
    """live.py's loaded data sets forgotten (in this test's import of it and in the server's, which
    imports it by its path as ``deeplearn_demo_model_builder_live``), and an empty cache folder."""
    monkeypatch.setattr(live, "_data", {})
    served = sys.modules.get("deeplearn_demo_model_builder_live")
    if served is not None:
        monkeypatch.setattr(served, "_data", {})
    monkeypatch.setenv("DEEPLEARN_CACHE", str(tmp_path / "cache"))


def stream(server: DemoServer, query: str) -> list[tuple[str, Any]]:
    reply = request(server, f"/demos/model_builder/run?{query}")
    assert reply.status == 200, reply.text
    return sse_events(reply.text)


def test_offline_the_page_gets_a_clear_message_and_the_sample_still_trains(
        real_server: DemoServer, monkeypatch: pytest.MonkeyPatch, fresh_live: None) -> None:
    point_registry(monkeypatch, "cifar10", cifar_like(2, 10)["files"], closed_port_url())
    events = stream(real_server, "dataset=cifar10&layers=flatten,dense:10&batches=3&seed=1")
    names = [e for e, _ in events]
    assert names == ["start", "backend", "model", "error", "end"], names
    message = dict(events)["error"]["message"]
    assert message.startswith("CIFAR-10 could not be downloaded: cifar-10-python.tar.gz is not in the cache")
    assert "The run failed" not in message and "Traceback" not in message and "embedded MNIST sample" in message

    events = stream(real_server, "dataset=mnist&layers=flatten,dense:10&batches=3&seed=1")
    assert [e for e, _ in events][-2:] == ["done", "end"]


def test_the_page_streams_the_download_progress_then_trains(
        tmp_path: Path, real_server: DemoServer, monkeypatch: pytest.MonkeyPatch, fresh_live: None) -> None:
    synthetic = mnist_like(400, 40)
    write_files(tmp_path / "served", synthetic["files"])
    server = Served(tmp_path / "served", chunk_delay_s=0.03)     # about a second for the largest file
    dataset = point_registry(monkeypatch, "mnist_full", synthetic["files"], server.url)
    try:
        events = stream(real_server, "dataset=mnist_full&layers=flatten,dense:32,relu,dense:10&batches=20&seed=2")
    finally:
        server.stop()
    names = [e for e, _ in events]
    assert names[:3] == ["start", "backend", "model"] and names[-2:] == ["done", "end"]
    downloads = [p for e, p in events if e == "download"]
    assert names.index("data") > max(i for i, n in enumerate(names) if n == "download")
    assert downloads[-1]["all_done"] == downloads[-1]["total"] == dataset.size
    assert all(p["dataset"].startswith("MNIST: 70,000 digits") for p in downloads)
    assert [p["all_done"] for p in downloads] == sorted(p["all_done"] for p in downloads)
    assert any(0 < p["done"] < p["size"] for p in downloads), downloads   # bytes so far, while it came
    data = dict(events)["data"]
    assert (data["train"], data["test"], data["image_size"], data["channels"]) == (400, 40, 28, 1)
    assert data["grid_labels"] == list(range(10)) * 4

    # The next run uses what the server loaded: no download events, even with the files' server gone.
    events = stream(real_server, "dataset=mnist_full&layers=flatten,dense:10&batches=2&seed=2")
    assert "download" not in dict(events) and [e for e, _ in events][-2:] == ["done", "end"]


def test_cifar10_runs_check_and_train_on_32_by_32_by_3_images(
        tmp_path: Path, real_server: DemoServer, monkeypatch: pytest.MonkeyPatch, fresh_live: None) -> None:
    events = stream(real_server, "check=1&dataset=cifar10&layers=" + mb.PRESETS["convolutional"].replace(" ", ""))
    model = dict(events)["model"]
    assert model["input"] == [32, 32, 3] and model["layers"][-3]["shape"] == [8, 8, 16]
    reply = request(real_server, "/demos/model_builder/run?check=1&dataset=cifar10&layers=reshape:784,dense:10")
    assert reply.status == 400 and "cannot reshape [32, 32, 3] (3072 values)" in reply.json()["error"]

    synthetic = cifar_like(per_batch=8, n_test=40)
    write_files(tmp_path / "served", synthetic["files"])
    server = Served(tmp_path / "served")
    point_registry(monkeypatch, "cifar10", synthetic["files"], server.url)
    try:
        events = stream(real_server, "dataset=cifar10&layers=conv2d:3:4,relu,max_pool:2,flatten,dense:10"
                                     "&batches=5&seed=3")
    finally:
        server.stop()
    data = dict(events)["data"]
    assert (data["train"], data["test"], data["image_size"], data["channels"]) == (40, 40, 32, 3)
    assert data["classes"][:2] == ["airplane", "automobile"]
    assert len(data["grid_pixels"]) == 4 * ((40 * 32 * 32 * 3 + 2) // 3)
    assert dict(events)["done"]["batch"] == 5


# ---------------------------------------------------------------------------------------------
# The page in Chromium (the fixtures and skips of tests/demos/test_browser.py), on the real demo
# server run in this process, so that the registry can point at the loopback files
# ---------------------------------------------------------------------------------------------

try:
    from tests.demos import test_browser as shared
except pytest.skip.Exception as e:   # test_browser.py skips itself where Playwright or Chromium is missing
    shared, NO_BROWSER = None, str(e)
else:
    browser, page = shared.browser, shared.page


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_the_page_shows_the_download_then_trains_and_says_when_offline(
        request: pytest.FixtureRequest, tmp_path: Path, real_server: DemoServer, monkeypatch: pytest.MonkeyPatch,
        fresh_live: None) -> None:
    if shared is None:
        pytest.skip(NO_BROWSER)
    page = request.getfixturevalue("page")
    synthetic = mnist_like(400, 40)
    write_files(tmp_path / "served", synthetic["files"])
    server = Served(tmp_path / "served", chunk_delay_s=0.03)
    dataset = point_registry(monkeypatch, "mnist_full", synthetic["files"], server.url)
    point_registry(monkeypatch, "cifar10", cifar_like(2, 10)["files"], closed_port_url())
    url = f"http://127.0.0.1:{real_server.port}/demos/model_builder/"
    try:
        page.goto(f"{url}?dataset=mnist_full&layers=flatten,dense:10&batches=30&seed=1")
        page.wait_for_function("document.getElementById('layers').dataset.valid === 'true'")
        assert page.input_value("#dataset") == "mnist_full"
        page.click("#train")
        page.wait_for_function("document.body.dataset.state !== 'running'", timeout=120_000)
        assert page.evaluate("document.body.dataset.state") == "done", (page.inner_text("#message"),
                                                                         page.inner_text("#status"))
    finally:
        server.stop()
    assert page.is_visible("#download") and page.is_hidden("#message")
    assert page.get_attribute("#download", "data-done") == page.get_attribute("#download", "data-total") \
        == str(dataset.size)
    assert "MNIST: train-images-idx3-ubyte.gz" in page.inner_text("#download-text") or \
        "MNIST: t10k-labels-idx1-ubyte.gz" in page.inner_text("#download-text")
    assert page.locator("#grid .digit canvas").count() == 40

    # CIFAR-10 with no network: the page says so, in words, and the layers are checked for 32 × 32 × 3.
    page.select_option("#dataset", "cifar10")
    page.wait_for_function("document.querySelector('#layer-rows tr.input-row .shape').textContent === '[32, 32, 3]'")
    page.wait_for_function("document.getElementById('layers').dataset.valid === 'true'")
    page.click("#train")
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=60_000)
    message = page.inner_text("#message")
    assert message.startswith("CIFAR-10 could not be downloaded") and "Traceback" not in message
    assert "embedded MNIST sample works offline" in message

    # The embedded sample still trains.
    page.select_option("#dataset", "mnist")
    page.wait_for_function("document.getElementById('layers').dataset.valid === 'true'")
    page.click("#train")
    page.wait_for_function("document.body.dataset.state === 'done'", timeout=120_000)
    assert page.is_hidden("#message") and page.is_hidden("#download")
