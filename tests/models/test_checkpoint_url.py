"""The models read deeplearn.js checkpoints over http(s) as from its zoo: here from a loopback
server (127.0.0.1, an ephemeral port, a thread) serving random weights; no other network."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import deeplearn as dl
from deeplearn.data import download
from deeplearn.models import KNNImageClassifier, MobileNet, SqueezeNet


class _Quiet(SimpleHTTPRequestHandler):
    log: list[str]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.log.append(self.path)
        super().do_GET()


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, squeezenet_folder: Path,
        mobilenet_folder: Path) -> Iterator[tuple[str, list[str]]]:
    """A server of a checkpoint zoo (squeezenet1_1/, mobilenet_v1_1.0_224/), its URL and its
    request log; the cache in an empty folder; no proxy."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))
    root = tmp_path / "zoo"
    root.mkdir()
    (root / "squeezenet1_1").symlink_to(squeezenet_folder, target_is_directory=True)
    (root / "mobilenet_v1_1.0_224").symlink_to(mobilenet_folder, target_is_directory=True)
    log: list[str] = []
    handler = type("Handler", (_Quiet,), {"log": log})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", log
    httpd.shutdown()
    httpd.server_close()


def test_squeezenet_and_the_knn_classifier_load_once_from_a_url(
    zoo: tuple[str, list[str]], squeezenet_folder: Path, cpu_math: dl.NDArrayMath
) -> None:
    url, log = zoo
    x = dl.NDArray.from_numpy(np.random.default_rng(0).uniform(0, 255, (40, 40, 3)), math=cpu_math)
    from_folder = SqueezeNet(cpu_math)
    from_folder.load(squeezenet_folder)
    net = SqueezeNet(cpu_math)
    net.load(url + "squeezenet1_1/")
    assert len(log) == 1 + 52  # the manifest and every variable's file
    np.testing.assert_array_equal(net.predict(x).get_values(), from_folder.predict(x).get_values())
    knn = KNNImageClassifier(2, 1, cpu_math)
    knn.load(url + "squeezenet1_1/")  # from the cache: nothing downloaded again
    assert len(log) == 1 + 52
    knn.add_image(x, 1)
    assert knn.predict_class(x).class_index == 1


def test_mobilenet_loads_from_a_url(zoo: tuple[str, list[str]], mobilenet_folder: Path,
                                    cpu_math: dl.NDArrayMath) -> None:
    url, log = zoo
    x = dl.NDArray.from_numpy(np.random.default_rng(1).uniform(0, 255, (32, 32, 3)), math=cpu_math)
    net, from_folder = MobileNet(cpu_math), MobileNet(cpu_math)
    net.load(url + "mobilenet_v1_1.0_224")
    from_folder.load(mobilenet_folder)
    np.testing.assert_array_equal(net.predict(x).get_values(), from_folder.predict(x).get_values())
    assert log[0] == "/mobilenet_v1_1.0_224/manifest.json"


def test_a_missing_checkpoint_is_an_error_naming_its_url(zoo: tuple[str, list[str]], cpu_math: dl.NDArrayMath) -> None:
    url, _ = zoo
    net = SqueezeNet(cpu_math)
    with pytest.raises(dl.DownloadError, match="squeezenet1_0/manifest.json"):
        net.load(url + "squeezenet1_0/")
    assert not net.is_loaded
