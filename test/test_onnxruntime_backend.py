"""The ONNX Runtime backend refuses, at creation, a model that cannot work on any frame."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from segnet_ros.backends import create_backend
from segnet_ros.backends.base import BackendOptions
from segnet_ros.core.errors import BackendError
from segnet_ros.core.model import ModelFiles, load_model
from segnet_ros.core.refnet import write_reference_model


def test_declared_output_that_the_graph_does_not_compute_fails_at_creation(reexported_model):
    assert (reexported_model.grid_width, reexported_model.grid_height) == (8, 4)  # what the file declares
    with pytest.raises(BackendError, match=r"declares output \[1, 5, 4, 8\] but computes \[1, 5, 8, 16\]"):
        create_backend("onnxruntime", reexported_model)


def test_a_consistent_model_is_accepted(tmp_path):
    model = load_model(write_reference_model(tmp_path / "ok", 256, 128, 5))
    assert create_backend("onnxruntime", model).device == "cpu"


# -- precision ------------------------------------------------------------------------------
@pytest.mark.parametrize("precision, instead", [("fp16", "--backend tensorrt"), ("bf16", "--backend openvino")])
def test_fp16_and_bf16_are_refused_with_what_to_use_instead(oracle_dir, precision, instead):
    model = load_model(ModelFiles.in_folder(oracle_dir))
    with pytest.raises(BackendError, match=f"runs precision fp32 or int8, not {precision}; for {precision} use "
                                           f"{instead}"):
        create_backend("onnxruntime", model, BackendOptions(device="cpu", precision=precision))


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_auto_and_fp32_run_the_onnx_file(oracle_dir, precision):
    model = load_model(ModelFiles.in_folder(oracle_dir))
    backend = create_backend("onnxruntime", model, BackendOptions(device="cpu", precision=precision))
    assert (backend.precision, backend.model_path, backend.max_batch) == ("fp32", model.files.onnx, 1)


def test_int8_without_a_quantised_model_names_the_command(oracle_dir, tmp_path):
    model = load_model(ModelFiles(onnx=oracle_dir / "fcn_resnet18.onnx", input_blob="input_0"))
    with pytest.raises(BackendError) as raised:
        create_backend("onnxruntime", model, BackendOptions(device="cpu", precision="int8"))
    assert str(raised.value).endswith(f"with: segnet-ros quantize --model {model.files.onnx} FRAMES")


# -- batching -------------------------------------------------------------------------------
def _frames(rng, count: int, width: int, height: int) -> np.ndarray:
    return rng.standard_normal((count, 3, height, width)).astype(np.float32)


def test_a_batch_gives_what_each_frame_gives_alone_on_the_oracle(oracle_dir, rng):
    model = load_model(ModelFiles.in_folder(oracle_dir))
    single = create_backend("onnxruntime", model, BackendOptions(device="cpu"))
    batched = create_backend("onnxruntime", model, BackendOptions(device="cpu", max_batch=4))
    assert batched.max_batch == 4
    tensor = _frames(rng, 4, 256, 128)
    for count in (1, 3, 4):
        out = batched.run(tensor[:count])
        assert out.shape == (count, 8, 4, 8)
        for i in range(count):
            np.testing.assert_array_equal(out[i:i + 1], single.run(tensor[i:i + 1]))


def test_a_batch_matches_single_frames_on_the_reference_network(small_reference, rng):
    model = load_model(small_reference)
    single = create_backend("onnxruntime", model, BackendOptions(device="cpu"))
    batched = create_backend("onnxruntime", model, BackendOptions(device="cpu", max_batch=2))
    tensor = _frames(rng, 2, 256, 128)
    out = batched.run(tensor)
    for i in range(2):
        np.testing.assert_allclose(out[i:i + 1], single.run(tensor[i:i + 1]), rtol=1e-4, atol=1e-4)


def test_batches_beyond_max_batch_are_refused(oracle_dir, rng):
    model = load_model(ModelFiles.in_folder(oracle_dir))
    single = create_backend("onnxruntime", model, BackendOptions(device="cpu"))
    with pytest.raises(BackendError, match=r"input tensor \(2, 3, 128, 256\) float32; expected \(1, 3, 128, 256\)"):
        single.run(_frames(rng, 2, 256, 128))
    batched = create_backend("onnxruntime", model, BackendOptions(device="cpu", max_batch=2))
    with pytest.raises(BackendError, match=r"expected \(1..2, 3, 128, 256\) float32"):
        batched.run(_frames(rng, 3, 256, 128))


def _flattening_model(path, batch_dim: int):
    """Conv, then Reshape to [batch_dim, -1] and back: a graph whose Reshape may hard-code the batch."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("AveragePool", ["input_0"], ["p"], kernel_shape=[32, 32], strides=[32, 32]),
             helper.make_node("Conv", ["p", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Reshape", ["c", "flat"], ["f"]),
             helper.make_node("Reshape", ["f", "back"], ["output_0"])]
    graph = helper.make_graph(
        nodes, "flatten",
        [helper.make_tensor_value_info("input_0", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output_0", TensorProto.FLOAT, [1, 2, 2, 2])],
        [numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w"),
         numpy_helper.from_array(np.array([batch_dim, -1], np.int64), "flat"),
         numpy_helper.from_array(np.array([-1, 2, 2, 2], np.int64), "back")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return load_model(ModelFiles(onnx=path))


def test_a_reshape_that_hard_codes_the_batch_is_refused_for_batching(tmp_path, rng):
    fixed = _flattening_model(tmp_path / "fixed.onnx", 1)
    assert create_backend("onnxruntime", fixed, BackendOptions(device="cpu")).max_batch == 1  # batch 1 is fine
    with pytest.raises(BackendError, match=r"node '.*' reshapes to the fixed shape \[1, -1\], which hard-codes the "
                                           r"batch; .* use max_batch 1"):
        create_backend("onnxruntime", fixed, BackendOptions(device="cpu", max_batch=2))
    dynamic = _flattening_model(tmp_path / "dynamic.onnx", 0)  # 0 copies the input's batch
    backend = create_backend("onnxruntime", dynamic, BackendOptions(device="cpu", max_batch=2))
    assert backend.run(_frames(rng, 2, 64, 64)).shape == (2, 2, 2, 2)


# -- concurrent callers -----------------------------------------------------------------------
def test_callers_share_the_cores_and_a_thread_count_asked_for_wins(oracle_dir, monkeypatch):
    from segnet_ros.backends import base

    model = load_model(ModelFiles.in_folder(oracle_dir))
    monkeypatch.setattr(base, "usable_cores", lambda: 8)
    cases = ((BackendOptions(device="cpu", callers=2), 4), (BackendOptions(device="cpu", callers=16), 1),
             (BackendOptions(device="cpu", callers=2, threads=3), 3))
    for options, threads in cases:
        assert base.threads_per_caller(options) == threads
        backend = create_backend("onnxruntime", model, options)
        assert backend._session.get_session_options().intra_op_num_threads == threads
        assert backend.concurrent_runs
    assert base.threads_per_caller(BackendOptions(device="cpu")) == 0  # one caller: the runtime decides
    with pytest.raises(ValueError, match="callers must be >= 1"):
        BackendOptions(callers=0)


def test_concurrent_calls_give_what_one_call_gives(oracle_dir, rng):
    from concurrent.futures import ThreadPoolExecutor

    model = load_model(ModelFiles.in_folder(oracle_dir))
    backend = create_backend("onnxruntime", model, BackendOptions(device="cpu", callers=3))
    tensors = [rng.normal(size=model.input_shape).astype(np.float32) for _ in range(12)]
    alone = [backend.run(t).copy() for t in tensors]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda t: backend.run(t).copy(), tensors))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_threads_sleep_between_calls(oracle_dir):
    """ONNX Runtime's threads would spin after every call (a third of a 2-core node's CPU at 10 Hz,
    benchmarks/spin_benchmark.py); every session we make turns that off."""
    from segnet_ros.backends.onnxruntime_backend import SPINNING

    model = load_model(ModelFiles.in_folder(oracle_dir))
    for options in (BackendOptions(device="cpu"), BackendOptions(device="cpu", callers=2, max_batch=3)):
        session = create_backend("onnxruntime", model, options)._session
        assert session.get_session_options().get_session_config_entry(SPINNING) == "0"
