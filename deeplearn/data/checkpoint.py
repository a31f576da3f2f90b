"""CheckpointLoader and write_checkpoint: variables stored as a folder of raw little-endian files.

Format (deeplearn.js's, made by its ``dump_checkpoint_vars.py``): ``manifest.json`` maps each
variable name to ``{"filename": ..., "shape": [...]}``; each file holds the variable's values as
raw little-endian float32, row-major, with no header. An entry may also name its ``"dtype"``:
``"int32"`` (raw little-endian int32) or ``"bool"`` (one byte per value, 0 or 1). write_checkpoint
adds it for int32 and bool variables only, so a float32 checkpoint stays byte for byte
deeplearn.js's (whose loader reads every file as float32, and would misread the other two).
An entry may also carry a ``"sha256"`` (64 hex digits): the file's digest, checked when it is read
or downloaded.

A checkpoint is read from a local folder, or from an http(s) URL as deeplearn.js read its
checkpoint zoo: each file is downloaded once into the cache folder (``DEEPLEARN_CACHE``, default
``~/.cache/deeplearn``; see ``deeplearn/data/download.py``) and read from there afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import urllib.parse
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deeplearn import util
from deeplearn.data import download
from deeplearn.data.files import folder_lock, fsync_folder, write_atomic
from deeplearn.math.ndarray import NDArray

if TYPE_CHECKING:
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["MANIFEST_FILE", "CheckpointLoader", "write_checkpoint"]

MANIFEST_FILE = "manifest.json"

# A manifest is small: a server sending more than this is not sending one.
_MAX_MANIFEST_BYTES = 64 << 20
# How each dtype is laid out in a variable's file.
_ENCODINGS = {"float32": "<f4", "int32": "<i4", "bool": "|u1"}
# Every file write_checkpoint makes besides the checkpoint's own starts with this: its temporary
# files and its journal are recognisably ours, so a later write can remove them safely.
_OURS = ".dlckpt-"
_JOURNAL = f"{_OURS}journal.json"


class CheckpointLoader:
    """Reads the variables of a checkpoint folder, local or at an http(s) URL.

    Args:
        url_path: the folder (a path, or a ``file://`` URL), or an ``http://`` or ``https://``
            URL of one, as deeplearn.js's checkpoint zoo had: ``manifest.json`` and each file
            are fetched from under it.
        math: where the arrays are created (default: ``dl.ENV.math``).
        cache_dir: where a URL's files are kept (default: ``$DEEPLEARN_CACHE``, else
            ``~/.cache/deeplearn``); each checkpoint gets a folder ``checkpoints/<name>-<hash>``.
        progress: show a tqdm progress bar per download (the ``train`` extra); None shows one
            when stderr is a terminal and tqdm is installed.

    A variable's file must be a regular file in the folder (a link to a file outside it is
    refused) of exactly the size the manifest's shape and dtype give, and of the entry's
    ``"sha256"`` where it has one.

    From a URL, the manifest is downloaded on first use and each variable's file when it is
    first read; a file in the cache is never fetched again (the files at a URL are taken not to
    change: to fetch them anew, delete ``loader.path``). A download is checked (the length the
    server announced, the size the manifest gives, the ``"sha256"``) before it enters the cache,
    and an interrupted one is resumed with a Range request where the server allows it. Without
    a network, a file not in the cache is a ``DownloadError`` (an OSError, from
    ``deeplearn.data.download``) naming its URL. The manifest's file names must be plain names
    of letters, digits and ``._~-`` (not starting with ``.``), so that no entry can name a file
    outside the checkpoint.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> dl.write_checkpoint(folder, {"w": Array1D.new([1, 2, 3]), "step": NDArray.make([], 16777217, "int32")})
        >>> loader = dl.CheckpointLoader(folder)
        >>> loader.get_variable("w").get_values()
        array([1., 2., 3.], dtype=float32)
        >>> loader.get_variable("step").get(), loader.get_variable("step").dtype
        (16777217, 'int32')
        >>> zoo = "https://storage.googleapis.com/learnjs-data/checkpoint_zoo/squeezenet1_1/"
        >>> dl.CheckpointLoader(zoo).get_variable("conv1_W:0").shape  # doctest: +SKIP
        (3, 3, 3, 64)
    """

    def __init__(
        self,
        url_path: str | os.PathLike[str],
        math: NDArrayMath | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
    ) -> None:
        text = os.fspath(url_path)
        self.url: str | None = None  # the checkpoint's URL, ending in '/', when it is read over http(s)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) and not text.startswith("file://"):
            self.url = _checkpoint_url(text)
            self.path = _cache_folder(self.url, cache_dir)
        else:
            self.path = Path(text.removeprefix("file://"))
        self.math = math
        self.progress = progress
        self._manifest: dict[str, dict[str, Any]] | None = None

    def get_checkpoint_manifest(self) -> dict[str, dict[str, Any]]:
        """The parsed ``manifest.json``: {name: {"filename": str, "shape": [int, ...]}}, with
        ``"dtype"`` (and ``"sha256"``) where the entry names one."""
        if self._manifest is None:
            where = "CheckpointLoader"
            if self.url is not None:
                download.fetch(
                    self.url + MANIFEST_FILE,
                    self.path / MANIFEST_FILE,
                    where=where,
                    max_size=_MAX_MANIFEST_BYTES,
                    progress=self.progress,
                    check=lambda part: _check_url_names(_parse_manifest(part, where), where),
                )
            manifest = _read_manifest(self.path, where)
            if self.url is not None:
                _check_url_names(manifest, where)
            self._manifest = manifest
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
        if self.url is not None:
            download.fetch(
                self.url + entry["filename"],
                self.path / entry["filename"],
                where="CheckpointLoader.get_variable",
                size=np.dtype(_ENCODINGS[dtype]).itemsize * util.size_from_shape(shape),
                sha256=entry.get("sha256"),
                progress=self.progress,
            )
        values = _read_values(self.path, entry["filename"], name, shape, dtype, entry.get("sha256"))
        return NDArray.make(shape, values, dtype, math=self.math)


def _checkpoint_url(url: str) -> str:
    """The checkpoint's http(s) URL, ending in '/' (as deeplearn.js made it), checked."""
    where = "CheckpointLoader"
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise ValueError(
            f"{where}: url_path must be a local folder, a file:// URL or an http(s):// URL; got url_path={url!r}."
        )
    if download.check_http_url(url, where).query:
        raise ValueError(f"{where}: the checkpoint's URL must not have a query (?...); got url_path={url!r}.")
    return url if url.endswith("/") else url + "/"


