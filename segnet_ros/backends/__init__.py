"""Inference backends behind one interface, and the factory that picks one."""

from __future__ import annotations

import logging

from ..core.errors import BackendError
from ..core.model import Model
from .base import Backend, BackendOptions

BACKENDS = ("auto", "onnxruntime", "tensorrt")

log = logging.getLogger(__name__)


def choose_backend(options: BackendOptions = BackendOptions()) -> tuple[str, str]:
    """What ``auto`` means here, and why: TensorRT where it imports and a GPU is present, then
    ONNX Runtime (on CUDA when its provider exists, else on the CPU)."""
    from . import onnxruntime_backend, tensorrt_backend

    if options.device == "cpu":
        return "onnxruntime", "device 'cpu' was asked for"
    try:
        return "tensorrt", tensorrt_backend.probe()
    except BackendError as exc:
        missing = f"TensorRT cannot run here: {exc}"
    if onnxruntime_backend.cuda_available():
        return "onnxruntime", f"{missing}; ONNX Runtime has its CUDA provider"
    return "onnxruntime", f"{missing}; ONNX Runtime has no CUDA provider, so it runs on the CPU"


def create_backend(name: str, model: Model, options: BackendOptions = BackendOptions()) -> Backend:
    """Create the backend called ``name`` for ``model``; ``auto`` picks the best available and logs why."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got '{name}'")
    if name == "auto":
        name, reason = choose_backend(options)
        log.info("backend auto chose %s: %s", name, reason)
    if name == "tensorrt":
        from .tensorrt_backend import TensorRTBackend

        return TensorRTBackend(model, options)
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, options)


__all__ = ["BACKENDS", "Backend", "BackendOptions", "choose_backend", "create_backend"]
