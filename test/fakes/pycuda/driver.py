"""A fake ``pycuda.driver``: the part of the CUDA driver API the TensorRT backend uses, with its rules.

- ``init()`` first; contexts are current per thread (a stack each), as in CUDA, and every call that
  needs one raises ``LogicError`` without it, like pycuda's "invalid device context".
- Device memory is bytes held here, addressed by fake pointers; it belongs to its context, and
  a context released while memory is still allocated in it is a leak (recorded in VIOLATIONS).
- Async copies must use page-locked host memory from ``pagelocked_empty``; they, and kernels the
  fake TensorRT enqueues, run only when the stream is synchronized, so reading a result before
  ``synchronize()`` reads stale data, as it may on a GPU.
- Page-locked arrays have a ``HostAllocation`` as their ``base``, as pycuda's do. Allocated with
  ``mem_flags=host_alloc_flags.DEVICEMAP`` it is mapped (zero-copy): ``base.get_device_pointer()`` gives
  a device address of the same bytes (cuMemHostGetDevicePointer), which the fake TensorRT reads and
  writes in place; without DEVICEMAP, or on a device that cannot map host memory, it raises. Mapped
  memory belongs to its context like device memory: a context released while some is still alive is a
  leak (VIOLATIONS).
- ``STATS`` counts calls, so tests can prove that nothing is allocated per frame.
"""

from __future__ import annotations

import enum
import itertools
import os
import threading
import weakref
from collections import Counter

import numpy as np

FAKE = True
STATS: Counter = Counter()
VIOLATIONS: list[str] = []  # contract breaches found where raising is impossible (destructors, finalizers)


class Error(Exception):
    pass


class LogicError(Error):
    pass


class RuntimeError(Error):  # pycuda.driver has one by this name
    pass


_state = threading.local()
_lock = threading.RLock()
_initialized = False
_primary: dict[int, _CuContext] = {}
_memory: dict[int, _Block] = {}  # address -> block
_pinned: dict[int, weakref.ref] = {}  # id(HostAllocation) -> weak reference to it
_streams: dict[int, weakref.ref] = {}  # handle -> stream
_addresses = itertools.count(0x7F00_0000_0000, 0x10_0000)
_handles = itertools.count(0x5000)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _stack() -> list[Context]:
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    return stack


def _require_init(what: str) -> None:
    if not _initialized:
        raise LogicError(f"{what} failed: initialization error (cuInit has not been called)")


def current(what: str) -> _CuContext:
    """The context current on this thread, or the LogicError pycuda raises without one."""
    _require_init(what)
    stack = _stack()
    if not stack:
        raise LogicError(f"{what} failed: invalid device context - no currently active context?")
    while stack and not stack[-1].valid:
        stack.pop()
    if not stack:
        raise LogicError(f"{what} failed: invalid device context - no currently active context?")
    context = stack[-1]
    if not context.alive:
        raise LogicError(f"{what} failed: the current context has been released")
    return context.cu


def has_current() -> bool:
    stack = getattr(_state, "stack", None)
    return bool(stack) and stack[-1].alive


def init(flags: int = 0) -> None:
    global _initialized
    message = os.environ.get("FAKE_CUDA_INIT_FAIL")
    if message:
        raise RuntimeError(f"cuInit failed: {message}")
    _initialized = True


class device_attribute(enum.IntEnum):  # noqa: N801 - pycuda's spelling
    MULTIPROCESSOR_COUNT = 16
    INTEGRATED = 18
    CAN_MAP_HOST_MEMORY = 19


class host_alloc_flags(enum.IntFlag):  # noqa: N801 - pycuda's spelling (CU_MEMHOSTALLOC_*)
    PORTABLE = 1
    DEVICEMAP = 2
    WRITECOMBINED = 4


