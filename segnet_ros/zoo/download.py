"""Fetching a model archive over HTTP(S) the way a robot on a flaky link needs it.

Streamed to ``<file>.part`` (so a model of 45 MB never sits in memory and a
half-written file is never mistaken for an archive), with connect and read
timeouts, a few retries with growing pauses, and resumption with an HTTP
``Range`` request where the server allows it. A body over the archive size
limit is refused before it is read when the server declares its size, and
stopped once it passes the limit when it does not. Proxies come from the usual
environment variables (urllib's default ``ProxyHandler`` stays in place).
"""

from __future__ import annotations

import functools
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ModelError
from .archive import Limits

ProgressCallback = Callable[[int, "int | None"], None]  # (bytes so far, total bytes or None)

CHUNK = 256 * 1024
GZIP_MAGIC = b"\x1f\x8b"
USER_AGENT = "segnet_ros-model-zoo"
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")
_RETRIED_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(ModelError):
    """A download failed for good (after retries, or for a reason no retry can fix)."""


class _Refused(DownloadError):
    """The server's file is refused for what it is (too big, not gzip): nothing of it is kept."""


class _Transient(Exception):
    """A failure worth another try: a dropped connection, a timeout, a busy server."""


@dataclass(frozen=True)
class DownloadPolicy:
    """How patient a download is."""

    connect_timeout: float = 15.0  # seconds to open the connection and send the request
    read_timeout: float = 60.0  # seconds any single read may wait for data
    retries: int = 4  # further attempts after the first
    backoff: float = 1.0  # pause before the first retry; doubled for each later one
    max_backoff: float = 30.0


class _ReadTimeout:
    """Connects within the connect timeout, then gives each read the read timeout."""

    def __init__(self, *args, read_timeout: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _HTTPConnection(_ReadTimeout, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_ReadTimeout, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self.read_timeout = read_timeout

    def http_open(self, req):
        return self.do_open(functools.partial(_HTTPConnection, read_timeout=self.read_timeout), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self.read_timeout = read_timeout

    def https_open(self, req):
        return self.do_open(functools.partial(_HTTPSConnection, read_timeout=self.read_timeout), req,
                            context=self._context)


def _opener(policy: DownloadPolicy) -> urllib.request.OpenerDirector:
    # build_opener keeps its default ProxyHandler, so http_proxy / https_proxy / no_proxy apply.
    return urllib.request.build_opener(_HTTPHandler(policy.read_timeout), _HTTPSHandler(policy.read_timeout))


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range`` header, each None where not given."""
    match = _CONTENT_RANGE.match(value or "")
    if match is None:
        return None, None
    first, total = match.groups()
    return (int(first) if first else None), (int(total) if total and total != "*" else None)


def _check_content_type(response, url: str) -> None:
    kind = (response.headers.get("Content-Type") or "").lower()
    if kind.startswith("text/") or any(word in kind for word in ("html", "json", "xml")):
        raise DownloadError(
            f"{url} answered with {kind.split(';')[0]}, not a model archive "
            "(a login page, an error page or a moved file?)")


def _attempt(opener, url: str, part: Path, policy: DownloadPolicy, progress: ProgressCallback | None,
             limit: int) -> None:
    """One request: resume ``part`` where possible; raise _Transient for what a retry may fix."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = opener.open(request, timeout=policy.connect_timeout)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code == 416 and offset:  # nothing left to send: complete, or a stale part file
                if _content_range(exc.headers.get("Content-Range"))[1] == offset:
                    return
                part.unlink()
                raise _Transient("the partial download no longer matches the file; starting again") from None
            if exc.code in _RETRIED_STATUS:
                raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
            if 300 <= exc.code < 400 and exc.headers.get("Location"):  # urllib's own message has newlines
                raise DownloadError(f"cannot download {url}: the server's redirects go round in a loop or are too "
                                    f"many (HTTP {exc.code})") from None
            raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _Transient(f"cannot reach {urllib.request.urlparse(url).netloc} ({exc.reason})") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(f"no answer from {urllib.request.urlparse(url).netloc} ({exc})") from None
    with response:
        _check_content_type(response, url)
        first, total = _content_range(response.headers.get("Content-Range"))
        if response.status == 206:
            if first != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"asked for bytes from {offset}, got a range from {first}; starting again")
            mode = "ab"
        else:  # the server ignored the Range header: start from the beginning
            length = response.headers.get("Content-Length")
            offset, mode = 0, "wb"
            total = int(length) if length and re.fullmatch(r"[0-9]+", length) else None  # not isdigit(): "²"
        if total is not None and total > limit:
            raise _Refused(f"{url} is {total} bytes, over the {limit}-byte limit for a model archive")
        done = offset
        with open(part, mode) as out:
            if progress is not None:
                progress(done, total)
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Transient(f"connection lost after {done} bytes ({exc})") from None
                if not chunk:
                    break
                if done == 0 and not chunk.startswith(GZIP_MAGIC):
                    raise _Refused(f"{url} is not a gzip archive (it starts with {chunk[:16]!r})")
                if done + len(chunk) > limit:
                    raise _Refused(f"{url} sends more than {limit} bytes, the limit for a model archive")
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    if total is not None and done != total:
        raise _Transient(f"connection closed after {done} of {total} bytes")


def fetch(url: str, destination: Path, policy: DownloadPolicy = DownloadPolicy(),
          progress: ProgressCallback | None = None, limit: int = Limits.max_archive) -> Path:
    """Download ``url`` to ``destination``, resuming a ``.part`` file left by an earlier attempt;
    a body over ``limit`` bytes is refused."""
    part = destination.with_name(destination.name + ".part")
    reason = ""
    for attempt in range(policy.retries + 1):
        if attempt:
            time.sleep(min(policy.backoff * 2 ** (attempt - 1), policy.max_backoff))
        try:
            _attempt(_opener(policy), url, part, policy, progress, limit)
        except _Transient as exc:
            reason = str(exc)
            continue
        except _Refused:
            part.unlink(missing_ok=True)
            raise
        except OSError as exc:
            raise DownloadError(f"cannot write {part}: {exc.strerror}") from None
        os.replace(part, destination)
        return destination
    tries = policy.retries + 1
    raise DownloadError(f"cannot download {url}: {reason} (gave up after {tries} attempt{'s' * (tries > 1)})")
