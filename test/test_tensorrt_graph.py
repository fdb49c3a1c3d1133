"""The whole-frame graph on TensorRT (TensorRTBackend.graph_runner) against the fakes, for 8.6, 10.x and 11.x.

The runner's products are the ONNX Runtime graph's (fp32) and the host path's on the same backend (every
precision: the model's layers compute alike in both engines, so the bounds of test_graph.py hold). Around
that: the engine cache keeps graph engines apart from the model's and from each other's; dynamic batches;
mapped (zero-copy) memory on an integrated GPU, page-locked buffers and async copies on a discrete one; and
the wrapper's arithmetic stays float32 in FP16 and INT8 engines (weakly typed: pinned layers; TF32 cleared),
which the fakes compute as a GPU would, so a build that forgets either gives other bytes.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from graph_helpers import assert_graph_matches_host, camera_frames, host_products

from segnet_ros.backends import BackendOptions, create_backend, tensorrt_backend, tensorrt_build
from segnet_ros.backends.engine_cache import EngineKey
from segnet_ros.backends.graph import GRAPH_INPUT, GraphSpec, build_graph, spec_for
from segnet_ros.core.errors import BackendError
from segnet_ros.core.model import ModelFiles, load_model
from segnet_ros.core.segnet import SegNet, SegNetSettings

from oracle import PALETTE, block_image, palette_oracle
from tensorrt_helpers import version_fixture

trt_version = version_fixture()
pytestmark = pytest.mark.usefixtures("fake_trt")
every_version = pytest.mark.usefixtures("trt_version")
EXPLICIT_ALPHAS = "0 0 0\n255 0 0 200\n0 255 0\n0 0 255 90\n255 255 0\n0 255 255 254\n255 0 255\n255 255 255\n"

# camera configurations: (settings, width, height, encoding, mask size); odd sizes, a camera smaller than the
# network, OpenCV's exact halving, both resize and filter modes, alpha 0 / 150 / 255, ignore_class on and off
CONFIGS = {
    "bgra8-odd": (SegNetSettings(), 333, 187, "bgra8", (160, 90)),
    "mono8-small": (SegNetSettings(resize="nearest", filter_mode="point", overlay_alpha=0, ignore_class=""),
                    200, 100, "mono8", "grid"),
    "rgb8-half": (SegNetSettings(overlay_alpha=255), 512, 256, "rgb8", "input"),
}


@pytest.fixture(scope="module")
def alpha_oracle(tmp_path_factory):
    """The palette oracle with explicit alphas on some classes: the overlay's per-pixel alpha path too."""
    return load_model(ModelFiles.in_folder(palette_oracle(tmp_path_factory.mktemp("alpha"),
                                                          colors_text=EXPLICIT_ALPHAS)))


@pytest.fixture(scope="module")
def qdq_file(alpha_oracle, tmp_path_factory):
    """A symmetric QDQ model of the oracle (TensorRT's kind), made once."""
    from tensorrt_helpers import write_qdq

    grids = np.random.default_rng(8).integers(0, len(PALETTE), (6, 4, 8))
    calibration = [(((block_image(g, 256, 128) / 255.0) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225])
                   .transpose(2, 0, 1)[None].astype(np.float32) for g in grids]
    return write_qdq(alpha_oracle.files.onnx, tmp_path_factory.mktemp("qdq") / "sym.onnx", calibration)


@pytest.fixture
def installed_qdq(qdq_file, monkeypatch):
    from segnet_ros.backends import qdq

    monkeypatch.setattr(qdq, "find_qdq_model", lambda onnx_path, directory=None, target="cpu": qdq_file)
    return qdq_file


def spec_of(model, name: str, batch: int | None = None) -> tuple[GraphSpec, SegNetSettings]:
    settings, width, height, encoding, mask = CONFIGS[name]
    return spec_for(model, settings, width, height, encoding, mask_size=mask, batch=batch), settings


def onnx_runtime_graph(model, spec, frames: np.ndarray, proto=None) -> dict[str, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(build_graph(model, spec, proto).SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {GRAPH_INPUT: frames}), strict=True))


