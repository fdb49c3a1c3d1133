"""segnet_node in a child process, driven over real DDS from the test process."""

from __future__ import annotations

import os
import re
import signal
import struct
import sys
import time
import zlib

import cv2
import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import GetParameters
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_helpers import (
    HEIGHT,
    LATCHED,
    WIDTH,
    as_array,
    core_result,
    diagnostics_values,
    frame,
    header,
    publish_until,
    send_counted,
    set_parameter,
)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String, UInt32MultiArray

from segnet_ros.demo.harness import NodeProcess, stamp_of
from segnet_ros.node.conversions import array_to_image

pytestmark = pytest.mark.usefixtures("ros_context")


@pytest.mark.parametrize("pipeline", ["host", "graph"])
def test_every_output_keeps_the_header_and_agrees_with_the_core(start_node, probe, small_reference, pipeline):
    """On both pipelines: the graph's products are the host's (confidence within a level, where ONNX
    Runtime's Exp and numpy's put 255p on two sides of a level's edge)."""
    node = start_node({"pipeline": pipeline})
    assert f", pipeline {pipeline}; input QoS auto" in node.log()
    for topic in ("class_mask", "color_mask", "overlay", "confidence"):
        probe.subscribe(Image, topic)
    probe.subscribe(UInt32MultiArray, "class_histogram")
    pub = probe.publisher(Image, "image")
    probe.wait_matched(pub)
    image = frame(1)
    publish_until(probe, pub, array_to_image(header(), image, "bgr8"), "class_histogram")
    probe.wait_for(lambda: all(probe.messages(t) for t in ("class_mask", "color_mask", "overlay", "confidence")))

    expected = core_result(small_reference, image, "bgr8")
    encodings = {"class_mask": "mono8", "color_mask": "rgb8", "overlay": "bgr8", "confidence": "mono8"}
    for topic, encoding in encodings.items():
        msg = probe.messages(topic)[0]
        assert (msg.width, msg.height, msg.encoding) == (WIDTH, HEIGHT, encoding), topic
        assert msg.header.frame_id == "camera_optical" and msg.header.stamp.sec == 42, topic
        assert msg.header.stamp.nanosec == 250_000_000, topic
    mask = as_array(probe.messages("class_mask")[0])
    np.testing.assert_array_equal(mask, expected.class_mask())
    np.testing.assert_array_equal(as_array(probe.messages("overlay")[0]), expected.overlay())
    np.testing.assert_array_equal(as_array(probe.messages("color_mask")[0]), expected.color_mask())
    confidence = as_array(probe.messages("confidence")[0]).astype(int) - expected.confidence()
    assert np.abs(confidence).max() <= (0 if pipeline == "host" else 1)
    histogram = probe.messages("class_histogram")[0]
    assert sum(histogram.data) == WIDTH * HEIGHT
    assert list(histogram.data) == np.bincount(mask.ravel(), minlength=21).tolist()
    assert histogram.layout.dim[0].label == "class" and histogram.layout.dim[0].size == 21


def test_overlay_follows_rgb_input_and_other_encodings(start_node, probe, small_reference):
    start_node()
    probe.subscribe(Image, "overlay")
    probe.subscribe(Image, "class_mask")
    pub = probe.publisher(Image, "image")
    probe.wait_matched(pub)
    rgb = frame(2)[:, :, ::-1].copy()
    publish_until(probe, pub, array_to_image(header(), rgb, "rgb8"), "overlay")
    assert probe.messages("overlay")[0].encoding == "rgb8"
    # a padded mono8 image: step larger than the width
    grey = frame(3)[:, :, 1]
    padded = np.zeros((HEIGHT, WIDTH + 64), np.uint8)
    padded[:, :WIDTH] = grey
    msg = array_to_image(header(7.0), padded, "mono8")
    msg.width = WIDTH
    answer = publish_until(probe, pub, msg, "class_mask")
    expected = core_result(small_reference, grey, "mono8").class_mask()
    np.testing.assert_array_equal(as_array(answer), expected)


