"""The TensorRT backend against the contract-enforcing fakes of tensorrt and pycuda (test/fakes)."""

import logging
import shutil
import threading
import types

import numpy as np
import onnx
import pytest

from segnet_ros.backends import BackendOptions, create_backend
from segnet_ros.backends.tensorrt_build import has_fast_fp16, network_flags
from segnet_ros.core.errors import BackendError
from segnet_ros.core.model import ModelFiles, load_model
from segnet_ros.core.segnet import SegNet

from oracle import PALETTE, block_image, palette_oracle

pytestmark = pytest.mark.usefixtures("fake_trt")


@pytest.fixture
def oracle_model(oracle_dir):
    return load_model(ModelFiles.in_folder(oracle_dir))


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory):
    """The FCN-ResNet18 topology at 128x64: real convolutions, quick on two cores."""
    from segnet_ros.core.refnet import write_reference_model

    return load_model(write_reference_model(tmp_path_factory.mktemp("ref"), 128, 64, 21))


@pytest.fixture
def backends():
    """Creates TensorRT backends and closes them after the test, so the fakes can check the teardown."""
    made = []

    def make(model, **options):
        backend = create_backend("tensorrt", model, BackendOptions(**options))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def frames(model, count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(model.input_shape).astype(np.float32) for _ in range(count)]


def test_class_grids_match_onnx_runtime(small_reference, backends):
    trt = backends(small_reference, precision="fp32")
    ort = create_backend("onnxruntime", small_reference)
    for tensor in frames(small_reference, 3):
        expected = ort.run(tensor)
        got = trt.run(tensor)
        assert got.shape == small_reference.output_shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


def test_fp16_differs_only_where_the_top_two_are_close(small_reference, backends):
    trt = backends(small_reference)  # auto: the fake GPU has fast fp16
    assert trt.engine_info.precision == "fp16"
    ort = create_backend("onnxruntime", small_reference)
    for tensor in frames(small_reference, 3, seed=1):
        expected, got = ort.run(tensor), trt.run(tensor)
        assert not np.array_equal(got, expected)  # really computed in (emulated) half precision
        top2 = np.sort(expected, axis=1)[:, -2:]
        close = (top2[:, 1] - top2[:, 0]) < 0.01 * np.abs(top2[:, 1]).clip(1)
        differ = got.argmax(1) != expected.argmax(1)
        assert not (differ & ~close).any()


def test_segnet_on_tensorrt_gives_the_oracle_grid(oracle_model, backends, rng):
    net = SegNet(oracle_model, backends(oracle_model, precision="fp32"))
    grid = rng.integers(1, len(PALETTE), (4, 8)).astype(np.uint8)
    np.testing.assert_array_equal(net.process(block_image(grid, 256, 128), "rgb8").grid, grid)


def test_nothing_is_allocated_per_frame(oracle_model, backends, fake_trt):
    backend = backends(oracle_model)
    stats = fake_trt.cuda.STATS
    before = dict(stats)
    assert before["mem_alloc"] == 2 and before["pagelocked_empty"] == 2 and before["stream"] == 1
    for tensor in frames(oracle_model, 25):
        backend.run(tensor)
    assert stats["mem_alloc"] == before["mem_alloc"]
    assert stats["pagelocked_empty"] == before["pagelocked_empty"]
    assert stats["stream"] == before["stream"]
    assert stats["htod"] == stats["dtoh"] == stats["synchronize"] == 25
    assert fake_trt.trt.STATS["execution_context"] == 1


def test_run_returns_a_copy_that_the_next_frame_does_not_overwrite(oracle_model, backends):
    backend = backends(oracle_model)
    first, second = frames(oracle_model, 2)
    out1 = backend.run(first)
    kept = out1.copy()
    backend.run(second)
    np.testing.assert_array_equal(out1, kept)


def test_runs_on_a_worker_thread(oracle_model, backends, fake_trt):
    """The node creates the backend on one thread and runs it on another: the context must follow."""
    backend = backends(oracle_model)
    tensor = frames(oracle_model, 1)[0]
    expected = backend.run(tensor)
    results, errors = [], []

    def work():
        try:
            results.extend(backend.run(tensor) for _ in range(3))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert len(results) == 6 and all(np.array_equal(r, expected) for r in results)
    assert fake_trt.cuda.Context.get_current() is None  # nothing left pushed on this thread


def test_close_frees_everything_and_refuses_later_runs(oracle_model, fake_trt):
    backend = create_backend("tensorrt", oracle_model)
    backend.close()
    backend.close()  # idempotent
    assert fake_trt.cuda._memory == {}
    assert not any(c.alive for c in fake_trt.cuda._primary.values())
    with pytest.raises(BackendError, match="closed"):
        backend.run(frames(oracle_model, 1)[0])