def check_against_host(model, backend, runner, settings: SegNetSettings, frames: np.ndarray) -> dict[str, np.ndarray]:
    """The runner's products for ``frames`` (one call) equal the host path's on the same backend, frame by frame."""
    got = {name: value.copy() for name, value in runner.run(frames).items()}
    net = SegNet(model, backend, settings)
    for i, frame in enumerate(frames):
        host, seg = host_products(net, frame, runner.spec.encoding, runner.spec.mask_size, runner.spec.outputs)
        assert_graph_matches_host({name: value[i] for name, value in got.items()}, host, seg)
    return got


# -- equal answers ---------------------------------------------------------------------------------------------
@every_version
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_graph_equals_the_host_path_and_onnx_runtimes_graph(alpha_oracle, backends, installed_qdq, precision,
                                                            config, rng):
    """Two frames of one camera in one call: the host path's products on the same backend (same precision);
    in fp32 also the ONNX Runtime graph's, byte for byte (TF32 is cleared, so nothing rounds)."""
    backend = backends(alpha_oracle, precision=precision, max_batch=2)
    spec, settings = spec_of(alpha_oracle, config)
    runner = backend.graph_runner(spec)
    assert runner.engine_info.precision == precision and runner.spec == spec
    frames = camera_frames(rng, 2, spec.width, spec.height, spec.encoding)
    got = check_against_host(alpha_oracle, backend, runner, settings, frames)
    if precision == "fp32":
        reference = onnx_runtime_graph(alpha_oracle, spec, frames)
        assert set(reference) == set(got) == set(spec.outputs)
        for name, value in reference.items():
            np.testing.assert_array_equal(got[name], value, err_msg=name)


@every_version
def test_only_the_outputs_asked_for_are_bound_and_returned(oracle_model, backends, rng):
    backend = backends(oracle_model, precision="fp32")
    spec = spec_for(oracle_model, SegNetSettings(), 256, 128, "bgr8", outputs=("class_mask", "histogram"))
    runner = backend.graph_runner(spec)
    frames = camera_frames(rng, 1, 256, 128, "bgr8")
    got = runner.run(frames)
    assert set(got) == {"class_mask", "histogram"}
    assert got["class_mask"].shape == (1, 128, 256) and got["histogram"].dtype == np.int32
    grid = SegNet(oracle_model, backend).process(frames[0], "bgr8").grid
    np.testing.assert_array_equal(got["class_mask"][0][::32, ::32], grid)
    assert got["histogram"][0].sum() == 256 * 128


def test_palette_blocks_give_the_oracle_grid_and_the_hosts_pictures(oracle_model, backends):
    """Clean palette blocks in fp16: the runner's class mask at grid size is the oracle's grid, its pictures
    the host's."""
    backend = backends(oracle_model, precision="fp16")
    grid = np.array([[1, 2, 3, 4, 5, 6, 7, 1], [2, 3, 4, 5, 6, 7, 1, 2], [3, 4, 5, 6, 7, 1, 2, 3],
                     [4, 5, 6, 7, 1, 2, 3, 4]], np.uint8)
    frame = block_image(grid, 256, 128).astype(np.uint8)
    spec = spec_for(oracle_model, SegNetSettings(), 256, 128, "rgb8", mask_size="grid")
    got = backend.graph_runner(spec).run(frame[None])
    np.testing.assert_array_equal(got["class_mask"][0], grid)
    host, seg = host_products(SegNet(oracle_model, backend), frame, spec.encoding, spec.mask_size, spec.outputs)
    assert_graph_matches_host({k: v[0] for k, v in got.items()}, host, seg)


