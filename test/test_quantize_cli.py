"""``segnet-ros quantize`` as users run it: frames from a video or a bag, the agreement report, the
gate, and every mistake as one error line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segnet_ros.backends import qdq

from conftest import run_cli

W, H = 256, 128


@pytest.fixture
def cache_env(tmp_path):
    return {"SEGNET_ROS_CACHE": str(tmp_path / "cache")}


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and lines and lines[-1].startswith("segnet-ros: error: "), result.stderr
    assert not [line for line in lines if "Traceback" in line or "error:" in line][:-1], result.stderr
    return lines[-1]


def street_video(path, count: int = 8):
    from segnet_ros.demo.scenes import street_frames

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    for frame in street_frames(count, W, H):
        writer.write(frame)
    writer.release()
    return path


def test_reference_network_from_a_video_reports_agreement_and_the_gate_refuses(small_reference, tmp_path,
                                                                              cache_env):
    video = street_video(tmp_path / "street.avi")
    args = ("quantize", "--model", str(small_reference.onnx), "--labels", str(small_reference.labels),
            "--reduce-range", "off", str(video))
    refused = run_cli(*args, "--min-agreement", "100", env=cache_env)
    line = one_error_line(refused)
    assert "below --min-agreement 100; nothing installed" in line and "--force" in line
    assert "on 2 held-out frames" in refused.stdout and "reduce_range off:" in refused.stdout
    percent = float(refused.stdout.split("reduce_range off:")[1].split("%")[0])
    assert 50.0 < percent < 100.0  # untrained weights: a lower bound, far from the trained models' figure
    forced = run_cli(*args, "--min-agreement", "100", "--force", env=cache_env)
    assert forced.returncode == 0, forced.stderr
    assert "installed (below --min-agreement 100: --force): " in forced.stdout
    installed = forced.stdout.split(": --force): ")[1].split()[0]
    assert installed.startswith(cache_env["SEGNET_ROS_CACHE"]) and installed.endswith(".onnx")


@pytest.mark.parametrize("args, expected", [
    (["--min-agreement", "101"], "argument --min-agreement/--min_agreement: expected a percentage 0..100, got '101'"),
    (["--held-out", "0"], "argument --held-out/--held_out: expected a fraction above 0 and at most 0.9, got '0'"),
    (["--max-frames", "1"], "argument --max-frames/--max_frames: expected a frame count of at least 2, got '1'"),
    (["--reduce-range", "maybe"], "argument --reduce-range/--reduce_range: invalid choice: 'maybe'"),
])
def test_bad_arguments_are_one_line(oracle_dir, tmp_path, args, expected, capsys):
    from segnet_ros.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(["quantize", "--model", str(oracle_dir / "fcn_resnet18.onnx"), *args, str(tmp_path)])
    err = capsys.readouterr().err
    assert exited.value.code == 1 and err.count("\n") == 1, err
    assert err.startswith(f"segnet-ros: error: {expected}")
    assert err.rstrip().endswith("(see 'segnet-ros quantize --help')")


def test_bad_inputs_are_one_line(oracle_dir, tmp_path, cache_env):
    model = ("--model", str(oracle_dir / "fcn_resnet18.onnx"))
    cv2.imwrite(str(tmp_path / "only.png"), np.zeros((H, W, 3), np.uint8))
    few = one_error_line(run_cli("quantize", *model, str(tmp_path / "only.png"), env=cache_env))
    assert "quantisation needs at least 2 frames" in few
    missing = one_error_line(run_cli("quantize", *model, str(tmp_path / "nothing.mp4"), env=cache_env))
    assert missing == f"segnet-ros: error: input '{tmp_path / 'nothing.mp4'}' not found"
    assert qdq.find_qdq_model(oracle_dir / "fcn_resnet18.onnx", tmp_path / "cache" / "int8") is None
