"""Putting a model into the user's model folder, and taking it out again.

An archive is unpacked and validated in a private folder beside the target and
then renamed into place, under a per-model lock (``flock``), so a process that
looks never sees half a model and two processes installing the same model do
the work once: the second finds it installed. A private folder is locked by
its process for its whole life, so the next install can tell one left by a
process that was killed (which it deletes) from one in use (which it leaves).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.classes import parse_labels
from ..core.errors import ModelError
from ..core.model import ModelFiles, load_model
from ..files import exclusive_lock
from .archive import Limits, check_links_inside, extract
from .download import DownloadError, DownloadPolicy, ProgressCallback, fetch
from .locations import ONNX, OURS, Installed, model_dir
from .registry import ZooModel, names, normalize

REQUIRED = (ONNX, "classes.txt", "colors.txt")
INCOMING, REMOVING = ".incoming-", ".removing-"  # the private folders' name prefixes
log = logging.getLogger(__name__)


def install_command(model: ZooModel, explicit_dir: str | Path | None = None) -> str:
    """The command that installs ``model`` where a lookup with ``explicit_dir`` will find it."""
    return f"segnet-ros models download {model.name}" + (f" --model-dir {explicit_dir}" if explicit_dir else "")


def validate(folder: Path, model: ZooModel) -> None:
    """Accept ``folder`` as ``model`` only if its files exist and agree with the registry."""
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise ModelError(f"{model.name}: the archive lacks {', '.join(missing)}")
    loaded = load_model(ModelFiles.in_folder(folder, name=model.name))
    size = f"{loaded.input_width}x{loaded.input_height}"
    if size != model.resolution:
        raise ModelError(f"{model.name}: the network's input is {size}, but {model.name} is {model.resolution}")
    if loaded.num_classes != model.classes:
        raise ModelError(
            f"{model.name}: the network outputs {loaded.num_classes} classes, but {model.name} has {model.classes}")
    labels = len(parse_labels(folder / "classes.txt"))
    if labels != loaded.num_classes:
        raise ModelError(f"{model.name}: classes.txt names {labels} classes for a network with {loaded.num_classes}")


@contextmanager
def _writing(root: Path) -> Iterator[None]:
    """Turn a failure to write into the model folder into one clear error."""
    try:
        yield
    except OSError as exc:
        raise ModelError(f"cannot write into the model folder {root}: {exc.strerror or exc}") from None


def _locked(root: Path, model: ZooModel):
    """The model's lock in ``root``: one process at a time installs or removes it."""
    return exclusive_lock(root / f".{model.dir}.lock",
                          f"waiting for another process installing {model.name} to finish")


