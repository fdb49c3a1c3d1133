"""What TensorRT's ONNX parser is handed: the model's ONNX with a dynamic batch, its FP16 copy, or
its QDQ model in the form TensorRT's explicit quantisation accepts.

Both are written with the ``onnx`` package only (no other tool). The batch rewrite happens in
memory for each build; the FP16 copy is what "fp16" means on TensorRT versions without weak typing
(11 and later: no ``BuilderFlag.FP16``): a strongly typed network whose weights and activations are
float16, with the ``input_0``/``output_0`` interface kept float32 by casts, so the backend and its
buffers do not change. The copy is cached beside the engines, keyed by the model's digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from ..core.errors import BackendError
from ..files import exclusive_lock, write_atomic

log = logging.getLogger(__name__)

FP16_FORMAT = 1  # bump when the conversion changes: older copies are then never read
FP16_MAX = 65504.0
BATCH_DIM = "batch"
# Inputs that ONNX requires to stay float32 whatever the data type (scales and regions of interest).
FLOAT32_INPUTS = {"Resize": (1, 2), "Upsample": (1,)}
FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT / FLOAT16


def external_data_files(onnx_path: Path) -> list[Path]:
    """The external-data files an ONNX model's tensors live in (none for the published models)."""
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    names = set()
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            names.update(entry.value for entry in tensor.external_data if entry.key == "location")
    return [onnx_path.parent / name for name in sorted(names)]


def _set_batch_dynamic(value_info) -> None:
    dims = value_info.type.tensor_type.shape.dim
    if len(dims):
        dims[0].Clear()
        dims[0].dim_param = BATCH_DIM


def _hard_coded_batch(proto) -> str | None:
    """A Reshape whose constant target shape pins the batch to 1 (the graph would then refuse N > 1)."""
    from onnx import numpy_helper

    constants = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = attribute.t
    for node in proto.graph.node:
        if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in constants:
            shape = numpy_helper.to_array(constants[node.input[1]])
            if shape.size and int(shape.reshape(-1)[0]) == 1:
                return node.name or node.output[0]
    return None


def with_dynamic_batch(data: bytes, input_blob: str, output_blob: str, where: Path) -> bytes:
    """``data`` (a serialized ONNX) with a symbolic batch dimension on its input and output, so one
    engine serves 1..N frames per call. External data stays where it is (the parser is told the path)."""
    import onnx

    proto = onnx.load_from_string(data)
    culprit = _hard_coded_batch(proto)
    if culprit is not None:
        raise BackendError(f"{where}: node '{culprit}' reshapes to a fixed batch of 1, so the model cannot run "
                           "several frames at once; use max_batch 1 or re-export it with a dynamic batch")
    for value in proto.graph.input:
        if value.name == input_blob:
            _set_batch_dynamic(value)
    for value in proto.graph.output:
        if value.name == output_blob:
            _set_batch_dynamic(value)
    del proto.graph.value_info[:]  # shape hints that still say batch 1
    return proto.SerializeToString()


QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def _fold_int32_dequantize(proto) -> int:
    """Replace each DequantizeLinear of a constant int32 tensor (ONNX Runtime's quantised biases) by the
    float32 values it computes: TensorRT dequantizes 8-bit tensors only. The number folded."""
    from onnx import numpy_helper

    graph = proto.graph
    constants = {t.name: t for t in graph.initializer}
    folded, nodes = [], []
    for node in graph.node:
        source = constants.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if source is None or source.data_type != 6:  # 6: onnx.TensorProto.INT32
            nodes.append(node)
            continue
        values = numpy_helper.to_array(source).astype(np.int64)
        scale = numpy_helper.to_array(constants[node.input[1]]).astype(np.float64)
        zero = numpy_helper.to_array(constants[node.input[2]]).astype(np.int64) \
            if len(node.input) > 2 and node.input[2] else np.zeros_like(scale, np.int64)
        if scale.ndim == 1 and values.ndim > 1:  # per-axis
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % values.ndim
            shape = [1] * values.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        folded.append(numpy_helper.from_array(((values - zero) * scale).astype(np.float32), node.output[0]))
    if folded:
        del graph.node[:]
        graph.node.extend(nodes)
        used = {name for node in nodes for name in node.input}
        kept = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(kept + folded)
    return len(folded)


def _asymmetric(proto) -> str:
    """'' when every Q/DQ zero point is int8 and zero (what TensorRT accepts); else what is wrong."""
    from onnx import numpy_helper

    constants = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type in QDQ_OPS and len(node.input) > 2 and node.input[2] in constants:
            values = numpy_helper.to_array(constants[node.input[2]])
            if values.dtype != np.int8:
                return f"{values.dtype} zero points"
            if values.any():
                return "non-zero (asymmetric) zero points"
    return ""


