"""ENV: backend choice, registered backends (deeplearn.js ENV.registerBackend / getBackend)."""

from __future__ import annotations

import re

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


@pytest.mark.parametrize(
    "text, expected",
    [("true", True), ("TRUE", True), ("1", True), ("Yes", True), ("false", False), ("False", False),
     ("0", False), ("no", False), ("NO", False), (" no ", False)],
)
def test_boolean_flags_are_parsed_strictly(monkeypatch: pytest.MonkeyPatch, text: str, expected: bool) -> None:
    """DEBUG:no must mean False: a flag's text is never used as a (truthy) string."""
    monkeypatch.setenv("DEEPLEARN_FLAGS", f"DEBUG:{text},BACKEND:cpu")
    env = dl.Environment()
    assert env.get("DEBUG") is expected
    assert env.math.engine.debug is expected


@pytest.mark.parametrize("text", ["maybe", "", "2", "on", "nope"])
def test_a_boolean_flag_of_any_other_text_is_an_error(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("DEEPLEARN_FLAGS", f"DEBUG:{text}")
    env = dl.Environment()
    message = f"DEEPLEARN_FLAGS: DEBUG must be true or false (or 1/0, yes/no); got DEBUG='{text}'."
    for _ in range(2):  # and again on the next read: a bad flag is never half applied
        with pytest.raises(ValueError, match=re.escape(message)):
            env.get("DEBUG")


def test_integer_flags_and_features_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPLEARN_FLAGS", "WEBGL_VERSION:two")
    with pytest.raises(ValueError, match=re.escape("DEEPLEARN_FLAGS: WEBGL_VERSION must be an integer; got WEBGL_VERSION='two'.")):
        dl.Environment().get("WEBGL_VERSION")
    monkeypatch.delenv("DEEPLEARN_FLAGS")
    env = dl.Environment()
    with pytest.raises(ValueError, match=re.escape("ENV.set_features: WEBGL_VERSION must be an integer; got WEBGL_VERSION=1.5.")):
        env.set_features({"WEBGL_VERSION": 1.5})


def test_set_features_parses_booleans_by_the_same_rule() -> None:
    env = dl.Environment()
    env.set_features({"BACKEND": "cpu", "DEBUG": "no"})
    assert env.get("DEBUG") is False and not env.math.engine.debug
    env.set_features({"DEBUG": 1})
    assert env.get("DEBUG") is True
    with pytest.raises(ValueError, match=re.escape("ENV.set_features: DEBUG must be true or false (or 1/0, yes/no); got DEBUG='off'.")):
        env.set_features({"DEBUG": "off"})
    assert env.get("DEBUG") is True  # a refused call changes nothing


def test_every_cpu_math_shares_one_backend_so_arrays_are_never_foreign_among_them() -> None:
    """An array made by one CPU math (dl.ENV.math, say) enters another CPU math's ops as its own:
    no conversion per op (a foreign array went through asarray and a floating-point guard on
    every call, twice the cost of the op)."""
    from deeplearn.math.backends import create_backend

    first, second = dl.NDArrayMathCPU(), dl.NDArrayMathCPU()
    assert first.backend is second.backend is create_backend("cpu")
    x = dl.Array1D.new([1.0, 2.0], math=first)
    y = second.add(x, x)
    assert y.storage.backend is x.storage.backend and y.get_values().tolist() == [2.0, 4.0]
