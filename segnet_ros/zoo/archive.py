"""Unpacking a model archive without trusting it.

An archive comes from the network or a USB stick, so every member is checked
before anything is written: no absolute paths, no ``..``, no links that lead
out of the folder, no device files or fifos, no archive, member or total size
beyond a cap. The checks are our own (Python 3.12's tarfile filters do not
exist on 3.10), and members are written by hand rather than by ``tarfile.extract``.
Once unpacked, :func:`check_links_inside` is run on the folder that will be
installed, which may be one level below the folder unpacked into.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..core.errors import ModelError

_DAMAGED = (tarfile.TarError, EOFError, zlib.error, ValueError)  # what a bad archive makes tarfile raise
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")  # gzip, bzip2, xz: what tarfile's "r:*" reads


@dataclass(frozen=True)
class Limits:
    """Caps on one archive: its own size (a download is stopped there) and what it may unpack to
    (a published model is about 45 MB)."""

    max_archive: int = 2 << 30
    max_member: int = 1 << 30
    max_total: int = 2 << 30
    max_members: int = 1000


def _relative(archive: Path, name: str) -> PurePosixPath:
    """A member name as a path that stays inside the folder."""
    path = PurePosixPath(name)
    if path.is_absolute():
        raise ModelError(f"{archive}: member '{name}' has an absolute path; refusing to unpack it")
    if ".." in path.parts:
        raise ModelError(f"{archive}: member '{name}' climbs out of the folder with '..'; refusing to unpack it")
    return path


def _inside(root: Path, relative: PurePosixPath, archive: Path, subject: str) -> Path:
    """``root / relative``, refusing a path that passes through a link unpacked earlier."""
    current = root
    for part in relative.parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise ModelError(f"{archive}: {subject} lies behind the link '{current.relative_to(root)}'")
    return root / relative


def _link_target(archive: Path, member: tarfile.TarInfo, relative: PurePosixPath) -> PurePosixPath:
    """Where a symbolic link points, relative to the folder; refused when it leaves the folder."""
    target = PurePosixPath(member.linkname)
    joined = os.path.normpath(str(relative.parent / target))
    if target.is_absolute() or joined == ".." or joined.startswith("../"):
        raise ModelError(f"{archive}: link '{member.name}' -> '{member.linkname}' leads out of the folder")
    return PurePosixPath(joined)


def _hard_link_source(root: Path, archive: Path, member: tarfile.TarInfo) -> Path:
    """The earlier member a hard link names; every refusal names the link itself, not its target."""
    link = f"hard link '{member.name}' -> '{member.linkname}'"
    target = PurePosixPath(member.linkname)
    if target.is_absolute() or ".." in target.parts:
        raise ModelError(f"{archive}: {link} leads out of the folder")
    linked = _inside(root, target, archive, link)
    if linked.is_symlink() or not linked.is_file():
        raise ModelError(f"{archive}: {link} names no file before it")
    return linked


def _unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, archive: Path) -> None:
    relative = _relative(archive, member.name)
    if not relative.parts or relative == PurePosixPath("."):
        return  # the folder itself
    target = _inside(root, relative, archive, f"member '{member.name}'")
    if member.isdir():
        if not target.is_dir() or target.is_symlink():
            target.mkdir(mode=0o755, parents=True)
        return
    if os.path.lexists(target):
        raise ModelError(f"{archive}: member '{member.name}' appears twice")
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if member.isreg():
        source = tar.extractfile(member)
        with source, open(target, "xb") as out:
            shutil.copyfileobj(source, out)
        target.chmod(0o644)
    elif member.issym():
        _link_target(archive, member, relative)
        os.symlink(member.linkname, target)
    elif member.islnk():
        os.link(_hard_link_source(root, archive, member), target)
    else:
        kind = "fifo" if member.isfifo() else "device file" if member.isdev() else "special file"
        raise ModelError(f"{archive}: member '{member.name}' is a {kind}; a model archive holds only files")


def check_links_inside(folder: Path, unpacked: Path, archive: Path) -> None:
    """Refuse a link under ``folder`` that resolves outside it; links are named as members of the
    archive unpacked into ``unpacked``. Links that each look harmless can still escape together
    (``b -> .``, ``a -> b/../../x``), and one can stay in the archive yet leave the model's folder
    (``MODEL/up -> ..``)."""
    real_folder = os.path.realpath(folder)
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(parent, name)
            if os.path.islink(path) and os.path.commonpath([real_folder, os.path.realpath(path)]) != real_folder:
                link = os.path.relpath(path, unpacked)
                raise ModelError(f"{archive}: link '{link}' -> '{os.readlink(path)}' leads out of the model's folder")


def _unreadable(archive: Path) -> ModelError:
    """Why tarfile cannot open ``archive``, with the hint that fits: empty, damaged, or never an archive."""
    with open(archive, "rb") as stream:
        head = stream.read(512)
    if not head:
        return ModelError(f"{archive}: the file is empty, not a model archive; download the model's .tar.gz again")
    if head.startswith(_COMPRESSED) or head[257:262] == b"ustar":
        return ModelError(f"{archive}: damaged or truncated archive, or not a tar archive inside its compression; "
                          "download it again")
    return ModelError(f"{archive}: not a tar or tar.gz archive (it starts with {head[:16]!r}); "
                      "give the model's .tar.gz as published")


def _open(archive: Path, limits: Limits) -> tarfile.TarFile:
    """``archive`` opened for reading, or a ModelError that says what the file is instead."""
    try:
        size = archive.stat().st_size
        if size > limits.max_archive:
            raise ModelError(f"{archive}: {size} bytes, over the {limits.max_archive}-byte limit for a model archive")
        return tarfile.open(archive, "r:*")
    except _DAMAGED:
        raise _unreadable(archive) from None
    except OSError as exc:
        raise ModelError(f"{archive}: cannot read it: {exc.strerror or exc}") from None


def extract(archive: Path, destination: Path, limits: Limits = Limits()) -> None:
    """Unpack ``archive`` (tar, optionally gzip-compressed) into the empty folder ``destination``."""
    if not archive.is_file():
        raise ModelError(f"{archive}: archive not found")
    total = 0
    try:
        with _open(archive, limits) as tar:
            for count, member in enumerate(tar, start=1):
                if count > limits.max_members:
                    raise ModelError(f"{archive}: more than {limits.max_members} members; not a model archive")
                if member.size > limits.max_member:
                    raise ModelError(f"{archive}: member '{member.name}' is {member.size} bytes, "
                                     f"over the {limits.max_member}-byte limit")
                total += member.size
                if total > limits.max_total:
                    raise ModelError(f"{archive}: unpacks to more than {limits.max_total} bytes")
                _unpack_member(tar, member, destination, archive)
    except _DAMAGED as exc:
        raise ModelError(f"{archive}: damaged or truncated archive ({exc}); download it again") from None
    except OSError as exc:
        raise ModelError(f"{archive}: cannot unpack into {destination}: {exc.strerror or exc}") from None
    check_links_inside(destination, destination, archive)
