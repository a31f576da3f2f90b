"""Downloads into a cache folder: once, checked, restartable (what CheckpointLoader uses for URLs).

A file is fetched over http(s) with the standard library (``urllib``) into the cache folder
(``DEEPLEARN_CACHE``, default ``~/.cache/deeplearn``) and is never fetched again once it is
there. The bytes go to a temporary file beside the target (``.dl-<name>.part``) and are renamed
onto it only when complete and checked (the length the server announced, and the size and SHA-256
the caller expects), so a cache file is always a whole, checked download. A partial download is
resumed with an HTTP Range request where the server allows it, else restarted. A failure to
reach the server is a DownloadError (an OSError) that names the URL and says the file is not in
the cache. A progress bar is shown through tqdm (the ``train`` extra) where it is installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import ipaddress
import os
import re
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from deeplearn.data.files import folder_lock, fsync_folder


__all__ = ["CACHE_ENV", "DownloadError", "check_http_url", "default_cache_dir", "download", "fetch"]

CACHE_ENV = "DEEPLEARN_CACHE"
_PART_PREFIX = ".dl-"
_CHUNK = 1 << 16
_TIMEOUT_S = 30.0


class DownloadError(OSError):
    """A file could not be downloaded (no connection, an HTTP error, a cut-off response), and
    the cache does not hold it."""


def default_cache_dir() -> Path:
    """The cache folder: ``$DEEPLEARN_CACHE`` when set, else ``~/.cache/deeplearn``.

    Example:
        >>> import os, pathlib, unittest.mock
        >>> with unittest.mock.patch.dict(os.environ, {"DEEPLEARN_CACHE": "/tmp/my-cache"}):
        ...     str(dl.data.download.default_cache_dir())
        '/tmp/my-cache'
        >>> with unittest.mock.patch.dict(os.environ, {"DEEPLEARN_CACHE": ""}):
        ...     dl.data.download.default_cache_dir() == pathlib.Path.home() / ".cache" / "deeplearn"
        True
    """
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "deeplearn"


def check_http_url(url: str, where: str) -> urllib.parse.SplitResult:
    """``url`` split, when it is an absolute http(s) URL with a host and without credentials or
    a fragment; else a ValueError that starts with ``where``.

    Example:
        >>> dl.data.download.check_http_url("https://example.com/ckpt/", "example").hostname
        'example.com'
        >>> dl.data.download.check_http_url("ftp://example.com/", "example")
        Traceback (most recent call last):
        ...
        ValueError: example: the URL must be an http:// or https:// URL with a host, and no credentials or fragment; got 'ftp://example.com/'.
    """
    parts = urllib.parse.urlsplit(url)
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.fragment
    ):
        raise ValueError(
            f"{where}: the URL must be an http:// or https:// URL with a host, and no credentials or fragment; "
            f"got {url!r}."
        )
    return parts


def download(
    url: str,
    *,
    size: int | None = None,
    sha256: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> Path:
    """Downloads ``url`` into the cache folder once, and returns the cached file's path.

    The file is ``<cache>/downloads/<hash of the URL>/<last segment of the URL>``; when it is
    there, no request is made. Otherwise see ``fetch``.

    Args:
        url: an http:// or https:// URL.
        size: the number of bytes the file must have (checked before it is cached).
        sha256: the hex SHA-256 digest the file must have (checked before it is cached).
        cache_dir: the cache folder (default: ``default_cache_dir()``).
        progress: show a tqdm progress bar (the ``train`` extra); None shows one when stderr
            is a terminal and tqdm is installed.

    Raises:
        DownloadError: the server could not be reached or answered with an error, or the
            response was cut off, and the file is not in the cache.
        ValueError: a bad argument, or the file is not of the expected size or digest.

    Example:
        >>> import functools, http.server, pathlib, tempfile, threading
        >>> served = tempfile.mkdtemp(); _ = (pathlib.Path(served) / "hello.txt").write_text("hi!")
        >>> class Quiet(http.server.SimpleHTTPRequestHandler):
        ...     def log_message(self, *args): pass
        >>> handler = functools.partial(Quiet, directory=served)
        >>> server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        >>> threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        >>> url = f"http://127.0.0.1:{server.server_port}/hello.txt"
        >>> path = dl.data.download.download(url, size=3, cache_dir=tempfile.mkdtemp())
        >>> path.name, path.read_text()
        ('hello.txt', 'hi!')
        >>> server.shutdown(); server.server_close()
    """
    where = "download"
    parts = check_http_url(url, where)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", parts.path.rsplit("/", 1)[-1]).lstrip(".") or "download"
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return fetch(
        url, folder / "downloads" / key / name, where=where, size=size, sha256=sha256, progress=progress
    )


def fetch(
    url: str,
    target: Path,
    *,
    where: str,
    size: int | None = None,
    sha256: str | None = None,
    max_size: int | None = None,
    check: Callable[[Path], None] | None = None,
    progress: bool | None = None,
) -> Path:
    """Makes ``target`` a checked copy of ``url``, downloading only when it is not there yet.

    The download goes to ``.dl-<name>.part`` beside ``target`` (resumed with a Range request
    when an earlier one left it, restarted when the server ignores the Range), is checked —
    the length the server announced, ``size`` (exact) or ``max_size`` (at most), ``sha256``,
    then ``check(part)``, which raises to refuse the file — and is renamed onto ``target``. A
    response cut off keeps its part for the next call to resume; a file that fails a check is
    deleted. Downloads into one folder take turns (a lock on the folder, where the system has
    ``fcntl``). ``where`` starts every error message (the caller's name).

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp()); _ = (folder / "cached").write_bytes(b"abc")
        >>> dl.data.download.fetch("http://127.0.0.1:9/none", folder / "cached", where="example", size=3).name
        'cached'
    """
    check_http_url(url, where)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"{where}: size must be an int >= 0 or None; got size={size!r}.")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", str(sha256)):
        raise ValueError(f"{where}: sha256 must be 64 hex digits or None; got sha256={sha256!r}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(target.parent):
        if _is_cached(target, size, where):
            return target
        part = target.with_name(f"{_PART_PREFIX}{target.name}.part")
        _download_part(url, part, where, size, max_size, progress)
        try:
            _check_part(url, part, where, size, sha256)
            if check is not None:
                check(part)
        except BaseException:
            _unlink(part)
            raise
        os.replace(part, target)
        fsync_folder(target.parent)
    return target


def _is_cached(target: Path, size: int | None, where: str) -> bool:
    """Whether ``target`` is there, a regular file of the expected size. A file of another
    size is not what was asked for: it is removed, to be downloaded again."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{where}: the cache entry {str(target)!r} must be a regular file; remove it.")
    if size is not None and info.st_size != size:
        _unlink(target)
        return False
    return True


