"""A fake ``tensorrt``: the documented Python API subset the backend uses, enforced (see ../README.md).

Version-dependent surface follows ``FAKE_TRT_VERSION`` (read at import): 8.x needs the
EXPLICIT_BATCH network flag and has no IProgressMonitor; 10.x deprecates EXPLICIT_BATCH (a
warning when used), offers ``IProgressMonitor`` / ``IBuilderConfig.progress_monitor``, BF16 and the
STRONGLY_TYPED network flag; 11.x has no weak typing at all: no ``BuilderFlag.FP16``/``INT8``, no
``platform_has_fast_fp16``, every network strongly typed (its precision is its tensors' types).

Rules enforced (the real library crashes, misbehaves or refuses where this one raises or records):
a CUDA context is current for builder, runtime, engine and context work; the ONNX is parsed into
an explicit-batch network before the build; a dynamic input needs an optimization profile; a
runtime outlives its engines and an engine its execution contexts; every IO tensor has an address
before ``execute_async_v3``, pointing at live device memory large enough for it; engines
deserialize only on the TensorRT version and compute capability they were built for; Q/DQ must be
symmetric INT8 and, in a weakly typed network, needs ``BuilderFlag.INT8``; precision flags are refused
on a strongly typed network; one process-wide logger; input shapes inside the optimization profile.

The parser also keeps TensorRT's ONNX operator contracts that pre- and post-processing inside a graph
run into (onnx-tensorrt's operator matrix, 8.6 to 11): UINT8 only as a network input or output, converted
only to and from FLOAT/HALF, every Cast to UINT8 right after a Clip to [0, 255]; no Gather of UINT8 data
(INT64 data from 10 on; 8.x casts INT64 down to INT32, its INT64 inputs and outputs are INT32 tensors);
Resize on FLOAT/HALF only, modes nearest and linear, no tf_crop_and_resize; TopK with a constant K below
3840 (ArgMax/ArgMin import as TopK).

Precision inside an engine, as a GPU would compute it (``ICudaEngine.run``): a weakly typed FP16 engine runs
every layer in FP16 (its float inputs and outputs rounded through float16, constants included) except
layers pinned to FP32 with ``layer.precision`` under ``BuilderFlag.OBEY_PRECISION_CONSTRAINTS`` (or PREFER);
a pinned layer's float output is stored in FP16 too unless ``set_output_type(i, FLOAT)`` says otherwise.
Precision constraints on a strongly typed network are an API usage error. ``BuilderFlag.TF32`` is set in
a new builder config, as TensorRT's is; on compute capability 8.0 and later it rounds the constant operands
of MatMul/Gemm layers computing in FP32 to TF32's 10-bit mantissa.
"""

from __future__ import annotations

import enum
import json
import os
import struct
import sys
import time
import weakref
from collections import Counter
from pathlib import Path

import numpy as np
import pycuda.driver as _cuda

__version__ = os.environ.get("FAKE_TRT_VERSION", "10.3.0")
_MAJOR = int(__version__.split(".")[0])
FAKE = True
STATS: Counter = Counter()
VIOLATIONS = _cuda.VIOLATIONS
MAGIC = b"FAKETRT\x02"
UNSUPPORTED_OPS = {"NonMaxSuppression"}  # a real op the fake parser refuses, besides custom domains
NULLPTR = "pybind11::init(): factory function returned nullptr"  # what a failed CUDA start looks like
QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
# ONNX element types the operator contracts speak of (onnx.TensorProto): TensorRT converts UINT8 only to and from these
_ONNX_UINT8, _ONNX_FLOATS = 2, {1, 10}
# Gather's data types (onnx-tensorrt's operator matrix): FP32, FP16, INT8, INT32, BOOL; INT64 and BF16 from 10
_GATHER_DATA = {1, 10, 3, 6, 9} | ({7, 16} if _MAJOR >= 10 else {7})  # 8.x casts INT64 down to INT32
TOPK_MAX = 3840  # TopK's largest K is below this (ArgMax/ArgMin import as TopK with K = 1)


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    if _MAJOR >= 10:
        BF16 = 7
        INT64 = 8


float32, float16, int8, int32, bool = DataType.FLOAT, DataType.HALF, DataType.INT8, DataType.INT32, DataType.BOOL
_NUMPY = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
          DataType.INT32: np.int32, DataType.BOOL: np.bool_, DataType.UINT8: np.uint8}
_FROM_ONNX = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32, 9: DataType.BOOL,
              2: DataType.UINT8, 7: DataType.INT64 if _MAJOR >= 10 else DataType.INT32}  # 8.x casts INT64 down
if _MAJOR >= 10:
    _NUMPY[DataType.INT64] = np.int64


def nptype(trt_type: DataType):
    """As the real one: a TypeError for types numpy has no equivalent of (BF16, FP8)."""
    if trt_type not in _NUMPY:
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
    return _NUMPY[trt_type]


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3


if _MAJOR >= 11:  # weak typing is gone: precision comes from the network's own types (strongly typed)
    class BuilderFlag(enum.Enum):
        DEBUG = 2
        GPU_FALLBACK = 3
        REFIT = 5
        TF32 = 6  # set by default
else:
    class BuilderFlag(enum.Enum):
        FP16 = 0
        INT8 = 1
        DEBUG = 2
        GPU_FALLBACK = 3
        REFIT = 5
        TF32 = 6  # set by default
        OBEY_PRECISION_CONSTRAINTS = 9
        PREFER_PRECISION_CONSTRAINTS = 10


class DeviceType(enum.Enum):
    GPU = 0
    DLA = 1


if _MAJOR >= 10:
    class NetworkDefinitionCreationFlag(enum.IntEnum):
        EXPLICIT_BATCH = 0  # deprecated in 10.0, ignored: every network is explicit batch
        STRONGLY_TYPED = 1  # 11: accepted and ignored, every network is strongly typed
else:
    class NetworkDefinitionCreationFlag(enum.IntEnum):
        EXPLICIT_BATCH = 0
        EXPLICIT_PRECISION = 1


class ErrorCode(enum.Enum):
    SUCCESS = 0
    INTERNAL_ERROR = 1
    MEM_ALLOC_FAILED = 2
    MODEL_DESERIALIZE_FAILED = 3
    INVALID_VALUE = 4
    INVALID_GRAPH = 5
    INVALID_NODE = 6
    UNSUPPORTED_GRAPH = 7
    UNSUPPORTED_NODE = 8


