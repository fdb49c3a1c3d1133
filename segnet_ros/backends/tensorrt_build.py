"""Building a TensorRT engine from the model's ONNX file, on TensorRT 8.6 through 11.x.

The ``trt`` module is passed in rather than imported, so that only the backend decides where
TensorRT comes from. A build takes minutes on a Jetson: its start, progress (TensorRT >= 10
reports it) and duration go to the log.

Precision, by what the installed TensorRT offers (its API, not its version number, decides):
- weakly typed (8.6, 10.x: ``BuilderFlag.FP16`` exists): the model's ONNX, with the FP16 flag for
  fp16, and for int8 the QDQ model with the INT8 flag (explicit quantisation; no calibrator);
- strongly typed (11.x: weak typing is gone): the network's own types decide, so fp16 is built
  from the FP16 copy of the ONNX (onnx_rewrite.fp16_copy) and int8 from the QDQ model, with no flag.
``auto`` is fp16 where the GPU generation is fast at it (a table: no Builder is created to ask) and
fp32 elsewhere; int8 only when asked.

A whole-frame graph (graph.py, :class:`GraphBuild`) is built from the same source wrapped for one camera:
its own arithmetic must stay float32 whatever the precision. Strongly typed, its types say so; weakly
typed, every layer that is not the model's is pinned to FP32 (``layer.precision`` and its float output
types, under ``OBEY_PRECISION_CONSTRAINTS``). TF32 is cleared: it would round the colour weights.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import BackendError
from ..core.model import Model

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 10.0  # at most one progress line per interval: a build has thousands of steps
# Compute capabilities with fast native FP16 below 7.0 (Jetson TX1 5.3, P100 6.0, Jetson TX2 6.2); every
# GPU from Volta (7.0) on has it. Consumer Pascal (6.1) runs FP16 at 1/64 rate: fp32 there.
FAST_FP16 = {(5, 3), (6, 0), (6, 2)}
PRECISIONS = ("fp32", "fp16", "int8")  # what this backend builds; auto resolves to fp16 or fp32


@dataclass(frozen=True)
class BuildSettings:
    """How to build: everything here that changes the engine is also in the cache key."""

    precision: str  # fp32 | fp16 | int8 (already resolved)
    workspace_mb: int
    dla_core: int  # -1: the GPU
    max_batch: int = 1  # optimisation profile: batch 1 / max_batch / max_batch
    integrated: bool = False  # a Jetson: the GPU shares the CPU's memory (changes the out-of-memory advice)


@dataclass(frozen=True)
class GraphBuild:
    """A whole-frame graph to build instead of the bare model."""

    data: bytes  # the serialized wrapped ONNX (weights inline)
    input_name: str  # the camera's uint8 input
    frame_shape: tuple[int, ...]  # (H, W, C) of one frame
    dynamic: bool  # a batch dimension of 1..max_batch (an optimisation profile)
    model_names: frozenset[str]  # the model's layer and tensor names: every other layer is the wrapper's


def model_names(proto) -> frozenset[str]:
    """Names by which TensorRT's parser calls the model's layers: its nodes' names (``node_of_<first
    output>`` for an unnamed node, as onnx-tensorrt names it), their outputs and its initializers."""
    names = {t.name for t in proto.graph.initializer}
    for node in proto.graph.node:
        names.update(node.output)
        names.add(node.name or (f"node_of_{node.output[0]}" if node.output else ""))
    names.discard("")
    return frozenset(names)


def version(trt) -> tuple[int, int]:
    """(major, minor) of the imported TensorRT, tolerant of suffixes such as '10.3.0.post1'."""
    parts = [int("".join(ch for ch in part if ch.isdigit()) or 0) for part in str(trt.__version__).split(".")[:2]]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def strongly_typed(trt) -> bool:
    """True where TensorRT has no weak typing (11.x): precision then lives in the network's own types."""
    return not hasattr(trt.BuilderFlag, "FP16")


def network_flags(trt, strong: bool = False) -> int:
    """Explicit batch where TensorRT 8.x needs it (10.x dropped it: every network is explicit batch);
    STRONGLY_TYPED for a strongly typed network (required on 10.x for one, accepted and ignored on 11)."""
    flags = trt.NetworkDefinitionCreationFlag
    if strong:
        flag = getattr(flags, "STRONGLY_TYPED", None)
        return 0 if flag is None else 1 << int(flag)
    if version(trt)[0] >= 10:
        return 0
    flag = getattr(flags, "EXPLICIT_BATCH", None)
    return 0 if flag is None else 1 << int(flag)


def has_fast_fp16(compute_capability: tuple[int, int]) -> bool:
    """Whether the GPU generation runs FP16 fast: a table, so that no Builder is created just to ask
    (on 8.6 a Builder costs about 1.4 GB of RAM that is never given back, NVIDIA/TensorRT#3359)."""
    return compute_capability in FAST_FP16 or compute_capability >= (7, 0)


