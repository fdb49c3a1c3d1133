"""Where a many-bag job's bags come from and go to: local folders, or fsspec URLs (``s3://``, ``gs://``).

The output folder holds each bag under its own name, ``manifest.jsonl``, and a state folder
(:data:`STATE`) with a create-only ``done`` marker per bag, a ``pending`` note written just before a
bag is published, and (local folders only) the ``work`` folder bags are written in and the driver's
lock. Locally a bag is published by one rename (a folder appears whole or not at all). Object storage
has no rename: the bag is written locally, then uploaded with its ``metadata.yaml`` last (a rosbag2
folder without one is no bag), and the marker is created with a conditional put (``If-None-Match: *``
on S3), which fails where one exists. URLs need fsspec and the scheme's own package (s3fs, gcsfs);
without them, one line says what to install.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..files import sha256_file, write_atomic
from .typestore import BagError

STATE = ".segnet-ros"  # the job's own files inside the output folder
BAG_SUFFIXES = (".mcap", ".db3")
GLOB_MAGIC = ("*", "?", "[")
FSSPEC_MISSING = ("URLs need fsspec: pip install 'segnet_ros[fleet]' (and the storage's own package, e.g. "
                  "pip install s3fs for s3://)")


def is_url(text: str) -> bool:
    """A ``scheme://`` location (fsspec's), as opposed to a local path."""
    scheme, sep, _ = str(text).partition("://")
    return bool(sep) and scheme.replace("+", "").replace("-", "").isalnum() and len(scheme) > 1


def _fsspec(url: str):
    """(file system, path inside it) of ``url``; a missing fsspec or scheme package is one line."""
    try:
        import fsspec
    except ImportError:
        raise BagError(FSSPEC_MISSING) from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:  # fsspec knows the scheme, its package is not installed
        raise BagError(f"cannot open '{url}': {' '.join(str(exc).split())}") from None
    except ValueError as exc:  # an unknown scheme
        raise BagError(f"cannot open '{url}': {exc}") from None


def output_name(source: str) -> str:
    """The name a bag's output takes in the output folder: a folder's or an ``.mcap`` file's own name
    (an ``.mcap`` stays a single MCAP file), a ``.db3`` file's stem (its output is a rosbag2 folder)."""
    name = str(source).rstrip("/").rsplit("/", 1)[-1]
    return name[: -len(".db3")] if name.endswith(".db3") else name


def bag_digest(path: Path) -> str:
    """sha256 of a bag as the manifest gives it: a single file's own (``sha256sum``'s); a folder's, that of
    ``sha256sum``'s lines (``<sha256>  <relative path>``) for its files in the order of their paths."""
    if path.is_file():
        return sha256_file(path)
    files = sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file())
    return hashlib.sha256("".join(f"{sha256_file(p)}  {name}\n" for name, p in files).encode()).hexdigest()


# -- inputs ------------------------------------------------------------------------------------------------
def _local_bags(path: Path, given: str) -> list[str]:
    if path.is_file():
        if path.suffix not in BAG_SUFFIXES:
            raise BagError(f"'{given}' is not a rosbag2: give bag folders (with metadata.yaml), .mcap or .db3 files, "
                           "or folders of them")
        return [str(path)]
    if (path / "metadata.yaml").is_file():
        return [str(path)]
    if path.is_dir():
        found = [str(child) for child in sorted(path.iterdir())
                 if (child.is_dir() and (child / "metadata.yaml").is_file())
                 or (child.is_file() and child.suffix in BAG_SUFFIXES)]
        if not found:
            raise BagError(f"'{given}' is neither a bag (no metadata.yaml) nor a folder of bags (no bag folders, "
                           ".mcap or .db3 files in it)")
        return found
    raise BagError(f"bag '{given}' not found")


def _remote_bags(url: str) -> list[str]:
    fs, path = _fsspec(url)
    protocol = url.split("://", 1)[0]

    def as_url(p: str) -> str:
        return f"{protocol}://{p.lstrip('/')}" if protocol != "file" else f"file://{p}"

    paths = sorted(fs.glob(path)) if any(m in path for m in GLOB_MAGIC) else [path.rstrip("/")]
    found: list[str] = []
    for p in paths:
        if fs.isfile(p):
            if p.endswith(BAG_SUFFIXES):
                found.append(as_url(p))
        elif fs.exists(f"{p}/metadata.yaml"):
            found.append(as_url(p))
        elif fs.isdir(p):
            for entry in sorted(fs.ls(p, detail=True), key=lambda e: e["name"]):
                name = entry["name"].rstrip("/")
                bag_file = entry["type"] == "file" and name.endswith(BAG_SUFFIXES)
                if bag_file or (entry["type"] == "directory" and fs.exists(f"{name}/metadata.yaml")):
                    found.append(as_url(name))
    if not found:
        raise BagError(f"no bags at '{url}' (bag folders with metadata.yaml, .mcap or .db3 files)")
    return found


