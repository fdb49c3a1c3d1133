"""Several cameras on one node and one model, over real DDS: no cross-talk, no stalls, no starvation."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from ros_helpers import LATCHED, as_array, core_result, frame, header, publish_until
from sensor_msgs.msg import Image
from std_msgs.msg import String, UInt32MultiArray

from segnet_ros.node.conversions import array_to_image

pytestmark = pytest.mark.usefixtures("ros_context")


def statuses(probe) -> dict[str, dict[str, str]]:
    """The latest /diagnostics statuses by name: {name: {key: value}}."""
    if not probe.messages("/diagnostics"):
        return {}
    return {s.name: {kv.key: kv.value for kv in s.values} for s in probe.messages("/diagnostics")[-1].status}


def test_each_camera_gets_its_own_results_and_headers(start_node, probe, small_reference):
    """Different images and sizes per camera, batched into one backend call: each output carries its
    own camera's header and equals the core's result for that camera's frame."""
    node = start_node({"cameras": ["front", "rear/left"], "batching": "always"})
    assert "segmenting /front/image, /rear/left/image" in node.log() and "batches of up to 2" in node.log()
    for camera in ("front", "rear/left"):
        probe.subscribe(Image, f"{camera}/class_mask")
        probe.subscribe(Image, f"{camera}/overlay")
        probe.subscribe(UInt32MultiArray, f"{camera}/class_histogram")
    probe.subscribe(String, "class_labels", LATCHED)
    probe.subscribe(DiagnosticArray, "/diagnostics")
    images = {"front": frame(11), "rear/left": frame(12)[40:200, 16:304].copy()}  # 320x240 and 288x160
    stamps = {"front": 10.5, "rear/left": 20.75}
    pubs = {camera: probe.publisher(Image, f"{camera}/image") for camera in images}
    for pub in pubs.values():
        probe.wait_matched(pub)
    for camera, image in images.items():
        msg = array_to_image(header(stamps[camera], frame_id=f"{camera}_optical"), image, "bgr8")
        publish_until(probe, pubs[camera], msg, f"{camera}/class_histogram")
    probe.wait_for(lambda: all(probe.messages(f"{c}/overlay") and probe.messages(f"{c}/class_mask") for c in images))
    for camera, image in images.items():
        expected = core_result(small_reference, image, "bgr8")
        for topic in ("class_mask", "overlay"):
            msg = probe.messages(f"{camera}/{topic}")[0]
            assert msg.header.frame_id == f"{camera}_optical", (camera, topic)
            assert msg.header.stamp.sec + msg.header.stamp.nanosec / 1e9 == stamps[camera], (camera, topic)
            assert (msg.width, msg.height) == (image.shape[1], image.shape[0]), (camera, topic)
        np.testing.assert_array_equal(as_array(probe.messages(f"{camera}/class_mask")[0]), expected.class_mask())
        np.testing.assert_array_equal(as_array(probe.messages(f"{camera}/overlay")[0]), expected.overlay())
    # model-wide outputs once, at the node's level; nothing single-camera-named is published
    probe.wait_for(lambda: probe.messages("class_labels"))
    assert len(yaml.safe_load(probe.messages("class_labels")[0].data)["classes"]) == 21
    assert not probe.node.get_publishers_info_by_topic("/class_mask")
    probe.wait_for(lambda: len(statuses(probe)) == 3 and all(
        int(v.get("frames_processed", "0")) >= 1 for n, v in statuses(probe).items() if not n.endswith("inference")))
    found = statuses(probe)
    assert {n.split(": ")[1] for n in found} == {"front", "rear/left", "inference"}
    assert found["/segnet: front"]["input_topic"] == "/front/image"
    assert found["/segnet: rear/left"]["camera"] == "rear/left"
    assert found["/segnet: inference"]["batch_limit"] == "2" and found["/segnet: inference"]["cameras"] == "2"
    for values in found.values():
        assert values["backend"] == "onnxruntime"


def test_a_silent_camera_stalls_nobody_and_a_fast_one_starves_nobody(start_node, probe):
    """Unbatched (auto on the CPU): the two cameras' frames run side by side, one inference thread per
    camera, and still neither stalls nor starves the other."""
    # reliable input: a slow frame lost on a flooded wire is not the scheduler starving it
    node = start_node({"cameras": ["fast", "slow"], "input_reliability": "reliable"})
    assert "2 inference threads" in node.log(), node.log()
    for camera in ("fast", "slow"):
        probe.subscribe(Image, f"{camera}/class_mask")
    fast, slow = probe.publisher(Image, "fast/image"), probe.publisher(Image, "slow/image")
    probe.wait_matched(fast)
    probe.wait_matched(slow)
    flooding = True

    def flood() -> None:  # the fast camera as fast as this process can publish
        count = 0
        while flooding:
            count += 1
            fast.publish(array_to_image(header(1000 + count * 0.001), frame(1), "bgr8"))
            time.sleep(0.005)

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        # "slow" has never published: "fast" is served all the same
        probe.wait_for(lambda: len(probe.messages("fast/class_mask")) >= 5, 30, "fast camera's masks")
        sent = []
        for i in range(6):  # 2 Hz beside the flood
            stamp = 50.0 + i
            slow.publish(array_to_image(header(stamp), frame(2), "bgr8"))
            sent.append(stamp)
            time.sleep(0.5)
        time.sleep(1.0)
        answered = {m.header.stamp.sec for m in probe.messages("slow/class_mask")}
        assert len(answered & {int(s) for s in sent}) >= 5, f"slow camera starved: {sorted(answered)} of {sent}"
        before = len(probe.messages("fast/class_mask"))
        time.sleep(1.0)  # "slow" has stopped: "fast" goes on
        assert len(probe.messages("fast/class_mask")) > before
    finally:
        flooding = False
        thread.join(5)
