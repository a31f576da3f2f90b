"""CheckpointLoader and write_checkpoint: variables stored as a folder of raw little-endian files.

Format (deeplearn.js's, made by its ``dump_checkpoint_vars.py``): ``manifest.json`` maps each
variable name to ``{"filename": ..., "shape": [...]}``; each file holds the variable's values as
raw little-endian float32, row-major, with no header. An entry may also name its ``"dtype"``:
``"int32"`` (raw little-endian int32) or ``"bool"`` (one byte per value, 0 or 1). write_checkpoint
adds it for int32 and bool variables only, so a float32 checkpoint stays byte for byte
deeplearn.js's (whose loader reads every file as float32, and would misread the other two).
Only local folders are read (no network).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deeplearn import util
from deeplearn.math.ndarray import NDArray

try:
    import fcntl
except ImportError:  # Windows: writers are not serialised
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["MANIFEST_FILE", "CheckpointLoader", "write_checkpoint"]

MANIFEST_FILE = "manifest.json"

# How each dtype is laid out in a variable's file.
_ENCODINGS = {"float32": "<f4", "int32": "<i4", "bool": "|u1"}
# Every file write_checkpoint makes besides the checkpoint's own starts with this: its temporary
# files and its journal are recognisably ours, so a later write can remove them safely.
_OURS = ".dlckpt-"
_JOURNAL = f"{_OURS}journal.json"


class CheckpointLoader:
    """Reads the variables of a checkpoint folder.

    Args:
        url_path: the folder (a path, or a ``file://`` URL). deeplearn.js fetched it over HTTP;
            this loader reads local files only.
        math: where the arrays are created (default: ``dl.ENV.math``).

    A variable's file must be a regular file in the folder (a link to a file outside it is
    refused) of exactly the size the manifest's shape and dtype give.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> dl.write_checkpoint(folder, {"w": Array1D.new([1, 2, 3]), "step": NDArray.make([], 16777217, "int32")})
        >>> loader = dl.CheckpointLoader(folder)
        >>> loader.get_variable("w").get_values()
        array([1., 2., 3.], dtype=float32)
        >>> loader.get_variable("step").get(), loader.get_variable("step").dtype
        (16777217, 'int32')
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
        """The parsed ``manifest.json``: {name: {"filename": str, "shape": [int, ...]}}, with
        ``"dtype"`` where the entry names one."""
        if self._manifest is None:
            self._manifest = _read_manifest(self.path, "CheckpointLoader")
        return self._manifest

    def get_all_variables(self) -> dict[str, NDArray]:
        """Every variable of the checkpoint, as new NDArrays."""
        return {name: self.get_variable(name) for name in self.get_checkpoint_manifest()}

    def get_variable(self, name: str) -> NDArray:
        """One variable as a new NDArray of the manifest's shape and dtype (float32 when the
        entry names none, as in deeplearn.js's checkpoints)."""
        manifest = self.get_checkpoint_manifest()
        if name not in manifest:
            raise KeyError(
                f"CheckpointLoader.get_variable: no variable {name!r} in the checkpoint; got variables "
                f"{sorted(manifest)}."
            )
        entry = manifest[name]
        shape = tuple(entry["shape"])
        dtype = entry.get("dtype", "float32")
        values = _read_values(self.path, entry["filename"], name, shape, dtype)
        return NDArray.make(shape, values, dtype, math=self.math)


