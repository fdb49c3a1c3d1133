"""The node's ROS-free parts and its user-facing files, without starting a node."""

from __future__ import annotations

import ast
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from segnet_ros.core.decode import SUPPORTED_ENCODINGS, compressed_to_array, image_to_array
from segnet_ros.core.errors import FrameError
from segnet_ros.node.camera import health
from segnet_ros.node.conversions import array_to_image, scale_camera_info
from segnet_ros.node.params import BY_NAME, DYNAMIC, PARAMS, check, unknown_parameters
from segnet_ros.node.pipeline import LatestSlot, LossCounter, PipelineStats, Stages
from segnet_ros.node.qos import follow_publishers
from segnet_ros.node.segnet_node import INPUT_TOPICS, OUTPUTS

ROOT = Path(__file__).resolve().parents[1]
RGB = np.array([[[200, 30, 60]]], np.uint8)  # one flat colour


def flat(height=8, width=8):
    return np.broadcast_to(RGB, (height, width, 3)).copy()


def test_raw_encodings_round_trip_as_views():
    rgb = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    for encoding, pixels, core in (("rgb8", rgb, "rgb8"), ("bgr8", rgb[:, :, ::-1], "bgr8"),
                                   ("mono8", rgb[:, :, :1], "mono8"),
                                   ("bgra8", np.dstack([rgb[:, :, ::-1], rgb[:, :, :1]]), "bgra8")):
        frame, name = image_to_array(array_to_image(Header(), pixels, encoding))
        assert name == core and np.array_equal(frame.reshape(pixels.shape), pixels)


