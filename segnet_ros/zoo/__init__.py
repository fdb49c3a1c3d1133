"""Model names to model files.

Knows every FCN-ResNet18 model jetson-inference publishes (``registry``), where
installed copies live (``locations``), how to fetch and install them
(``download``, ``archive``, ``install``), and the built-in reference network
(``reference`` or ``reference-WxH``), generated on first use into the user cache.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..core.errors import ModelError
from ..core.model import ModelFiles
from ..core.refnet import write_reference_model
from ..paths import cache_dir
from .install import download, install_command
from .locations import find
from .registry import MODELS, ZooModel, lookup

__all__ = ["DEFAULT_NETWORK", "MODELS", "ZooModel", "installed_or_reference", "lookup", "reference_files",
           "resolve_network"]

# One default model everywhere, the node's and every command's: a robot's street-level camera. What only
# shows or times the network (benchmark, make demo) falls back to the untrained reference network offline.
DEFAULT_NETWORK = "fcn-resnet18-cityscapes"
log = logging.getLogger(__name__)
REFERENCE_NAME = re.compile(r"^reference(?:-(\d+)x(\d+))?$")
REFERENCE_DEFAULT = (512, 256)
REFERENCE_CLASSES = 21


def reference_files(width: int = REFERENCE_DEFAULT[0], height: int = REFERENCE_DEFAULT[1]) -> ModelFiles:
    """The reference network for ``width`` x ``height``, written on first use."""
    if not (32 <= width <= 4096 and 32 <= height <= 4096):
        raise ModelError(f"reference network size {width}x{height} is out of range 32..4096")
    folder = cache_dir() / "reference" / f"reference-{width}x{height}"
    files = ModelFiles.in_folder(folder, name=f"reference-{width}x{height}")
    if not files.onnx.is_file():
        try:
            files = write_reference_model(folder, width, height, REFERENCE_CLASSES)
        except OSError as exc:
            raise ModelError(f"cannot write the reference network into {folder}: {exc.strerror}") from None
    return files


def installed_or_reference(name: str, model_dir: str | Path | None = None) -> str:
    """``name`` where it is installed, else ``reference``: for what only shows or times the network
    (benchmark, the demo), which must run offline."""
    try:
        resolve_network(name, model_dir)
    except ModelError:
        return "reference"
    return name


def resolve_network(name: str, model_dir: str | Path | None = None, auto_download: bool = False) -> ModelFiles:
    """The files of the network called ``name``: the reference network or an installed zoo model.

    ``model_dir`` is the user's model folder (default ``$SEGNET_ROS_MODELS``, else the user cache).
    A zoo model that is not installed is downloaded when ``auto_download`` is true; otherwise
    the error says which command installs it.
    """
    match = REFERENCE_NAME.match(name.strip().lower())
    if match is not None:
        if match.group(1):
            return reference_files(int(match.group(1)), int(match.group(2)))
        return reference_files()
    model = lookup(name)
    found = find(model, model_dir)
    if found is None:
        if not auto_download:
            raise ModelError(f"model {model.name} is not installed; install it with: "
                             f"{install_command(model, model_dir)}")
        log.info("downloading %s (auto_download) from %s", model.name, model.download_url())
        found = download(model, model_dir)
    return ModelFiles.in_folder(found.folder, name=model.name)
