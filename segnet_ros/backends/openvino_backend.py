"""OpenVINO on the CPU: FP32, BF16 where the CPU computes it natively, INT8 from the installed QDQ model.

Precision: ``fp32`` runs the ONNX file with the inference-precision hint pinned to f32 (OpenVINO
would otherwise pick bf16 by itself on AMX CPUs); ``bf16`` sets the hint to bf16, and only where the
CPU has ``avx512_bf16`` or ``amx_bf16``: elsewhere OpenVINO quietly runs FP32 at FP32's speed, so the
request is refused with what to use instead; ``int8`` reads the QDQ model ``segnet-ros quantize``
installed for the ONNX file (OpenVINO turns its Q/DQ pairs into INT8 kernels); ``auto`` is fp32 here
(the factory resolves auto for the machine as a whole). ``fp16`` is a GPU precision: refused.

The model is read with ``Core.read_model`` (the C++ ONNX front end), never with ``openvino.convert_model``
(OpenVINO's converter, which sends usage events); and openvino is imported with its telemetry package
hidden (:func:`_keep_openvino_quiet`): a plain ``import openvino`` phones Google Analytics.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

import numpy as np

from ..core.errors import BackendError
from ..core.model import Model
from . import cpu as cpu_facts
from .base import Backend, BackendOptions, GraphRunner, check_input
from .cpu import BF16_FLAGS, CpuInfo
from .qdq import find_qdq_model, missing_qdq_error

OPENVINO_PRECISIONS = ("auto", "fp32", "bf16", "int8")
HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: the layers left unquantised run f32


def _user_opted_in_to_openvino_telemetry() -> bool:
    """Whether the user said yes with OpenVINO's own ``opt_in_out --opt_in`` (its consent file holds "1")."""
    try:
        return (Path.home() / "intel" / "openvino_telemetry").read_text().strip() == "1"
    except (OSError, RuntimeError, UnicodeDecodeError):
        return False


def _keep_openvino_quiet() -> None:
    """``import openvino`` (2024 and later, with the openvino-telemetry package that pip installs beside it)
    sends a usage event to Google Analytics and writes a client id under ``~/intel/`` unless the user has
    opted out; there is no environment switch. Without ``openvino_telemetry`` OpenVINO uses its own no-op
    stub, so we hide the package from the import, unless openvino is loaded already (too late) or the user
    opted in through OpenVINO's own tool (their choice stands, as a user's ORT_DISABLE_TELEMETRY does)."""
    if "openvino" not in sys.modules and "openvino_telemetry" not in sys.modules \
            and not _user_opted_in_to_openvino_telemetry():
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # import then raises ImportError


def _openvino():
    missing = BackendError("OpenVINO is not installed; install it with 'pip install openvino' "
                           "(the segnet_ros extra 'openvino'), or use backend onnxruntime")
    try:
        if "openvino" not in sys.modules and importlib.util.find_spec("openvino") is None:
            raise missing
    except ValueError:  # a module without a spec (sys.modules entry None, as tests block it): not there
        raise missing from None
    _keep_openvino_quiet()
    try:
        import openvino
    except ImportError as exc:
        if sys.modules.get("openvino", False) is None:  # blocked: what a machine without it looks like
            raise missing from None
        raise BackendError(f"OpenVINO is installed but cannot be loaded: {exc}") from None
    return openvino


def version() -> str:
    """OpenVINO's version where it loads; raises BackendError where it does not."""
    return _openvino().get_version()


def bf16_not_native_error(cpu: CpuInfo) -> BackendError:
    """A bf16 request on a CPU that would run it as FP32 (no faster, slightly less exact)."""
    return BackendError(
        f"bf16: not native on this CPU ({cpu.model} has neither {' nor '.join(BF16_FLAGS)}); OpenVINO would run "
        "it as FP32 at FP32's speed; use precision fp32, or int8 (much faster on every CPU; 'segnet-ros quantize')")


def check_precision(precision: str, cpu: CpuInfo) -> str:
    """The precision this backend runs for ``precision`` on ``cpu``, or a BackendError saying what to use."""
    if precision not in OPENVINO_PRECISIONS:
        raise BackendError(f"OpenVINO on the CPU runs precision fp32, bf16 (where native) or int8, not {precision}; "
                           f"for {precision} use --backend tensorrt on an NVIDIA GPU")
    if precision == "bf16" and not cpu.has_native_bf16:
        raise bf16_not_native_error(cpu)
    return "fp32" if precision == "auto" else precision