def test_compressed_input(start_node, probe, small_reference):
    start_node({"input_transport": "compressed"})
    probe.subscribe(Image, "class_mask")
    pub = probe.publisher(CompressedImage, "image/compressed")
    probe.wait_matched(pub)
    image = frame(4)
    ok, png = cv2.imencode(".png", image)
    msg = CompressedImage(header=header(), format="png")
    msg.data = png.tobytes()
    publish_until(probe, pub, msg, "class_mask")
    result = probe.messages("class_mask")[0]
    assert result.header.stamp.sec == 42
    np.testing.assert_array_equal(as_array(result), core_result(small_reference, image, "bgr8").class_mask())


def test_remapping_and_namespace(start_node, probe):
    start_node(remaps={"image": "/front_camera/image_raw"}, namespace="/robot1")
    probe.subscribe(Image, "/robot1/overlay")
    probe.subscribe(String, "/robot1/class_labels", LATCHED)
    pub = probe.publisher(Image, "/front_camera/image_raw")
    probe.wait_matched(pub)
    publish_until(probe, pub, array_to_image(header(), frame(), "bgr8"), "/robot1/overlay")
    probe.wait_for(lambda: probe.messages("/robot1/class_labels"), what="class_labels")


def test_class_labels_reach_late_joiners(start_node, probe):
    start_node({"overlay_alpha": 99})
    time.sleep(1.0)  # published long before this subscriber exists
    probe.subscribe(String, "class_labels", LATCHED)
    probe.wait_for(lambda: probe.messages("class_labels"), what="transient-local class_labels")
    labels = yaml.safe_load(probe.messages("class_labels")[0].data)
    assert len(labels["classes"]) == 21
    assert labels["classes"][1] == {"id": 1, "name": "class #1", "rgba": [128, 0, 0, 99]}


def test_runtime_parameters(start_node, probe):
    start_node()
    probe.subscribe(Image, "class_mask")
    probe.subscribe(String, "class_labels", LATCHED)
    pub = probe.publisher(Image, "image")
    probe.wait_matched(pub)
    first = publish_until(probe, pub, array_to_image(header(), frame(), "bgr8"), "class_mask")
    assert (first.width, first.height) == (WIDTH, HEIGHT)

    assert set_parameter(probe, "/segnet/set_parameters", "mask_size", "grid") == (True, "")
    grid_mask = publish_until(probe, pub, array_to_image(header(43.0), frame(), "bgr8"), "class_mask")
    assert (grid_mask.width, grid_mask.height) == (8, 4)

    for name, value, reason in (("overlay_alpha", 300, ""), ("filter_mode", "cubic", "filter_mode must be one of"),
                                ("mask_size", "half", "mask_size must be one of"),
                                ("ignore_class", "sky", "names no class of ref256"),
                                ("mask_size", "depth", "needs use_depth"),
                                ("model", "other.onnx", "read-only"), ("overlay_alpha", "high", "")):
        ok, text = set_parameter(probe, "/segnet/set_parameters", name, value)
        assert not ok, (name, value)
        assert reason.lower() in text.lower() and text, (name, text)

    assert set_parameter(probe, "/segnet/set_parameters", "ignore_class", "class #3") == (True, "")
    assert set_parameter(probe, "/segnet/set_parameters", "ignore_class", "") == (True, "")
    assert set_parameter(probe, "/segnet/set_parameters", "mask_size", "64x48") == (True, "")
    sized = publish_until(probe, pub, array_to_image(header(44.0), frame(), "bgr8"), "class_mask")
    assert (sized.width, sized.height) == (64, 48)
    assert set_parameter(probe, "/segnet/set_parameters", "overlay_alpha", 40) == (True, "")
    probe.wait_for(lambda: any("- 40" in m.data or ", 40]" in m.data for m in probe.messages("class_labels")),
                   what="class_labels with the new alpha")

    client = probe.node.create_client(GetParameters, "/segnet/get_parameters")
    assert client.wait_for_service(timeout_sec=20)
    future = client.call_async(GetParameters.Request(names=["class_names", "overlay_alpha"]))
    probe.wait_for(future.done, 20, "get_parameters")
    names, alpha = future.result().values
    assert list(names.string_array_value)[:2] == ["class #0", "class #1"] and alpha.integer_value == 40