# -- the wrapper stays float32 in FP16 and INT8 engines ----------------------------------------------------------
@pytest.mark.parametrize("trt_version", ["8.6.1", "10.3.0"], indirect=True)
def test_weakly_typed_fp16_pins_the_wrapper_to_fp32(alpha_oracle, backends, monkeypatch, rng, trt_version,
                                                     tmp_path):
    """8.6 and 10 build fp16 weakly typed: unpinned, TensorRT may run the wrapper's layers in FP16 (the fake
    does), and the products are no longer the host's. (With OpenCV's linear resize, whose exact integers reach
    2**24, FP16 overflows outright; nearest shows the subtler damage.)"""
    settings = SegNetSettings(resize="nearest")
    spec = spec_for(alpha_oracle, settings, 320, 200, "bgr8", mask_size=(160, 100))
    frames = camera_frames(rng, 1, spec.width, spec.height, spec.encoding)
    pinned = []
    keep = tensorrt_build.keep_graph_in_fp32
    monkeypatch.setattr(tensorrt_build, "keep_graph_in_fp32", lambda *a: pinned.append(keep(*a)) or pinned[-1])
    backend = backends(alpha_oracle, precision="fp16")
    check_against_host(alpha_oracle, backend, backend.graph_runner(spec), settings, frames)
    assert pinned and pinned[0] > 100  # every float layer of the wrapper, constants included

    def no_pins(trt, network, config, names, strong, precision):
        return keep(trt, network, config, names, strong, "fp32")  # clears TF32 only

    monkeypatch.setattr(tensorrt_build, "keep_graph_in_fp32", no_pins)
    unpinned = backends(alpha_oracle, precision="fp16", engine_cache_dir=str(tmp_path / "unpinned"))
    with pytest.raises(AssertionError, match="color_mask"):  # the colour weights, rounded to 11 bits
        check_against_host(alpha_oracle, unpinned, unpinned.graph_runner(spec), settings, frames)


@every_version
def test_tf32_is_cleared_for_the_colour_weights(alpha_oracle, backends, monkeypatch, rng, fake_trt, tmp_path):
    """TensorRT enables TF32 by default; on Ampere and later (the fake Orin is 8.7) it would round the colour
    MatMul's weights to 10 bits and move colour-mask bytes."""
    spec, settings = spec_of(alpha_oracle, "bgra8-odd")
    frames = camera_frames(rng, 1, spec.width, spec.height, spec.encoding)
    backend = backends(alpha_oracle, precision="fp32")
    header = fake_trt.trt.read_header(backend.graph_runner(spec).engine_info.path.read_bytes())
    assert header["numerics"]["tf32"] == []
    keep = tensorrt_build.keep_graph_in_fp32

    def tf32_left_on(trt, network, config, names, strong, precision):
        pinned = keep(trt, network, config, names, strong, precision)
        config.set_flag(trt.BuilderFlag.TF32)
        return pinned

    monkeypatch.setattr(tensorrt_build, "keep_graph_in_fp32", tf32_left_on)
    sloppy = backends(alpha_oracle, precision="fp32", engine_cache_dir=str(tmp_path / "tf32"))
    runner = sloppy.graph_runner(spec)
    assert fake_trt.trt.read_header(runner.engine_info.path.read_bytes())["numerics"]["tf32"]
    got = runner.run(frames)
    assert not np.array_equal(got["color_mask"], onnx_runtime_graph(alpha_oracle, spec, frames)["color_mask"])


def test_strongly_typed_fp16_wraps_the_fp16_copy_and_sets_no_constraints(alpha_oracle, backends, fake_trt, rng):
    """11: the wrapper goes around the FP16 copy of the model (wrapped after converting it), so the graph's own
    types keep it float32; precision constraints there would be an API usage error (a violation in the fake)."""
    fake_trt.configure(trt_version="11.0.0")
    backend = backends(alpha_oracle, precision="fp16")
    spec, settings = spec_of(alpha_oracle, "rgb8-half")
    runner = backend.graph_runner(spec)
    assert "-fp16-" in runner.engine_info.source
    header = fake_trt.trt.read_header(runner.engine_info.path.read_bytes())
    proto = onnx.load_from_string(header["onnx"])
    types = {t.name: t.data_type for t in proto.graph.initializer}
    assert {types[n] for n in types if n.startswith("segnet_graph/") and types[n] in (1, 10)} == {1}
    assert onnx.TensorProto.FLOAT16 in types.values() and header["strongly_typed"]
    check_against_host(alpha_oracle, backend, runner, settings, camera_frames(rng, 1, 512, 256, "rgb8"))


