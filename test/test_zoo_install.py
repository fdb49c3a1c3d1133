"""Installing archives from files, validating them, locking, and finding models where they already are."""

from __future__ import annotations

import fcntl
import queue
import subprocess
import sys
import tarfile
import threading

import pytest

from segnet_ros.core.errors import ModelError
from segnet_ros.zoo import resolve_network
from segnet_ros.zoo.install import install_archive, remove
from segnet_ros.zoo.locations import find
from segnet_ros.zoo.registry import lookup

from conftest import ROOT
from zoo_helpers import hostile_archive, make_archive, oracle_model, zoo_folder

VOC = lookup("fcn-resnet18-voc-320x320")
DEEPSCENE = lookup("fcn-resnet18-deepscene-864x480")
FILES = ("fcn_resnet18.onnx", "classes.txt", "colors.txt")


def _entries(root):
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) if root.exists() else []


def test_offline_install_from_a_file(tmp_path, zoo_dirs):
    source = zoo_folder(tmp_path, VOC)
    archive = make_archive(tmp_path / VOC.archive, source)
    installed = install_archive(archive)
    assert installed.fresh and installed.model is VOC and installed.folder == zoo_dirs.models / VOC.dir
    for name in FILES:
        assert (installed.folder / name).read_bytes() == (source / name).read_bytes()
    assert _entries(zoo_dirs.models) == [VOC.dir]
    assert (find(VOC).folder, find(VOC).owner) == (installed.folder, "segnet_ros")
    assert not install_archive(archive).fresh


def test_force_replaces_an_installed_model(tmp_path, zoo_dirs):
    install_archive(make_archive(tmp_path / "first.tar.gz", zoo_folder(tmp_path / "a", VOC)))
    second = zoo_folder(tmp_path / "b", VOC, labels=21)
    (second / "classes.txt").write_text("".join(f"renamed_{i}\n" for i in range(21)))
    archive = make_archive(tmp_path / "second.tar.gz", second)
    assert not install_archive(archive).fresh
    assert "renamed_0" not in (zoo_dirs.models / VOC.dir / "classes.txt").read_text()
    assert install_archive(archive, replace=True).fresh
    assert (zoo_dirs.models / VOC.dir / "classes.txt").read_text().startswith("renamed_0\n")
    assert _entries(zoo_dirs.models) == [VOC.dir]


def test_archive_folder_names_the_model_or_name_is_needed(tmp_path, zoo_dirs):
    folder = oracle_model(tmp_path / "my-copy", 864, 480, 5)
    archive = make_archive(tmp_path / "renamed.tar.gz", folder)
    with pytest.raises(ModelError, match="cannot tell which model .* folder 'my-copy'.*--name NAME"):
        install_archive(archive)
    assert install_archive(archive, DEEPSCENE).folder == zoo_dirs.models / DEEPSCENE.dir
    flat = tmp_path / "flat.tar.gz"
    with tarfile.open(flat, "w:gz") as tar:
        for name in FILES:
            tar.add(folder / name, arcname=name)
    installed = install_archive(flat, DEEPSCENE, tmp_path / "elsewhere")
    assert sorted(p.name for p in installed.folder.iterdir()) == sorted(FILES)
    assert installed.folder.stat().st_mode & 0o777 == 0o755  # not the private folder's 0o700


def test_messages_name_the_archive_not_our_private_folder(tmp_path, zoo_dirs):
    flat = tmp_path / "flat.tar.gz"
    folder = oracle_model(tmp_path / "src", 864, 480, 5)
    with tarfile.open(flat, "w:gz") as tar:
        for name in FILES:
            tar.add(folder / name, arcname=name)
    with pytest.raises(ModelError) as caught:
        install_archive(flat)
    assert str(caught.value) == (
        f"{flat}: holds its files at the top, not in a folder named after the model, so which model it is "
        f"cannot be told; say it: segnet-ros models install {flat} --name NAME")  # not our private folder's name
    broken = zoo_folder(tmp_path, VOC)
    (broken / "fcn_resnet18.onnx").write_bytes(b"not onnx")
    archive = make_archive(tmp_path / VOC.archive, broken)
    with pytest.raises(ModelError) as caught:
        install_archive(archive)
    assert str(caught.value).startswith(f"{archive}, member {VOC.dir}/fcn_resnet18.onnx: not a valid ONNX model")
    assert _entries(zoo_dirs.models) == []


