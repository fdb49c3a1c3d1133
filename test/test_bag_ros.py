"""What ``segnet-ros bag`` writes is the real ROS 2 types: the ROS wheels' own rclpy deserialises every
output message, and each topic's RIHS01 hash is the one rosidl computed for the installed packages.

Needs rclpy and the vision_msgs build (``make test``), so it is one of the ROS tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import String, UInt32MultiArray

from bag_helpers import read_bag, write_scene

try:
    from vision_msgs.msg import LabelInfo
except ImportError as error:  # a clear failure, not a skip: `make test` builds it first
    raise ImportError(f"vision_msgs is not built in this venv ({error}): run `make test` (msgs/build.sh)") from error

ROS_TYPES = {"sensor_msgs/msg/Image": Image, "std_msgs/msg/String": String,
             "std_msgs/msg/UInt32MultiArray": UInt32MultiArray, "vision_msgs/msg/LabelInfo": LabelInfo}


def rosidl_hash(msgtype: str) -> str:
    """The RIHS01 hash rosidl generated for the installed package (share/<pkg>/msg/<Type>.json)."""
    package, _, name = msgtype.split("/")
    description = json.loads((Path(sys.prefix) / "share" / package / "msg" / f"{name}.json").read_text())
    return next(h["hash_string"] for h in description["type_hashes"] if h["type_name"] == msgtype)


def test_outputs_are_the_real_ros_types(oracle_dir, tmp_path):
    from rosbags.rosbag2 import Reader

    from segnet_ros.cli.main import main

    scene = write_scene(tmp_path / "in", "mcap")
    out = tmp_path / "out"
    assert main(["bag", str(scene.path), str(out), "--model", str(oracle_dir / "fcn_resnet18.onnx"),
                 "--backend", "onnxruntime", "--device", "cpu", "--no-progress"]) == 0
    with Reader(out) as reader:
        digests = {c.topic: (c.msgtype, c.digest) for c in reader.connections}
    assert {msgtype for msgtype, _ in digests.values()} == set(ROS_TYPES)
    for msgtype, digest in digests.values():
        assert digest == rosidl_hash(msgtype), msgtype
    topics, types = read_bag(out)
    for topic, messages in topics.items():
        for _, ours, raw in messages:
            real = deserialize_message(raw, ROS_TYPES[types[topic]])
            if isinstance(real, Image):
                assert (real.header.stamp.sec, real.header.stamp.nanosec, real.header.frame_id) == (
                    ours.header.stamp.sec, ours.header.stamp.nanosec, ours.header.frame_id)
                assert (real.width, real.height, real.encoding, real.step) == (
                    ours.width, ours.height, ours.encoding, ours.step)
                assert bytes(real.data) == ours.data.tobytes()
            elif isinstance(real, UInt32MultiArray):
                assert real.layout.dim[0].label == "class" and list(real.data) == ours.data.tolist()
            elif isinstance(real, LabelInfo):
                assert [(c.class_id, c.class_name) for c in real.class_map] == [
                    (c.class_id, c.class_name) for c in ours.class_map]
                assert np.float32(real.threshold) == np.float32(0.5)
            else:
                assert real.data == ours.data and "classes:" in real.data
