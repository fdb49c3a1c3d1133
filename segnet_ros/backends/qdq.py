"""The INT8 model cache: QDQ models that ``segnet-ros quantize`` made, found by their ONNX file.

A quantised model is only right for the exact FP32 weights it came from, so everything lives in a
folder per ONNX sha256 (``<cache>/int8/<sha256[:32]>/``). Each model file is named by the digest of
its :class:`QdqKey` (ONNX sha256, calibration digest, settings, tool versions) and has a ``.json``
note beside it; ``installed.json`` in the folder names the one in use: re-running the quantizer with
other frames or settings installs a new file and the newest install wins. A model whose bytes no
longer match the sha256 its note recorded is treated as absent (and rebuilt by the quantizer).

Two targets: ``cpu`` (uint8 activations with zero points: what ONNX Runtime's and OpenVINO's CPU
kernels run fastest) and ``tensorrt`` (signed int8 activations, symmetric: TensorRT's explicit
quantisation accepts only zero point 0). Each has its own index, ``installed.json`` and
``installed-tensorrt.json``.
Plain files and locks, no ONNX Runtime, so the backends and the CLI can ask cheaply.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.errors import BackendError
from ..files import exclusive_lock, sha256_file, write_atomic
from ..paths import cache_dir

log = logging.getLogger(__name__)

KEY_FORMAT = 1  # bump when the meaning of a key or the layout changes: old files are then never read
INDEX = "installed.json"
TARGETS = ("cpu", "tensorrt")
ONNX_DIGEST_CHARS = 32


def default_qdq_dir() -> Path:
    """Where INT8 models go: ``<segnet_ros cache>/int8``."""
    return cache_dir() / "int8"


@dataclass(frozen=True)
class QdqKey:
    """Everything a QDQ model depends on; a change in any field selects another file."""

    onnx_sha256: str
    calibration_digest: str  # sha256 over the calibration tensors, in order
    settings: str  # canonical JSON of the quantisation settings
    onnxruntime_version: str
    onnx_version: str

    def digest(self) -> str:
        text = json.dumps({"key_format": KEY_FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def file_name(self, label: str) -> str:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "model"
        return f"{stem}-int8-{self.digest()[:24]}.onnx"


def model_folder(onnx_sha256: str, directory: Path | None = None) -> Path:
    """The folder of every QDQ model of the ONNX file with this sha256."""
    return (directory or default_qdq_dir()) / onnx_sha256[:ONNX_DIGEST_CHARS]


def index_name(target: str = "cpu") -> str:
    """The index file naming the installed model of ``target``."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got '{target}'")
    return INDEX if target == "cpu" else f"installed-{target}.json"


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _intact(path: Path, sha256: object) -> bool:
    try:
        return isinstance(sha256, str) and sha256_file(path) == sha256
    except OSError:
        return False


def cached_qdq_model(key: QdqKey, label: str = "", directory: Path | None = None) -> Path | None:
    """The intact model file for exactly ``key`` (under any label), or None (a damaged one is reported
    and ignored)."""
    folder = model_folder(key.onnx_sha256, directory)
    named = folder / key.file_name(label)
    found = [named] if named.exists() else sorted(folder.glob(f"*-int8-{key.digest()[:24]}.onnx"))
    if not found:
        return None
    path = found[0]
    note = _read_json(path.with_suffix(".json"))
    if note is None or note.get("key_digest") != key.digest() or not _intact(path, note.get("sha256")):
        log.warning("the cached INT8 model %s is damaged or incomplete; it will be made again", path)
        return None
    return path


def find_qdq_model(onnx: Path, directory: Path | None = None, target: str = "cpu") -> Path | None:
    """The installed, intact QDQ model of the ONNX file ``onnx`` for ``target`` (the newest install), or None."""
    try:
        digest = sha256_file(Path(onnx))
    except OSError:
        return None
    folder = model_folder(digest, directory)
    index = _read_json(folder / index_name(target))
    if (index is None or index.get("key_format") != KEY_FORMAT or index.get("onnx_sha256") != digest
            or not isinstance(index.get("file"), str)):
        return None
    path = folder / Path(index["file"]).name
    if not _intact(path, index.get("sha256")):
        log.warning("the installed INT8 model %s is missing or damaged; run 'segnet-ros quantize' again", path)
        return None
    if index.get("target", "cpu") != target:
        return None
    return path


def vetted_qdq_model(onnx: Path, directory: Path | None = None) -> Path | None:
    """The installed INT8 model of ``onnx`` that ``precision auto`` may pick: one that passed quantize's
    agreement check (and its accuracy check, where one was made), not one installed with --force."""
    path = find_qdq_model(onnx, directory)
    if path is None:
        return None
    note = _read_json(path.parent / INDEX) or {}
    if note.get("forced", True) or note.get("accuracy_passed") is False:
        log.debug("auto skips the INT8 model %s: it was installed with --force past a failed check", path)
        return None
    return path


