"""``segnet-ros bag`` end to end: bags written here with rosbags (MCAP and SQLite 3), the oracle model,
real ONNX Runtime; outputs compared with what the core gives for the same frames."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from segnet_ros.backends import BackendOptions, create_backend
from segnet_ros.core.model import ModelFiles, load_model
from segnet_ros.core.outputs import class_labels_text
from segnet_ros.core.segnet import SegNet, SegNetSettings

from bag_helpers import (
    CHATTER,
    FRONT,
    PERIOD_NS,
    REAR,
    REAR_SIZE,
    image_bytes,
    pixels,
    read_bag,
    stamp_ns,
    store,
    write_scene,
)
from conftest import ROOT, run_cli
from oracle import NAMES

CAMERA_OUTPUTS = ("class_mask", "confidence", "class_histogram", "color_mask", "overlay")
NAMESPACES = {FRONT: "/front", REAR: "/rear"}


@pytest.fixture(scope="module")
def net(oracle_dir):
    """The core, as the command builds it for these arguments: the ground truth of every output."""
    model = load_model(ModelFiles.in_folder(oracle_dir))
    return SegNet(model, create_backend("onnxruntime", model, BackendOptions(device="cpu")),
                  SegNetSettings(ignore_class=""))


def model_args(oracle_dir) -> list[str]:
    return ["--model", str(oracle_dir / "fcn_resnet18.onnx"), "--backend", "onnxruntime", "--device", "cpu",
            "--ignore-class", "", "--no-progress"]


def bag(oracle_dir, *args: str) -> int:
    """The command in this process (faster than a child); its exit status."""
    from segnet_ros.cli.main import main

    try:
        return main(["bag", *map(str, args), *model_args(oracle_dir)])
    except SystemExit as exc:  # argparse's refusals
        return int(exc.code)


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segnet-ros: error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    base = tmp_path_factory.mktemp("scenes")
    return {storage: write_scene(base / storage, storage) for storage in ("mcap", "sqlite3")}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_every_frame_is_segmented_as_the_core_does(storage, scenes, net, oracle_dir, tmp_path, capsys):
    scene = scenes[storage]
    out = tmp_path / "out"
    assert bag(oracle_dir, scene.path, out) == 0
    topics, types = read_bag(out)
    expected = {f"{ns}/{name}" for ns in NAMESPACES.values() for name in (*CAMERA_OUTPUTS, "class_labels",
                                                                          "label_info")}
    assert set(topics) == expected  # no inputs, no /chatter: only what was asked for
    for topic, sent_topic in ((t, s) for s in NAMESPACES for t in topics if t.startswith(NAMESPACES[s] + "/")):
        name = topic.rsplit("/", 1)[1]
        assert types[topic] == {"class_histogram": "std_msgs/msg/UInt32MultiArray",
                                "class_labels": "std_msgs/msg/String",
                                "label_info": "vision_msgs/msg/LabelInfo"}.get(name, "sensor_msgs/msg/Image")
        sent = scene.frames(sent_topic)
        if name in ("class_labels", "label_info"):
            assert [log for log, _, _ in topics[topic]] == [sent[0].log_ns]  # once, at the first frame's receive time
            continue
        assert [log for log, _, _ in topics[topic]] == [s.log_ns for s in sent]  # one per frame, receive times kept
        for (_, msg, _), frame in zip(topics[topic], sent, strict=True):
            seg = net.process(frame.frame, frame.encoding)
            if name == "class_histogram":
                assert [(d.label, d.size, d.stride) for d in msg.layout.dim] == [("class", 8, 8)]
                assert msg.data.dtype == np.uint32 and np.array_equal(msg.data, seg.histogram())
                continue
            assert stamp_ns(msg.header) == frame.stamp_ns and msg.header.frame_id == frame.frame_id
            want = {"class_mask": (seg.class_mask, "mono8"), "confidence": (seg.confidence, "mono8"),
                    "color_mask": (seg.color_mask, "rgb8"),
                    "overlay": (seg.overlay, "bgr8" if frame.encoding == "bgr8" else "rgb8")}[name]
            assert msg.encoding == want[1]
            assert np.array_equal(pixels(msg), want[0]())
            if name == "class_mask":
                assert len(np.unique(pixels(msg))) > 3  # the oracle saw real content, not one flat class
    labels = topics["/front/label_info"][0][1]
    assert [(c.class_id, c.class_name) for c in labels.class_map] == list(enumerate(NAMES))
    assert labels.threshold == pytest.approx(0.5)
    assert stamp_ns(labels.header) == scene.frames(FRONT)[0].log_ns
    text = topics["/rear/class_labels"][0][1].data
    assert text == class_labels_text(oracle_dir.name, net.class_names, net.model.classes.rgba(150))
    assert yaml.safe_load(text)["classes"][1] == {"id": 1, "name": "red", "rgba": [255, 0, 0, 150]}
    summary = capsys.readouterr().out
    assert f"{FRONT} -> /front/*: 5 frames segmented" in summary and f"{REAR} -> /rear/*: 4 frames" in summary
    assert "9 frames of 2 topics" in summary


def test_the_same_bag_gives_the_same_bytes(scenes, oracle_dir, tmp_path):
    scene = scenes["mcap"]
    for run in ("a", "b"):
        assert bag(oracle_dir, scene.path, tmp_path / run / "out", "--copy-all") == 0
        assert bag(oracle_dir, scene.path, tmp_path / run / "single.mcap", "--compression", "zstd") == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert [str(f) for f in files] == ["out/metadata.yaml", "out/out.mcap", "single.mcap"]
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_a_bad_frame_is_counted_and_reported_and_the_rest_processed(oracle_dir, net, tmp_path, capsys):
    scene = write_scene(tmp_path / "bad", "mcap", bad_front=(1, 3))
    out = tmp_path / "out"
    assert bag(oracle_dir, scene.path, out, "--copy-inputs") == 0
    topics, _ = read_bag(out)
    good = [s for s in scene.frames(FRONT) if s.frame is not None]
    assert len(good) == 3
    assert [stamp_ns(m.header) for _, m, _ in topics["/front/class_mask"]] == [s.stamp_ns for s in good]
    for (_, msg, _), frame in zip(topics["/front/class_mask"], good, strict=True):
        assert np.array_equal(pixels(msg), net.process(frame.frame, "rgb8").class_mask())
    assert len(topics["/rear/overlay"]) == 4
    assert len(topics[FRONT]) == 5  # the copy keeps the bad frames: the bag plays back whole
    summary = capsys.readouterr().out
    assert f"{FRONT} -> /front/*: 3 frames segmented, 2 bad frames skipped" in summary
    assert "skipped 2x: unsupported encoding 'yuv444'" in summary


def _truncated_mcap(scene_path: Path, target: Path) -> Path:
    data = next(scene_path.glob("*.mcap")).read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def _truncated_db3(scene_path: Path, target: Path) -> Path:
    target.mkdir()
    (target / "metadata.yaml").write_text((scene_path / "metadata.yaml").read_text().replace("sqlite3.db3", "t.db3"))
    data = (scene_path / "sqlite3.db3").read_bytes()
    (target / "t.db3").write_bytes(data[: len(data) // 3])
    return target


@pytest.mark.parametrize("case", ["missing", "not-a-bag-folder", "not-mcap", "truncated-mcap", "truncated-db3"])
def test_a_missing_or_damaged_bag_is_one_clear_line(case, scenes, oracle_dir, tmp_path):
    made = {
        "missing": lambda: tmp_path / "nowhere",
        "not-a-bag-folder": lambda: (tmp_path / "folder").mkdir() or tmp_path / "folder",
        "not-mcap": lambda: (tmp_path / "x.mcap").write_text("hello") and tmp_path / "x.mcap",
        "truncated-mcap": lambda: _truncated_mcap(scenes["mcap"].path, tmp_path / "cut.mcap"),
        "truncated-db3": lambda: _truncated_db3(scenes["sqlite3"].path, tmp_path / "cut"),
    }[case]()
    out = tmp_path / "out"
    result = run_cli("bag", str(made), str(out), *model_args(oracle_dir))
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert str(made) in line
    words = {"missing": "not found", "not-a-bag-folder": "without metadata.yaml"}.get(case, "cannot read bag")
    assert words in line
    if case.startswith("truncated"):
        assert "reindex" in line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_an_existing_output_is_refused_unless_overwrite(scenes, oracle_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert bag(oracle_dir, scenes["mcap"].path, out) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "exists" in line and "--overwrite" in line
    assert (out / "keep.txt").read_text() == "mine"
    assert bag(oracle_dir, scenes["mcap"].path, out, "--overwrite") == 0
    assert not (out / "keep.txt").exists() and len(read_bag(out)[0]["/front/overlay"]) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no private folder left behind
    capsys.readouterr()
    assert bag(oracle_dir, scenes["mcap"].path, scenes["mcap"].path, "--overwrite") == 1  # never the input itself
    assert "is the input" in one_error_line(capsys.readouterr().err)


def test_copy_inputs_and_copy_all(scenes, oracle_dir, tmp_path):
    scene = scenes["sqlite3"]
    source, source_types = read_bag(scene.path)
    for flag, copied in (("--copy-inputs", {FRONT, REAR}), ("--copy-all", {FRONT, REAR, CHATTER})):
        out = tmp_path / flag
        assert bag(oracle_dir, scene.path, out, flag) == 0
        topics, types = read_bag(out)
        assert {t for t in topics if not t.startswith(("/front/", "/rear/"))} | {FRONT, REAR} & set(topics) == copied
        for topic in copied:
            assert [(log, raw) for log, _, raw in topics[topic]] == [(log, raw) for log, _, raw in source[topic]]
            assert types[topic] == source_types[topic]
        assert len(topics["/front/class_mask"]) == 5


def test_video_of_one_topic_at_the_bags_rate(scenes, oracle_dir, net, tmp_path):
    scene = scenes["mcap"]
    for visualize, width in (("overlay", REAR_SIZE[0]), ("overlay,mask", REAR_SIZE[0] + REAR_SIZE[0] // 2)):
        video = tmp_path / f"{visualize}.avi"  # MJPG: present in every OpenCV build
        assert bag(oracle_dir, scene.path, tmp_path / f"out-{visualize}", "--video", video,
                   "--video-topic", REAR, "--visualize", visualize) == 0
        capture = cv2.VideoCapture(str(video))
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(1e9 / PERIOD_NS, rel=1e-3)
        frames = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(image)
        capture.release()
        assert len(frames) == 4 and frames[0].shape == (REAR_SIZE[1], width, 3)
        overlay = net.process(scene.frames(REAR)[0].frame, "bgr8").overlay()  # BGR input: a BGR overlay
        assert np.abs(frames[0][:, : REAR_SIZE[0]].astype(int) - overlay).mean() < 8  # lossy MJPG, same picture
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_outputs_mask_size_and_namespace_options(scenes, oracle_dir, net, tmp_path):
    scene = scenes["mcap"]
    out = tmp_path / "out"
    assert bag(oracle_dir, scene.path, out, "--topic", f"{REAR}:=/back", "--outputs", "class_mask,label_info",
               "--mask-size", "grid", "--label-threshold", "0.25") == 0
    topics, _ = read_bag(out)
    assert set(topics) == {"/back/class_mask", "/back/label_info"}
    first = scene.frames(REAR)[0]
    mask = pixels(topics["/back/class_mask"][0][1])
    assert mask.shape == (4, 8) and np.array_equal(mask, net.process(first.frame, "bgr8").grid)
    assert topics["/back/label_info"][0][1].threshold == pytest.approx(0.25)


def test_single_mcap_files_in_and_out(scenes, oracle_dir, tmp_path):
    single = next(scenes["mcap"].path.glob("*.mcap"))
    out = tmp_path / "segmented.mcap"
    assert bag(oracle_dir, single, out, "--mask-size", "40x20") == 0
    assert out.is_file()
    topics, _ = read_bag(out)
    assert pixels(topics["/front/confidence"][0][1]).shape == (20, 40)
    assert len(topics["/rear/class_histogram"]) == 4 and topics["/rear/class_histogram"][0][1].data.sum() == 800


@pytest.mark.parametrize(("args", "words"), [
    (("--outputs", "class_mask,points"), "argument --outputs"),
    (("--mask-size", "depth"), "depth needs a paired depth camera"),
    (("--label-threshold", "2"), "argument --label-threshold"),
    (("--topic", "/nope"), "topic '/nope' is not in bag"),
    (("--topic", CHATTER), "not a sensor_msgs/Image"),
    (("--video", "v.txt"), "must be a video file"),
    (("--video", "v.avi", "--video-topic", CHATTER), "not one of the segmented topics"),
])
def test_bad_arguments_are_one_line(args, words, scenes, oracle_dir, tmp_path, capsys):
    assert bag(oracle_dir, scenes["mcap"].path, tmp_path / "out", *args) == 1
    assert words in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def no_vision_msgs(monkeypatch, tmp_path):
    """As where neither this source tree's msgs/ nor any vision_msgs install can be found."""
    from segnet_ros.bag import typestore

    monkeypatch.setattr(typestore, "vision_msgs_folders", lambda: [tmp_path / "nowhere"])
    typestore.typestore.cache_clear()
    yield
    typestore.typestore.cache_clear()


