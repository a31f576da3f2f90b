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
    assert dl.ENV.get_best_backend() == "counting-cpu"
    assert isinstance(dl.ENV.get_backend("counting-cpu"), _CountingCPU)


def test_unknown_backends_are_refused_with_the_known_names(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"create_backend: backend must be one of \['cpu', 'cuda'.*got 'tpu'"):
        dl.NDArrayMath("tpu")
    monkeypatch.setenv("DEEPLEARN_BACKEND", "tpu")
    with pytest.raises(ValueError, match="DEEPLEARN_BACKEND must be one of"):
        dl.ENV.get_best_backend()
    with pytest.raises(TypeError, match="factory must be callable"):
        dl.ENV.register_backend("x", 3)  # type: ignore[arg-type]