class OpenVinoBackend(Backend):
    """Runs the model (or its INT8 model) in one OpenVINO CPU infer request; ``run`` calls take turns."""

    name = "openvino"
    batching_pays = True  # 4 frames a call: about 20% less per frame (BF16, 2-core AVX-512 EPYC)
    device = "cpu"
    runs_graph = True

    def __init__(self, model: Model, options: BackendOptions = BackendOptions(), cpu: CpuInfo | None = None) -> None:
        ov = _openvino()
        if options.device == "cuda":
            raise BackendError("OpenVINO runs on the CPU here; use device cpu or auto, or backend tensorrt or "
                               "onnxruntime for CUDA")
        cpu = cpu or cpu_facts.cpu_info()
        self.precision = check_precision(options.precision, cpu)
        self.max_batch = options.max_batch
        self.model_path = self._model_path(model)
        self._input_shape = model.input_shape
        self._output_shape = model.output_shape
        self._lock = threading.Lock()
        core = ov.Core()
        if self.precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise bf16_not_native_error(cpu)
        try:
            network = core.read_model(str(self.model_path))
        except Exception as exc:
            raise BackendError(f"{self.model_path}: OpenVINO cannot read it: {exc}") from None
        port = self._port(network.inputs, model.files.input_blob, "input", self.model_path)
        self._output = self._port(network.outputs, model.files.output_blob, "output", self.model_path)
        if self.max_batch > 1:
            batch = ov.PartialShape([ov.Dimension(1, self.max_batch), *self._input_shape[1:]])
            try:
                network.reshape({port: batch})
            except Exception as exc:
                raise BackendError(f"{self.model_path}: OpenVINO cannot give it a batch of 1..{self.max_batch} "
                                   f"({' '.join(str(exc).split())[:300]}); use max_batch 1 or re-export the model "
                                   "with a dynamic batch") from None
        config = {"INFERENCE_PRECISION_HINT": HINTS[self.precision], "PERFORMANCE_HINT": "LATENCY"}
        if options.threads:
            config["INFERENCE_NUM_THREADS"] = options.threads
        self._core, self._config, self._model = core, config, model
        try:
            self._compiled = core.compile_model(network, "CPU", config)
        except Exception as exc:
            raise BackendError(f"{self.model_path}: OpenVINO cannot compile it for the CPU: {exc}") from None
        self.threads = int(self._compiled.get_property("INFERENCE_NUM_THREADS"))
        self._request = self._compiled.create_infer_request()
        self._check_output_shape()

    def _model_path(self, model: Model) -> Path:
        if self.precision != "int8":
            return model.files.onnx
        path = find_qdq_model(model.files.onnx)
        if path is None:
            raise missing_qdq_error(model.files.onnx, input_blob=model.files.input_blob,
                                    output_blob=model.files.output_blob)
        return path

    @staticmethod
    def _port(ports, name: str, what: str, path: Path):
        for port in ports:
            if name in port.get_names():
                return port.get_any_name()
        names = ", ".join(sorted(n for p in ports for n in p.get_names()))
        raise BackendError(f"{path}: no {what} named '{name}' (it has {names}); pass --{what}_blob")

    def _infer(self, tensor: np.ndarray) -> np.ndarray:
        with self._lock:
            result = self._request.infer({0: np.ascontiguousarray(tensor)})
            return np.array(result[self._output], dtype=np.float32)  # our own copy, not the request's buffer

    def _check_output_shape(self) -> None:
        """One blank frame at start-up: a graph that computes another shape than it declares fails here."""
        logits = self._infer(np.zeros(self._input_shape, np.float32))
        if logits.shape != self._output_shape:
            raise BackendError(
                f"{self.model_path}: the model declares output {list(self._output_shape)} but computes "
                f"{list(logits.shape)}; re-export it with matching input and output shapes")

    def run(self, tensor: np.ndarray) -> np.ndarray:
        check_input(tensor, self._input_shape, self.max_batch)
        logits = self._infer(tensor)
        expected = (tensor.shape[0], *self._output_shape[1:])
        if logits.shape != expected:
            raise BackendError(f"model produced {logits.shape}; expected {expected}")
        return logits

    def graph_runner(self, spec) -> GraphRunner:
        """The whole-frame graph of ``spec`` around the model this backend runs, compiled for the CPU.
        FP32 and INT8 only: the BF16 hint would round the graph's own arithmetic (its colours) too."""
        import onnx

        from .graph import build_graph

        if self.precision == "bf16":
            raise BackendError("the whole-frame graph runs on OpenVINO in fp32 or int8 only (BF16 would round its "
                               "colours); use pipeline host, the default on CPUs, or precision fp32")
        graph = build_graph(self._model, spec, onnx.load(str(self.model_path)))
        try:
            compiled = self._core.compile_model(self._core.read_model(graph.SerializeToString()), "CPU",
                                                self._config)
        except Exception as exc:
            raise BackendError(f"OpenVINO cannot compile the whole-frame graph of {self.model_path}: "
                               f"{' '.join(str(exc).split())[:300]}") from None
        return _CompiledGraph(spec, compiled)

    def close(self) -> None:
        self._request = None
        self._compiled = None



class _CompiledGraph(GraphRunner):
    """A whole-frame graph compiled by OpenVINO; calls take turns on one infer request."""

    fresh_outputs = True  # copied out of the request's buffers under its lock

    def __init__(self, spec, compiled) -> None:
        self.spec, self._compiled = spec, compiled
        self._request = compiled.create_infer_request()
        self._names = [output.get_any_name() for output in compiled.outputs]
        self._lock = threading.Lock()

    def run(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            result = self._request.infer({0: np.ascontiguousarray(frames)})
            return {name: np.array(result[name]) for name in self._names}  # copies: the request reuses its own

    def close(self) -> None:
        self._request = self._compiled = None