def _download_part(
    url: str, part: Path, where: str, size: int | None, max_size: int | None, progress: bool | None
) -> None:
    """Completes ``part`` from ``url``, turning a failure to talk to the server into a
    DownloadError (the part is kept, to be resumed). A file larger than ``size`` or
    ``max_size`` is a ValueError, raised before its bytes are read (the part is deleted)."""
    try:
        _receive(url, part, where, size, max_size, progress)
    except ValueError:
        _unlink(part)
        raise
    except DownloadError:
        raise
    except urllib.error.HTTPError as e:
        raise DownloadError(
            f"{where}: {url} could not be downloaded (HTTP {e.code} {e.reason}), and it is not in the cache "
            f"folder {str(part.parent)!r}."
        ) from e
    except (
        OSError,
        http.client.HTTPException,
    ) as e:  # URLError, ConnectionError, TimeoutError, IncompleteRead
        reason = e.reason if isinstance(e, urllib.error.URLError) else f"{type(e).__name__}: {e}"
        raise DownloadError(
            f"{where}: {url} could not be downloaded ({reason}), and it is not in the cache folder "
            f"{str(part.parent)!r}; connect to the network and try again, or put the file there."
        ) from e


def _receive(
    url: str, part: Path, where: str, size: int | None, max_size: int | None, progress: bool | None
) -> None:
    """Resumes ``part`` with a Range request when it holds some bytes, and restarts it when the
    server sends the whole file instead (or refuses the Range)."""
    limit = size if size is not None else max_size
    offset = part.stat().st_size if part.exists() else 0
    if limit is not None and offset > limit:  # not a part of this file
        offset = 0
    response = _open(url, offset)
    if response is None:  # 416: nothing past the part (complete, or stale): restart
        offset, response = 0, _open(url, 0)
    with response:
        if response.status == 206 and offset:
            start, total = _content_range(response)
            if start != offset:
                _unlink(part)
                raise DownloadError(
                    f"{where}: {url} was resumed at byte {offset}, and the server must answer with the bytes from "
                    f"there; got Content-Range {response.headers.get('Content-Range')!r}; the next attempt restarts."
                )
        else:
            offset, total = 0, _content_length(response)  # the server ignored the Range (200): start again
        if total is not None and limit is not None and total > limit:
            must = f"{size}" if size is not None else f"at most {max_size}"
            raise ValueError(
                f"{where}: {url} must have {must} bytes; the server announced {total} (it is not cached)."
            )
        _stream(response, part, offset, total, limit, url, where, progress)


