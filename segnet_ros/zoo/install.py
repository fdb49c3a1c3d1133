"""Putting a model into the user's model folder, and taking it out again.

An archive is unpacked and validated in a private folder beside the target and
then renamed into place, under a per-model lock (``flock``), so a process that
looks never sees half a model and two processes installing the same model do
the work once: the second finds it installed.
"""

from __future__ import annotations

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
from .archive import Limits, extract
from .download import DownloadError, DownloadPolicy, ProgressCallback, fetch
from .locations import ONNX, OURS, Installed, model_dir
from .registry import ZooModel, names, normalize

REQUIRED = (ONNX, "classes.txt", "colors.txt")
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


def _prepare(explicit_dir: str | Path | None) -> Path:
    root = model_dir(explicit_dir)
    with _writing(root):
        root.mkdir(parents=True, exist_ok=True)
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
    if model is None:
        model = names().get(normalize(folder.name)) if folder is not staging else None
        if model is None:
            raise ModelError(f"{archive}: cannot tell which model this is from its folder '{folder.name}'; "
                             f"say it: segnet-ros models install {archive} --name NAME")
    return folder, model


def _stage(archive: Path, root: Path, model: ZooModel | None, limits: Limits) -> tuple[Path, Path, ZooModel]:
    """Unpack and validate beside the target: (private folder to delete later, model folder, model)."""
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    try:
        extract(archive, staging, limits)
        folder, model = _model_folder(staging, archive, model)
        validate(folder, model)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging, folder, model


def _commit(folder: Path, root: Path, model: ZooModel, replace: bool) -> Installed:
    """Rename ``folder`` into place; the caller holds the model's lock."""
    target = root / model.dir
    if (target / ONNX).is_file() and not replace:
        return Installed(model, target, OURS)
    if os.path.lexists(target):  # replaced on request, or a leftover that holds no model
        old = Path(tempfile.mkdtemp(prefix=".removing-", dir=root))
        os.rename(target, old / model.dir)
        os.rename(folder, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(folder, target)
    return Installed(model, target, OURS, fresh=True)


def install_archive(archive: str | Path, model: ZooModel | None = None, explicit_dir: str | Path | None = None,
                    replace: bool = False, limits: Limits = Limits()) -> Installed:
    """Install a model archive from a file (the offline way); ``model`` defaults to the archive's folder name."""
    archive = Path(archive).expanduser()
    root = _prepare(explicit_dir)
    with _writing(root):
        staging, folder, model = _stage(archive, root, model, limits)
        try:
            with _locked(root, model):
                return _commit(folder, root, model, replace)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


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
            fetch(url, archive, policy, progress)
        except DownloadError as exc:
            raise DownloadError(
                f"{exc}. Without internet access, copy {model.archive} (from {url}) onto this machine "
                f"and run: segnet-ros models install {model.archive}") from None
        try:
            staging, folder, _ = _stage(archive, root, model, limits)
        finally:
            archive.unlink(missing_ok=True)
        try:
            return _commit(folder, root, model, replace=False)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def remove(model: ZooModel, explicit_dir: str | Path | None = None) -> Path:
    """Delete ``model`` from the user's model folder (never from jetson-inference's)."""
    root = model_dir(explicit_dir)
    target = root / model.dir
    if not target.is_dir():
        raise ModelError(f"{model.name} is not installed in {root}")
    with _writing(root), _locked(root, model):
        old = Path(tempfile.mkdtemp(prefix=".removing-", dir=root))
        os.rename(target, old / model.dir)
        shutil.rmtree(old, ignore_errors=True)
    return target
