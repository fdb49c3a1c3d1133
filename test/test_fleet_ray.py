"""``segnet-ros bag INPUT... --output-dir DIR --ray ADDRESS`` on a local Ray cluster of two nodes with one
CPU each (``ray.cluster_utils.Cluster``), started once for the module: Ray takes 5-10 s to start here.
Each bag is the single command's bytes, a corrupt bag fails alone, GPU actors load the model once,
Ctrl-C cancels cleanly, and a node lost mid-run still gives every bag once (last: it removes the node)."""

from __future__ import annotations

import os

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before Ray is imported: no usage statistics leave this machine

import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402

ray = pytest.importorskip("ray")

from test_fleet import STATE, bag, leftovers, manifest, model_args, one_error_line, single_digest  # noqa: E402

from bag_helpers import write_scene  # noqa: E402
from conftest import ROOT  # noqa: E402

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two simulated nodes of one CPU (and one pretend GPU) each; quick to notice a lost node."""
    from ray.cluster_utils import Cluster

    from segnet_ros.bag.ray_runner import no_cloud_probe

    saved = os.environ.get("SEGNET_ROS_CACHE")
    os.environ["SEGNET_ROS_CACHE"] = str(tmp_path_factory.mktemp("ray-cache"))  # the workers' cache, not the user's
    head = {"num_cpus": 1, "num_gpus": 1, "include_dashboard": False, "object_store_memory": 80 * MIB,
            "_system_config": {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                               "health_check_failure_threshold": 3}}
    with no_cloud_probe():  # the head's usage module would ask cloud metadata services, and tell ray.io it is off
        made = Cluster(initialize_head=True, head_node_args=head)
        node = made.add_node(num_cpus=1, num_gpus=1, object_store_memory=80 * MIB)
    made.wait_for_nodes()
    yield SimpleNamespace(cluster=made, node=node, address=made.address)
    made.shutdown()
    if saved is None:
        os.environ.pop("SEGNET_ROS_CACHE", None)
    else:
        os.environ["SEGNET_ROS_CACHE"] = saved


@pytest.fixture(scope="module")
def drives(tmp_path_factory):
    """Three small bags and a corrupt one."""
    folder = tmp_path_factory.mktemp("ray-drives")
    for i in range(3):
        write_scene(folder / f"drive{i}", "mcap" if i != 1 else "sqlite3", seed=10 + i, bad_front=(1,) if i else ())
    data = next((folder / "drive0").glob("*.mcap")).read_bytes()
    (folder / "cut.mcap").write_bytes(data[: len(data) // 2])
    return folder


def big_drives(folder: Path, count: int) -> Path:
    for i in range(count):
        write_scene(folder / f"long{i}", front=400, rear=0, seed=i)
    return folder


def wait_for_work(out: Path, count: int, timeout: float = 60) -> None:
    """Until ``count`` bags are being written (their private folders exist)."""
    work = out / STATE / "work"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if work.is_dir() and len(list(work.iterdir())) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"fewer than {count} bags were started")


def test_each_bag_is_the_single_commands_and_a_corrupt_bag_fails_alone(cluster, drives, oracle_dir, tmp_path,
                                                                       capsys):
    out = tmp_path / "out"
    assert bag(oracle_dir, drives, "--output-dir", out, f"--ray={cluster.address}") == 1
    captured = capsys.readouterr()
    assert "cut.mcap" in one_error_line(captured.err) and "(Ray, 2 bags at once on 2 CPUs)" in captured.err
    lines = manifest(out)
    assert [(Path(e["output"]).name, e["status"]) for e in lines] == [
        ("cut.mcap", "failed"), ("drive0", "done"), ("drive1", "done"), ("drive2", "done")]
    assert "cannot read bag" in lines[0]["error"] and lines[0]["sha256"] is None
    assert [(e["frames"], e["skipped_frames"]) for e in lines[1:]] == [(9, 0), (8, 1), (8, 1)]
    for entry in lines[1:]:
        assert entry["backend"] == "onnxruntime (cpu)" and entry["precision"] == "fp32"
        assert entry["sha256"] == single_digest(oracle_dir, Path(entry["input"]), Path(entry["output"]).name, tmp_path)
    assert not leftovers(out) and not (out / "cut.mcap").exists()


def test_gpu_actors_load_the_model_once_each(cluster, drives, oracle_dir, tmp_path):
    """--gpus 2: two actors, each with one (pretend) GPU, take the bags in turn with the model loaded once."""
    from segnet_ros.backends import BackendOptions
    from segnet_ros.bag.fleet import BagJob, NetSpec, plan_tasks, run_job
    from segnet_ros.bag.ray_runner import RayRunner, RaySettings
    from segnet_ros.core.model import ModelFiles
    from segnet_ros.core.segnet import SegNetSettings

    good = tmp_path / "good"
    for name in ("drive0", "drive1", "drive2"):
        shutil.copytree(drives / name, good / name)
    shutil.copytree(drives / "drive0", good / "drive3")
    job = BagJob(str(tmp_path / "out"))
    spec = NetSpec(ModelFiles.in_folder(oracle_dir), "onnxruntime", BackendOptions(device="cpu"),
                   SegNetSettings(ignore_class=""))
    runner = RayRunner(spec, job, RaySettings(address=cluster.address, gpus=2))
    outcome = run_job(plan_tasks([str(good)], job), job, runner)
    assert [record.status for record in outcome.records] == ["done"] * 4
    assert {record.loads for record in outcome.records} == {1}  # each actor loaded the model once
    assert len({record.worker for record in outcome.records}) == 2
    assert runner.describe == "Ray, 2 GPU actors"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals a child process")
def test_ctrl_c_cancels_cleanly(cluster, oracle_dir, tmp_path):
    drives = big_drives(tmp_path / "long", 4)
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-m", "segnet_ros.cli.main", "bag", str(drives), "--output-dir",
                              str(out), f"--ray={cluster.address}", *model_args(oracle_dir)], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for_work(out, 2)
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 130, child.stderr.read()
    finally:
        child.kill()
        child.wait()
        child.stderr.close()
    done = {p.name[: -len(".json")] for p in (out / STATE / "done").iterdir()}
    assert {p.name for p in out.iterdir() if p.name.startswith("long")} == done
    assert len(done) < 4 and not leftovers(out)
    assert [e["status"] for e in manifest(out)] == ["done"] * len(done)  # what finished, and nothing else


def test_a_node_lost_mid_run_still_gives_every_bag_once(cluster, oracle_dir, tmp_path, capsys):
    """Last in the module: it removes the second node. Ray runs that node's bag again on the head."""
    drives = big_drives(tmp_path / "long", 4)
    out = tmp_path / "out"
    removed = threading.Event()

    def remove_when_both_nodes_work() -> None:
        wait_for_work(out, 2)
        time.sleep(0.3)
        cluster.cluster.remove_node(cluster.node)
        removed.set()

    thread = threading.Thread(target=remove_when_both_nodes_work, daemon=True)
    thread.start()
    assert bag(oracle_dir, drives, "--output-dir", out, f"--ray={cluster.address}") == 0, capsys.readouterr().err
    thread.join(timeout=30)
    assert removed.is_set()
    lines = manifest(out)
    assert [(Path(e["output"]).name, e["status"], e["frames"]) for e in lines] == [
        (f"long{i}", "done", 400) for i in range(4)]
    markers = sorted((out / STATE / "done").iterdir())
    assert [p.name for p in markers] == [f"long{i}.json" for i in range(4)]
    assert [json.loads(p.read_text())["sha256"] for p in markers] == [e["sha256"] for e in lines]
    assert not leftovers(out)
