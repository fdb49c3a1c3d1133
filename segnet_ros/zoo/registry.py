"""Every FCN-ResNet18 model jetson-inference publishes, under every name it is known by.

The facts (sizes, class counts, folder names, addresses) are jetson-inference's;
keeping them in one table lets a name be checked, suggested and downloaded
without touching the network.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field

from ..core.errors import ModelError

URL_BASE_ENV = "SEGNET_ROS_MODEL_URL_BASE"
_BOX = "https://nvidia.box.com/shared/static/"


@dataclass(frozen=True)
class ZooModel:
    """One published model: what it recognises, its geometry, and where it comes from."""

    name: str
    family: str  # cityscapes, deepscene, mhp, voc or sun: the config/<family>.yaml it belongs to
    dataset: str
    width: int
    height: int
    grid_width: int
    grid_height: int
    classes: int
    dir: str  # the archive's top folder, and the folder name jetson-inference installs it under
    url: str
    aliases: tuple[str, ...] = field(default=())

    @property
    def archive(self) -> str:
        """The archive's file name on a mirror or a USB stick."""
        return f"{self.dir}.tar.gz"

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    def download_url(self, url_base: str | None = None) -> str:
        """The published address, or ``<base>/<archive>`` on a mirror (parameter, then environment)."""
        base = url_base or os.environ.get(URL_BASE_ENV)
        return f"{base.rstrip('/')}/{self.archive}" if base else self.url


def _model(name: str, family: str, dataset: str, size: tuple[int, int], grid: tuple[int, int], classes: int,
           folder: str, box_id: str, *aliases: str) -> ZooModel:
    return ZooModel(name, family, dataset, size[0], size[1], grid[0], grid[1], classes, folder,
                    f"{_BOX}{box_id}.gz", aliases)


MODELS: tuple[ZooModel, ...] = (
    _model("fcn-resnet18-cityscapes-512x256", "cityscapes", "Cityscapes", (512, 256), (16, 8), 21,
           "FCN-ResNet18-Cityscapes-512x256", "k7s7gdgi098309fndm2xbssj553vf71s", "fcn-resnet18-cityscapes"),
    _model("fcn-resnet18-cityscapes-1024x512", "cityscapes", "Cityscapes", (1024, 512), (32, 16), 21,
           "FCN-ResNet18-Cityscapes-1024x512", "9aqg4gpjmk7ipz4z0raa5mvs35om6emy"),
    _model("fcn-resnet18-cityscapes-2048x1024", "cityscapes", "Cityscapes", (2048, 1024), (64, 32), 21,
           "FCN-ResNet18-Cityscapes-2048x1024", "ylh3d2qk8qvitalq8sy803o7avrb6w0h"),
    _model("fcn-resnet18-deepscene-576x320", "deepscene", "DeepScene", (576, 320), (18, 10), 5,
           "FCN-ResNet18-DeepScene-576x320", "jm0zlezvweiimpzluohg6453s0u0nvcv", "fcn-resnet18-deepscene"),
    _model("fcn-resnet18-deepscene-864x480", "deepscene", "DeepScene", (864, 480), (27, 15), 5,
           "FCN-ResNet18-DeepScene-864x480", "gooux9b5nknk8wlk60ou9s2unpo760iq"),
    _model("fcn-resnet18-mhp-512x320", "mhp", "Multi-Human Parsing", (512, 320), (16, 10), 21,
           "FCN-ResNet18-MHP-512x320", "dgaw0ave3bdws1t5ed333ftx5dbpt9zv", "fcn-resnet18-mhp"),
    _model("fcn-resnet18-mhp-640x360", "mhp", "Multi-Human Parsing", (640, 360), (20, 12), 21,
           "FCN-ResNet18-MHP-640x360", "50mvlrjwbq9ugkmnnqp1sm99g2j21sfn"),
    _model("fcn-resnet18-voc-320x320", "voc", "Pascal VOC", (320, 320), (10, 10), 21,
           "FCN-ResNet18-Pascal-VOC-320x320", "p63pgrr6tm33tn23913gq6qvaiarydaj",
           "fcn-resnet18-voc", "fcn-resnet18-pascal-voc", "fcn-resnet18-pascal-voc-320x320"),
    _model("fcn-resnet18-voc-512x320", "voc", "Pascal VOC", (512, 320), (16, 10), 21,
           "FCN-ResNet18-Pascal-VOC-512x320", "njup7f3vu4mgju89kfre98olwljws5pk", "fcn-resnet18-pascal-voc-512x320"),
    _model("fcn-resnet18-sun-512x400", "sun", "SUN RGB-D", (512, 400), (16, 13), 21,
           "FCN-ResNet18-SUN-RGBD-512x400", "5vs9t2wah5axav11k8o3l9skb7yy3xgd",
           "fcn-resnet18-sun", "fcn-resnet18-sun-rgbd", "fcn-resnet18-sun-rgbd-512x400"),
    _model("fcn-resnet18-sun-640x512", "sun", "SUN RGB-D", (640, 512), (20, 16), 21,
           "FCN-ResNet18-SUN-RGBD-640x512", "z5llxysbcqd8zzzsm7vjqeihs7ihdw20", "fcn-resnet18-sun-rgbd-640x512"),
)


def normalize(name: str) -> str:
    """Names compare case-insensitively, with ``_`` and ``-`` the same."""
    return name.strip().lower().replace("_", "-")


def names() -> dict[str, ZooModel]:
    """Every accepted spelling (normalized) to its model: names, aliases and folder names."""
    index: dict[str, ZooModel] = {}
    for model in MODELS:
        for spelling in (model.name, *model.aliases, model.dir):
            index[normalize(spelling)] = model
    return index


def lookup(name: str) -> ZooModel:
    """The model called ``name``; an unknown name fails with the closest known names."""
    index = names()
    wanted = normalize(name)
    if wanted in index:
        return index[wanted]
    spellings = [normalize(s) for m in MODELS for s in (m.name, *m.aliases)] + ["reference"]
    close = difflib.get_close_matches(wanted, spellings, n=3, cutoff=0.6)
    close = close or [m.name for m in MODELS if wanted and wanted in m.name][:3]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ModelError(
        f"unknown network '{name}'; {hint}'segnet-ros models list' shows every model, "
        "'reference' or 'reference-WxH' is the untrained built-in, and --model PATH runs your own ONNX file"
    )
