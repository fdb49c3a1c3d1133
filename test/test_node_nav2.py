"""What Nav2's semantic segmentation layer needs, over real DDS: LabelInfo for late joiners, and
class_mask, confidence and a labelled organised cloud with identical stamps and sizes; and the node
as a lifecycle node."""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import HEIGHT, LATCHED, WIDTH, as_array, core_result, diagnostics_values, frame, header, publish_until
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from vision_msgs.msg import LabelInfo

from segnet_ros.core.pointcloud import CLOUD_DTYPE
from segnet_ros.demo.harness import NodeProcess
from segnet_ros.node.conversions import array_to_image

pytestmark = pytest.mark.usefixtures("ros_context")
LAYER_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)  # what the layer subscribes with
DEPTH_PARAMS = {"use_depth": True, "mask_size": "depth", "label_threshold": 0.42}
FX, FY = 100.0, 110.0


def depth_info(width: int, height: int, stamp: float) -> CameraInfo:
    info = CameraInfo(header=header(stamp, "camera_depth_optical"), width=width, height=height)
    info.k = [FX, 0.0, (width - 1) / 2, 0.0, FY, (height - 1) / 2, 0.0, 0.0, 1.0]
    return info


def depth_frame(encoding: str, width: int, height: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw depth pixels in ``encoding`` and the metres they mean (NaN where invalid)."""
    rng = np.random.default_rng(seed)
    metres = rng.uniform(0.3, 8.0, (height, width)).astype(np.float32)
    metres[rng.random((height, width)) < 0.1] = np.nan
    if encoding == "16UC1":
        raw = np.nan_to_num(metres * 1000, nan=0).astype(np.uint16)
        return raw, np.where(raw == 0, np.nan, raw.astype(np.float32) * np.float32(0.001))
    raw = metres.copy()
    raw[0, :3] = (0.0, -1.0, np.inf)  # zero, negative and infinite depth are invalid too
    metres[0, :3] = np.nan
    return raw, metres


def depth_message(raw: np.ndarray, encoding: str, stamp: float) -> Image:
    msg = Image(header=header(stamp, "camera_depth_optical"), height=raw.shape[0], width=raw.shape[1],
                encoding=encoding, is_bigendian=0, step=raw.shape[1] * raw.itemsize)
    msg.data = raw.tobytes()
    return msg


def by_stamp(messages) -> dict[tuple[int, int], object]:
    return {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in messages}


def paired(probe) -> tuple | None:
    """The first stamp present on all three topics, as the layer's exact synchronizer pairs them."""
    masks, confidences, clouds = (by_stamp(probe.messages(t)) for t in ("class_mask", "confidence", "points"))
    common = sorted(set(masks) & set(confidences) & set(clouds))
    return (masks[common[0]], confidences[common[0]], clouds[common[0]]) if common else None


def subscribe_layer(probe) -> None:
    probe.subscribe(Image, "class_mask", LAYER_QOS)
    probe.subscribe(Image, "confidence", LAYER_QOS)
    probe.subscribe(PointCloud2, "points", LAYER_QOS)
    probe.subscribe(DiagnosticArray, "/diagnostics")


def send_pair(probe, publishers, image, raw, encoding, stamp, until, timeout=30.0, depth_delay=0.0) -> None:
    """Publish depth_info, depth and colour of one stamp until ``until()`` holds."""
    colour_pub, depth_pub, info_pub = publishers
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info_pub.publish(depth_info(raw.shape[1], raw.shape[0], stamp))
        if depth_delay:
            colour_pub.publish(array_to_image(header(stamp), image, "bgr8"))
            time.sleep(depth_delay)
            depth_pub.publish(depth_message(raw, encoding, stamp))
        else:
            depth_pub.publish(depth_message(raw, encoding, stamp))
            colour_pub.publish(array_to_image(header(stamp), image, "bgr8"))
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            if until():
                return
            time.sleep(0.02)
    raise AssertionError("the node did not answer")


def camera_publishers(probe):
    publishers = (probe.publisher(Image, "image"), probe.publisher(Image, "depth/image"),
                  probe.publisher(CameraInfo, "depth/camera_info"))
    for publisher in publishers:
        probe.wait_matched(publisher)
    return publishers


@pytest.mark.parametrize("encoding, depth_size", [("16UC1", (160, 120)), ("32FC1", (WIDTH, HEIGHT))])
def test_the_layer_gets_aligned_mask_confidence_cloud_and_labels(start_node, probe, small_reference, encoding,
                                                                 depth_size):
    start_node(DEPTH_PARAMS)
    subscribe_layer(probe)
    publishers = camera_publishers(probe)
    image = frame(11)
    raw, metres = depth_frame(encoding, *depth_size)
    send_pair(probe, publishers, image, raw, encoding, 42.25, lambda: paired(probe) is not None)
    mask, confidence, cloud = paired(probe)

    width, height = depth_size  # mask_size depth: everything at the depth image's size
    for msg in (mask, confidence, cloud):
        assert (msg.width, msg.height) == (width, height)
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (42, 250_000_000)
    assert mask.header.frame_id == "camera_optical" and cloud.header.frame_id == "camera_depth_optical"
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "label", "confidence"]
    assert cloud.point_step == CLOUD_DTYPE.itemsize and cloud.row_step == width * CLOUD_DTYPE.itemsize
    assert not cloud.is_dense
    points = np.frombuffer(bytes(cloud.data), CLOUD_DTYPE).reshape(height, width)

    labels = as_array(mask)
    np.testing.assert_array_equal(points["label"], labels)
    np.testing.assert_array_equal(labels, core_result(small_reference, image, "bgr8").class_mask((width, height)))
    np.testing.assert_allclose(points["confidence"], as_array(confidence) / 255.0, atol=1e-6)
    u, v = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    cx, cy = (width - 1) / 2, (height - 1) / 2
    np.testing.assert_array_equal(np.isnan(points["z"]), np.isnan(metres))
    for axis, expected in (("z", metres), ("x", (u - cx) * metres / FX), ("y", (v - cy) * metres / FY)):
        np.testing.assert_allclose(points[axis], expected, rtol=2e-6, atol=1e-6, equal_nan=True, err_msg=axis)

    probe.subscribe(LabelInfo, "label_info", LATCHED)  # a late joiner, as the layer usually is
    probe.wait_for(lambda: probe.messages("label_info"), what="transient-local label_info")
    labels_msg = probe.messages("label_info")[0]
    assert labels_msg.threshold == pytest.approx(0.42)
    assert [(c.class_id, c.class_name) for c in labels_msg.class_map] == [(i, f"class #{i}") for i in range(21)]
    assert all(probe.messages("label_info")[0].class_map[i].class_id != 255 for i in range(21))


