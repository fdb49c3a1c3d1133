"""The backend interface: a pre-processed input tensor in, raw logits out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class BackendOptions:
    """Settings shared by all backends; each backend reads the ones it understands."""

    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # CPU threads for ONNX Runtime; 0 lets it decide

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got '{self.device}'")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")


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
