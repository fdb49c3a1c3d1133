"""ONNX Runtime: the backend that runs anywhere (CPU), or on CUDA when its provider exists.

Precision: ``fp32`` runs the ONNX file; ``int8`` runs the QDQ model ``segnet-ros quantize``
installed for it (see :mod:`.qdq`); ``auto`` is fp32 here (the factory resolves auto for the
machine as a whole and passes int8 when that is the choice). ONNX Runtime's CPU provider has no
fast fp16 or bf16 path, so those are refused with what to use instead. ``max_batch`` > 1 loads the
graph with a symbolic batch dimension, so one call can carry one frame per camera.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from ..core.errors import BackendError
from ..core.model import Model
from .base import Backend, BackendOptions, GraphRunner, check_input, threads_per_caller
from .qdq import find_qdq_model, missing_qdq_error

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
ORT_PRECISIONS = ("auto", "fp32", "int8")
BATCH_DIM = "batch"

log = logging.getLogger(__name__)


SPINNING = "session.intra_op.allow_spinning"


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        if importlib.util.find_spec("onnxruntime") is not None:  # installed, but it failed to load
            raise BackendError(f"ONNX Runtime is installed but cannot be loaded: {exc}") from None
        raise BackendError(
            "ONNX Runtime is not installed; install it with 'pip install onnxruntime' "
            "(or onnxruntime-gpu for CUDA)"
        ) from None
    return onnxruntime


def cuda_available() -> bool:
    """Whether ONNX Runtime here offers its CUDA provider."""
    try:
        return CUDA_PROVIDER in import_onnxruntime().get_available_providers()
    except BackendError:
        return False


def unsupported_precision_error(precision: str) -> BackendError:
    """fp16/bf16 on ONNX Runtime: say which backend runs them."""
    instead = ("--backend tensorrt on an NVIDIA GPU" if precision == "fp16"
               else "--backend openvino on a CPU with avx512_bf16 or amx_bf16")
    return BackendError(f"ONNX Runtime runs precision fp32 or int8, not {precision}; for {precision} use {instead}, "
                        "or choose precision fp32, int8 or auto")


def _constant_shapes(graph) -> dict[str, np.ndarray]:
    """Initializers and Constant-node outputs by name (where a Reshape's target shape may come from)."""
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def batched_model_bytes(path: Path, input_blob: str, output_blob: str) -> bytes:
    """The model at ``path`` with dim 0 of its input and output made symbolic, serialized.

    FCN graphs are convolutions and pools, which take any batch; a Reshape whose target shape is a
    constant with a fixed first dimension would fold every frame into one, so it is refused here.
    """
    import onnx

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf raises several unrelated types
        raise BackendError(f"{path}: ONNX Runtime cannot load it: {exc}") from None
    graph = proto.graph
    constants = _constant_shapes(graph)
    for node in graph.node:
        if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in constants:
            shape = constants[node.input[1]].reshape(-1)
            if shape.size and int(shape[0]) > 0:
                raise BackendError(
                    f"{path}: node '{node.name or node.output[0]}' reshapes to the fixed shape {shape.tolist()}, "
                    "which hard-codes the batch; it cannot run several frames at once: use max_batch 1 "
                    "or re-export the model with a dynamic batch (first dimension 0 or -1)")
    for value in (*graph.input, *graph.output):
        if value.name in (input_blob, output_blob):
            value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM  # also clears dim_value
    del graph.value_info[:]  # intermediate shapes recorded for batch 1 would contradict a larger batch
    return proto.SerializeToString()


class OnnxRuntimeBackend(Backend):
    """Runs the model's ONNX file, or its installed INT8 model, in an ONNX Runtime session."""

    name = "onnxruntime"
    runs_graph = True

    @property
    def batching_pays(self) -> bool:
        """On CUDA; on the CPU a batch of 3 costs what 3 frames do (benchmarks/multicamera_benchmark.py)."""
        return self.device == "cuda"

    def __init__(self, model: Model, options: BackendOptions = BackendOptions()) -> None:
        ort = import_onnxruntime()
        if options.precision not in ORT_PRECISIONS:
            raise unsupported_precision_error(options.precision)
        if options.device == "cuda" and not cuda_available():
            raise BackendError(
                "device 'cuda' asked for, but this ONNX Runtime has no CUDA provider; "
                "install onnxruntime-gpu or use device 'cpu'"
            )
        self.precision = "int8" if options.precision == "int8" else "fp32"
        self.max_batch = options.max_batch
        self.model_path = self._model_path(model)
        use_cuda = options.device == "cuda" or (options.device == "auto" and cuda_available())
        providers = [CUDA_PROVIDER, CPU_PROVIDER] if use_cuda else [CPU_PROVIDER]
        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3
        threads = threads_per_caller(options)
        if threads:
            session_options.intra_op_num_threads = threads
        # ONNX Runtime's threads spin after every call by default: at a camera's 10 Hz that burned 44 ms of
        # CPU per 1280x720 frame on 2 cores (138 against 94 ms), for no gain in latency or, back to back,
        # in throughput (benchmarks/spin_benchmark.py). A robot's other processes need those cores.
        session_options.add_session_config_entry(SPINNING, "0")
        self._input = model.files.input_blob
        self._output = model.files.output_blob
        source = (str(self.model_path) if self.max_batch == 1
                  else batched_model_bytes(self.model_path, self._input, self._output))
        self._model, self._session_options, self._providers = model, session_options, providers
        try:
            self._session = ort.InferenceSession(source, sess_options=session_options, providers=providers)
        except Exception as exc:
            raise BackendError(f"{self.model_path}: ONNX Runtime cannot load it: {exc}") from None
        self.device = "cuda" if CUDA_PROVIDER in self._session.get_providers() else "cpu"
        self.concurrent_runs = self.device == "cpu"  # InferenceSession.run is thread-safe
        self._input_shape = model.input_shape
        self._output_shape = model.output_shape
        self._check_output_shape(model)

    def _model_path(self, model: Model) -> Path:
        if self.precision == "fp32":
            return model.files.onnx
        path = find_qdq_model(model.files.onnx)
        if path is None:
            raise missing_qdq_error(model.files.onnx, input_blob=model.files.input_blob,
                                    output_blob=model.files.output_blob)
        log.info("precision int8: running the INT8 model %s", path)
        return path

    def _check_output_shape(self, model: Model) -> None:
        """Run one blank frame (two with batching): a graph whose declared output differs from what it
        computes (an FCN re-exported at another size with the old declaration), or one that cannot
        batch, fails here, at start-up, not per frame."""
        batch = min(self.max_batch, 2)
        blank = np.zeros((batch, *self._input_shape[1:]), np.float32)
        try:
            (logits,) = self._session.run([self._output], {self._input: blank})
        except Exception as exc:
            if batch == 1:
                raise
            raise BackendError(f"{self.model_path}: the model cannot run a batch of {batch} frames ({exc}); "
                               "use max_batch 1 or re-export it with a dynamic batch") from None
        expected = (batch, *self._output_shape[1:])
        if logits.shape != expected:
            raise BackendError(
                f"{self.model_path}: the model declares output {list(expected)} but computes "
                f"{list(logits.shape)}; re-export it with matching input and output shapes")

    @property
    def graph_by_default(self) -> bool:
        """On CUDA the host's numpy would be the bottleneck; on the CPU the host's renderer is faster."""
        return self.device == "cuda"

    def graph_runner(self, spec) -> GraphRunner:
        """The whole-frame graph of ``spec`` around the model this backend runs (FP32 or INT8), in a session
        of its own with this backend's providers and threads."""
        import onnx

        from .graph import build_graph

        graph = build_graph(self._model, spec, onnx.load(str(self.model_path)))
        try:
            session = import_onnxruntime().InferenceSession(graph.SerializeToString(),
                                                            sess_options=self._session_options,
                                                            providers=self._providers)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime cannot load the whole-frame graph of {self.model_path}: {exc}") from None
        return _SessionGraph(spec, session)

    def run(self, tensor: np.ndarray) -> np.ndarray:
        check_input(tensor, self._input_shape, self.max_batch)
        (logits,) = self._session.run([self._output], {self._input: tensor})
        expected = (tensor.shape[0], *self._output_shape[1:])
        if logits.shape != expected:
            raise BackendError(f"model produced {logits.shape}; expected {expected}")
        return logits

    def close(self) -> None:
        self._session = None


class _SessionGraph(GraphRunner):
    """A whole-frame graph in an ONNX Runtime session."""

    fresh_outputs = True  # the session allocates its outputs anew each run

    def __init__(self, spec, session) -> None:
        from .graph import GRAPH_INPUT

        self.spec, self._session, self._input = spec, session, GRAPH_INPUT
        self._names = [output.name for output in session.get_outputs()]

    def run(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self._names, self._session.run(self._names, {self._input: frames}), strict=True))

    def close(self) -> None:
        self._session = None