def test_bad_frames_are_counted_and_survived(start_node, probe):
    start_node()
    probe.subscribe(Image, "class_mask")
    probe.subscribe(DiagnosticArray, "/diagnostics")
    pub = probe.publisher(Image, "image")
    probe.wait_matched(pub)
    good = array_to_image(header(), frame(), "bgr8")
    # a good frame answered first: both sides have matched, so nothing below is lost to discovery
    publish_until(probe, pub, good, "class_mask")
    probe.wait_for(lambda: probe.messages("/diagnostics"), what="diagnostics")
    unsupported = array_to_image(header(), np.zeros((4, 4, 4), np.uint8), "32FC1")
    truncated = array_to_image(header(), frame(), "bgr8")
    truncated.data = truncated.data[: len(truncated.data) // 2]
    empty = Image(header=header(), encoding="rgb8", width=0, height=0, step=0)
    odd_yuv = array_to_image(header(), np.zeros((4, 5, 2), np.uint8), "yuv422")
    huge = Image(header=header(), encoding="mono8", width=100_000, height=100_000, step=100_000)
    for count, bad in enumerate((unsupported, truncated, empty, odd_yuv, huge), start=1):
        send_counted(probe, pub, bad, "frames_bad", count)  # one at a time: the newest-frame slot drops none
    publish_until(probe, pub, array_to_image(header(43.0), frame(), "bgr8"), "class_mask")  # still serving
    assert diagnostics_values(probe)["frames_bad"] == "5"


def test_no_subscribers_means_no_inference(start_node, probe):
    start_node()
    probe.subscribe(DiagnosticArray, "/diagnostics")
    pub = probe.publisher(Image, "image")
    probe.wait_matched(pub)
    # the first one until it counts: the node may not have discovered this publisher yet
    send_counted(probe, pub, array_to_image(header(0), frame(), "bgr8"), "frames_skipped_no_subscribers", 1)
    for index in range(1, 11):
        pub.publish(array_to_image(header(index), frame(), "bgr8"))
        time.sleep(0.1)
    probe.wait_for(lambda: int(diagnostics_values(probe)["frames_skipped_no_subscribers"]) >= 6, what="skips")
    values = diagnostics_values(probe)
    assert values["frames_processed"] == "0" and values["inference_ms"] == "0.0"


def test_camera_info_is_scaled_to_the_mask(start_node, probe):
    start_node({"use_camera_info": True, "mask_size": "grid"})
    probe.subscribe(CameraInfo, "camera_info_mask")
    info_pub = probe.publisher(CameraInfo, "camera_info")
    pub = probe.publisher(Image, "image")
    probe.wait_matched(pub)
    probe.wait_matched(info_pub)
    info = CameraInfo(header=header(), width=WIDTH, height=HEIGHT, distortion_model="plumb_bob")
    info.k = [200.0, 0.0, 159.5, 0.0, 200.0, 119.5, 0.0, 0.0, 1.0]
    info.p = [200.0, 0.0, 159.5, -20.0, 0.0, 200.0, 119.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.d = [0.1, 0.0, 0.0, 0.0, 0.0]
    deadline = time.monotonic() + 30
    while not probe.messages("camera_info_mask") and time.monotonic() < deadline:
        info_pub.publish(info)
        pub.publish(array_to_image(header(), frame(), "bgr8"))
        time.sleep(0.3)
    scaled = probe.messages("camera_info_mask")[0]
    assert (scaled.width, scaled.height) == (8, 4) and scaled.header.stamp.sec == 42
    sx, sy = 8 / WIDTH, 4 / HEIGHT
    np.testing.assert_allclose(scaled.k, [200 * sx, 0, 160 * sx - 0.5, 0, 200 * sy, 120 * sy - 0.5, 0, 0, 1])
    assert scaled.p[3] == pytest.approx(-20 * sx) and list(scaled.d) == [0.1, 0, 0, 0, 0]


def test_overload_drops_frames_instead_of_queueing(start_node, probe, tmp_path):
    from segnet_ros.core.refnet import write_reference_model

    heavy = write_reference_model(tmp_path / "ref1024", 1024, 512, 21)  # ~250 ms per frame on 2 cores
    start_node({"model": str(heavy.onnx)})
    probe.subscribe(Image, "overlay")
    probe.subscribe(DiagnosticArray, "/diagnostics")
    pub = probe.publisher(Image, "image")
    probe.wait_matched(pub)
    image = frame(5)
    publish_until(probe, pub, array_to_image(header(time.time()), image, "bgr8"), "overlay")
    start = time.time()
    sent = 0
    while time.time() - start < 6.0:  # 40 Hz
        pub.publish(array_to_image(header(time.time()), image, "bgr8"))
        sent += 1
        time.sleep(0.025)
    time.sleep(1.0)
    received = [(arrival, m) for arrival, m in probe.timed("overlay") if stamp_of(m) >= start]
    latencies = [arrival - stamp_of(m) for arrival, m in received]
    processed_hz = len(received) / 6.0
    assert sent / 6.0 >= 3 * processed_hz, f"not overloaded: {sent} sent, {len(received)} processed"
    # Bounds relative to this run's own frame period, so a slower machine does not fail a correct node:
    # newest-frame slots keep latency within a few periods, a queue would grow it by seconds.
    period = 1.0 / processed_hz
    late = latencies[len(latencies) // 2:]
    assert max(latencies) < 5 * period + 0.2, f"latency grew to {max(latencies):.2f} s (period {period:.2f} s)"
    assert np.mean(late) < 3 * period + 0.1, f"latency {np.mean(late):.2f} s in the second half (period {period:.2f})"
    probe.wait_for(lambda: int(diagnostics_values(probe)["frames_dropped"]) > 0, what="drops in diagnostics")


@pytest.mark.parametrize("params,message", [
    ({"model": "/nonexistent/fcn_resnet18.onnx"}, "model file not found"),
    ({"model": "fcn-resnet18-deepscene"}, "install it with: segnet-ros models download fcn-resnet18-deepscene"),
    ({"model": "fcn-resnet18-citiscapes"}, "fcn-resnet18-cityscapes"),
    ({"mask_size": "half"}, "mask_size must be one of"),
    ({"overlay_alpha": 999}, "overlay_alpha"),
    ({"ignore_class": "skyy"}, "ignore_class 'skyy' names no class of ref256"),
    ({"mask_size": "depth"}, "mask_size depth needs use_depth:=true"),
    ({"mask_size": "640x0"}, "mask_size must be one of input, grid, depth or WxH"),
])
def test_startup_failure_is_one_error_line(tmp_path, small_reference, params, message):
    merged = {"model": str(small_reference.onnx), "backend": "onnxruntime", **params}
    node = NodeProcess(tmp_path / "fail.log", merged)
    assert node.process.wait(timeout=60) == 1
    node.stop()
    lines = [line for line in node.log().splitlines() if line.strip()]
    assert len(lines) == 1 and "[FATAL]" in lines[0] and message in lines[0], node.log()


def test_auto_download_installs_a_missing_model_at_start_up(tmp_path, probe, model_server, zoo_dirs, monkeypatch):
    from segnet_ros.zoo.registry import lookup

    from zoo_helpers import make_archive, zoo_folder

    deepscene = lookup("fcn-resnet18-deepscene")
    archive = make_archive(tmp_path / "archive.tar.gz", zoo_folder(tmp_path / "src", deepscene))
    model_server.publish(archive, f"{deepscene.dir}.tar.gz")
    monkeypatch.setenv("SEGNET_ROS_MODEL_URL_BASE", model_server.url_base)
    node = NodeProcess(tmp_path / "download.log", {"model": "fcn-resnet18-deepscene", "auto_download": True,
                                                   "backend": "onnxruntime"})
    try:
        node.wait_ready()
        assert "fcn-resnet18-deepscene-576x320 (576x320, 5 classes)" in node.log()
        assert (zoo_dirs.models / deepscene.dir / "fcn_resnet18.onnx").is_file()
        probe.subscribe(Image, "class_mask")
        pub = probe.publisher(Image, "image")
        probe.wait_matched(pub)
        publish_until(probe, pub, array_to_image(header(), frame(), "bgr8"), "class_mask")
    finally:
        node.stop()


def test_tensorrt_backend_in_the_node(tmp_path, probe, small_reference, fake_trt, monkeypatch):
    """backend:=tensorrt with the contract-enforcing fakes: the whole frame runs in the engine by default
    (pipeline auto: graph), says so, gives the host's answer; the engines are cached and reused."""
    monkeypatch.setenv("PYTHONPATH", fake_trt.child_env()["PYTHONPATH"])
    cache = tmp_path / "engines"
    params = {"model": str(small_reference.onnx), "backend": "tensorrt", "engine_cache_dir": str(cache),
              "precision": "fp32"}
    node = NodeProcess(tmp_path / "trt.log", params)
    try:
        node.wait_ready()
        assert "on tensorrt (Fake Orin GPU, fp32), pipeline graph;" in node.log()
        probe.subscribe(Image, "class_mask")
        probe.subscribe(DiagnosticArray, "/diagnostics")
        pub = probe.publisher(Image, "image")
        probe.wait_matched(pub)
        image = frame(6)
        publish_until(probe, pub, array_to_image(header(), image, "bgr8"), "class_mask")
        expected = core_result(small_reference, image, "bgr8").class_mask()
        np.testing.assert_array_equal(as_array(probe.messages("class_mask")[0]), expected)
        probe.wait_for(lambda: diagnostics_values(probe).get("pipeline") == "graph", 10, "pipeline in diagnostics")
    finally:
        assert node.stop() == 0, node.log()
    # the model's engine (built at start-up) and the camera's whole-frame engine (at its first frame)
    assert fake_trt.builds() == 2 and len(list(cache.glob("*.engine"))) == 2
    assert len(list(cache.glob("*-320x240-bgr8-graph-*.engine"))) == 1
    again = NodeProcess(tmp_path / "trt2.log", params)
    try:
        again.wait_ready()
    finally:
        again.stop()
    assert fake_trt.builds() == 2, "the cached engine was not reused"


def test_shutdown_stops_the_workers_and_releases_the_backend(small_reference):
    from rclpy.parameter import Parameter

    from segnet_ros.node.segnet_node import SegnetNode

    node = SegnetNode(parameter_overrides=[Parameter("model", value=str(small_reference.onnx)),
                                           Parameter("backend", value="onnxruntime")])
    released = []
    backend = node.segmenter.net.backend
    close = backend.close
    backend.close = lambda: (released.append(True), close())
    workers = node.segmenter.threads
    assert [w.name for w in workers] == ["segnet-infer", "segnet-publish-camera", "segnet-encode-camera"]
    assert all(w.is_alive() for w in workers)
    node.destroy_node()
    assert not any(w.is_alive() for w in workers), "a worker thread outlived the node"
    assert released == [True]


@pytest.mark.parametrize("signum, delay", [(signal.SIGINT, 0.8), (signal.SIGINT, 1.5), (signal.SIGTERM, 1.0)])
def test_stopping_during_start_up_is_quiet(tmp_path, signum, delay):
    """Ctrl-C or SIGTERM while the node is still importing or building its session: status 0, no traceback."""
    from segnet_ros.core.refnet import write_reference_model

    heavy = write_reference_model(tmp_path / "ref1024", 1024, 512, 21)  # a session that takes a while
    node = NodeProcess(tmp_path / "early.log", {"model": str(heavy.onnx), "backend": "onnxruntime"})
    try:
        time.sleep(delay)
        node.process.send_signal(signum)
        assert node.process.wait(timeout=30) == 0, node.log()
    finally:
        node.stop()  # a node that did not stop is killed: it must not serve the next tests' topics
    assert "Traceback" not in node.log() and "ERROR" not in node.log(), node.log()


STUBBORN_NODE = """
import sys, time
import segnet_ros.node.main as main
import segnet_ros.node.segnet_node as segnet_node

class Stubborn:
    def __init__(self):
        announced = False
        while True:  # a library that swallows the interrupt and never returns
            try:  # announce inside the try: the handler may run as print returns
                if not announced:
                    announced = True
                    print("building", flush=True)
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass

main.STOP_GRACE_S = 1.0
segnet_node.SegnetNode = Stubborn
sys.exit(main.main([]))
"""


def test_a_stop_that_cannot_finish_still_ends_the_process(tmp_path):
    """Whatever a library does with the interrupt, the process is gone soon after the signal, status 0,
    saying where each thread was (so a rare hang can be diagnosed from the log)."""
    import subprocess

    from segnet_ros.demo.harness import private_ros_environment

    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN_NODE)
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, **private_ros_environment()})
    try:
        assert process.stdout.readline().strip() == "building"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "still running 1 s after the stop signal; exiting" in output, output
    dump = output.split("Where each thread was:", 1)[1]
    assert "most recent call first" in dump and re.search(r'stubborn\.py", line \d+ in __init__', dump), output


