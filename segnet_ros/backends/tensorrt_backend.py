"""TensorRT with pycuda: the fast road on Jetson and NVIDIA GPUs (TensorRT 8.6 through 11.x).

The engine comes from the engine cache (built from the ONNX on first use). Everything a frame
needs is allocated once, for the largest batch: page-locked host buffers, device buffers and one
CUDA stream. The CUDA context is the device's primary context, retained here and pushed around
every piece of CUDA work, so the backend may be created on one thread and run or closed on
another (the ROS node runs inference on a worker thread). ``pycuda.autoinit`` is never imported:
it would tie the context to whichever thread happened to import it. TensorRT keeps one logger per
process, so every backend shares one (:func:`shared_logger`).

``graph_runner`` runs the whole frame (graph.py) in an engine of its own per camera configuration: uint8
camera bytes in, finished products out, so the host only copies. On a discrete GPU through page-locked
buffers and asynchronous copies on one stream; on an integrated one (a Jetson: the GPU shares the CPU's
memory) through mapped host memory the engine reads and writes in place, with no copies at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ..core.errors import BackendError
from ..core.frames import ENCODINGS
from ..core.model import Model
from ..files import sha256_file
from .base import Backend, BackendOptions, GraphRunner, check_input
from .engine_cache import EngineCache, EngineKey, model_sha256
from .graph import GRAPH_INPUT, OUTPUTS, PREFIX, build_graph
from .tensorrt_build import (
    BuildSettings,
    GraphBuild,
    build_serialized,
    construct,
    dla_error,
    model_names,
    resolve_precision,
    strongly_typed,
    version,
)

log = logging.getLogger(__name__)

MIN_VERSION = (8, 6)  # the tensor-name API (num_io_tensors, set_tensor_address, execute_async_v3)
MAX_MAJOR = 11  # the newest major version whose API this backend was checked against


def import_modules():
    """``(tensorrt, pycuda.driver)``, or a :class:`BackendError` that says which one is missing."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or OSError when libnvinfer is missing under the bindings
        raise BackendError(f"tensorrt is not importable ({type(exc).__name__}: {exc}); JetPack ships it "
                           "(python3-libnvinfer), on x86 'pip install tensorrt'") from None
    if version(trt) < MIN_VERSION:
        raise BackendError(f"TensorRT {trt.__version__} is too old; this backend needs TensorRT "
                           f"{MIN_VERSION[0]}.{MIN_VERSION[1]} or newer")
    if version(trt)[0] > MAX_MAJOR:
        raise BackendError(f"TensorRT {trt.__version__} is newer than this backend knows (TensorRT "
                           f"{MIN_VERSION[0]}.{MIN_VERSION[1]} to {MAX_MAJOR}.x); a new major version changes the "
                           f"API: install TensorRT {MAX_MAJOR}.x ('pip install \"tensorrt<{MAX_MAJOR + 1}\"') or "
                           "use backend onnxruntime")
    try:
        import pycuda.driver as cuda
    except Exception as exc:
        raise BackendError(f"pycuda is not importable ({type(exc).__name__}: {exc}); install it with "
                           "'pip install pycuda' (it compiles against the CUDA toolkit)") from None
    return trt, cuda


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: tuple[int, int]
    multiprocessors: int = 0
    total_memory_mb: int = 0
    integrated: bool = False  # a Jetson: the GPU shares the CPU's memory
    maps_host_memory: bool = False  # page-locked host memory can be mapped into the GPU's address space

    @property
    def capability(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def _first_device(cuda):
    """CUDA device 0 (``CUDA_VISIBLE_DEVICES`` chooses which GPU that is) and what identifies it."""
    try:
        cuda.init()
        count = cuda.Device.count()
    except Exception as exc:  # pycuda's own error types
        raise BackendError(f"no CUDA device: the CUDA driver does not start ({exc})") from None
    if count < 1:
        raise BackendError("no CUDA device: the CUDA driver finds none")
    device = cuda.Device(0)
    major, minor = device.compute_capability()
    attribute = cuda.device_attribute
    can_map = getattr(attribute, "CAN_MAP_HOST_MEMORY", None)
    return device, GpuInfo(str(device.name()), (int(major), int(minor)),
                           int(device.get_attribute(attribute.MULTIPROCESSOR_COUNT)),
                           int(device.total_memory()) >> 20, bool(device.get_attribute(attribute.INTEGRATED)),
                           can_map is not None and bool(device.get_attribute(can_map)))


def probe() -> str:
    """Why TensorRT can run here; a :class:`BackendError` naming what is missing when it cannot.

    It creates a TensorRT Runtime (cheap, unlike a Builder), so a TensorRT whose own CUDA start fails
    is found here and ``backend auto`` falls back to ONNX Runtime instead of failing later."""
    trt, cuda = import_modules()
    device, gpu = _first_device(cuda)
    context = CudaContext(cuda, device)
    try:
        with context.active():
            runtime = construct(trt, "Runtime", shared_logger(trt))
            del runtime
    finally:
        context.release()
    return f"TensorRT {trt.__version__} and CUDA device '{gpu.name}' (compute capability {gpu.capability}) found"


def make_logger(trt):
    """A TensorRT logger that forwards to Python logging, so the node's ROS log shows TensorRT's words."""
    severity = trt.ILogger.Severity
    levels = {severity.INTERNAL_ERROR: logging.ERROR, severity.ERROR: logging.ERROR,
              severity.WARNING: logging.WARNING, severity.INFO: logging.DEBUG}

    class ForwardingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, level, msg) -> None:
            python_level = levels.get(level)  # VERBOSE is dropped: thousands of lines per build
            if python_level is not None:
                log.log(python_level, "TensorRT: %s", msg)

    return ForwardingLogger()