def resolve_precision(requested: str, compute_capability: tuple[int, int], dla_core: int) -> str:
    """The precision to build: ``requested`` checked, or what ``auto`` means on this GPU."""
    if requested == "bf16":
        raise BackendError("precision bf16 is not offered on TensorRT (FCN-ResNet18 gains nothing over fp16 "
                           "there); use fp16, int8 or fp32")
    if requested not in ("auto", *PRECISIONS):
        raise BackendError(f"TensorRT precision must be auto, {', '.join(PRECISIONS)}; got '{requested}'")
    if dla_core >= 0:
        if requested == "fp32":
            raise BackendError("the DLA runs FP16 (or INT8), not FP32; use precision fp16 or auto with dla_core")
        return "fp16" if requested == "auto" else requested
    if requested == "auto":
        return "fp16" if has_fast_fp16(compute_capability) else "fp32"
    return requested


def construct(trt, kind: str, logger):
    """``trt.Builder(logger)`` or ``trt.Runtime(logger)``; TensorRT's failed CUDA start as a BackendError.

    When TensorRT cannot initialise CUDA (driver older than the CUDA it was built for, error 35) its
    factory returns nullptr and pybind11 raises ``TypeError`` (NVIDIA/TensorRT#2913)."""
    try:
        return getattr(trt, kind)(logger)
    except TypeError as exc:
        if "nullptr" not in str(exc):
            raise
        raise BackendError(
            f"TensorRT cannot start on this GPU (trt.{kind}() failed: {exc}); its CUDA initialisation failed, "
            "usually because the NVIDIA driver is older than the CUDA this TensorRT was built for (CUDA error 35): "
            "check 'nvidia-smi', and install the tensorrt build for your CUDA (tensorrt-cu12 / tensorrt-cu13) or, "
            "on a Jetson, the TensorRT of your JetPack") from None


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


def _parse(trt, builder, logger, model: Model, source: Path, data: bytes | None, settings: BuildSettings,
           strong: bool):
    """Parse ``source`` (the ONNX, its FP16 copy or its QDQ model; ``data``: its bytes when they exist only
    in memory), with a dynamic batch for max_batch > 1."""
    from .onnx_rewrite import with_dynamic_batch

    network = builder.create_network(network_flags(trt, strong))
    parser = trt.OnnxParser(network, logger)
    what = f"{model.files.onnx}" if source == model.files.onnx else f"{source} (made from {model.files.onnx})"
    if settings.max_batch > 1 or data is not None:
        try:
            data = source.read_bytes() if data is None else data
        except OSError as exc:
            raise BackendError(f"{what}: cannot read it ({exc.strerror or exc})") from None
        if settings.max_batch > 1:
            data = with_dynamic_batch(data, model.files.input_blob, model.files.output_blob, source)
        parsed = parser.parse(data, str(source))  # the path: where external data is found
    else:
        parsed = parser.parse_from_file(str(source))
    if not parsed:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or ["no error given"]
        raise BackendError(f"{what}: TensorRT's ONNX parser failed ({len(errors)} error"
                           f"{'s' if len(errors) != 1 else ''}): " + "; ".join(errors))
    return network, parser


def _add_profile(builder, network, config, model: Model, max_batch: int, name: str | None = None,
                 frame: tuple[int, ...] | None = None) -> None:
    """A dynamic input gets an optimisation profile: batch 1 to max_batch (optimised for max_batch). The
    input fed is ``name`` with frames of ``frame`` (default: the model's input)."""
    name = name or model.files.input_blob
    frame = tuple(frame or model.input_shape[1:])
    profile = None
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        dims = [int(d) for d in tensor.shape]
        if all(d >= 0 for d in dims):
            continue
        if tensor.name != name:
            raise BackendError(f"{model.files.onnx}: input '{tensor.name}' has a dynamic shape "
                               f"{tuple(dims)}; only '{name}' is fed")
        if any(d < 0 for d in dims[1:]):
            raise BackendError(f"{model.files.onnx}: input '{tensor.name}' has dynamic dimensions {tuple(dims)} "
                               "besides the batch; re-export it with a fixed size")
        profile = profile or builder.create_optimization_profile()
        profile.set_shape(tensor.name, (1, *frame), (max_batch, *frame), (max_batch, *frame))
    if profile is not None:
        config.add_optimization_profile(profile)


def _configure(trt, builder, settings: BuildSettings, strong: bool):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
    if not strong and settings.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    if not strong and settings.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # explicit quantisation: the QDQ nodes give the scales
    if settings.dla_core >= 0:
        cores = int(getattr(builder, "num_DLA_cores", 0))
        if settings.dla_core >= cores:
            raise BackendError(dla_error(settings.dla_core, cores))
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = settings.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers the DLA cannot run go to the GPU
    return config