def test_without_vision_msgs_label_info_is_left_out_with_a_warning(no_vision_msgs, scenes, oracle_dir, tmp_path,
                                                                  capsys):
    assert bag(oracle_dir, scenes["mcap"].path, tmp_path / "out", "--topic", FRONT) == 0
    assert "warning: not writing label_info: label_info needs vision_msgs" in capsys.readouterr().err
    topics, _ = read_bag(tmp_path / "out")
    assert "/front/class_labels" in topics and "/front/label_info" not in topics
    assert bag(oracle_dir, scenes["mcap"].path, tmp_path / "asked", "--outputs", "label_info") == 1
    assert "leave label_info out of --outputs" in one_error_line(capsys.readouterr().err)


def test_progress_shows_the_time_left(monkeypatch):
    import io
    import time

    from segnet_ros.cli.bag import BagProgress

    stream = io.StringIO()
    progress = BagProgress(40, stream=stream, enabled=True)
    progress._start = 100.0  # ten seconds for the first ten frames: thirty seconds to go
    monkeypatch.setattr(time, "perf_counter", lambda: 110.0)
    progress.update(10)
    assert stream.getvalue().endswith("] 10/40 frames  1.0 fps  ETA 0:30")


def _camera_bag(path: Path, topics: dict[str, tuple[str, str]]) -> None:
    """One message per topic: {topic: (msgtype, encoding)}."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = store()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for i, (topic, (msgtype, encoding)) in enumerate(sorted(topics.items())):
            connection = writer.add_connection(topic, msgtype, typestore=ts)
            if msgtype.endswith("/Image"):
                frame = np.zeros((4, 6, 2 if encoding == "16UC1" else 3), np.uint8)
                data = image_bytes(ts, 0, "cam", frame, encoding)
            else:
                data = ts.serialize_cdr(ts.types[msgtype](
                    header=ts.types["std_msgs/msg/Header"](stamp=ts.types["builtin_interfaces/msg/Time"](0, 0),
                                                           frame_id=""),
                    format="jpeg", data=np.zeros(3, np.uint8)), msgtype)
            writer.write(connection, 1000 + i, data)


def test_automatic_topic_choice(tmp_path):
    from segnet_ros.bag.reader import BagReader
    from segnet_ros.bag.topics import namespace_of, plan_topics
    from segnet_ros.bag.typestore import BagError

    image, compressed = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"
    _camera_bag(tmp_path / "cams", {"/cam/image_raw": (image, "rgb8"), "/cam/image_raw/compressed": (compressed, ""),
                                    "/cam/depth/image_raw": (image, "16UC1"), "/side/image": (image, "bgr8"),
                                    "/side/image/compressedDepth": (compressed, ""),
                                    "/side/overlay": (image, "rgb8")})
    with BagReader(tmp_path / "cams") as reader:
        plans, notes = plan_topics(reader, [])
        assert [(p.topic.name, p.namespace) for p in plans] == [("/cam/image_raw", "/cam"), ("/side/image", "/side")]
        assert len(notes) == 4 and any("16UC1" in n for n in notes)
        assert any(n.startswith("not segmenting /side/overlay: it is a segnet_ros output") for n in notes)
        plans, _ = plan_topics(reader, [("/cam/image_raw/compressed", None)])
        assert [(p.topic.name, p.namespace) for p in plans] == [("/cam/image_raw/compressed", "/cam")]
        with pytest.raises(BagError, match="would both write /cam/class_mask"):
            plan_topics(reader, [("/cam/image_raw", None), ("/cam/image_raw/compressed", None)])
        with pytest.raises(BagError, match="would write its own outputs over it"):
            plan_topics(reader, [("/side/overlay", None)])
    assert namespace_of("/image", False) == "" and namespace_of("/a/b/image_rect/compressed", True) == "/a/b"


BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv.pop(1).split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked by the test")
sys.meta_path.insert(0, Block())
import segnet_ros.cli.bag, segnet_ros.bag.pipeline  # the bag tool: beside the CLI, never on the node
assert not [m for m in sys.modules if m.startswith("segnet_ros.node")]
from segnet_ros.cli.main import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
sys.exit(code)
"""
ROS = "rclpy,rosidl_runtime_py,rpyutils,sensor_msgs,std_msgs,vision_msgs,builtin_interfaces"


