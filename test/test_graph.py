"""The whole-frame graph (segnet_ros/backends/graph.py) against the host path, on ONNX Runtime's CPU provider.

Class masks, histograms, colour masks and the network's input tensor must be the host's, byte for byte; so
must the overlay where this CPU's OpenCV rounds its blend once (fused multiply-add: AVX2, NEON), as the graph
does; elsewhere it may differ by one level on at most 0.1% of its bytes. Confidence may differ by one level
only in cells whose 255p sits on a level's edge: ONNX Runtime's Exp is not numpy's (the float32 results may
differ in the last bit). Most cases use the palette oracle (a tiny network whose classes follow the picture),
so every configuration costs milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import onnx
import pytest
from graph_helpers import CHANNELS, FUSED, assert_graph_matches_host, camera_frames, host_products

from segnet_ros.backends import create_backend
from segnet_ros.backends.graph import (
    GRAPH_INPUT,
    OUTPUTS,
    PREFIX,
    GraphSpec,
    build_graph,
    resize_linear_reference,
    spec_for,
)
from segnet_ros.backends.onnx_rewrite import fp16_model
from segnet_ros.core.model import ModelFiles, load_model
from segnet_ros.core.outputs import parse_mask_size
from segnet_ros.core.preprocess import Preprocessor
from segnet_ros.core.segnet import SegNet, SegNetSettings

from oracle import assert_truncated, palette_oracle, ref_class_mask, ref_colors, ref_overlay

EXPLICIT_ALPHAS = "0 0 0\n255 0 0 200\n0 255 0\n0 0 255 90\n255 255 0\n0 255 255 254\n255 0 255\n255 255 255\n"


def session(graph):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(graph, frames: np.ndarray) -> dict[str, np.ndarray]:
    runner = session(graph)
    names = [o.name for o in runner.get_outputs()]
    return dict(zip(names, runner.run(names, {GRAPH_INPUT: frames}), strict=True))


@pytest.fixture(scope="module")
def explicit_oracle(tmp_path_factory):
    """The palette oracle with explicit alphas on some classes: the overlay's per-pixel alpha path."""
    return load_model(ModelFiles.in_folder(palette_oracle(tmp_path_factory.mktemp("alpha"),
                                                          colors_text=EXPLICIT_ALPHAS)))


@dataclass(frozen=True)
class Case:
    encoding: str
    size: tuple[int, int]
    resize: str = "linear"
    filter_mode: str = "linear"
    alpha: int = 150
    ignore: str = "void"
    mask: str | tuple[int, int] = "input"
    batch: int | None = 1
    frames: int = 1
    explicit: bool = False  # the oracle with explicit alphas

    def __str__(self) -> str:
        return (f"{self.encoding}-{self.size[0]}x{self.size[1]}-{self.resize}-{self.filter_mode}-a{self.alpha}-"
                f"{self.ignore or 'none'}-{self.mask}-n{self.frames}{'-explicit' if self.explicit else ''}")


