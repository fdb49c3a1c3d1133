"""Where installed models are looked for, in order, and which copy of a model wins.

First the user's model folder (ours: downloads and installs go there), then
the folders where jetson-inference already keeps the same models, which are
used in place so that a Jetson does not hold every model twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..paths import cache_dir
from .registry import ZooModel

MODELS_ENV = "SEGNET_ROS_MODELS"
JETSON_ROOT_ENV = "JETSON_INFERENCE_ROOT"
JETSON_NETWORKS_ENV = "SEGNET_ROS_JETSON_NETWORKS"
JETSON_NETWORKS = "/usr/local/bin/networks"  # where jetson-inference's `make install` puts its models
ONNX = "fcn_resnet18.onnx"
OURS = "segnet_ros"


@dataclass(frozen=True)
class Location:
    """A folder that holds model folders named like the archives' top folders."""

    root: Path
    owner: str  # OURS for the user's model folder, else who put models there


@dataclass(frozen=True)
class Installed:
    """A model found on disk."""

    model: ZooModel
    folder: Path
    owner: str
    fresh: bool = False  # installed by the call that returned it

    @property
    def ours(self) -> bool:
        return self.owner == OURS


def model_dir(explicit: str | Path | None = None) -> Path:
    """The user's model folder: the parameter, else ``$SEGNET_ROS_MODELS``, else the per-user cache."""
    chosen = explicit or os.environ.get(MODELS_ENV)
    return Path(chosen).expanduser() if chosen else cache_dir() / "models"


def locations(explicit: str | Path | None = None) -> list[Location]:
    """The folders searched for a model, first hit wins."""
    found = [Location(model_dir(explicit), OURS)]
    checkout = os.environ.get(JETSON_ROOT_ENV)
    if checkout:
        found.append(Location(Path(checkout).expanduser() / "data" / "networks", "jetson-inference"))
    system = os.environ.get(JETSON_NETWORKS_ENV) or JETSON_NETWORKS
    found.append(Location(Path(system).expanduser(), "jetson-inference install"))
    return found


def find(model: ZooModel, explicit_dir: str | Path | None = None) -> Installed | None:
    """The first copy of ``model`` on the search path, or None."""
    for location in locations(explicit_dir):
        folder = location.root / model.dir
        if (folder / ONNX).is_file():
            return Installed(model, folder, location.owner)
    return None
