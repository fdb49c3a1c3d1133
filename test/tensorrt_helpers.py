"""What the TensorRT test modules share: the fake versions every test runs against, frames, QDQ models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from segnet_ros.backends.cpu import cpu_info

# One of each API generation: 8.6 (explicit-batch flag, no progress monitor), 10.x (weak typing and
# STRONGLY_TYPED side by side), 11.x (strong typing only: no BuilderFlag.FP16 / INT8).
VERSIONS = ("8.6.1", "10.3.0", "11.0.0")


def _trt_version(request, fake_trt) -> str:
    """Runs the test once per fake TensorRT version (FAKE_TRT_VERSION)."""
    fake_trt.configure(trt_version=request.param)
    return request.param


def version_fixture():
    """The ``trt_version`` fixture, for a test module to define as ``trt_version = version_fixture()``."""
    return pytest.fixture(params=VERSIONS, ids=[f"trt{v.split('.')[0]}" for v in VERSIONS], name="trt_version")(
        _trt_version)


def frames(model, count: int, seed: int = 0, batch: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch, *model.input_shape[1:])).astype(np.float32) for _ in range(count)]


def write_qdq(onnx_path: Path, out: Path, calibration: list[np.ndarray], symmetric: bool = True) -> Path:
    """A QDQ model of ``onnx_path`` made with ONNX Runtime's static quantisation: per-channel int8 weights,
    int32 biases (which the backend folds to float for TensorRT); activations int8 and symmetric (what
    TensorRT parses) or ONNX Runtime's default uint8 (what it does not). The fake runs it on ONNX Runtime's
    CPU kernels, whose int8 x int8 products saturate on CPUs without VNNI (AVX2): 7-bit weights there, so
    the fake's answers are TensorRT's, not the saturation's (TensorRT's own kernels do not saturate)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([{"input_0": frame} for frame in calibration])

        def get_next(self):
            return next(self._items, None)

    previous = os.getcwd()
    os.chdir(out.parent)  # ONNX Runtime before 1.13 writes augmented_model.onnx into the current folder
    try:
        quantize_static(str(Path(onnx_path).resolve()), str(out.resolve()), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, reduce_range=not cpu_info().has_vnni,
                        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True})
    finally:
        os.chdir(previous)
    return out


# -- the whole-frame graph (test_tensorrt_graph.py, test_tensorrt_gpu.py) ---------------------------------------
CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
OVERLAY_SHARE = 1e-3  # test_graph.py's bound: at most this share of the overlay's bytes differ, by one level


def camera_frames(rng: np.random.Generator, count: int, width: int, height: int, enc: str) -> np.ndarray:
    """(count, H, W, channels) uint8 frames of noisy palette blocks (the oracle's classes follow them) in ``enc``."""
    import cv2

    from oracle import noisy_blocks

    rgb = np.stack(noisy_blocks(rng, count, width, height))
    if enc == "mono8":
        return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])[..., None]
    frames = rgb[..., ::-1] if enc.startswith("bgr") else rgb
    if CHANNELS[enc] == 4:
        frames = np.concatenate([frames, rng.integers(0, 256, (*frames.shape[:3], 1), dtype=np.uint8)], axis=3)
    return np.ascontiguousarray(frames)


def host_products(net, frame: np.ndarray, spec) -> tuple[dict[str, np.ndarray], object]:
    """What the host path (SegNet's pre-processing, argmax and renderer) makes of one frame for ``spec``."""
    seg = net.process(frame if CHANNELS[spec.encoding] > 1 else frame[:, :, 0], spec.encoding)
    size = spec.mask_size
    products = {"class_mask": seg.class_mask(size), "confidence": seg.confidence(size),
                "color_mask": seg.color_mask(), "overlay": seg.overlay(), "histogram": seg.histogram(size)}
    return {name: products[name] for name in spec.outputs}, seg


def _opencv_fuses() -> bool:
    """Whether this CPU's OpenCV rounds accumulateWeighted once (a fused multiply-add), as the graph does."""
    import cv2

    rng = np.random.default_rng(5)
    colour = (rng.random((1, 4096)) * 255).astype(np.float32)
    pixels = rng.integers(0, 256, (1, 4096), dtype=np.uint8)
    keep = np.float32(1.0) - np.float32(50) / np.float32(255.0)
    blended = colour.copy()
    cv2.accumulateWeighted(pixels, blended, float(keep))
    moved = (pixels.astype(np.float32) - colour).astype(np.float64)
    return np.array_equal(blended, (colour + moved * np.float64(keep)).astype(np.float32))


def assert_graph_matches_host(got: dict[str, np.ndarray], host: dict[str, np.ndarray], seg) -> None:
    """The graph's bounds against the host path (test_graph.py): class mask, histogram and colour mask equal;
    confidence off by one at most, and only in cells whose 255p sits on a level's edge (Exp is not numpy's);
    the overlay equal where OpenCV fuses its blend, else off by one on at most 0.1% of its bytes."""
    from segnet_ros.core.render import Renderer

    assert set(got) == set(host)
    for name in ("class_mask", "histogram", "color_mask"):
        if name in got:
            assert got[name].dtype == (np.int32 if name == "histogram" else np.uint8), name
            np.testing.assert_array_equal(got[name], host[name], err_msg=name)
    if "confidence" in got:
        levels = seg.confidence_grid * np.float32(255.0)
        edge = np.abs(levels - np.rint(levels)) < 1e-4
        height, width = got["confidence"].shape
        near = Renderer(*seg.grid_size).upsample(edge.astype(np.uint8), width, height).astype(bool)
        diff = got["confidence"].astype(int) - host["confidence"].astype(int)
        assert not diff[~near].any() and np.abs(diff).max(initial=0) <= 1, "confidence"
    if "overlay" in got:
        diff = np.abs(got["overlay"].astype(int) - host["overlay"].astype(int))
        if _opencv_fuses():
            assert not diff.any(), f"overlay: {(diff > 0).sum()} bytes differ"
        assert diff.max(initial=0) <= 1 and (diff > 0).mean() <= OVERLAY_SHARE, \
            f"overlay: {(diff > 0).sum()} bytes differ, at most {diff.max()}"
