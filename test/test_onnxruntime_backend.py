"""The ONNX Runtime backend refuses, at creation, a model that cannot work on any frame."""

from __future__ import annotations

import onnx
import pytest

from segnet_ros.backends import create_backend
from segnet_ros.core.errors import BackendError
from segnet_ros.core.model import ModelFiles, load_model
from segnet_ros.core.refnet import write_reference_model


def test_declared_output_that_the_graph_does_not_compute_fails_at_creation(tmp_path):
    files = write_reference_model(tmp_path / "ref", 256, 128, 5)
    proto = onnx.load(str(files.onnx))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = 256, 512  # re-exported at 512x256; output still declared 8x4
    bad = tmp_path / "reexported.onnx"
    onnx.save(proto, str(bad))
    model = load_model(ModelFiles(onnx=bad, labels=files.labels))
    assert (model.grid_width, model.grid_height) == (8, 4)  # what the file declares
    with pytest.raises(BackendError, match=r"declares output \[1, 5, 4, 8\] but computes \[1, 5, 8, 16\]"):
        create_backend("onnxruntime", model)


def test_a_consistent_model_is_accepted(tmp_path):
    model = load_model(write_reference_model(tmp_path / "ok", 256, 128, 5))
    assert create_backend("onnxruntime", model).device == "cpu"
