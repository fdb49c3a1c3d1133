"""Inference backends behind one interface, and the factory that picks one."""

from __future__ import annotations

from ..core.model import Model
from .base import Backend, BackendOptions

BACKENDS = ("auto", "onnxruntime")


def create_backend(name: str, model: Model, options: BackendOptions = BackendOptions()) -> Backend:
    """Create the backend called ``name`` for ``model``; ``auto`` picks the best available."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got '{name}'")
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, options)


__all__ = ["BACKENDS", "Backend", "BackendOptions", "create_backend"]