def test_shutdown_under_load_reports_nothing(start_node, probe):
    """SIGINT while frames are in flight: the workers stop before the context, so no spurious error."""
    node = start_node()
    for topic in ("overlay", "class_mask", "color_mask"):
        probe.subscribe(Image, topic)
    pub = probe.publisher(Image, "image")
    probe.wait_matched(pub)
    msg = array_to_image(header(), frame(8), "bgr8")
    publish_until(probe, pub, msg, "overlay")
    for _ in range(40):  # far faster than the node: it is mid-frame whenever the signal comes
        pub.publish(msg)
        time.sleep(0.01)
    assert node.stop() == 0, node.log()
    log = node.log()
    assert "frame failed" not in log and "Traceback" not in log and "ERROR" not in log, log


def test_core_log_records_reach_rosout_under_the_namespaced_name(start_node, probe):
    from rcl_interfaces.msg import Log

    probe.subscribe(Log, "/rosout", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                               durability=DurabilityPolicy.TRANSIENT_LOCAL))
    start_node({"backend": "auto"}, namespace="/robot1")  # "backend auto chose ..." comes from the core
    probe.wait_for(lambda: any(m.name == "robot1.segnet" and "backend auto chose" in m.msg
                               for m in probe.messages("/rosout")), what="the core's record in /rosout")