def keep_graph_in_fp32(trt, network, config, names: Iterable[str], strong: bool, precision: str) -> int:
    """Keep the wrapper's arithmetic in float32 (its products are exact only there); the number of layers
    pinned. TF32 is cleared on every build: on Ampere and later it would round float32 MatMul operands
    to 10 bits. A weakly typed FP16 or INT8 build pins each layer that is not the model's and reads or
    writes floats (integer layers, index constants, have no precision to keep) to FP32, with its float
    outputs, and obeys the constraints; a strongly typed network keeps the types the graph gives it."""
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if tf32 is not None:
        config.clear_flag(tf32)
    if strong or precision == "fp32":
        return 0
    names = frozenset(names)
    floats = {trt.float32, trt.float16}
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
        inputs = [t for t in (layer.get_input(i) for i in range(layer.num_inputs)) if t is not None]
        if layer.name in names or any(t.name in names for t in outputs):
            continue
        if not any(t.dtype in floats for t in (*inputs, *outputs)):
            continue
        layer.precision = trt.float32
        for i, tensor in enumerate(outputs):
            if tensor.dtype in floats:
                layer.set_output_type(i, trt.float32)
        pinned += 1
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return pinned


def dla_error(core: int, cores: int) -> str:
    return (f"DLA core {core} asked for, but this device has {cores} DLA core{'s' if cores != 1 else ''}; "
            "use dla_core -1 for the GPU")


def build_failed_hint(settings: BuildSettings) -> str:
    """What to try after a failed build; on a Jetson memory is shared, so a smaller workspace helps."""
    if settings.integrated:
        return ("on a Jetson the GPU shares the CPU's memory: a smaller workspace (workspace_mb, e.g. 256) and "
                "closing other programs leave the build more room; precision fp32 may help too")
    return "a larger workspace (workspace_mb) or precision fp32 may help"


def _parse_graph(trt, builder, logger, model: Model, source: Path, graph: GraphBuild, strong: bool):
    """Parse the whole-frame graph made from ``source``."""
    network = builder.create_network(network_flags(trt, strong))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(graph.data, str(source)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or ["no error given"]
        raise BackendError(f"the whole-frame graph of {source}: TensorRT's ONNX parser failed ({len(errors)} error"
                           f"{'s' if len(errors) != 1 else ''}): " + "; ".join(errors))
    return network, parser


def build_serialized(trt, logger, model: Model, settings: BuildSettings, source: Path | None = None,
                     data: bytes | None = None, graph: GraphBuild | None = None) -> bytes:
    """Parse, configure and build; the serialized engine, or a :class:`BackendError` saying why not.

    ``source`` is what the parser reads (default: the model's ONNX): the FP16 copy for fp16 on
    strongly typed TensorRT, the QDQ model for int8 everywhere; ``data`` its bytes where they live
    only in memory. ``graph``: build that whole-frame graph (made from ``source``) instead, its
    wrapper in float32. The caller makes a CUDA context current around this call.
    """
    source = source or model.files.onnx
    strong = strongly_typed(trt)
    builder = construct(trt, "Builder", logger)
    if graph is None:
        network, parser = _parse(trt, builder, logger, model, source, data, settings, strong)
    else:
        network, parser = _parse_graph(trt, builder, logger, model, source, graph, strong)
    config = _configure(trt, builder, settings, strong)
    what = model.name
    if graph is None:
        _add_profile(builder, network, config, model, settings.max_batch)
    else:
        pinned = keep_graph_in_fp32(trt, network, config, graph.model_names, strong, settings.precision)
        if graph.dynamic:
            _add_profile(builder, network, config, model, settings.max_batch, graph.input_name, graph.frame_shape)
        height, width, _ = graph.frame_shape
        pins = f", {pinned} layers pinned to FP32" if pinned else ""
        what = f"{model.name}'s whole-frame graph ({width}x{height} camera{pins})"
    monitor = make_progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    target = "GPU" if settings.dla_core < 0 else f"DLA core {settings.dla_core} (GPU fallback)"
    dynamic = graph is None or graph.dynamic
    batch = f", batch 1..{settings.max_batch}" if settings.max_batch > 1 and dynamic else ""
    log.info("building the TensorRT %s engine for %s on the %s%s (%s typed, from %s); this can take minutes on "
             "a Jetson", settings.precision, what, target, batch, "strongly" if strong else "weakly",
             source.name)
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - started
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine for {model.files.onnx} after {seconds:.1f} s "
                           f"(its messages above say why); {build_failed_hint(settings)}")
    log.info("TensorRT engine for %s built in %.1f s", what, seconds)
    del parser, network, config, monitor  # kept alive until here: the build uses them all
    return memoryview(serialized).tobytes()