# -- the engine cache ----------------------------------------------------------------------------------------
def test_graph_engines_have_keys_of_their_own(alpha_oracle, backends, fake_trt):
    """The key adds the whole spec (camera size, encoding, outputs, colours...) and the wrapper's digest: a graph
    engine never collides with the model's or another camera's; the same spec again is loaded, not built."""
    backend = backends(alpha_oracle, precision="fp16")
    plain = backend.engine_info.path
    assert fake_trt.builds() == 1
    spec, _ = spec_of(alpha_oracle, "bgra8-odd")
    assert spec.batch is None  # 1..max_batch frames
    first = backend.graph_runner(spec).engine_info
    assert first.built and first.path != plain and fake_trt.builds() == 2
    assert "-333x187-bgra8-graph-fp16-" in first.path.name
    note = json.loads(first.path.with_suffix(".json").read_text())
    assert json.loads(note["graph"])["encoding"] == "bgra8" and len(note["graph_sha256"]) == 64
    assert "graph" not in json.loads(plain.with_suffix(".json").read_text())
    others = [spec.__class__(**{**spec.__dict__, **change}) for change in
              ({"width": 334}, {"encoding": "rgba8"}, {"outputs": frozenset({"overlay"})},
               {"colors": np.asarray(spec.colors) * 0.5}, {"batch": 1})]
    paths = {first.path}
    for count, other in enumerate(others, start=3):
        info = backend.graph_runner(other).engine_info
        assert info.built and info.path not in paths and fake_trt.builds() == count
        paths.add(info.path)
    again = backend.graph_runner(spec).engine_info
    assert not again.built and again.path == first.path and fake_trt.builds() == len(others) + 2
    restarted = backends(alpha_oracle, precision="fp16")  # another process: both engines come from the cache
    assert not restarted.engine_info.built and not restarted.graph_runner(spec).engine_info.built
    assert fake_trt.builds() == len(others) + 2


def test_a_changed_graph_builder_never_serves_an_old_engine(alpha_oracle, backends, fake_trt, monkeypatch):
    backend = backends(alpha_oracle, precision="fp32")
    spec, _ = spec_of(alpha_oracle, "rgb8-half")
    first = backend.graph_runner(spec).engine_info
    build = tensorrt_backend.build_graph

    def changed(model, spec, proto=None):  # what a later graph.py might make of the same spec
        wrapped = build(model, spec, proto)
        for node in wrapped.graph.node:
            if node.op_type == "Floor":
                node.name += "_renamed"
                break
        return wrapped

    monkeypatch.setattr(tensorrt_backend, "build_graph", changed)
    second = backend.graph_runner(spec).engine_info
    assert second.built and second.path != first.path and fake_trt.builds() == 3


def test_the_bare_models_engine_keeps_its_name():
    """Bare-model keys leave the graph fields out of the digest: engines cached before graphs existed still load."""
    import hashlib
    from dataclasses import asdict

    from segnet_ros.backends.engine_cache import KEY_FORMAT

    key = EngineKey(onnx_sha256="a" * 64, tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7",
                    precision="fp16", dla_core=-1)
    fields = {k: v for k, v in asdict(key).items() if k not in ("graph", "graph_sha256")}
    before = hashlib.sha256(json.dumps({"key_format": KEY_FORMAT, **fields}, sort_keys=True).encode()).hexdigest()
    assert key.digest() == before
    graph = EngineKey(**{**asdict(key), "graph": "{}", "graph_sha256": "b" * 64})
    assert graph.digest() != before and "-graph-" in graph.file_name("m") and "-graph-" not in key.file_name("m")


