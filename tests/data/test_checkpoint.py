"""CheckpointLoader and write_checkpoint: deeplearn.js's manifest + raw float32 format, local only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, CheckpointLoader, NDArray, write_checkpoint


def test_reads_deeplearnjs_format(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({
        "fakeVar1": {"filename": "fakeFile1", "shape": [10]},
        "fakeVar2": {"filename": "fakeFile2", "shape": [5, 5]},
    }))
    (tmp_path / "fakeFile1").write_bytes(np.arange(10, dtype="<f4").tobytes())
    loader = CheckpointLoader(str(tmp_path))
    assert set(loader.get_checkpoint_manifest()) == {"fakeVar1", "fakeVar2"}
    v = loader.get_variable("fakeVar1")
    assert v.shape == (10,) and v.dtype == "float32"
    np.testing.assert_array_equal(v.get_values(), np.arange(10))
    with pytest.raises(KeyError, match="no variable 'nope' in the checkpoint"):
        loader.get_variable("nope")
    with pytest.raises(FileNotFoundError, match="the file of variable 'fakeVar2' is missing"):
        loader.get_variable("fakeVar2")
    assert CheckpointLoader(f"file://{tmp_path}").get_variable("fakeVar1").shape == (10,)


def test_round_trip_and_file_names(tmp_path: Path) -> None:
    variables = {"dense/kernel:0": NDArray.make([2, 3], np.arange(6)), "bias": Array1D.new([1.5, -2]),
                 "scalar": 3.0}
    write_checkpoint(tmp_path / "ckpt", variables)
    manifest = json.loads((tmp_path / "ckpt" / "manifest.json").read_text())
    assert manifest["dense/kernel:0"] == {"filename": "dense_kernel0", "shape": [2, 3]}
    loaded = CheckpointLoader(tmp_path / "ckpt").get_all_variables()
    np.testing.assert_array_equal(loaded["dense/kernel:0"].numpy(), np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(loaded["bias"].get_values(), [1.5, -2])
    assert loaded["scalar"].shape == () and loaded["scalar"].get() == 3.0
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.endswith(".tmp")]


def test_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_checkpoint(tmp_path, {"w": Array1D.new([1, 2])})

    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("deeplearn.data.checkpoint.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(tmp_path, {"w": Array1D.new([7, 8])})
    monkeypatch.undo()
    np.testing.assert_array_equal(CheckpointLoader(tmp_path).get_variable("w").get_values(), [1, 2])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_overwrite_interrupted_before_the_manifest_keeps_the_old_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every variable file of the new checkpoint is written, then the manifest rename fails: the
    old manifest must still load the old values (no file it names was replaced)."""
    write_checkpoint(tmp_path, {"w": Array1D.new([1, 2]), "b": Array1D.new([3])})
    real_replace = __import__("os").replace

    def fail_on_manifest(src: str, dst: object) -> None:
        if str(dst).endswith("manifest.json"):
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr("deeplearn.data.checkpoint.os.replace", fail_on_manifest)
    with pytest.raises(OSError, match="power cut"):
        write_checkpoint(tmp_path, {"w": Array1D.new([7, 8]), "b": Array1D.new([9])})
    monkeypatch.undo()
    old = CheckpointLoader(tmp_path).get_all_variables()
    assert old["w"].get_values().tolist() == [1, 2] and old["b"].get_values().tolist() == [3]
    write_checkpoint(tmp_path, {"w": Array1D.new([7, 8])})  # a complete overwrite replaces it
    assert CheckpointLoader(tmp_path).get_variable("w").get_values().tolist() == [7, 8]
    named = {e["filename"] for e in json.loads((tmp_path / "manifest.json").read_text()).values()}
    assert {p.name for p in tmp_path.iterdir() if p.name != "manifest.json" and not p.name.startswith(".")} >= named


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a local folder, a file:// URL or an http"):
        CheckpointLoader("ftp://storage.googleapis.com/learnjs-data/checkpoint_zoo/x")
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        CheckpointLoader(tmp_path).get_checkpoint_manifest()
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        CheckpointLoader(tmp_path).get_checkpoint_manifest()
    (tmp_path / "manifest.json").write_text(json.dumps({"w": {"filename": "../escape", "shape": [1]}}))
    with pytest.raises(ValueError, match="plain file name"):
        CheckpointLoader(tmp_path).get_checkpoint_manifest()
    (tmp_path / "manifest.json").write_text(json.dumps({"w": {"filename": "w", "shape": [3]}}))
    (tmp_path / "w").write_bytes(b"\0" * 8)
    with pytest.raises(ValueError, match="must hold 12 bytes .* got 8 bytes"):
        CheckpointLoader(tmp_path).get_variable("w")
    with pytest.raises(ValueError, match="map to one file"):
        write_checkpoint(tmp_path / "x", {"a/b": [1.0], "a_b": [2.0]})


def test_loaded_weights_drive_a_graph(tmp_path: Path, cpu_math: dl.NDArrayMath) -> None:
    write_checkpoint(tmp_path, {"w": NDArray.make([2, 2], [1, 2, 3, 4])})
    w_data = CheckpointLoader(tmp_path, cpu_math).get_variable("w")
    g = dl.Graph()
    x = g.placeholder("x", [2])
    y = g.matmul(x, g.variable("w", w_data))
    np.testing.assert_array_equal(dl.Session(g, cpu_math).eval(y, {x: Array1D.new([1, 1])}).get_values(), [4, 6])