def find_bags(inputs: list[str]) -> list[str]:
    """Every bag the inputs name, in order, each once: a bag, a folder of bags, a glob, or a URL of any
    of these. A name that finds nothing is an error, before anything runs."""
    found: list[str] = []
    for given in inputs:
        if is_url(given):
            found += _remote_bags(given)
        elif any(m in given for m in GLOB_MAGIC) and not Path(given).expanduser().exists():
            matches = sorted(glob.glob(str(Path(given).expanduser())))
            if not matches:
                raise BagError(f"no bags match '{given}'")
            for match in matches:
                found += _local_bags(Path(match), match)
        else:
            found += _local_bags(Path(given).expanduser(), given)
    return list(dict.fromkeys(found))


@contextlib.contextmanager
def staged(source: str) -> Iterator[Path]:
    """The bag as a local path: a local one as it is, a URL's downloaded into a temporary folder for the
    time of the block (rosbags' writer and our reader threads want a local file)."""
    if not is_url(source):
        yield Path(source)
        return
    fs, path = _fsspec(source)
    folder = Path(tempfile.mkdtemp(prefix="segnet-ros-in-"))
    try:
        local = folder / path.rstrip("/").rsplit("/", 1)[-1]
        try:
            if fs.isdir(path):
                fs.get(path.rstrip("/") + "/", str(local), recursive=True)
            else:
                fs.get_file(path, str(local))
        except FileNotFoundError:
            raise BagError(f"bag '{source}' not found") from None
        except OSError as exc:
            raise BagError(f"cannot download bag '{source}': {exc}") from None
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- the output folder -----------------------------------------------------------------------------------
class OutputDir:
    """The output folder of a many-bag job; :func:`output_dir` picks the local or the remote kind."""

    location: str  # as given, for messages

    def child(self, name: str) -> str:
        """Where ``name`` is, as a path or URL to print."""
        return f"{self.location.rstrip('/')}/{name}"

    # each kind implements these
    def prepare(self) -> None:
        """Create the folder and its state folder."""

    def read(self, relative: str) -> bytes | None:
        raise NotImplementedError

    def exists(self, relative: str) -> bool:
        raise NotImplementedError

    def listing(self, relative: str) -> set[str]:
        """The names in a folder (none where it is missing)."""
        raise NotImplementedError

    def write(self, relative: str, data: bytes) -> None:
        """Replace the whole file; readers see the old one or the new one."""
        raise NotImplementedError

    def create(self, relative: str, data: bytes) -> bool:
        """Create the file with ``data`` unless it exists (then False); never a half file."""
        raise NotImplementedError

    def remove(self, relative: str) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def work(self, name: str) -> Iterator[Path]:
        """A private local folder to write ``name`` in, removed after the block."""
        raise NotImplementedError
        yield

    def publish(self, made: Path, name: str) -> None:
        """Put the finished bag ``made`` at ``name``, replacing what is there (the caller has made sure
        that is an earlier attempt's, never someone else's)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held by the driver for the whole run: one job at a time writes here."""
        yield

    def clean_work(self) -> None:
        """Remove what killed attempts left in the work folder (the driver, holding the lock)."""


