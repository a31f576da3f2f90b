"""write_checkpoint and CheckpointLoader against what a folder may already hold and what a killed
writer leaves: unrelated files are never overwritten, dtypes survive, leftovers are cleaned,
links out of the folder and oversized or malformed files are refused (audit, issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, CheckpointLoader, NDArray, write_checkpoint


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_an_unrelated_file_named_like_a_variable_is_kept(tmp_path: Path) -> None:
    (tmp_path / "w").write_text("my notes")
    for values in ([1, 2], [3, 4]):  # a first write, and an overwrite
        write_checkpoint(tmp_path, {"w": Array1D.new(values)})
        assert (tmp_path / "w").read_text() == "my notes"
        filename = CheckpointLoader(tmp_path).get_checkpoint_manifest()["w"]["filename"]
        assert filename.startswith("w_") and _files(tmp_path) == {"w", filename, "manifest.json"}
        assert CheckpointLoader(tmp_path).get_variable("w").get_values().tolist() == values


@pytest.mark.parametrize("content", ['{"name": "my web app", "icons": []}', "[1, 2]", "{not json", None])
def test_a_manifest_json_of_someone_else_is_refused_and_kept(tmp_path: Path, content: str | None) -> None:
    manifest = tmp_path / "manifest.json"
    if content is None:
        manifest.mkdir()
    else:
        manifest.write_text(content)
    with pytest.raises(ValueError, match="write_checkpoint: the folder holds a manifest.json that is not a "
                                         "checkpoint manifest"):
        write_checkpoint(tmp_path, {"w": Array1D.new([1])})
    assert manifest.is_dir() if content is None else manifest.read_text() == content
    assert _files(tmp_path) == {"manifest.json"}  # nothing written


def test_dtypes_survive_the_round_trip(tmp_path: Path) -> None:
    variables = {
        "step": NDArray.make([], 16777217, "int32"),
        "ids": NDArray.make([3], [-(2**31), 0, 2**31 - 1], "int32"),
        "mask": NDArray.make([2, 2], [True, False, False, True], "bool"),
        "w": Array1D.new([0.1, -2.5]),
        "count": 7, "flags": [True, False], "big": np.array([2**31 - 1], np.int64), "lr": 0.5,
    }
    write_checkpoint(tmp_path, variables)
    loaded = CheckpointLoader(tmp_path).get_all_variables()
    assert {k: v.dtype for k, v in loaded.items()} == {
        "step": "int32", "ids": "int32", "mask": "bool", "w": "float32", "count": "int32", "flags": "bool",
        "big": "int32", "lr": "float32"}
    assert loaded["step"].get() == 16777217  # float32 would read 16777216
    assert loaded["ids"].get_values().tolist() == [-(2**31), 0, 2**31 - 1]
    assert loaded["mask"].numpy().tolist() == [[True, False], [False, True]]
    np.testing.assert_array_equal(loaded["w"].get_values(), np.array([0.1, -2.5], np.float32))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["w"] == {"filename": "w", "shape": [2]}  # float32: deeplearn.js's entry, byte for byte
    assert manifest["mask"]["dtype"] == "bool" and (tmp_path / "mask").read_bytes() == b"\x01\x00\x00\x01"
    assert (tmp_path / "step").read_bytes() == np.array(16777217, "<i4").tobytes()


def test_values_that_cannot_be_stored_are_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the integers of variable 'n' must fit in int32; got values in"):
        write_checkpoint(tmp_path / "a", {"ok": [1.0], "n": np.array([2**31])})
    with pytest.raises(ValueError, match="variable 's' must hold numbers or bools; got dtype <U2"):
        write_checkpoint(tmp_path / "a", {"s": ["ab"]})
    with pytest.raises(TypeError, match="variable names must be str; got 3"):
        write_checkpoint(tmp_path / "a", {3: [1.0]})  # type: ignore[dict-item]
    assert not (tmp_path / "a").exists()


_KILLED_WRITER = textwrap.dedent("""
    import os, sys
    import deeplearn as dl
    from deeplearn.data import checkpoint
    folder, when = sys.argv[1], sys.argv[2]
    real = os.replace
    def die(src, dst):
        if when == "before_manifest" and str(dst).endswith("manifest.json"):
            os._exit(9)  # killed: no handler runs, nothing is cleaned
        if when == "mid_file" and os.path.basename(dst).startswith("b"):  # w's file is in place, b's not
            os._exit(9)
        real(src, dst)
    checkpoint.os.replace = die
    dl.write_checkpoint(folder, {"w": dl.Array1D.new([7, 8]), "b": dl.Array1D.new([9])})
