"""`make demo` runs the whole job: node, camera process, viewer, pictures and figures, on what
`backend auto` and `precision auto` pick, and names what that was."""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from segnet_ros.backends import BackendOptions, choose, detect_facts
from segnet_ros.core import load_model
from segnet_ros.demo.scenes import street_frame
from segnet_ros.node.params import BY_NAME
from segnet_ros.zoo import DEFAULT_NETWORK, lookup, resolve_network

from zoo_helpers import zoo_folder

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 8  # the camera's 1280x720 street frames 0..7
WARNING_RED = (0, 0, 200)  # BGR


def run_demo(output: Path, frames: int, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segnet_ros.demo", "--frames", str(frames), "--rate", "4",
                           "--output", str(output)], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


def swatches(strip: np.ndarray, palette_bgr: np.ndarray) -> list[tuple[int, ...]]:
    """The colours (of ``palette_bgr``) that fill a square of at least 10x10 pixels in ``strip``, once
    per square (text, even in a class's colour, never fills a square)."""
    found = []
    for colour in sorted({tuple(int(v) for v in c) for c in palette_bgr}):
        mask = np.all(strip == colour, axis=2).astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        found += [colour for _, _, w, h, area in stats[1:] if w == h >= 10 and area == w * h]
    return found


def test_demo_pictures_show_frame_overlay_mask_and_exactly_the_classes_present(tmp_path):
    output = tmp_path / "demo"
    result = run_demo(output, FRAMES)
    assert result.returncode == 0, result.stdout + result.stderr
    report = result.stdout
    assert "UNTRAINED reference network" in report
    assert "overlays received at" in report and "latency camera->overlay" in report
    assert (output / "segnet_node.log").read_text().count("segmenting") == 1

    # the report names the backend and precision, and they are what auto picks on this machine
    model = load_model(resolve_network("reference"))
    auto = choose(detect_facts("auto", BackendOptions(), model.files.onnx))
    assert f"with {auto.backend} {auto.precision} on the " in report
    assert "what backend auto and precision auto pick here" in report

    check_pictures(output, report, model, FRAMES, untrained=True)


def check_pictures(output: Path, report: str, model, frames: int, untrained: bool) -> None:
    """Each frame_N.png: three panels over the legend's strip; the camera frame, its overlay, its colour
    mask; a red line when the network is untrained; one swatch per class present and none other."""
    alpha = BY_NAME["overlay_alpha"].default / 255
    palette = np.asarray(model.classes.rgba(255))[:, 2::-1].astype(np.uint8)  # BGR
    camera = [street_frame(i) for i in range(frames)]
    pictures = sorted(output.glob("frame_*.png"))
    received = int(re.search(r"demo: (\d+) overlays received", report).group(1))
    assert received > 0 and len(pictures) == min(4, received)  # four spread over the run, or every one
    for index, path in enumerate(pictures):
        picture = cv2.imread(str(path)).astype(np.float32)
        height, width = picture.shape[:2]
        panel_width, panel_height = 640, 360  # 1280x720 frames, halved
        assert width == 3 * panel_width and height > panel_height + 3 * 24  # three panels over the legend's strip
        frame, overlay, mask = (picture[:panel_height, i * panel_width:(i + 1) * panel_width] for i in range(3))
        # the left panel is one of the camera's frames
        halved = [cv2.resize(f, (panel_width, panel_height), interpolation=cv2.INTER_AREA) for f in camera]
        assert min(np.abs(f - frame).mean() for f in halved) < 0.5
        # the middle one is that frame under that colour mask (another frame's would differ by far more)
        blend = frame * (1 - alpha) + mask * alpha
        assert np.abs(overlay - blend).max() <= 3
        # a line in red says the network is untrained, and only then
        strip = picture[panel_height:].astype(np.uint8)
        red = np.all(strip == WARNING_RED, axis=2).sum()
        assert red > 100 if untrained else red == 0
        # the legend: one swatch per class of this frame's class mask, in the class's colour, none other
        class_mask = cv2.imread(str(output / f"class_mask_{index}.png"), cv2.IMREAD_UNCHANGED)
        assert class_mask.shape == (720, 1280)
        present = np.unique(class_mask).tolist()
        assert sorted(swatches(strip, palette)) == sorted(tuple(int(v) for v in palette[i]) for i in present)
        # the report lists the same classes for this picture
        line = re.search(rf"^demo: {path.name}: (.*)$", report, re.MULTILINE)
        assert line, report
        listed = [re.sub(r" (\d+%|<1%)$", "", item) for item in line.group(1).split(", ")]
        assert sorted(listed) == sorted(model.classes.names[i] for i in present)


def test_demo_runs_the_default_model_where_it_is_installed(tmp_path, monkeypatch):
    """The default model installed (a stand-in with its name, shape and palette): the demo runs it and
    says nothing of an untrained network."""
    models = tmp_path / "models"
    zoo_folder(models, lookup(DEFAULT_NETWORK))
    monkeypatch.setenv("SEGNET_ROS_MODELS", str(models))
    output = tmp_path / "demo"
    result = run_demo(output, 3)
    assert result.returncode == 0, result.stdout + result.stderr
    model = load_model(resolve_network(DEFAULT_NETWORK))
    assert "UNTRAINED" not in result.stdout
    assert f"segnet_node ran {model.name} with " in result.stdout
    check_pictures(output, result.stdout, model, 3, untrained=False)


def test_demo_runs_what_auto_picks_not_a_fixed_backend(tmp_path):
    """With ONNX Runtime hidden, auto picks OpenVINO: a demo that forced ONNX Runtime would fail here."""
    pytest.importorskip("openvino")
    model = load_model(resolve_network("reference"))
    facts = dataclasses.replace(detect_facts("auto", BackendOptions(), model.files.onnx), onnxruntime=False,
                                onnxruntime_cuda=False)
    auto = choose(facts)
    if auto.backend != "openvino":
        pytest.skip(f"auto picks {auto.backend} here even without ONNX Runtime")
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text('import sys\nsys.modules["onnxruntime"] = None\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")]))}
    result = run_demo(tmp_path / "demo", 2, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"with openvino {auto.precision} on the CPU: what backend auto and precision auto pick here" in \
        result.stdout
