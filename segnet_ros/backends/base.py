"""The backend interface: a pre-processed input tensor in, raw logits out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..core.errors import BackendError
from .cpu import usable_cores

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class BackendOptions:
    """Settings shared by all backends; each backend reads the ones it understands."""

    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # CPU threads for ONNX Runtime; 0 lets it decide
    precision: str = "auto"  # auto | fp32 | fp16 | bf16 | int8; each backend says what it runs and what auto means
    engine_cache_dir: str = ""  # TensorRT engine cache; "" is the per-user cache folder
    workspace_mb: int = 1024  # TensorRT builder workspace limit
    dla_core: int = -1  # TensorRT on Jetson: DLA core to use, -1 for the GPU
    force_rebuild: bool = False  # TensorRT: ignore a cached engine and build anew
    max_batch: int = 1  # the most frames one ``run`` call may carry (one per camera); the engine/graph allows 1..N
    callers: int = 1  # threads that call ``run`` at once (the bag tool's workers); CPU threads are shared among them

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got '{self.device}'")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        if self.workspace_mb <= 0:
            raise ValueError(f"workspace_mb must be > 0, got {self.workspace_mb}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.callers < 1:
            raise ValueError(f"callers must be >= 1, got {self.callers}")
        if self.dla_core < -1:
            raise ValueError(f"dla_core must be -1 (GPU) or a DLA core index, got {self.dla_core}")


def threads_per_caller(options: BackendOptions) -> int:
    """The CPU threads one ``run`` may use: ``options.threads``, or with several callers their share of
    the cores; 0 lets the runtime decide (one caller, no thread count asked for)."""
    if options.threads or options.callers == 1:
        return options.threads
    return max(1, usable_cores() // options.callers)


def check_input(tensor: np.ndarray, shape: tuple[int, ...], max_batch: int = 1) -> None:
    """Every backend refuses the same wrong inputs with the same words. ``shape`` is the model's
    (1, 3, H, W); a batch of 1..``max_batch`` such frames is accepted."""
    if (tensor.dtype != np.float32 or tensor.ndim != len(shape) or tuple(tensor.shape[1:]) != tuple(shape[1:])
            or not 1 <= tensor.shape[0] <= max_batch):
        expected = f"(1..{max_batch}, {', '.join(map(str, shape[1:]))})" if max_batch > 1 else str(shape)
        raise BackendError(f"input tensor {tensor.shape} {tensor.dtype}; expected {expected} float32")


class GraphRunner(ABC):
    """One camera configuration's whole-frame graph (:mod:`segnet_ros.backends.graph`) on a backend: the
    camera's bytes in, the finished products out, with no per-pixel work on the host."""

    spec = None  # the GraphSpec it runs
    fresh_outputs = False  # run's arrays are new each call (no copy needed to keep them past the next call)

    @abstractmethod
    def run(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """(N, H, W, C) uint8 frames of ``spec`` in; each of ``spec.outputs`` out, frame i's at index i.
        The arrays may be the runner's own buffers, overwritten by the next call and freed by close()."""

    def close(self) -> None:
        """Release what the graph holds (sessions, engines, device buffers)."""


class Backend(ABC):
    """Runs the network. ``run`` takes (N, 3, H, W) float32, 1 <= N <= ``max_batch``, and returns
    (N, C, gh, gw) float32; frame i of the output belongs to frame i of the input."""

    name: str = ""
    device: str = ""
    precision: str = "fp32"  # what it really runs (never auto)
    max_batch: int = 1
    # one call on N frames is measurably cheaper than N calls here (the node batches cameras where it is)
    batching_pays: bool = False
    # ``run`` may be called from several threads at once, and that pays: each call on cores of its own
    # beats calls that share every core with work around them (benchmarks/bag_benchmark.py)
    concurrent_runs: bool = False
    # pipeline auto runs the whole frame in the graph here: on GPUs, where the host's numpy would be the
    # bottleneck; on CPUs the host's renderer is faster than any graph runtime measured (README)
    graph_by_default: bool = False
    runs_graph: bool = False  # graph_runner works here

    @abstractmethod
    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Inference on one pre-processed tensor."""

    def graph_runner(self, spec) -> GraphRunner:
        """A runner of the whole-frame graph for ``spec`` (a GraphSpec), or BackendError where this backend
        cannot run one."""
        raise BackendError(f"{self.name} cannot run the whole-frame graph; use pipeline host")

    def graph_runner_for(self, model, settings, width: int, height: int, encoding: str, outputs,
                         mask_size: tuple[int, int] | None, batch: int | None) -> GraphRunner:
        """:meth:`graph_runner` for a camera as SegNet serves it with ``settings`` (its colours and ignore
        class); ``mask_size`` None: the camera's size."""
        from .graph import spec_for

        return self.graph_runner(spec_for(model, settings, width, height, encoding, outputs,
                                          mask_size if mask_size is not None else "input", batch))

    def close(self) -> None:
        """Release resources; the backend is unusable afterwards."""

    def describe(self) -> str:
        """What runs, where, at which precision: ``onnxruntime (cpu, fp32)``."""
        return f"{self.name} ({self.device}, {self.precision})"
