"""``segnet-ros build-engine`` and ``segnet-ros segment --backend tensorrt`` in child processes that
import the fake tensorrt and pycuda (put on their PYTHONPATH)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT, run_cli
from oracle import block_image

pytestmark = pytest.mark.usefixtures("fake_trt")


def model_args(oracle_dir, *extra):
    return ("--model", str(oracle_dir / "fcn_resnet18.onnx"), "--labels", str(oracle_dir / "classes.txt"),
            "--colors", str(oracle_dir / "colors.txt"), *extra)


def engine_line(stdout: str) -> Path:
    lines = [line for line in stdout.splitlines() if line.startswith("engine: ")]
    assert len(lines) == 1, stdout
    return Path(lines[0][len("engine: "):])


@pytest.fixture
def cli(fake_trt):
    def call(*args):
        return run_cli(*args, env=fake_trt.child_env())

    return call


@pytest.mark.parametrize("trt_version", ["10.3.0", "11.0.0"])  # every version: test_tensorrt_backend.py
def test_build_engine_then_verify_then_force(oracle_dir, cli, fake_trt, tmp_path, trt_version):
    fake_trt.configure(trt_version=trt_version)
    cache = tmp_path / "engines"
    first = cli("build-engine", *model_args(oracle_dir, "--engine-cache", str(cache)))
    assert first.returncode == 0, first.stderr
    path = engine_line(first.stdout)
    assert path.parent == cache and path.is_file() and fake_trt.builds() == 1
    # a model given by path is named after its folder, as jetson-inference's model folders are
    assert first.stdout.startswith(f"built the TensorRT engine for {oracle_dir.name} (fp16, Fake Orin, compute "
                                   f"capability 8.7, TensorRT {trt_version}) in ")
    assert "building the TensorRT fp16 engine" in first.stderr  # the build is logged as it happens
    second = cli("build-engine", *model_args(oracle_dir, "--engine-cache", str(cache)))
    assert second.returncode == 0 and engine_line(second.stdout) == path and fake_trt.builds() == 1
    assert "is valid (checked in" in second.stdout
    forced = cli("build-engine", *model_args(oracle_dir, "--engine-cache", str(cache), "--force-rebuild"))
    assert forced.returncode == 0 and engine_line(forced.stdout) == path and fake_trt.builds() == 2


def test_options_reach_the_engine(oracle_dir, cli, fake_trt):
    fake_trt.configure(dla_cores=1)
    result = cli("build-engine", *model_args(oracle_dir, "--precision", "fp32", "--workspace-mb", "64"))
    assert result.returncode == 0, result.stderr
    path = engine_line(result.stdout)
    assert path.parent == fake_trt.engine_dir and "-fp32-gpu-" in path.name  # default cache: SEGNET_ROS_CACHE
    header = fake_trt.trt.read_header(path.read_bytes())
    assert header["precision"] == "fp32" and header["workspace"] == 64 << 20
    dla = cli("build-engine", *model_args(oracle_dir, "--dla-core", "0"))
    assert dla.returncode == 0, dla.stderr
    assert fake_trt.trt.read_header(engine_line(dla.stdout).read_bytes())["dla_core"] == 0


def test_max_batch_reaches_the_engine(oracle_dir, cli, fake_trt):
    result = cli("build-engine", *model_args(oracle_dir, "--max-batch", "4", "--precision", "fp32"))
    assert result.returncode == 0, result.stderr
    assert "(fp32, batch 1..4, Fake Orin" in result.stdout
    path = engine_line(result.stdout)
    header = fake_trt.trt.read_header(path.read_bytes())
    assert "-b4-" in path.name and header["inputs"][0]["profile"][2][0] == 4


def test_int8_without_a_quantised_model_says_what_to_run(oracle_dir, cli):
    result = cli("build-engine", *model_args(oracle_dir, "--precision", "int8"))
    errors = [line for line in result.stderr.splitlines() if line.startswith("segnet-ros: error:")]
    assert result.returncode == 1 and len(errors) == 1 and "Traceback" not in result.stderr
    assert f"segnet-ros quantize --model {oracle_dir / 'fcn_resnet18.onnx'} --target tensorrt" in errors[0]


def test_segment_with_tensorrt_uses_the_prebuilt_engine(oracle_dir, cli, fake_trt, tmp_path):
    grid = np.random.default_rng(3).integers(1, 8, (4, 8)).astype(np.uint8)
    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), block_image(grid, 256, 128)[:, :, ::-1])
    built = cli("build-engine", *model_args(oracle_dir))
    assert built.returncode == 0, built.stderr
    args = ("segment", str(image), *model_args(oracle_dir, "--stats", "--no-progress", "--ignore-class", "none"))
    trt = cli(*args, "--backend", "tensorrt", "--pipeline", "host")
    assert trt.returncode == 0, trt.stderr
    assert fake_trt.builds() == 1  # segment found build-engine's engine
    assert "on tensorrt (Fake Orin GPU, fp16)" in trt.stderr
    ort = run_cli(*args, "--backend", "onnxruntime")
    assert ort.returncode == 0, ort.stderr
    assert trt.stdout == ort.stdout and f"  1  red {' ' * 15}{(grid == 1).sum():>3d}" in trt.stdout
    for builds in (2, 2):  # TensorRT's default, the whole frame in an engine of the camera's: built once, then cached
        graph = cli(*args, "--backend", "tensorrt")
        assert graph.returncode == 0, graph.stderr
        assert fake_trt.builds() == builds and "pipeline graph" in graph.stderr
        assert graph.stdout == ort.stdout


def test_segment_auto_logs_its_choice(oracle_dir, cli, tmp_path):
    image = tmp_path / "black.png"
    cv2.imwrite(str(image), np.zeros((128, 256, 3), np.uint8))
    result = cli("segment", str(image), *model_args(oracle_dir, "--no-progress"))
    assert result.returncode == 0, result.stderr
    assert "segnet-ros: backend auto chose tensorrt (Fake Orin GPU, fp16)\n" in result.stderr
    assert "TensorRT 10.3.0 and CUDA device" not in result.stderr  # the reason is for --verbose
    result = cli("segment", str(image), *model_args(oracle_dir, "--no-progress", "--verbose"))
    assert "segnet-ros: backend auto chose tensorrt: TensorRT 10.3.0 and CUDA device 'Fake Orin'" in result.stderr


@pytest.mark.parametrize("setting, expected", [
    ({"cuda_devices": 0}, "segnet-ros: error: no CUDA device: the CUDA driver finds none\n"),
    ({"trt_build_fail": 1}, "segnet-ros: error: TensorRT failed to build an engine for "),
    ({"trt_init_fail": 1}, "segnet-ros: error: TensorRT cannot start on this GPU"),
    ({"trt_version": "12.0.0"}, "segnet-ros: error: TensorRT 12.0.0 is newer than this backend knows"),
])
def test_errors_are_one_line_and_status_1(oracle_dir, cli, fake_trt, setting, expected):
    fake_trt.configure(**setting)
    result = cli("build-engine", *model_args(oracle_dir))
    assert result.returncode == 1 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("segnet-ros: error:")]
    assert len(errors) == 1 and (errors[0] + "\n").startswith(expected)
    assert "Traceback" not in result.stderr


def test_unwritable_cache_fails_build_engine(oracle_dir, cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("build-engine", *model_args(oracle_dir, "--engine-cache", str(blocker / "engines")))
    assert result.returncode == 1
    assert "could not be stored" in result.stderr and "not writable" in result.stderr


def test_two_processes_build_one_engine(oracle_dir, fake_trt, tmp_path):
    """The second builder waits for the first's lock, then loads its engine instead of building its own."""
    gate = tmp_path / "gate"
    env = {**os.environ, **fake_trt.child_env(), "FAKE_TRT_BUILD_GATE": str(gate)}
    command = [sys.executable, "-m", "segnet_ros.cli.main", "build-engine", *model_args(oracle_dir)]
    logs = [tmp_path / f"builder{i}.log" for i in range(2)]
    processes = []
    for log in logs:
        with open(log, "w") as stderr:
            processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                              env=env, cwd=ROOT))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until one builds and the other waits for it
            if fake_trt.builds() == 1 and any("waiting for it" in log.read_text() for log in logs):
                break
            time.sleep(0.05)
        gate.touch()
        outputs = [process.communicate(timeout=90)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    stderrs = [log.read_text() for log in logs]
    assert [p.returncode for p in processes] == [0, 0], stderrs
    assert fake_trt.builds() == 1
    assert engine_line(outputs[0]) == engine_line(outputs[1])
    assert sorted(out.split(" ", 1)[0] for out in outputs) == ["built", "the"]  # one built, one verified
    waiter = next(err for err in stderrs if "waiting for it" in err)
    assert "another process built this TensorRT engine meanwhile" in waiter


def test_tensorrt_arguments_map_onto_backend_options(tmp_path):
    from segnet_ros.backends import BackendOptions
    from segnet_ros.cli.common import backend_options
    from segnet_ros.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["segment", "in.png", "--backend", "tensorrt", "--precision", "fp32", "--engine-cache",
                              str(tmp_path / "e"), "--workspace-mb", "512", "--dla-core", "1", "--force-rebuild",
                              "--device", "cuda", "--threads", "3"])
    assert args.backend == "tensorrt"
    assert backend_options(args) == BackendOptions(device="cuda", threads=3, precision="fp32",
                                                   engine_cache_dir=str(tmp_path / "e"), workspace_mb=512,
                                                   dla_core=1, force_rebuild=True)
    defaults = backend_options(parser.parse_args(["build-engine"]))
    assert defaults == BackendOptions()  # build-engine has no --backend/--device/--threads: the defaults
    assert not hasattr(parser.parse_args(["build-engine"]), "backend")


@pytest.mark.parametrize("argument", [["--workspace-mb", "0"], ["--dla-core", "-2"], ["--dla-core", "x"],
                                      ["--precision", "int4"], ["--max-batch", "0"], ["--max-batch", "65"]])
def test_bad_tensorrt_arguments_are_refused(argument, capsys):
    from segnet_ros.cli.main import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["build-engine", *argument])
    error = capsys.readouterr().err
    assert exit_.value.code == 1 and argument[0] in error and ("expected" in error or "invalid choice" in error)