def test_missing_late_and_bad_depth(start_node, probe):
    start_node({**DEPTH_PARAMS, "depth_timeout": 2.0, "mask_size": "input"})
    subscribe_layer(probe)
    colour_pub, depth_pub, info_pub = publishers = camera_publishers(probe)
    image = frame(12)
    raw, _ = depth_frame("16UC1", WIDTH, HEIGHT)

    # no depth at all: the mask still comes (after depth_timeout), the cloud is skipped and counted;
    # sent again only after that, as the node may not have discovered the new publisher yet
    publish_until(probe, colour_pub, array_to_image(header(1.0), image, "bgr8"), "class_mask", period=3.0)
    probe.wait_for(lambda: int(diagnostics_values(probe).get("clouds_skipped_no_depth", 0)) >= 1,
                   what="a skipped cloud in diagnostics")
    assert not probe.messages("points")

    # depth arriving after its colour frame is still paired (within depth_timeout)
    send_pair(probe, publishers, image, raw, "16UC1", 2.0, lambda: paired(probe) is not None, depth_delay=0.3)
    mask, _, cloud = paired(probe)
    assert cloud.header.stamp.sec == 2 and (cloud.width, cloud.height) == (WIDTH, HEIGHT)

    # bad depth frames are counted and the node keeps serving
    wrong = array_to_image(header(3.0), image, "rgb8")
    short = depth_message(raw, "16UC1", 3.0)
    short.data = short.data[:100]
    for count, bad in enumerate((wrong, short), start=1):
        deadline = time.monotonic() + 20
        while int(diagnostics_values(probe).get("frames_bad", 0)) < count and time.monotonic() < deadline:
            depth_pub.publish(bad)
            time.sleep(1.0)
        assert int(diagnostics_values(probe)["frames_bad"]) >= count
    clouds = len(probe.messages("points"))
    send_pair(probe, publishers, image, raw, "16UC1", 4.0, lambda: len(probe.messages("points")) > clouds)


