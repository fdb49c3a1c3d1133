"""The OpenVINO backend against ONNX Runtime: the oracle's exact class grids, the reference network's
FP32 logits, batches, INT8 from the installed QDQ model, and clear refusals (bf16 where the CPU would
run it as FP32, fp16, CUDA, a missing OpenVINO). Needs openvino (not on the compatibility floor)."""

from __future__ import annotations

import dataclasses
import logging
import sys

import numpy as np
import pytest

import segnet_ros.backends.cpu as cpu_facts
from segnet_ros.backends import BackendOptions, create_backend
from segnet_ros.backends.cpu import CpuInfo
from segnet_ros.backends.openvino_backend import OpenVinoBackend
from segnet_ros.core.classify import classify
from segnet_ros.core.errors import BackendError
from segnet_ros.core.model import ModelFiles, load_model
from segnet_ros.core.preprocess import Preprocessor
from segnet_ros.core.refnet import write_reference_model

from oracle import grid_of, noisy_blocks

pytest.importorskip("openvino")  # FLOOR_SKIP: the floor has no openvino; everywhere else it is installed

AVX2 = CpuInfo("test AVX2 CPU", frozenset({"avx2", "fma"}), 2)
pytestmark = pytest.mark.usefixtures("private_cache")
W, H = 256, 128  # the oracle's input; grid 8x4
NATIVE_BF16 = cpu_facts.cpu_info().has_native_bf16




@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return load_model(write_reference_model(tmp_path_factory.mktemp("ref"), W, H, 21))




def test_oracle_class_grids_are_identical_to_onnx_runtime_and_exact(oracle_model, rng):
    openvino = create_backend("openvino", oracle_model, BackendOptions(precision="fp32"))
    ort = create_backend("onnxruntime", oracle_model, BackendOptions(device="cpu", precision="fp32"))
    assert (openvino.name, openvino.device, openvino.precision) == ("openvino", "cpu", "fp32")
    preprocessor = Preprocessor(W, H)
    for image in noisy_blocks(rng, 8):
        tensor = preprocessor(image).copy()
        grid = classify(openvino.run(tensor))[0]
        np.testing.assert_array_equal(grid, classify(ort.run(tensor))[0])
        np.testing.assert_array_equal(grid, grid_of(image, 8, 4))


def test_reference_network_fp32_logits_match_onnx_runtime(reference, rng):
    openvino = OpenVinoBackend(reference, BackendOptions(precision="fp32", threads=1))
    ort = create_backend("onnxruntime", reference, BackendOptions(device="cpu", precision="fp32"))
    for _ in range(3):
        tensor = rng.standard_normal(reference.input_shape).astype(np.float32)
        ours, theirs = openvino.run(tensor), ort.run(tensor)
        assert ours.shape == theirs.shape == (1, 21, 4, 8) and ours.dtype == np.float32
        scale = float(np.abs(theirs).max())
        assert scale > 1.0  # a real signal, not zeros that agree trivially
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * scale)


def test_a_batch_gives_what_single_frames_give(oracle_model, reference, rng):
    preprocessor = Preprocessor(W, H)
    tensor = np.concatenate([preprocessor(image).copy() for image in noisy_blocks(rng, 3)])
    single = create_backend("openvino", oracle_model, BackendOptions(precision="fp32"))
    batched = create_backend("openvino", oracle_model, BackendOptions(precision="fp32", max_batch=3))
    assert batched.max_batch == 3 and single.max_batch == 1
    for frames in (tensor, tensor[:2], tensor[:1]):
        together = batched.run(frames)
        assert together.shape == (len(frames), 8, 4, 8)
        for i in range(len(frames)):
            np.testing.assert_array_equal(classify(together[i])[0], classify(single.run(frames[i:i + 1]))[0])
            np.testing.assert_allclose(together[i:i + 1], single.run(frames[i:i + 1]), rtol=0, atol=1e-5)
    with pytest.raises(BackendError, match=r"expected \(1\.\.3, 3, 128, 256\) float32"):
        batched.run(np.concatenate([tensor, tensor[:1]]))
    with pytest.raises(BackendError, match=r"expected \(1, 3, 128, 256\) float32"):
        single.run(tensor[:2])
    big = rng.standard_normal((2, 3, H, W)).astype(np.float32)  # the reference net: float tolerance
    logits = create_backend("openvino", reference, BackendOptions(precision="fp32", max_batch=2)).run(big)
    each = create_backend("onnxruntime", reference, BackendOptions(device="cpu", precision="fp32"))
    for i in range(2):
        expected = each.run(big[i:i + 1])
        np.testing.assert_allclose(logits[i:i + 1], expected, rtol=0, atol=1e-4 * float(np.abs(expected).max()))


def test_threads_are_honoured(oracle_model):
    assert OpenVinoBackend(oracle_model, BackendOptions(precision="fp32", threads=1)).threads == 1


def test_bf16_on_a_cpu_without_native_bf16_is_a_clear_error(oracle_model, monkeypatch):
    with pytest.raises(BackendError, match=r"bf16: not native on this CPU \(test AVX2 CPU has neither avx512_bf16 "
                                           r"nor amx_bf16\).*use precision fp32, or int8"):
        OpenVinoBackend(oracle_model, BackendOptions(precision="bf16"), cpu=AVX2)
    monkeypatch.setattr(cpu_facts, "cpu_info", lambda: AVX2)  # the same through the factory, both ways in
    for backend in ("openvino", "auto"):
        with pytest.raises(BackendError, match="bf16: not native on this CPU"):
            create_backend(backend, oracle_model, BackendOptions(device="cpu", precision="bf16"))