class Device:
    def __init__(self, ordinal: int) -> None:
        _require_init("cuDeviceGet")
        if not 0 <= ordinal < Device.count():
            raise LogicError("cuDeviceGet failed: invalid device ordinal")
        self.ordinal = ordinal

    @staticmethod
    def count() -> int:
        _require_init("cuDeviceGetCount")
        return _env_int("FAKE_CUDA_DEVICES", 1)

    def name(self) -> str:
        return os.environ.get("FAKE_GPU_NAME", "Fake Orin")

    def compute_capability(self) -> tuple[int, int]:
        major, minor = os.environ.get("FAKE_GPU_CC", "8.7").split(".")
        return int(major), int(minor)

    def total_memory(self) -> int:
        return _env_int("FAKE_GPU_MEMORY_MB", 7620) << 20

    def get_attribute(self, attribute: device_attribute) -> int:
        if not isinstance(attribute, device_attribute):
            raise TypeError("get_attribute needs a pycuda.driver.device_attribute")
        if attribute == device_attribute.MULTIPROCESSOR_COUNT:
            return _env_int("FAKE_GPU_SMS", 8)
        if attribute == device_attribute.CAN_MAP_HOST_MEMORY:
            return _env_int("FAKE_GPU_CAN_MAP_HOST", 1)
        return _env_int("FAKE_GPU_INTEGRATED", 1)

    def retain_primary_context(self) -> Context:
        """A new pycuda context object on the device's one primary context (cuDevicePrimaryCtxRetain),
        owned by the calling thread, as pycuda's primary_context is."""
        with _lock:
            primary = _primary.get(self.ordinal)
            if primary is None or not primary.alive:
                primary = _primary[self.ordinal] = _CuContext(self)
            primary.retains += 1
        return Context(primary)

    def make_context(self, flags: int = 0) -> Context:
        context = Context(_CuContext(self, primary=False))
        context.cu.retains = 1
        context.push()
        return context


class _CuContext:
    """A CUDA context as the driver sees it: device memory belongs to it; retained by pycuda contexts."""

    def __init__(self, device: Device, primary: bool = True) -> None:
        self.device = device
        self.primary = primary
        self.retains = 0
        self.alive = True

    def release(self) -> None:
        with _lock:
            self.retains -= 1
            if self.retains > 0:
                return
            self.alive = False
            leaked = [block for block in _memory.values() if block.context is self]
            for block in leaked:
                del _memory[block.address]
        mapped = sum(block.mapped for block in leaked)
        if leaked:
            VIOLATIONS.append(f"context released with {len(leaked) - mapped} device allocation(s) and {mapped} "
                              "mapped host allocation(s) never freed")


class Context:
    """pycuda's context object: one per retain, remembering the thread that made it (pycuda's m_thread)."""

    def __init__(self, cu: _CuContext) -> None:
        self.cu = cu
        self.valid = True
        self.thread = threading.get_ident()

    @property
    def alive(self) -> bool:
        return self.valid and self.cu.alive

    @property
    def device(self) -> Device:
        return self.cu.device

    def push(self) -> None:
        _require_init("cuCtxPushCurrent")
        if not self.alive:
            raise LogicError("cuCtxPushCurrent failed: invalid device context (released)")
        _stack().append(self)
        STATS["push"] += 1

    @staticmethod
    def pop() -> Context:
        stack = _stack()
        while stack and not stack[-1].valid:  # pycuda drops detached contexts from the top first
            stack.pop()
        if not stack:
            raise LogicError("context::pop failed: invalid device context - cannot pop non-current context")
        STATS["pop"] += 1
        return stack.pop()

    @staticmethod
    def get_current() -> Context | None:
        stack = _stack()
        while stack and not stack[-1].valid:
            stack.pop()
        return stack[-1] if stack else None

    @staticmethod
    def synchronize() -> None:
        current("cuCtxSynchronize")

    def get_device(self) -> Device:
        return self.cu.device

    def detach(self) -> None:
        """pycuda's rules: current on this thread -> released (and dropped from this thread's stack);
        not current but on the thread that made it -> pushed, released, popped; on any other thread
        -> nothing is released (pycuda assumes that thread is gone) and the retain leaks."""
        if not self.valid:
            raise LogicError("context::detach failed: invalid device context - cannot detach from invalid context")
        stack = _stack()
        active = bool(stack) and stack[-1] is self
        if active or self.thread == threading.get_ident():
            self.cu.release()
        else:
            STATS["detach_ignored"] += 1
        self.valid = False
        if active:
            while stack and not stack[-1].valid:
                stack.pop()