# -- batches -------------------------------------------------------------------------------------------------
@every_version
def test_a_dynamic_batch_takes_one_to_max_batch_frames(oracle_model, backends, fake_trt, rng):
    """spec.batch None: an optimisation profile for the camera input, 1..max_batch; each frame of a batch gets
    its single-frame products; buffers are allocated once, for the largest batch."""
    backend = backends(oracle_model, precision="fp32", max_batch=3)
    spec = spec_for(oracle_model, SegNetSettings(), 320, 200, "bgr8", batch=None)
    runner = backend.graph_runner(spec)
    header = fake_trt.trt.read_header(runner.engine_info.path.read_bytes())
    assert header["inputs"] == [{"name": "camera", "shape": [-1, 200, 320, 3], "dtype": "UINT8",
                                 "profile": [[1, 200, 320, 3], [3, 200, 320, 3], [3, 200, 320, 3]]}]
    frames = camera_frames(rng, 3, 320, 200, "bgr8")
    single = [{k: v.copy() for k, v in runner.run(frames[i:i + 1]).items()} for i in range(3)]
    stats = dict(fake_trt.cuda.STATS)
    for n in (3, 1, 2, 3):
        got = runner.run(frames[:n])
        for name, value in got.items():
            assert value.shape[0] == n
            expected = np.concatenate([s[name] for s in single[:n]])
            if name == "confidence":  # ONNX Runtime's Exp may round a value's last bit by its place in the batch
                assert np.abs(value.astype(int) - expected).max() <= 1 and (value != expected).mean() < 0.05
            else:
                np.testing.assert_array_equal(value, expected, err_msg=name)
    for counter in ("mem_alloc", "pagelocked_empty", "stream"):
        assert fake_trt.cuda.STATS[counter] == stats.get(counter, 0)
    with pytest.raises(BackendError, match=r"expected \(1\.\.3, 200, 320, 3\) uint8 \(bgr8\)"):
        runner.run(np.zeros((4, 200, 320, 3), np.uint8))


def test_a_fixed_batch_takes_exactly_that_many_frames(oracle_model, backends, fake_trt, rng):
    backend = backends(oracle_model, precision="fp32")
    spec = spec_for(oracle_model, SegNetSettings(), 256, 128, "rgb8", batch=2)
    runner = backend.graph_runner(spec)
    assert runner.max_batch == 2 and not runner.dynamic
    assert fake_trt.trt.read_header(runner.engine_info.path.read_bytes())["inputs"][0]["profile"] is None
    frames = camera_frames(rng, 2, 256, 128, "rgb8")
    assert runner.run(frames)["overlay"].shape == (2, 128, 256, 3)
    for wrong in (frames[:1], frames[..., :2], frames.astype(np.int16)):
        with pytest.raises(BackendError, match=r"expected \(2, 128, 256, 3\) uint8"):
            runner.run(wrong)


def test_mono_frames_may_come_without_their_channel_axis(oracle_model, backends, rng):
    runner = backends(oracle_model, precision="fp32").graph_runner(
        spec_for(oracle_model, SegNetSettings(), 256, 128, "mono8"))
    frames = camera_frames(rng, 1, 256, 128, "mono8")
    expected = {k: v.copy() for k, v in runner.run(frames).items()}
    for name, value in runner.run(frames[..., 0]).items():
        np.testing.assert_array_equal(value, expected[name])


# -- memory: mapped on a Jetson, copies on a discrete GPU ------------------------------------------------------
def test_an_integrated_gpu_uses_mapped_memory_and_no_copies(oracle_model, backends, fake_trt, rng):
    fake_trt.configure(gpu_integrated=1)
    backend = backends(oracle_model, precision="fp16")
    cuda = fake_trt.cuda
    before = dict(cuda.STATS)
    spec = spec_for(oracle_model, SegNetSettings(), 320, 200, "bgra8")
    runner = backend.graph_runner(spec)
    assert runner.mapped and "mapped host memory" in runner.describe()
    assert cuda.STATS["mem_alloc"] == before["mem_alloc"]  # no device buffers at all
    assert cuda.STATS["pagelocked_mapped"] == cuda.STATS["get_device_pointer"] == 1 + len(spec.outputs)
    frames = camera_frames(rng, 1, 320, 200, "bgra8")
    runs = 5
    for _ in range(runs):
        got = runner.run(frames)
    assert cuda.STATS["htod"] == cuda.STATS["dtoh"] == 0
    assert cuda.STATS["synchronize"] == runs
    for name, value in got.items():  # the products are read where the engine wrote them
        assert cuda.is_pagelocked(value) and value.base is not None, name
    host, seg = host_products(SegNet(oracle_model, backend), frames[0], spec.encoding, spec.mask_size, spec.outputs)
    assert_graph_matches_host({k: v[0] for k, v in got.items()}, host, seg)


