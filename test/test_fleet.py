"""``segnet-ros bag INPUT... --output-dir DIR`` without Ray: each bag as the single command writes it,
the manifest, resuming, a failed bag among good ones, a killed run, and object storage through fsspec's
memory file system (no network)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from bag_helpers import write_scene
from conftest import ROOT

MANIFEST_KEYS = ["input", "output", "status", "frames", "skipped_frames", "sha256", "backend", "precision", "seconds",
                 "error"]


def model_args(oracle_dir) -> list[str]:
    return ["--model", str(oracle_dir / "fcn_resnet18.onnx"), "--backend", "onnxruntime", "--device", "cpu",
            "--ignore-class", "", "--no-progress"]


def bag(oracle_dir, *args) -> int:
    """The command in this process; its exit status."""
    from segnet_ros.cli.main import main

    try:
        return main(["bag", *map(str, args), *model_args(oracle_dir)])
    except SystemExit as exc:
        return int(exc.code)


def manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("segnet-ros: error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def single_digest(oracle_dir, source: Path, name: str, tmp_path: Path) -> str:
    """sha256 of what ``segnet-ros bag SOURCE OUTPUT`` writes for the same name."""
    from segnet_ros.bag.storage import bag_digest

    out = tmp_path / f"single-{uuid.uuid4().hex}" / name
    assert bag(oracle_dir, source, out) == 0
    return bag_digest(out)


def leftovers(folder: Path) -> list[str]:
    """Private files a run must not leave: partial bags, work folders, pending notes."""
    state = folder / ".segnet-ros"
    found = [str(p) for p in folder.rglob("*") if ".partial" in p.name]
    for sub in ("work", "pending"):
        found += [str(p) for p in (state / sub).iterdir()] if (state / sub).is_dir() else []
    return found


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """A folder of bags (MCAP and SQLite 3 folders), a lone .mcap file and a .db3 file."""
    base = tmp_path_factory.mktemp("fleet")
    folder = base / "drives"
    folder.mkdir()
    write_scene(folder / "a", "mcap", seed=1)
    write_scene(folder / "b", "sqlite3", seed=2, bad_front=(2,))
    write_scene(base / "c", "mcap", seed=3)
    single = base / "c.mcap"
    shutil.copy(next((base / "c").glob("*.mcap")), single)
    write_scene(base / "d", "sqlite3", seed=4)
    db3 = base / "d.db3"
    shutil.copy(next((base / "d").glob("*.db3")), db3)
    return {"base": base, "folder": folder, "mcap": single, "db3": db3}


def test_many_bags_each_as_the_single_command_writes_it_resumable(bags, oracle_dir, tmp_path, capsys):
    out = tmp_path / "out"
    corrupt = tmp_path / "in" / "cut.mcap"
    corrupt.parent.mkdir()
    corrupt.write_bytes(bags["mcap"].read_bytes()[:3000])
    inputs = [bags["folder"], bags["mcap"], str(bags["base"] / "d.db*"), corrupt]
    assert bag(oracle_dir, *inputs, "--output-dir", out) == 1
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "1 of 5 bags failed, the first: " in line and "cut.mcap" in line and "reindex" in line
    lines = manifest(out)
    assert [list(entry) for entry in lines] == [MANIFEST_KEYS] * 5
    assert [Path(entry["input"]).name for entry in lines] == ["a", "b", "c.mcap", "d.db3", "cut.mcap"]
    assert [Path(entry["output"]).name for entry in lines] == ["a", "b", "c.mcap", "d", "cut.mcap"]
    assert [entry["status"] for entry in lines] == ["done"] * 4 + ["failed"]
    assert [(entry["frames"], entry["skipped_frames"]) for entry in lines] == [(9, 0), (8, 1), (9, 0), (9, 0), (0, 0)]
    for entry in lines[:4]:
        assert entry["backend"] == "onnxruntime (cpu)" and entry["precision"] == "fp32" and entry["error"] is None
        assert entry["seconds"] > 0
        expected = single_digest(oracle_dir, Path(entry["input"]), Path(entry["output"]).name, tmp_path)
        assert entry["sha256"] == expected, entry["input"]
    assert (out / "c.mcap").is_file() and (out / "d" / "metadata.yaml").is_file()  # .mcap stays one file
    failed = lines[4]
    assert failed["sha256"] is None and "\n" not in failed["error"] and "cannot read bag" in failed["error"]
    assert not (out / "cut.mcap").exists() and not leftovers(out)
    assert "5 bags: 4 done, 0 skipped (done before), 1 failed" in captured.out

    # again: the done bags are skipped (their outputs untouched), the failed one is tried again
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and STATE not in p.parts}
    assert bag(oracle_dir, *inputs, "--output-dir", out) == 1
    again = manifest(out)
    assert [entry["status"] for entry in again] == ["skipped"] * 4 + ["failed"]
    assert [entry["sha256"] for entry in again] == [entry["sha256"] for entry in lines]
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items() if p.name != "manifest.jsonl")

    # the bag repaired: the third run makes it, and only it
    shutil.copy(bags["mcap"], corrupt)
    capsys.readouterr()
    assert bag(oracle_dir, *inputs, "--output-dir", out) == 0
    assert [entry["status"] for entry in manifest(out)] == ["skipped"] * 4 + ["done"]
    assert manifest(out)[4]["sha256"] == single_digest(oracle_dir, corrupt, "cut.mcap", tmp_path)
    assert "5 bags: 1 done, 4 skipped (done before), 0 failed" in capsys.readouterr().out
    assert sorted(p.name for p in (out / STATE / "done").iterdir()) == [
        "a.json", "b.json", "c.mcap.json", "cut.mcap.json", "d.json"]
    assert not leftovers(out)


STATE = ".segnet-ros"


def test_an_output_not_written_by_the_job_is_never_replaced(bags, oracle_dir, tmp_path, capsys):
    """DIR/<name> without a done marker is someone else's, unless a pending note says an earlier attempt
    published it and was stopped before its marker: then it is made again."""
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "notes.txt").write_text("mine")
    assert bag(oracle_dir, bags["folder"], "--output-dir", out) == 1
    assert "exists and was not written by segnet-ros bag --output-dir" in one_error_line(capsys.readouterr().err)
    assert (out / "a" / "notes.txt").read_text() == "mine"
    assert [entry["status"] for entry in manifest(out)] == ["failed", "done"]
    # an attempt that published 'b' and was killed before its marker: the pending note says so
    (out / STATE / "done" / "b.json").rename(out / STATE / "pending" / "b.json")
    shutil.rmtree(out / "a")
    assert bag(oracle_dir, bags["folder"], "--output-dir", out) == 0
    assert [entry["status"] for entry in manifest(out)] == ["done", "done"]
    assert not leftovers(out)
    # stopped between the marker and the note's removal: the next run removes the note
    shutil.copy(out / STATE / "done" / "a.json", out / STATE / "pending" / "a.json")
    assert bag(oracle_dir, bags["folder"], "--output-dir", out) == 0
    assert [entry["status"] for entry in manifest(out)] == ["skipped", "skipped"] and not leftovers(out)


def test_bags_side_by_side_in_processes_write_the_same_bytes(bags, oracle_dir, tmp_path):
    """--jobs 2: two worker processes, one core each (the default on 2 cores is one bag at a time)."""
    out = tmp_path / "out"
    assert bag(oracle_dir, bags["folder"], bags["mcap"], "--output-dir", out, "--jobs", "2") == 0
    lines = manifest(out)
    assert [entry["status"] for entry in lines] == ["done"] * 3
    for entry in lines:
        assert entry["sha256"] == single_digest(oracle_dir, Path(entry["input"]), Path(entry["output"]).name, tmp_path)


def _processes_tagged(tag: str) -> list[int]:
    """Our processes whose environment carries ``tag`` (the driver and its worker processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if tag.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_run_leaves_no_partial_bag_and_a_rerun_completes_every_bag_once(oracle_dir, tmp_path):
    drives = tmp_path / "drives"
    for i in range(4):
        write_scene(drives / f"drive{i}", front=400, rear=0, seed=i)
    out = tmp_path / "out"
    tag = f"SEGNET_FLEET_TEST={uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), tag.split("=")[0]: tag.split("=")[1]}
    child = subprocess.Popen([sys.executable, "-m", "segnet_ros.cli.main", "bag", str(drives), "--output-dir",
                              str(out), "--jobs", "2", *model_args(oracle_dir)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    work = out / STATE / "work"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (work.is_dir() and any(work.iterdir())):
        time.sleep(0.01)
    assert child.poll() is None, child.stderr.read().decode()
    time.sleep(0.3)  # well inside a bag
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    child.stderr.close()
    deadline = time.monotonic() + 15
    while _processes_tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_tagged(tag), "the worker processes outlived their driver"
    done = {p.name[: -len(".json")] for p in (out / STATE / "done").iterdir()}
    published = {p.name for p in out.iterdir() if p.name.startswith("drive")}
    pending = {p.name[: -len(".json")] for p in (out / STATE / "pending").iterdir()}
    assert len(done) < 4, "the run was meant to be killed mid-way"
    assert published <= done | pending  # nothing published that no marker or note vouches for
    assert not [p for p in out.rglob("*") if ".partial" in p.name and work not in p.parents]

    assert bag(oracle_dir, drives, "--output-dir", out) == 0
    lines = manifest(out)
    assert sorted(entry["status"] for entry in lines) == sorted(["skipped"] * len(done) + ["done"] * (4 - len(done)))
    assert [Path(entry["output"]).name for entry in lines] == [f"drive{i}" for i in range(4)]
    assert all(entry["frames"] == 400 for entry in lines)
    assert sorted(p.name for p in (out / STATE / "done").iterdir()) == [f"drive{i}.json" for i in range(4)]
    assert not leftovers(out)
    for entry in lines[:2]:
        assert entry["sha256"] == single_digest(oracle_dir, Path(entry["input"]), Path(entry["output"]).name, tmp_path)


def test_object_storage_through_fsspec(bags, oracle_dir, tmp_path, capsys):
    """Bags read from and written to an fsspec URL (the memory file system: no network); the marker is a
    create-only put, and the bag's bytes are the local run's."""
    fsspec = pytest.importorskip("fsspec")
    from segnet_ros.bag.storage import RemoteDir, bag_digest

    fs = fsspec.filesystem("memory")
    root = f"fleet-{uuid.uuid4().hex}"
    fs.put(str(bags["folder"]), f"/{root}/in/drives", recursive=True)
    fs.put_file(str(bags["mcap"]), f"/{root}/in/c.mcap")
    try:
        url = f"memory://{root}/out"
        assert bag(oracle_dir, f"memory://{root}/in/drives/", f"memory://{root}/in/*.mcap", "--output-dir", url) == 0
        lines = [json.loads(line) for line in fs.cat_file(f"/{root}/out/manifest.jsonl").decode().splitlines()]
        assert [(e["input"], e["output"], e["status"]) for e in lines] == [
            (f"memory://{root}/in/drives/a", f"{url}/a", "done"), (f"memory://{root}/in/drives/b", f"{url}/b", "done"),
            (f"memory://{root}/in/c.mcap", f"{url}/c.mcap", "done")]
        fs.get(f"/{root}/out/a", str(tmp_path / "a"), recursive=True)
        assert bag_digest(tmp_path / "a") == lines[0]["sha256"]
        assert lines[0]["sha256"] == single_digest(oracle_dir, bags["folder"] / "a", "a", tmp_path)
        fs.get_file(f"/{root}/out/c.mcap", str(tmp_path / "c.mcap"))
        assert bag_digest(tmp_path / "c.mcap") == lines[2]["sha256"]
        assert sorted(fs.ls(f"/{root}/out/.segnet-ros/pending")) == []
        capsys.readouterr()
        assert bag(oracle_dir, f"memory://{root}/in/drives/", "--output-dir", url) == 0
        assert "2 bags: 0 done, 2 skipped (done before)" in capsys.readouterr().out

        remote = RemoteDir(url)
        assert remote.create("x.json", b"1") is True
        assert remote.create("x.json", b"2") is False and remote.read("x.json") == b"1"
    finally:
        fs.rm(f"/{root}", recursive=True)


def test_a_file_url_goes_through_fsspec_too(bags, oracle_dir, tmp_path, capsys):
    pytest.importorskip("fsspec")
    url = f"file://{tmp_path / 'out'}"
    for status in ("done", "skipped"):
        assert bag(oracle_dir, f"file://{bags['folder']}/a", bags["mcap"], "--output-dir", url) == 0
        assert [entry["status"] for entry in manifest(tmp_path / "out")] == [status] * 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".segnet-ros", "a", "c.mcap", "manifest.jsonl"]
    assert not leftovers(tmp_path / "out")


def test_a_bag_that_cannot_be_published_fails_and_is_not_marked(bags, oracle_dir, tmp_path, monkeypatch, capsys):
    from segnet_ros.bag.storage import LocalDir
    from segnet_ros.bag.typestore import BagError

    def refuse(self, made, name):
        raise BagError(f"cannot publish '{self.path / name}': No space left on device")

    monkeypatch.setattr(LocalDir, "publish", refuse)
    assert bag(oracle_dir, bags["mcap"], "--output-dir", tmp_path / "out") == 1
    entry = manifest(tmp_path / "out")[0]
    assert entry["status"] == "failed" and entry["sha256"] is None and "No space left" in entry["error"]
    assert not list((tmp_path / "out" / STATE / "done").iterdir())
    monkeypatch.undo()
    assert bag(oracle_dir, bags["mcap"], "--output-dir", tmp_path / "out") == 0  # and a rerun makes it
    assert manifest(tmp_path / "out")[0]["status"] == "done" and not leftovers(tmp_path / "out")


def test_a_local_marker_is_created_once_and_whole(tmp_path):
    from segnet_ros.bag.storage import LocalDir

    out = LocalDir(tmp_path / "out")
    out.prepare()
    assert out.create(".segnet-ros/done/x.json", b"first") is True
    assert out.create(".segnet-ros/done/x.json", b"second") is False
    assert (tmp_path / "out" / ".segnet-ros" / "done" / "x.json").read_bytes() == b"first"
    assert sorted(p.name for p in (tmp_path / "out" / ".segnet-ros" / "done").iterdir()) == ["x.json"]
    with out.lock():
        from segnet_ros.bag.typestore import BagError

        with pytest.raises(BagError, match="another segnet-ros bag is writing to"), LocalDir(tmp_path / "out").lock():
            pass


def test_inputs_bags_folders_globs_and_names(bags, tmp_path):
    from segnet_ros.bag.storage import find_bags, output_name
    from segnet_ros.bag.typestore import BagError

    found = find_bags([str(bags["folder"]), str(bags["base"] / "*.mcap"), str(bags["db3"]), str(bags["folder"] / "a")])
    assert [Path(p).name for p in found] == ["a", "b", "c.mcap", "d.db3"]  # each once, in order
    assert [output_name(p) for p in found] == ["a", "b", "c.mcap", "d"]
    for given, words in ((tmp_path / "nowhere", "not found"), (str(tmp_path / "*.mcap"), "no bags match"),
                         (tmp_path, "nor a folder of bags")):
        with pytest.raises(BagError, match=words):
            find_bags([str(given)])


@pytest.mark.parametrize(("args", "words"), [
    (("IN",), "give INPUT and OUTPUT (one bag), or INPUT... --output-dir DIR"),
    (("IN", "X", "OUT"), "3 paths given: one bag takes INPUT OUTPUT; for many bags, give --output-dir DIR"),
    (("IN", "OUT", "--ray"), "--ray is for many bags: add --output-dir DIR"),
    (("IN", "--output-dir", "D", "--gpus", "1"), "--gpus is for --ray"),
    (("IN", "--output-dir", "D", "--video", "v.mp4"), "--video is for one bag"),
    (("IN", "--output-dir", "D", "--overwrite"), "--overwrite does not apply to --output-dir"),
    (("IN", "--output-dir", "D", "--jobs", "2", "--ray"), "--jobs is for the embedded runner"),
    (("TWINS", "--output-dir", "D"), "would both be written to a in the output folder"),
    (("IN", "--output-dir", "IN/a/inside"), "is the input"),
])
def test_many_bag_arguments_are_refused_in_one_line(args, words, bags, oracle_dir, tmp_path, capsys):
    twins = tmp_path / "twins"
    if "TWINS" in args:
        for copy in ("x", "y"):
            shutil.copytree(bags["folder"] / "a", twins / copy / "a")
    paths = {"IN": str(bags["folder"]), "TWINS": str(twins / "*"), "D": str(tmp_path / "d"),
             "IN/a/inside": str(bags["folder"] / "a" / "inside")}
    assert bag(oracle_dir, *[paths.get(a, a) for a in args]) == 1
    assert words in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "d").exists() and not (bags["folder"] / "a" / "inside").exists()


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "ray":
            raise ImportError(f"{name} is blocked by the test")
sys.meta_path.insert(0, Block())
from segnet_ros.cli.main import main
code = main(sys.argv[1:])
assert "ray" not in sys.modules
sys.exit(code)
"""


def test_the_embedded_runner_never_imports_ray_and_ray_missing_is_one_line(bags, oracle_dir, tmp_path):
    def child(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", BLOCKER, "bag", str(bags["folder"] / "a"), "--output-dir",
                               str(tmp_path / "out"), *model_args(oracle_dir), *extra], capture_output=True,
                              text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})

    result = child()
    assert result.returncode == 0, result.stderr
    result = child("--ray")
    assert result.returncode == 1
    assert one_error_line(result.stderr) == ("segnet-ros: error: --ray needs Ray: pip install 'segnet_ros[fleet]' "
                                             "(or pip install ray)")


def test_one_progress_bar_over_bags_and_frames(monkeypatch):
    import io

    from segnet_ros.bag.fleet import Record
    from segnet_ros.cli.bag import FleetProgress

    progress = FleetProgress(4, enabled=True)
    progress.stream = io.StringIO()
    progress._start = 100.0
    monkeypatch.setattr(time, "perf_counter", lambda: 110.0)
    progress.record(Record("x", "y", status="skipped", frames=50, index=0))
    progress.frames(1, 30)
    progress.record(Record("x", "y", status="done", frames=40, skipped_frames=2, index=1))
    progress.frames(2, 58)
    progress.frames(1, 40)  # late, after its bag's record: not counted twice
    assert progress.stream.getvalue().rsplit("\r", 1)[1] == "[###############...............] 2/4 bags  100 frames  " \
                                                          "10.0 fps  ETA 0:00:20"