class _Block:
    def __init__(self, context: _CuContext, nbytes: int, data=None) -> None:
        self.context = context
        self.data = bytearray(nbytes) if data is None else data  # mapped memory: the host's own bytes
        self.address = next(_addresses)
        self.mapped = data is not None


def block_at(pointer: int, nbytes: int, what: str) -> _Block:
    """The live allocation at ``pointer`` holding ``nbytes``, in the current context."""
    context = current(what)
    block = _memory.get(int(pointer))
    if block is None:
        raise LogicError(f"{what} failed: {int(pointer):#x} is not a live device allocation")
    if block.context is not context:
        raise LogicError(f"{what} failed: the memory at {int(pointer):#x} belongs to another context")
    if nbytes > len(block.data):
        raise LogicError(f"{what} failed: {nbytes} bytes do not fit the {len(block.data)}-byte allocation")
    return block


class DeviceAllocation:
    def __init__(self, nbytes: int) -> None:
        context = current("cuMemAlloc")
        if nbytes <= 0:
            raise LogicError("cuMemAlloc failed: invalid value")
        block = _Block(context, int(nbytes))
        _memory[block.address] = block
        self._address = block.address
        self._freed = False

    def __int__(self) -> int:
        if self._freed:
            raise LogicError("use of freed device memory")
        return self._address

    __index__ = __int__

    def free(self) -> None:
        if self._freed:
            return
        block_at(self._address, 0, "cuMemFree")
        del _memory[self._address]
        self._freed = True

    def __del__(self) -> None:
        if getattr(self, "_freed", True) or self._address not in _memory:
            return
        if not has_current():
            VIOLATIONS.append(f"device allocation {self._address:#x} freed by the garbage collector "
                              "with no CUDA context current; free it explicitly")
        _memory.pop(self._address, None)


def mem_alloc(nbytes: int) -> DeviceAllocation:
    STATS["mem_alloc"] += 1
    return DeviceAllocation(nbytes)


def _root(array: np.ndarray) -> np.ndarray:
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _freed(address: int, mapped: int | None) -> None:
    """A page-locked allocation is gone (collected or freed): pycuda frees it in its context."""
    _pinned.pop(address, None)
    if mapped is not None:
        _memory.pop(mapped, None)
    if not has_current():
        VIOLATIONS.append("page-locked host memory freed with no CUDA context current")