@dataclass(frozen=True)
class InstalledQdq:
    """One installed INT8 model, as ``segnet-ros models list`` shows it."""

    model: str  # the FP32 model's name
    target: str
    agreement: float | None  # percent of held-out cells equal to FP32
    forced: bool
    path: Path


def installed_qdq_models(directory: Path | None = None) -> list[InstalledQdq]:
    """Every INT8 model an index names, by model name and target."""
    found = []
    for folder in sorted(p for p in (directory or default_qdq_dir()).glob("*") if p.is_dir()):
        for target in TARGETS:
            note = _read_json(folder / index_name(target))
            if note is None or not isinstance(note.get("file"), str):
                continue
            agreement = note.get("agreement_percent")
            found.append(InstalledQdq(str(note.get("model", "?")), target,
                                      float(agreement) if isinstance(agreement, (int, float)) else None,
                                      bool(note.get("forced", True)), folder / Path(note["file"]).name))
    return sorted(found, key=lambda m: (m.model, m.target))


def remove_qdq_models(model: str, directory: Path | None = None) -> list[Path]:
    """Delete the INT8 models (every target, every kept candidate) made from the model called ``model``;
    the folders removed."""
    import shutil

    folders = sorted({m.path.parent for m in installed_qdq_models(directory) if m.model == model})
    for folder in folders:
        with exclusive_lock(folder / ".lock", f"another process is using the INT8 models in {folder}; waiting"):
            for item in folder.iterdir():
                if item.name != ".lock":
                    item.unlink()
        shutil.rmtree(folder, ignore_errors=True)
    return folders


def installed_note(onnx: Path, directory: Path | None = None, target: str = "cpu") -> dict | None:
    """What the index says about the installed model of ``onnx`` (agreement, key, CPU), or None."""
    path = find_qdq_model(onnx, directory, target)
    return _read_json(path.parent / index_name(target)) if path is not None else None


def quantize_command(onnx: Path, network: str = "", input_blob: str = "input_0", output_blob: str = "output_0",
                     target: str = "cpu") -> str:
    """The ``segnet-ros quantize`` command line that makes the INT8 model of this model."""
    parts = ["segnet-ros", "quantize"]
    parts += ["--network", network] if network else ["--model", str(onnx)]
    if target != "cpu":
        parts += ["--target", target]
    if input_blob != "input_0":
        parts += ["--input-blob", input_blob]
    if output_blob != "output_0":
        parts += ["--output-blob", output_blob]
    return " ".join(shlex.quote(part) for part in parts) + " FRAMES"


def missing_qdq_error(onnx: Path, network: str = "", input_blob: str = "input_0",
                      output_blob: str = "output_0", target: str = "cpu") -> BackendError:
    """The error for precision int8 without an installed INT8 model: it gives the command to run."""
    command = quantize_command(Path(onnx), network, input_blob, output_blob, target)
    return BackendError(
        f"precision int8 needs an INT8 model of {onnx} and none is installed; use precision fp32, or make one "
        f"from your own camera's frames (images, a folder, a quoted glob, a video or a rosbag2) with: {command}")


def install_qdq_model(key: QdqKey, label: str, data: bytes, note: dict, directory: Path | None = None,
                      target: str = "cpu", make_current: bool = True) -> Path:
    """Store ``data`` as the model for ``key`` and (``make_current``) make it the installed one of its
    ONNX file for ``target``; without ``make_current`` it is only kept for a later run to reuse.

    Atomic writes under the folder's lock: a reader sees the old install or the new one. ``note``
    (agreement figures, calibration inputs) is kept beside the model and in the index.
    """
    folder = model_folder(key.onnx_sha256, directory)
    path = folder / key.file_name(label)
    index = index_name(target)
    record = {"model": label, "file": path.name, "target": target, "sha256": hashlib.sha256(data).hexdigest(),
              "key_digest": key.digest(), "key_format": KEY_FORMAT, **asdict(key), **note,
              "bytes": len(data), "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    text = (json.dumps(record, indent=2) + "\n").encode()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(folder / ".lock", f"another process is installing an INT8 model in {folder}; waiting"):
            write_atomic(path, data)
            write_atomic(path.with_suffix(".json"), text)
            if make_current:
                write_atomic(folder / index, text)
    except OSError as exc:
        raise BackendError(f"cannot store the INT8 model in {folder} ({exc.strerror or exc}); "
                           f"set SEGNET_ROS_CACHE to a writable folder") from None
    return path