def test_compressed_frames_declaring_huge_sizes_are_bad_frames(start_node, probe):
    node = start_node({"input_transport": "compressed", "max_input_pixels": 1_000_000})
    probe.subscribe(Image, "class_mask")
    probe.subscribe(DiagnosticArray, "/diagnostics")
    pub = probe.publisher(CompressedImage, "image/compressed")
    probe.wait_matched(pub)
    ok, png = cv2.imencode(".png", frame(9))
    good = CompressedImage(header=header(), format="png")
    good.data = png.tobytes()
    publish_until(probe, pub, good, "class_mask")
    ihdr = struct.pack(">II5B", 100_000, 100_000, 8, 2, 0, 0, 0)  # a PNG header declaring 100000x100000
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    bomb = CompressedImage(header=header(), format="png")
    bomb.data = b"\x89PNG\r\n\x1a\n" + chunk + png.tobytes()[33:]
    ok, big = cv2.imencode(".jpg", np.zeros((1100, 1000, 3), np.uint8))  # valid, but over max_input_pixels
    large = CompressedImage(header=header(), format="jpeg")
    large.data = big.tobytes()
    for count, bad in enumerate((bomb, large), start=1):
        send_counted(probe, pub, bad, "frames_bad", count)
    log = node.log()
    assert "max_input_pixels" in log and "frame failed" not in log and "libpng" not in log, log