def test_step_padding_is_honoured_without_copy():
    padded = np.zeros((4, 16), np.uint8)
    padded[:, :9] = np.arange(9)
    msg = array_to_image(Header(), padded, "rgb8")
    msg.width, msg.step = 3, 16
    frame, _ = image_to_array(msg)
    assert frame.shape == (4, 3, 3) and frame[0].ravel().tolist() == list(range(9))
    assert not frame.flags.owndata


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Bayer mosaic as the ROS encoding names it: the 2x2 tile read row by row."""
    out = np.zeros(rgb.shape[:2], np.uint8)
    index = {"r": 0, "g": 1, "b": 2}
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, index[pattern[k]]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns_demosaic_to_the_right_colour(pattern):
    msg = array_to_image(Header(), _mosaic(flat(8, 8), pattern), f"bayer_{pattern}8")
    frame, encoding = image_to_array(msg)
    assert encoding == "rgb8" and frame.shape == (8, 8, 3)
    np.testing.assert_allclose(frame[2:-2, 2:-2].reshape(-1, 3).mean(axis=0), RGB[0, 0], atol=2)


@pytest.mark.parametrize("encoding,order", [("yuv422", "uyvy"), ("yuv422_yuy2", "yuyv")])
def test_yuv422_layouts(encoding, order):
    y, u, v = 100, 90, 200  # a reddish colour in BT.601 YUV
    pixels = np.zeros((4, 8, 2), np.uint8)
    if order == "uyvy":
        pixels[:, 0::2, 0], pixels[:, 1::2, 0], pixels[:, :, 1] = u, v, y
    else:
        pixels[:, :, 0], pixels[:, 0::2, 1], pixels[:, 1::2, 1] = y, u, v
    frame, name = image_to_array(array_to_image(Header(), pixels, encoding))
    assert name == "rgb8" and frame.shape == (4, 8, 3)
    r, g, b = frame[0, 0].astype(int)
    assert r > 150 and g < 100 and b < 100  # red dominates


@pytest.mark.parametrize("mutate,message", [
    (lambda m: setattr(m, "encoding", "16UC1"), "unsupported encoding '16UC1'"),
    (lambda m: setattr(m, "data", m.data[:10]), "step x height needs"),
    (lambda m: setattr(m, "step", 2), "step 2 is smaller"),
    (lambda m: setattr(m, "width", 0), "zero size"),
])
def test_bad_messages(mutate, message):
    msg = array_to_image(Header(), flat(), "rgb8")
    mutate(msg)
    with pytest.raises(FrameError, match=message):
        image_to_array(msg)


def test_compressed_decoding():
    import cv2

    ok, jpeg = cv2.imencode(".jpg", flat(16, 16))
    msg = CompressedImage(format="jpeg")
    msg.data = jpeg.tobytes()
    frame, encoding = compressed_to_array(msg)
    assert encoding == "bgr8" and frame.shape == (16, 16, 3)
    for payload in (b"", b"\xff\xd8 not really a jpeg"):
        msg.data = payload
        with pytest.raises(FrameError):
            compressed_to_array(msg)


def test_camera_info_scaling_identity_and_half():
    info = CameraInfo(width=640, height=480)
    info.k = [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]
    info.p = [500.0, 0.0, 319.5, 0.0, 0.0, 500.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    same = scale_camera_info(info, Header(), 640, 480)
    np.testing.assert_allclose(same.k, info.k)
    half = scale_camera_info(info, Header(), 320, 240)
    # the optical centre stays on the image centre under the pixel-centre convention
    assert (half.k[0], half.k[2], half.k[5]) == (250.0, 159.5, 119.5) and half.width == 320


def test_latest_slot_keeps_only_the_newest_and_counts_drops():
    slot = LatestSlot()
    for item in range(5):
        slot.put(item)
    assert slot.take(0) == 4 and slot.dropped == 4
    assert slot.take(0.01) is None
    got = []
    thread = threading.Thread(target=lambda: got.append(slot.take(5)))
    thread.start()
    slot.put("late")
    thread.join(5)
    assert got == ["late"]
    slot.close()
    assert slot.take(5) is None


def test_stats_rates_and_latency():
    stats = PipelineStats(window_s=10)
    for i in range(11):
        stats.arrived(now=100 + i * 0.1)
    for i in range(6):
        stats.finished(received_at=100 + i * 0.2, stages=Stages(inference=50), now=100.05 + i * 0.2)
    stats.rejected()
    snap = stats.snapshot(dropped=5, now=101.1)
    assert snap.input_hz == pytest.approx(10) and snap.processed_hz == pytest.approx(5)
    assert snap.latency_ms == pytest.approx(50) and snap.bad == 1 and snap.dropped == 5
    assert stats.snapshot(dropped=5, now=200).processed_hz == 0.0  # the window has moved on


def test_parameter_checks():
    assert check("mask_size", "grid") is None and "must be one of" in check("mask_size", "half")
    assert "0..255" in check("overlay_alpha", 256) and check("overlay_alpha", 0) is None
    assert set(DYNAMIC) == {"filter_mode", "overlay_alpha", "ignore_class", "mask_size"}
    assert all(p.description for p in PARAMS)


def _yaml_parameters(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["/**"]["ros__parameters"]


def test_segnet_yaml_lists_every_parameter_with_its_default():
    text = (ROOT / "config" / "segnet.yaml").read_text()
    values = _yaml_parameters(ROOT / "config" / "segnet.yaml")
    assert values == {p.name: p.default for p in PARAMS if not isinstance(p.default, tuple)}
    # a string array defaults to empty, which ROS parameter files cannot type: shown commented out
    assert all(f"\n    # {p.name}: [" in text for p in PARAMS if isinstance(p.default, tuple))


def _launch_function(name: str):
    """One helper function of the launch file, compiled on its own (launch_ros is not installable here)."""
    tree = ast.parse((ROOT / "launch" / "segnet.launch.py").read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace = {"re": re}
    exec(compile(ast.Module([function], type_ignores=[]), "segnet.launch.py", "exec"), namespace)
    return namespace[name]


def test_launch_reads_camera_lists_as_users_write_them():
    names = _launch_function("camera_names")
    for text in ("front, left, right", "[front, left, right]", "front left  right", "['front','left','right']"):
        assert names(text) == ["front", "left", "right"], text
    assert names("") == []
    cameras = _launch_function("file_cameras")
    assert cameras([str(ROOT / "config" / "segnet.yaml"), str(ROOT / "config" / "three_cameras.yaml")]) == [
        "front", "left", "right"]
    assert cameras([str(ROOT / "config" / "segnet.yaml")]) == []


def test_three_camera_example_is_valid():
    values = _yaml_parameters(ROOT / "config" / "three_cameras.yaml")
    assert values["cameras"] == ["front", "left", "right"]
    assert all(check(name, value) is None for name, value in values.items())


def test_every_parameter_file_names_real_parameters():
    for path in (ROOT / "config").glob("*.yaml"):
        unknown = set(_yaml_parameters(path)) - set(BY_NAME)
        assert not unknown, f"{path.name} names parameters the node does not have: {unknown}"


def _launch_constants() -> dict:
    tree = ast.parse((ROOT / "launch" / "segnet.launch.py").read_text())
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.isupper()}


def test_launch_file_names_real_topics_parameters_and_arguments():
    constants = _launch_constants()
    assert set(constants["TOPIC_ARGUMENTS"].values()) <= set(INPUT_TOPICS)
    assert set(constants["CAMERA_TOPIC_ARGUMENTS"].values()) <= set(INPUT_TOPICS)
    assert {"cameras", *constants["CAMERA_TOPIC_ARGUMENTS"]} <= {name for name, _, _ in constants["ARGUMENTS"]}
    assert set(constants["PARAMETER_ARGUMENTS"]) <= set(BY_NAME)
    arguments = {name for name, _, _ in constants["ARGUMENTS"]}
    assert {"model", "image", "namespace", "params_file", "backend", "rviz"} <= arguments
    assert set(constants["TOPIC_ARGUMENTS"]) <= arguments and set(constants["PARAMETER_ARGUMENTS"]) <= arguments
    source = (ROOT / "launch" / "segnet.launch.py").read_text()
    assert 'executable="segnet_node"' in source and "config/segnet.yaml" in source
    assert "config/rviz/segnet.rviz" in source


def test_rviz_config_shows_real_outputs():
    config = yaml.safe_load((ROOT / "config" / "rviz" / "segnet.rviz").read_text())
    topics = [d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"]]
    outputs = {t.rsplit("/", 1)[-1] for t in topics[1:]}
    assert outputs == {"overlay", "color_mask"} and outputs <= set(OUTPUTS)


def test_supported_encodings_are_the_documented_ones():
    assert set(SUPPORTED_ENCODINGS) == {"rgb8", "bgr8", "rgba8", "bgra8", "mono8", "yuv422", "yuv422_yuy2",
                                        "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8"}


def test_image_buffers_are_reused_and_drawn_into():
    from segnet_ros.node.conversions import ImageBuffers

    buffers = ImageBuffers()
    drawn_at = []

    def fill(value):
        def draw(out):
            drawn_at.append(out.__array_interface__["data"][0])
            out.fill(value)
        return draw

    first = buffers.image("overlay", Header(frame_id="a"), (2, 3, 3), "rgb8", fill(5))
    assert (first.width, first.height, first.step, first.encoding) == (3, 2, 9, "rgb8")
    assert list(first.data) == [5] * 18 and first.header.frame_id == "a"
    second = buffers.image("overlay", Header(frame_id="b"), (2, 3, 3), "rgb8", fill(9))
    assert list(second.data) == [9] * 18
    assert drawn_at[0] == drawn_at[1]  # the same memory, redrawn
    other = buffers.image("class_mask", None, (2, 3), "mono8", fill(1))
    assert drawn_at[2] != drawn_at[0] and other.step == 3 and list(other.data) == [1] * 6
    bigger = buffers.image("overlay", None, (4, 3, 3), "rgb8", fill(2))
    assert len(bigger.data) == 36


def test_depth_messages_become_views_in_their_byte_order():
    from segnet_ros.core.decode import depth_to_array

    raw = np.arange(12, dtype=">u2").reshape(3, 4)
    msg = Image(header=Header(), height=3, width=4, encoding="16UC1", is_bigendian=1, step=10)
    padded = np.zeros((3, 10), np.uint8)
    padded[:, :8] = raw.view(np.uint8)
    msg.data = padded.tobytes()
    values, metres = depth_to_array(msg)
    assert metres == 0.001 and values.shape == (3, 4) and values.tolist() == raw.tolist()
    for mutate, message in ((dict(encoding="rgb8"), "unsupported depth encoding"),
                            (dict(data=b"\0" * 10), "needs 30"),
                            (dict(step=7), "smaller than width"),
                            (dict(width=5, step=11, data=b"\0" * 33), "not a multiple of 2")):
        bad = Image(header=Header(), height=3, width=4, encoding="16UC1", step=10, data=msg.data)
        for key, value in mutate.items():
            setattr(bad, key, value)
        with pytest.raises(FrameError, match=message):
            depth_to_array(bad)
    with pytest.raises(FrameError, match="max_input_pixels"):
        depth_to_array(msg, max_pixels=11)


def test_compressed_headers_are_read_without_decoding():
    import cv2

    from segnet_ros.core.decode import compressed_size

    for ext in (".png", ".jpg"):
        ok, data = cv2.imencode(ext, np.zeros((37, 53, 3), np.uint8))
        assert compressed_size(data.tobytes()) == (53, 37), ext
    assert compressed_size(b"GIF89a....") is None and compressed_size(b"\xff\xd8\xff") is None
    ok, data = cv2.imencode(".png", np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(FrameError, match="max_input_pixels"):
        compressed_to_array(CompressedImage(format="png", data=data.tobytes()), max_pixels=1599)


def test_cloud_messages_describe_their_points():
    from segnet_ros.core.pointcloud import CLOUD_DTYPE
    from segnet_ros.node.conversions import ImageBuffers

    buffers = ImageBuffers()
    msg = buffers.cloud("points", Header(frame_id="depth"), 2, 3, lambda out: out.fill(0))
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (2, 3, 20, 60)
    assert [(f.name, f.offset, f.datatype) for f in msg.fields] == [
        ("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("label", 12, 6), ("confidence", 16, 7)]
    assert len(msg.data) == 6 * CLOUD_DTYPE.itemsize and msg.header.frame_id == "depth"


class _Camera:
    """What the scheduler sees of a CameraPipeline, recording what was in flight when."""

    def __init__(self, name: str, condition: threading.Condition, log: list, lock: threading.Lock) -> None:
        self.name, self.slot, self.log, self.lock = name, LatestSlot(condition), log, lock
        self.in_flight = 0
        self.delivered: list[int] = []

    def job(self, item):
        with self.lock:
            self.in_flight += 1
            assert self.in_flight == 1, f"{self.name}: two frames in flight"
        return item

    def deliver(self, job, segmentation, started, finished) -> None:
        with self.lock:
            self.in_flight -= 1
            self.delivered.append(job.index)
            self.log.append((self.name, threading.current_thread().name, started, finished))

    def failed(self, exc) -> None:
        raise AssertionError(f"{self.name}: {exc}")


@pytest.mark.parametrize("concurrent", [True, False])
def test_cameras_share_concurrent_inference_threads_one_frame_each_in_order(oracle_dir, concurrent):
    """Where the backend takes concurrent calls, frames of different cameras run side by side on the
    scheduler's threads; a camera never has two frames in flight, so its results come in order."""
    from dataclasses import dataclass

    from segnet_ros.backends import BackendOptions, create_backend
    from segnet_ros.core.model import ModelFiles, load_model
    from segnet_ros.core.segnet import ALL_PRODUCTS, Products, SegNet
    from segnet_ros.node.scheduler import InferenceScheduler

    @dataclass
    class Job:
        index: int
        frame: np.ndarray
        encoding: str = "rgb8"
        products: Products = ALL_PRODUCTS

    model = load_model(ModelFiles.in_folder(oracle_dir))
    backend = create_backend("onnxruntime", model, BackendOptions(device="cpu", callers=3))
    backend.concurrent_runs = concurrent
    scheduler = InferenceScheduler(SegNet(model, backend), batch=False, workers=3)
    assert scheduler.workers == (3 if concurrent else 1)
    log, lock = [], threading.Lock()
    cameras = [_Camera(name, scheduler.condition, log, lock) for name in ("a", "b", "c")]
    scheduler.set_cameras(cameras)
    scheduler.start()
    image = np.zeros((64, 128, 3), np.uint8)
    try:
        for index in range(12):
            for camera in cameras:
                camera.slot.put(Job(index, image))
            deadline = time.monotonic() + 10
            while any(c.slot.ready for c in cameras) and time.monotonic() < deadline:
                time.sleep(0.002)
        deadline = time.monotonic() + 10
        while any(c.in_flight or not c.delivered or c.delivered[-1] != 11 for c in cameras):
            assert time.monotonic() < deadline, [c.delivered for c in cameras]
            time.sleep(0.01)
    finally:
        scheduler.stop()
    assert not scheduler.running
    for camera in cameras:
        assert camera.delivered == sorted(camera.delivered) and camera.delivered[-1] == 11, camera.delivered
    threads = {thread for _, thread, _, _ in log}
    assert len(threads) >= 2 if concurrent else len(threads) == 1, threads  # which threads: the OS's choice
    overlapping = any(a[3] > b[2] and b[3] > a[2] for a in log for b in log if a[0] != b[0])
    assert overlapping == concurrent