DEPTH = (160, 120)
# Every encoding, odd sizes, cameras smaller than the network (256x128), exactly twice its size (OpenCV's
# 2x2 area shortcut), both resize and filter modes, alpha 0/150/255 (and 77), ignore on and off, every
# mask size, and batches (fixed and dynamic).
CASES = [
    Case("rgb8", (256, 128), batch=2, frames=2),
    Case("bgr8", (331, 197), filter_mode="point", alpha=0, ignore="", mask="grid"),
    Case("rgba8", (97, 61), resize="nearest", alpha=255, mask="50x30"),
    Case("bgra8", (512, 256), ignore="", mask="depth"),
    Case("mono8", (203, 157), resize="nearest", filter_mode="point", batch=None, frames=3),
    Case("bgr8", (255, 129), resize="nearest", alpha=77, explicit=True),
    Case("rgb8", (641, 359), ignore="", explicit=True, batch=None, frames=2),
    Case("bgra8", (128, 64), filter_mode="point", alpha=0, mask=(700, 300), explicit=True),
    Case("rgba8", (300, 170), alpha=255, mask="grid", explicit=True),
    Case("mono8", (64, 32), alpha=0, ignore="", mask=(31, 17)),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_graph_equals_the_host_path(case, oracle_model, explicit_oracle, rng):
    model = explicit_oracle if case.explicit else oracle_model
    settings = SegNetSettings(case.resize, case.filter_mode, case.alpha, case.ignore)
    width, height = case.size
    spec = spec_for(model, settings, width, height, case.encoding, mask_size=case.mask, batch=case.batch,
                    depth_size=DEPTH)
    frames = camera_frames(rng, case.frames, width, height, case.encoding)
    got = run(build_graph(model, spec), frames)
    assert list(got) == list(OUTPUTS)
    net = SegNet(model, create_backend("onnxruntime", model), settings)
    mask = case.mask
    if isinstance(mask, str):
        mask = {"input": None, "grid": (8, 4), "depth": DEPTH}[mask] if mask in ("input", "grid", "depth") \
            else parse_mask_size(mask)
    for i, frame in enumerate(frames):
        host, seg = host_products(net, frame, case.encoding, mask)
        assert_graph_matches_host({name: value[i] for name, value in got.items()}, host, seg)


def test_the_reference_network_in_a_batch(tmp_path_factory, rng):
    """The real topology (FCN-ResNet18, untrained) with 21 classes, an odd 5x3 grid, two frames per call."""
    from segnet_ros.core.refnet import write_reference_model

    model = load_model(write_reference_model(tmp_path_factory.mktemp("ref"), 160, 96, 21))
    settings = SegNetSettings(ignore_class="")
    spec = spec_for(model, settings, 333, 187, "bgr8", batch=2)
    small = rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)  # blocks, so that classes change across the frame
    frames = np.ascontiguousarray(np.repeat(np.repeat(small, 38, axis=1), 48, axis=2)[:, :187, :333])
    got = run(build_graph(model, spec), frames)
    net = SegNet(model, create_backend("onnxruntime", model), settings)
    for i, frame in enumerate(frames):
        host, seg = host_products(net, frame, "bgr8", None)
        assert len(np.unique(seg.grid)) > 1
        assert_graph_matches_host({name: value[i] for name, value in got.items()}, host, seg)


@pytest.mark.skipif(not FUSED, reason="this CPU's OpenCV rounds the blend twice")
@pytest.mark.parametrize("alpha,explicit", [(50, False), (150, False), (200, False), (150, True)])
def test_saturated_overlays_round_like_opencv(oracle_model, explicit_oracle, alpha, explicit):
    """Saturated colours over saturated pixels, 200 rows on a 4-row grid: the exact blends are integers on whole
    rows, so a blend rounded twice would move about 1% of the bytes; the graph rounds once, as OpenCV does."""
    model = explicit_oracle if explicit else oracle_model
    settings = SegNetSettings("nearest", "linear", alpha, "")
    frames = camera_frames(np.random.default_rng(alpha), 2, 333, 200, "rgb8")
    got = run(build_graph(model, spec_for(model, settings, 333, 200, "rgb8", outputs={"overlay"}, batch=2)), frames)
    net = SegNet(model, create_backend("onnxruntime", model), settings)
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(got["overlay"][i], net.process(frame, "rgb8").overlay())


# -- pre-processing, exactly ---------------------------------------------------------------------------
RESIZES = [((1280, 720), (512, 256)), ((1920, 1080), (512, 256)), ((97, 61), (256, 128)), ((1024, 512), (512, 256)),
           ((128, 64), (256, 128)), ((33, 17), (512, 256)), ((300, 200), (250, 130)), ((5, 3), (11, 13)),
           ((1, 1), (8, 4)), ((1000, 17), (256, 128)), ((641, 479), (576, 320))]


