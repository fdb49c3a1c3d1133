"""Inference backends behind one interface, and the factory that picks one and its precision.

``backend auto`` ranks what can run here by measured merit: TensorRT on an NVIDIA GPU, then ONNX
Runtime's CUDA provider, then the CPU. On the CPU, ``precision auto`` and the backend follow these
measurements (FCN-ResNet18 at 512x256, 2 threads, ``segnet-ros benchmark``: per-frame medians, rows
taking turns; the AVX-512 machine was shared with other jobs, so its ratios of four runs are given):

======================================  ========  ==========  ==========  ============  ==========
CPU                                     ORT FP32  ORT INT8    OV FP32     OV BF16 hint  OV INT8
======================================  ========  ==========  ==========  ============  ==========
AMD EPYC, AVX-512 VNNI + BF16           1.00x     2.2-2.4x    0.87-1.07x  2.1-2.5x      4.0-5.1x
Zen 3, AVX2 + FMA only (earlier run)   66 ms     38 ms       77 ms       79 ms (FP32)  34 ms
======================================  ========  ==========  ==========  ============  ==========

So: INT8 wherever ``segnet-ros quantize`` installed a model of this ONNX file (it is the fastest
row on both kinds, VNNI or not), on OpenVINO where it is installed (faster than ONNX Runtime's INT8
on both), else on ONNX Runtime; otherwise BF16 on OpenVINO where the CPU has ``avx512_bf16`` or
``amx_bf16`` (elsewhere the BF16 hint runs FP32); otherwise FP32 on ONNX Runtime (a tie with
OpenVINO's FP32 on AVX-512, 15% faster on AVX2). The decision is the pure function :func:`choose` of
:class:`Facts` (CPU flags, which runtimes load, whether an INT8 model is installed), so it is tested
for CPUs this machine is not; :func:`detect_facts` gathers them, probing no more than it needs.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.errors import BackendError
from ..core.model import Model
from . import cpu as cpu_facts
from .base import Backend, BackendOptions
from .cpu import CpuInfo

BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt")
CPU_BACKENDS = ("openvino", "onnxruntime")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Facts:
    """What the choice depends on. ``tensorrt`` says why TensorRT can run ("" where it cannot, and
    ``tensorrt_missing`` says why); ``openvino`` likewise; ``int8_model``: a QDQ model of this ONNX
    file is installed."""

    cpu: CpuInfo
    tensorrt: str = ""
    tensorrt_missing: str = "not probed"
    onnxruntime_cuda: bool = False
    onnxruntime: bool = True
    openvino: str = ""
    openvino_missing: str = "OpenVINO is not installed"
    int8_model: bool = False


@dataclass(frozen=True)
class Choice:
    """A backend, the precision to ask it for, and why, in words for the log."""

    backend: str
    precision: str
    reason: str

    def log_line(self, asked_backend: str, asked_precision: str) -> str:
        """The one line that says what auto decided (backend, precision or both) and why."""
        if asked_backend != "auto":
            return f"precision auto chose {self.precision} on {self.backend}: {self.reason}"
        if asked_precision == "auto" and self.precision != "auto":
            return f"backend auto chose {self.backend} with precision {self.precision}: {self.reason}"
        if asked_precision != "auto":
            return f"backend auto chose {self.backend} for precision {asked_precision}: {self.reason}"
        return f"backend auto chose {self.backend}: {self.reason}"


def _no_bf16(facts: Facts) -> str:
    return f"no native BF16 ({facts.cpu.model} has neither {' nor '.join(cpu_facts.BF16_FLAGS)})"


def cpu_precision(facts: Facts, backend: str) -> tuple[str, str]:
    """``precision auto`` for a CPU backend the user named: (precision, why)."""
    if facts.int8_model:
        return "int8", "an INT8 model of this ONNX file is installed, and INT8 is the fastest CPU precision measured"
    if backend == "openvino" and facts.cpu.has_native_bf16:
        return "bf16", "no INT8 model is installed; this CPU has native BF16 (" + \
            " ".join(f for f in cpu_facts.BF16_FLAGS if f in facts.cpu.flags) + ")"
    why_not_bf16 = "" if backend == "onnxruntime" else f"; {_no_bf16(facts)}"
    return "fp32", f"no INT8 model of this ONNX file is installed ('segnet-ros quantize' makes one){why_not_bf16}"


def cpu_choice(facts: Facts, precision: str) -> tuple[str, str, str]:
    """The CPU backend and precision for ``precision`` (auto or named): (backend, precision, why)."""
    fp32_backend = "onnxruntime" if facts.onnxruntime or not facts.openvino else "openvino"
    if precision == "auto":
        if facts.int8_model:
            backend = "openvino" if facts.openvino else "onnxruntime"
            where = "OpenVINO's INT8 is the fastest row measured" if facts.openvino else \
                f"on ONNX Runtime ({facts.openvino_missing}; OpenVINO's INT8 is faster still)"
            return backend, "int8", f"an INT8 model of this ONNX file is installed; {where}"
        if facts.cpu.has_native_bf16 and facts.openvino:
            flags = " ".join(f for f in cpu_facts.BF16_FLAGS if f in facts.cpu.flags)
            return "openvino", "bf16", (f"no INT8 model of this ONNX file is installed ('segnet-ros quantize' makes "
                                        f"one); this CPU has native BF16 ({flags}) and OpenVINO is installed")
        why_not_bf16 = _no_bf16(facts) if not facts.cpu.has_native_bf16 else \
            f"native BF16 needs OpenVINO ({facts.openvino_missing})"
        return fp32_backend, "fp32", (f"no INT8 model of this ONNX file is installed ('segnet-ros quantize' makes "
                                      f"one); {why_not_bf16}")
    if precision == "bf16":
        if not facts.openvino:
            raise BackendError(f"precision bf16 runs on OpenVINO: {facts.openvino_missing}; install it with "
                               "'pip install openvino', or use precision fp32 or int8")
        if not facts.cpu.has_native_bf16:
            from .openvino_backend import bf16_not_native_error

            raise bf16_not_native_error(facts.cpu)
        return "openvino", "bf16", "BF16 runs natively on this CPU through OpenVINO"
    if precision == "int8":
        if facts.openvino:
            return "openvino", "int8", "OpenVINO's INT8 is faster than ONNX Runtime's on every CPU measured"
        return "onnxruntime", "int8", f"{facts.openvino_missing}, so ONNX Runtime runs INT8"
    if precision == "fp16":
        return "onnxruntime", "fp16", "no CPU backend runs fp16"  # the backend refuses it, saying what to use
    if fp32_backend == "openvino":
        return "openvino", "fp32", "ONNX Runtime is not installed"
    return "onnxruntime", "fp32", "ONNX Runtime's FP32 ties with OpenVINO's on AVX-512 and is faster on AVX2"


def choose(facts: Facts, device: str = "auto", precision: str = "auto", backend: str = "auto") -> Choice:
    """What ``backend``/``precision`` auto mean for these facts. Raises BackendError where nothing can
    run what was asked for (bf16 on a CPU without it)."""
    if backend != "auto":
        on_cpu = backend == "openvino" or (backend == "onnxruntime" and (device == "cpu" or not (
            device == "auto" and facts.onnxruntime_cuda)))
        if precision != "auto" or backend not in CPU_BACKENDS or not on_cpu:
            return Choice(backend, precision, "as asked")
        chosen, why = cpu_precision(facts, backend)
        return Choice(backend, chosen, why)
    if device == "cpu":
        why_cpu = "device 'cpu' was asked for"
    elif precision == "bf16" and device == "auto":
        why_cpu = "bf16 is a CPU precision"
    else:
        if facts.tensorrt:
            return Choice("tensorrt", precision, facts.tensorrt)
        missing = f"TensorRT cannot run here: {facts.tensorrt_missing}"
        if facts.onnxruntime_cuda or device == "cuda":
            return Choice("onnxruntime", precision,  # on CUDA, ONNX Runtime's own auto: fp32
                          f"{missing}; ONNX Runtime has {'its' if facts.onnxruntime_cuda else 'no'} CUDA provider")
        why_cpu = f"{missing}; ONNX Runtime has no CUDA provider, so it runs on the CPU"
    chosen_backend, chosen_precision, why = cpu_choice(facts, precision)
    return Choice(chosen_backend, chosen_precision, f"{why_cpu}; {why}")


def _openvino_facts() -> tuple[str, str]:
    from . import openvino_backend

    try:
        return f"OpenVINO {openvino_backend.version()}", ""
    except BackendError as exc:
        return "", str(exc)


def detect_facts(backend: str, options: BackendOptions, onnx: Path | None = None, everything: bool = False) -> Facts:
    """This machine's facts, probing only what the choice can depend on (``everything``: all of them,
    for ``segnet-ros benchmark``): no TensorRT probe when the device is the CPU or TensorRT was not
    asked about, no INT8 lookup unless precision is auto."""
    facts = Facts(cpu=cpu_facts.cpu_info())
    gpu_first = everything or (backend == "auto" and options.device != "cpu" and not (
        options.precision == "bf16" and options.device == "auto"))
    if gpu_first:
        from . import onnxruntime_backend, tensorrt_backend

        try:
            facts = replace(facts, tensorrt=tensorrt_backend.probe())
        except BackendError as exc:
            facts = replace(facts, tensorrt_missing=str(exc))
        if facts.tensorrt and not everything:
            return facts
        facts = replace(facts, onnxruntime_cuda=onnxruntime_backend.cuda_available())
        if (facts.onnxruntime_cuda or options.device == "cuda") and not everything:
            return facts
    elif backend == "onnxruntime" and options.device == "auto":
        from . import onnxruntime_backend

        facts = replace(facts, onnxruntime_cuda=onnxruntime_backend.cuda_available())
    if backend == "auto" or everything:
        openvino, missing = _openvino_facts()
        facts = replace(facts, openvino=openvino, openvino_missing=missing or facts.openvino_missing,
                        onnxruntime=importlib.util.find_spec("onnxruntime") is not None)
    if (options.precision == "auto" or everything) and onnx is not None:
        from .qdq import vetted_qdq_model

        facts = replace(facts, int8_model=vetted_qdq_model(onnx) is not None)
    return facts


def choose_backend(options: BackendOptions = BackendOptions()) -> tuple[str, str]:
    """What ``backend auto`` means here, and why (without a model: no INT8 model is considered)."""
    choice = choose(detect_facts("auto", options), options.device, options.precision)
    return choice.backend, choice.reason


def create_backend(name: str, model: Model, options: BackendOptions = BackendOptions()) -> Backend:
    """Create the backend called ``name`` for ``model``. ``auto`` (backend, or a CPU backend's precision)
    is decided by :func:`choose`: once the backend runs, one short line names what auto chose; the
    reason is logged at debug level (the CLI's ``--verbose``), so a failure is the only line it prints."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got '{name}'")
    chose = ""
    if name == "auto" or (name in CPU_BACKENDS and options.precision == "auto"):
        choice = choose(detect_facts(name, options, model.files.onnx), options.device, options.precision, name)
        log.debug("%s", choice.log_line(name, options.precision))
        # a named backend running its own default (fp32) is no news: the CLI's error lines stay alone
        chose = "backend" if name == "auto" else "precision" if choice.precision != "fp32" else ""
        name, options = choice.backend, replace(options, precision=choice.precision)
    backend = _create(name, model, options)
    if chose:
        log.info("%s auto chose %s", chose, backend.describe())
    return backend


def _create(name: str, model: Model, options: BackendOptions) -> Backend:
    if name == "tensorrt":
        from .tensorrt_backend import TensorRTBackend

        return TensorRTBackend(model, options)
    if name == "openvino":
        from .openvino_backend import OpenVinoBackend

        return OpenVinoBackend(model, options)
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, options)


__all__ = ["BACKENDS", "Backend", "BackendOptions", "Choice", "Facts", "choose", "choose_backend", "create_backend",
           "detect_facts"]