_logger_lock = threading.Lock()
_logger: tuple[object, object] | None = None  # (the tensorrt module, its one logger)


def shared_logger(trt):
    """The process's one TensorRT logger. TensorRT keeps a single process-wide logger while any builder
    or runtime exists: a second one would replace the first, and a collected one would leave TensorRT
    a dangling pointer; this one lives as long as the process."""
    global _logger
    with _logger_lock:
        if _logger is None or _logger[0] is not trt:
            _logger = (trt, make_logger(trt))
        return _logger[1]


class CudaContext:
    """The device's primary context. ``active()`` makes it current on the calling thread for a while."""

    def __init__(self, cuda, device) -> None:
        self._cuda = cuda
        try:
            self._context = device.retain_primary_context()
        except Exception as exc:
            raise BackendError(f"cannot get a CUDA context on '{device.name()}' ({exc})") from None

    @contextmanager
    def active(self) -> Iterator[None]:
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def release(self) -> None:
        """Give the primary context back, from any thread. pycuda's ``detach()`` releases only a context
        that is current on the calling thread or was made on it; from another thread it does nothing and
        the retain leaks. Pushed first, it is current here, so detach releases it (and drops it from
        this thread's stack: no pop follows)."""
        if self._context is not None:
            self._context.push()
            self._context.detach()
            self._context = None


@dataclass(frozen=True)
class EngineInfo:
    """Where the engine came from, for logs, diagnostics and ``segnet-ros build-engine``."""

    path: Path | None  # None: built in memory, the cache was not writable
    built: bool  # built at start-up (False: loaded from the cache)
    build_seconds: float
    precision: str
    dla_core: int
    gpu: GpuInfo
    tensorrt_version: str
    max_batch: int = 1
    source: str = ""  # what the engine was built from: the ONNX, its FP16 copy or its QDQ model


def _qdq_model(model: Model) -> Path:
    """The installed QDQ model of ``model`` made for TensorRT (``segnet-ros quantize --target tensorrt``);
    what TensorRT's parser needs of it is checked when an engine is built (onnx_rewrite.qdq_for_tensorrt)."""
    from . import qdq

    path = qdq.find_qdq_model(model.files.onnx, target="tensorrt")
    if path is None:
        raise qdq.missing_qdq_error(model.files.onnx, "", model.files.input_blob, model.files.output_blob,
                                    target="tensorrt")
    return path


