"""The message types the bag tool reads and writes: rosbags' own store, plus vision_msgs.

rosbags carries the ROS 2 definitions of sensor_msgs and std_msgs. vision_msgs (label_info) is
not among them, so its two types are registered from the same .msg files that ``msgs/build.sh``
builds for the node: the bag then carries the real definitions and RIHS01 hashes, and
``ros2 bag play`` and Foxglove read it.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

from ..core.errors import SegnetError

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
STRING = "std_msgs/msg/String"
UINT32_ARRAY = "std_msgs/msg/UInt32MultiArray"
LABEL_INFO = "vision_msgs/msg/LabelInfo"
VISION_CLASS = "vision_msgs/msg/VisionClass"
# Humble's store: the oldest distro we support. Every type written here has the same definition
# (and so the same RIHS01 hash) in Humble, Jazzy and Kilted; test_bag_ros.py checks that against
# the installed ROS wheels.
STORE = "ros2_humble"
ROSBAGS_MISSING = ("segnet-ros bag needs the rosbags package: pip install 'segnet_ros[bag]' "
                   "(or pip install 'rosbags>=0.11')")


class BagError(SegnetError):
    """A bag that cannot be read or written; the message says which and why."""


def rosbags_version() -> str:
    """The installed rosbags' version, or BagError when it is missing or too old."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        import rosbags.rosbag2  # noqa: F401
        import rosbags.typesys  # noqa: F401
    except ImportError:
        raise BagError(ROSBAGS_MISSING) from None
    try:
        installed = version("rosbags")
    except PackageNotFoundError:
        installed = "unknown"
    try:
        from rosbags.interfaces import Qos  # noqa: F401  (0.11's QoS objects; 0.10 had strings)
    except ImportError:
        raise BagError(f"rosbags {installed} is too old for segnet-ros bag: pip install 'rosbags>=0.11'") from None
    return installed


def vision_msgs_folders() -> list[Path]:
    """Where LabelInfo.msg and VisionClass.msg are looked for, first hit wins: this source tree's
    msgs/, the installed package's share folder, then every ROS prefix (a real vision_msgs)."""
    folders = [Path(__file__).resolve().parents[2] / "msgs" / "vision_msgs" / "msg",
               Path(sys.prefix) / "share" / "segnet_ros" / "msgs" / "vision_msgs" / "msg",
               Path(sys.prefix) / "share" / "vision_msgs" / "msg"]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            folders.append(Path(prefix) / "share" / "vision_msgs" / "msg")
    return folders


def _vision_msgs_definitions() -> dict[str, str] | None:
    for folder in vision_msgs_folders():
        files = {name: folder / f"{name.rsplit('/', 1)[1]}.msg" for name in (VISION_CLASS, LABEL_INFO)}
        if all(path.is_file() for path in files.values()):
            return {name: path.read_text(encoding="utf-8") for name, path in files.items()}
    return None


@lru_cache(maxsize=1)
def typestore():
    """rosbags' Humble store with vision_msgs registered where its definitions are found."""
    rosbags_version()
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores(STORE))
    definitions = _vision_msgs_definitions()
    if definitions is not None:
        types = {}
        for name, text in definitions.items():
            types.update(get_types_from_msg(text, name))
        store.register(types)
    return store


def has_label_info() -> bool:
    return LABEL_INFO in typestore().fielddefs


def label_info_missing() -> str:
    looked = ", ".join(str(folder) for folder in vision_msgs_folders())
    return (f"label_info needs vision_msgs' LabelInfo.msg and VisionClass.msg, found in none of: {looked}; "
            "leave label_info out of --outputs, or install vision_msgs (ros-$ROS_DISTRO-vision-msgs)")