def _cache_folder(url: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    """Where the checkpoint at ``url`` is cached: ``<cache>/checkpoints/<last segment>-<hash of
    the URL>`` (the name for people, the hash to keep URLs apart)."""
    root = Path(cache_dir) if cache_dir is not None else download.default_cache_dir()
    segment = urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9_-]", "_", segment)[:64] or "checkpoint"
    return root / "checkpoints" / f"{name}-{hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]}"


def _check_url_names(manifest: dict[str, dict[str, Any]], where: str) -> None:
    """Refuses a manifest (its entries already checked by _check_entry) with a file name that,
    appended to the checkpoint's URL, could mean anything but a file beside the manifest: only
    characters a URL takes as they are (no '/', '%', '?', '#', ':' or backslash), and no
    leading '.' (no '..', and nothing named like the downloader's partial files)."""
    for name, entry in manifest.items():
        filename = entry["filename"]
        if not re.fullmatch(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*", filename):
            raise ValueError(
                f"{where}: the file of {name!r} must be a plain name of letters, digits and '._~-', not starting "
                f"with '.', to be fetched from the checkpoint's URL; got {filename!r}."
            )


def _read_values(
    folder: Path, filename: str, name: str, shape: tuple[int, ...], dtype: str, sha256: str | None = None
) -> np.ndarray:
    """The values of one variable's file, checked before anything is read: the file must be a
    regular file inside ``folder`` of exactly the expected size (and digest, when one is given)."""
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
        raise FileNotFoundError(
            f"{where}: the file of variable {name!r} is missing; got path {str(file)!r}."
        ) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(
                f"{where}: the file of variable {name!r} must be a regular file; got {str(file)!r}."
            )
        itemsize = np.dtype(_ENCODINGS[dtype]).itemsize
        want = itemsize * util.size_from_shape(shape)
        if info.st_size != want:  # checked before reading: a huge file is never read whole
            raise ValueError(
                f"{where}: the file of variable {name!r} must hold {want} bytes ({dtype} of shape {shape}); "
                f"got {info.st_size} bytes in {str(file)!r} (a corrupt checkpoint?)."
            )
        raw = f.read(want)
    if sha256 is not None and (digest := hashlib.sha256(raw).hexdigest()) != sha256.lower():
        raise ValueError(
            f"{where}: the file of variable {name!r} must have SHA-256 {sha256.lower()}; got {digest} in "
            f"{str(file)!r} (a corrupt checkpoint?)."
        )
    if len(raw) != want:  # the file shrank while it was read
        raise ValueError(
            f"{where}: the file of variable {name!r} changed while it was read; got path {str(file)!r}."
        )
    values = np.frombuffer(raw, dtype=_ENCODINGS[dtype])
    if dtype == "bool" and values.size and values.max() > 1:
        raise ValueError(
            f"{where}: the file of bool variable {name!r} must hold bytes 0 and 1 only; got {int(values.max())} "
            f"in {str(file)!r} (a corrupt checkpoint?)."
        )
    return values.astype(util.numpy_dtype(dtype)).reshape(shape)  # type: ignore[arg-type]


def _read_manifest(folder: Path, where: str) -> dict[str, dict[str, Any]]:
    """The folder's manifest, its structure checked."""
    file = folder / MANIFEST_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"{where}: no {MANIFEST_FILE} in the checkpoint folder; got path {str(folder)!r}."
        )
    return _parse_manifest(file, where)