def _lock(fd: int) -> bool | None:
    """Try to flock the folder open as ``fd``: True when we hold it now, False when another process
    does, None where the file system has no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _open_folder(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # deleted meanwhile
        return None


@contextmanager
def _private_folder(root: Path, prefix: str) -> Iterator[Path]:
    """A new folder in ``root`` that this process alone uses, locked while it lives and deleted on exit."""
    while True:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
        fd = _open_folder(path)
        if fd is None:
            continue
        try:  # a sweep may have taken it between its creation and our lock; then take another
            if _lock(fd) is not False and os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def _sweep(root: Path) -> None:
    """Delete the private folders of processes that are gone (killed while unpacking, say): ours are locked."""
    for path in [*root.glob(f"{INCOMING}*"), *root.glob(f"{REMOVING}*")]:
        fd = _open_folder(path)
        if fd is None:
            continue
        try:
            if _lock(fd):
                shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


def _prepare(explicit_dir: str | Path | None) -> Path:
    """The model folder, created if need be, without what killed processes left in it."""
    root = model_dir(explicit_dir)
    with _writing(root):
        root.mkdir(parents=True, exist_ok=True)
        _sweep(root)
    return root


def _model_folder(staging: Path, archive: Path, model: ZooModel | None) -> tuple[Path, ZooModel]:
    """The unpacked model folder (the archive's one top folder, or its top level) and which model it is."""
    entries = list(staging.iterdir())
    if (staging / ONNX).exists():
        folder = staging
    elif len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        folder = entries[0]
    else:
        raise ModelError(f"{archive}: holds neither {ONNX} nor a single folder with it")
    if model is not None:
        return folder, model
    if folder is staging:
        raise ModelError(f"{archive}: holds its files at the top, not in a folder named after the model, so "
                         f"which model it is cannot be told; say it: segnet-ros models install {archive} --name NAME")
    model = names().get(normalize(folder.name))
    if model is None:
        raise ModelError(f"{archive}: cannot tell which model this is from its folder '{folder.name}'; "
                         f"say it: segnet-ros models install {archive} --name NAME")
    return folder, model


@contextmanager
def _staged(archive: Path, root: Path, model: ZooModel | None, limits: Limits) -> Iterator[tuple[Path, ZooModel]]:
    """Unpack and validate in a private folder beside the target: (the model folder, the model).

    Errors name files as members of ``archive``, never by the private folder's name.
    """
    with _private_folder(root, INCOMING) as staging:
        try:
            extract(archive, staging, limits)
            folder, model = _model_folder(staging, archive, model)
            check_links_inside(folder, staging, archive)
            validate(folder, model)
        except ModelError as exc:
            message = str(exc).replace(f"{staging}{os.sep}", f"{archive}, member ").replace(str(staging), str(root))
            raise ModelError(message) from None
        yield folder, model


def _commit(folder: Path, root: Path, model: ZooModel, replace: bool) -> Installed:
    """Rename ``folder`` into place; the caller holds the model's lock."""
    target = root / model.dir
    if (target / ONNX).is_file() and not replace:
        return Installed(model, target, OURS)
    folder.chmod(0o755)  # a flat archive's folder is the private one, made for its owner alone
    if os.path.lexists(target):  # replaced on request, or a leftover that holds no model
        with _private_folder(root, REMOVING) as old:
            os.rename(target, old / model.dir)
            os.rename(folder, target)
    else:
        os.rename(folder, target)
    return Installed(model, target, OURS, fresh=True)


def install_archive(archive: str | Path, model: ZooModel | None = None, explicit_dir: str | Path | None = None,
                    replace: bool = False, limits: Limits = Limits()) -> Installed:
    """Install a model archive from a file (the offline way); ``model`` defaults to the archive's folder name."""
    archive = Path(archive).expanduser()
    root = _prepare(explicit_dir)
    with _writing(root), _staged(archive, root, model, limits) as (folder, model), _locked(root, model):
        return _commit(folder, root, model, replace)


def download(model: ZooModel, explicit_dir: str | Path | None = None, url_base: str | None = None,
             policy: DownloadPolicy = DownloadPolicy(), progress: ProgressCallback | None = None,
             limits: Limits = Limits()) -> Installed:
    """Download ``model`` into the user's model folder unless it is there already."""
    root = _prepare(explicit_dir)
    url = model.download_url(url_base)
    with _writing(root), _locked(root, model):
        if (root / model.dir / ONNX).is_file():
            return Installed(model, root / model.dir, OURS)
        archive = root / f".{model.archive}"
        try:
            fetch(url, archive, policy, progress, limits.max_archive)
        except DownloadError as exc:
            raise DownloadError(
                f"{exc}. Without internet access, copy {model.archive} (from {url}) onto this machine "
                f"and run: segnet-ros models install {model.archive}") from None
        try:
            with _staged(archive, root, model, limits) as (folder, _):
                return _commit(folder, root, model, replace=False)
        finally:
            archive.unlink(missing_ok=True)


def remove(model: ZooModel, explicit_dir: str | Path | None = None) -> Path:
    """Delete ``model`` from the user's model folder (never from jetson-inference's)."""
    root = model_dir(explicit_dir)
    target = root / model.dir
    if not target.is_dir():
        raise ModelError(f"{model.name} is not installed in {root}")
    with _writing(root), _locked(root, model), _private_folder(root, REMOVING) as old:
        os.rename(target, old / model.dir)
    return target