def qdq_for_tensorrt(path: Path) -> bytes:
    """The QDQ model at ``path`` as TensorRT takes it: constant int32 (bias) dequantisation folded to
    float32, every remaining Q/DQ checked to be symmetric INT8; a BackendError that says why otherwise."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    _fold_int32_dequantize(proto)
    wrong = _asymmetric(proto)
    if wrong:
        raise BackendError(f"the INT8 model {path} has {wrong}, which TensorRT cannot parse: TensorRT takes "
                           "symmetric INT8 Q/DQ only (int8 zero points, all 0); make it with 'segnet-ros quantize "
                           "--target tensorrt', or use precision fp16 on TensorRT")
    return proto.SerializeToString()


def _to_half(tensor) -> None:
    """Turn a float32 TensorProto into float16 in place (values beyond float16's range saturate)."""
    from onnx import numpy_helper

    values = np.clip(numpy_helper.to_array(tensor), -FP16_MAX, FP16_MAX).astype(np.float16)
    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))


def fp16_model(proto):
    """The float16 copy of ``proto`` (a loaded ModelProto, changed in place and returned): float32
    weights, constants and casts become float16; each float32 graph input is cast to float16 where
    it enters, each float32 output is cast back to float32 where it leaves."""
    from onnx import helper

    graph = proto.graph
    initializers = {t.name for t in graph.initializer}
    keep = {node.input[i] for node in graph.node for i in FLOAT32_INPUTS.get(node.op_type, ())
            if i < len(node.input)}
    for tensor in graph.initializer:
        if tensor.data_type == FLOAT and tensor.name not in keep:
            _to_half(tensor)
    for node in graph.node:
        for attribute in node.attribute:
            if node.op_type in ("Constant", "ConstantOfShape") and attribute.name == "value" \
                    and attribute.t.data_type == FLOAT and node.output[0] not in keep:
                _to_half(attribute.t)
            elif node.op_type == "Cast" and attribute.name == "to" and attribute.i == FLOAT:
                attribute.i = FLOAT16
    entering, leaving = [], []
    inputs = [v.name for v in graph.input if v.name not in initializers and v.type.tensor_type.elem_type == FLOAT]
    for name in inputs:
        half = f"{name}__fp16"
        for node in graph.node:
            node.input[:] = [half if x == name else x for x in node.input]
        entering.append(helper.make_node("Cast", [name], [half], name=f"{name}__to_fp16", to=FLOAT16))
    outputs = [v.name for v in graph.output if v.type.tensor_type.elem_type == FLOAT and v.name not in inputs]
    for name in outputs:
        half = f"{name}__fp16"
        for node in graph.node:
            node.output[:] = [half if x == name else x for x in node.output]
            node.input[:] = [half if x == name else x for x in node.input]
        leaving.append(helper.make_node("Cast", [half], [name], name=f"{name}__to_fp32", to=FLOAT))
    nodes = entering + list(graph.node) + leaving
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # float32 type hints for tensors that are float16 now
    return proto


def fp16_bytes(onnx_path: Path) -> bytes:
    """The serialized FP16 copy of the model at ``onnx_path`` (external data read in)."""
    import onnx

    return fp16_model(onnx.load(str(onnx_path))).SerializeToString()


def fp16_copy(onnx_path: Path, model_digest: str, directory: Path) -> tuple[Path, bytes | None]:
    """The FP16 copy of ``onnx_path``: ``(cached file, None)``, made under a lock on first use and
    written atomically; or, where ``directory`` is not writable, ``(its would-be path, the bytes)``
    with a warning, so the build still runs, from memory.

    ``model_digest`` is the model's digest (ONNX and external data); a copy whose bytes no longer
    match its note is made again."""
    folder = directory / "onnx-fp16"
    name = hashlib.sha256(f"{FP16_FORMAT}:{model_digest}".encode()).hexdigest()[:24]
    path = folder / f"{onnx_path.stem}-fp16-{name}.onnx"
    note_path = path.with_suffix(".json")
    if _intact(path, note_path):
        return path, None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(path.with_name(path.name + ".lock"),
                            f"another process is writing the FP16 copy {path}; waiting for it"):
            if _intact(path, note_path):
                return path, None
            log.info("writing the FP16 copy of %s for TensorRT's strongly typed build: %s", onnx_path, path)
            data = fp16_bytes(onnx_path)
            write_atomic(path, data)
            note = {"source": str(onnx_path), "model_digest": model_digest, "format": FP16_FORMAT,
                    "sha256": hashlib.sha256(data).hexdigest()}
            write_atomic(note_path, (json.dumps(note, indent=2) + "\n").encode())
    except OSError as exc:
        log.warning("cannot store the FP16 copy of %s in %s (%s); making it in memory for this build",
                    onnx_path, folder, exc.strerror or exc)
        return path, fp16_bytes(onnx_path)
    return path, None


def _intact(path: Path, note_path: Path) -> bool:
    with contextlib.suppress(OSError, ValueError):
        note = json.loads(note_path.read_text())
        return hashlib.sha256(path.read_bytes()).hexdigest() == note.get("sha256")
    return False
