"""Static INT8 quantisation of a model with ONNX Runtime's tools, judged before it is installed.

QDQ format, per-channel int8 weights, uint8 activations, MinMax ranges from the user's frames.
``reduce_range`` (7-bit weights) exists for CPUs without VNNI, whose U8S8 kernels use the saturating
``VPMADDUBSW``: there ``auto`` quantises both ways and keeps the one that agrees better with FP32 on
this CPU's own kernels (7-bit on a tie, as it cannot saturate); with VNNI nothing saturates, so full
8-bit weights are kept. For TensorRT
(``target`` tensorrt) activations are signed int8 and symmetric instead, the only form its explicit
quantisation takes. The result is installed only when its agreement with FP32 on held-out frames
reaches the gate (or with ``force``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backends.base import Backend
from ..backends.cpu import CpuInfo, cpu_info
from ..backends.qdq import TARGETS, QdqKey, cached_qdq_model, install_qdq_model
from ..core.classify import classify
from ..core.errors import BackendError
from ..core.model import Model
from ..files import sha256_file
from .agreement import Agreement, compare
from .calibration import FrameSet, reader

log = logging.getLogger(__name__)

REDUCE_RANGE_CHOICES = ("auto", "on", "off")


@dataclass(frozen=True)
class QuantizeSettings:
    """What ``segnet-ros quantize`` was asked for."""

    reduce_range: str = "auto"  # auto | on | off
    min_agreement: float = 98.0  # percent of held-out grid cells; below it nothing is installed
    force: bool = False  # install even below min_agreement
    threads: int = 0  # ONNX Runtime threads for the agreement check (0: its default)
    ignore_class: str = "void"  # as segment and the node apply it, so the figure is what users see
    target: str = "cpu"  # cpu (ONNX Runtime, OpenVINO) | tensorrt
    # the accuracy gate, where labelled frames were given: the chosen model's bytes -> (passes, figures)
    judge: Callable[[bytes], tuple[bool, dict]] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.reduce_range not in REDUCE_RANGE_CHOICES:
            raise ValueError(f"reduce_range must be one of {', '.join(REDUCE_RANGE_CHOICES)}, "
                             f"got '{self.reduce_range}'")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got '{self.target}'")
        if not 0.0 <= self.min_agreement <= 100.0:
            raise ValueError(f"min_agreement must be 0..100, got {self.min_agreement}")


@dataclass(frozen=True)
class Candidate:
    """One quantised model and how well it agrees with FP32."""

    reduce_range: bool
    agreement: Agreement
    data: bytes = field(repr=False)
    key: QdqKey
    cached: bool  # taken from the cache instead of quantised anew


@dataclass(frozen=True)
class QuantizeResult:
    candidates: tuple[Candidate, ...]
    chosen: Candidate
    passed: bool  # chosen.agreement reaches min_agreement (and the judge, where there is one, agrees)
    installed: Path | None  # None: refused by the gate
    calibration_frames: int
    held_out_frames: int
    agreement_passed: bool = True
    accuracy: dict = field(default_factory=dict)  # the judge's figures (empty without labelled frames)


def reduce_range_options(setting: str, cpu: CpuInfo, target: str = "cpu") -> tuple[bool, ...]:
    """The reduce_range values to try, in order of preference on a tie: both where the CPU lacks VNNI and
    the setting is auto, 7-bit first (it cannot saturate there); never for TensorRT, whose kernels do not
    saturate."""
    if setting == "on":
        return (True,)
    if setting == "off" or cpu.has_vnni or target != "cpu":
        return (False,)
    return (True, False)


def qdq_settings(reduce_range: bool, target: str = "cpu") -> str:
    """The settings part of the cache key, as canonical JSON."""
    activations = "uint8" if target == "cpu" else "int8 symmetric"
    return json.dumps({"format": "qdq", "per_channel": True, "weights": "int8", "activations": activations,
                       "calibration": "minmax", "reduce_range": reduce_range, "target": target}, sort_keys=True)


def tool_versions() -> tuple[str, str]:
    """ONNX Runtime's and onnx's versions: both change what quantisation writes."""
    import onnx

    from ..backends.onnxruntime_backend import import_onnxruntime

    return import_onnxruntime().__version__, onnx.__version__


def _tools():
    """ONNX Runtime's quantisation functions, or a BackendError saying what to install."""
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        try:
            from onnxruntime.quantization.shape_inference import quant_pre_process
        except ImportError:
            quant_pre_process = None  # before ONNX Runtime 1.13: quantise without it
        if quant_pre_process is not None:
            import sympy  # noqa: F401  quant_pre_process needs it and says so only half-way through
    except ImportError as exc:
        raise BackendError(f"INT8 quantisation needs ONNX Runtime's quantisation tools and sympy ({exc}); "
                           "install them with: pip install 'segnet_ros[quantize]' (onnxruntime and sympy)") from None
    return CalibrationMethod, QuantFormat, QuantType, quantize_static, quant_pre_process