def _read_values(folder: Path, filename: str, name: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The values of one variable's file, checked before anything is read: the file must be a
    regular file inside ``folder`` of exactly the expected size."""
    where = "CheckpointLoader.get_variable"
    file = folder / filename
    if not os.path.lexists(file):
        raise FileNotFoundError(f"{where}: the file of variable {name!r} is missing; got path {str(file)!r}.")
    real = os.path.realpath(file)
    if os.path.commonpath([real, os.path.realpath(folder)]) != os.path.realpath(folder):
        raise ValueError(
            f"{where}: the file of variable {name!r} must be inside the checkpoint folder; got {str(file)!r}, "
            f"a link to {real!r}."
        )
    # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below as not a file).
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: the file of variable {name!r} is missing; got path {str(file)!r}.") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{where}: the file of variable {name!r} must be a regular file; got {str(file)!r}.")
        itemsize = np.dtype(_ENCODINGS[dtype]).itemsize
        want = itemsize * util.size_from_shape(shape)
        if info.st_size != want:  # checked before reading: a huge file is never read whole
            raise ValueError(
                f"{where}: the file of variable {name!r} must hold {want} bytes ({dtype} of shape {shape}); "
                f"got {info.st_size} bytes in {str(file)!r} (a corrupt checkpoint?)."
            )
        raw = f.read(want)
    if len(raw) != want:  # the file shrank while it was read
        raise ValueError(f"{where}: the file of variable {name!r} changed while it was read; got path {str(file)!r}.")
    values = np.frombuffer(raw, dtype=_ENCODINGS[dtype])
    if dtype == "bool" and values.size and values.max() > 1:
        raise ValueError(
            f"{where}: the file of bool variable {name!r} must hold bytes 0 and 1 only; got {int(values.max())} "
            f"in {str(file)!r} (a corrupt checkpoint?)."
        )
    return values.astype(util.numpy_dtype(dtype)).reshape(shape)  # type: ignore[arg-type]


def _read_manifest(folder: Path, where: str) -> dict[str, dict[str, Any]]:
    """The folder's manifest, its structure checked: a corrupt file is a ValueError that says
    what is wrong, never a RecursionError or a KeyError later."""
    file = folder / MANIFEST_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{where}: no {MANIFEST_FILE} in the checkpoint folder; got path {str(folder)!r}.")
    try:
        manifest = json.loads(file.read_bytes().decode("utf-8"))
    except RecursionError:
        raise ValueError(f"{where}: {str(file)!r} is not a checkpoint manifest (it is nested too deeply).") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, and ints of too many digits
        raise ValueError(f"{where}: {str(file)!r} is not valid JSON ({e}).") from e
    if not isinstance(manifest, dict):  # a corrupt file, not a bad argument: ValueError
        what = type(manifest).__name__
        raise ValueError(f"{where}: the manifest must be a JSON object; got {what}.")  # noqa: TRY004
    for name, entry in manifest.items():
        _check_entry(name, entry, where)
    return manifest


def _check_entry(name: str, entry: Any, where: str) -> None:
    shape = entry.get("shape") if isinstance(entry, dict) else None
    dtype = entry.get("dtype", "float32") if isinstance(entry, dict) else None
    ok = (isinstance(entry, dict) and isinstance(entry.get("filename"), str) and isinstance(shape, list)
          and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)  # JSON true is no size
          and isinstance(dtype, str) and dtype in _ENCODINGS)
    if not ok:
        text = repr(entry)
        text = text if len(text) <= 200 else text[:200] + "..."
        raise ValueError(
            f"{where}: manifest entry {name!r} must be {{'filename': str, 'shape': [int >= 0, ...]}}, with an "
            f"optional 'dtype' of {sorted(_ENCODINGS)}; got {text}."
        )
    filename = entry["filename"]
    if not _is_plain_name(filename):
        raise ValueError(f"{where}: the file of {name!r} must be a plain file name inside the folder; got {filename!r}.")


def _is_plain_name(filename: str) -> bool:
    """A name of a file directly in the folder, and not one of the files write_checkpoint
    manages (the manifest, its temporary files and journal)."""
    return (Path(filename).name == filename and filename not in ("", ".", "..", MANIFEST_FILE)
            and "\0" not in filename and not filename.startswith(_OURS))


def _file_name(name: str) -> str:
    """deeplearn.js's dump script: '/' becomes '_', other characters outside [A-Za-z0-9_] go."""
    return re.sub(r"[^A-Za-z0-9_]", "", name.replace("/", "_"))


def write_checkpoint(folder: str | os.PathLike[str], variables: Mapping[str, Any]) -> None:
    """Writes ``variables`` (NDArrays or array-likes) as a checkpoint CheckpointLoader reads.

    Each variable keeps its dtype: float32, int32 and bool NDArrays are stored as such (an int32
    16777217 reads back 16777217, not the float32 16777216); array-likes take bool for bools,
    int32 for integers (which must fit) and float32 otherwise.

    Nothing in the folder that is not this checkpoint's is touched. A variable's file is named
    as deeplearn.js's dump script names it (``dense/kernel:0`` -> ``dense_kernel0``) unless the
    folder already holds something of that name — an unrelated file, or a file of the previous
    checkpoint — and then gets a fresh suffix (``dense_kernel0_1f3a9c2b``); the manifest records
    the names. A folder whose ``manifest.json`` is not a checkpoint manifest is refused.

    Overwriting a checkpoint never destroys the previous one: every file is written to a
    temporary name in the folder, flushed to disk and renamed, and the manifest is replaced
    last, in one rename. Until then the old manifest and its files are intact; afterwards the
    files only the old manifest named are removed. A journal records the files of a write under
    way, so the next write removes what a killed one left (its files and temporary files);
    writers of one folder take turns (an exclusive lock, where the system has ``fcntl``).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> dl.write_checkpoint(folder, {"dense/kernel:0": Array1D.new([1, 2]), "count": 7})
        >>> dl.CheckpointLoader(folder).get_checkpoint_manifest()["dense/kernel:0"]
        {'filename': 'dense_kernel0', 'shape': [2]}
        >>> dl.CheckpointLoader(folder).get_variable("count").dtype
        'int32'
    """
    where = "write_checkpoint"
    if not isinstance(variables, Mapping):
        raise TypeError(f"{where}: variables must be a mapping of names to arrays; got {type(variables).__name__}.")
    # Everything is checked and converted before the folder is touched.
    prepared: list[tuple[str, str, np.ndarray, str]] = []  # (name, base file name, values, dtype)
    used: dict[str, str] = {}
    for name, value in variables.items():
        if not isinstance(name, str):
            raise TypeError(f"{where}: variable names must be str; got {name!r}.")
        base = _file_name(name)
        if not base or base == _file_name(MANIFEST_FILE):
            raise ValueError(f"{where}: variable name {name!r} gives no usable file name.")
        if base in used:
            raise ValueError(f"{where}: variables {used[base]!r} and {name!r} map to one file {base!r}.")
        used[base] = name
        prepared.append((name, base, *_host_values(name, value, where)))
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    with _exclusive(path):
        _remove_what_killed_writers_left(path)
        try:
            _write_locked(path, prepared, where)
        except BaseException:
            # What a killed writer would leave, this one removes at once (the manifest decides
            # which checkpoint stands: the old one unless the switch happened).
            with contextlib.suppress(Exception):
                _remove_what_killed_writers_left(path)
            raise


def _write_locked(path: Path, prepared: list[tuple[str, str, np.ndarray, str]], where: str) -> None:
    """write_checkpoint's steps, under the folder's lock: journal, variable files, manifest,
    then the previous checkpoint's files and the journal go."""
    old_files = _files_of_current_checkpoint(path, where)
    taken = set(os.listdir(path))
    token = uuid.uuid4().hex[:8]
    manifest: dict[str, dict[str, Any]] = {}
    for name, base, values, dtype in prepared:
        filename = base if base not in taken else _fresh_name(base, token, taken)
        taken.add(filename)
        manifest[name] = {"filename": filename, "shape": list(values.shape)}
        if dtype != "float32":  # float32 entries stay deeplearn.js's two keys
            manifest[name]["dtype"] = dtype
    new_files = {entry["filename"] for entry in manifest.values()}
    _write_atomic(path / _JOURNAL, json.dumps({"new": sorted(new_files), "old": sorted(old_files)}).encode())
    for name, _, values, dtype in prepared:
        _write_atomic(path / manifest[name]["filename"], values.astype(_ENCODINGS[dtype]).tobytes())
    _fsync_folder(path)  # the files are on disk before the manifest that names them
    _write_atomic(path / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True).encode())
    _fsync_folder(path)
    for stale in old_files - new_files:
        _remove_file(path / stale)
    _remove_file(path / _JOURNAL)
    _fsync_folder(path)