""")


@pytest.mark.parametrize("when", ["before_manifest", "mid_file"])
def test_what_a_killed_writer_leaves_is_removed_by_the_next_write(tmp_path: Path, when: str) -> None:
    write_checkpoint(tmp_path, {"w": Array1D.new([1, 2]), "b": Array1D.new([3]), "old": Array1D.new([0])})
    (tmp_path / "notes.tmp").write_text("mine")  # a user's .tmp file is not ours
    before = _files(tmp_path)
    result = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path), when], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 9, result.stderr
    assert _files(tmp_path) > before  # orphaned variable files, temporary files, the journal
    old = CheckpointLoader(tmp_path).get_all_variables()  # the previous checkpoint still stands
    assert old["w"].get_values().tolist() == [1, 2] and old["old"].get_values().tolist() == [0]
    write_checkpoint(tmp_path, {"w": Array1D.new([5, 6])})
    named = {e["filename"] for e in CheckpointLoader(tmp_path).get_checkpoint_manifest().values()}
    assert _files(tmp_path) == named | {"manifest.json", "notes.tmp"}
    assert CheckpointLoader(tmp_path).get_variable("w").get_values().tolist() == [5, 6]


def test_a_write_that_fails_cleans_up_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_checkpoint(tmp_path, {"w": Array1D.new([1, 2])})
    before = _files(tmp_path)
    real = os.replace

    def disk_full(src: str, dst: object) -> None:
        if str(dst).endswith("manifest.json"):
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr("deeplearn.data.checkpoint.os.replace", disk_full)
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(tmp_path, {"w": Array1D.new([3, 4]), "b": Array1D.new([5])})
    assert _files(tmp_path) == before


def test_writers_of_one_folder_take_turns(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for _ in range(10):
                write_checkpoint(tmp_path, {"w": Array1D.new([i, i]), f"v{i}": Array1D.new([i])})
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    loader = CheckpointLoader(tmp_path)
    variables = loader.get_all_variables()
    (i,) = [int(k[1:]) for k in variables if k.startswith("v")]
    assert variables["w"].get_values().tolist() == [i, i]
    assert _files(tmp_path) == {e["filename"] for e in loader.get_checkpoint_manifest().values()} | {"manifest.json"}


def _manifest(folder: Path, entries: dict[str, object]) -> None:
    (folder / "manifest.json").write_text(json.dumps(entries))


def test_a_link_out_of_the_folder_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(np.arange(2, dtype="<f4").tobytes())
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "w").symlink_to(secret)
    (folder / "inner").write_bytes(np.arange(2, dtype="<f4").tobytes())
    (folder / "alias").symlink_to("inner")
    _manifest(folder, {"w": {"filename": "w", "shape": [2]}, "a": {"filename": "alias", "shape": [2]}})
    with pytest.raises(ValueError, match="the file of variable 'w' must be inside the checkpoint folder; got .*a link to"):
        CheckpointLoader(folder).get_variable("w")
    assert CheckpointLoader(folder).get_variable("a").get_values().tolist() == [0, 1]  # a link inside is a file


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "w")
    _manifest(tmp_path, {"w": {"filename": "w", "shape": [1]}})
    with pytest.raises(ValueError, match="must be a regular file"):
        CheckpointLoader(tmp_path).get_variable("w")


def test_the_size_is_checked_before_reading(tmp_path: Path) -> None:
    with open(tmp_path / "w", "wb") as f:
        f.truncate(200_000_000)  # sparse: 200 MB declared, nothing on disk
    _manifest(tmp_path, {"w": {"filename": "w", "shape": [1]}})
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="must hold 4 bytes .float32 of shape .1,... got 200000000 bytes"):
            CheckpointLoader(tmp_path).get_variable("w")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000, f"{peak} bytes allocated: the file was read"


@pytest.mark.parametrize(("manifest", "message"), [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"w": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ({"w": {"filename": "w", "shape": [True, 4]}}, "manifest entry 'w' must be"),
    ({"w": {"filename": "w", "shape": [2.0]}}, "manifest entry 'w' must be"),
    ({"w": {"filename": "w", "shape": [-1]}}, "manifest entry 'w' must be"),
    ({"w": {"filename": "w", "shape": "2"}}, "manifest entry 'w' must be"),
    ({"w": {"filename": "w", "shape": [2], "dtype": "float64"}}, "optional 'dtype' of"),
    ({"w": {"filename": "w", "shape": [2], "dtype": ["int32"]}}, "optional 'dtype' of"),
    ({"w": {"filename": 3, "shape": [2]}}, "manifest entry 'w' must be"),
    ({"w": [1, 2]}, "manifest entry 'w' must be"),
    ({"w": {"filename": "manifest.json", "shape": [2]}}, "plain file name"),
    ({"w": {"filename": ".dlckpt-journal.json", "shape": [2]}}, "plain file name"),
    ({"w": {"filename": "a\u0000b", "shape": [2]}}, "plain file name"),
    ({"w": {"filename": "sub/w", "shape": [2]}}, "plain file name"),
    ("1" * 5000, "is not valid JSON"),
])
def test_malformed_manifests_give_a_clear_error(tmp_path: Path, manifest: object, message: str) -> None:
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ValueError, match=f"CheckpointLoader: .*{message}"):
        CheckpointLoader(tmp_path).get_checkpoint_manifest()


def test_a_bool_file_holds_zeros_and_ones(tmp_path: Path) -> None:
    (tmp_path / "m").write_bytes(b"\x00\x02")
    _manifest(tmp_path, {"m": {"filename": "m", "shape": [2], "dtype": "bool"}})
    with pytest.raises(ValueError, match="must hold bytes 0 and 1 only; got 2"):
        CheckpointLoader(tmp_path).get_variable("m")


def test_deeplearnjs_manifests_still_read_as_float32(tmp_path: Path, cpu_math: dl.NDArrayMath) -> None:
    (tmp_path / "k").write_bytes(np.array([16777216, 1.5], "<f4").tobytes())
    _manifest(tmp_path, {"k": {"filename": "k", "shape": [2]}})
    k = CheckpointLoader(tmp_path, cpu_math).get_variable("k")
    assert k.dtype == "float32" and k.get_values().tolist() == [16777216, 1.5]