def test_bf16_runs_where_the_cpu_has_it(oracle_model, rng, caplog):
    if not NATIVE_BF16:  # the AVX2-only machines: the error above is what they get
        with pytest.raises(BackendError, match="bf16: not native on this CPU"):
            OpenVinoBackend(oracle_model, BackendOptions(precision="bf16"))
        return
    with caplog.at_level(logging.DEBUG, logger="segnet_ros.backends"):  # precision auto means bf16 here
        assert create_backend("openvino", oracle_model).precision == "bf16"
    flags = " ".join(f for f in ("avx512_bf16", "amx_bf16") if f in cpu_facts.cpu_info().flags)
    assert [r.message for r in caplog.records if r.name == "segnet_ros.backends"] == [
        f"precision auto chose bf16 on openvino: no INT8 model is installed; this CPU has native BF16 ({flags})",
        "precision auto chose openvino (cpu, bf16)"]
    backend = OpenVinoBackend(oracle_model, BackendOptions(precision="bf16"))
    assert (backend.precision, backend.describe()) == ("bf16", "openvino (cpu, bf16)")
    assert str(backend._compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'bfloat16'>"
    for image in noisy_blocks(rng, 4):
        np.testing.assert_array_equal(classify(backend.run(Preprocessor(W, H)(image)))[0], grid_of(image, 8, 4))


def test_fp32_pins_the_precision_hint_to_f32(oracle_model):
    """OpenVINO picks bf16 by itself on AMX CPUs; fp32 must mean fp32 everywhere."""
    backend = OpenVinoBackend(oracle_model, BackendOptions(precision="fp32"))
    assert str(backend._compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"


def test_int8_without_an_installed_model_names_the_quantize_command(oracle_model):
    with pytest.raises(BackendError, match=r"precision int8 needs an INT8 model .* segnet-ros quantize --model "):
        create_backend("openvino", oracle_model, BackendOptions(precision="int8"))


def test_int8_runs_the_installed_qdq_model_and_keeps_the_oracle_grid(oracle_model, rng, caplog):
    from segnet_ros.backends.qdq import find_qdq_model
    from segnet_ros.quantize import QuantizeSettings, prepare_frames, quantize_model

    frames = prepare_frames([(image, "rgb8") for image in noisy_blocks(rng, 10)], W, H)
    assert quantize_model(oracle_model, frames, QuantizeSettings(), cpu_facts.cpu_info()).passed
    backend = create_backend("openvino", oracle_model, BackendOptions(precision="int8"))
    assert backend.precision == "int8" and backend.model_path == find_qdq_model(oracle_model.files.onnx)
    ort = create_backend("onnxruntime", oracle_model, BackendOptions(device="cpu", precision="int8"))
    for image in noisy_blocks(rng, 8):
        tensor = Preprocessor(W, H)(image).copy()
        grid = classify(backend.run(tensor))[0]
        np.testing.assert_array_equal(grid, grid_of(image, 8, 4))
        np.testing.assert_array_equal(grid, classify(ort.run(tensor))[0])
    with caplog.at_level(logging.DEBUG, logger="segnet_ros.backends"):  # auto now takes the INT8 model
        chosen = create_backend("auto", oracle_model, BackendOptions(device="cpu"))
    assert (chosen.name, chosen.precision) == ("openvino", "int8")
    assert any(r.message.startswith("backend auto chose openvino with precision int8: device 'cpu' was asked for; "
                                    "an INT8 model of this ONNX file is installed") for r in caplog.records)


@pytest.mark.parametrize("precision, words", [("fp16", "not fp16; for fp16 use --backend tensorrt"),
                                              ("cuda", "OpenVINO runs on the CPU here")])
def test_what_openvino_cannot_run_is_refused_with_what_to_use(oracle_model, precision, words):
    options = BackendOptions(device="cuda") if precision == "cuda" else BackendOptions(precision=precision)
    with pytest.raises(BackendError, match=words):
        create_backend("openvino", oracle_model, options)


def test_declared_output_that_the_graph_does_not_compute_fails_at_creation(reexported_model):
    with pytest.raises(BackendError, match=r"declares output \[1, 5, 4, 8\] but computes \[1, 5, 8, 16\]"):
        create_backend("openvino", reexported_model, BackendOptions(precision="fp32"))


def test_a_wrong_output_blob_is_named(oracle_dir):
    files = ModelFiles.in_folder(oracle_dir)
    model = load_model(files)
    wrong = dataclasses.replace(model, files=ModelFiles(onnx=files.onnx, output_blob="scores"))
    with pytest.raises(BackendError, match=r"no output named 'scores' \(it has output_0\)"):
        OpenVinoBackend(wrong, BackendOptions(precision="fp32"))


def test_missing_openvino_is_a_clear_error_and_auto_does_without_it(oracle_model, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "openvino", None)  # what a machine without OpenVINO looks like
    with pytest.raises(BackendError, match=r"OpenVINO is not installed; install it with 'pip install openvino'"):
        create_backend("openvino", oracle_model, BackendOptions(precision="fp32"))
    with caplog.at_level(logging.DEBUG, logger="segnet_ros.backends"):
        backend = create_backend("auto", oracle_model, BackendOptions(device="cpu"))
    assert (backend.name, backend.precision) == ("onnxruntime", "fp32")
    lines = [r.message for r in caplog.records
             if r.message.startswith("backend auto chose") and r.levelno == logging.DEBUG]
    assert len(lines) == 1 and lines[0].startswith("backend auto chose onnxruntime with precision fp32: device 'cpu'")
    if NATIVE_BF16:  # the one thing it could not have: native BF16 needs OpenVINO, and says so
        assert "native BF16 needs OpenVINO (OpenVINO is not installed" in lines[0]