class _Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class Dims(tuple):
    pass


class ILogger:
    Severity = _Severity

    def __init__(self) -> None:
        self._fake_initialized = True

    def log(self, severity, msg) -> None:
        raise NotImplementedError("pure virtual ILogger.log")


class Logger(ILogger):
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (
        _Severity.INTERNAL_ERROR, _Severity.ERROR, _Severity.WARNING, _Severity.INFO, _Severity.VERBOSE)

    def __init__(self, min_severity: _Severity = _Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity

    def log(self, severity, msg) -> None:
        if severity <= self.min_severity:
            print(f"[fake TRT] {msg}", file=sys.stderr)


def _check_trampoline(obj, kind: str) -> None:
    if not getattr(obj, "_fake_initialized", False):
        raise TypeError(f"tensorrt.{kind}.__init__() must be called when overriding __init__")


def _check_logger(logger) -> None:
    if not isinstance(logger, ILogger):
        raise TypeError(f"expected a tensorrt.ILogger, got {type(logger).__name__}")
    _check_trampoline(logger, "ILogger")


_logger_ref = None  # TensorRT keeps ONE process-wide logger: the last one handed to a builder/runtime/parser
_users: weakref.WeakSet = weakref.WeakSet()  # live builders and runtimes


def _use_logger(logger, user) -> None:
    """What TensorRT does with a logger: it replaces the process-wide one, and keeps only a raw pointer."""
    global _logger_ref
    _check_logger(logger)
    previous = _logger_ref() if _logger_ref is not None else None
    if previous is not None and previous is not logger and len(_users):
        VIOLATIONS.append(f"a second TensorRT logger ({type(logger).__name__}) replaced the process-wide one "
                          "while builders or runtimes still use it; create one logger per process")
    _logger_ref = weakref.ref(logger)
    if user is not None:
        _users.add(user)


def _report(severity: _Severity, message: str) -> None:
    logger = _logger_ref() if _logger_ref is not None else None
    if logger is None:
        VIOLATIONS.append(f"TensorRT logged through a logger that was garbage-collected: {message}")
        return
    logger.log(severity, message)


def _construct(kind: str) -> None:
    """Builder/Runtime construction: the pybind11 TypeError when TensorRT's CUDA start fails (error 35)."""
    if os.environ.get("FAKE_TRT_INIT_FAIL"):
        print("[fake TRT] [E] createInferRuntime: Error Code 6: API Usage Error (CUDA initialization failure "
              "with error: 35)", file=sys.stderr)
        raise TypeError(NULLPTR)
    _cuda.current(f"tensorrt.{kind}")


if _MAJOR >= 10:
    class IProgressMonitor:
        def __init__(self) -> None:
            self._fake_initialized = True

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            raise NotImplementedError

        def step_complete(self, phase_name, step) -> bool:
            raise NotImplementedError

        def phase_finish(self, phase_name) -> None:
            raise NotImplementedError


# -- network and parser ---------------------------------------------------------------------------
class ITensor:
    def __init__(self, name: str, shape, dtype: DataType) -> None:
        self.name, self._shape, self.dtype = name, Dims(shape), dtype

    @property
    def shape(self) -> Dims:
        return self._shape


class INetworkDefinition:
    def __init__(self, builder: Builder, flags: int) -> None:
        self._builder = builder
        self._explicit_batch = _MAJOR >= 10 or (flags & 1) != 0
        self._strongly_typed = _MAJOR >= 11 or (_MAJOR >= 10 and (flags & (1 << 1)) != 0)
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []
        self._onnx: bytes | None = None
        self._qdq = False  # the parsed model has Q/DQ nodes (explicit quantization)
        self._fp16 = False  # the parsed model computes in float16 (its own types)
        self._layers: list[ILayer] = []

    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))
    num_layers = property(lambda self: len(self._layers))

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def get_layer(self, index: int) -> ILayer:
        if not 0 <= index < len(self._layers):
            raise IndexError(f"get_layer: index {index} out of range")
        return self._layers[index]

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]

    if _MAJOR >= 10:
        def get_flag(self, flag: NetworkDefinitionCreationFlag) -> bool:
            return self._strongly_typed if flag == NetworkDefinitionCreationFlag.STRONGLY_TYPED else True


class ILayer:
    """A layer as the ONNX parser makes it: one per node (named after the node, or ``node_of_<first output>``
    for an unnamed one, as onnx-tensorrt names them) and one constant layer per initializer a node reads
    (named after the initializer). Precision constraints are for weakly typed networks only."""

    def __init__(self, network: INetworkDefinition, name: str, node: int | None, inputs: list[ITensor | None],
                 outputs: list[ITensor]) -> None:
        self._network = network
        self.name = name
        self._node = node  # index of the ONNX node; None: a constant layer
        self._inputs = inputs
        self._outputs = outputs
        self._precision: DataType | None = None
        self._output_types: dict[int, DataType] = {}

    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))

    def get_input(self, index: int) -> ITensor | None:
        return self._inputs[index]  # None for an optional input left out

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]

    def _weak_only(self, what: str) -> bool:
        if self._network._strongly_typed:
            message = (f"3: [layers.cpp::{what}] Error Code 3: API Usage Error ({what} on layer {self.name}: precision "
                       "constraints are not allowed in a strongly typed network; its types decide)")
            _report(_Severity.ERROR, message)
            VIOLATIONS.append(message)
            return False
        return True

    @property
    def precision(self) -> DataType:
        return DataType.FLOAT if self._precision is None else self._precision

    @precision.setter
    def precision(self, dtype: DataType) -> None:
        if not isinstance(dtype, DataType):
            raise TypeError("precision must be a tensorrt.DataType")
        if self._weak_only("setPrecision"):
            self._precision = dtype

    @property
    def precision_is_set(self) -> bool:
        return self._precision is not None

    def reset_precision(self) -> None:
        self._precision = None

    def set_output_type(self, index: int, dtype: DataType) -> None:
        if not isinstance(dtype, DataType):
            raise TypeError("set_output_type needs a tensorrt.DataType")
        if not 0 <= index < len(self._outputs):
            raise IndexError(f"set_output_type: layer {self.name} has no output {index}")
        if self._weak_only("setOutputType"):
            self._output_types[index] = dtype

    def get_output_type(self, index: int) -> DataType:
        return self._output_types.get(index, self._outputs[index].dtype)

    def output_type_is_set(self, index: int) -> bool:
        return index in self._output_types

    def reset_output_type(self, index: int) -> None:
        self._output_types.pop(index, None)


