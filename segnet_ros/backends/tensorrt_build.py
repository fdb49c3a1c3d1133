"""Building a TensorRT engine from the model's ONNX file, on TensorRT 8.6 through 10.x.

The ``trt`` module is passed in rather than imported, so that only the backend decides where
TensorRT comes from. A build takes minutes on a Jetson: its start, progress (TensorRT >= 10
reports it) and duration go to the log.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from ..core.errors import BackendError
from ..core.model import Model

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 10.0  # at most one progress line per interval: a build has thousands of steps
# Compute capabilities with fast native FP16, for TensorRT versions without platform_has_fast_fp16.
FAST_FP16 = {(5, 3), (6, 0), (6, 2)}


@dataclass(frozen=True)
class BuildSettings:
    """How to build: everything here that changes the engine is also in the cache key."""

    precision: str  # fp16 | fp32 (already resolved)
    workspace_mb: int
    dla_core: int  # -1: the GPU


def version(trt) -> tuple[int, int]:
    """(major, minor) of the imported TensorRT, tolerant of suffixes such as '10.3.0.post1'."""
    parts = [int("".join(ch for ch in part if ch.isdigit()) or 0) for part in str(trt.__version__).split(".")[:2]]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def network_flags(trt) -> int:
    """Explicit batch: a flag TensorRT 8.x needs and 10.x dropped (every network is explicit batch there)."""
    if version(trt)[0] >= 10:
        return 0
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    return 0 if flag is None else 1 << int(flag)


def has_fast_fp16(builder, compute_capability: tuple[int, int]) -> bool:
    """The builder's answer where it still gives one (deprecated in 10.5), else the GPU generation's."""
    answer = getattr(builder, "platform_has_fast_fp16", None)
    if answer is not None:
        return bool(answer)
    return compute_capability in FAST_FP16 or compute_capability >= (7, 0)


def make_progress_monitor(trt):
    """An ``IProgressMonitor`` that logs the build's phases, or None where TensorRT has none (8.6)."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class BuildProgress(base):
        """Logs top-level phases and, at most every PROGRESS_INTERVAL_S, the step reached. Thread-safe:
        TensorRT may call it from its own threads."""

        def __init__(self) -> None:
            base.__init__(self)
            self._lock = threading.Lock()
            self._steps: dict[str, int] = {}
            self._last = time.monotonic()

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            with self._lock:
                self._steps[phase_name] = num_steps
            if parent_phase is None:
                log.info("TensorRT build: %s", phase_name)

        def step_complete(self, phase_name, step) -> bool:
            now = time.monotonic()
            with self._lock:
                due = now - self._last >= PROGRESS_INTERVAL_S
                if due:
                    self._last = now
                total = self._steps.get(phase_name, 0)
            if due:
                log.info("TensorRT build: %s, step %d of %d", phase_name, step + 1, total)
            return True  # False would cancel the build

        def phase_finish(self, phase_name) -> None:
            with self._lock:
                self._steps.pop(phase_name, None)

    return BuildProgress()


def _parse(trt, builder, logger, model: Model):
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(model.files.onnx)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or ["no error given"]
        raise BackendError(f"{model.files.onnx}: TensorRT's ONNX parser failed ({len(errors)} error"
                           f"{'s' if len(errors) != 1 else ''}): " + "; ".join(errors))
    return network, parser


def _fix_input_shapes(builder, network, config, model: Model) -> None:
    """An input with a dynamic dimension gets a one-shape optimization profile: the model's shape."""
    profile = None
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        if all(int(d) >= 0 for d in tensor.shape):
            continue
        if tensor.name != model.files.input_blob:
            raise BackendError(f"{model.files.onnx}: input '{tensor.name}' has a dynamic shape "
                               f"{tuple(tensor.shape)}; only '{model.files.input_blob}' is fed")
        profile = profile or builder.create_optimization_profile()
        profile.set_shape(tensor.name, model.input_shape, model.input_shape, model.input_shape)
    if profile is not None:
        config.add_optimization_profile(profile)


def _configure(trt, builder, settings: BuildSettings):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
    if settings.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    if settings.dla_core >= 0:
        cores = int(getattr(builder, "num_DLA_cores", 0))
        if settings.dla_core >= cores:
            raise BackendError(f"DLA core {settings.dla_core} asked for, but this device has "
                               f"{cores} DLA core{'s' if cores != 1 else ''}; use dla_core -1 for the GPU")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = settings.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers the DLA cannot run go to the GPU
    return config


def build_serialized(trt, logger, model: Model, settings: BuildSettings) -> bytes:
    """Parse, configure and build; the serialized engine, or a :class:`BackendError` saying why not.

    The caller makes a CUDA context current around this call.
    """
    builder = trt.Builder(logger)
    network, parser = _parse(trt, builder, logger, model)
    config = _configure(trt, builder, settings)
    _fix_input_shapes(builder, network, config, model)
    monitor = make_progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    target = "GPU" if settings.dla_core < 0 else f"DLA core {settings.dla_core} (GPU fallback)"
    log.info("building the TensorRT %s engine for %s on the %s; this can take minutes on a Jetson",
             settings.precision, model.name, target)
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - started
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine for {model.files.onnx} after {seconds:.1f} s "
                           "(its messages above say why); a larger workspace (workspace_mb) or precision fp32 "
                           "may help")
    log.info("TensorRT engine for %s built in %.1f s", model.name, seconds)
    del parser, network, config, monitor  # kept alive until here: the build uses them all
    return memoryview(serialized).tobytes()