def _open(url: str, offset: int) -> Any:
    """The response to a GET of ``url``, asking for the bytes from ``offset`` on when it is
    > 0; None when the server answers that Range with 416. Proxies come from the environment,
    as urllib's do, except for this machine's own (loopback) addresses, which no proxy can reach."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity", "User-Agent": "deeplearn"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(urllib.parse.urlsplit(url).hostname) else []
    try:
        return urllib.request.build_opener(*handlers).open(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            e.close()
            return None
        raise


def _is_loopback(host: str | None) -> bool:
    if host is None or host.lower() == "localhost":
        return host is not None
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name
        return False


def _content_length(response: Any) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value is not None and value.strip().isdigit() else None


def _content_range(response: Any) -> tuple[int | None, int | None]:
    """Where a 206 answer's bytes start, and the whole file's length (None where the
    Content-Range header does not say)."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", response.headers.get("Content-Range", ""))
    if match is None:
        return None, None
    return int(match.group(1)), None if match.group(3) == "*" else int(match.group(3))


def _stream(
    response: Any,
    part: Path,
    offset: int,
    total: int | None,
    limit: int | None,
    url: str,
    where: str,
    progress: bool | None,
) -> None:
    """Appends the response's bytes to ``part`` (truncated to ``offset`` first) and checks that
    the announced ``total`` arrived."""
    received = offset
    with open(part, "r+b" if offset else "wb") as f, _progress_bar(progress, total, offset, part) as bar:
        f.truncate(offset)
        f.seek(offset)
        while chunk := response.read(_CHUNK):
            received += len(chunk)
            if limit is not None and received > limit:
                raise ValueError(
                    f"{where}: {url} must have at most {limit} bytes; got more (it is not cached)."
                )
            f.write(chunk)
            bar(len(chunk))
        f.flush()
        os.fsync(f.fileno())
    if total is not None and received != total:
        raise DownloadError(
            f"{where}: the response for {url} was cut off: {received} of {total} bytes arrived; the partial file "
            f"is kept out of the cache, and the next attempt resumes it."
        )


def _check_part(url: str, part: Path, where: str, size: int | None, sha256: str | None) -> None:
    """Checks a completed download before it enters the cache."""
    got = part.stat().st_size
    if size is not None and got != size:
        raise ValueError(f"{where}: {url} must have {size} bytes; got {got} bytes (it is not cached).")
    if sha256 is not None:
        digest = _sha256(part)
        if digest != sha256.lower():
            raise ValueError(
                f"{where}: {url} must have SHA-256 {sha256.lower()}; got {digest} (it is not cached)."
            )


def _sha256(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _progress_bar(
    progress: bool | None, total: int | None, initial: int, part: Path
) -> Iterator[Callable[[int], Any]]:
    """A function advancing a tqdm bar by n bytes (doing nothing when no bar is shown)."""
    show = progress if progress is not None else bool(getattr(sys.stderr, "isatty", lambda: False)())
    tqdm = _tqdm(progress) if show else None
    if tqdm is None:
        yield lambda n: None
        return
    name = part.name.removeprefix(_PART_PREFIX).removesuffix(".part")
    bar = tqdm(
        total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False
    )
    try:
        yield bar.update
    finally:
        bar.close()


def _tqdm(progress: bool | None) -> Any:
    try:
        from tqdm import tqdm  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        if progress:
            raise ImportError(
                "download: progress=True needs tqdm (pip install 'deeplearn[train]')."
            ) from None
        return None
    return tqdm


def _unlink(file: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(file)