@pytest.mark.parametrize("link,target", [
    ("up", ".."),  # stays in the archive, leaves the model's folder
    ("labels", f"../{DEEPSCENE.dir}/classes.txt"),  # into another model's folder once installed
    ("sub/deep", "../../x"),
], ids=["parent", "other-model", "deep"])
def test_links_that_leave_the_model_folder_are_refused(tmp_path, zoo_dirs, link, target):
    folder = zoo_folder(tmp_path, VOC)
    (folder / link).parent.mkdir(exist_ok=True)
    (folder / link).symlink_to(target)
    archive = make_archive(tmp_path / VOC.archive, folder)
    with pytest.raises(ModelError) as caught:
        install_archive(archive)
    assert str(caught.value) == f"{archive}: link '{VOC.dir}/{link}' -> '{target}' leads out of the model's folder"
    assert _entries(zoo_dirs.models) == []
    (folder / link).unlink()
    (folder / link).symlink_to("../classes.txt" if "/" in link else "classes.txt")  # one that stays is kept
    assert install_archive(make_archive(tmp_path / "ok.tar.gz", folder)).fresh


@pytest.mark.parametrize("change,message", [
    ({"width": 256, "height": 256}, "the network's input is 256x256, but fcn-resnet18-voc-320x320 is 320x320"),
    ({"classes": 8}, "the network outputs 8 classes, but fcn-resnet18-voc-320x320 has 21"),
    ({"labels": 8}, "classes.txt names 8 classes for a network with 21"),
    ({"colors": False}, "the archive lacks colors.txt"),
])
def test_a_model_that_disagrees_with_the_registry_is_refused(tmp_path, zoo_dirs, change, message):
    archive = make_archive(tmp_path / VOC.archive, zoo_folder(tmp_path, VOC, **change))
    with pytest.raises(ModelError) as caught:
        install_archive(archive)
    assert str(caught.value) == f"{VOC.name}: {message}"
    assert _entries(zoo_dirs.models) == [] and find(VOC) is None


def test_a_hostile_archive_leaves_nothing_behind(tmp_path, zoo_dirs):
    archive = hostile_archive(tmp_path / VOC.archive, (f"{VOC.dir}/fcn_resnet18.onnx", "symlink", "/etc/passwd"))
    with pytest.raises(ModelError, match="leads out of the folder"):
        install_archive(archive)
    assert _entries(zoo_dirs.models) == []


def test_jetson_inference_models_are_used_in_place(tmp_path, zoo_dirs, monkeypatch):
    checkout = zoo_folder(zoo_dirs.jetson / "data" / "networks", VOC)
    system = zoo_folder(zoo_dirs.system, VOC)
    files = resolve_network("fcn-resnet18-voc")
    assert files.onnx == checkout / "fcn_resnet18.onnx" and files.labels == checkout / "classes.txt"
    assert files.name == VOC.name and find(VOC).owner == "jetson-inference"
    assert not zoo_dirs.models.exists()  # used in place, not copied
    monkeypatch.delenv("JETSON_INFERENCE_ROOT")
    assert resolve_network("FCN_ResNet18_Pascal_VOC").onnx == system / "fcn_resnet18.onnx"
    assert find(VOC).owner == "jetson-inference install"
    install_archive(make_archive(tmp_path / VOC.archive, zoo_folder(tmp_path, VOC)))
    assert resolve_network("fcn-resnet18-voc").onnx == zoo_dirs.models / VOC.dir / "fcn_resnet18.onnx"


def test_model_dir_parameter_beats_the_environment(tmp_path, zoo_dirs):
    mine = tmp_path / "mine"
    install_archive(make_archive(tmp_path / VOC.archive, zoo_folder(tmp_path, VOC)), explicit_dir=mine)
    assert resolve_network("fcn-resnet18-voc", model_dir=mine).onnx == mine / VOC.dir / "fcn_resnet18.onnx"
    with pytest.raises(ModelError) as caught:
        resolve_network("fcn-resnet18-voc")
    assert str(caught.value) == ("model fcn-resnet18-voc-320x320 is not installed; install it with: "
                                 "segnet-ros models download fcn-resnet18-voc-320x320")
    with pytest.raises(ModelError, match=f"models download fcn-resnet18-sun-512x400 --model-dir {mine}$"):
        resolve_network("fcn-resnet18-sun", model_dir=mine)


