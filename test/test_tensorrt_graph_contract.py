"""The whole-frame graph against TensorRT's ONNX operator contracts, as the fake TensorRT keeps them for each
version it impersonates (8.6, 10.x, 11.x): the builder's graphs parse and build everywhere; graphs that only
ONNX Runtime would run (uint8 gathered, cast to int32 or resized; a Cast to uint8 without its Clip; uint8
between layers; TopK beyond its K) are refused with the reason."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from segnet_ros.backends.graph import GraphSpec, build_graph
from segnet_ros.backends.tensorrt_build import network_flags
from segnet_ros.core.model import ModelFiles, load_model

from oracle import palette_oracle
from tensorrt_helpers import version_fixture

trt_version = version_fixture()
pytestmark = pytest.mark.usefixtures("trt_version")


@pytest.fixture
def parse(fake_trt):
    """Parses serialized ONNX with the fake TensorRT of this test's version: (ok, errors, network), and builds
    the network when asked (``build=True`` gives the serialized engine, or None)."""
    trt, cuda = fake_trt.trt, fake_trt.cuda
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    context.push()
    logger = trt.Logger(trt.Logger.INTERNAL_ERROR)
    kept = []

    def run(data: bytes, build: bool = False):
        builder = trt.Builder(logger)
        network = builder.create_network(network_flags(trt))
        parser = trt.OnnxParser(network, logger)
        ok = parser.parse(data)
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        engine = None
        if ok and build:
            config = builder.create_builder_config()
            for index in range(network.num_inputs):
                tensor = network.get_input(index)
                if any(d < 0 for d in tensor.shape):
                    profile = builder.create_optimization_profile()
                    fixed = [d if d > 0 else 1 for d in tensor.shape]
                    profile.set_shape(tensor.name, fixed, fixed, [d if d > 0 else 2 for d in tensor.shape])
                    config.add_optimization_profile(profile)
            engine = builder.build_serialized_network(network, config)
        kept.append((parser, network, builder))
        return ok, errors, network, engine

    yield run
    kept.clear()
    cuda.Context.pop()
    context.detach()


@pytest.fixture(scope="module")
def alpha_oracle(tmp_path_factory):
    colors = "0 0 0\n255 0 0 200\n0 255 0\n0 0 255 90\n255 255 0\n0 255 255\n255 0 255\n255 255 255\n"
    return load_model(ModelFiles.in_folder(palette_oracle(tmp_path_factory.mktemp("alpha"), colors_text=colors)))


@pytest.mark.parametrize("encoding,resize,filter_mode,opset", [
    ("bgra8", "linear", "linear", 13),  # every product, the per-pixel alpha blend, OpenCV's linear resize
    ("mono8", "nearest", "point", 13),
    ("rgb8", "linear", "linear", 9),  # Clip with attributes, ReduceSum with an axes attribute
])
def test_the_builders_graphs_parse_and_build_on_every_version(parse, alpha_oracle, encoding, resize, filter_mode,
                                                              opset):
    proto = onnx.load(str(alpha_oracle.files.onnx))
    proto.opset_import[0].version = opset
    spec = GraphSpec(333, 187, encoding, alpha_oracle.classes.rgba(150), batch=None, resize=resize,
                     filter_mode=filter_mode, ignore_class=0, mask_size=(160, 90))
    ok, errors, network, engine = parse(build_graph(alpha_oracle, spec, proto).SerializeToString(), build=True)
    assert ok, errors
    assert engine is not None
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = {network.get_output(i).name: network.get_output(i).dtype.name for i in range(network.num_outputs)}
    channels = {"mono8": 1, "rgb8": 3}.get(encoding, 4)
    assert [(t.name, t.dtype.name, tuple(t.shape)) for t in inputs] == [("camera", "UINT8", (-1, 187, 333, channels))]
    assert outputs == {"class_mask": "UINT8", "confidence": "UINT8", "color_mask": "UINT8", "overlay": "UINT8",
                       "histogram": "INT32"}


# -- graphs that only ONNX Runtime runs ----------------------------------------------------------------------
def _model(nodes, outputs, initializers=(), opset: int = 13) -> bytes:
    """A graph from a uint8 camera input (1, 4, 6, 3) to ``outputs`` ((name, onnx type))."""
    graph = helper.make_graph(
        nodes, "bad", [helper.make_tensor_value_info("camera", TensorProto.UINT8, [1, 4, 6, 3])],
        [helper.make_tensor_value_info(name, kind, None) for name, kind in outputs], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def _const(name: str, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _clip_then_cast(source: str) -> list:
    return [helper.make_node("Clip", [source, "lo", "hi"], ["clipped"]),
            helper.make_node("Cast", ["clipped"], ["out"], to=TensorProto.UINT8)]


BOUNDS = [_const("lo", 0.0), _const("hi", 255.0)]
BAD = {
    "uint8 Gather": (_model([helper.make_node("Gather", ["camera", "cols"], ["picked"], axis=2),
                             helper.make_node("Cast", ["picked"], ["out"], to=TensorProto.FLOAT)],
                            [("out", TensorProto.FLOAT)], [_const("cols", [0, 2, 4], np.int64)]),
                     "Gather does not support UINT8 data"),
    "Cast to uint8 without Clip": (_model([helper.make_node("Cast", ["camera"], ["wide"], to=TensorProto.FLOAT),
                                           helper.make_node("Mul", ["wide", "half"], ["dim"]),
                                           helper.make_node("Cast", ["dim"], ["out"], to=TensorProto.UINT8)],
                                          [("out", TensorProto.UINT8)], [_const("half", 0.5)]),
                                   "needs a Clip to [0, 255] right before it"),
    "Clip wider than a byte": (_model([helper.make_node("Cast", ["camera"], ["wide"], to=TensorProto.FLOAT),
                                       helper.make_node("Clip", ["wide", "lo", "hi"], ["clipped"]),
                                       helper.make_node("Cast", ["clipped"], ["out"], to=TensorProto.UINT8)],
                                      [("out", TensorProto.UINT8)], [_const("lo", -1.0), _const("hi", 300.0)]),
                               "needs a Clip to [0, 255]"),
    "uint8 Resize": (_model([helper.make_node("Resize", ["camera", "", "scales"], ["big"], mode="linear"),
                             helper.make_node("Cast", ["big"], ["out"], to=TensorProto.FLOAT)],
                            [("out", TensorProto.FLOAT)], [_const("scales", [1, 2, 2, 1])]),
                     "Resize supports FLOAT and HALF inputs only"),
    "uint8 to int32": (_model([helper.make_node("Cast", ["camera"], ["ids"], to=TensorProto.INT32)],
                              [("ids", TensorProto.INT32)]),
                       "uint8 conversions are not supported"),
    "int64 to uint8": (_model([helper.make_node("Cast", ["camera"], ["wide"], to=TensorProto.FLOAT),
                               helper.make_node("ArgMax", ["wide"], ["best"], axis=3, keepdims=0),
                               helper.make_node("Cast", ["best"], ["out"], to=TensorProto.UINT8)],
                              [("out", TensorProto.UINT8)]),
                       "cast to UINT8 from FLOAT or HALF only"),
    "uint8 between layers": (_model([helper.make_node("Cast", ["camera"], ["wide"], to=TensorProto.FLOAT),
                                     *_clip_then_cast("wide"),
                                     helper.make_node("Cast", ["out"], ["again"], to=TensorProto.FLOAT)],
                                    [("again", TensorProto.FLOAT)], BOUNDS),
                             "UINT8 is only supported as network input or output"),
    "uint8 into another layer": (_model([helper.make_node("Transpose", ["camera"], ["planar"], perm=[0, 3, 1, 2]),
                                         helper.make_node("Cast", ["planar"], ["out"], to=TensorProto.FLOAT)],
                                        [("out", TensorProto.FLOAT)]),
                                 "Transpose does not take UINT8"),
    "TopK beyond 3839": (_model([helper.make_node("Cast", ["camera"], ["wide"], to=TensorProto.FLOAT),
                                 helper.make_node("Reshape", ["wide", "flat"], ["row"]),
                                 helper.make_node("Tile", ["row", "times"], ["long"]),
                                 helper.make_node("TopK", ["long", "k"], ["values", "indices"], axis=1)],
                                [("values", TensorProto.FLOAT)],
                                [_const("flat", [1, 72], np.int64), _const("times", [1, 60], np.int64),
                                 _const("k", [4000], np.int64)]),
                         "TopK supports K < 3840"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_graphs_that_only_onnx_runtime_runs_are_refused(parse, name):
    data, reason = BAD[name]
    import onnxruntime

    if name not in ("TopK beyond 3839",):  # each is a valid ONNX graph that ONNX Runtime runs
        onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    ok, errors, _, _ = parse(data)
    assert not ok
    assert any(reason in error for error in errors), errors


def test_what_tensorrt_does_take_still_parses(parse):
    """The contracts refuse no more than TensorRT does: float Resize, a clipped Cast to uint8, TopK of 1."""
    data = _model([helper.make_node("Cast", ["camera"], ["wide"], to=TensorProto.FLOAT),
                   helper.make_node("Resize", ["wide", "", "scales"], ["big"], mode="linear"),
                   helper.make_node("TopK", ["big", "k"], ["values", "indices"], axis=3),
                   *_clip_then_cast("values")],
                  [("out", TensorProto.UINT8), ("indices", TensorProto.INT64)],
                  [_const("scales", [1, 2, 2, 1]), _const("k", [1], np.int64), *BOUNDS])
    ok, errors, network, _ = parse(data)
    assert ok, errors


def test_argmax_indices_are_int32_on_8_and_int64_from_10(parse, trt_version):
    """ArgMax imports as TopK: its indices are INT32 tensors on 8.x (the parser casts INT64 down), INT64 from 10."""
    data = _model([helper.make_node("Cast", ["camera"], ["wide"], to=TensorProto.FLOAT),
                   helper.make_node("ArgMax", ["wide"], ["best"], axis=3, keepdims=0)],
                  [("best", TensorProto.INT64)])
    ok, errors, network, engine = parse(data, build=True)
    assert ok, errors
    assert network.get_output(0).dtype.name == ("INT32" if trt_version.startswith("8.") else "INT64")
    assert engine is not None
