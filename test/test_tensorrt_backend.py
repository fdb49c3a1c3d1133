"""The TensorRT backend against the contract-enforcing fakes of tensorrt and pycuda (test/fakes). Every test
whose TensorRT calls depend on the version (building each precision, loading, batches, INT8, the logger)
runs once per fake version (8.6, 10.x, 11.x: tensorrt_helpers.VERSIONS); the rest on the default 10.3."""

import logging
import shutil
import threading
import types

import numpy as np
import onnx
import pytest

from segnet_ros.backends import BackendOptions, create_backend
from segnet_ros.backends.onnx_rewrite import qdq_for_tensorrt
from segnet_ros.backends.tensorrt_build import has_fast_fp16, network_flags, resolve_precision
from segnet_ros.core.errors import BackendError
from segnet_ros.core.model import ModelFiles, load_model
from segnet_ros.core.segnet import SegNet

from oracle import PALETTE, block_image, palette_oracle
from tensorrt_helpers import frames, version_fixture

trt_version = version_fixture()
pytestmark = pytest.mark.usefixtures("fake_trt")
every_version = pytest.mark.usefixtures("trt_version")  # the tests whose TensorRT calls differ between versions


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory):
    """The FCN-ResNet18 topology at 128x64: real convolutions, quick on two cores."""
    from segnet_ros.core.refnet import write_reference_model

    return load_model(write_reference_model(tmp_path_factory.mktemp("ref"), 128, 64, 21))


@every_version
def test_class_grids_match_onnx_runtime(small_reference, backends):
    trt = backends(small_reference, precision="fp32")
    ort = create_backend("onnxruntime", small_reference)
    for tensor in frames(small_reference, 2):
        expected = ort.run(tensor)
        got = trt.run(tensor)
        assert got.shape == small_reference.output_shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


@every_version
def test_fp16_differs_only_where_the_top_two_are_close(small_reference, backends):
    trt = backends(small_reference)  # auto: the fake GPU has fast fp16
    assert trt.engine_info.precision == "fp16"
    ort = create_backend("onnxruntime", small_reference)
    for tensor in frames(small_reference, 2, seed=1):
        expected, got = ort.run(tensor), trt.run(tensor)
        assert not np.array_equal(got, expected)  # really computed in (emulated) half precision
        top2 = np.sort(expected, axis=1)[:, -2:]
        close = (top2[:, 1] - top2[:, 0]) < 0.01 * np.abs(top2[:, 1]).clip(1)
        differ = got.argmax(1) != expected.argmax(1)
        assert not (differ & ~close).any()


@every_version
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


@every_version
def test_close_on_another_thread_releases_the_primary_context(oracle_model, fake_trt):
    """pycuda's detach() does nothing off the thread that retained the context: close() must push first."""
    backend = create_backend("tensorrt", oracle_model)
    assert fake_trt.cuda.retained() == 1
    thread = threading.Thread(target=backend.close)
    thread.start()
    thread.join(30)
    assert backend._cuda_context is None
    assert fake_trt.cuda.retained() == 0 and fake_trt.cuda._memory == {}
    assert fake_trt.cuda.Context.get_current() is None


@every_version
def test_two_backends_share_one_logger_and_run_side_by_side(oracle_model, backends):
    """TensorRT keeps one process-wide logger: a second one would replace the first (the fake records it)."""
    first, second = backends(oracle_model), backends(oracle_model, precision="fp32")
    assert first._logger is second._logger
    first.run(frames(oracle_model, 1)[0])
    second.run(frames(oracle_model, 1)[0])


def test_wrong_input_is_refused(oracle_model, backends):
    backend = backends(oracle_model)
    with pytest.raises(BackendError, match="expected"):
        backend.run(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(BackendError, match="float32"):
        backend.run(np.zeros(oracle_model.input_shape, np.float64))


# -- the engine cache through the backend ------------------------------------------------------------
@every_version
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
    {"gpu_name": "Fake RTX"}, {"gpu_cc": "8.9"}, {"gpu_sms": "4"}, {"gpu_memory_mb": "15000"},
    {"trt_version": "10.3.9"}, {"trt_version": "11.0.0"}])