# -- the managed node ---------------------------------------------------------------------------
def lifecycle_call(probe, service_type, name: str, request):
    client = probe.node.create_client(service_type, f"/segnet/{name}")
    assert client.wait_for_service(timeout_sec=20)
    future = client.call_async(request)
    probe.wait_for(future.done, 60, name)
    return future.result()


def transition(probe, transition_id: int) -> bool:
    return lifecycle_call(probe, ChangeState, "change_state",
                          ChangeState.Request(transition=Transition(id=transition_id))).success


def state(probe) -> int:
    return lifecycle_call(probe, GetState, "get_state", GetState.Request()).current_state.id


def start_lifecycle(tmp_path, params: dict, name: str = "lifecycle") -> NodeProcess:
    node = NodeProcess(tmp_path / f"{name}.log", {"backend": "onnxruntime", "diagnostics_period": 0.5, **params},
                       arguments=("--lifecycle",), ready_text="waiting for the configure transition")
    node.wait_ready()
    return node


def test_lifecycle_transitions(tmp_path, probe, small_reference):
    node = start_lifecycle(tmp_path, {"model": str(small_reference.onnx)})
    try:
        probe.subscribe(Image, "class_mask")
        probe.subscribe(DiagnosticArray, "/diagnostics")
        pub = probe.publisher(Image, "image")
        image = array_to_image(header(), frame(13), "bgr8")
        assert state(probe) == State.PRIMARY_STATE_UNCONFIGURED
        assert probe.node.count_publishers("/class_mask") == 0

        assert transition(probe, Transition.TRANSITION_CONFIGURE)
        assert state(probe) == State.PRIMARY_STATE_INACTIVE
        probe.wait_for(lambda: probe.node.count_publishers("/class_mask") == 1, what="publishers made")
        assert probe.node.count_subscribers("/image") == 0

        for cycle in range(2):  # cleanup, then configure, works again
            assert transition(probe, Transition.TRANSITION_ACTIVATE)
            assert state(probe) == State.PRIMARY_STATE_ACTIVE
            probe.wait_matched(pub)
            seen = len(probe.messages("class_mask"))
            deadline = time.monotonic() + 30
            while len(probe.messages("class_mask")) == seen and time.monotonic() < deadline:
                pub.publish(image)
                time.sleep(0.3)
            assert len(probe.messages("class_mask")) > seen, f"no class_mask while active (cycle {cycle})"

            assert transition(probe, Transition.TRANSITION_DEACTIVATE)
            assert state(probe) == State.PRIMARY_STATE_INACTIVE
            probe.wait_for(lambda: probe.node.count_subscribers("/image") == 0, what="the input subscription gone")
            seen = len(probe.messages("class_mask"))
            for _ in range(5):
                pub.publish(image)
                time.sleep(0.2)
            assert len(probe.messages("class_mask")) == seen, "inference while inactive"
            assert transition(probe, Transition.TRANSITION_CLEANUP)
            assert state(probe) == State.PRIMARY_STATE_UNCONFIGURED
            probe.wait_for(lambda: probe.node.count_publishers("/class_mask") == 0, what="publishers released")
            assert transition(probe, Transition.TRANSITION_CONFIGURE)
        assert transition(probe, Transition.TRANSITION_INACTIVE_SHUTDOWN)
        assert state(probe) == State.PRIMARY_STATE_FINALIZED
        assert "backend released" in node.log() and "Traceback" not in node.log()
    finally:
        assert node.stop() == 0, node.log()


def test_lifecycle_configure_failure_leaves_it_unconfigured(tmp_path, probe):
    node = start_lifecycle(tmp_path, {"model": str(tmp_path / "missing.onnx")}, "failing")
    try:
        assert not transition(probe, Transition.TRANSITION_CONFIGURE)
        assert state(probe) == State.PRIMARY_STATE_UNCONFIGURED
        assert "configure failed:" in node.log() and "model file not found" in node.log()
    finally:
        assert node.stop() == 0, node.log()