@pytest.mark.parametrize("source,target", RESIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_integer_definition_is_opencvs_linear_resize(source, target, rng):
    """OpenCV's INTER_LINEAR on uint8, written as integers (what the graph computes in float32): bit for bit."""
    for channels in (1, 3, 4):
        frame = rng.integers(0, 256, (source[1], source[0], channels), dtype=np.uint8)
        expected = cv2.resize(frame if channels > 1 else frame[:, :, 0], target, interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(resize_linear_reference(frame, *target),
                                      expected.reshape(target[1], target[0], channels))


@pytest.mark.parametrize("resize", ["linear", "nearest"])
@pytest.mark.parametrize("enc,size", [("rgb8", (1280, 720)), ("bgr8", (97, 61)), ("rgba8", (512, 256)),
                                      ("bgra8", (256, 128)), ("mono8", (333, 255)), ("bgr8", (128, 64))])
def test_the_network_sees_the_hosts_tensor(oracle_model, rng, enc, size, resize):
    """The graph's pre-processing, read at the model's input: the host Preprocessor's tensor, bit for bit."""
    spec = GraphSpec(*size, enc, oracle_model.classes.rgba(150), batch=2, resize=resize, outputs={"class_mask"})
    graph = build_graph(oracle_model, spec)
    graph.graph.output.append(onnx.helper.make_tensor_value_info("input_0", onnx.TensorProto.FLOAT, None))
    frames = rng.integers(0, 256, (2, size[1], size[0], CHANNELS[enc]), dtype=np.uint8)
    tensor = run(graph, frames)["input_0"]
    preprocessor = Preprocessor(oracle_model.input_width, oracle_model.input_height, resize)
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(tensor[i:i + 1], preprocessor(frame if CHANNELS[enc] > 1 else frame[:, :, 0],
                                                                    enc))


# -- the reference's own formulas ------------------------------------------------------------------------
def test_the_reference_pictures_come_out_of_the_graph(oracle_model, rng):
    """segnet-semantics.md section 4, pixel by pixel (test/oracle.py), on the graph's own class grid."""
    settings = SegNetSettings("nearest", "linear", 150, "")
    spec = spec_for(oracle_model, settings, 96, 40, "rgb8", outputs={"class_mask", "color_mask", "overlay"})
    frame = camera_frames(rng, 1, 96, 40, "rgb8")
    grid_spec = GraphSpec(96, 40, "rgb8", spec.colors, resize="nearest", mask_size=(8, 4), outputs={"class_mask"})
    grid = run(build_graph(oracle_model, grid_spec), frame)["class_mask"][0]
    got = run(build_graph(oracle_model, spec), frame)
    rgba = oracle_model.classes.rgba(150).astype(np.float64)
    np.testing.assert_array_equal(got["class_mask"][0], ref_class_mask(grid, 96, 40))
    assert_truncated(got["color_mask"][0], ref_colors(grid, rgba, 96, 40, "linear")[..., :3])
    assert_truncated(got["overlay"][0], ref_overlay(grid, rgba, frame[0], 96, 40, "linear"))


# -- what the graph holds ---------------------------------------------------------------------------------
def op_types(graph) -> set[str]:
    return {node.op_type for node in graph.graph.node if node.name.startswith(PREFIX)}


@pytest.mark.parametrize("outputs,absent", [
    ({"class_mask"}, {"Exp", "MatMul", "Relu", "Concat"}),
    ({"histogram"}, {"Exp", "MatMul", "Concat"}),
    ({"confidence"}, {"MatMul", "Relu", "Concat"}),
    ({"color_mask"}, {"Exp", "Relu"}),
])
def test_only_the_outputs_asked_for_are_computed(oracle_model, outputs, absent):
    spec = GraphSpec(320, 200, "bgr8", oracle_model.classes.rgba(150), outputs=outputs)
    graph = build_graph(oracle_model, spec)
    assert [o.name for o in graph.graph.output] == list(outputs)
    assert not op_types(graph) & absent
    assert not any(t.name.startswith(f"{PREFIX}colours") for t in graph.graph.initializer) or "color_mask" in outputs


def test_the_graph_keeps_away_from_what_tensorrt_cannot_do_exactly(explicit_oracle):
    """No Resize (its linear mapping is not the host's), no ArgMax/TopK (their order among ties is not
    documented), uint8 only at the edges; the TensorRT fakes check the rest (test_tensorrt_graph_contract.py)."""
    spec = GraphSpec(333, 255, "bgra8", explicit_oracle.classes.rgba(150), ignore_class=0)
    graph = build_graph(explicit_oracle, spec)
    assert not op_types(graph) & {"Resize", "Upsample", "ArgMax", "TopK"}
    inferred = onnx.shape_inference.infer_shapes(graph).graph
    uint8 = {v.name for v in inferred.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.UINT8}
    assert not uint8 - {o.name for o in graph.graph.output}


def test_wrapping_the_fp16_copy_keeps_the_wrapper_in_float32(oracle_model):
    """The backend wraps the FP16 copy (not the other way round): the wrapper's constants and casts stay float32."""
    proto = fp16_model(onnx.load(str(oracle_model.files.onnx)))
    graph = build_graph(oracle_model, GraphSpec(320, 200, "rgb8", oracle_model.classes.rgba(150)), proto)
    ours = [t for t in graph.graph.initializer if t.name.startswith(PREFIX)]
    assert ours and all(t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64) for t in ours)
    casts = [n for n in graph.graph.node if n.op_type == "Cast" and n.name.startswith(PREFIX)]
    assert all(a.i != onnx.TensorProto.FLOAT16 for n in casts for a in n.attribute)


@pytest.mark.parametrize("opset", [9, 11, 18])
def test_older_and_newer_opsets(oracle_model, rng, opset, tmp_path):
    """Clip takes attributes before opset 11, ReduceSum its axes as an input from 13, ReduceMax/Min from 18."""
    proto = onnx.load(str(oracle_model.files.onnx))
    proto.opset_import[0].version = opset
    settings = SegNetSettings(ignore_class="void")
    spec = spec_for(oracle_model, settings, 200, 100, "rgb8", mask_size="grid")
    graph = build_graph(oracle_model, spec, proto)
    if opset > onnx.defs.onnx_opset_version():
        pytest.skip(f"onnx {onnx.__version__} knows opsets up to {onnx.defs.onnx_opset_version()}")
    onnx.checker.check_model(graph)
    frame = camera_frames(rng, 1, 200, 100, "rgb8")
    try:
        got = run(graph, frame)
    except Exception as exc:  # an ONNX Runtime older than the opset
        if opset >= 18:
            pytest.skip(f"this ONNX Runtime does not run opset {opset}: {exc}")
        raise
    host, seg = host_products(SegNet(oracle_model, create_backend("onnxruntime", oracle_model), settings), frame[0],
                              "rgb8", (8, 4))
    assert_graph_matches_host({name: value[0] for name, value in got.items()}, host, seg)


@pytest.mark.parametrize("change,message", [
    ({"encoding": "yuv422"}, "encoding must be one of"),
    ({"width": 0}, "sizes must be positive"),
    ({"batch": 0}, "batch must be at least 1"),
    ({"resize": "cubic"}, "resize must be one of"),
    ({"filter_mode": "bicubic"}, "filter_mode must be one of"),
    ({"outputs": {"points"}}, "outputs must be a non-empty set"),
    ({"ignore_class": 8}, "is not a class id"),
    ({"mask_size": (8192, 4096)}, "exact up to 16777216 pixels"),
    ({"colors": np.zeros((8, 3))}, "RGBA table"),
])
def test_a_bad_spec_is_refused_with_the_reason(oracle_model, change, message):
    fields = {"width": 64, "height": 32, "colors": oracle_model.classes.rgba(150)} | change
    with pytest.raises(ValueError, match=message):
        GraphSpec(**fields)


def test_specs_are_values(oracle_model):
    """Equal settings give equal, hashable specs (a cache key for graphs and engines)."""
    one = GraphSpec(64, 32, "rgb8", oracle_model.classes.rgba(150), outputs=["overlay", "class_mask"])
    two = GraphSpec(64, 32, "rgb8", oracle_model.classes.rgba(150).tolist(), outputs={"class_mask", "overlay"})
    assert one == two and hash(one) == hash(two)
    assert one != GraphSpec(64, 32, "rgb8", oracle_model.classes.rgba(151), outputs={"class_mask", "overlay"})
    with pytest.raises(ValueError, match="colour table has 21 classes"):
        build_graph(oracle_model, GraphSpec(64, 32, "rgb8", np.zeros((21, 4))))
