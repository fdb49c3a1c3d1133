import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from segnet_ros.core.errors import ModelError
from segnet_ros.core.model import ModelFiles, load_model

from oracle import linear_oracle


def test_loads_oracle_geometry_and_classes(oracle_dir):
    model = load_model(ModelFiles.in_folder(oracle_dir))
    assert (model.input_width, model.input_height) == (256, 128)
    assert (model.grid_width, model.grid_height) == (8, 4)
    assert model.num_classes == 8 and model.classes.names[1] == "red"
    assert model.input_shape == (1, 3, 128, 256) and model.output_shape == (1, 8, 4, 8)


def test_missing_model(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        load_model(ModelFiles(tmp_path / "none.onnx"))


def test_corrupt_model(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07garbage" * 100)
    with pytest.raises(ModelError, match=r"bad.onnx: not a valid ONNX model"):
        load_model(ModelFiles(path))


def test_truncated_model(tmp_path, oracle_dir):
    data = (oracle_dir / "fcn_resnet18.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        load_model(ModelFiles(path))


def test_wrong_blob_names_list_the_real_ones(oracle_dir):
    with pytest.raises(ModelError, match=r"no input named 'data' \(the model has: input_0\)"):
        load_model(ModelFiles(oracle_dir / "fcn_resnet18.onnx", input_blob="data"))
    with pytest.raises(ModelError, match=r"no output named 'scores' \(the model has: output_0\)"):
        load_model(ModelFiles(oracle_dir / "fcn_resnet18.onnx", output_blob="scores"))


def test_custom_blob_names(tmp_path):
    path = linear_oracle(tmp_path / "m.onnx", 64, 64, np.eye(3), np.zeros(3), "image", "logits")
    model = load_model(ModelFiles(path, input_blob="image", output_blob="logits"))
    assert model.output_shape == (1, 3, 2, 2)


def _identity_model(path, in_shape, out_shape, elem=TensorProto.FLOAT):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input_0"], ["output_0"])], "g",
        [helper.make_tensor_value_info("input_0", elem, in_shape)],
        [helper.make_tensor_value_info("output_0", elem, out_shape)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.mark.parametrize("shape", [[1, 3, "h", 64], [1, 1, 64, 64], [2, 3, 64, 64], [3, 64, 64]])
def test_wrong_input_shape(tmp_path, shape):
    path = _identity_model(tmp_path / "m.onnx", shape, [1, 3, 2, 2])
    with pytest.raises(ModelError, match=r"expected \[1, 3, H, W\] with static H and W"):
        load_model(ModelFiles(path))


def test_wrong_output_shape(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input_0"], ["output_0"])], "g",
        [helper.make_tensor_value_info("input_0", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output_0", TensorProto.FLOAT, None)])
    path = tmp_path / "flat.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(ModelError, match=r"output 'output_0' has shape .*expected \[1, classes, grid_h, grid_w\]"):
        load_model(ModelFiles(path))


def test_output_shape_inferred_when_not_declared(tmp_path):
    path = linear_oracle(tmp_path / "m.onnx", 96, 64, np.eye(3), np.zeros(3))
    proto = onnx.load(str(path))
    proto.graph.output[0].type.tensor_type.ClearField("shape")
    onnx.save(proto, str(path))
    assert load_model(ModelFiles(path)).output_shape == (1, 3, 2, 3)


def test_too_many_classes(tmp_path):
    path = linear_oracle(tmp_path / "m.onnx", 64, 64, np.ones((300, 3)), np.zeros(300))
    with pytest.raises(ModelError, match="300 classes; at most 256"):
        load_model(ModelFiles(path))


def test_bad_colors_file_fails_load(oracle_dir, tmp_path):
    colors = tmp_path / "colors.txt"
    colors.write_text("0 0 0\nred\n")
    with pytest.raises(ModelError, match="colors.txt line 2"):
        load_model(ModelFiles(oracle_dir / "fcn_resnet18.onnx", colors=colors))
