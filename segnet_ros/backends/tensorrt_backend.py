"""TensorRT with pycuda: the fast road on Jetson and NVIDIA GPUs (TensorRT 8.6 through 11.x).

The engine comes from the engine cache (built from the ONNX on first use). Everything a frame
needs is allocated once, for the largest batch: page-locked host buffers, device buffers and one
CUDA stream. The CUDA context is the device's primary context, retained here and pushed around
every piece of CUDA work, so the backend may be created on one thread and run or closed on
another (the ROS node runs inference on a worker thread). ``pycuda.autoinit`` is never imported:
it would tie the context to whichever thread happened to import it. TensorRT keeps one logger per
process, so every backend shares one (:func:`shared_logger`).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import BackendError
from ..core.model import Model
from .base import Backend, BackendOptions, check_input
from .engine_cache import EngineCache, EngineKey, model_sha256, sha256_file
from .tensorrt_build import (
    BuildSettings,
    build_serialized,
    construct,
    dla_error,
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
    return device, GpuInfo(str(device.name()), (int(major), int(minor)),
                           int(device.get_attribute(attribute.MULTIPROCESSOR_COUNT)),
                           int(device.total_memory()) >> 20, bool(device.get_attribute(attribute.INTEGRATED)))


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
    def _obtain_engine(self, options: BackendOptions) -> EngineInfo:
        from .onnx_rewrite import external_data_files, fp16_copy, qdq_for_tensorrt

        trt, model, precision = self._trt, self._model, self.precision
        strong = strongly_typed(trt)
        digest = model_sha256(model.files.onnx, external_data_files(model.files.onnx))
        qdq = _qdq_model(model) if precision == "int8" else None
        cache = EngineCache(options.engine_cache_dir or None)
        settings = BuildSettings(precision=precision, workspace_mb=options.workspace_mb, dla_core=options.dla_core,
                                 max_batch=options.max_batch, integrated=self.gpu.integrated)
        key = EngineKey(onnx_sha256=digest, tensorrt_version=str(trt.__version__), gpu_name=self.gpu.name,
                        compute_capability=self.gpu.capability, precision=precision, dla_core=options.dla_core,
                        multiprocessors=self.gpu.multiprocessors, total_memory_mb=self.gpu.total_memory_mb,
                        max_batch=options.max_batch, qdq_sha256=sha256_file(qdq) if qdq else "",
                        typing="strong" if strong else "weak")
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
        trt_type = self._engine.get_tensor_dtype(name)
        try:
            return np.dtype(self._trt.nptype(trt_type))
        except TypeError:  # BF16, FP8...: numpy has no such type
            raise BackendError(f"the TensorRT engine's tensor '{name}' is {getattr(trt_type, 'name', trt_type)}, "
                               "which numpy cannot hold; the model's input and output must be float32 (re-export "
                               "it, or cast them to float32 in the graph)") from None

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

    def close(self) -> None:
        """Free in dependency order (context, engine, runtime, memory), with the CUDA context current,
        then give the primary context back; safe from any thread."""
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
