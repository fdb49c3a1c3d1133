"""``segnet-ros models`` and ``segment --network NAME`` as users run them: child processes, real files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from segnet_ros.zoo.install import install_archive
from segnet_ros.zoo.registry import MODELS, lookup

from conftest import ROOT, run_cli
from oracle import NAMES, block_image
from zoo_helpers import make_archive, zoo_folder

CITYSCAPES = lookup("fcn-resnet18-cityscapes-512x256")


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """A tiny archive for every registry model, keyed by model name."""
    folder = tmp_path_factory.mktemp("archives")
    return {m.name: make_archive(folder / m.archive, zoo_folder(folder / "src", m)) for m in MODELS}


def _error_line(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("segnet-ros: error: ")
    return line


def _listing(result) -> dict[str, list[str]]:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DATASET", "INPUT", "CLASSES", "INSTALLED"]
    # the built-in untrained network first, which every command takes offline as --network reference
    assert lines[1].split()[0] == "reference" and lines[1].split()[-4:] == ["512x256", "21", "built", "in"]
    rows = {}
    for line in lines[2:13]:
        name = line.split()[0]
        model = lookup(name)
        rest = line[len(name):].strip()
        assert rest.startswith(model.dataset) and f" {model.resolution} " in rest and f" {model.classes} " in rest
        rows[name] = rest.split(f" {model.classes} ", 1)[1].strip()
    assert list(rows) == [m.name for m in MODELS]
    return rows


def test_list_tells_the_truth_about_what_is_installed(archives, zoo_dirs):
    voc = lookup("fcn-resnet18-voc")
    install_archive(archives[voc.name])
    deepscene = lookup("fcn-resnet18-deepscene-864x480")
    checkout = zoo_folder(zoo_dirs.jetson / "data" / "networks", deepscene)
    sun = lookup("fcn-resnet18-sun-640x512")
    system = zoo_folder(zoo_dirs.system, sun)
    (zoo_dirs.system / lookup("fcn-resnet18-mhp").dir).mkdir()  # a folder without a model is not a model

    rows = _listing(run_cli("models", "list"))
    expected = {m.name: "-" for m in MODELS}
    expected[voc.name] = str(zoo_dirs.models / voc.dir)
    expected[deepscene.name] = f"{checkout} (jetson-inference)"
    expected[sun.name] = f"{system} (jetson-inference install)"
    assert rows == expected

    result = run_cli("models", "remove", "fcn_resnet18_deepscene_864x480")
    assert "is jetson-inference's copy in" in _error_line(result) and checkout.is_dir()
    result = run_cli("models", "remove", "fcn-resnet18-pascal-voc")
    assert result.returncode == 0 and result.stdout == f"removed {voc.name} from {zoo_dirs.models / voc.dir}\n"
    result = run_cli("models", "list")
    assert _listing(result)[voc.name] == "-"
    assert result.stdout.splitlines()[-1] == f"model folder: {zoo_dirs.models} (--model-dir, $SEGNET_ROS_MODELS)"
    result = run_cli("models", "path", "reference")  # built in: its folder, made on first use
    assert result.returncode == 0 and (Path(result.stdout.strip()) / "fcn_resnet18.onnx").is_file(), result.stderr


def test_installed_archive_runs_by_name(archives, zoo_dirs, tmp_path):
    result = run_cli("models", "install", str(archives[CITYSCAPES.name]))
    folder = zoo_dirs.models / CITYSCAPES.dir
    assert result.returncode == 0 and result.stdout == f"installed {CITYSCAPES.name} in {folder}\n", result.stderr
    result = run_cli("models", "install", str(archives[CITYSCAPES.name]))
    assert result.stdout == f"{CITYSCAPES.name} is already installed in {folder}; pass --force to replace it\n"
    result = run_cli("models", "path", "FCN_ResNet18_Cityscapes")
    assert result.returncode == 0 and result.stdout == f"{folder}\n"

    grid = np.random.default_rng(3).integers(1, 8, (8, 16)).astype(np.uint8)
    image = tmp_path / "street.png"
    cv2.imwrite(str(image), block_image(grid, 512, 256)[:, :, ::-1])
    result = run_cli("segment", "--network", "fcn-resnet18-cityscapes", "--stats", "--no-progress", str(image))
    assert result.returncode == 0, result.stderr
    counts = np.bincount(grid.ravel(), minlength=21)
    names = [*NAMES, *(f"extra_{i}" for i in range(8, 21))]
    expected = ["grid size:   16x8", "num classes: 21", "-" * 41, " ID  class name        count     %", "-" * 41]
    expected += [f" {i:>2d}  {names[i]:<18s} {counts[i]:>3d}   {counts[i] / 128:f}" for i in range(21)]
    assert result.stdout.splitlines() == expected
    assert f"with {CITYSCAPES.name} on" in result.stderr


def test_a_missing_model_names_the_command_that_installs_it(tmp_path):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    result = run_cli("segment", "--network", "fcn-resnet18-cityscapes", str(image))
    assert _error_line(result) == (f"segnet-ros: error: model {CITYSCAPES.name} is not installed; "
                                   f"install it with: segnet-ros models download {CITYSCAPES.name}")
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli("models", "path", "fcn-resnet18-cityscapes", "--model-dir", str(tmp_path / "m"))
    assert _error_line(result).endswith(f"segnet-ros models download {CITYSCAPES.name} --model-dir {tmp_path / 'm'}")
    install_archive(make_archive(tmp_path / CITYSCAPES.archive, zoo_folder(tmp_path, CITYSCAPES)))
    result = run_cli("segment", "--network", CITYSCAPES.name, "--model-dir", str(tmp_path / "m"), str(image))
    assert _error_line(result).endswith(f"segnet-ros models download {CITYSCAPES.name} --model-dir {tmp_path / 'm'}")
    result = run_cli("segment", "--network", "fcn-resnet18-citiscapes", str(image))
    assert "did you mean fcn-resnet18-cityscapes" in _error_line(result)


def test_download_all_then_everything_is_installed(archives, model_server, zoo_dirs):
    for name, archive in archives.items():
        model_server.publish(archive, lookup(name).archive)
    env = {"SEGNET_ROS_MODEL_URL_BASE": model_server.url_base}
    result = run_cli("models", "download", "--all", "--no-progress", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"installed {m.name} in {zoo_dirs.models / m.dir}" for m in MODELS]
    assert len(model_server.requests) == 11
    assert _listing(run_cli("models", "list")) == {m.name: str(zoo_dirs.models / m.dir) for m in MODELS}
    result = run_cli("models", "download", "fcn-resnet18-voc", "fcn_resnet18_voc_320x320", env=env)
    voc = lookup("fcn-resnet18-voc")
    assert result.stdout == f"{voc.name} is already installed in {zoo_dirs.models / voc.dir}\n"
    assert len(model_server.requests) == 11


def test_two_concurrent_downloads_fetch_once(archives, model_server, zoo_dirs):
    model_server.publish(archives[CITYSCAPES.name], CITYSCAPES.archive)
    command = [sys.executable, "-m", "segnet_ros.cli.main", "models", "download", CITYSCAPES.name]
    env = {**os.environ, "SEGNET_ROS_MODEL_URL_BASE": model_server.url_base}
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                  env=env) for _ in range(2)]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    folder = zoo_dirs.models / CITYSCAPES.dir
    assert sorted(out for out, _ in outputs) == sorted([f"installed {CITYSCAPES.name} in {folder}\n",
                                                        f"{CITYSCAPES.name} is already installed in {folder}\n"])
    assert len(model_server.requests) == 1


def test_download_errors_are_one_clear_line(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"SEGNET_ROS_MODEL_URL_BASE": f"http://127.0.0.1:{port}"}
    result = run_cli("models", "download", "fcn-resnet18-mhp", "--retries", "0", env=env)
    line = _error_line(result)
    assert f"cannot reach 127.0.0.1:{port}" in line
    assert line.endswith("run: segnet-ros models install FCN-ResNet18-MHP-512x320.tar.gz")
    assert _error_line(run_cli("models", "download")) == "segnet-ros: error: name the models to download, or pass --all"
    line = _error_line(run_cli("models", "install", str(tmp_path / "nothing.tar.gz")))
    assert line == f"segnet-ros: error: {tmp_path / 'nothing.tar.gz'}: archive not found"


def test_download_progress_bar_rendering():
    import io

    from segnet_ros.cli.progress import ByteProgress

    stream = io.StringIO()
    progress = ByteProgress(0, stream=stream, enabled=True, width=10)
    progress(0, 4_000_000)
    progress(1_000_000, 4_000_000)
    progress(4_000_000, 4_000_000)
    progress.close()
    lines = stream.getvalue().split("\r")[1:]
    assert lines[1].startswith("[##........] 1.0/4.0 MB  ") and " MB/s" in lines[1]
    assert lines[2].startswith("[##########] 4.0/4.0 MB  ") and lines[2].endswith("MB/s\n")
    unknown = ByteProgress(0, stream=io.StringIO(), enabled=True)
    unknown(2_500_000, None)
    assert unknown.line().startswith("2.5 MB  ")