def test_reference_names_still_resolve():
    files = resolve_network("Reference-64x32")
    assert files.name == "reference-64x32" and files.onnx.is_file()


def test_remove_only_touches_the_model_folder(tmp_path, zoo_dirs):
    install_archive(make_archive(tmp_path / VOC.archive, zoo_folder(tmp_path, VOC)))
    assert remove(VOC) == zoo_dirs.models / VOC.dir
    assert _entries(zoo_dirs.models) == [] and find(VOC) is None
    with pytest.raises(ModelError, match="fcn-resnet18-voc-320x320 is not installed in"):
        remove(VOC)


def _lines(stream, sink: queue.Queue) -> None:
    for line in stream:
        sink.put(line)
    sink.put("(the process closed its stderr)")


def test_two_processes_installing_the_same_model(tmp_path, zoo_dirs):
    archive = make_archive(tmp_path / VOC.archive, zoo_folder(tmp_path, VOC))
    zoo_dirs.models.mkdir(parents=True)
    lock = open(zoo_dirs.models / f".{VOC.dir}.lock", "a")  # noqa: SIM115 - held across the processes' lives
    fcntl.flock(lock, fcntl.LOCK_EX)
    command = [sys.executable, "-m", "segnet_ros.cli.main", "models", "install", str(archive)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
                 for _ in range(2)]
    try:
        waiting: queue.Queue = queue.Queue()
        for process in processes:
            threading.Thread(target=_lines, args=(process.stderr, waiting), daemon=True).start()
        for _ in processes:  # both unpacked and validated their copy, and now wait for the lock
            assert "waiting for another process installing fcn-resnet18-voc-320x320" in waiting.get(timeout=30)
        assert not (zoo_dirs.models / VOC.dir).exists()  # nobody sees half a model
        assert len(list(zoo_dirs.models.glob(".incoming-*"))) == 2
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    assert sorted(line.split(" ")[0] for line in outputs) == ["fcn-resnet18-voc-320x320", "installed"]
    assert any("is already installed in" in line for line in outputs)
    assert _entries(zoo_dirs.models) == [VOC.dir]
    assert all((zoo_dirs.models / VOC.dir / name).is_file() for name in FILES)


def _install_process(archive) -> subprocess.Popen:
    command = [sys.executable, "-m", "segnet_ros.cli.main", "models", "install", str(archive)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _waiting(process) -> None:
    """Wait until ``process`` has unpacked into its private folder and waits for the model's lock."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(process.stderr, lines), daemon=True).start()
    assert "waiting for another process installing" in lines.get(timeout=30)


def test_a_killed_install_leaves_nothing_for_long(tmp_path, zoo_dirs):
    """What a process killed while unpacking leaves is swept by the next install; a live one's is not."""
    archive = make_archive(tmp_path / VOC.archive, zoo_folder(tmp_path, VOC))
    zoo_dirs.models.mkdir(parents=True)
    (zoo_dirs.models / ".removing-left-over" / VOC.dir).mkdir(parents=True)  # killed while deleting
    lock = open(zoo_dirs.models / f".{VOC.dir}.lock", "a")  # noqa: SIM115 - held across the processes' lives
    fcntl.flock(lock, fcntl.LOCK_EX)
    processes = []
    try:
        killed = _install_process(archive)
        _waiting(killed)
        killed.kill()
        killed.communicate(timeout=30)
        (dead,) = zoo_dirs.models.glob(".incoming-*")
        assert (dead / VOC.dir / "fcn_resnet18.onnx").is_file()
        for _ in range(2):
            processes.append(_install_process(archive))
            _waiting(processes[-1])
            incoming = sorted(zoo_dirs.models.glob(".incoming-*"))
            assert dead not in incoming and len(incoming) == len(processes)  # the live ones' stay
        assert not (zoo_dirs.models / ".removing-left-over").exists()
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert _entries(zoo_dirs.models) == [VOC.dir]