def _parse_manifest(file: Path, where: str) -> dict[str, dict[str, Any]]:
    """The manifest in ``file``, its structure checked: a corrupt file is a ValueError that
    says what is wrong, never a RecursionError or a KeyError later."""
    try:
        manifest = json.loads(file.read_bytes().decode("utf-8"))
    except RecursionError:
        raise ValueError(
            f"{where}: {str(file)!r} is not a checkpoint manifest (it is nested too deeply)."
        ) from None
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
    ok = (
        isinstance(entry, dict)
        and isinstance(entry.get("filename"), str)
        and isinstance(shape, list)
        and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        )  # JSON true is no size
        and isinstance(dtype, str)
        and dtype in _ENCODINGS
        and _is_digest(entry.get("sha256"))
    )
    if not ok:
        text = repr(entry)
        text = text if len(text) <= 200 else text[:200] + "..."
        raise ValueError(
            f"{where}: manifest entry {name!r} must be {{'filename': str, 'shape': [int >= 0, ...]}}, with an "
            f"optional 'dtype' of {sorted(_ENCODINGS)} and an optional 'sha256' of 64 hex digits; got {text}."
        )
    filename = entry["filename"]
    if not _is_plain_name(filename):
        raise ValueError(
            f"{where}: the file of {name!r} must be a plain file name inside the folder; got {filename!r}."
        )


def _is_digest(value: Any) -> bool:
    """Whether ``value`` is absent (None) or a SHA-256 digest in hex."""
    return value is None or (isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{64}", value) is not None)


def _is_plain_name(filename: str) -> bool:
    """A name of a file directly in the folder, and not one of the files write_checkpoint
    manages (the manifest, its temporary files and journal)."""
    return (
        Path(filename).name == filename
        and filename not in ("", ".", "..", MANIFEST_FILE)
        and "\0" not in filename
        and not filename.startswith(_OURS)
    )


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
        raise TypeError(
            f"{where}: variables must be a mapping of names to arrays; got {type(variables).__name__}."
        )
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
    with folder_lock(path):
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
    fsync_folder(path)  # the files are on disk before the manifest that names them
    _write_atomic(path / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True).encode())
    fsync_folder(path)
    for stale in old_files - new_files:
        _remove_file(path / stale)
    _remove_file(path / _JOURNAL)
    fsync_folder(path)


def _host_values(name: str, value: Any, where: str) -> tuple[np.ndarray, str]:
    """``value``'s values on the host and the dtype they are stored as."""
    if isinstance(value, NDArray):
        if value.dtype not in _ENCODINGS:
            raise ValueError(
                f"{where}: variable {name!r} must be one of {sorted(_ENCODINGS)}; got dtype {value.dtype}."
            )
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


def _write_atomic(target: Path, data: bytes) -> None:
    """``files.write_atomic`` with a temporary name of ours (the journal's clean-up knows them);
    the caller flushes the folder once its files are written."""
    tmp = target.parent / f"{_OURS}{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    write_atomic(target, data, tmp=tmp, sync_folder=False)


def _remove_file(file: Path) -> None:
    """Removes a file or link (never a folder); a file already gone, or one that cannot be
    removed, is left: the checkpoint is complete without it."""
    with contextlib.suppress(OSError):
        if not stat.S_ISDIR(os.lstat(file).st_mode):
            os.unlink(file)
