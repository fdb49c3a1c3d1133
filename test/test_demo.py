"""`make demo` runs the whole job: node, camera process, viewer, pictures and figures."""

import subprocess
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]


def test_demo_writes_pictures_and_reports_rate_and_latency(tmp_path):
    output = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "segnet_ros.demo", "--frames", "8", "--rate", "4",
                             "--output", str(output)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "UNTRAINED reference network" in result.stdout
    assert "overlays received at" in result.stdout and "latency camera->overlay" in result.stdout
    overlay = cv2.imread(str(output / "overlay_0.png"))
    mask = cv2.imread(str(output / "color_mask_0.png"))
    assert overlay.shape == (720, 1280, 3) and mask.shape == (720, 1280, 3)
    assert (output / "segnet_node.log").read_text().count("segmenting") == 1