class TensorRTBackend(Backend):
    """Runs a cached TensorRT engine on 1..max_batch frames per call. ``run`` returns a copy of the
    page-locked output buffer, so the caller may keep it while the next frames run."""

    name = "tensorrt"
    batching_pays = True  # a GPU: one launch for every camera's frame
    device = "cuda"
    runs_graph = True
    graph_by_default = True  # numpy on the host would be the bottleneck beside a GPU, above all on a Jetson

    def __init__(self, model: Model, options: BackendOptions = BackendOptions()) -> None:
        if options.device == "cpu":
            raise BackendError("TensorRT runs on a CUDA device, and device 'cpu' was asked for; "
                               "use backend onnxruntime (or auto) for the CPU")
        trt, cuda = import_modules()
        device, self.gpu = _first_device(cuda)
        self.precision = resolve_precision(options.precision, self.gpu.compute_capability, options.dla_core)
        self.max_batch = options.max_batch
        self._trt, self._cuda = trt, cuda
        self._model = model
        self._lock = threading.Lock()
        self._logger = shared_logger(trt)
        self._runtime = self._engine = self._context = self._stream = None
        self._host_input = self._host_output = None
        self._device_buffers: dict[str, object] = {}
        self._batch = 0  # the batch the execution context's input shape is set to
        self._options = options
        self._runners: list[TensorRTGraphRunner] = []  # closed before the runtime their engines came from
        self._cuda_context = CudaContext(cuda, device)
        try:
            with self._cuda_context.active():
                self.engine_info = self._obtain_engine(options)
                self._bind()
        except BaseException as exc:
            traceback.clear_frames(exc.__traceback__)  # their locals may hold TensorRT objects close() must free
            self.close()
            raise

    # -- start-up ---------------------------------------------------------------------------
    def _engine_key(self, max_batch: int, graph: str = "", graph_sha256: str = "") -> EngineKey:
        options, gpu = self._options, self.gpu
        return EngineKey(onnx_sha256=self._digest, tensorrt_version=str(self._trt.__version__), gpu_name=gpu.name,
                         compute_capability=gpu.capability, precision=self.precision, dla_core=options.dla_core,
                         multiprocessors=gpu.multiprocessors, total_memory_mb=gpu.total_memory_mb,
                         max_batch=max_batch, qdq_sha256=sha256_file(self._qdq) if self._qdq else "",
                         typing="strong" if strongly_typed(self._trt) else "weak", graph=graph,
                         graph_sha256=graph_sha256)

    def _obtain_engine(self, options: BackendOptions) -> EngineInfo:
        from .onnx_rewrite import external_data_files, fp16_copy, qdq_for_tensorrt

        trt, model, precision = self._trt, self._model, self.precision
        strong = strongly_typed(trt)
        self._digest = digest = model_sha256(model.files.onnx, external_data_files(model.files.onnx))
        self._qdq = qdq = _qdq_model(model) if precision == "int8" else None
        self._cache = cache = EngineCache(options.engine_cache_dir or None)
        settings = BuildSettings(precision=precision, workspace_mb=options.workspace_mb, dla_core=options.dla_core,
                                 max_batch=options.max_batch, integrated=self.gpu.integrated)
        key = self._engine_key(options.max_batch)
        sources: list[Path] = []

        def build() -> bytes:  # only when no cached engine serves: the FP16 copy is made here, not at start
            source, data = qdq or model.files.onnx, qdq_for_tensorrt(qdq) if qdq else None
            if precision == "fp16" and strong:
                source, data = fp16_copy(model.files.onnx, digest, cache.directory)
            sources.append(source)
            return build_serialized(trt, self._logger, model, settings, source, data)

        self._runtime = construct(trt, "Runtime", self._logger)
        if options.dla_core >= 0:  # checked before it is set: the runtime takes any number
            cores = int(getattr(self._runtime, "num_DLA_cores", 0))
            if options.dla_core >= cores:
                raise BackendError(dla_error(options.dla_core, cores))
            self._runtime.DLA_core = options.dla_core
        cached = cache.obtain(key, model.name, build=build, load=self._deserialize,
                              force_rebuild=options.force_rebuild)
        self._engine = cached.engine
        source = sources[0].name if sources else ""
        return EngineInfo(cached.path, cached.built, cached.build_seconds, precision, options.dla_core,
                          self.gpu, str(trt.__version__), options.max_batch, source)

    def _deserialize(self, data: bytes):
        try:
            return self._runtime.deserialize_cuda_engine(data)
        except Exception as exc:  # some versions raise instead of returning None
            log.debug("deserialize_cuda_engine raised %s", exc)
            return None

    def _numpy_dtype(self, name: str) -> np.dtype:
        return _numpy_dtype(self._trt, self._engine, name)

    def _bind(self) -> None:
        """Check the engine's tensors against the model, then allocate everything once, for max_batch."""
        trt, cuda, engine, files = self._trt, self._cuda, self._engine, self._model.files
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != [files.input_blob] or files.output_blob not in outputs:
            raise BackendError(f"the TensorRT engine has inputs {inputs} and outputs {outputs}; expected the "
                               f"input '{files.input_blob}' and the output '{files.output_blob}'")
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError("TensorRT cannot create an execution context (out of GPU memory?)")
        self._dynamic = any(int(d) < 0 for d in engine.get_tensor_shape(files.input_blob))
        largest = self._frames_shape(self.max_batch, self._model.input_shape)
        if self._dynamic:
            top = tuple(int(d) for d in engine.get_tensor_profile_shape(files.input_blob, 0)[2])
            if top[0] < self.max_batch:
                raise BackendError(f"the TensorRT engine takes at most {top[0]} frames, and max_batch is "
                                   f"{self.max_batch}; rebuild it (--force-rebuild)")
            self._set_batch(self.max_batch)
        elif self.max_batch > 1:
            raise BackendError("the TensorRT engine has a fixed batch of 1, and max_batch is "
                               f"{self.max_batch}; rebuild it (--force-rebuild)")
        expected = {files.input_blob: largest,
                    files.output_blob: self._frames_shape(self.max_batch, self._model.output_shape)}
        for name in names:
            shape = tuple(int(d) for d in self._context.get_tensor_shape(name))
            dtype = self._numpy_dtype(name)
            if name in expected and (shape != expected[name] or dtype != np.float32):
                raise BackendError(f"the TensorRT engine's tensor '{name}' is {shape} {dtype}; the model needs "
                                   f"{expected[name]} float32")
            buffer = cuda.mem_alloc(max(int(np.prod(shape)) * dtype.itemsize, 1))
            self._device_buffers[name] = buffer
            if not self._context.set_tensor_address(name, int(buffer)):
                raise BackendError(f"TensorRT refuses the address of tensor '{name}'")
        self._host_input = cuda.pagelocked_empty(largest, np.float32)
        self._host_output = cuda.pagelocked_empty(expected[files.output_blob], np.float32)
        self._stream = cuda.Stream()

    @staticmethod
    def _frames_shape(frames: int, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (frames, *shape[1:])

    def _set_batch(self, frames: int) -> None:
        """Tell the execution context how many frames come (the TensorRT 8.5+ call for every version here)."""
        name = self._model.files.input_blob
        if not self._context.set_input_shape(name, self._frames_shape(frames, self._model.input_shape)):
            raise BackendError(f"the TensorRT engine does not accept {frames} frame(s) of "
                               f"{self._model.input_shape[1:]} (its messages above say why)")
        self._batch = frames

    # -- per frame --------------------------------------------------------------------------
    def run(self, tensor: np.ndarray) -> np.ndarray:
        check_input(tensor, self._model.input_shape, self.max_batch)
        cuda, files = self._cuda, self._model.files
        frames = tensor.shape[0]
        with self._lock:
            if self._context is None:
                raise BackendError("the TensorRT backend is closed")
            with self._cuda_context.active():
                if self._dynamic and frames != self._batch:
                    self._set_batch(frames)
                host_input, host_output = self._host_input[:frames], self._host_output[:frames]
                np.copyto(host_input, tensor)
                cuda.memcpy_htod_async(self._device_buffers[files.input_blob], host_input, self._stream)
                if not self._context.execute_async_v3(self._stream.handle):
                    self._stream.synchronize()
                    raise BackendError("TensorRT failed to run the engine (its messages above say why)")
                cuda.memcpy_dtoh_async(host_output, self._device_buffers[files.output_blob], self._stream)
                self._stream.synchronize()
                return host_output.copy()

    # -- the whole frame in the engine ---------------------------------------------------------
    def graph_runner(self, spec) -> TensorRTGraphRunner:
        """An engine of the whole-frame graph for ``spec`` (a GraphSpec), from the engine cache (built on
        first use: minutes on a Jetson), with its buffers. ``spec.batch`` None: 1..max_batch frames a call."""
        with self._lock:
            if self._cuda_context is None:
                raise BackendError("the TensorRT backend is closed")
            runner = TensorRTGraphRunner(self, spec)
            self._runners.append(runner)
            return runner

    def _forget(self, runner: TensorRTGraphRunner) -> None:
        with contextlib.suppress(ValueError):
            self._runners.remove(runner)

    def close(self) -> None:
        """Free in dependency order (graph runners, context, engine, runtime, memory), with the CUDA
        context current, then give the primary context back; safe from any thread."""
        for runner in list(self._runners):
            runner.close()
        with self._lock:
            if self._cuda_context is None:
                return
            with self._cuda_context.active():
                self._context = None
                self._engine = None
                self._runtime = None
                for buffer in self._device_buffers.values():
                    buffer.free()
                self._device_buffers = {}
                self._host_input = self._host_output = None
                self._stream = None
            self._cuda_context.release()
            self._cuda_context = None

    def describe(self) -> str:
        target = "GPU" if self.engine_info.dla_core < 0 else f"DLA core {self.engine_info.dla_core}"
        batch = f", batch 1..{self.max_batch}" if self.max_batch > 1 else ""
        return f"{self.name} ({self.gpu.name} {target}, {self.engine_info.precision}{batch})"


def _numpy_dtype(trt, engine, name: str) -> np.dtype:
    trt_type = engine.get_tensor_dtype(name)
    try:
        return np.dtype(trt.nptype(trt_type))
    except TypeError:  # BF16, FP8...: numpy has no such type
        raise BackendError(f"the TensorRT engine's tensor '{name}' is {getattr(trt_type, 'name', trt_type)}, "
                           "which numpy cannot hold; the model's input and output must be float32 (re-export "
                           "it, or cast them to float32 in the graph)") from None


def graph_text(spec) -> str:
    """``spec`` (a GraphSpec) as canonical text: every field, in a fixed order. It names the engine."""
    values = {f.name: getattr(spec, f.name) for f in fields(spec)}
    values["outputs"] = sorted(spec.outputs)
    values["colors"] = [list(row) for row in spec.colors]
    values["mask_size"] = list(spec.mask_size) if spec.mask_size is not None else None
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def wrapper_sha256(wrapped) -> str:
    """Digest of what the graph builder made around the model (nodes, its constants, inputs and outputs):
    an engine cached by an older builder that wrapped differently is never taken for this one."""
    graph = wrapped.graph
    digest = hashlib.sha256()
    for entry in wrapped.opset_import:
        digest.update(f"{entry.domain}:{entry.version};".encode())
    for part in (*graph.input, *graph.output, *graph.node,
                 *(t for t in graph.initializer if t.name.startswith(PREFIX))):
        digest.update(part.SerializeToString(deterministic=True))
    return digest.hexdigest()


class TensorRTGraphRunner(GraphRunner):
    """One camera configuration's whole-frame graph in an engine of its own. Its buffers are allocated once,
    for the largest batch; ``run`` returns views of them, valid until the next ``run`` or ``close``.

    On a discrete GPU: page-locked host buffers, device buffers, and per call one asynchronous copy in,
    the engine and one copy out per output, all on one stream, then one synchronize. On an integrated GPU
    (a Jetson), page-locked host memory mapped into the GPU's address space (DEVICEMAP): the engine reads
    the camera's bytes and writes the products where the host reads them; no copies."""

    def __init__(self, backend: TensorRTBackend, spec) -> None:
        self.spec = spec
        self._backend = backend
        self._trt, self._cuda = backend._trt, backend._cuda
        self._cuda_context = backend._cuda_context
        self._lock = threading.Lock()
        self._input = GRAPH_INPUT
        self._outputs = [name for name in OUTPUTS if name in spec.outputs]  # the graph's order
        self._engine = self._context = self._stream = None
        self._host: dict[str, np.ndarray] = {}
        self._device: dict[str, object] = {}
        self.mapped = backend.gpu.integrated and backend.gpu.maps_host_memory
        self.dynamic = spec.batch is None
        self.max_batch = backend.max_batch if self.dynamic else spec.batch
        self._batch = 0
        self._closed = False
        self._channels = ENCODINGS[spec.encoding].channels
        try:
            with self._cuda_context.active():
                self.engine_info = self._obtain_engine()
                self._bind()
        except BaseException as exc:
            traceback.clear_frames(exc.__traceback__)
            self.close()
            raise

    def _obtain_engine(self) -> EngineInfo:
        import onnx

        from .onnx_rewrite import fp16_copy, qdq_for_tensorrt

        backend, spec, model, trt = self._backend, self.spec, self._backend._model, self._trt
        precision, options, strong = backend.precision, backend._options, strongly_typed(trt)

        def wrap(proto):
            try:
                return build_graph(model, spec, proto)
            except ValueError as exc:
                raise BackendError(f"cannot make the whole-frame graph of {model.files.onnx}: {exc}") from None

        # the key's wrapper digest comes from the plain model's wrapper; the FP16 copy's and the QDQ model's
        # follow from it and from what the key already holds (the model's digest, the typing, the QDQ file)
        plain = onnx.load(str(model.files.onnx))
        wrapped = wrap(plain)
        key = backend._engine_key(self.max_batch, graph_text(spec), wrapper_sha256(wrapped))
        label = f"{model.name}-{spec.width}x{spec.height}-{spec.encoding}"
        sources: list[Path] = []

        def build() -> bytes:  # wrapped after any conversion: the wrapper's own arithmetic stays float32
            source, proto, graph = model.files.onnx, plain, wrapped
            if precision == "int8":
                source, proto = backend._qdq, onnx.load_from_string(qdq_for_tensorrt(backend._qdq))
            elif precision == "fp16" and strong:
                source, data = fp16_copy(model.files.onnx, backend._digest, backend._cache.directory)
                proto = onnx.load_from_string(data if data is not None else source.read_bytes())
            if proto is not plain:
                graph = wrap(proto)
            sources.append(source)
            settings = BuildSettings(precision=precision, workspace_mb=options.workspace_mb,
                                     dla_core=options.dla_core, max_batch=self.max_batch,
                                     integrated=backend.gpu.integrated)
            what = GraphBuild(graph.SerializeToString(), self._input, (spec.height, spec.width, self._channels),
                              self.dynamic, model_names(proto))
            return build_serialized(trt, backend._logger, model, settings, source, None, what)

        cached = backend._cache.obtain(key, label, build=build, load=backend._deserialize,
                                       force_rebuild=options.force_rebuild)
        self._engine = cached.engine
        source = sources[0].name if sources else ""
        return EngineInfo(cached.path, cached.built, cached.build_seconds, precision, options.dla_core, backend.gpu,
                          str(trt.__version__), self.max_batch, source)

    def _expected(self, frames: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Shapes and types of the engine's tensors for ``frames`` frames (graph.build_graph's outputs)."""
        spec = self.spec
        width, height = spec.mask_dims
        mask = ((frames, height, width), np.dtype(np.uint8))
        picture = ((frames, spec.height, spec.width, 3), np.dtype(np.uint8))
        shapes = {self._input: ((frames, spec.height, spec.width, self._channels), np.dtype(np.uint8)),
                  "class_mask": mask, "confidence": mask, "color_mask": picture, "overlay": picture,
                  "histogram": ((frames, len(spec.colors)), np.dtype(np.int32))}
        return {name: shapes[name] for name in (self._input, *self._outputs)}

    def _bind(self) -> None:
        """Check the engine's tensors against the spec, then allocate everything once, for max_batch."""
        trt, cuda, engine = self._trt, self._cuda, self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != [self._input] or sorted(outputs) != sorted(self._outputs):
            raise BackendError(f"the TensorRT graph engine has inputs {inputs} and outputs {outputs}; expected "
                               f"'{self._input}' and {self._outputs}")
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError("TensorRT cannot create an execution context (out of GPU memory?)")
        if self.dynamic:
            top = int(engine.get_tensor_profile_shape(self._input, 0)[2][0])
            if top < self.max_batch:
                raise BackendError(f"the TensorRT graph engine takes at most {top} frames, and max_batch is "
                                   f"{self.max_batch}; rebuild it (--force-rebuild)")
            self._set_batch(self.max_batch)
        expected = self._expected(self.max_batch)
        flags = cuda.host_alloc_flags.DEVICEMAP if self.mapped else 0
        for name in names:
            shape = tuple(int(d) for d in self._context.get_tensor_shape(name))
            dtype = _numpy_dtype(trt, engine, name)
            if (shape, dtype) != expected[name]:
                raise BackendError(f"the TensorRT graph engine's tensor '{name}' is {shape} {dtype}; the graph "
                                   f"needs {expected[name][0]} {expected[name][1]}")
            host = cuda.pagelocked_empty(shape, dtype, mem_flags=flags)
            self._host[name] = host
            if self.mapped:  # the GPU reads and writes these very bytes
                address = int(host.base.get_device_pointer())
            else:
                buffer = self._device[name] = cuda.mem_alloc(max(host.nbytes, 1))
                address = int(buffer)
            if not self._context.set_tensor_address(name, address):
                raise BackendError(f"TensorRT refuses the address of tensor '{name}'")
        self._stream = cuda.Stream()

    def _set_batch(self, frames: int) -> None:
        shape = (frames, self.spec.height, self.spec.width, self._channels)
        if not self._context.set_input_shape(self._input, shape):
            raise BackendError(f"the TensorRT graph engine does not accept {frames} frame(s) of "
                               f"{shape[1:]} (its messages above say why)")
        self._batch = frames

    def _check(self, frames: np.ndarray) -> np.ndarray:
        spec, channels = self.spec, self._channels
        frame = (spec.height, spec.width, channels)
        if isinstance(frames, np.ndarray) and channels == 1 and frames.ndim == 3:
            frames = frames[..., None]  # mono frames without their channel axis
        count = frames.shape[0] if isinstance(frames, np.ndarray) and frames.ndim == 4 else 0
        fits = 1 <= count <= self.max_batch if self.dynamic else count == self.max_batch
        if not fits or frames.dtype != np.uint8 or tuple(frames.shape[1:]) != frame:
            batch = f"1..{self.max_batch}" if self.dynamic else str(self.max_batch)
            got = f"{frames.shape} {frames.dtype}" if isinstance(frames, np.ndarray) else type(frames).__name__
            raise BackendError(f"graph input {got}; expected ({batch}, {', '.join(map(str, frame))}) uint8 "
                               f"({spec.encoding})")
        return frames

    def run(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """(N, H, W, C) uint8 camera frames in; the spec's outputs, frame i at index i, out. The arrays
        are this runner's buffers: the next ``run`` overwrites them and ``close`` frees them."""
        frames = self._check(frames)
        cuda, count = self._cuda, frames.shape[0]
        with self._lock:
            if self._context is None:
                raise BackendError("the TensorRT graph runner is closed")
            with self._cuda_context.active():
                if self.dynamic and count != self._batch:
                    self._set_batch(count)
                np.copyto(self._host[self._input][:count], frames)  # the copy in
                if not self.mapped:
                    cuda.memcpy_htod_async(self._device[self._input], self._host[self._input][:count], self._stream)
                if not self._context.execute_async_v3(self._stream.handle):
                    self._stream.synchronize()
                    raise BackendError("TensorRT failed to run the graph engine (its messages above say why)")
                if not self.mapped:
                    for name in self._outputs:
                        cuda.memcpy_dtoh_async(self._host[name][:count], self._device[name], self._stream)
                self._stream.synchronize()
                return {name: self._host[name][:count] for name in self._outputs}

    def close(self) -> None:
        """Free the execution context, the engine and the buffers, with the CUDA context current."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with self._cuda_context.active():  # the backend closes its runners before it gives the context back
                self._context = None
                self._engine = None
                for buffer in self._device.values():
                    buffer.free()
                self._device = {}
                self._host = {}
                self._stream = None
        self._backend._forget(self)

    def describe(self) -> str:
        spec, info = self.spec, self.engine_info
        memory = "mapped host memory, no copies" if self.mapped else "page-locked buffers, async copies"
        batch = f", batch 1..{self.max_batch}" if self.dynamic and self.max_batch > 1 else ""
        return (f"tensorrt whole-frame graph ({spec.width}x{spec.height} {spec.encoding}, {info.precision}{batch}, "
                f"{memory})")
