"""What TensorRT's parser is handed: the dynamic-batch rewrite and the FP16 copy (onnx only, no fakes)."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from segnet_ros.backends.onnx_rewrite import fp16_copy, fp16_model, qdq_for_tensorrt, with_dynamic_batch
from segnet_ros.core.errors import BackendError


def io_types(proto):
    return ([v.type.tensor_type.elem_type for v in proto.graph.input],
            [v.type.tensor_type.elem_type for v in proto.graph.output])


def test_fp16_copy_keeps_a_float32_interface(reference_files):
    proto = fp16_model(onnx.load(str(reference_files.onnx)))
    assert io_types(proto) == ([TensorProto.FLOAT], [TensorProto.FLOAT])
    assert {t.data_type for t in proto.graph.initializer} == {TensorProto.FLOAT16}
    first, last = proto.graph.node[0], proto.graph.node[-1]
    assert (first.op_type, first.input[0], last.op_type, last.output[0]) == ("Cast", "input_0", "Cast", "output_0")
    assert {a.i for a in first.attribute} == {TensorProto.FLOAT16} and {a.i for a in last.attribute} == {
        TensorProto.FLOAT}
    onnx.checker.check_model(proto)
    assert not any(n.input[0] == "input_0" for n in proto.graph.node[1:])  # nothing reads the float32 input


def test_fp16_copy_saturates_and_keeps_resize_scales_float32():
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["m"]), helper.make_node("Resize", ["m", "", "scales"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])],
        [numpy_helper.from_array(np.array([1e6], np.float32), "w"),
         numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")])
    proto = fp16_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    weights = {t.name: t for t in proto.graph.initializer}
    assert weights["scales"].data_type == TensorProto.FLOAT  # ONNX requires float32 scales
    assert numpy_helper.to_array(weights["w"]).tolist() == [65504.0]  # not inf


def test_fp16_copy_is_cached(reference_files, tmp_path):
    path, data = fp16_copy(reference_files.onnx, "d" * 64, tmp_path)
    assert data is None and path.parent == tmp_path / "onnx-fp16"
    assert json.loads(path.with_suffix(".json").read_text())["model_digest"] == "d" * 64
    stamp = path.stat().st_mtime_ns
    assert fp16_copy(reference_files.onnx, "d" * 64, tmp_path) == (path, None) and path.stat().st_mtime_ns == stamp
    path.write_bytes(b"damaged")
    again, _ = fp16_copy(reference_files.onnx, "d" * 64, tmp_path)
    assert again == path and onnx.load(str(path)).graph.initializer[0].data_type == TensorProto.FLOAT16
    blocker = tmp_path / "file"
    blocker.write_text("")
    _, in_memory = fp16_copy(reference_files.onnx, "d" * 64, blocker)  # unwritable: built in memory
    assert in_memory and onnx.load_from_string(in_memory).graph.node[0].op_type == "Cast"


def test_dynamic_batch_rewrite(reference_files):
    proto = onnx.load_from_string(with_dynamic_batch(reference_files.onnx.read_bytes(), "input_0", "output_0",
                                                     reference_files.onnx))
    for value, frame in ((proto.graph.input[0], [3, 256, 512]), (proto.graph.output[0], [21, 8, 16])):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == frame


def test_a_reshape_that_pins_the_batch_is_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="flatten")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12])],
        [numpy_helper.from_array(np.array([1, 12], np.int64), "shape")])
    data = helper.make_model(graph).SerializeToString()
    with pytest.raises(BackendError, match="node 'flatten' reshapes to a fixed batch of 1"):
        with_dynamic_batch(data, "x", "y", tmp_path / "m.onnx")


def test_qdq_for_tensorrt_folds_int32_biases_and_refuses_asymmetric_models(oracle_dir, tmp_path):
    """ONNX Runtime quantises biases to int32 (TensorRT dequantizes 8-bit tensors only): folded to the same
    float32 values; uint8/asymmetric Q/DQ cannot be made symmetric and is refused."""
    import onnxruntime

    from tensorrt_helpers import write_qdq

    calibration = [np.random.default_rng(i).standard_normal((1, 3, 128, 256)).astype(np.float32) for i in range(3)]
    symmetric = write_qdq(oracle_dir / "fcn_resnet18.onnx", tmp_path / "sym.onnx", calibration)
    assert any(t.data_type == TensorProto.INT32 for t in onnx.load(str(symmetric)).graph.initializer)
    folded = onnx.load_from_string(qdq_for_tensorrt(symmetric))
    assert not any(t.data_type == TensorProto.INT32 for t in folded.graph.initializer)
    runs = [onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"input_0": x})[0]
            for model in (str(symmetric), folded.SerializeToString()) for x in calibration[:1]]
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5, atol=1e-5)
    asymmetric = write_qdq(oracle_dir / "fcn_resnet18.onnx", tmp_path / "asym.onnx", calibration, symmetric=False)
    with pytest.raises(BackendError, match="uint8 zero points, which TensorRT cannot parse"):
        qdq_for_tensorrt(asymmetric)