def test_compressed_outputs_decode_to_the_raw_ones_and_cost_nothing_unsubscribed(start_node, probe):
    """class_mask/compressed is lossless PNG, overlay and color_mask JPEG, as image_transport's
    compressed plugin writes them (RViz reads them); nothing is encoded while nobody subscribes."""
    start_node({"jpeg_quality": 95})
    probe.subscribe(Image, "class_mask")
    probe.subscribe(Image, "overlay")
    probe.subscribe(DiagnosticArray, "/diagnostics")
    pub = probe.publisher(Image, "image")
    probe.wait_matched(pub)
    image = frame(5)
    send_counted(probe, pub, array_to_image(header(7.5), image, "bgr8"), "frames_processed", 1)
    assert diagnostics_values(probe)["frames_compressed"] == "0"  # only raw outputs are subscribed
    for topic in ("class_mask/compressed", "overlay/compressed", "color_mask/compressed"):
        probe.subscribe(CompressedImage, topic)
    probe.wait_for(lambda: all(probe.node.get_publishers_info_by_topic(t) for t in ("overlay/compressed",)))
    time.sleep(0.5)  # the node's publishers see the new subscribers
    publish_until(probe, pub, array_to_image(header(8.5), image, "bgr8"), "color_mask/compressed")
    probe.wait_for(lambda: probe.messages("class_mask/compressed") and probe.messages("overlay/compressed"))
    packed = probe.messages("class_mask/compressed")[-1]
    assert packed.format == "mono8; png compressed mono8" and packed.header.stamp.sec == 8
    raw = next(m for m in probe.messages("class_mask") if m.header.stamp.sec == 8)
    decoded = cv2.imdecode(np.frombuffer(bytes(packed.data), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded, as_array(raw))  # class ids survive exactly
    jpeg = probe.messages("overlay/compressed")[-1]
    assert jpeg.format == "bgr8; jpeg compressed bgr8" and jpeg.header.frame_id == "camera_optical"
    overlay = next(m for m in probe.messages("overlay") if m.header.stamp.sec == 8)
    error = np.abs(cv2.imdecode(np.frombuffer(bytes(jpeg.data), np.uint8), cv2.IMREAD_COLOR).astype(int)
                   - as_array(overlay).astype(int))
    assert error.mean() < 3 and len(jpeg.data) < as_array(overlay).nbytes / 4
    assert probe.messages("color_mask/compressed")[-1].format == "rgb8; jpeg compressed bgr8"
    probe.wait_for(lambda: int(diagnostics_values(probe).get("frames_compressed", 0)) >= 1)


def test_diagnostics_carry_the_per_stage_figures(start_node, probe):
    start_node()
    probe.subscribe(Image, "class_mask")
    probe.subscribe(DiagnosticArray, "/diagnostics")
    pub = probe.publisher(Image, "image")
    probe.wait_matched(pub)
    send_counted(probe, pub, array_to_image(header(), frame(6), "bgr8"), "frames_processed", 1)
    probe.wait_for(lambda: float(diagnostics_values(probe).get("stage_inference_ms", 0)) > 0)
    values = {k: float(v) for k, v in diagnostics_values(probe).items() if k.startswith(("stage_", "cpu_"))}
    assert set(values) == {"stage_wait_ms", "stage_inference_ms", "stage_render_publish_ms", "cpu_decode_ms",
                           "cpu_preprocess_ms", "cpu_render_publish_ms"}
    assert values["cpu_preprocess_ms"] > 0 and values["cpu_render_publish_ms"] > 0 and values["stage_wait_ms"] >= 0
    # the stages lie inside the frame's whole latency
    latency = float(diagnostics_values(probe)["latency_ms"])
    assert values["stage_wait_ms"] + values["stage_inference_ms"] + values["stage_render_publish_ms"] <= latency + 0.5
