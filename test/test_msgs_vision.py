"""vision_msgs built from msgs/ (make's vision_msgs step) is the real type, and crosses real DDS."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segnet_ros.demo.harness import Probe, private_ros_environment

private_ros_environment()  # before rclpy is initialised anywhere in this process

import rclpy  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

try:
    import vision_msgs
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError as error:  # a clear failure, not a skip: `make test` builds it first
    raise ImportError(f"vision_msgs is not built in this venv ({error}): run `make test` (msgs/build.sh)") from error

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
CLASSES = ["background", "road", "sidewalk", "person", "car"]

# RIHS01 type hashes of ros-perception/vision_msgs 4.1.1's own LabelInfo.msg and VisionClass.msg, as
# rosidl (Jazzy and Kilted alike) computes them: equal hashes mean the same type on the wire.
UPSTREAM_HASHES = {
    "vision_msgs/msg/LabelInfo": "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "vision_msgs/msg/VisionClass": "RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
}

PUBLISHER = f"""
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from vision_msgs.msg import LabelInfo, VisionClass

rclpy.init()
node = rclpy.create_node("label_info_publisher")
qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
publisher = node.create_publisher(LabelInfo, "label_info", qos)
message = LabelInfo(threshold=0.42, class_map=[VisionClass(class_id=i, class_name=name)
                                                for i, name in enumerate({CLASSES!r})])
message.header.frame_id = "camera_optical_frame"
message.header.stamp.sec = 1234
publisher.publish(message)
print("published", flush=True)
try:
    while rclpy.ok():
        rclpy.spin_once(node, timeout_sec=0.1)
except KeyboardInterrupt:
    pass
node.destroy_node()
rclpy.try_shutdown()
"""


@pytest.fixture(scope="module", autouse=True)
def ros_context():
    rclpy.init()
    yield
    rclpy.shutdown()


def test_label_info_has_the_upstream_fields():
    assert LabelInfo.get_fields_and_field_types() == {
        "header": "std_msgs/Header", "class_map": "sequence<vision_msgs/VisionClass>", "threshold": "float"}
    assert VisionClass.get_fields_and_field_types() == {"class_id": "uint16", "class_name": "string"}
    message = LabelInfo(class_map=[VisionClass(class_id=65535, class_name="unlabeled")], threshold=0.5)
    assert (message.class_map[0].class_id, message.class_map[0].class_name) == (65535, "unlabeled")


def test_type_hash_is_the_upstream_one():
    """Jazzy and later put the RIHS01 hash in discovery data: it must equal the real package's."""
    share = Path(vision_msgs.__file__).resolve().parents[4] / "share" / "vision_msgs" / "msg"
    for name in ("LabelInfo", "VisionClass"):
        description = json.loads((share / f"{name}.json").read_text())
        hashes = {entry["type_name"]: entry["hash_string"] for entry in description["type_hashes"]}
        key = f"vision_msgs/msg/{name}"
        assert hashes[key] == UPSTREAM_HASHES[key]


def test_label_info_reaches_a_late_joiner_over_dds(tmp_path):
    log_path = tmp_path / "publisher.log"
    with open(log_path, "w") as log:
        child = subprocess.Popen([sys.executable, "-c", PUBLISHER], stdout=log, stderr=subprocess.STDOUT)
    probe = None
    try:
        deadline = time.monotonic() + 60
        while "published" not in log_path.read_text():
            assert child.poll() is None, f"publisher exited with {child.returncode}:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"publisher did not publish:\n{log_path.read_text()}"
            time.sleep(0.05)
        time.sleep(1.0)  # the subscriber below joins well after the one publish
        probe = Probe("label_info_subscriber")
        probe.subscribe(LabelInfo, "label_info", LATCHED)
        probe.wait_for(lambda: probe.messages("label_info"), 30, "label_info from the publisher process")
        message = probe.messages("label_info")[0]
        assert [(c.class_id, c.class_name) for c in message.class_map] == list(enumerate(CLASSES))
        assert message.threshold == pytest.approx(0.42, abs=1e-6)
        assert (message.header.frame_id, message.header.stamp.sec) == ("camera_optical_frame", 1234)
        topics = dict(probe.node.get_topic_names_and_types())
        assert topics["/label_info"] == ["vision_msgs/msg/LabelInfo"]
    finally:
        if probe is not None:
            probe.close()
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
