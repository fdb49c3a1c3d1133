"""Unpacking a model archive without trusting it.

An archive comes from the network or a USB stick, so every member is checked
before anything is written: no absolute paths, no ``..``, no links that lead
out of the folder, no device files or fifos, no member or total size beyond a
cap. The checks are our own (Python 3.12's tarfile filters do not exist on
3.10), and members are written by hand rather than by ``tarfile.extract``.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..core.errors import ModelError


@dataclass(frozen=True)
class Limits:
    """Caps on what one archive may unpack to (a published model is about 45 MB)."""

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


def _inside(root: Path, relative: PurePosixPath, archive: Path, name: str) -> Path:
    """``root / relative``, refusing a path that passes through a link unpacked earlier."""
    current = root
    for part in relative.parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise ModelError(f"{archive}: member '{name}' lies behind the link '{current.relative_to(root)}'")
    return root / relative


def _link_target(archive: Path, member: tarfile.TarInfo, relative: PurePosixPath) -> PurePosixPath:
    """Where a symbolic link points, relative to the folder; refused when it leaves the folder."""
    target = PurePosixPath(member.linkname)
    joined = os.path.normpath(str(relative.parent / target))
    if target.is_absolute() or joined == ".." or joined.startswith("../"):
        raise ModelError(f"{archive}: link '{member.name}' -> '{member.linkname}' leads out of the folder")
    return PurePosixPath(joined)


def _unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, archive: Path) -> None:
    relative = _relative(archive, member.name)
    if not relative.parts or relative == PurePosixPath("."):
        return  # the folder itself
    target = _inside(root, relative, archive, member.name)
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
        linked = _inside(root, _relative(archive, member.linkname), archive, member.name)
        if linked.is_symlink() or not linked.is_file():
            raise ModelError(f"{archive}: hard link '{member.name}' -> '{member.linkname}' names no file before it")
        os.link(linked, target)
    else:
        kind = "fifo" if member.isfifo() else "device file" if member.isdev() else "special file"
        raise ModelError(f"{archive}: member '{member.name}' is a {kind}; a model archive holds only files")


def _check_links_resolve_inside(root: Path, archive: Path) -> None:
    """Links that each look harmless can still escape together (``b -> .``, ``a -> b/../../x``)."""
    real_root = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path) and os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
                link = os.path.relpath(path, root)
                raise ModelError(f"{archive}: link '{link}' -> '{os.readlink(path)}' leads out of the folder")


def extract(archive: Path, destination: Path, limits: Limits = Limits()) -> None:
    """Unpack ``archive`` (tar, optionally gzip-compressed) into the empty folder ``destination``."""
    if not archive.is_file():
        raise ModelError(f"{archive}: archive not found")
    total = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
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
    except (tarfile.TarError, EOFError, zlib.error, ValueError) as exc:
        raise ModelError(f"{archive}: damaged or truncated archive ({exc}); download it again") from None
    except OSError as exc:
        raise ModelError(f"{archive}: cannot unpack into {destination}: {exc.strerror or exc}") from None
    _check_links_resolve_inside(destination, archive)