class LocalDir(OutputDir):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.location = str(path)
        self.state = self.path / STATE

    def prepare(self) -> None:
        try:
            for folder in ("done", "pending", "work"):
                (self.state / folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BagError(f"cannot create output folder '{self.location}': {exc.strerror or exc}") from None

    def read(self, relative: str) -> bytes | None:
        try:
            return (self.path / relative).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, relative: str) -> bool:
        target = self.path / relative
        return target.exists() or target.is_symlink()

    def listing(self, relative: str) -> set[str]:
        folder = self.path / relative
        return {entry.name for entry in folder.iterdir()} if folder.is_dir() else set()

    def write(self, relative: str, data: bytes) -> None:
        write_atomic(self.path / relative, data)

    def create(self, relative: str, data: bytes) -> bool:
        """Written aside, then hard-linked into place: link() fails where the name exists, and the file
        is complete when it appears."""
        target = self.path / relative
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            try:
                os.link(temporary, target)
            except FileExistsError:
                return False
            return True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)

    def remove(self, relative: str) -> None:
        target = self.path / relative
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)

    @contextlib.contextmanager
    def work(self, name: str) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(dir=self.state / "work", prefix=f"{name}."))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def publish(self, made: Path, name: str) -> None:
        target = self.path / name
        try:
            if target.exists() or target.is_symlink():  # an earlier attempt's, published but not marked
                aside = made.parent / f"{name}.replaced"
                os.rename(target, aside)
            os.rename(made, target)  # a folder: fails if another attempt published one meanwhile
        except OSError as exc:
            raise BagError(f"cannot publish '{target}': {exc.strerror or exc}") from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        fd = os.open(self.state / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BagError(f"another segnet-ros bag is writing to '{self.location}'; wait for it, or choose "
                               "another --output-dir") from None
            except OSError:
                pass  # a file system without locks: one job at a time is then the user's to keep
            yield
        finally:
            os.close(fd)

    def clean_work(self) -> None:
        work = self.state / "work"
        for entry in list(work.iterdir()) if work.is_dir() else []:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


class RemoteDir(OutputDir):
    """An fsspec URL. Bags are written in a local temporary folder and uploaded."""

    def __init__(self, url: str) -> None:
        self.location = url
        self.fs, self.root = _fsspec(url)
        self.root = self.root.rstrip("/")

    def __getstate__(self) -> dict:  # a worker opens its own connection
        return {"location": self.location}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["location"])

    def _path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def _errors(self, what: str):
        return _RemoteErrors(what, self.location)

    def prepare(self) -> None:
        with self._errors("create the output folder"):
            self.fs.makedirs(self._path(f"{STATE}/done"), exist_ok=True)
            self.fs.makedirs(self._path(f"{STATE}/pending"), exist_ok=True)

    def read(self, relative: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(relative))
        except FileNotFoundError:
            return None

    def exists(self, relative: str) -> bool:
        with self._errors("read the output folder"):
            return self.fs.exists(self._path(relative))

    def listing(self, relative: str) -> set[str]:
        try:
            return {entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(self._path(relative), detail=False)}
        except FileNotFoundError:
            return set()

    def write(self, relative: str, data: bytes) -> None:
        with self._errors(f"write {relative}"):
            self.fs.pipe_file(self._path(relative), data)

    def create(self, relative: str, data: bytes) -> bool:
        """fsspec's create mode: a conditional put on S3 (If-None-Match: *), an exclusive open elsewhere."""
        try:
            self.fs.pipe_file(self._path(relative), data, mode="create")
        except FileExistsError:
            return False
        except OSError as exc:
            if "PreconditionFailed" in str(exc) or "412" in str(exc):
                return False
            raise BagError(f"cannot write {relative} in '{self.location}': {exc}") from None
        return True

    def remove(self, relative: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(relative), recursive=True)

    @contextlib.contextmanager
    def work(self, name: str) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix=f"segnet-ros-{name}."))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def publish(self, made: Path, name: str) -> None:
        """Upload ``made``; a folder's metadata.yaml last, so it is a bag only once every file is there."""
        target = self._path(name)
        with self._errors(f"upload {name}"):
            if self.fs.exists(target):  # an earlier attempt's: nothing of it may stay
                self.fs.rm(target, recursive=True)
            if made.is_file():
                self.fs.put_file(str(made), target)
                return
            files = sorted((p for p in made.rglob("*") if p.is_file()), key=lambda p: p.name == "metadata.yaml")
            for path in files:
                remote = f"{target}/{path.relative_to(made).as_posix()}"
                self.fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)  # object stores: nothing to make
                self.fs.put_file(str(path), remote)


class _RemoteErrors(contextlib.AbstractContextManager):
    """A storage failure as one BagError that says what could not be done where."""

    def __init__(self, what: str, location: str) -> None:
        self.what, self.location = what, location

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is not None and isinstance(exc, OSError):
            raise BagError(f"cannot {self.what} in '{self.location}': {' '.join(str(exc).split())}") from None
        return False


def output_dir(location: str) -> OutputDir:
    return RemoteDir(location) if is_url(location) else LocalDir(location)