@contextlib.contextmanager
def _quiet(workdir: Path) -> Iterator[None]:
    """ONNX Runtime's quantiser logs its progress on the root logger (only warnings of ours should show),
    and before 1.13 it writes its calibration model to the current folder: run it quiet, in ``workdir``."""
    logging.disable(logging.INFO)
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        yield
    finally:
        os.chdir(previous)
        logging.disable(logging.NOTSET)


class _Quantizer:
    """Quantises one model, pre-processing it once for every reduce_range tried."""

    def __init__(self, model: Model, workdir: Path) -> None:
        self.model = model
        self.workdir = workdir
        self._prepared: Path | None = None

    def prepared(self) -> Path:
        if self._prepared is None:
            *_, quant_pre_process = _tools()
            source = self.model.files.onnx.resolve()  # absolute: the tools run in workdir
            self._prepared = source
            if quant_pre_process is not None:
                target = self.workdir / "prepared.onnx"
                try:
                    with _quiet(self.workdir):
                        quant_pre_process(str(source), str(target))
                    self._prepared = target
                except Exception as exc:  # its shape inference cannot follow every graph
                    log.warning("quantisation pre-processing failed (%s); quantising the model as it is", exc)
        return self._prepared

    def quantize(self, frames: FrameSet, reduce_range: bool, target: str = "cpu") -> bytes:
        calibration_method, quant_format, quant_type, quantize_static, _ = _tools()
        output = self.workdir / f"int8-{target}-{'rr' if reduce_range else 'full'}.onnx"
        symmetric = target != "cpu"
        source = self.prepared()
        try:
            with _quiet(self.workdir):
                quantize_static(
                    str(source), str(output), reader(frames.calibration, self.model.files.input_blob),
                    quant_format=quant_format.QDQ, per_channel=True, reduce_range=reduce_range,
                    activation_type=quant_type.QInt8 if symmetric else quant_type.QUInt8,
                    weight_type=quant_type.QInt8, calibrate_method=calibration_method.MinMax,
                    extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True})
            # MinMax keeps only each tensor's min and max per frame (ReduceMin/Max outputs), so memory stays
            # small; CalibMaxIntermediateOutputs would not help, and in ONNX Runtime 1.32 it drops what it clears
            return output.read_bytes()
        except Exception as exc:
            raise BackendError(f"{self.model.files.onnx}: ONNX Runtime cannot quantise it: {exc}") from None


def quantize_to_bytes(model: Model, frames: FrameSet, reduce_range: bool, target: str = "cpu") -> bytes:
    """One QDQ model of ``model`` calibrated on ``frames.calibration``, serialized; nothing is installed."""
    with tempfile.TemporaryDirectory(prefix="segnet-quantize-") as workdir:
        return _Quantizer(model, Path(workdir)).quantize(frames, reduce_range, target)


def qdq_key(model: Model, frames: FrameSet, reduce_range: bool, target: str = "cpu") -> QdqKey:
    """The cache key of the QDQ model of ``model`` calibrated on ``frames`` with these settings."""
    return QdqKey(sha256_file(model.files.onnx), frames.digest(), qdq_settings(reduce_range, target),
                  *tool_versions())


def _session(source: str | bytes, threads: int = 0):
    """An ONNX Runtime CPU session of the model at ``source`` (a path or serialized ONNX)."""
    from ..backends.onnxruntime_backend import CPU_PROVIDER, import_onnxruntime

    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(source, sess_options=options, providers=[CPU_PROVIDER])


def class_grids(source: str | bytes, model: Model, tensors: Sequence[np.ndarray], threads: int = 0,
                ignore_id: int | None = None) -> list[np.ndarray]:
    """The class grid of each tensor with the model at ``source`` (a path or serialized ONNX)."""
    try:
        session = _session(source, threads)
        outputs = [session.run([model.files.output_blob], {model.files.input_blob: t})[0] for t in tensors]
    except Exception as exc:
        raise BackendError(f"ONNX Runtime cannot run the model to compare INT8 with FP32: {exc}") from None
    return [classify(logits, ignore_id)[0] for logits in outputs]