def test_losses_are_the_gaps_in_each_publishers_sequence_numbers():
    losses = LossCounter()
    assert [losses.sequence(b"camera", number) for number in (1, 2, 5, 6)] == [0, 0, 2, 0]  # 3 and 4 never came
    # another publisher on the topic numbers its own messages
    assert [losses.sequence(b"other", number) for number in (10, 11, 13)] == [0, 0, 1]
    assert [losses.sequence(b"camera", number) for number in (1, 2)] == [0, 0]  # a restarted camera


def test_without_sequence_numbers_losses_are_stamp_gaps_against_the_cameras_period():
    losses = LossCounter()
    period = 33_333_333  # 30 Hz
    stamps = [i * period + (i % 3) * 1_000_000 for i in range(10)]  # jitter of a millisecond or two
    last = stamps[-1]
    stamps += [last + 3 * period, last + 4 * period]  # two frames missing, then the next one
    stamps += [last + 8 * period]  # three more missing
    assert [losses.stamp(stamp) for stamp in stamps] == [0] * 10 + [2, 0, 3]
    assert losses.stamp(stamps[0]) == 0  # a stamp that goes back (a replayed bag): no loss, and no period from it
    assert losses.stamp(0) == 0  # a camera that does not stamp


def test_the_input_follows_the_publishers_reliability():
    from rclpy.qos import ReliabilityPolicy

    assert follow_publishers([ReliabilityPolicy.RELIABLE, ReliabilityPolicy.RELIABLE]) == "reliable"
    assert follow_publishers([ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT]) == "best_effort"
    assert follow_publishers([]) == "best_effort"  # none yet: hear whichever comes (then looked at again)


def test_unknown_parameters_are_named_with_the_closest_declared_one():
    given = {"overlay_alpah": 1, "mask_sise": "grid", "model": "x", "use_sim_time": True, "zzz_what": 1,
             "qos_overrides./image.subscription.reliability": "reliable"}
    assert unknown_parameters(given) == [("overlay_alpah", "overlay_alpha"), ("mask_sise", "mask_size"),
                                         ("zzz_what", None)]


def test_the_status_warns_when_bad_frames_come_or_losses_dominate():
    from diagnostic_msgs.msg import DiagnosticStatus

    before = (100, 90, 0, 0)  # received, processed, bad, lost at the last report
    assert health(130, 120, 0, 1, before) == (DiagnosticStatus.OK, "")  # 1 of 31 lost: within LOSS_WARN
    assert health(130, 120, 0, 10, before) == (DiagnosticStatus.WARN,
                                                "10 of 40 frames lost in transport since last report")
    assert health(110, 90, 10, 0, before) == (DiagnosticStatus.WARN, "10 bad since last report, none processed")
