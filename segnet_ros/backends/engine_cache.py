"""The TensorRT engine cache: plain files and locks, no TensorRT, so it is tested directly.

A serialized engine is only valid for the exact ONNX bytes, TensorRT version, GPU and build
settings it came from; loading any other one fails at best and computes garbage at worst. So an
engine's file name carries a digest of all of them (:class:`EngineKey`), files are replaced
atomically and processes building the same engine take turns on a lock file. The note beside each
engine records its sha256 and key, so a file that does not load is told apart: corrupt or stale
(rebuilt) from intact (not rebuilt: TensorRT failed for another reason, usually GPU memory, and a
minutes-long rebuild would overwrite a good engine). The cache never stops a robot from starting
for lack of a folder: an unwritable one only costs a build on every start, with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Generic, TypeVar

from ..core.errors import BackendError
from ..files import exclusive_lock, sha256_file, write_atomic
from ..paths import cache_dir

log = logging.getLogger(__name__)

T = TypeVar("T")

KEY_FORMAT = 2  # bump when the meaning of a key or the file layout changes: old files are then never read


def default_engine_dir() -> Path:
    """Where engines go unless told otherwise: ``<segnet_ros cache>/engines``."""
    return cache_dir() / "engines"


def model_sha256(onnx: Path, external: list[Path] = ()) -> str:
    """The digest of a model: its ONNX file's sha256, or, where its weights live in external-data files,
    the sha256 over the ONNX file's digest and each external file's name and digest."""
    onnx_digest = sha256_file(onnx)
    if not external:
        return onnx_digest
    digest = hashlib.sha256(onnx_digest.encode())
    for path in external:
        digest.update(f"\0{path.name}\0{sha256_file(path)}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; a change in any field selects another file."""

    onnx_sha256: str  # model_sha256: the ONNX file and its external data
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"
    precision: str  # the resolved one: fp32 | fp16 | int8, never auto
    dla_core: int  # -1: the GPU
    multiprocessors: int = 0  # every Orin module says "Orin" 8.7; SM count and memory tell them apart
    total_memory_mb: int = 0
    max_batch: int = 1  # the optimisation profile's batch range is 1..max_batch
    qdq_sha256: str = ""  # int8: the QDQ model the engine was built from
    typing: str = "weak"  # weak (builder precision flags) | strong (the network's own types)
    # the whole-frame graph (graph.py) the engine runs instead of the bare model: its GraphSpec as canonical
    # text (camera size, encoding, outputs, colours...) and the digest of the wrapper the builder made of it,
    # so a changed graph builder never serves an old engine; both empty for the bare model
    graph: str = ""
    graph_sha256: str = ""

    def fields(self) -> dict:
        """What identifies the engine. The graph's fields are left out for the bare model, so its engines
        keep the names they had before graphs existed."""
        fields = asdict(self)
        if not self.graph and not self.graph_sha256:
            del fields["graph"], fields["graph_sha256"]
        return fields

    def digest(self) -> str:
        text = json.dumps({"key_format": KEY_FORMAT, **self.fields()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def file_name(self, label: str) -> str:
        """Readable in a folder listing (model, precision, target), unique by the digest."""
        target = "gpu" if self.dla_core < 0 else f"dla{self.dla_core}"
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "model"
        batch = f"-b{self.max_batch}" if self.max_batch > 1 else ""
        if self.graph:
            stem += "-graph"
        return f"{stem}-{self.precision}-{target}{batch}-{self.digest()[:24]}.engine"


@dataclass
class CachedEngine(Generic[T]):
    """What :meth:`EngineCache.obtain` produced, and how."""

    engine: T
    path: Path | None  # the file that holds it; None when it lives in memory only
    built: bool  # built by this call (False: loaded from the cache)
    build_seconds: float = 0.0


FileId = tuple[int, int, int]


def _file_id(path: Path) -> FileId | None:
    """Identity of the file now at ``path``: tells a file another process wrote from the one we saw."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _read_note(path: Path) -> dict | None:
    """The JSON note beside an engine, or None when it is missing or unreadable."""
    try:
        note = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class EngineCache:
    """Engines in ``directory``, one file per :class:`EngineKey`."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory else default_engine_dir()

    def path_for(self, key: EngineKey, label: str) -> Path:
        return self.directory / key.file_name(label)

    def obtain(self, key: EngineKey, label: str, build: Callable[[], bytes], load: Callable[[bytes], T | None],
               force_rebuild: bool = False) -> CachedEngine[T]:
        """The engine for ``key``: loaded from the cache, or built, stored and loaded.

        ``build`` returns a serialized engine; ``load`` deserializes one and returns None when it
        cannot (corrupt or foreign file). ``force_rebuild`` ignores the file present now, but not
        one another process writes while this one waits for the lock: that one is fresh.
        """
        path = self.path_for(key, label)
        seen = _file_id(path)
        if seen is not None:
            if force_rebuild:
                log.info("force_rebuild: ignoring the cached TensorRT engine %s", path)
            else:
                engine = self._load(path, load, key)
                if engine is not None:
                    log.info("TensorRT engine loaded from the cache: %s", path)
                    return CachedEngine(engine, path, built=False)
        with contextlib.ExitStack() as stack:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                stack.enter_context(exclusive_lock(
                    path.with_name(path.name + ".lock"),
                    f"another process is building the TensorRT engine {path}; waiting for it"))
            except OSError as exc:
                log.warning("the engine cache %s is not writable (%s): building the TensorRT engine in memory; "
                            "it will be built again on every start until the folder is writable or "
                            "engine_cache_dir names a writable one", self.directory, _reason(exc))
                return self._build(build, load, None, key, label)
            now = _file_id(path)
            if now is not None and now != seen:
                engine = self._load(path, load, key)
                if engine is not None:
                    log.info("another process built this TensorRT engine meanwhile; loaded %s", path)
                    return CachedEngine(engine, path, built=False)
            return self._build(build, load, path, key, label)

    @staticmethod
    def _load(path: Path, load: Callable[[bytes], T | None], key: EngineKey) -> T | None:
        """The engine in ``path``, or None when the file must be rebuilt (unreadable, corrupt, stale). A file
        that its note vouches for (same sha256, same key) but that does not load is a BackendError instead."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("cannot read the cached TensorRT engine %s (%s); rebuilding it", path, _reason(exc))
            return None
        engine = load(data)
        if engine is not None:
            return engine
        note = _read_note(path)
        if note is None:
            why = "it has no readable note to tell a corrupt file from a failed load, so it is treated as corrupt"
        elif note.get("engine_sha256") != hashlib.sha256(data).hexdigest():
            why = "its bytes differ from those its note recorded: corrupt or truncated"
        elif {k: note.get(k) for k in key.fields()} != key.fields() or note.get("key_format") != KEY_FORMAT:
            why = "its note says it was built for another model, TensorRT or GPU: stale"
        else:
            raise BackendError(
                f"TensorRT cannot load the cached engine {path}, although the file is intact (its sha256 matches "
                "its note) and was built for this model, TensorRT and GPU: most likely the GPU is out of memory "
                "(common on a Jetson, whose GPU shares memory with the CPU: stop other GPU programs and start "
                "again); TensorRT's messages above say why. The engine is kept; --force-rebuild builds it anew")
        log.warning("the cached TensorRT engine %s does not load (%s); rebuilding it", path, why)
        return None

    def _build(self, build: Callable[[], bytes], load: Callable[[bytes], T | None], path: Path | None,
               key: EngineKey, label: str) -> CachedEngine[T]:
        started = time.perf_counter()
        data = build()
        seconds = time.perf_counter() - started
        if path is not None:
            path = self._store(path, data, key, label, seconds)
        engine = load(data)
        if engine is None:
            raise BackendError("TensorRT cannot load the engine it has just built (its messages above say why; "
                               "out of GPU memory is the usual reason)")
        return CachedEngine(engine, path, built=True, build_seconds=seconds)

    @staticmethod
    def _store(path: Path, data: bytes, key: EngineKey, label: str, seconds: float) -> Path | None:
        """Write the engine and a JSON note saying what it is; None (with a warning) when that fails."""
        try:
            write_atomic(path, data)
        except OSError as exc:
            log.warning("cannot store the TensorRT engine in %s (%s); using it from memory, it will be "
                        "built again on the next start", path, _reason(exc))
            return None
        note = {"model": label, **key.fields(), "key_format": KEY_FORMAT, "bytes": len(data),
                "engine_sha256": hashlib.sha256(data).hexdigest(),
                "build_seconds": round(seconds, 3), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with contextlib.suppress(OSError):  # the note is for people; the engine is what matters
            write_atomic(path.with_suffix(".json"), (json.dumps(note, indent=2) + "\n").encode())
        return path

