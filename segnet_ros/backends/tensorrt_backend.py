"""TensorRT with pycuda: the fast road on Jetson and NVIDIA GPUs (TensorRT 8.6 through 10.x).

The engine comes from the engine cache (built from the ONNX on first use). Everything a frame
needs is allocated once: page-locked host buffers, device buffers and one CUDA stream. The CUDA
context is the device's primary context, retained here and pushed around every piece of CUDA
work, so the backend may be created on one thread and run on another (the ROS node runs
inference on a worker thread). ``pycuda.autoinit`` is never imported: it would tie the context
to whichever thread happened to import it.
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
from .engine_cache import EngineCache, EngineKey, sha256_file
from .tensorrt_build import BuildSettings, build_serialized, has_fast_fp16, version

log = logging.getLogger(__name__)

MIN_VERSION = (8, 6)  # the tensor-name API (num_io_tensors, set_tensor_address, execute_async_v3)


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

    @property
    def capability(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def _first_device(cuda):
    """CUDA device 0 (``CUDA_VISIBLE_DEVICES`` chooses which GPU that is), with its name and capability."""
    try:
        cuda.init()
        count = cuda.Device.count()
    except Exception as exc:  # pycuda's own error types
        raise BackendError(f"no CUDA device: the CUDA driver does not start ({exc})") from None
    if count < 1:
        raise BackendError("no CUDA device: the CUDA driver finds none")
    device = cuda.Device(0)
    major, minor = device.compute_capability()
    return device, GpuInfo(str(device.name()), (int(major), int(minor)))


def probe() -> str:
    """Why TensorRT can run here; a :class:`BackendError` naming what is missing when it cannot."""
    trt, cuda = import_modules()
    _, gpu = _first_device(cuda)
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
        if self._context is not None:
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


class TensorRTBackend(Backend):
    """Runs a cached TensorRT engine. ``run`` returns a copy of the page-locked output buffer, so the
    caller may keep it while the next frame runs."""

    name = "tensorrt"
    device = "cuda"

    def __init__(self, model: Model, options: BackendOptions = BackendOptions()) -> None:
        if options.device == "cpu":
            raise BackendError("TensorRT runs on a CUDA device, and device 'cpu' was asked for; "
                               "use backend onnxruntime (or auto) for the CPU")
        trt, cuda = import_modules()
        device, self.gpu = _first_device(cuda)
        self._trt, self._cuda = trt, cuda
        self._model = model
        self._lock = threading.Lock()
        self._logger = make_logger(trt)
        self._runtime = self._engine = self._context = self._stream = None
        self._host_input = self._host_output = None
        self._device_buffers: dict[str, object] = {}
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
    def _precision(self, options: BackendOptions) -> str:
        if options.precision != "auto":
            if options.dla_core >= 0 and options.precision == "fp32":
                raise BackendError("the DLA runs FP16 (or INT8), not FP32; use precision fp16 or auto with dla_core")
            return options.precision
        if options.dla_core >= 0:
            return "fp16"
        builder = self._trt.Builder(self._logger)
        return "fp16" if has_fast_fp16(builder, self.gpu.compute_capability) else "fp32"

    def _obtain_engine(self, options: BackendOptions) -> EngineInfo:
        trt, model = self._trt, self._model
        precision = self._precision(options)
        settings = BuildSettings(precision=precision, workspace_mb=options.workspace_mb, dla_core=options.dla_core)
        key = EngineKey(onnx_sha256=sha256_file(model.files.onnx), tensorrt_version=str(trt.__version__),
                        gpu_name=self.gpu.name, compute_capability=self.gpu.capability,
                        precision=precision, dla_core=options.dla_core)
        self._runtime = trt.Runtime(self._logger)
        if options.dla_core >= 0:
            self._runtime.DLA_core = options.dla_core
        cached = EngineCache(options.engine_cache_dir or None).obtain(
            key, model.name, build=lambda: build_serialized(trt, self._logger, model, settings),
            load=self._deserialize, force_rebuild=options.force_rebuild)
        self._engine = cached.engine
        return EngineInfo(cached.path, cached.built, cached.build_seconds, precision, options.dla_core,
                          self.gpu, str(trt.__version__))

    def _deserialize(self, data: bytes):
        try:
            return self._runtime.deserialize_cuda_engine(data)
        except Exception as exc:  # some versions raise instead of returning None
            log.debug("deserialize_cuda_engine raised %s", exc)
            return None

    def _bind(self) -> None:
        """Check the engine's tensors against the model, then allocate everything once."""
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
        dynamic = any(int(d) < 0 for d in engine.get_tensor_shape(files.input_blob))
        if dynamic and not self._context.set_input_shape(files.input_blob, self._model.input_shape):
            raise BackendError(f"the TensorRT engine does not accept the input shape {self._model.input_shape}")
        expected = {files.input_blob: self._model.input_shape, files.output_blob: self._model.output_shape}
        for name in names:
            shape = tuple(int(d) for d in self._context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            if name in expected and (shape != expected[name] or dtype != np.float32):
                raise BackendError(f"the TensorRT engine's tensor '{name}' is {shape} {dtype}; the model needs "
                                   f"{expected[name]} float32")
            buffer = cuda.mem_alloc(max(int(np.prod(shape)) * dtype.itemsize, 1))
            self._device_buffers[name] = buffer
            if not self._context.set_tensor_address(name, int(buffer)):
                raise BackendError(f"TensorRT refuses the address of tensor '{name}'")
        self._host_input = cuda.pagelocked_empty(self._model.input_shape, np.float32)
        self._host_output = cuda.pagelocked_empty(self._model.output_shape, np.float32)
        self._stream = cuda.Stream()

    # -- per frame --------------------------------------------------------------------------
    def run(self, tensor: np.ndarray) -> np.ndarray:
        check_input(tensor, self._model.input_shape)
        cuda, files = self._cuda, self._model.files
        with self._lock:
            if self._context is None:
                raise BackendError("the TensorRT backend is closed")
            with self._cuda_context.active():
                np.copyto(self._host_input, tensor)
                cuda.memcpy_htod_async(self._device_buffers[files.input_blob], self._host_input, self._stream)
                if not self._context.execute_async_v3(self._stream.handle):
                    self._stream.synchronize()
                    raise BackendError("TensorRT failed to run the engine (its messages above say why)")
                cuda.memcpy_dtoh_async(self._host_output, self._device_buffers[files.output_blob], self._stream)
                self._stream.synchronize()
                return self._host_output.copy()

    def close(self) -> None:
        """Free in dependency order (context, engine, runtime, memory), with the CUDA context current."""
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
        return f"{self.name} ({self.gpu.name} {target}, {self.engine_info.precision})"