class ParserError:
    def __init__(self, code: ErrorCode, desc: str, node: int = -1, name: str = "", op: str = "") -> None:
        self._code, self._desc, self._node, self._name, self._op = code, desc, node, name, op

    def code(self) -> ErrorCode:
        return self._code

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op

    def file(self) -> str:
        return "ModelImporter.cpp"

    def line(self) -> int:
        return 0

    def func(self) -> str:
        return "parseGraph"

    def __str__(self) -> str:
        where = f"In node {self._node} with name: {self._name} and operator: {self._op} " if self._node >= 0 else ""
        return f"{where}({self.func()}): {self._code.name}: {self._desc}"


def _clips_to_bytes(node, value) -> bool:
    """Whether a Clip node keeps values within [0, 255]: its bounds (attributes before opset 11, constant inputs
    from 11) are both given and inside that range."""
    import onnx

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    low = attrs.get("min")
    high = attrs.get("max")
    if len(node.input) > 1 and node.input[1]:
        low = value(node.input[1])
    if len(node.input) > 2 and node.input[2]:
        high = value(node.input[2])
    if low is None or high is None:
        return False
    return float(np.asarray(low).reshape(-1)[0]) >= 0.0 and float(np.asarray(high).reshape(-1)[0]) <= 255.0


def _tensor_types(proto) -> dict[str, int]:
    """ONNX element types of the graph's tensors (shape inference; a tensor it cannot type is absent)."""
    import onnx

    graph = proto.graph
    try:
        typed = onnx.shape_inference.infer_shapes(proto).graph
    except Exception:
        typed = graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*typed.input, *typed.output, *typed.value_info)}
    types.update({t.name: t.data_type for t in graph.initializer})
    return types


