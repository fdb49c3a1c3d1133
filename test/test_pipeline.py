"""``pipeline graph``: SegNet, the CLI and the bag tool with the whole frame inside the backend give the
host path's answers, and the host does no per-pixel work on that path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segnet_ros.backends import BackendOptions, create_backend
from segnet_ros.core.errors import SettingsError
from segnet_ros.core.model import ModelFiles, load_model
from segnet_ros.core.segnet import GraphSegmentation, Products, SegNet, SegNetSettings

from conftest import run_cli
from oracle import noisy_blocks


@pytest.fixture(scope="module")
def backend(oracle_dir):
    model = load_model(ModelFiles.in_folder(oracle_dir))
    return model, create_backend("onnxruntime", model, BackendOptions(device="cpu", max_batch=4))


def frames(rng, width: int, height: int, encoding: str) -> np.ndarray:
    image = noisy_blocks(rng, 1, width, height)[0]
    if encoding == "bgr8":
        return np.ascontiguousarray(image[:, :, ::-1])
    if encoding == "rgba8":
        return np.dstack([image, rng.integers(0, 256, (height, width), dtype=np.uint8)])
    if encoding == "mono8":
        return np.ascontiguousarray(image[:, :, 1])
    return image


def products_of(seg, mask_size) -> dict[str, np.ndarray]:
    return {"class_mask": seg.class_mask(mask_size), "confidence": seg.confidence(mask_size),
            "histogram": seg.histogram(mask_size), "color_mask": seg.color_mask(), "overlay": seg.overlay()}


@pytest.mark.parametrize("settings", [SegNetSettings(), SegNetSettings(resize="nearest", filter_mode="point",
                                                                      overlay_alpha=255, ignore_class="")])
def test_a_batch_of_mixed_cameras_gives_the_hosts_products(backend, rng, settings):
    """Frames of two sizes and three encodings in one call: one graph per camera configuration, each
    frame's products the host's (the oracle's logits keep confidence off its levels' edges)."""
    model, runner = backend
    host, graph = SegNet(model, runner, settings), SegNet(model, runner, settings, "graph")
    batch = [(frames(rng, 200, 120, "rgb8"), "rgb8"), (frames(rng, 97, 61, "bgr8"), "bgr8"),
             (frames(rng, 200, 120, "rgb8"), "rgb8"), (frames(rng, 97, 61, "rgba8"), "rgba8"),
             (frames(rng, 300, 100, "mono8"), "mono8")]
    mask_sizes = [None, (40, 30), None, model_grid := (model.grid_width, model.grid_height), None]
    wanted = [Products(mask_size=size) for size in mask_sizes]
    got = graph.process_batch(batch, wanted)
    assert all(isinstance(seg, GraphSegmentation) for seg in got)
    for seg, expected, size in zip(got, host.process_batch(batch), mask_sizes, strict=True):
        ours, theirs = products_of(seg, size), products_of(expected, size)
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    assert model_grid == (8, 4) and len(graph._runners) == 4  # (200x120 rgb8) twice in one call


def test_only_what_is_asked_for_is_computed_and_other_sizes_are_refused(backend, rng):
    model, runner = backend
    net = SegNet(model, runner, SegNetSettings(), "graph")
    seg = net.process(frames(rng, 64, 48, "rgb8"), "rgb8", Products(frozenset({"class_mask"}), (16, 8)))
    assert set(seg.products) == {"class_mask"} and seg.class_mask((16, 8)).shape == (8, 16)
    with pytest.raises(ValueError, match="the graph computed class_mask at 16x8, not 64x48"):
        seg.class_mask()
    with pytest.raises(ValueError, match="did not compute overlay"):
        seg.overlay()
    header_only = net.process(frames(rng, 64, 48, "rgb8"), "rgb8", Products(frozenset()))
    assert header_only.products == {}  # camera_info_mask alone: no call at all


def test_the_host_touches_no_pixel_on_the_graph_path(backend, rng, monkeypatch):
    """Pre-processing, argmax and rendering are the host path's: on the graph path none of them runs."""
    from segnet_ros.core import preprocess, render, segnet

    def forbidden(*args, **kwargs):
        raise AssertionError("host per-pixel work on the graph path")

    monkeypatch.setattr(preprocess.Preprocessor, "prepare", forbidden)
    monkeypatch.setattr(segnet, "classify", forbidden)
    for name in ("upsample", "histogram", "_colours"):
        monkeypatch.setattr(render.Renderer, name, forbidden)
    model, runner = backend
    seg = SegNet(model, runner, SegNetSettings(), "graph").process(frames(rng, 128, 96, "bgr8"), "bgr8")
    color, overlay = seg.pictures(np.empty((96, 128, 3), np.uint8), np.empty((96, 128, 3), np.uint8))
    assert seg.class_mask().shape == (96, 128) and seg.histogram().sum() == 96 * 128 and overlay.any()
    with pytest.raises(AssertionError, match="host per-pixel work"):
        SegNet(model, runner, SegNetSettings()).process(frames(rng, 128, 96, "bgr8"), "bgr8")


def test_auto_is_host_on_the_cpu_and_graph_needs_a_backend_that_runs_it(backend):
    model, runner = backend
    assert SegNet(model, runner, pipeline="auto").pipeline == "host"  # the host renderer is faster on CPUs

    class Plain:
        name = "replay"

    with pytest.raises(SettingsError, match="pipeline graph needs a backend that runs the whole-frame graph"):
        SegNet(model, Plain(), pipeline="graph")
    with pytest.raises(SettingsError, match="pipeline must be one of auto, graph, host"):
        SegNet(model, runner, pipeline="gpu")


def test_openvino_runs_the_graph_in_fp32_and_refuses_it_in_bf16(oracle_dir, rng):
    pytest.importorskip("openvino")
    model = load_model(ModelFiles.in_folder(oracle_dir))
    frame = frames(rng, 120, 80, "bgr8")
    ov = SegNet(model, create_backend("openvino", model, BackendOptions(precision="fp32")), pipeline="graph")
    ort = SegNet(model, create_backend("onnxruntime", model, BackendOptions(device="cpu")))
    np.testing.assert_array_equal(ov.process(frame, "bgr8").class_mask(), ort.process(frame, "bgr8").class_mask())


def test_segment_and_bag_write_the_same_files_on_both_pipelines(oracle_dir, tmp_path, rng):
    from bag_helpers import read_bag, write_scene

    image = tmp_path / "in.png"
    cv2.imwrite(str(image), frames(rng, 160, 90, "bgr8"))
    model = ["--model", str(oracle_dir / "fcn_resnet18.onnx"), "--no-progress", "--backend", "onnxruntime",
             "--device", "cpu"]
    for pipeline in ("host", "graph"):
        result = run_cli("segment", str(image), str(tmp_path / f"{pipeline}.png"), "--visualize", "overlay",
                         "--pipeline", pipeline, *model)
        assert result.returncode == 0 and f"pipeline {pipeline}, in " in result.stderr, result.stderr
        scene = write_scene(tmp_path / f"scene_{pipeline}", front=3, rear=2)
        result = run_cli("bag", str(scene.path), str(tmp_path / f"{pipeline}.mcap"), "--pipeline", pipeline,
                         "--mask-size", "grid", *model)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "host.png").read_bytes() == (tmp_path / "graph.png").read_bytes()
    host, graph = (read_bag(tmp_path / f"{pipeline}.mcap")[0] for pipeline in ("host", "graph"))
    assert {topic: [raw for _, _, raw in messages] for topic, messages in host.items()} == \
        {topic: [raw for _, _, raw in messages] for topic, messages in graph.items()}  # (the metadata names the file)