def _host_values(name: str, value: Any, where: str) -> tuple[np.ndarray, str]:
    """``value``'s values on the host and the dtype they are stored as."""
    if isinstance(value, NDArray):
        if value.dtype not in _ENCODINGS:
            raise ValueError(f"{where}: variable {name!r} must be one of {sorted(_ENCODINGS)}; got dtype {value.dtype}.")
        return value.numpy(), value.dtype
    array = np.asarray(value)
    if array.dtype.kind == "b":
        return array, "bool"
    if array.dtype.kind in "iu":
        info = np.iinfo(np.int32)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ValueError(
                f"{where}: the integers of variable {name!r} must fit in int32; got values in "
                f"[{array.min()}, {array.max()}]."
            )
        return array.astype(np.int32), "int32"
    if array.dtype.kind == "f":
        return array.astype(np.float32), "float32"
    raise ValueError(f"{where}: variable {name!r} must hold numbers or bools; got dtype {array.dtype}.")


def _fresh_name(base: str, token: str, taken: set[str]) -> str:
    filename, i = f"{base}_{token}", 1
    while filename in taken:
        filename, i = f"{base}_{token}_{i}", i + 1
    return filename


def _files_of_current_checkpoint(path: Path, where: str) -> set[str]:
    """The files the folder's manifest names (none without a manifest); a manifest.json that
    is not a checkpoint's is someone else's file: refused, not overwritten."""
    if not os.path.lexists(path / MANIFEST_FILE):
        return set()
    try:
        return {entry["filename"] for entry in _read_manifest(path, where).values()}
    except (ValueError, FileNotFoundError) as e:  # FileNotFoundError: manifest.json is not a file
        raise ValueError(
            f"{where}: the folder holds a {MANIFEST_FILE} that is not a checkpoint manifest, which would be "
            f"overwritten; move it or write elsewhere; got folder {str(path)!r} ({e})."
        ) from e


