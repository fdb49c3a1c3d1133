"""Files that several processes share: atomic writes, exclusive lock files and digests.

The engine cache, the model zoo, the reference network and the bag tool all write files that a
node and a CLI may reach at the same moment; these helpers are how they do it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)
CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The file's sha256, read in chunks (models and bags can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and ``os.replace``: readers see the old file or
    the new one, never half of one; the temporary file is removed if anything fails."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            os.fchmod(stream.fileno(), 0o644)  # a file written by one user may serve another
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def exclusive_lock(path: Path, waiting: str) -> Iterator[None]:
    """Hold an ``flock`` on ``path`` (created if needed, and left in place: deleting it would race).

    Logs ``waiting`` when another process holds it. Raises OSError, before the body runs, when the
    lock file cannot be opened; where the file system has no locks, goes on unlocked with a warning
    (atomic writes still protect readers).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(waiting)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            log.warning("cannot lock %s (%s); going on without the lock", path, exc.strerror or exc)
        yield
    finally:
        os.close(fd)  # releases the lock