class CandidateBackend(Backend):
    """A quantised model not installed yet, on ONNX Runtime's CPU provider: what the accuracy gate
    scores before anything is installed."""

    name, device, precision = "onnxruntime", "cpu", "int8"

    def __init__(self, data: bytes, model: Model, threads: int = 0) -> None:
        self._session = _session(data, threads)
        self._names = ([model.files.output_blob], model.files.input_blob)

    def run(self, tensor: np.ndarray) -> np.ndarray:
        outputs, name = self._names
        return self._session.run(outputs, {name: tensor})[0]


def quantize_model(model: Model, frames: FrameSet, settings: QuantizeSettings = QuantizeSettings(),
                   cpu: CpuInfo | None = None) -> QuantizeResult:
    """Quantise ``model`` on ``frames.calibration``, judge it on ``frames.held_out``, install it if it passes.

    A model already in the cache for the same key (same ONNX, frames, settings and tool versions) is
    reused instead of quantised again; a damaged one is quantised anew.
    """
    cpu = cpu or cpu_info()
    ignore_id = model.classes.index_of(settings.ignore_class) if settings.ignore_class else None
    reference = class_grids(str(model.files.onnx), model, frames.held_out, settings.threads, ignore_id)
    candidates = []
    with tempfile.TemporaryDirectory(prefix="segnet-quantize-") as workdir:
        quantizer = _Quantizer(model, Path(workdir))
        for reduce_range in reduce_range_options(settings.reduce_range, cpu, settings.target):
            key = qdq_key(model, frames, reduce_range, settings.target)
            cached = cached_qdq_model(key, model.name)
            if cached is not None:
                log.info("INT8 model (reduce_range %s) found in the cache: %s", _on(reduce_range), cached)
                data = cached.read_bytes()
            else:
                log.info("quantising %s to INT8 for %s (reduce_range %s) on %d calibration frames", model.name,
                         settings.target, _on(reduce_range), len(frames.calibration))
                data = quantizer.quantize(frames, reduce_range, settings.target)
            grids = class_grids(data, model, frames.held_out, settings.threads, ignore_id)
            candidates.append(Candidate(reduce_range, compare(reference, grids, model.num_classes), data, key,
                                        cached is not None))
    chosen = max(candidates, key=lambda c: c.agreement.equal)  # ties: the first tried
    agreement_passed = chosen.agreement.percent >= settings.min_agreement
    accurate, accuracy = settings.judge(chosen.data) if settings.judge is not None else (True, {})
    if settings.judge is not None:
        accuracy = {**accuracy, "accuracy_passed": accurate}  # precision auto reads it
    passed = agreement_passed and accurate
    tried = [{"reduce_range": c.reduce_range, "agreement_percent": round(c.agreement.percent, 3)} for c in candidates]
    for candidate in candidates:  # kept, not installed: a rerun with --force or another gate is instant
        if candidate is not chosen and not candidate.cached:
            _keep(candidate, model, cpu, frames, settings, tried)
    installed = None
    if passed or settings.force:
        installed = install_qdq_model(chosen.key, model.name, chosen.data,
                                      {**_note(chosen, model, cpu, frames, settings, tried, forced=not passed),
                                       **accuracy}, target=settings.target)
    elif not chosen.cached:
        _keep(chosen, model, cpu, frames, settings, tried)
    return QuantizeResult(tuple(candidates), chosen, passed, installed, len(frames.calibration),
                          len(frames.held_out), agreement_passed, accuracy)


def _note(candidate: Candidate, model: Model, cpu: CpuInfo, frames: FrameSet, settings: QuantizeSettings,
          tried: list[dict], forced: bool = False) -> dict:
    """What the JSON beside the model says: its agreement (per class too) and where it was measured."""
    return {"reduce_range": candidate.reduce_range, "cpu": cpu.describe(),
            "calibration_frames": len(frames.calibration), "min_agreement": settings.min_agreement, "forced": forced,
            **candidate.agreement.as_dict(model.classes.names), "candidates": tried}


def _keep(candidate: Candidate, model: Model, cpu: CpuInfo, frames: FrameSet, settings: QuantizeSettings,
          tried: list[dict]) -> None:
    """Store a model that is not installed, so that a later run with the same key reuses it."""
    note = _note(candidate, model, cpu, frames, settings, tried)
    try:
        install_qdq_model(candidate.key, model.name, candidate.data, note, target=settings.target, make_current=False)
    except BackendError as exc:
        log.warning("%s", exc)


def _on(value: bool) -> str:
    return "on" if value else "off"