def test_a_different_gpu_or_tensorrt_builds_its_own_engine(oracle_model, backends, fake_trt, change):
    """Every Orin module reports "Orin" 8.7: the SM count and the memory tell an AGX from a Nano."""
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


@pytest.mark.parametrize("with_note", [False, True])
def test_stale_engine_at_the_right_path_is_rebuilt(oracle_model, backends, fake_trt, caplog, with_note):
    """An engine from another TensorRT, copied where this one's should be (with its note or without),
    must not be used: it is rebuilt."""
    trt_version = "10.3.0"
    fake_trt.configure(trt_version="8.6.1")
    old = backends(oracle_model).engine_info.path
    fake_trt.configure(trt_version=trt_version)
    backend = backends(oracle_model)
    path = backend.engine_info.path
    backend.close()
    shutil.copyfile(old, path)
    if with_note:
        shutil.copyfile(old.with_suffix(".json"), path.with_suffix(".json"))
    with caplog.at_level(logging.WARNING):
        rebuilt = backends(oracle_model).engine_info
    assert rebuilt.built and fake_trt.builds() == 3
    assert fake_trt.trt.read_header(path.read_bytes())["version"] == trt_version
    assert any("does not load" in r.message and ("stale" if with_note else "corrupt") in r.message
               for r in caplog.records)
    assert any("not compatible with this version" in r.message for r in caplog.records)  # TensorRT's own words


def test_an_intact_engine_that_fails_to_load_is_kept_and_reported(oracle_model, backends, fake_trt):
    """deserialize_cuda_engine returns None for lack of memory too: that must not cost a rebuild that
    overwrites a good engine."""
    path = backends(oracle_model).engine_info.path
    before = path.read_bytes(), path.stat().st_mtime_ns
    fake_trt.configure(trt_deserialize_oom=1)
    with pytest.raises(BackendError, match="intact.*out of memory.*Jetson"):
        create_backend("tensorrt", oracle_model)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before and fake_trt.builds() == 1


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


@every_version
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_unwritable_cache_builds_in_memory(oracle_model, backends, tmp_path, caplog, precision):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        backend = backends(oracle_model, engine_cache_dir=str(blocker / "engines"), precision=precision)
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


@every_version
def test_every_parser_error_is_in_the_message(tmp_path, oracle_dir):
    model = custom_op_model(tmp_path / "custom", oracle_dir)
    with pytest.raises(BackendError) as error:
        create_backend("tensorrt", model)
    message = str(error.value)
    assert "2 errors" in message and str(model.files.onnx) in message  # also where the FP16 copy was parsed
    assert "No importer registered for op: AveragePool" in message
    assert "No importer registered for op: Conv" in message


@pytest.mark.parametrize("integrated, hint", [(1, "a smaller workspace"), (0, "a larger workspace")])
def test_build_failure_is_a_clear_error(oracle_model, fake_trt, caplog, integrated, hint):
    """A Jetson's GPU shares the CPU's memory: there a smaller workspace leaves the build more room."""
    fake_trt.configure(trt_build_fail=1, gpu_integrated=integrated)
    with caplog.at_level(logging.ERROR), pytest.raises(BackendError, match="failed to build") as error:
        create_backend("tensorrt", oracle_model)
    assert hint in str(error.value)
    assert any("TensorRT: fake: out of memory" in r.message for r in caplog.records)  # TensorRT's log forwarded
    assert not list(fake_trt.engine_dir.glob("*.engine"))


def test_build_logs_start_progress_and_duration(oracle_model, backends, caplog, monkeypatch, fake_trt, trt_version):
    """TensorRT 10 and later report progress; 8.6 has no IProgressMonitor (and needs EXPLICIT_BATCH)."""
    from segnet_ros.backends import tensorrt_build

    monkeypatch.setattr(tensorrt_build, "PROGRESS_INTERVAL_S", 0.0)
    with caplog.at_level(logging.INFO, logger="segnet_ros"):
        backend = backends(oracle_model)
    messages = [r.message for r in caplog.records]
    assert not [r.message for r in caplog.records if r.levelno >= logging.WARNING]  # a clean build is quiet
    assert any(m.startswith("building the TensorRT fp16 engine for") for m in messages)
    assert any("built in" in m for m in messages)
    assert backend.engine_info.tensorrt_version == trt_version
    if trt_version.startswith("8."):
        assert not hasattr(fake_trt.trt, "IProgressMonitor")
        assert not any("TensorRT build:" in m for m in messages)
    else:
        assert "TensorRT build: Building engine" in messages
        assert any("step 3 of 3" in m for m in messages)


