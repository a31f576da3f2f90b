"""Files that survive a crash: atomic writes, flushed folders, and turns between writers.

What the library writes (checkpoints, model files, downloads, ONNX models) goes to a temporary
file next to its target, is flushed to disk and renamed over the target, and the folder's entry
is flushed too: a reader sees the old file or the whole new one, and a crash at any point
leaves one of them. Writers of one folder take turns under an exclusive lock on the folder
itself (``flock``, where the system has it; nothing is left behind, and the system releases
the lock of a process that dies).

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_atomic(folder / "a.bin", b"abc")
    >>> (folder / "a.bin").read_bytes(), sorted(p.name for p in folder.iterdir())
    (b'abc', ['a.bin'])
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no folder locks (writers must not overlap there)
    fcntl = None  # type: ignore[assignment]

__all__ = ["folder_lock", "fsync_folder", "write_atomic"]

_CHUNK = 1 << 24  # bytes per write call: large buffers are written in pieces


def write_atomic(target: Path, data: bytes, tmp: Path | None = None, sync_folder: bool = True) -> None:
    """Writes ``data`` to ``tmp`` (a new file next to ``target``; by default a fresh hidden
    name), flushes it to disk and renames it over ``target``, which keeps its permissions if it
    existed; on any failure the temporary file is removed. ``sync_folder``: flush the folder's
    entries too (False when the caller flushes once after several writes)."""
    folder = target.parent
    if tmp is None:
        tmp = folder / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)  # the umask applies, as to any new file
    try:
        try:
            with contextlib.suppress(OSError):  # a file replaced keeps its permissions
                os.fchmod(fd, stat.S_IMODE(os.stat(target).st_mode))
            _write_chunks(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_folder:
        fsync_folder(folder)


def _write_chunks(fd: int, data: bytes) -> None:
    """Writes all of ``data`` to ``fd``, a chunk per call (the tests stand in for it to fail or
    to be killed midway)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view[:_CHUNK]) :]


def fsync_folder(folder: Path) -> None:
    """Flushes the folder's entries (renames, new files) to disk, where folders can be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``folder`` while the block runs (where the system has
    ``fcntl``; elsewhere the block runs unlocked)."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
