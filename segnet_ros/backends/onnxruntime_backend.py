"""ONNX Runtime: the backend that runs anywhere (CPU), or on CUDA when its provider exists."""

from __future__ import annotations

import importlib.util

import numpy as np

from ..core.errors import BackendError
from ..core.model import Model
from .base import Backend, BackendOptions, check_input

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def _onnxruntime():
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
        return CUDA_PROVIDER in _onnxruntime().get_available_providers()
    except BackendError:
        return False


class OnnxRuntimeBackend(Backend):
    """Runs the model's ONNX file in an ONNX Runtime inference session."""

    name = "onnxruntime"

    def __init__(self, model: Model, options: BackendOptions = BackendOptions()) -> None:
        ort = _onnxruntime()
        if options.device == "cuda" and not cuda_available():
            raise BackendError(
                "device 'cuda' asked for, but this ONNX Runtime has no CUDA provider; "
                "install onnxruntime-gpu or use device 'cpu'"
            )
        use_cuda = options.device == "cuda" or (options.device == "auto" and cuda_available())
        providers = [CUDA_PROVIDER, CPU_PROVIDER] if use_cuda else [CPU_PROVIDER]
        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3
        if options.threads:
            session_options.intra_op_num_threads = options.threads
        try:
            self._session = ort.InferenceSession(
                str(model.files.onnx), sess_options=session_options, providers=providers)
        except Exception as exc:
            raise BackendError(f"{model.files.onnx}: ONNX Runtime cannot load it: {exc}") from None
        self.device = "cuda" if CUDA_PROVIDER in self._session.get_providers() else "cpu"
        self._input = model.files.input_blob
        self._output = model.files.output_blob
        self._input_shape = model.input_shape
        self._output_shape = model.output_shape
        self._check_output_shape(model)

    def _check_output_shape(self, model: Model) -> None:
        """Run one blank frame: a graph whose declared output differs from what it computes (an FCN
        re-exported at another size with the old declaration) fails here, at start-up, not per frame."""
        (logits,) = self._session.run([self._output], {self._input: np.zeros(self._input_shape, np.float32)})
        if logits.shape != self._output_shape:
            raise BackendError(
                f"{model.files.onnx}: the model declares output {list(self._output_shape)} but computes "
                f"{list(logits.shape)}; re-export it with matching input and output shapes")

    def run(self, tensor: np.ndarray) -> np.ndarray:
        check_input(tensor, self._input_shape)
        (logits,) = self._session.run([self._output], {self._input: tensor})
        if logits.shape != self._output_shape:
            raise BackendError(f"model produced {logits.shape}; expected {self._output_shape}")
        return logits

    def close(self) -> None:
        self._session = None