def test_runs_without_ros_and_says_when_rosbags_is_missing(scenes, oracle_dir, tmp_path):
    def child(blocked: str, out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", BLOCKER, blocked, "bag", str(scenes["mcap"].path), str(out),
                               *model_args(oracle_dir)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})

    result = child(ROS, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert len(read_bag(tmp_path / "out")[0]["/front/class_mask"]) == 5
    result = child(ROS + ",rosbags", tmp_path / "none")
    assert result.returncode == 1
    assert "needs the rosbags package: pip install 'segnet_ros[bag]'" in one_error_line(result.stderr)


def test_a_damaged_message_is_a_bad_frame(oracle_dir, tmp_path, capsys):
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = store()
    with Writer(tmp_path / "in", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection(FRONT, "sensor_msgs/msg/Image", typestore=ts)
        good = image_bytes(ts, 5, "cam", np.full((32, 64, 3), 200, np.uint8), "rgb8")
        writer.write(connection, 10, good)
        writer.write(connection, 20, bytes(good[:40]))  # cut inside the header
        writer.write(connection, 30, image_bytes(ts, 6, "cam", np.zeros((32, 64, 3), np.uint8), "rgb8")[:-100])
        writer.write(connection, 40, good)
    assert bag(oracle_dir, tmp_path / "in", tmp_path / "out") == 0
    assert [log for log, _, _ in read_bag(tmp_path / "out")[0]["/front/overlay"]] == [10, 40]
    summary = capsys.readouterr().out
    assert "2 frames segmented, 2 bad frames skipped" in summary
    assert summary.count("skipped 1x: cannot deserialize sensor_msgs/msg/Image") == 2


def test_the_benchmark_prints_its_figures(oracle_dir):
    """It keeps running (its figures are read by people, not asserted here)."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bag_benchmark.py"), "--model",
                             str(oracle_dir / "fcn_resnet18.onnx"), "--frames", "3", "--repeat", "1", "--width", "64",
                             "--height", "48", "--compressed"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for figure in ("CPU:", "bare backend run:", "bag pipeline (", "process CPU per frame:", "bag / bare backend:"):
        assert figure in result.stdout


def test_an_interrupted_run_stops_every_stage_and_leaves_nothing(scenes, net, tmp_path):
    import threading

    from segnet_ros.bag.pipeline import BagPipeline
    from segnet_ros.bag.reader import BagReader
    from segnet_ros.bag.topics import plan_topics
    from segnet_ros.bag.writer import BagWriter

    seen = []

    def ctrl_c(plan, timestamp, segmentation):
        seen.append(timestamp)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with BagReader(scenes["mcap"].path) as reader:
        writer = BagWriter(tmp_path / "out").open()
        pipeline = BagPipeline(reader, writer, net, plan_topics(reader, [])[0])
        with pytest.raises(KeyboardInterrupt):
            pipeline.run(ctrl_c)
        writer.abort()
    assert len(seen) == 2
    assert not [t for t in threading.enumerate() if t.name.startswith("segnet-bag-")]
    assert list(tmp_path.iterdir()) == []


def test_several_inference_threads_write_the_same_bytes_in_bag_order(scenes, oracle_dir, tmp_path):
    """Frames finish out of order on two workers; the writer still takes them in bag order."""
    for storage, scene in scenes.items():
        outputs = {}
        for workers in ("1", "2", "3"):
            out = tmp_path / storage / workers / "out.mcap"
            assert bag(oracle_dir, scene.path, out, "--workers", workers, "--copy-all") == 0
            outputs[workers] = out.read_bytes()
        assert outputs["2"] == outputs["1"] and outputs["3"] == outputs["1"], storage
        topics, _ = read_bag(out)
        for namespace, count in (("/front", 5), ("/rear", 4)):
            stamps = [stamp_ns(msg.header) for _, msg, _ in topics[f"{namespace}/class_mask"]]
            assert len(stamps) == count and stamps == sorted(stamps)


def test_workers_need_a_backend_that_takes_concurrent_calls(scenes, net, tmp_path):
    from segnet_ros.bag.pipeline import BagPipeline, BagSettings
    from segnet_ros.bag.reader import BagReader
    from segnet_ros.bag.topics import plan_topics
    from segnet_ros.bag.writer import BagWriter

    class OneAtATime:
        """The ONNX Runtime backend behind a wrapper that does not say it takes concurrent calls."""

        def __init__(self, inner):
            self.inner, self.max_batch = inner, 1

        def run(self, tensor):
            return self.inner.run(tensor)

    serial = SegNet(net.model, OneAtATime(net.backend), net.settings)
    with BagReader(scenes["mcap"].path) as reader:
        plans = plan_topics(reader, [])[0]
        for segnet, expected in ((net, 3), (serial, 1)):
            writer = BagWriter(tmp_path / str(expected) / "out").open()
            pipeline = BagPipeline(reader, writer, segnet, plans, BagSettings(workers=3))
            assert pipeline.workers == expected
            assert pipeline.run().frames == 9
            writer.finish()
    assert (tmp_path / "1" / "out" / "out.mcap").read_bytes() == (tmp_path / "3" / "out" / "out.mcap").read_bytes()


def test_a_humble_bags_root_topics_are_both_segmented_each_in_its_own_namespace(tmp_path):
    """/image (rgb8) and /compressed_image (jpeg) in the root: only <raw>/compressed is a twin."""
    from segnet_ros.bag.reader import BagReader
    from segnet_ros.bag.topics import plan_topics

    image, compressed = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"
    _camera_bag(tmp_path / "humble", {"/image": (image, "rgb8"), "/compressed_image": (compressed, ""),
                                      "/rgb16": (image, "rgb16")})
    with BagReader(tmp_path / "humble") as reader:
        plans, notes = plan_topics(reader, [])
    assert sorted((p.topic.name, p.namespace) for p in plans) == [("/compressed_image", "/compressed_image"),
                                                                 ("/image", "")]
    assert any(n.startswith("/compressed_image shares / with another image topic: its outputs go to "
                            "/compressed_image/*") for n in notes), notes
    assert any(n.startswith("not segmenting /rgb16: its encoding rgb16 is not supported (supported: rgb8, ")
               for n in notes), notes


def test_a_topic_none_of_whose_frames_can_be_segmented_is_a_failure(oracle_dir, tmp_path, capsys):
    """A script must not take "0 frames segmented" for success; with nothing at all, nothing is written."""
    scene = write_scene(tmp_path / "bad", front=3, rear=2, bad_front=(0, 1, 2))
    assert bag(oracle_dir, scene.path, tmp_path / "out", "--topic", FRONT) == 1
    err = capsys.readouterr().err
    assert f"segnet-ros: error: no frame of {FRONT} (3 bad frames: unsupported encoding 'yuv444'" in err
    assert err.rstrip().endswith("; nothing written") and not (tmp_path / "out").exists()
    # the rear camera's frames are fine: its outputs are written, and the status still says what failed
    assert bag(oracle_dir, scene.path, tmp_path / "both", "--topic", FRONT, "--topic", REAR) == 1
    err = capsys.readouterr().err
    assert f"no frame of {FRONT} (3 bad frames" in err and (tmp_path / "both").is_dir()
    assert err.rstrip().endswith(f"; {tmp_path / 'both'} holds the other topics")