@pytest.mark.parametrize("settings", [{"gpu_integrated": 0}, {"gpu_integrated": 1, "gpu_can_map_host": 0}])
def test_a_discrete_gpu_copies_through_page_locked_buffers_on_one_stream(oracle_model, backends, fake_trt, rng,
                                                                          settings):
    """One copy in, the engine and one copy out per output, all queued on one stream, then one synchronize
    (the fake runs the queue only then: a product read before it would be stale); nothing allocated per call."""
    fake_trt.configure(**settings)
    backend = backends(oracle_model, precision="fp16")
    cuda = fake_trt.cuda
    before = dict(cuda.STATS)
    spec = spec_for(oracle_model, SegNetSettings(), 320, 200, "rgb8")
    runner = backend.graph_runner(spec)
    assert not runner.mapped and "page-locked buffers" in runner.describe()
    tensors = 1 + len(spec.outputs)
    assert cuda.STATS["mem_alloc"] - before["mem_alloc"] == tensors
    assert cuda.STATS["pagelocked_empty"] - before["pagelocked_empty"] == tensors
    assert cuda.STATS["pagelocked_mapped"] == 0 and cuda.STATS["stream"] - before["stream"] == 1
    frames = camera_frames(rng, 1, 320, 200, "rgb8")
    allocated = {k: cuda.STATS[k] for k in ("mem_alloc", "pagelocked_empty", "stream")}
    runs = 4
    for _ in range(runs):
        got = runner.run(frames)
    assert {k: cuda.STATS[k] for k in allocated} == allocated
    assert cuda.STATS["htod"] - before.get("htod", 0) == runs
    assert cuda.STATS["dtoh"] - before.get("dtoh", 0) == runs * len(spec.outputs)
    host, seg = host_products(SegNet(oracle_model, backend), frames[0], spec.encoding, spec.mask_size, spec.outputs)
    assert_graph_matches_host({k: v[0] for k, v in got.items()}, host, seg)


def test_the_runner_does_no_per_pixel_work_on_the_host(oracle_model, backends, monkeypatch, rng):
    """Pre-processing, argmax and rendering on the host would be the bottleneck the graph removes: the runner
    never calls them."""
    from segnet_ros.core import classify, preprocess, render

    backend = backends(oracle_model, precision="fp16")
    runner = backend.graph_runner(spec_for(oracle_model, SegNetSettings(), 320, 200, "bgr8"))
    frames = camera_frames(rng, 1, 320, 200, "bgr8")

    def forbidden(*args, **kwargs):
        raise AssertionError("host per-pixel work on the graph path")

    for module in (classify, preprocess, render):
        for name in dir(module):
            value = getattr(module, name)
            if isinstance(value, type) and value.__module__ == module.__name__:
                for attribute, member in list(vars(value).items()):
                    if callable(member) and not attribute.startswith("__"):
                        monkeypatch.setattr(value, attribute, forbidden)
            elif callable(value) and getattr(value, "__module__", "") == module.__name__:
                monkeypatch.setattr(module, name, forbidden)
    assert set(runner.run(frames)) == set(runner.spec.outputs)


# -- life cycle ----------------------------------------------------------------------------------------------
@every_version
def test_closing_the_backend_closes_its_runners(oracle_model, fake_trt, rng):
    """The backend frees its runners' contexts, engines and buffers before the runtime and the CUDA context (the
    fakes record any other order); a runner closed twice, or used after, is a clear error, not a crash."""
    backend = create_backend("tensorrt", oracle_model, BackendOptions(precision="fp16"))
    spec = spec_for(oracle_model, SegNetSettings(), 320, 200, "rgb8")
    first, second = backend.graph_runner(spec), backend.graph_runner(spec)
    frames = camera_frames(rng, 1, 320, 200, "rgb8")
    first.run(frames)
    first.close()
    first.close()
    with pytest.raises(BackendError, match="graph runner is closed"):
        first.run(frames)
    del frames
    second.run(camera_frames(rng, 1, 320, 200, "rgb8"))
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        second.run(camera_frames(rng, 1, 320, 200, "rgb8"))
    with pytest.raises(BackendError, match="backend is closed"):
        backend.graph_runner(spec)
    assert fake_trt.cuda.retained() == 0


