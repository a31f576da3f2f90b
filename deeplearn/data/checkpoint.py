"""CheckpointLoader and write_checkpoint: variables stored as a folder of raw float32 files.

Format (deeplearn.js's, made by its ``dump_checkpoint_vars.py``): ``manifest.json`` maps each
variable name to ``{"filename": ..., "shape": [...]}``; each file holds the variable's values as
raw little-endian float32, row-major, with no header. Only local folders are read (no network).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deeplearn import util
from deeplearn.math.ndarray import NDArray

if TYPE_CHECKING:
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["MANIFEST_FILE", "CheckpointLoader", "write_checkpoint"]

MANIFEST_FILE = "manifest.json"


class CheckpointLoader:
    """Reads the variables of a checkpoint folder.

    Args:
        url_path: the folder (a path, or a ``file://`` URL). deeplearn.js fetched it over HTTP;
            this loader reads local files only.
        math: where the arrays are created (default: ``dl.ENV.math``).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> dl.write_checkpoint(folder, {"w": Array1D.new([1, 2, 3])})
        >>> dl.CheckpointLoader(folder).get_variable("w").get_values()
        array([1., 2., 3.], dtype=float32)
    """

    def __init__(self, url_path: str | os.PathLike[str], math: NDArrayMath | None = None) -> None:
        text = os.fspath(url_path)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) and not text.startswith("file://"):
            raise ValueError(
                f"CheckpointLoader: only local folders can be read (no network access); got url_path={text!r}."
            )
        self.path = Path(text.removeprefix("file://"))
        self.math = math
        self._manifest: dict[str, dict[str, Any]] | None = None

    def get_checkpoint_manifest(self) -> dict[str, dict[str, Any]]:
        """The parsed ``manifest.json``: {name: {"filename": str, "shape": [int, ...]}}."""
        if self._manifest is None:
            self._manifest = _read_manifest(self.path)
        return self._manifest

    def get_all_variables(self) -> dict[str, NDArray]:
        """Every variable of the checkpoint, as new NDArrays."""
        return {name: self.get_variable(name) for name in self.get_checkpoint_manifest()}

    def get_variable(self, name: str) -> NDArray:
        """One variable as a new NDArray of the manifest's shape."""
        manifest = self.get_checkpoint_manifest()
        if name not in manifest:
            raise KeyError(
                f"CheckpointLoader.get_variable: no variable {name!r} in the checkpoint; got variables "
                f"{sorted(manifest)}."
            )
        entry = manifest[name]
        file = self.path / entry["filename"]
        if not file.is_file():
            raise FileNotFoundError(
                f"CheckpointLoader.get_variable: the file of variable {name!r} is missing; got path {str(file)!r}."
            )
        shape = tuple(entry["shape"])
        raw = file.read_bytes()
        want = 4 * util.size_from_shape(shape)
        if len(raw) != want:
            raise ValueError(
                f"CheckpointLoader.get_variable: the file of variable {name!r} must hold {want} bytes "
                f"(float32 of shape {shape}); got {len(raw)} bytes in {str(file)!r} (a corrupt checkpoint?)."
            )
        values = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        return NDArray.make(shape, values, "float32", math=self.math)


def _read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    file = folder / MANIFEST_FILE
    if not file.is_file():
        raise FileNotFoundError(f"CheckpointLoader: no {MANIFEST_FILE} in the checkpoint folder; got path {str(folder)!r}.")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"CheckpointLoader: {str(file)!r} is not valid JSON ({e}).") from e
    if not isinstance(manifest, dict):  # a corrupt file, not a bad argument: ValueError
        what = type(manifest).__name__
        raise ValueError(f"CheckpointLoader: the manifest must be a JSON object; got {what}.")  # noqa: TRY004
    for name, entry in manifest.items():
        ok = (isinstance(entry, dict) and isinstance(entry.get("filename"), str)
              and isinstance(entry.get("shape"), list) and all(isinstance(d, int) and d >= 0 for d in entry["shape"]))
        if not ok:
            raise ValueError(
                f"CheckpointLoader: manifest entry {name!r} must be {{'filename': str, 'shape': [int, ...]}}; got {entry!r}."
            )
        filename = entry["filename"]
        if Path(filename).name != filename or filename in ("", ".", ".."):
            raise ValueError(
                f"CheckpointLoader: the file of {name!r} must be a plain file name inside the folder; got {filename!r}."
            )
    return manifest


def _file_name(name: str) -> str:
    """deeplearn.js's dump script: '/' becomes '_', other characters outside [A-Za-z0-9_] go."""
    return re.sub(r"[^A-Za-z0-9_]", "", name.replace("/", "_"))


def write_checkpoint(folder: str | os.PathLike[str], variables: Mapping[str, Any]) -> None:
    """Writes ``variables`` (NDArrays or array-likes) as a checkpoint CheckpointLoader reads.

    Overwriting a checkpoint never destroys the previous one: the variable files of the new
    checkpoint never replace files the current manifest names (a file of the same name gets a
    fresh suffix instead), each file is written to a temporary name and renamed, and the
    manifest is replaced last, in one rename. Until then the old manifest and its files are
    intact; afterwards, the files only the old manifest named are removed.
    """
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    try:
        old_files = {entry["filename"] for entry in _read_manifest(path).values()}
    except (FileNotFoundError, ValueError):
        old_files = set()
    token = uuid.uuid4().hex[:8]
    manifest: dict[str, dict[str, Any]] = {}
    used: dict[str, str] = {}
    for name, value in variables.items():
        base = _file_name(name)
        if not base or base == _file_name(MANIFEST_FILE):
            raise ValueError(f"write_checkpoint: variable name {name!r} gives no usable file name.")
        if base in used:
            raise ValueError(f"write_checkpoint: variables {used[base]!r} and {name!r} map to one file {base!r}.")
        used[base] = name
        filename = base if base not in old_files else f"{base}_{token}"
        array = value.numpy() if isinstance(value, NDArray) else np.asarray(value)
        _write_atomic(path / filename, array.astype("<f4").tobytes())
        manifest[name] = {"filename": filename, "shape": list(array.shape)}
    _write_atomic(path / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True).encode())
    new_files = {entry["filename"] for entry in manifest.values()}
    for stale in old_files - new_files:
        (path / stale).unlink(missing_ok=True)


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