def _dims(value_info) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim]


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger) -> None:
        if not isinstance(network, INetworkDefinition):
            raise TypeError("OnnxParser needs an INetworkDefinition")
        _use_logger(logger, None)
        self._network = network
        self._errors: list[ParserError] = []

    num_errors = property(lambda self: len(self._errors))

    def get_error(self, index: int) -> ParserError | None:
        return self._errors[index] if 0 <= index < len(self._errors) else None

    def clear_errors(self) -> None:
        self._errors.clear()

    def parse(self, model, path: str | None = None) -> bool:
        if not isinstance(model, (bytes, bytearray, memoryview)):
            raise TypeError("parse() needs a buffer holding the serialized ONNX model")
        return self._parse(memoryview(model).tobytes())

    def parse_from_file(self, model: str) -> bool:
        try:
            data = Path(model).read_bytes()
        except OSError as exc:
            self._errors.append(ParserError(ErrorCode.MODEL_DESERIALIZE_FAILED,
                                            f"Failed to open file: {model} ({exc})"))
            return False
        return self._parse(data)

    def _fail(self, error: ParserError) -> None:
        self._errors.append(error)
        _report(_Severity.ERROR, str(error))

    def _check_qdq(self, proto) -> bool:
        """TensorRT imports only symmetric INT8 Q/DQ: zero points int8 and all zero (or absent)."""
        from onnx import numpy_helper

        initializers = {init.name: init for init in proto.graph.initializer}
        ok = True
        for index, node in enumerate(proto.graph.node):
            if node.op_type not in QDQ_OPS:
                continue
            zero = initializers.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if zero is None:
                continue
            values = numpy_helper.to_array(zero)
            if values.dtype != np.int8:
                self._fail(ParserError(ErrorCode.UNSUPPORTED_NODE, f"{node.op_type}: TensorRT supports INT8 "
                                       f"quantization only, the zero point is {values.dtype}", index, node.name,
                                       node.op_type))
                ok = False
            elif values.any():
                self._fail(ParserError(ErrorCode.INVALID_NODE, "Assertion failed: shiftIsAllZeros(zeroPoint) && "
                                       "\"TRT only supports symmetric quantization - zeroPt must be all zeros\"",
                                       index, node.name, node.op_type))
                ok = False
        return ok

    def _check_operators(self, proto, types: dict[str, int]) -> bool:
        """TensorRT's ONNX operator contracts that a pre/post-processing graph meets first (see OPERATOR_RULES).
        Tensor types come from ONNX shape inference; a tensor it cannot type is not judged."""
        import onnx
        from onnx import numpy_helper

        graph = proto.graph
        types = dict(types)
        constants = {t.name: t for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                constants[node.output[0]] = node.attribute[0].t
        types.update({name: t.data_type for name, t in constants.items()})
        producers = {out: node for node in graph.node for out in node.output}
        outputs = {v.name for v in graph.output}
        ok = True

        def fail(index: int, node, text: str, code: ErrorCode = ErrorCode.UNSUPPORTED_NODE) -> None:
            nonlocal ok
            ok = False
            self._fail(ParserError(code, text, index, node.name, node.op_type))

        def value(name: str):
            return numpy_helper.to_array(constants[name]) if name in constants else None

        for index, node in enumerate(graph.node):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            for name in node.output:
                if types.get(name) == _ONNX_UINT8 and name not in outputs:
                    fail(index, node, f"UINT8 is only supported as network input or output tensor types; '{name}' is "
                         "neither", ErrorCode.UNSUPPORTED_GRAPH)
            inputs = [types.get(name) for name in node.input if name]
            if node.op_type == "Cast":
                source, target = inputs[0] if inputs else None, attrs.get("to")
                if source == _ONNX_UINT8 and target not in _ONNX_FLOATS:
                    fail(index, node, "uint8 conversions are not supported for {int8, int32, int64, bool}: cast UINT8 "
                         "to FLOAT or HALF only")
                if target == _ONNX_UINT8:
                    clip = producers.get(node.input[0])
                    if source is not None and source not in _ONNX_FLOATS:
                        fail(index, node, "uint8 conversions are not supported for {int8, int32, int64, bool}: cast to "
                             "UINT8 from FLOAT or HALF only")
                    elif clip is None or clip.op_type != "Clip" or not _clips_to_bytes(clip, value):
                        fail(index, node, "a Cast to UINT8 needs a Clip to [0, 255] right before it: TensorRT's "
                             "conversion is undefined outside [0, 256) and differs from ONNX Runtime's there")
            elif _ONNX_UINT8 in inputs:
                kind = "Gather does not support UINT8 data" if node.op_type == "Gather" else \
                    f"{node.op_type} does not take UINT8"
                fail(index, node, f"{kind}: UINT8 is only supported as network input or output tensor types; Cast it "
                     "to FLOAT first")
            if node.op_type == "Gather" and inputs and inputs[0] is not None and inputs[0] not in _GATHER_DATA:
                fail(index, node, f"Gather does not support data of ONNX type {inputs[0]} on TensorRT {__version__}")
            if node.op_type == "Resize":
                if inputs and inputs[0] is not None and inputs[0] not in _ONNX_FLOATS:
                    fail(index, node, "Resize supports FLOAT and HALF inputs only")
                mode = attrs.get("mode", b"nearest")
                transform = attrs.get("coordinate_transformation_mode", b"half_pixel")
                if mode not in (b"nearest", b"linear") or transform == b"tf_crop_and_resize":
                    fail(index, node, f"Resize mode {mode.decode()} with {transform.decode()} is not supported")
            if node.op_type == "TopK":
                k = value(node.input[1]) if len(node.input) > 1 else np.asarray(attrs.get("k", 0))
                if k is None:
                    fail(index, node, "TopK's K input must be an initializer")
                elif int(np.asarray(k).reshape(-1)[0]) >= TOPK_MAX:
                    fail(index, node, f"TopK supports K < {TOPK_MAX}, got {int(np.asarray(k).reshape(-1)[0])}")
        return ok

    def _parse(self, data: bytes) -> bool:
        import onnx

        STATS["parse"] += 1
        network = self._network
        if not network._explicit_batch:
            self._fail(ParserError(ErrorCode.INVALID_GRAPH,
                                   "the ONNX parser only supports networks with an explicit batch dimension"))
            return False
        if network._onnx is not None:
            self._fail(ParserError(ErrorCode.INVALID_GRAPH, "the network already holds a parsed model"))
            return False
        try:
            proto = onnx.load_from_string(data)
        except Exception:
            self._fail(ParserError(ErrorCode.MODEL_DESERIALIZE_FAILED, "Failed to parse ONNX model from file"))
            return False
        failed = False
        for index, node in enumerate(proto.graph.node):
            if node.domain not in ("", "ai.onnx") or node.op_type in UNSUPPORTED_OPS:
                self._fail(ParserError(ErrorCode.UNSUPPORTED_NODE, f"No importer registered for op: {node.op_type}",
                                       index, node.name, node.op_type))
                failed = True
        types = _tensor_types(proto) if not failed else {}
        if failed or not self._check_qdq(proto) or not self._check_operators(proto, types):
            return False
        initializers = {init.name for init in proto.graph.initializer}
        for value in proto.graph.input:
            if value.name not in initializers:
                network._inputs.append(ITensor(value.name, _dims(value), _FROM_ONNX[value.type.tensor_type.elem_type]))
        for value in proto.graph.output:
            network._outputs.append(ITensor(value.name, _dims(value), _FROM_ONNX[value.type.tensor_type.elem_type]))
        tensors = {t.name: t for t in (*network._inputs, *network._outputs)}

        def tensor(name: str) -> ITensor:
            if name not in tensors:
                tensors[name] = ITensor(name, [], _FROM_ONNX.get(types.get(name, 1), DataType.FLOAT))
            return tensors[name]

        initializers_read = []
        for node in proto.graph.node:
            initializers_read += [n for n in node.input if n in initializers and n not in initializers_read]
        network._layers = [ILayer(network, name, None, [], [tensor(name)]) for name in initializers_read]
        network._layers += [ILayer(network, node.name or f"node_of_{node.output[0]}", index,
                                   [tensor(n) if n else None for n in node.input], [tensor(n) for n in node.output])
                            for index, node in enumerate(proto.graph.node)]
        network._qdq = any(node.op_type in QDQ_OPS for node in proto.graph.node)
        network._fp16 = any(init.data_type == onnx.TensorProto.FLOAT16 for init in proto.graph.initializer)
        network._onnx = data
        return True


# -- builder ---------------------------------------------------------------------------------------
class IOptimizationProfile:
    def __init__(self) -> None:
        self._shapes: dict[str, tuple] = {}

    def set_shape(self, input: str, min, opt, max) -> None:
        shapes = tuple(tuple(int(d) for d in s) for s in (min, opt, max))
        if any(d <= 0 for s in shapes for d in s) or not all(a <= b <= c for a, b, c in zip(*shapes, strict=True)):
            raise ValueError(f"invalid profile shapes for {input}: {shapes}")
        self._shapes[input] = shapes

    def get_shape(self, input: str):
        return self._shapes.get(input)


class IBuilderConfig:
    _SETTABLE = {"default_device_type", "DLA_core"} | ({"progress_monitor"} if _MAJOR >= 10 else set())

    def __init__(self, builder: Builder) -> None:
        object.__setattr__(self, "_builder", builder)
        object.__setattr__(self, "_flags", {BuilderFlag.TF32})  # TensorRT enables TF32 by default
        object.__setattr__(self, "_pools", {})
        object.__setattr__(self, "_profiles", [])
        object.__setattr__(self, "default_device_type", DeviceType.GPU)
        object.__setattr__(self, "DLA_core", -1)
        if _MAJOR >= 10:
            object.__setattr__(self, "progress_monitor", None)

    def __setattr__(self, name, value) -> None:
        if name not in self._SETTABLE:
            raise AttributeError(f"'tensorrt.tensorrt.IBuilderConfig' object has no attribute '{name}'")
        if name == "default_device_type" and not isinstance(value, DeviceType):
            raise TypeError("default_device_type must be a tensorrt.DeviceType")
        if name == "DLA_core" and not isinstance(value, int):
            raise TypeError("DLA_core must be an int")
        if name == "progress_monitor" and value is not None:
            if not isinstance(value, IProgressMonitor):
                raise TypeError("progress_monitor must be a tensorrt.IProgressMonitor")
            _check_trampoline(value, "IProgressMonitor")
        object.__setattr__(self, name, value)

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        if not isinstance(pool, MemoryPoolType) or not isinstance(pool_size, int) or pool_size < 0:
            raise TypeError("set_memory_pool_limit(pool: MemoryPoolType, pool_size: int >= 0)")
        self._pools[pool] = pool_size

    def get_memory_pool_limit(self, pool: MemoryPoolType) -> int:
        return self._pools.get(pool, 1 << 40)

    def set_flag(self, flag: BuilderFlag) -> None:
        if not isinstance(flag, BuilderFlag):
            raise TypeError("set_flag needs a tensorrt.BuilderFlag")
        self._flags.add(flag)

    def clear_flag(self, flag: BuilderFlag) -> None:
        self._flags.discard(flag)

    def get_flag(self, flag: BuilderFlag) -> bool:
        return flag in self._flags

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        if not profile._shapes:
            return -1
        self._profiles.append(profile)
        return len(self._profiles) - 1


class IHostMemory(bytes):
    @property
    def nbytes(self) -> int:
        return len(self)


def _computable(onnx_bytes: bytes) -> bytes:
    """What the fake "GPU" runs for a float16 network: the same graph with its float16 weights widened to
    float32 (their values stay the half-precision ones) and every cast to float16 kept as a rounding step,
    so ONNX Runtime's CPU kernels (which lack many float16 ops before 1.17) can compute it."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load_from_string(onnx_bytes)
    graph = proto.graph
    for index, init in enumerate(graph.initializer):
        if init.data_type == onnx.TensorProto.FLOAT16:
            wide = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name)
            graph.initializer[index].CopyFrom(wide)
    nodes = []
    for node in graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None
        if to == onnx.TensorProto.FLOAT16:
            half = node.output[0] + "__fake_half"
            nodes.append(helper.make_node("Cast", list(node.input), [half], to=onnx.TensorProto.FLOAT16))
            nodes.append(helper.make_node("Cast", [half], list(node.output), to=onnx.TensorProto.FLOAT))
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    return proto.SerializeToString()


def _tf32(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to TF32's 10-bit mantissa (to nearest, ties to even)."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0xFFF + ((bits >> 13) & 1)) & ~np.uint64(0x1FFF)
    return bits.astype(np.uint32).view(np.float32).reshape(values.shape)


def _as_computed(onnx_bytes: bytes, numerics: dict) -> bytes:
    """The engine's ONNX with its rounding made explicit for ONNX Runtime: float16 round trips (two Casts)
    where an FP16 layer reads a float tensor or stores one, FP16/TF32-rounded copies of constants."""
    import onnx
    from onnx import helper, numpy_helper

    consumed = {int(k): v for k, v in numerics["half_consumed"].items()}
    produced, tf32 = set(numerics["half_produced"]), set(numerics["tf32"])
    if not consumed and not produced and not tf32:
        return onnx_bytes
    proto = onnx.load_from_string(onnx_bytes)
    graph = proto.graph
    initializers = {t.name: t for t in graph.initializer}
    extra: dict[str, str] = {}  # (initializer, how) -> its rounded copy

    def rounded_constant(name: str, how) -> str:
        key = f"{name}__{how.__name__}"
        if key not in extra:
            values = numpy_helper.to_array(initializers[name])
            graph.initializer.append(numpy_helper.from_array(how(values).astype(np.float32), key))
            extra[key] = key
        return key

    def half(values: np.ndarray) -> np.ndarray:
        return values.astype(np.float16).astype(np.float32)

    def round_trip(source: str, target: str) -> list:
        middle = f"{target}__fake_half"
        return [helper.make_node("Cast", [source], [middle], to=onnx.TensorProto.FLOAT16),
                helper.make_node("Cast", [middle], [target], to=onnx.TensorProto.FLOAT)]

    for name in produced & set(initializers):  # constant layers stored in FP16: every reader sees the rounding
        tensor = initializers[name]
        tensor.CopyFrom(numpy_helper.from_array(half(numpy_helper.to_array(tensor)), name))
    nodes, read_half = [], set()
    for index, node in enumerate(graph.node):
        inputs = list(node.input)
        for position, name in enumerate(inputs):
            if not name:
                continue
            if index in consumed and name in consumed[index]:
                if name in initializers:
                    inputs[position] = rounded_constant(name, half)
                else:
                    if name not in read_half:
                        nodes += round_trip(name, f"{name}__fake_fp16_read")
                        read_half.add(name)
                    inputs[position] = f"{name}__fake_fp16_read"
            elif index in tf32 and name in initializers and initializers[name].data_type == onnx.TensorProto.FLOAT:
                inputs[position] = rounded_constant(name, _tf32)
        outputs = list(node.output)
        chains = []
        for position, name in enumerate(outputs):
            if name in produced:
                outputs[position] = f"{name}__fake_fp32"
                chains += round_trip(outputs[position], name)
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        del copy.input[:]
        copy.input.extend(inputs)
        del copy.output[:]
        copy.output.extend(outputs)
        nodes += [copy, *chains]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    return proto.SerializeToString()


def _session(onnx_bytes: bytes):
    import onnx
    import onnxruntime

    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load_from_string(onnx_bytes).graph.initializer):
        onnx_bytes = _computable(onnx_bytes)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def _wait_for_gate() -> None:
    gate = os.environ.get("FAKE_TRT_BUILD_GATE")
    deadline = time.monotonic() + 60
    while gate and not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise RuntimeError("fake tensorrt: the build gate never opened")
        time.sleep(0.02)


def _precision(network: INetworkDefinition, config: IBuilderConfig) -> str | None:
    """What the engine computes in; None (after an error message) for a combination TensorRT refuses."""
    flags = config._flags
    if network._strongly_typed:
        weak = [f.name for f in flags if f.name in ("FP16", "INT8")]
        if weak:
            _report(_Severity.ERROR, f"[builderConfig] Error Code 3: API Usage Error (BuilderFlag::k{weak[0]} "
                    "is not allowed for a strongly typed network: its types decide the precision)")
            return None
        return "int8" if network._qdq else "fp16" if network._fp16 else "fp32"
    if network._qdq and getattr(BuilderFlag, "INT8", None) not in flags:
        _report(_Severity.ERROR, "[network.cpp::validate] Error Code 4: Internal Error (Int8 precision has been set "
                "for a layer or layer output, but int8 is not configured in the builder)")
        return None
    if network._qdq:
        return "int8"
    return "fp16" if getattr(BuilderFlag, "FP16", None) in flags else "fp32"


class Builder:
    def __init__(self, logger) -> None:
        _construct("Builder")
        _use_logger(logger, self)
        STATS["builder"] += 1

    if _MAJOR < 11:
        @property
        def platform_has_fast_fp16(self) -> bool:
            return os.environ.get("FAKE_FAST_FP16", "1") == "1"

    @property
    def num_DLA_cores(self) -> int:
        return int(os.environ.get("FAKE_DLA_CORES", "0"))

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        known = 0
        for flag in NetworkDefinitionCreationFlag:
            known |= 1 << int(flag)
        if flags & ~known:
            raise ValueError(f"fake tensorrt {__version__}: unknown network creation flags {flags:#x}")
        if _MAJOR >= 10 and flags & 1:
            _report(_Severity.WARNING, "NetworkDefinitionCreationFlag::kEXPLICIT_BATCH is deprecated and has no "
                    "effect")
        return INetworkDefinition(self, flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig(self)

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def _error(self, message: str) -> None:
        _report(_Severity.ERROR, message)

    def _progress(self, config: IBuilderConfig) -> bool:
        monitor = getattr(config, "progress_monitor", None)
        if monitor is None:
            return True
        monitor.phase_start("Building engine", None, 2)
        for step in range(2):
            monitor.phase_start("Tactic selection", "Building engine", 3)
            for inner in range(3):
                if not monitor.step_complete("Tactic selection", inner):
                    monitor.phase_finish("Tactic selection")
                    monitor.phase_finish("Building engine")
                    return False
            monitor.phase_finish("Tactic selection")
            if not monitor.step_complete("Building engine", step):
                monitor.phase_finish("Building engine")
                return False
        monitor.phase_finish("Building engine")
        return True

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None:
        context = _cuda.current("build_serialized_network")
        if network._builder is not self or config._builder is not self:
            raise ValueError("network and config must come from this builder")
        if network._onnx is None or not network._outputs:
            self._error("Network must have at least one output (was the ONNX parsed?)")
            return None
        log_path = os.environ.get("FAKE_TRT_BUILD_LOG")
        if log_path:
            with open(log_path, "a") as stream:
                stream.write(f"{os.getpid()} build\n")
        _wait_for_gate()
        if os.environ.get("FAKE_TRT_BUILD_FAIL"):
            self._error("fake: out of memory while building the engine")
            return None
        precision = _precision(network, config)
        if precision is None:
            return None
        inputs = []
        for tensor in network._inputs:
            profile = None
            if any(d < 0 for d in tensor.shape):
                shapes = [p.get_shape(tensor.name) for p in config._profiles if p.get_shape(tensor.name)]
                if not shapes:
                    self._error(f"Network has dynamic or shape inputs, but no optimization profile has been "
                                f"defined (input {tensor.name})")
                    return None
                profile = [list(s) for s in shapes[0]]
                fixed = zip(tensor.shape, profile[0], profile[2], strict=False)
                if len(profile[0]) != len(tensor.shape) or any(d >= 0 and not lo == hi == d for d, lo, hi in fixed):
                    self._error(f"the optimization profile {profile} of {tensor.name} does not fit its shape "
                                f"{tuple(tensor.shape)}")
                    return None
            inputs.append({"name": tensor.name, "shape": list(tensor.shape), "profile": profile,
                           "dtype": tensor.dtype.name})
        dla_core = -1
        if config.default_device_type == DeviceType.DLA:
            if not 0 <= config.DLA_core < self.num_DLA_cores:
                self._error(f"DLA core {config.DLA_core} does not exist")
                return None
            if BuilderFlag.GPU_FALLBACK not in config._flags:
                self._error("some layers cannot run on the DLA and GPU_FALLBACK is not set")
                return None
            if precision == "fp32":
                self._error("the DLA runs FP16 or INT8 layers only; every layer fell back to the GPU")
            dla_core = config.DLA_core
        if not self._progress(config):
            self._error("build cancelled by the progress monitor")
            return None
        outputs = self._outputs(network, inputs)
        device = context.device
        numerics = self._numerics(network, config, precision, device.compute_capability())
        if numerics is None:
            return None
        header = {"version": __version__, "gpu": device.name(), "cc": list(device.compute_capability()),
                  "precision": precision, "strongly_typed": network._strongly_typed, "dla_core": dla_core,
                  "workspace": config.get_memory_pool_limit(MemoryPoolType.WORKSPACE),
                  "inputs": inputs, "outputs": outputs, "numerics": numerics, "onnx_size": len(network._onnx)}
        text = json.dumps(header).encode()
        STATS["build"] += 1
        return IHostMemory(MAGIC + struct.pack("<I", len(text)) + text + network._onnx)

    def _numerics(self, network: INetworkDefinition, config: IBuilderConfig, precision: str,
                  capability: tuple[int, int]) -> dict | None:
        """Where the engine rounds (see the module docstring): float tensors each FP16 layer reads
        (``half_consumed``, by node), float tensors stored in FP16 (``half_produced``), and the MatMul/Gemm
        nodes whose constant operands TF32 rounds (``tf32``). None, after an error, for output types that
        TensorRT cannot convert."""
        flags = config._flags
        constrained = any(getattr(BuilderFlag, name, None) in flags
                          for name in ("OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"))
        constraints = [layer for layer in network._layers if layer.precision_is_set or layer._output_types]
        if constraints and not constrained:
            _report(_Severity.WARNING, f"{len(constraints)} layer(s) have precision constraints, but neither "
                    "OBEY_PRECISION_CONSTRAINTS nor PREFER_PRECISION_CONSTRAINTS is set: they are ignored")
        floats = (DataType.FLOAT, DataType.HALF)
        for layer in constraints:
            for index, dtype in layer._output_types.items():
                own = layer._outputs[index].dtype
                if dtype != own and not (dtype in floats and own in floats):
                    self._error(f"layer {layer.name}: output {index} is {own.name}, and set_output_type asks for "
                                f"{dtype.name}, a conversion it cannot make")
                    return None
        half = precision == "fp16" and not network._strongly_typed
        float_tensors = {t.name for t in network._inputs if t.dtype == DataType.FLOAT}
        float_tensors |= {t.name for layer in network._layers for t in layer._outputs if t.dtype == DataType.FLOAT}
        consumed: dict[str, list[str]] = {}
        produced: list[str] = []
        computing_fp32 = set()
        for layer in network._layers:
            pinned = constrained and layer._precision == DataType.FLOAT
            float_outputs = [(i, t.name) for i, t in enumerate(layer._outputs) if t.dtype == DataType.FLOAT]
            if not half:
                computing_fp32.add(layer._node)
                continue
            if pinned:
                computing_fp32.add(layer._node)
            elif layer._node is not None:
                consumed[str(layer._node)] = [t.name for t in layer._inputs
                                              if t is not None and t.name in float_tensors]
            kept = {i for i, dtype in layer._output_types.items() if constrained and dtype == DataType.FLOAT}
            produced += [name for i, name in float_outputs if not (pinned and i in kept)]
        tf32 = []
        if BuilderFlag.TF32 in flags and tuple(capability) >= (8, 0):
            import onnx

            ops = [node.op_type for node in onnx.load_from_string(network._onnx).graph.node]
            tf32 = [i for i, op in enumerate(ops) if op in ("MatMul", "Gemm") and i in computing_fp32]
        return {"half_consumed": consumed, "half_produced": produced, "tf32": tf32}

    @staticmethod
    def _outputs(network: INetworkDefinition, inputs: list[dict]) -> list[dict]:
        """Output shapes: computed at the profile's min and opt shapes; a dimension that differs is dynamic
        (-1 in the engine) and follows the input dimension that changes with it."""
        session = _session(network._onnx)

        def run(which: int) -> list[np.ndarray]:
            feeds = {i["name"]: np.zeros(i["profile"][which] if i["profile"] else i["shape"],
                                         _NUMPY[DataType[i["dtype"]]]) for i in inputs}
            return session.run(None, feeds)

        at_min = run(0)
        at_opt = run(1) if any(i["profile"] and i["profile"][0] != i["profile"][1] for i in inputs) else at_min
        outputs = []
        for tensor, low, mid in zip(network._outputs, at_min, at_opt, strict=True):
            shape, follows = [], []
            for a, b in zip(low.shape, mid.shape, strict=True):
                source = None
                if a != b:
                    source = next(([i["name"], k] for i in inputs if i["profile"] for k in range(len(i["shape"]))
                                   if i["shape"][k] < 0 and i["profile"][0][k] == a and i["profile"][1][k] == b),
                                  None)
                    if source is None:
                        raise RuntimeError("fake tensorrt: an output dimension the fake cannot follow")
                shape.append(-1 if source else int(a))
                follows.append(source)
            outputs.append({"name": tensor.name, "shape": shape, "follows": follows, "dtype": tensor.dtype.name})
        forced = os.environ.get("FAKE_TRT_OUTPUT_DTYPE")  # e.g. BF16: an engine whose output numpy cannot hold
        if forced:
            outputs[0]["dtype"] = forced
        return outputs


def read_header(data: bytes) -> dict | None:
    """The build description inside a fake serialized engine (tests use it too); None for garbage."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        return None
    (size,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    try:
        header = json.loads(data[start:start + size])
    except ValueError:
        return None
    if not isinstance(header, dict) or len(data) != start + size + header.get("onnx_size", -1):
        return None
    header["onnx"] = data[start + size:]
    return header


# -- runtime ---------------------------------------------------------------------------------------
class Runtime:
    def __init__(self, logger) -> None:
        _construct("Runtime")
        _use_logger(logger, self)
        self._engines: weakref.WeakSet = weakref.WeakSet()
        self._dla_core = -1
        STATS["runtime"] += 1

    @property
    def num_DLA_cores(self) -> int:
        return int(os.environ.get("FAKE_DLA_CORES", "0"))

    @property
    def DLA_core(self) -> int:
        return self._dla_core

    @DLA_core.setter
    def DLA_core(self, core: int) -> None:
        if not 0 <= core < self.num_DLA_cores:  # the real runtime takes it, and fails later in odd ways
            VIOLATIONS.append(f"Runtime.DLA_core set to {core}, but this device has {self.num_DLA_cores} DLA "
                              "cores; check runtime.num_DLA_cores first")
        self._dla_core = core

    def deserialize_cuda_engine(self, serialized) -> ICudaEngine | None:
        context = _cuda.current("deserialize_cuda_engine")
        header = read_header(memoryview(serialized).tobytes())
        if header is None:
            _report(_Severity.ERROR, "1: [runtime.cpp::parsePlan] Error Code 1: Serialization "
                    "(Serialization assertion plan->header.magicTag == rt::kPLAN_MAGIC_TAG failed.)")
            return None
        if header["version"] != __version__:
            _report(_Severity.ERROR, "The engine plan file is not compatible with this version of "
                    f"TensorRT, expecting library version {__version__} got {header['version']}")
            return None
        if tuple(header["cc"]) != context.device.compute_capability():
            _report(_Severity.ERROR, "The engine plan file is generated on an incompatible device")
            return None
        if header["dla_core"] >= 0 and self._dla_core < 0:
            _report(_Severity.ERROR, "the engine runs on the DLA, but Runtime.DLA_core is not set")
            return None
        if os.environ.get("FAKE_TRT_DESERIALIZE_OOM"):
            _report(_Severity.ERROR, "1: [defaultAllocator.cpp::allocate::20] Error Code 1: Cuda Runtime "
                    "(out of memory)")
            return None
        STATS["deserialize"] += 1
        engine = ICudaEngine(self, header, context)
        self._engines.add(engine)
        return engine

    def __del__(self) -> None:
        try:
            if len(self._engines):
                VIOLATIONS.append("Runtime destroyed before the engines it deserialized")
        except Exception:
            pass


class ICudaEngine:
    def __init__(self, runtime: Runtime, header: dict, cuda_context) -> None:
        self._runtime = weakref.ref(runtime)
        self._header = header
        self._cuda_context = cuda_context
        self._contexts: weakref.WeakSet = weakref.WeakSet()
        self._session = None
        self._tensors = {t["name"]: dict(t, mode=TensorIOMode.INPUT) for t in header["inputs"]}
        self._tensors.update({t["name"]: dict(t, mode=TensorIOMode.OUTPUT) for t in header["outputs"]})
        self._names = list(self._tensors)

    def _check(self, what: str) -> None:
        if self._runtime() is None:
            raise RuntimeError(f"{what}: the engine's Runtime has been destroyed (a runtime must outlive its engines)")

    def _tensor(self, name: str, what: str) -> dict:
        self._check(what)
        if name not in self._tensors:
            raise RuntimeError(f"{what}: the engine has no tensor named '{name}' (it has {self._names})")
        return self._tensors[name]

    @property
    def num_io_tensors(self) -> int:
        self._check("num_io_tensors")
        return len(self._names)

    @property
    def num_optimization_profiles(self) -> int:
        return 1

    def get_tensor_name(self, index: int) -> str:
        self._check("get_tensor_name")
        if not 0 <= index < len(self._names):
            raise IndexError(f"get_tensor_name: index {index} out of range")
        return self._names[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        self._check("get_tensor_mode")
        tensor = self._tensors.get(name)
        return TensorIOMode.NONE if tensor is None else tensor["mode"]

    def get_tensor_shape(self, name: str) -> Dims:
        return Dims(self._tensor(name, "get_tensor_shape")["shape"])

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType[self._tensor(name, "get_tensor_dtype")["dtype"]]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Dims]:
        tensor = self._tensor(name, "get_tensor_profile_shape")
        if tensor["mode"] != TensorIOMode.INPUT or profile_index != 0:
            raise RuntimeError(f"get_tensor_profile_shape: no profile {profile_index} for '{name}'")
        return [Dims(s) for s in (tensor["profile"] or [tensor["shape"]] * 3)]

    def create_execution_context(self) -> IExecutionContext:
        if _cuda.current("create_execution_context") is not self._cuda_context:
            raise _cuda.LogicError("create_execution_context: the engine belongs to another CUDA context")
        self._check("create_execution_context")
        STATS["execution_context"] += 1
        context = IExecutionContext(self)
        self._contexts.add(context)
        return context

    def run(self, feeds: dict) -> list[np.ndarray]:
        """What the GPU would compute: the ONNX, on the CPU (weakly typed fp16 engines round through float16;
        a strongly typed network computes in its own types, Q/DQ included)."""
        if self._session is None:
            self._session = _session(_as_computed(self._header["onnx"], self._header["numerics"]))
        names = [t["name"] for t in self._header["outputs"]]
        return self._session.run(names, feeds)

    def __del__(self) -> None:
        try:
            if len(self._contexts):
                VIOLATIONS.append("ICudaEngine destroyed while execution contexts still use it")
            if not _cuda.has_current():
                VIOLATIONS.append("ICudaEngine destroyed with no CUDA context current")
        except Exception:
            pass


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self._engine = weakref.ref(engine)  # the caller keeps the engine alive, as TensorRT requires
        self._addresses: dict[str, int] = {}
        self._input_shapes: dict[str, tuple] = {}

    def _live_engine(self, what: str) -> ICudaEngine:
        engine = self._engine()
        if engine is None:
            raise RuntimeError(f"{what}: the execution context's engine has been destroyed "
                               "(keep the engine alive as long as its contexts)")
        engine._check(what)
        return engine

    def _error(self, message: str) -> bool:
        _report(_Severity.ERROR, message)
        return False

    def set_tensor_address(self, name: str, memory: int) -> bool:
        engine = self._live_engine("set_tensor_address")
        _cuda.current("set_tensor_address")
        if name not in engine._tensors:
            return self._error(f"3: setTensorAddress given invalid tensor name: {name}")
        if not isinstance(memory, int):
            raise TypeError("set_tensor_address needs an int device pointer")
        self._addresses[name] = memory
        return True

    def set_input_shape(self, name: str, shape) -> bool:
        engine = self._live_engine("set_input_shape")
        tensor = engine._tensors.get(name)
        shape = tuple(int(d) for d in shape)
        if tensor is None or tensor["mode"] != TensorIOMode.INPUT:
            return self._error(f"3: setInputShape given invalid input tensor name: {name}")
        low, high = (tensor["profile"][0], tensor["profile"][2]) if tensor["profile"] else (tensor["shape"],) * 2
        if len(shape) != len(low) or not all(a <= d <= b for d, a, b in zip(shape, low, high, strict=False)):
            return self._error(f"3: [executionContext.cpp::setInputShape] Error Code 3: API Usage Error (Given "
                               f"dimensions {shape} for {name} are outside the optimization profile "
                               f"[{tuple(low)}, {tuple(high)}])")
        self._input_shapes[name] = shape
        return True

    def _shape(self, engine: ICudaEngine, name: str) -> tuple:
        tensor = engine._tensors[name]
        if tensor["mode"] == TensorIOMode.INPUT:
            return self._input_shapes.get(name, tuple(tensor["shape"]))
        shape = []
        for dim, source in zip(tensor["shape"], tensor["follows"], strict=True):
            if source is not None and source[0] in self._input_shapes:
                dim = self._input_shapes[source[0]][source[1]]
            shape.append(dim)
        return tuple(shape)

    def get_tensor_shape(self, name: str) -> Dims:
        engine = self._live_engine("get_tensor_shape")
        engine._tensor(name, "get_tensor_shape")
        return Dims(self._shape(engine, name))

    def execute_async_v3(self, stream_handle: int) -> bool:
        what = "execute_async_v3"
        engine = self._live_engine(what)
        if _cuda.current(what) is not engine._cuda_context:
            raise _cuda.LogicError(f"{what}: the engine belongs to another CUDA context")
        stream = _cuda.stream_by_handle(stream_handle, what)
        for name in engine._names:
            if name not in self._addresses:
                return self._error(f"3: [executionContext.cpp::enqueueV3] Error Code 3: API Usage Error "
                                   f"(Neither address nor allocator is set for tensor {name}; call "
                                   "setTensorAddress for every input and output)")
        blocks = {}
        for name in engine._names:
            shape = self._shape(engine, name)
            if any(d < 0 for d in shape):
                return self._error(f"3: input shapes not specified for a dynamic tensor ({name}); call "
                                   "set_input_shape")
            dtype = np.dtype(nptype(DataType[engine._tensors[name]["dtype"]]))
            blocks[name] = (_cuda.block_at(self._addresses[name], int(np.prod(shape)) * dtype.itemsize, what),
                            shape, dtype)
        STATS["execute"] += 1

        def kernel() -> None:  # runs when the stream does, on the device memory as it is then
            feeds = {}
            for name in engine._names:
                block, shape, dtype = blocks[name]
                if engine._tensors[name]["mode"] == TensorIOMode.INPUT:
                    nbytes = int(np.prod(shape)) * dtype.itemsize
                    feeds[name] = np.frombuffer(bytes(block.data[:nbytes]), dtype).reshape(shape)
            outputs = engine.run(feeds)
            for tensor, value in zip(engine._header["outputs"], outputs, strict=True):
                block, shape, dtype = blocks[tensor["name"]]
                if tuple(value.shape) != tuple(shape):
                    raise RuntimeError(f"fake: {tensor['name']} computed {value.shape}, the context said {shape}")
                raw = np.ascontiguousarray(value, dtype).tobytes()
                block.data[: len(raw)] = raw

        stream.enqueue(kernel, what)
        return True

    def __del__(self) -> None:
        try:
            if not _cuda.has_current():
                VIOLATIONS.append("IExecutionContext destroyed with no CUDA context current")
        except Exception:
            pass