def _remove_what_killed_writers_left(path: Path) -> None:
    """Removes the temporary files of writes that never finished and, when the journal of one
    survives, the files it was writing or replacing that the current manifest does not name.
    Runs under the folder's lock, so no live writer owns any of them."""
    for entry in os.listdir(path):
        if entry.startswith(_OURS) and entry.endswith(".tmp"):
            _remove_file(path / entry)
    if not os.path.lexists(path / _JOURNAL):
        return
    try:
        journal = json.loads((path / _JOURNAL).read_bytes())
        listed = [f for key in ("new", "old") for f in journal[key]]
        named = _files_of_current_checkpoint(path, "write_checkpoint")
    except (ValueError, KeyError, TypeError, OSError, RecursionError):
        listed, named = [], set()  # an unreadable journal (or manifest): remove nothing it lists
    for filename in listed:
        if isinstance(filename, str) and _is_plain_name(filename) and filename not in named:
            _remove_file(path / filename)
    _remove_file(path / _JOURNAL)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on the folder (flock on the folder itself: no lock file to
    leave behind) where the system has one."""
    if fcntl is None:
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomic(target: Path, data: bytes) -> None:
    """Writes ``data`` to a temporary file next to ``target``, flushes it to disk and renames
    it over ``target``: readers see the old file or the whole new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{_OURS}{target.name}.", suffix=".tmp")
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


def _remove_file(file: Path) -> None:
    """Removes a file or link (never a folder); a file already gone, or one that cannot be
    removed, is left: the checkpoint is complete without it."""
    with contextlib.suppress(OSError):
        if not stat.S_ISDIR(os.lstat(file).st_mode):
            os.unlink(file)


def _fsync_folder(path: Path) -> None:
    """Flushes the folder's entries (the renames) to disk, where folders can be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
