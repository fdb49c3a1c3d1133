"""The backend interface: a pre-processed input tensor in, raw logits out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..core.errors import BackendError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp16", "fp32")


@dataclass(frozen=True)
class BackendOptions:
    """Settings shared by all backends; each backend reads the ones it understands."""

    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # CPU threads for ONNX Runtime; 0 lets it decide
    precision: str = "auto"  # TensorRT: auto (fp16 where the GPU is fast at it) | fp16 | fp32
    engine_cache_dir: str = ""  # TensorRT engine cache; "" is the per-user cache folder
    workspace_mb: int = 1024  # TensorRT builder workspace limit
    dla_core: int = -1  # TensorRT on Jetson: DLA core to use, -1 for the GPU
    force_rebuild: bool = False  # TensorRT: ignore a cached engine and build anew

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got '{self.device}'")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        if self.workspace_mb <= 0:
            raise ValueError(f"workspace_mb must be > 0, got {self.workspace_mb}")
        if self.dla_core < -1:
            raise ValueError(f"dla_core must be -1 (GPU) or a DLA core index, got {self.dla_core}")


def check_input(tensor: np.ndarray, shape: tuple[int, ...]) -> None:
    """Every backend refuses the same wrong inputs with the same words."""
    if tensor.shape != shape or tensor.dtype != np.float32:
        raise BackendError(f"input tensor {tensor.shape} {tensor.dtype}; expected {shape} float32")


class Backend(ABC):
    """Runs the network. ``run`` takes (1, 3, H, W) float32 and returns (1, C, gh, gw) float32."""

    name: str = ""
    device: str = ""

    @abstractmethod
    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Inference on one pre-processed tensor."""

    def close(self) -> None:
        """Release resources; the backend is unusable afterwards."""

    def describe(self) -> str:
        return f"{self.name} ({self.device})"