def test_builder_settings_reach_tensorrt(oracle_model, backends, fake_trt, trt_version):
    fake_trt.configure(dla_cores=2)
    info = backends(oracle_model, dla_core=1, workspace_mb=256).engine_info
    header = fake_trt.trt.read_header(info.path.read_bytes())
    assert header["dla_core"] == 1 and header["precision"] == "fp16" and header["workspace"] == 256 << 20
    assert header["strongly_typed"] == trt_version.startswith("11")  # 11: FP16 comes from the network's types
    fp32 = backends(oracle_model, precision="fp32").engine_info
    header = fake_trt.trt.read_header(fp32.path.read_bytes())
    assert header["precision"] == "fp32" and header["dla_core"] == -1


@pytest.mark.parametrize("cc, expected", [("8.7", "fp16"), ("6.1", "fp32"), ("5.3", "fp16"), ("5.2", "fp32")])
def test_auto_precision_follows_the_gpu_generation(oracle_model, backends, fake_trt, cc, expected):
    fake_trt.configure(gpu_cc=cc, fast_fp16=0)  # the builder's answer is not asked for
    backend = backends(oracle_model)
    assert backend.engine_info.precision == expected == backend.precision


@every_version
def test_no_builder_at_start_up_when_the_engine_is_cached(oracle_model, backends, fake_trt):
    """On 8.6 a Builder costs ~1.4 GB of RAM that is never freed (NVIDIA/TensorRT#3359): auto must not
    create one to ask about FP16, and a cached engine needs none at all."""
    backends(oracle_model)
    assert fake_trt.trt.STATS["builder"] == 1  # the build
    again = backends(oracle_model)
    assert not again.engine_info.built and again.engine_info.precision == "fp16"
    assert fake_trt.trt.STATS["builder"] == 1


@pytest.mark.parametrize("version, strong, expected", [
    ("8.6.1", False, 1), ("10.0.1", False, 0), ("10.13.0", False, 0), ("10.3.0", True, 2), ("11.0.0", True, 2)])
def test_network_flags(version, strong, expected):
    flags = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
    assert network_flags(types.SimpleNamespace(__version__=version, NetworkDefinitionCreationFlag=flags),
                         strong) == expected


def test_fast_fp16_table():
    assert has_fast_fp16((8, 7)) and has_fast_fp16((5, 3)) and has_fast_fp16((7, 0)) and has_fast_fp16((6, 2))
    assert not has_fast_fp16((6, 1)) and not has_fast_fp16((5, 2))
    assert resolve_precision("auto", (6, 1), 0) == "fp16"  # the DLA runs FP16
    assert resolve_precision("int8", (8, 7), -1) == "int8" and resolve_precision("auto", (8, 7), -1) != "int8"


