"""The engine cache on its own: plain files, locks and a stand-in "engine" (no TensorRT, no fakes)."""

import dataclasses
import hashlib
import json
import logging
import os
import threading

import pytest

from segnet_ros import files
from segnet_ros.backends import engine_cache
from segnet_ros.backends.engine_cache import EngineCache, EngineKey, model_sha256
from segnet_ros.core.errors import BackendError
from segnet_ros.files import sha256_file

KEY = EngineKey(onnx_sha256="a" * 64, tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7",
                precision="fp16", dla_core=-1)
GOOD = b"ENGINE:"


class Counting:
    """A build that returns ``payload`` and counts its calls; a load that accepts GOOD-prefixed bytes."""

    def __init__(self, payload: bytes = GOOD + b"1") -> None:
        self.payload, self.calls = payload, 0

    def build(self) -> bytes:
        self.calls += 1
        return self.payload

    @staticmethod
    def load(data: bytes):
        return data.decode() if data.startswith(GOOD) else None


def test_sha256_is_streamed_and_exact(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    data = os.urandom(3 * files.CHUNK + 17)
    path.write_bytes(data)
    monkeypatch.setattr(files, "CHUNK", 4096)  # many chunks: the digest must not depend on chunking
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("field, value", [
    ("onnx_sha256", "b" * 64), ("tensorrt_version", "10.4.0"), ("gpu_name", "RTX 4090"),
    ("compute_capability", "8.9"), ("precision", "fp32"), ("dla_core", 0), ("multiprocessors", 16),
    ("total_memory_mb", 62841), ("max_batch", 4), ("qdq_sha256", "c" * 64), ("typing", "strong")])
def test_every_key_component_selects_another_file(tmp_path, field, value):
    cache = EngineCache(tmp_path)
    other = dataclasses.replace(KEY, **{field: value})
    assert cache.path_for(other, "m") != cache.path_for(KEY, "m")
    assert cache.path_for(dataclasses.replace(KEY), "m") == cache.path_for(KEY, "m")  # and nothing else does


def test_file_name_is_readable_and_safe():
    name = KEY.file_name("FCN ResNet18/../Cityscapes")
    assert name.endswith(".engine") and "/" not in name and " " not in name
    assert name.startswith("FCN_ResNet18_.._Cityscapes-fp16-gpu-")
    assert "-dla1-" in dataclasses.replace(KEY, dla_core=1).file_name("m")


def test_build_store_then_load(tmp_path):
    cache, first = EngineCache(tmp_path / "engines"), Counting()
    built = cache.obtain(KEY, "m", first.build, first.load)
    assert built.built and built.engine == "ENGINE:1" and built.path.read_bytes() == first.payload
    note = json.loads(built.path.with_suffix(".json").read_text())
    assert note["gpu_name"] == "Orin" and note["model"] == "m" and note["bytes"] == len(first.payload)
    second = Counting(GOOD + b"2")
    loaded = cache.obtain(KEY, "m", second.build, second.load)
    assert not loaded.built and loaded.engine == "ENGINE:1" and second.calls == 0
    assert sorted(p.suffix for p in built.path.parent.iterdir()) == [".engine", ".json", ".lock"]  # no temp files
    assert "-b" not in built.path.name and "-b4-" in dataclasses.replace(KEY, max_batch=4).file_name("m")


def test_default_folder_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGNET_ROS_CACHE", str(tmp_path / "c"))
    assert EngineCache().directory == tmp_path / "c" / "engines"
    assert EngineCache("").directory == tmp_path / "c" / "engines"


@pytest.mark.parametrize("content", [b"", b"garbage", GOOD[:3]])
def test_corrupt_engine_is_rebuilt_with_a_warning(tmp_path, caplog, content):
    cache, builder = EngineCache(tmp_path), Counting()
    path = cache.path_for(KEY, "m")
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        result = cache.obtain(KEY, "m", builder.build, builder.load)
    assert result.built and builder.calls == 1 and path.read_bytes() == builder.payload
    assert any("does not load" in r.message and r.levelno == logging.WARNING for r in caplog.records)


def refusing_load(data: bytes):
    """A load that fails whatever the bytes, as deserialize_cuda_engine does when GPU memory runs out."""
    return None


def test_an_intact_engine_that_does_not_load_is_kept_and_reported(tmp_path):
    cache = EngineCache(tmp_path)
    path = cache.obtain(KEY, "m", Counting().build, Counting.load).path
    again = Counting(GOOD + b"2")
    with pytest.raises(BackendError, match="intact .* out of memory"):
        cache.obtain(KEY, "m", again.build, refusing_load)
    assert again.calls == 0 and path.read_bytes() == GOOD + b"1"


@pytest.mark.parametrize("damage", ["bytes", "note missing", "note of another key", "note unreadable"])
def test_only_a_corrupt_or_stale_engine_is_rebuilt(tmp_path, caplog, damage):
    """The note's sha256 and key tell a corrupt or stale file (rebuilt) from an intact one (kept)."""
    cache = EngineCache(tmp_path)
    path = cache.obtain(KEY, "m", Counting().build, Counting.load).path
    note = path.with_suffix(".json")
    if damage == "bytes":
        path.write_bytes(GOOD + b"X")
    elif damage == "note missing":
        note.unlink()
    elif damage == "note of another key":
        note.write_text(json.dumps({**json.loads(note.read_text()), "gpu_name": "Orin Nano"}))
    else:
        note.write_text("{")
    again = Counting(GOOD + b"2")
    with caplog.at_level(logging.WARNING):
        result = cache.obtain(KEY, "m", again.build, lambda data: None if again.calls == 0 else data.decode())
    assert result.built and again.calls == 1 and path.read_bytes() == GOOD + b"2"
    assert any("does not load" in r.message for r in caplog.records)


def test_the_note_records_the_engines_sha256(tmp_path):
    path = EngineCache(tmp_path).obtain(KEY, "m", Counting().build, Counting.load).path
    note = json.loads(path.with_suffix(".json").read_text())
    assert note["engine_sha256"] == hashlib.sha256(GOOD + b"1").hexdigest() and note["max_batch"] == 1


def test_model_digest_covers_external_data(tmp_path):
    """A model whose weights live in an external-data file changes when only that file changes."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from segnet_ros.backends.onnx_rewrite import external_data_files

    def save(weights: np.ndarray) -> None:
        graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4096])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4096])],
                                  [numpy_helper.from_array(weights, "w")])
        onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"), save_as_external_data=True,
                  location="m.weights", size_threshold=0)

    save(np.ones((1, 4096), np.float32))
    onnx_path = tmp_path / "m.onnx"
    assert external_data_files(onnx_path) == [tmp_path / "m.weights"]
    first, onnx_bytes = model_sha256(onnx_path, external_data_files(onnx_path)), onnx_path.read_bytes()
    (tmp_path / "m.weights").write_bytes(np.full((1, 4096), 2, np.float32).tobytes())  # new weights, same ONNX
    assert onnx_path.read_bytes() == onnx_bytes  # the ONNX file alone did not change: its digest would not tell
    assert model_sha256(onnx_path, external_data_files(onnx_path)) != first
    assert model_sha256(onnx_path) == sha256_file(onnx_path)  # no external data: the ONNX file's own digest


def test_force_rebuild_replaces_a_good_engine(tmp_path, caplog):
    cache = EngineCache(tmp_path)
    cache.obtain(KEY, "m", Counting().build, Counting.load)
    again = Counting(GOOD + b"new")
    with caplog.at_level(logging.INFO):
        result = cache.obtain(KEY, "m", again.build, again.load, force_rebuild=True)
    assert again.calls == 1 and result.built and result.engine == "ENGINE:new"
    assert result.path.read_bytes() == GOOD + b"new"
    assert any("force_rebuild" in r.message for r in caplog.records)


def test_unwritable_folder_builds_in_memory_with_a_warning(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")  # fails for root too, unlike chmod
    builder = Counting()
    with caplog.at_level(logging.WARNING):
        result = EngineCache(blocker / "engines").obtain(KEY, "m", builder.build, builder.load)
    assert result.built and result.path is None and result.engine == "ENGINE:1"
    assert any("not writable" in r.message and "in memory" in r.message for r in caplog.records)


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, caplog):
    cache = EngineCache(tmp_path)
    old = cache.obtain(KEY, "m", Counting(GOOD + b"old").build, Counting.load).path

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine_cache.os, "replace", broken_replace)
    with caplog.at_level(logging.WARNING):
        result = cache.obtain(KEY, "m", Counting(GOOD + b"new").build, Counting.load, force_rebuild=True)
    assert result.engine == "ENGINE:new" and result.path is None  # runs from memory
    assert old.read_bytes() == GOOD + b"old"  # never half-written
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert any("No space left" in r.message for r in caplog.records)


def test_an_engine_that_does_not_load_after_building_is_an_error(tmp_path):
    with pytest.raises(BackendError, match="cannot load the engine it has just built"):
        EngineCache(tmp_path).obtain(KEY, "m", lambda: b"bad", Counting.load)


def test_concurrent_builders_take_turns(tmp_path, caplog):
    """The second caller waits on the lock, then loads the first one's engine instead of building."""
    cache = EngineCache(tmp_path)
    building, release = threading.Event(), threading.Event()
    builds: list[str] = []

    def slow_build() -> bytes:
        builds.append(threading.current_thread().name)
        building.set()
        assert release.wait(10)
        return GOOD + b"first"

    results = {}

    def worker(name: str) -> None:
        results[name] = cache.obtain(KEY, "m", slow_build, Counting.load)

    first = threading.Thread(target=worker, args=("first",), name="first")
    second = threading.Thread(target=worker, args=("second",), name="second")
    with caplog.at_level(logging.INFO):
        first.start()
        assert building.wait(10)
        second.start()
        for _ in range(500):  # until the second one reports that it waits for the lock
            if any("waiting for it" in r.message for r in caplog.records):
                break
            threading.Event().wait(0.01)
        release.set()
        first.join(10)
        second.join(10)
    assert builds == ["first"]
    assert results["first"].built and not results["second"].built
    assert results["second"].engine == "ENGINE:first"
    assert any("waiting for it" in r.message for r in caplog.records)
    assert any("another process built" in r.message for r in caplog.records)