class HostAllocation:
    """The ``base`` of a page-locked array (pycuda's PagelockedHostAllocation): its bytes, and for a
    DEVICEMAP allocation the device address they are mapped at."""

    def __init__(self, shape, dtype, order: str, flags: int) -> None:
        context = current("cuMemHostAlloc")
        dtype = np.dtype(dtype)
        shape = tuple(int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        nbytes = int(np.prod(shape)) * dtype.itemsize
        self._bytes = np.zeros(max(nbytes, 1), np.uint8)
        self.flags = int(flags)
        strides = None
        if order == "F" and shape:
            strides = tuple(int(np.prod(shape[:i])) * dtype.itemsize for i in range(len(shape)))
        elif order != "C":
            raise ValueError(f"order must be 'C' or 'F', got {order!r}")
        self.__array_interface__ = {"version": 3, "typestr": dtype.str, "shape": shape, "strides": strides,
                                    "data": (self._bytes.ctypes.data, False)}
        self._block = None
        if self.flags & host_alloc_flags.DEVICEMAP:
            self._block = _Block(context, len(self._bytes), memoryview(self._bytes))
            _memory[self._block.address] = self._block
        self._finalizer = weakref.finalize(self, _freed, id(self), self._block.address if self._block else None)

    def get_flags(self) -> int:
        return self.flags

    def get_device_pointer(self) -> int:
        """cuMemHostGetDevicePointer: only for DEVICEMAP memory, on a device that maps host memory."""
        context = current("cuMemHostGetDevicePointer")
        if self._block is None:
            raise LogicError("cuMemHostGetDevicePointer failed: invalid value (the memory was not allocated with "
                             "host_alloc_flags.DEVICEMAP)")
        if not context.device.get_attribute(device_attribute.CAN_MAP_HOST_MEMORY):
            raise LogicError("cuMemHostGetDevicePointer failed: not supported (the device cannot map host memory)")
        if self._block.context is not context:
            raise LogicError("cuMemHostGetDevicePointer failed: the memory was mapped in another context")
        STATS["get_device_pointer"] += 1
        return self._block.address

    def free(self) -> None:
        self._finalizer()


def pagelocked_empty(shape, dtype, order: str = "C", mem_flags: int = 0) -> np.ndarray:
    STATS["pagelocked_empty"] += 1
    allocation = HostAllocation(shape, dtype, order, mem_flags)
    array = np.asarray(allocation)
    _pinned[id(allocation)] = weakref.ref(allocation)
    if mem_flags & host_alloc_flags.DEVICEMAP:
        STATS["pagelocked_mapped"] += 1
    return array


def is_pagelocked(array: np.ndarray) -> bool:
    allocation = _root(array).base
    reference = _pinned.get(id(allocation))
    return reference is not None and reference() is allocation


class Stream:
    def __init__(self, flags: int = 0) -> None:
        self._context = current("cuStreamCreate")
        STATS["stream"] += 1
        self.handle = next(_handles)
        self._queue: list = []
        _streams[self.handle] = weakref.ref(self)

    def enqueue(self, operation, what: str) -> None:
        if current(what) is not self._context:
            raise LogicError(f"{what} failed: the stream belongs to another context")
        self._queue.append(operation)

    def synchronize(self) -> None:
        if current("cuStreamSynchronize") is not self._context:
            raise LogicError("cuStreamSynchronize failed: the stream belongs to another context")
        STATS["synchronize"] += 1
        queue, self._queue = self._queue, []
        for operation in queue:
            operation()

    def is_done(self) -> bool:
        return not self._queue


def stream_by_handle(handle: int, what: str) -> Stream:
    reference = _streams.get(int(handle))
    stream = reference() if reference is not None else None
    if stream is None:
        raise LogicError(f"{what} failed: {handle!r} is not a live stream handle")
    return stream


def _host(array, what: str) -> np.ndarray:
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        raise LogicError(f"{what}: the host buffer must be a C-contiguous numpy array")
    if not is_pagelocked(array):
        raise LogicError(f"{what}: async copies need page-locked host memory (pagelocked_empty)")
    return array


def memcpy_htod_async(dest, src, stream: Stream | None = None) -> None:
    what = "cuMemcpyHtoDAsync"
    host = _host(src, what)
    block = block_at(int(dest), host.nbytes, what)
    STATS["htod"] += 1

    def copy() -> None:  # reads the host buffer when the stream runs, as a GPU does
        block.data[: host.nbytes] = host.tobytes()

    if stream is None:
        copy()
    else:
        stream.enqueue(copy, what)


def memcpy_dtoh_async(dest, src, stream: Stream | None = None) -> None:
    what = "cuMemcpyDtoHAsync"
    host = _host(dest, what)
    block = block_at(int(src), host.nbytes, what)
    STATS["dtoh"] += 1

    def copy() -> None:
        host.reshape(-1).view(np.uint8)[:] = np.frombuffer(bytes(block.data[: host.nbytes]), np.uint8)

    if stream is None:
        copy()
    else:
        stream.enqueue(copy, what)


def retained() -> int:
    """Retains of primary contexts not yet released (a leak once every backend is closed)."""
    return sum(c.retains for c in _primary.values() if c.alive)


def reset() -> None:
    """Forget all state (the test fixture calls it)."""
    global _initialized
    _initialized = False
    STATS.clear()
    VIOLATIONS.clear()
    _primary.clear()
    _memory.clear()
    _pinned.clear()
    _streams.clear()
