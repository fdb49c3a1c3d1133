import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from segnet_ros.core.model import load_model
from segnet_ros.core.refnet import build_reference_onnx, grid_size


@pytest.mark.parametrize("size,grid", [
    ((512, 256), (16, 8)), ((576, 320), (18, 10)), ((864, 480), (27, 15)), ((640, 360), (20, 12)),
    ((512, 400), (16, 13)), ((320, 320), (10, 10)), ((2048, 1024), (64, 32)),
])
def test_grid_sizes_match_the_published_models(size, grid):
    assert grid_size(*size) == grid


def test_topology_is_fcn_resnet18():
    proto = onnx.load_from_string(build_reference_onnx(96, 64, 5))
    ops = collections.Counter(node.op_type for node in proto.graph.node)
    # ResNet-18: stem conv + 16 block convs + 3 projections, then the FCN head's two convs
    assert ops["Conv"] == 1 + 16 + 3 + 2
    assert ops["BatchNormalization"] == 1 + 16 + 3 + 1
    assert ops["MaxPool"] == 1 and ops["Add"] == 8
    assert [i.name for i in proto.graph.input] == ["input_0"]
    assert [o.name for o in proto.graph.output] == ["output_0"]
    head = [n for n in proto.graph.node if n.op_type == "Conv"][-2:]
    weights = {i.name: i for i in proto.graph.initializer}
    assert list(weights[head[0].input[1]].dims) == [128, 512, 3, 3] and len(head[0].input) == 2  # no bias
    assert list(weights[head[1].input[1]].dims) == [5, 128, 1, 1] and len(head[1].input) == 3
    params = sum(int(np.prod(i.dims)) for i in proto.graph.initializer if "running" not in i.name)
    assert 11_700_000 < params < 11_800_000  # ResNet-18 trunk (11.2 M) + head (0.6 M)


def test_weights_are_deterministic():
    assert build_reference_onnx(64, 64, 3) == build_reference_onnx(64, 64, 3)
    assert build_reference_onnx(64, 64, 3) != build_reference_onnx(64, 64, 3, seed=1)


def test_runs_in_onnxruntime_with_the_declared_grid(reference_files):
    model = load_model(reference_files)
    assert model.output_shape == (1, 21, 8, 16) and model.name == "reference-512x256"
    session = ort.InferenceSession(str(reference_files.onnx), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 3, 256, 512)).astype(np.float32)
    (logits,) = session.run(["output_0"], {"input_0": x})
    assert logits.shape == (1, 21, 8, 16) and np.isfinite(logits).all()
    assert len(np.unique(logits.argmax(axis=1))) > 1  # not a constant answer
