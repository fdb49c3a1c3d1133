"""Helpers of the tests that drive segnet_node over real DDS (fixtures are in conftest.py)."""

from __future__ import annotations

import time

import cv2
import numpy as np

from segnet_ros.demo.harness import Probe, private_ros_environment, stamp_of

private_ros_environment()  # before rclpy is initialised anywhere in this process

from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from segnet_ros.backends import create_backend  # noqa: E402
from segnet_ros.core.model import ModelFiles, load_model  # noqa: E402
from segnet_ros.core.segnet import SegNet, SegNetSettings  # noqa: E402

WIDTH, HEIGHT = 320, 240
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for _ in range(12):  # blobs, so the untrained network sees structure
        x, y = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        cv2.circle(image, (x, y), int(rng.integers(10, 80)), [int(v) for v in rng.integers(0, 256, 3)], -1)
    return image


def header(stamp: float = 42.25, frame_id: str = "camera_optical") -> Header:
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
    return h


def as_array(msg: Image) -> np.ndarray:
    channels = msg.step // msg.width
    data = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, channels)
    return data[:, :, 0] if channels == 1 else data


def diagnostics_values(probe: Probe) -> dict:
    """The latest /diagnostics values of the node ({} before the first message)."""
    if not probe.messages("/diagnostics"):
        return {}
    status = probe.messages("/diagnostics")[-1].status[0]
    return {kv.key: kv.value for kv in status.values}


def core_result(files: ModelFiles, image: np.ndarray, encoding: str, **settings):
    model = load_model(files)
    net = SegNet(model, create_backend("onnxruntime", model), SegNetSettings(**settings))
    return net.process(image, encoding)


def publish_until(probe: Probe, publisher, msg, topic: str, timeout: float = 30.0, period: float = 1.0):
    """Best-effort input: publish again, every ``period`` s, until the node has answered this very
    message: a message new on ``topic`` with its stamp (any new one where ``topic`` has no header).
    Returns the answer, so an earlier phase's late answer is never taken for this one's."""
    seen = len(probe.messages(topic))
    stamp = stamp_of(msg)

    def answer():
        for m in probe.messages(topic)[seen:]:
            stamped = isinstance(m, bytes | bytearray) or hasattr(m, "header")  # raw bytes start with the header
            if not stamped or stamp_of(m) == stamp:
                return m
        return None

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publisher.publish(msg)
        end = time.monotonic() + period
        while time.monotonic() < end:
            if (found := answer()) is not None:
                return found
            time.sleep(0.02)
    raise AssertionError(f"no answer on {topic} within {timeout} s")


def set_parameter(probe: Probe, service: str, name: str, value) -> tuple[bool, str]:
    client = probe.node.create_client(SetParameters, service)
    assert client.wait_for_service(timeout_sec=20)
    parameter_value = ParameterValue()
    if isinstance(value, bool):
        parameter_value.type, parameter_value.bool_value = ParameterType.PARAMETER_BOOL, value
    elif isinstance(value, int):
        parameter_value.type, parameter_value.integer_value = ParameterType.PARAMETER_INTEGER, value
    else:
        parameter_value.type, parameter_value.string_value = ParameterType.PARAMETER_STRING, value
    future = client.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=parameter_value)]))
    probe.wait_for(future.done, 20, "set_parameters reply")
    result = future.result().results[0]
    return result.successful, result.reason


def send_counted(probe: Probe, publisher, msg, counter: str, expected: int, timeout: float = 30.0) -> None:
    """Publish ``msg`` until diagnostics' ``counter`` reaches ``expected``. A resend happens only when
    the node did not even receive the message (frames_received unchanged), so nothing is counted twice."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = int(diagnostics_values(probe).get("frames_received", 0))
        publisher.publish(msg)
        retry = time.monotonic() + 3.0
        while time.monotonic() < retry:
            values = diagnostics_values(probe)
            if int(values.get(counter, 0)) >= expected:
                return
            if int(values.get("frames_received", 0)) > received:
                retry = deadline  # it arrived: wait for it to be counted, never resend
            time.sleep(0.05)
    raise AssertionError(f"{counter} did not reach {expected}: {diagnostics_values(probe)}")
