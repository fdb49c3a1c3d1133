"""The benchmark scripts keep running (their figures are read by people, not asserted here)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_node_benchmark_prints_its_figures():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "node_benchmark.py"), "--seconds", "2",
                             "--rate", "5"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for figure in ("bare backend run:", "node throughput:", "node / bare backend:", "camera -> last output:"):
        assert figure in result.stdout


def test_render_benchmark_prints_every_stage():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "render_benchmark.py"), "--repeat", "1"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for stage in ("preprocess", "class mask", "colour mask", "overlay", "histogram", "one frame"):
        assert stage in result.stdout


def test_spin_benchmark_prints_both_sessions():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "spin_benchmark.py"), "--frames", "2",
                             "--repeat", "1", "--rate", "50"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for figure in ("CPU:", "ONNX Runtime's default (spinning)", "segnet_ros (no spinning)", "ms less CPU per frame"):
        assert figure in result.stdout