def test_close_on_another_thread(oracle_model):
    backend = create_backend("tensorrt", oracle_model)
    thread = threading.Thread(target=backend.close)
    thread.start()
    thread.join(30)
    assert backend._cuda_context is None


def test_wrong_input_is_refused(oracle_model, backends):
    backend = backends(oracle_model)
    with pytest.raises(BackendError, match="expected"):
        backend.run(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(BackendError, match="float32"):
        backend.run(np.zeros(oracle_model.input_shape, np.float64))


# -- the engine cache through the backend ------------------------------------------------------------
def test_second_start_loads_the_cached_engine(oracle_model, backends, fake_trt, caplog):
    first = backends(oracle_model)
    assert first.engine_info.built and first.engine_info.path.parent == fake_trt.engine_dir
    with caplog.at_level(logging.INFO):
        second = backends(oracle_model)
    assert not second.engine_info.built and second.engine_info.path == first.engine_info.path
    assert fake_trt.builds() == 1
    assert any("loaded from the cache" in r.message for r in caplog.records)


def test_engine_cache_dir_option(oracle_model, backends, tmp_path, fake_trt):
    backend = backends(oracle_model, engine_cache_dir=str(tmp_path / "mine"))
    assert backend.engine_info.path.parent == tmp_path / "mine"
    assert not fake_trt.engine_dir.exists()


@pytest.mark.parametrize("change", [
    {"gpu_name": "Fake RTX"}, {"gpu_cc": "8.9"}, {"trt_version": "10.4.0"}, {"trt_version": "8.6.1"}])
def test_a_different_gpu_or_tensorrt_builds_its_own_engine(oracle_model, backends, fake_trt, change):
    first = backends(oracle_model).engine_info.path
    fake_trt.configure(**change)
    second = backends(oracle_model).engine_info
    assert second.built and second.path != first and fake_trt.builds() == 2
    assert first.exists()  # the other machine's engine stays for it


@pytest.mark.parametrize("options", [{"precision": "fp32"}, {"dla_core": 0}])
def test_precision_and_dla_core_build_their_own_engine(oracle_model, backends, fake_trt, options):
    fake_trt.configure(dla_cores=2)
    first = backends(oracle_model).engine_info
    second = backends(oracle_model, **options).engine_info
    assert second.built and second.path != first.path and fake_trt.builds() == 2


def test_onnx_change_builds_a_new_engine(tmp_path, backends, fake_trt):
    folder = palette_oracle(tmp_path / "model")
    first = backends(load_model(ModelFiles.in_folder(folder))).engine_info
    proto = onnx.load(str(folder / "fcn_resnet18.onnx"))
    proto.graph.initializer[1].float_data[:] = [0.5] * 8  # other biases: other answers
    proto.graph.initializer[1].ClearField("raw_data")
    onnx.save(proto, str(folder / "fcn_resnet18.onnx"))
    second = backends(load_model(ModelFiles.in_folder(folder))).engine_info
    assert second.built and second.path != first.path


def test_stale_engine_at_the_right_path_is_rebuilt(oracle_model, backends, fake_trt, caplog):
    """An engine from another TensorRT, copied where this one's should be, must not be used."""
    fake_trt.configure(trt_version="8.6.1")
    old = backends(oracle_model).engine_info.path
    fake_trt.configure(trt_version="10.3.0")
    backend = backends(oracle_model)
    path = backend.engine_info.path
    backend.close()
    shutil.copyfile(old, path)
    with caplog.at_level(logging.WARNING):
        rebuilt = backends(oracle_model).engine_info
    assert rebuilt.built and fake_trt.builds() == 3
    assert fake_trt.trt.read_header(path.read_bytes())["version"] == "10.3.0"
    assert any("does not load" in r.message for r in caplog.records)
    assert any("not compatible with this version" in r.message for r in caplog.records)  # TensorRT's own words


def test_corrupt_engine_is_rebuilt(oracle_model, backends, fake_trt, caplog):
    path = backends(oracle_model).engine_info.path
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with caplog.at_level(logging.WARNING):
        backend = backends(oracle_model)
    assert backend.engine_info.built and fake_trt.builds() == 2
    assert any("does not load" in r.message for r in caplog.records)
    backend.run(frames(oracle_model, 1)[0])


def test_force_rebuild(oracle_model, backends, fake_trt):
    backends(oracle_model)
    again = backends(oracle_model, force_rebuild=True).engine_info
    assert again.built and fake_trt.builds() == 2
    assert not backends(oracle_model).engine_info.built  # and the new file serves the next start


def test_unwritable_cache_builds_in_memory(oracle_model, backends, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        backend = backends(oracle_model, engine_cache_dir=str(blocker / "engines"))
    assert backend.engine_info.path is None and backend.engine_info.built
    assert any("not writable" in r.message for r in caplog.records)
    backend.run(frames(oracle_model, 1)[0])


# -- building ------------------------------------------------------------------------------------------
def custom_op_model(folder, oracle_dir):
    """The oracle with its two nodes moved into a custom domain: loads as a Model, TensorRT cannot parse it."""
    proto = onnx.load(str(oracle_dir / "fcn_resnet18.onnx"))
    for node in proto.graph.node:
        node.domain = "com.example"
    proto.opset_import.append(onnx.helper.make_opsetid("com.example", 1))
    folder.mkdir()
    onnx.save(proto, str(folder / "fcn_resnet18.onnx"))
    return load_model(ModelFiles.in_folder(folder))


def test_every_parser_error_is_in_the_message(tmp_path, oracle_dir):
    model = custom_op_model(tmp_path / "custom", oracle_dir)
    with pytest.raises(BackendError) as error:
        create_backend("tensorrt", model)
    message = str(error.value)
    assert "2 errors" in message and str(model.files.onnx) in message
    assert "No importer registered for op: AveragePool" in message
    assert "No importer registered for op: Conv" in message


def test_build_failure_is_a_clear_error(oracle_model, fake_trt, caplog):
    fake_trt.configure(trt_build_fail=1)
    with caplog.at_level(logging.ERROR), pytest.raises(BackendError, match="failed to build"):
        create_backend("tensorrt", oracle_model)
    assert any("TensorRT: fake: out of memory" in r.message for r in caplog.records)  # TensorRT's log forwarded
    assert not list(fake_trt.engine_dir.glob("*.engine"))


def test_build_logs_start_progress_and_duration(oracle_model, backends, caplog, monkeypatch):
    from segnet_ros.backends import tensorrt_build

    monkeypatch.setattr(tensorrt_build, "PROGRESS_INTERVAL_S", 0.0)
    with caplog.at_level(logging.INFO, logger="segnet_ros"):
        backends(oracle_model)
    messages = [r.message for r in caplog.records]
    assert not [r.message for r in caplog.records if r.levelno >= logging.WARNING]  # a clean build is quiet
    assert any(m.startswith("building the TensorRT fp16 engine for") for m in messages)
    assert "TensorRT build: Building engine" in messages
    assert any("step 3 of 3" in m for m in messages)
    assert any("built in" in m for m in messages)


def test_tensorrt_8_6_explicit_batch_and_no_progress_monitor(oracle_model, backends, fake_trt, caplog):
    fake_trt.configure(trt_version="8.6.1")
    assert not hasattr(fake_trt.trt, "IProgressMonitor")
    with caplog.at_level(logging.INFO, logger="segnet_ros"):
        backend = backends(oracle_model)
    assert backend.engine_info.tensorrt_version == "8.6.1"
    assert not any("TensorRT build:" in r.message for r in caplog.records)
    assert np.isfinite(backend.run(frames(oracle_model, 1)[0])).all()


def test_builder_settings_reach_tensorrt(oracle_model, backends, fake_trt):
    fake_trt.configure(dla_cores=2)
    info = backends(oracle_model, dla_core=1, workspace_mb=256).engine_info
    header = fake_trt.trt.read_header(info.path.read_bytes())
    assert header["dla_core"] == 1 and header["precision"] == "fp16" and header["workspace"] == 256 << 20
    fp32 = backends(oracle_model, precision="fp32").engine_info
    header = fake_trt.trt.read_header(fp32.path.read_bytes())
    assert header["precision"] == "fp32" and header["dla_core"] == -1


def test_auto_precision_is_fp32_without_fast_fp16(oracle_model, backends, fake_trt):
    fake_trt.configure(fast_fp16=0)
    assert backends(oracle_model).engine_info.precision == "fp32"


@pytest.mark.parametrize("version, has_flag, expected", [
    ("8.6.1", True, 1), ("10.0.1", True, 0), ("10.13.0", False, 0)])
def test_network_flags(version, has_flag, expected):
    flags = types.SimpleNamespace(EXPLICIT_BATCH=0) if has_flag else types.SimpleNamespace()
    assert network_flags(types.SimpleNamespace(__version__=version, NetworkDefinitionCreationFlag=flags)) == expected


def test_fast_fp16_without_the_builder_query():
    class Builder:  # TensorRT versions that dropped platform_has_fast_fp16
        pass

    assert has_fast_fp16(Builder(), (8, 7)) and has_fast_fp16(Builder(), (5, 3))
    assert not has_fast_fp16(Builder(), (6, 1)) and not has_fast_fp16(Builder(), (5, 2))


@pytest.mark.parametrize("options, match", [
    ({"dla_core": 0, "precision": "fp32"}, "DLA runs FP16"),
    ({"dla_core": 2}, "has 1 DLA core;"),
    ({"device": "cpu"}, "device 'cpu'"),
])
def test_impossible_options_are_refused(oracle_model, fake_trt, options, match):
    fake_trt.configure(dla_cores=1)
    with pytest.raises(BackendError, match=match):
        create_backend("tensorrt", oracle_model, BackendOptions(**options))


def test_dynamic_batch_gets_an_optimization_profile(tmp_path, oracle_dir, backends):
    proto = onnx.load(str(oracle_dir / "fcn_resnet18.onnx"))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    folder = tmp_path / "dynamic"
    folder.mkdir()
    onnx.save(proto, str(folder / "fcn_resnet18.onnx"))
    model = load_model(ModelFiles.in_folder(folder))
    tensor = frames(model, 1)[0]
    expected = create_backend("onnxruntime", model).run(tensor)
    np.testing.assert_allclose(backends(model, precision="fp32").run(tensor), expected, rtol=1e-5, atol=1e-5)


def test_renamed_blobs(tmp_path, backends, rng):
    folder = tmp_path / "renamed"
    palette_oracle(folder)
    from oracle import linear_oracle, normalized

    centers = normalized(PALETTE)
    linear_oracle(folder / "fcn_resnet18.onnx", 256, 128, 2 * centers, -(centers**2).sum(axis=1),
                  input_name="data", output_name="scores")
    files = ModelFiles.in_folder(folder)
    model = load_model(ModelFiles(files.onnx, files.labels, files.colors, "data", "scores"))
    grid = rng.integers(1, 8, (4, 8)).astype(np.uint8)
    net = SegNet(model, backends(model))
    np.testing.assert_array_equal(net.process(block_image(grid, 256, 128), "rgb8").grid, grid)


# -- the fakes do enforce what they claim --------------------------------------------------------------
def test_fake_refuses_cuda_work_without_a_current_context(fake_trt):
    cuda = fake_trt.cuda
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    with pytest.raises(cuda.LogicError, match="no currently active context"):
        cuda.mem_alloc(16)
    context.push()
    buffer = cuda.mem_alloc(16)
    errors = []
    thread = threading.Thread(target=lambda: errors.append(pytest.raises(cuda.LogicError, buffer.free)))
    thread.start()
    thread.join()
    buffer.free()
    cuda.Context.pop()
    context.detach()
    assert errors


def test_fake_enforces_addresses_synchronize_and_lifetimes(oracle_model, fake_trt):
    """Drives the fakes the wrong ways the backend must avoid, and checks each is caught."""
    trt, cuda = fake_trt.trt, fake_trt.cuda
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    context.push()
    try:
        logger = trt.Logger()
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        config = builder.create_builder_config()
        assert builder.build_serialized_network(network, config) is None  # not parsed: nothing to build
        parser = trt.OnnxParser(network, logger)
        assert parser.parse_from_file(str(oracle_model.files.onnx))
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(builder.build_serialized_network(network, config))
        assert runtime.deserialize_cuda_engine(b"garbage") is None
        execution = engine.create_execution_context()
        stream = cuda.Stream()
        host_in = cuda.pagelocked_empty(oracle_model.input_shape, np.float32)
        host_out = cuda.pagelocked_empty(oracle_model.output_shape, np.float32)
        host_in[:] = 1.0
        host_out[:] = -7.0
        d_in, d_out = cuda.mem_alloc(host_in.nbytes), cuda.mem_alloc(host_out.nbytes)
        execution.set_tensor_address("input_0", int(d_in))
        assert not execution.execute_async_v3(stream.handle)  # output address missing
        with pytest.raises(cuda.LogicError, match="page-locked"):
            cuda.memcpy_htod_async(d_in, np.ones(oracle_model.input_shape, np.float32), stream)
        execution.set_tensor_address("output_0", int(d_out))
        cuda.memcpy_htod_async(d_in, host_in, stream)
        assert execution.execute_async_v3(stream.handle)
        cuda.memcpy_dtoh_async(host_out, d_out, stream)
        assert (host_out == -7.0).all()  # not synchronized yet: stale
        stream.synchronize()
        assert not (host_out == -7.0).any()
        small = cuda.mem_alloc(8)
        execution.set_tensor_address("output_0", int(small))
        with pytest.raises(cuda.LogicError, match="do not fit"):
            execution.execute_async_v3(stream.handle)
        del engine  # while its context lives: a violation the fixture would report
        assert any("execution contexts still use it" in v for v in cuda.VIOLATIONS)
        with pytest.raises(RuntimeError, match="engine has been destroyed"):
            execution.execute_async_v3(stream.handle)
        cuda.VIOLATIONS.clear()
        del execution, runtime
        for buffer in (d_in, d_out, small):
            buffer.free()
        del host_in, host_out, stream
    finally:
        cuda.Context.pop()
    context.detach()
