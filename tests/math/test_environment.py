"""ENV: backend choice, registered backends (deeplearn.js ENV.registerBackend / getBackend)."""

from __future__ import annotations

import pytest

import deeplearn as dl
from deeplearn.math.backends import MathBackendCPU, _FACTORIES


class _CountingCPU(MathBackendCPU):
    name = "counting-cpu"

    def __init__(self) -> None:
        self.calls = 0

    def execute(self, op, *arrays):  # type: ignore[no-untyped-def]
        self.calls += 1
        return super().execute(op, *arrays)


def test_a_registered_backend_runs_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_FACTORIES, "counting-cpu", _CountingCPU)  # undone after the test
    dl.ENV.register_backend("counting-cpu", _CountingCPU)
    math = dl.NDArrayMath("counting-cpu")
    y = math.add(dl.Array1D.new([1, 2], math=math), dl.Array1D.new([3, 4], math=math))
    assert y.get_values().tolist() == [4, 6] and math.backend.calls == 1  # type: ignore[attr-defined]
    monkeypatch.setenv("DEEPLEARN_BACKEND", "counting-cpu")
    assert dl.Environment().get_best_backend() == "counting-cpu"  # features are found once: a new ENV
    assert isinstance(dl.ENV.get_backend("counting-cpu"), _CountingCPU)


def test_unknown_backends_are_refused_with_the_known_names(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"create_backend: backend must be one of \['cpu', 'cuda'.*got 'tpu'"):
        dl.NDArrayMath("tpu")
    monkeypatch.setenv("DEEPLEARN_BACKEND", "tpu")
    with pytest.raises(ValueError, match="DEEPLEARN_BACKEND must be one of"):
        dl.Environment().get_best_backend()
    with pytest.raises(TypeError, match="factory must be callable"):
        dl.ENV.register_backend("x", 3)  # type: ignore[arg-type]


def test_features_are_found_once_and_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPLEARN_FLAGS", raising=False)
    monkeypatch.setenv("DEEPLEARN_BACKEND", "cpu")
    env = dl.Environment()
    assert env.get("WEBGL_VERSION") == 0 and env.get("WEBGL_FLOAT_TEXTURE_ENABLED") is False
    assert env.get("BACKEND") == "cpu" and env.get("DEBUG") is False
    assert env.get("CUDA_AVAILABLE") == (env.get("CUDA_DEVICE_NAME") is not None)
    monkeypatch.setenv("DEEPLEARN_BACKEND", "cuda")
    assert env.get("BACKEND") == "cpu", "remembered from the first time it was asked for"
    env.set_features({"DEBUG": True})
    assert env.get("DEBUG") is True and env.get("BACKEND") == "cuda"  # the others are found again
    env.set_features({"BACKEND": "cpu", "DEBUG": True})
    assert env.math.backend.name == "cpu" and env.math.engine.debug
    env.reset()
    monkeypatch.setenv("DEEPLEARN_BACKEND", "cpu")
    assert env.get("DEBUG") is False and not env.math.engine.debug
    with pytest.raises(ValueError, match=r"ENV.get: feature must be one of \[.*'WEBGL_VERSION'\]; got 'GPU'"):
        env.get("GPU")
    with pytest.raises(ValueError, match=r"ENV.set_features: features must be among .*; got \['gpu'\]"):
        env.set_features({"gpu": 1})


def test_deeplearn_flags_override_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """DEEPLEARN_FLAGS is deeplearn.js's ?dljsflags= URL parameter."""
    monkeypatch.setenv("DEEPLEARN_FLAGS", "DEBUG:true, BACKEND:cpu,WEBGL_VERSION:2")
    env = dl.Environment()
    assert env.get("DEBUG") is True and env.get("BACKEND") == "cpu" and env.get("WEBGL_VERSION") == 2
    assert env.math.engine.debug
    monkeypatch.setenv("DEEPLEARN_FLAGS", "DEBUG")
    with pytest.raises(ValueError, match="DEEPLEARN_FLAGS: each flag must be NAME:VALUE.*got 'DEBUG'"):
        dl.Environment().get("DEBUG")
    monkeypatch.setenv("DEEPLEARN_FLAGS", "BACKEND:tpu")
    with pytest.raises(ValueError, match="the BACKEND feature must be one of"):
        dl.Environment().get_best_backend()