def test_a_model_that_cannot_batch_is_refused_for_a_dynamic_graph(tmp_path, backends):
    """build_graph's ValueError (a Reshape to a fixed batch of 1) becomes a BackendError that says why."""
    from onnx import TensorProto, helper, numpy_helper

    folder = palette_oracle(tmp_path / "fixed")
    proto = onnx.load(str(folder / "fcn_resnet18.onnx"))
    proto.graph.node[-1].output[0] = "raw"
    proto.graph.initializer.append(numpy_helper.from_array(np.array([1, 8, 4, 8], np.int64), "fixed_shape"))
    proto.graph.node.append(helper.make_node("Reshape", ["raw", "fixed_shape"], ["output_0"], name="fixed"))
    assert proto.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    onnx.save(proto, str(folder / "fcn_resnet18.onnx"))
    model = load_model(ModelFiles.in_folder(folder))
    backend = backends(model, precision="fp32")
    with pytest.raises(BackendError, match="whole-frame graph .*fixed batch of 1"):
        backend.graph_runner(spec_for(model, SegNetSettings(), 256, 128, batch=2))


def test_tensorrt_runs_the_graph_by_default(oracle_model, backends):
    backend = backends(oracle_model)
    assert backend.graph_by_default and backend.runs_graph


# -- the fakes keep the contracts this path relies on -----------------------------------------------------------
def test_fake_mapped_memory_follows_pycuda(fake_trt):
    """DEVICEMAP memory has a device pointer to the very same bytes; other page-locked memory has none; a context
    released while mapped memory lives is a leak, as for device memory (what a runner's caller holding products
    past close() would cause)."""
    cuda = fake_trt.cuda
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    context.push()
    plain = cuda.pagelocked_empty((2, 3), np.int32)
    with pytest.raises(cuda.LogicError, match="DEVICEMAP"):
        plain.base.get_device_pointer()
    mapped = cuda.pagelocked_empty((2, 3), np.int32, mem_flags=cuda.host_alloc_flags.DEVICEMAP)
    block = cuda.block_at(mapped.base.get_device_pointer(), mapped.nbytes, "test")
    mapped[:] = 7
    assert np.frombuffer(bytes(block.data[:mapped.nbytes]), np.int32).tolist() == [7] * 6
    block.data[:4] = np.int32(-1).tobytes()
    assert mapped[0, 0] == -1 and cuda.is_pagelocked(mapped[1:]) and not cuda.is_pagelocked(np.zeros(3))
    del plain, block
    context.detach()  # current here: released, with `mapped` alive
    assert any("1 mapped host allocation(s) never freed" in v for v in cuda.VIOLATIONS), cuda.VIOLATIONS
    del mapped
    assert any("freed with no CUDA context current" in v for v in cuda.VIOLATIONS)
    cuda.VIOLATIONS.clear()


def test_fake_cannot_map_where_the_device_cannot(fake_trt):
    fake_trt.configure(gpu_can_map_host=0)
    cuda = fake_trt.cuda
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    context.push()
    mapped = cuda.pagelocked_empty(4, np.uint8, mem_flags=cuda.host_alloc_flags.DEVICEMAP)
    with pytest.raises(cuda.LogicError, match="cannot map host memory"):
        mapped.base.get_device_pointer()
    del mapped
    cuda.Context.pop()
    context.detach()


X = np.array([[3.0, 5.0, 7.0, 11.0]], np.float32)
SCALE = np.array([0.1, 0.2, 0.3, 0.4], np.float32) * np.float32(1.0001)  # no float16 holds these
WEIGHTS = np.eye(4, dtype=np.float32) * np.float32(1 + 2 ** -12)  # TF32 rounds them to 1