@pytest.mark.parametrize("options, match", [
    ({"dla_core": 0, "precision": "fp32"}, "DLA runs FP16"),
    ({"dla_core": 2}, "has 1 DLA core;"),  # checked before Runtime.DLA_core is set (the fake records it)
    ({"device": "cpu"}, "device 'cpu'"),
    ({"precision": "bf16"}, "bf16 is not offered on TensorRT"),
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


@every_version
def test_fake_enforces_addresses_synchronize_and_lifetimes(oracle_model, fake_trt):
    """Drives the fakes the wrong ways the backend must avoid, and checks each is caught."""
    trt, cuda = fake_trt.trt, fake_trt.cuda
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    context.push()
    try:
        logger = trt.Logger()
        builder = trt.Builder(logger)
        network = builder.create_network(network_flags(trt))
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


# -- TensorRT 11: strong typing only; versions this backend does not know ---------------------------------
def test_fp16_on_strongly_typed_tensorrt_builds_from_the_fp16_copy(small_reference, backends, fake_trt, trt_version):
    """11 has no BuilderFlag.FP16: fp16 is a strongly typed network from the cached FP16 copy of the ONNX;
    8.6 and 10 keep the model's ONNX and the flag."""
    backend = backends(small_reference, precision="fp16")
    info = backend.engine_info
    header = fake_trt.trt.read_header(info.path.read_bytes())
    copies = list((fake_trt.engine_dir / "onnx-fp16").glob("*.onnx"))
    if trt_version.startswith("11"):
        assert not hasattr(fake_trt.trt.BuilderFlag, "FP16") and header["strongly_typed"]
        assert [c.name for c in copies] == [info.source] and "-fp16-" in info.source
        proto = onnx.load_from_string(header["onnx"])
        assert {i.data_type for i in proto.graph.initializer} == {onnx.TensorProto.FLOAT16}
        stamp = copies[0].stat().st_mtime_ns
        backends(small_reference, precision="fp16", force_rebuild=True)
        assert copies[0].stat().st_mtime_ns == stamp and fake_trt.builds() == 2  # the copy is cached
    else:
        assert not header["strongly_typed"] and copies == [] and info.source == small_reference.files.onnx.name
    assert header["precision"] == "fp16"


def test_a_tensorrt_newer_than_this_backend_knows_is_refused(oracle_model, fake_trt):
    fake_trt.configure(trt_version="12.0.1")
    with pytest.raises(BackendError, match=r"TensorRT 12\.0\.1 is newer than this backend knows .* 8\.6 to 11\.x"):
        create_backend("tensorrt", oracle_model)


@every_version
def test_tensorrt_cuda_start_failure_is_a_backend_error(oracle_model, fake_trt):
    """trt.Builder/Runtime raise pybind11's TypeError when TensorRT's CUDA start fails (NVIDIA/TensorRT#2913)."""
    fake_trt.configure(trt_init_fail=1)
    with pytest.raises(BackendError, match="TensorRT cannot start on this GPU.*CUDA error 35"):
        create_backend("tensorrt", oracle_model)
    assert fake_trt.cuda.retained() == 0


@pytest.mark.parametrize("dtype", ["FP8", "BF16"])
def test_an_output_numpy_cannot_hold_is_a_clear_error(oracle_model, fake_trt, trt_version, dtype):
    if dtype == "BF16" and trt_version.startswith("8."):
        dtype = "FP8"  # 8.6 has no BF16
    fake_trt.configure(trt_output_dtype=dtype)
    with pytest.raises(BackendError, match=f"tensor 'output_0' is {dtype}, which numpy cannot hold"):
        create_backend("tensorrt", oracle_model)


# -- batches of 1..N frames (several cameras, one engine) ------------------------------------------------
@every_version
def test_batches_of_one_to_max_batch(small_reference, backends, fake_trt):
    backend = backends(small_reference, precision="fp32", max_batch=3)
    assert backend.max_batch == 3 and backend.precision == "fp32" and "-b3-" in backend.engine_info.path.name
    header = fake_trt.trt.read_header(backend.engine_info.path.read_bytes())
    assert header["inputs"][0]["profile"] == [[1, 3, 64, 128], [3, 3, 64, 128], [3, 3, 64, 128]]
    ort = create_backend("onnxruntime", small_reference)
    batch = frames(small_reference, 1, seed=4, batch=3)[0]
    single = [ort.run(batch[i:i + 1]) for i in range(3)]
    for n in (3, 1, 2, 3):  # the input shape is set anew whenever n changes
        got = backend.run(batch[:n])
        assert got.shape == (n, *small_reference.output_shape[1:])
        np.testing.assert_allclose(got, np.concatenate(single[:n]), rtol=1e-5, atol=1e-5)
    with pytest.raises(BackendError, match=r"expected \(1\.\.3, 3, 64, 128\)"):
        backend.run(np.zeros((4, 3, 64, 128), np.float32))
    assert fake_trt.cuda.STATS["mem_alloc"] == 2  # buffers for the largest batch, allocated once


def test_max_batch_is_part_of_the_engine_key(oracle_model, backends, fake_trt):
    one = backends(oracle_model).engine_info.path
    two = backends(oracle_model, max_batch=2).engine_info
    assert two.built and two.path != one and fake_trt.builds() == 2


def test_the_fake_enforces_the_profile(small_reference, backends, fake_trt, caplog):
    backend = backends(small_reference, precision="fp32", max_batch=2)
    with backend._cuda_context.active():
        assert not backend._context.set_input_shape("input_0", (3, 3, 64, 128))  # above the profile's max
        assert not backend._context.set_input_shape("input_0", (1, 3, 64, 64))
        fresh = backend._engine.create_execution_context()
        for name, buffer in backend._device_buffers.items():
            fresh.set_tensor_address(name, int(buffer))
        assert fresh.get_tensor_shape("output_0")[0] == -1  # unknown until the input shape is set
        assert not fresh.execute_async_v3(backend._stream.handle)
        del fresh
    assert any("call set_input_shape" in r.message for r in caplog.records)


# -- INT8 from the QDQ model (explicit quantisation) -----------------------------------------------------------
@pytest.fixture(scope="module")
def qdq_files(oracle_dir, tmp_path_factory):
    """Symmetric (TensorRT's kind) and ONNX Runtime-default QDQ models of the oracle, made once."""
    from tensorrt_helpers import write_qdq

    folder = tmp_path_factory.mktemp("qdq")
    grids = np.random.default_rng(8).integers(0, len(PALETTE), (6, 4, 8))
    calibration = [(((block_image(g, 256, 128) / 255.0) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225])
                   .transpose(2, 0, 1)[None].astype(np.float32) for g in grids]
    onnx_path = oracle_dir / "fcn_resnet18.onnx"
    return {"symmetric": write_qdq(onnx_path, folder / "sym.onnx", calibration),
            "asymmetric": write_qdq(onnx_path, folder / "asym.onnx", calibration, symmetric=False)}


@pytest.fixture
def qdq_models(qdq_files, tmp_path, monkeypatch):
    """Makes one of the QDQ models (a private copy) "the installed one" (qdq.find_qdq_model)."""
    from segnet_ros.backends import qdq

    def install(which):
        path = None
        if which is not None:
            path = tmp_path / qdq_files[which].name
            shutil.copyfile(qdq_files[which], path)
        def find(onnx, directory=None, target="cpu"):
            assert target == "tensorrt"  # TensorRT's own kind of QDQ model (symmetric int8)
            return path

        monkeypatch.setattr(qdq, "find_qdq_model", find)
        return path

    return install


def test_int8_builds_from_the_qdq_model_and_keeps_the_oracle_grid(oracle_model, backends, fake_trt, qdq_models,
                                                                  trt_version, rng):
    path = qdq_models("symmetric")
    backend = backends(oracle_model, precision="int8")
    info = backend.engine_info
    header = fake_trt.trt.read_header(info.path.read_bytes())
    assert info.precision == backend.precision == header["precision"] == "int8" and info.source == path.name
    assert header["strongly_typed"] == trt_version.startswith("11")  # 8.6/10: the INT8 flag instead
    grid = rng.integers(1, len(PALETTE), (4, 8)).astype(np.uint8)
    np.testing.assert_array_equal(SegNet(oracle_model, backend).process(block_image(grid, 256, 128), "rgb8").grid,
                                  grid)


def test_the_qdq_model_is_part_of_the_engine_key(oracle_model, backends, fake_trt, qdq_models, tmp_path):
    first = qdq_models("symmetric")
    one = backends(oracle_model, precision="int8").engine_info.path
    proto = onnx.load(str(first))
    proto.doc_string = "re-quantised"
    onnx.save(proto, str(first))
    two = backends(oracle_model, precision="int8").engine_info
    assert two.built and two.path != one


def test_int8_without_a_qdq_model_gives_the_quantize_command(oracle_model, qdq_models):
    qdq_models(None)
    with pytest.raises(BackendError, match="segnet-ros quantize --model .* --target tensorrt"):
        create_backend("tensorrt", oracle_model, BackendOptions(precision="int8"))


def test_an_asymmetric_qdq_model_is_refused_with_the_reason(oracle_model, qdq_models):
    qdq_models("asymmetric")
    with pytest.raises(BackendError, match="symmetric INT8 Q/DQ only"):
        create_backend("tensorrt", oracle_model, BackendOptions(precision="int8"))


def test_the_fake_parser_and_builder_enforce_qdq_rules(oracle_model, fake_trt, qdq_models, trt_version):
    """Asymmetric Q/DQ does not parse anywhere; a weakly typed network with Q/DQ needs BuilderFlag.INT8; a
    strongly typed one refuses precision flags."""
    trt, cuda = fake_trt.trt, fake_trt.cuda
    symmetric, asymmetric = qdq_models("symmetric"), qdq_models("asymmetric")
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    context.push()
    try:
        logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(logger)
        parser = trt.OnnxParser(builder.create_network(network_flags(trt)), logger)
        assert not parser.parse_from_file(str(asymmetric))
        assert any("INT8 quantization only, the zero point is uint8" in str(parser.get_error(i))
                   for i in range(parser.num_errors))
        parser = trt.OnnxParser(builder.create_network(network_flags(trt)), logger)
        assert not parser.parse_from_file(str(symmetric))  # its biases are int32 Q/DQ: folded before parsing
        network = builder.create_network(network_flags(trt))
        parser = trt.OnnxParser(network, logger)
        assert parser.parse(qdq_for_tensorrt(symmetric), str(symmetric))
        config = builder.create_builder_config()
        if trt_version.startswith("11"):
            assert not hasattr(trt.BuilderFlag, "INT8") and not hasattr(builder, "platform_has_fast_fp16")
            assert builder.build_serialized_network(network, config) is not None
        else:
            assert builder.build_serialized_network(network, config) is None  # Q/DQ without the INT8 flag
            config.set_flag(trt.BuilderFlag.INT8)
            assert builder.build_serialized_network(network, config) is not None
        if trt_version.startswith("10"):
            strong = builder.create_network(network_flags(trt, strong=True))
            assert trt.OnnxParser(strong, logger).parse_from_file(str(oracle_model.files.onnx))
            config = builder.create_builder_config()
            config.set_flag(trt.BuilderFlag.FP16)
            assert builder.build_serialized_network(strong, config) is None
        del parser, network, config, builder
    finally:
        cuda.Context.pop()
    context.detach()


# -- the fakes behave as the real libraries do where the backend depends on it ---------------------------------
def test_fake_pycuda_detach_is_ignored_off_the_owning_thread(fake_trt):
    cuda = fake_trt.cuda
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    thread = threading.Thread(target=context.detach)
    thread.start()
    thread.join()
    assert cuda.retained() == 1  # pycuda assumed the owning thread was gone: the retain leaked
    other = cuda.Device(0).retain_primary_context()
    done = []

    def push_then_detach():
        other.push()
        other.detach()  # current here: released, and dropped from this thread's stack
        done.append(cuda.Context.get_current())

    thread = threading.Thread(target=push_then_detach)
    thread.start()
    thread.join()
    assert done == [None] and cuda.retained() == 1
    cuda._primary.clear()  # the leak above was the point


def test_fake_tensorrt_has_one_process_wide_logger(fake_trt):
    trt, cuda = fake_trt.trt, fake_trt.cuda
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    context.push()
    try:
        loggers = [trt.Logger(), trt.Logger()]
        first = trt.Runtime(loggers[0])
        second = trt.Runtime(loggers[1])
        assert any("replaced the process-wide one" in v for v in cuda.VIOLATIONS)
        del loggers
        assert first.deserialize_cuda_engine(b"garbage") is None  # TensorRT logs through a dangling pointer
        assert any("garbage-collected" in v for v in cuda.VIOLATIONS)
        cuda.VIOLATIONS.clear()
        del first, second
    finally:
        cuda.Context.pop()
    context.detach()
