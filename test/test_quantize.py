"""INT8 quantisation end to end: the oracle's exact class grid survives it, the reference network's
agreement is measured and gated, and the INT8 cache keys, reuses and rebuilds its models."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from segnet_ros.backends import create_backend, qdq
from segnet_ros.backends.base import BackendOptions
from segnet_ros.backends.cpu import CpuInfo
from segnet_ros.core.classify import classify
from segnet_ros.core.errors import BackendError, SegnetError
from segnet_ros.core.model import ModelFiles, load_model
from segnet_ros.core.preprocess import Preprocessor
from segnet_ros.quantize import QuantizeSettings, compare, prepare_frames, quantize_model, reduce_range_options
from segnet_ros.quantize import quantizer as quantizer_module
from segnet_ros.quantize.calibration import held_out_indices

from oracle import grid_of, noisy_blocks

AVX2 = CpuInfo("test AVX2 CPU", frozenset({"avx2", "fma"}), 2)
VNNI = CpuInfo("test VNNI CPU", frozenset({"avx2", "fma", "avx512f", "avx512_vnni"}), 2)
pytestmark = pytest.mark.usefixtures("private_cache")
W, H = 256, 128  # the oracle's and small_reference's input; grid 8x4




def quantized_types(path) -> tuple[set[str], set[tuple[str, int]]]:
    """The QDQ model's activation types, and its weights' (type, scale count): one scale per channel."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    initializers = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    activations = {str(initializers[n.input[2]].dtype) for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    weights = {(str(initializers[n.input[0]].dtype), initializers[n.input[1]].size) for n in proto.graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in initializers
               and initializers[n.input[0]].ndim == 4}
    return activations, weights




