"""The node's default input QoS over real DDS: it follows the camera's reliability, so a reliable camera
loses nothing to transport, a best-effort camera is still heard, and what transport loses is counted.

One node serves the whole module (its start-up costs seconds); each test drives its own camera.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest
from ros_helpers import diagnostics_values, header, publish_until

pytestmark = pytest.mark.usefixtures("ros_context")


@pytest.fixture(scope="module")
def node(tmp_path_factory, small_reference, ros_context):
    from segnet_ros.demo.harness import NodeProcess

    # overlay_alpah: a typo the node must name at start-up (rclpy ignores undeclared parameters silently)
    params = {"model": str(small_reference.onnx), "backend": "onnxruntime", "device": "cpu",
              "diagnostics_period": 0.5, "overlay_alpah": 100}
    process = NodeProcess(tmp_path_factory.mktemp("qos") / "node.log", params)
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture
def watcher(probe):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    probe.subscribe(DiagnosticArray, "/diagnostics")
    probe.subscribe(Image, "class_mask")
    return probe


@contextlib.contextmanager
def camera(watcher, reliable: bool):
    """A camera publisher on ``image`` of this reliability, once the node follows it; gone afterwards."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    kind = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    publisher = watcher.publisher(Image, "image", QoSProfile(depth=10, reliability=kind))
    try:
        watcher.wait_matched(publisher)
        wait_for_reliability(watcher, "reliable" if reliable else "best_effort")
        yield publisher
    finally:
        watcher.node.destroy_publisher(publisher)


def image(width: int, height: int, stamp: float):
    from segnet_ros.node.conversions import array_to_image

    pixels = np.random.default_rng(int(stamp)).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return array_to_image(header(stamp), pixels, "rgb8")


def rgb16(stamp: float):
    """A well-formed frame of an encoding the node does not take."""
    from sensor_msgs.msg import Image

    return Image(header=header(stamp), height=48, width=64, encoding="rgb16", step=64 * 6, data=bytes(48 * 64 * 6))


def wait_for_reliability(probe, wanted: str, timeout: float = 20.0) -> None:
    probe.wait_for(lambda: diagnostics_values(probe).get("input_reliability", "").startswith(wanted + " "),
                   timeout, f"the node's input to become {wanted}")


def counts(probe) -> tuple[int, int, int]:
    """(frames received, lost in transport, dropped in the node's input queue while it was busy)."""
    values = diagnostics_values(probe)
    return (int(values.get("frames_received", 0)), int(values.get("frames_lost", 0)),
            int(values.get("frames_dropped_input_queue", 0)))


def test_a_misspelt_parameter_is_named_at_start_up(node):
    assert "unknown parameter 'overlay_alpah' ignored; did you mean 'overlay_alpha'?" in node.log()


@pytest.mark.parametrize("width, height, rate", [(640, 480, 10), (640, 480, 30), (1280, 720, 10)])
def test_a_reliable_camera_loses_nothing_under_the_defaults(node, watcher, width, height, rate):
    with camera(watcher, reliable=True) as publisher:
        time.sleep(1.0)  # a diagnostics report after the switch, so the baseline is current
        received, lost, overwritten = counts(watcher)
        frames = [image(width, height, 1000 + i) for i in range(3 * rate)]
        next_at = time.monotonic()
        for msg in frames:
            time.sleep(max(0.0, next_at - time.monotonic()))
            publisher.publish(msg)
            next_at += 1.0 / rate
        # every frame reaches the node: received, or (on a machine too busy to take them as they come) replaced
        # in its queue of one by the next, which the node would have dropped for that newer one anyway
        watcher.wait_for(lambda: sum(counts(watcher)) >= received + lost + overwritten + len(frames), 20,
                         f"{len(frames)} frames counted: {diagnostics_values(watcher)}")
        now_received, now_lost, now_overwritten = counts(watcher)
        assert now_lost == lost == 0, diagnostics_values(watcher)  # nothing lost in transport
        assert now_received - received + now_overwritten - overwritten == len(frames)
        assert now_received - received >= len(frames) // 4, diagnostics_values(watcher)
        assert watcher.messages("class_mask"), "the node segmented none of them"


def test_a_best_effort_camera_is_heard_and_its_losses_are_counted(node, watcher):
    with camera(watcher, reliable=False) as publisher:  # the reliable cameras of the tests before are gone
        mask = publish_until(watcher, publisher, image(320, 240, 5000.0), "class_mask", period=0.5)
        assert (mask.width, mask.height) == (320, 240)
        # a burst faster than the node takes them: its queue of one keeps the newest, the rest are lost
        for attempt in range(5):
            time.sleep(1.0)
            received, lost, _ = counts(watcher)
            first = 6000 + 100 * attempt
            for i in range(30):
                publisher.publish(image(1280, 720, first + i))
            last = image(320, 240, first + 30)
            publish_until(watcher, publisher, last, "class_mask", period=0.5)  # numbered after the burst
            watcher.wait_for(lambda r=received: counts(watcher)[0] > r, 10, "the burst counted")
            time.sleep(1.0)
            now_received, now_lost, _ = counts(watcher)
            if now_lost > lost:
                break
        else:
            pytest.fail("five bursts of 30 frames lost nothing: the test cannot force a loss here")
        sent = now_received - received + now_lost - lost  # every frame sent since is received or lost
        assert 31 <= sent <= 31 + 10, (sent, now_received, now_lost)  # 31, plus any resends of the last frame
        values = diagnostics_values(watcher)
        assert values["frames_lost"] == str(now_lost)


def test_a_camera_of_nothing_but_bad_frames_is_a_warning(node, watcher):
    from diagnostic_msgs.msg import DiagnosticStatus

    with camera(watcher, reliable=True) as publisher:
        def warned():
            publisher.publish(rgb16(7000.0))
            statuses = watcher.messages("/diagnostics")
            return statuses and statuses[-1].status[0].level == DiagnosticStatus.WARN

        watcher.wait_for(warned, 20, "a WARN status")
        status = watcher.messages("/diagnostics")[-1].status[0]
        assert "bad since last report, none processed" in status.message