@pytest.fixture
def fake_engine(fake_trt):
    """Builds a two-layer network (y = x * SCALE, z = x @ WEIGHTS) with the fake TensorRT of this test and
    computes it: (header, {output: values}, the logger's records)."""
    from onnx import TensorProto, helper, numpy_helper

    from segnet_ros.backends.tensorrt_build import network_flags

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "scale"], ["y"], name="scale_layer"),
         helper.make_node("MatMul", ["x", "weights"], ["z"], name="matmul_layer")], "numerics",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("y", "z")],
        [numpy_helper.from_array(SCALE, "scale"), numpy_helper.from_array(WEIGHTS, "weights")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    trt, cuda = fake_trt.trt, fake_trt.cuda
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    context.push()
    messages = []

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity, msg) -> None:
            messages.append(msg)

    logger = Logger()
    kept = []

    def build(flags=(), clear=(), pin: bool = False, strong: bool = False):
        builder = trt.Builder(logger)
        network = builder.create_network(network_flags(trt, strong))
        parser = trt.OnnxParser(network, logger)
        assert parser.parse(model.SerializeToString())
        config = builder.create_builder_config()
        for flag in flags:
            config.set_flag(getattr(trt.BuilderFlag, flag))
        for flag in clear:
            config.clear_flag(getattr(trt.BuilderFlag, flag))
        if pin:
            for index in range(network.num_layers):
                layer = network.get_layer(index)
                layer.precision = trt.float32
                layer.set_output_type(0, trt.float32)
        serialized = builder.build_serialized_network(network, config)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(serialized)
        outputs = dict(zip(("y", "z"), engine.run({"x": X}), strict=True))
        kept.append([engine, runtime])
        return trt.read_header(serialized), outputs, messages

    yield build
    for pair in kept:  # an engine goes before its runtime
        del pair[0]
    kept.clear()
    cuda.Context.pop()
    context.detach()


def _onnxruntime_rounds_through_float16() -> bool:
    """Whether this ONNX Runtime rounds a float -> float16 -> float Cast pair (1.12 passes the values through,
    even with its optimisations off), which is how the fake computes a layer run in FP16."""
    import onnxruntime
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
         helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return float(session.run(None, {"x": np.array([1.0001], np.float32)})[0][0]) == 1.0


@pytest.mark.skipif(not _onnxruntime_rounds_through_float16(),
                    reason="this ONNX Runtime does not round float16 round trips: the fake cannot show FP16 layers")
@pytest.mark.parametrize("trt_version", ["8.6.1", "10.3.0"], indirect=True)
def test_fake_weakly_typed_fp16_keeps_only_pinned_layers_in_fp32(trt_version, fake_engine):
    exact = X * SCALE
    _, unpinned, _ = fake_engine(["FP16"])
    assert not np.array_equal(unpinned["y"], exact)
    np.testing.assert_array_equal(unpinned["y"], (X.astype(np.float16) * SCALE.astype(np.float16))
                                  .astype(np.float16).astype(np.float32))
    _, ignored, messages = fake_engine(["FP16"], pin=True)  # constraints without OBEY_PRECISION_CONSTRAINTS
    assert not np.array_equal(ignored["y"], exact) and any("neither OBEY" in m for m in messages)
    _, pinned, _ = fake_engine(["FP16", "OBEY_PRECISION_CONSTRAINTS"], clear=["TF32"], pin=True)
    np.testing.assert_array_equal(pinned["y"], exact)
    np.testing.assert_array_equal(pinned["z"], X @ WEIGHTS)


@pytest.mark.parametrize("capability, rounds", [("8.7", True), ("7.2", False)])  # Orin, Xavier
def test_fake_tf32_is_on_by_default_from_ampere(fake_trt, request, capability, rounds):
    fake_trt.configure(gpu_cc=capability)
    fake_engine = request.getfixturevalue("fake_engine")
    header, outputs, _ = fake_engine()
    assert bool(header["numerics"]["tf32"]) == rounds
    assert np.array_equal(outputs["z"], X) == rounds  # TF32 rounds 1 + 2**-12 to 1
    _, outputs, _ = fake_engine(clear=["TF32"])
    np.testing.assert_array_equal(outputs["z"], X @ WEIGHTS)


@pytest.mark.parametrize("trt_version", ["10.3.0", "11.0.0"], indirect=True)
def test_fake_refuses_precision_constraints_on_a_strongly_typed_network(trt_version, fake_engine, fake_trt):
    fake_engine(pin=True, strong=True)
    violations = list(fake_trt.cuda.VIOLATIONS)
    fake_trt.cuda.VIOLATIONS.clear()
    assert violations and all("not allowed in a strongly typed network" in v for v in violations)