def test_int8_oracle_reproduces_the_exact_class_grid(oracle_dir, rng, tmp_path, monkeypatch):
    """On this machine's own CPU and kernels (VNNI or not), with the reduce_range that auto picks here."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    relative = os.path.relpath(oracle_dir, tmp_path / "cwd")  # as a user types it
    oracle_model = load_model(ModelFiles.in_folder(Path(relative)))
    frames = prepare_frames([(f, "rgb8") for f in noisy_blocks(rng, 10)], W, H)
    result = quantize_model(oracle_model, frames, QuantizeSettings())
    assert not list((tmp_path / "cwd").iterdir())  # ONNX Runtime before 1.13 wrote augmented_model.onnx here
    assert result.passed and result.chosen.agreement.percent == 100.0
    assert result.installed == qdq.find_qdq_model(oracle_model.files.onnx)
    activations, weights = quantized_types(result.installed)
    assert activations == {"uint8"} and weights == {("int8", 8)}  # uint8 activations, per-channel int8 weights
    backend = create_backend("onnxruntime", oracle_model, BackendOptions(device="cpu", precision="int8"))
    assert (backend.precision, backend.describe()) == ("int8", "onnxruntime (cpu, int8)")
    assert backend.model_path == result.installed
    preprocessor = Preprocessor(W, H)
    for image in noisy_blocks(rng, 12):  # frames the quantiser never saw
        grid = classify(backend.run(preprocessor(image)))[0]
        np.testing.assert_array_equal(grid, grid_of(image, 8, 4))


def test_int8_model_runs_batches_like_single_frames(oracle_model, rng):
    quantize_model(oracle_model, prepare_frames([(f, "rgb8") for f in noisy_blocks(rng, 6)], W, H), cpu=VNNI)
    single = create_backend("onnxruntime", oracle_model, BackendOptions(device="cpu", precision="int8"))
    batched = create_backend("onnxruntime", oracle_model, BackendOptions(device="cpu", precision="int8", max_batch=3))
    tensor = np.concatenate([Preprocessor(W, H)(f).copy() for f in noisy_blocks(rng, 3)])
    together = batched.run(tensor)
    assert together.shape == (3, 8, 4, 8)
    for i in range(3):
        np.testing.assert_array_equal(classify(together[i])[0], classify(single.run(tensor[i:i + 1]))[0])


def test_reference_network_agreement_is_measured_and_gates_the_install(small_reference, rng):
    model = load_model(small_reference)
    frames = prepare_frames([(f, "rgb8") for f in noisy_blocks(rng, 8)], W, H)
    refused = quantize_model(model, frames, QuantizeSettings(min_agreement=100.0), AVX2)
    percents = [c.agreement.percent for c in refused.candidates]
    assert [c.reduce_range for c in refused.candidates] == [True, False]  # no VNNI: both tried
    assert refused.chosen.agreement.percent == max(percents) < 100.0  # untrained weights: near ties flip
    assert not refused.passed and refused.installed is None and qdq.find_qdq_model(model.files.onnx) is None
    forced = quantize_model(model, frames, QuantizeSettings(min_agreement=100.0, force=True), AVX2)
    assert all(c.cached for c in forced.candidates)  # kept, though not installed: --force needs no new work
    note = qdq.installed_note(model.files.onnx)
    assert note["forced"] is True and note["agreement_percent"] == pytest.approx(max(percents), abs=1e-3)
    assert forced.installed == qdq.find_qdq_model(model.files.onnx)
    passing = quantize_model(model, frames, QuantizeSettings(min_agreement=max(percents) - 1e-6), AVX2)
    assert passing.passed and passing.installed == forced.installed and passing.chosen.cached


def test_reduce_range_follows_the_cpu_and_the_setting():
    assert reduce_range_options("auto", AVX2) == (True, False)  # 7-bit first: it wins ties where u8s8 saturates
    assert reduce_range_options("auto", AVX2, target="tensorrt") == (False,)
    assert reduce_range_options("auto", VNNI) == (False,)
    assert reduce_range_options("on", VNNI) == (True,)
    assert reduce_range_options("off", AVX2) == (False,)
    with pytest.raises(ValueError, match="reduce_range"):
        QuantizeSettings(reduce_range="maybe")


def test_cache_key_changes_with_model_calibration_settings_and_versions():
    key = qdq.QdqKey("a" * 64, "c" * 64, quantizer_module.qdq_settings(False), "1.32.0", "1.20.0")
    changed = [dataclasses.replace(key, onnx_sha256="b" * 64), dataclasses.replace(key, calibration_digest="d" * 64),
               dataclasses.replace(key, settings=quantizer_module.qdq_settings(True)),
               dataclasses.replace(key, onnxruntime_version="1.33.0"), dataclasses.replace(key, onnx_version="1.21.0")]
    digests = {key.digest(), *(k.digest() for k in changed)}
    assert len(digests) == 6
    assert key.file_name("m") != changed[2].file_name("m")


def test_quantising_again_reuses_the_cache_and_other_frames_or_versions_make_a_new_model(
        oracle_model, rng, monkeypatch):
    images = noisy_blocks(rng, 6)
    frames = prepare_frames([(f, "rgb8") for f in images], W, H)
    first = quantize_model(oracle_model, frames, cpu=VNNI)
    again = quantize_model(oracle_model, prepare_frames([(f, "rgb8") for f in images], W, H), cpu=VNNI)
    assert not first.chosen.cached and again.chosen.cached and again.installed == first.installed
    other = quantize_model(oracle_model, prepare_frames([(f, "rgb8") for f in noisy_blocks(rng, 6)], W, H), cpu=VNNI)
    assert not other.chosen.cached and other.installed != first.installed
    assert qdq.find_qdq_model(oracle_model.files.onnx) == other.installed  # the newest install wins
    monkeypatch.setattr(quantizer_module, "tool_versions", lambda: ("9.9.9", "9.9.9"))
    upgraded = quantize_model(oracle_model, frames, cpu=VNNI)
    assert not upgraded.chosen.cached and upgraded.installed not in (first.installed, other.installed)
    assert json.loads((upgraded.installed.parent / qdq.INDEX).read_text())["onnxruntime_version"] == "9.9.9"


def test_a_corrupt_cached_model_is_rebuilt(oracle_model, rng, caplog):
    frames = prepare_frames([(f, "rgb8") for f in noisy_blocks(rng, 6)], W, H)
    path = quantize_model(oracle_model, frames, cpu=VNNI).installed
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # a disk that filled up, a copy cut short
    assert qdq.find_qdq_model(oracle_model.files.onnx) is None
    with pytest.raises(BackendError, match="segnet-ros quantize"):
        create_backend("onnxruntime", oracle_model, BackendOptions(device="cpu", precision="int8"))
    rebuilt = quantize_model(oracle_model, frames, cpu=VNNI)
    assert not rebuilt.chosen.cached and "it will be made again" in caplog.text
    assert rebuilt.installed == path and path.read_bytes() == good
    assert qdq.find_qdq_model(oracle_model.files.onnx) == path


def test_the_command_in_the_missing_int8_error_is_the_one_that_fixes_it(oracle_model, tmp_path, rng):
    import shlex

    from conftest import run_cli

    with pytest.raises(BackendError) as raised:
        create_backend("onnxruntime", oracle_model, BackendOptions(device="cpu", precision="int8"))
    message = str(raised.value)
    command = message.split("with: ", 1)[1]
    assert command == f"segnet-ros quantize --model {shlex.quote(str(oracle_model.files.onnx))} FRAMES"
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(noisy_blocks(rng, 5)):
        cv2.imwrite(str(folder / f"f{i}.png"), image[:, :, ::-1])
    args = shlex.split(command)[2:-1] + [str(folder)]
    result = run_cli("quantize", *args)
    assert result.returncode == 0, result.stderr
    assert "100.00% equal" in result.stdout and "installed: " in result.stdout
    backend = create_backend("onnxruntime", oracle_model, BackendOptions(device="cpu", precision="int8"))
    assert backend.precision == "int8"


def test_agreement_counts_per_class():
    fp32 = [np.array([[0, 0, 1], [2, 2, 2]], np.uint8)]
    int8 = [np.array([[0, 1, 1], [2, 2, 0]], np.uint8)]
    agreement = compare(fp32, int8, 4)
    assert (agreement.cells, agreement.equal) == (6, 4)
    assert agreement.per_class == ((0, 2, 1), (1, 1, 1), (2, 3, 2))
    table = agreement.table(("void", "a", "b", "c"))
    assert table[1].split() == ["0", "void", "2", "50.00%"] and len(table) == 4


def test_held_out_frames_are_spread_and_never_all_frames():
    assert held_out_indices(2, 0.2) == {1}
    assert held_out_indices(10, 0.2) == {2, 7}
    assert len(held_out_indices(10, 0.9)) == 9
    with pytest.raises(SegnetError, match="at least 2 frames"):
        held_out_indices(1, 0.2)


def test_the_tensorrt_target_makes_symmetric_int8_activations_with_its_own_index(oracle_model, rng):
    import onnx
    from onnx import TensorProto, numpy_helper

    frames = prepare_frames([(f, "rgb8") for f in noisy_blocks(rng, 6)], W, H)
    result = quantize_model(oracle_model, frames, QuantizeSettings(target="tensorrt"), AVX2)
    assert [c.reduce_range for c in result.candidates] == [False]  # reduce_range is a CPU matter
    assert result.chosen.agreement.percent > 90.0  # judged on ONNX Runtime's CPU kernels: a proxy for TensorRT
    proto = onnx.load(str(result.installed))
    initializers = {init.name: init for init in proto.graph.initializer}
    zero_points = [initializers[n.input[2]] for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and all(z.data_type == TensorProto.INT8 and not numpy_helper.to_array(z).any()
                               for z in zero_points)  # TensorRT takes signed int8 with zero point 0 only
    assert qdq.find_qdq_model(oracle_model.files.onnx, target="tensorrt") == result.installed
    assert qdq.find_qdq_model(oracle_model.files.onnx) is None  # the CPU's model is another one
    with pytest.raises(BackendError, match="segnet-ros quantize"):
        create_backend("onnxruntime", oracle_model, BackendOptions(device="cpu", precision="int8"))
    message = str(qdq.missing_qdq_error(oracle_model.files.onnx, target="tensorrt"))
    assert message.endswith(f"segnet-ros quantize --model {oracle_model.files.onnx} --target tensorrt FRAMES")


def test_frames_are_sampled_evenly_up_to_the_limit():
    from segnet_ros.quantize import sample_evenly

    assert list(sample_evenly(range(10), 10, 3)) == [0, 4, 8]
    assert list(sample_evenly(range(10), 0, 3)) == [0, 1, 2]  # length unknown: the first ones
    assert list(sample_evenly(range(4), 4, 10)) == [0, 1, 2, 3]


@pytest.mark.parametrize("resize", ["linear", "nearest"])
def test_kept_frames_are_the_exact_tensors_the_preprocessor_makes(resize):
    from segnet_ros.demo.scenes import street_frames

    frames = list(street_frames(5, 320, 200))
    kept = prepare_frames([(f, "bgr8") for f in frames], W, H, resize)
    preprocessor = Preprocessor(W, H, resize)
    expected = [preprocessor(f, "bgr8").copy() for f in frames]
    assert len(kept.calibration) == 4 and len(kept.held_out) == 1  # frame 2 is held out
    for got, want in zip([*kept.calibration, *kept.held_out], [expected[i] for i in (0, 1, 3, 4, 2)],
                         strict=True):
        assert got.dtype == np.float32 and np.array_equal(got, want)
