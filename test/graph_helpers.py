"""What the tests of the whole-frame graph share (test_graph.py on ONNX Runtime, test_tensorrt_graph.py and
test_tensorrt_gpu.py on TensorRT): camera frames, the host path's products, and the bounds between them."""

from __future__ import annotations

import cv2
import numpy as np

from segnet_ros.core.render import Renderer

from oracle import noisy_blocks

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
OVERLAY_SHARE = 1e-3  # at most this share of the overlay's bytes may differ, by one level


def camera_frames(rng: np.random.Generator, count: int, width: int, height: int, enc: str) -> np.ndarray:
    """(count, H, W, channels) uint8 frames of noisy palette blocks (the oracle's classes follow them) in
    encoding ``enc`` (alpha bytes random)."""
    rgb = np.stack(noisy_blocks(rng, count, width, height))
    if enc == "mono8":
        return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])[..., None]
    frames = rgb[..., ::-1] if enc.startswith("bgr") else rgb
    if CHANNELS[enc] == 4:
        frames = np.concatenate([frames, rng.integers(0, 256, (*frames.shape[:3], 1), dtype=np.uint8)], axis=3)
    return np.ascontiguousarray(frames)


def host_products(net, frame: np.ndarray, enc: str, mask_size, outputs=None) -> tuple[dict[str, np.ndarray], object]:
    """What the host path (SegNet's pre-processing, argmax and renderer) makes of one frame: ``outputs``
    (default all) with the masks at ``mask_size`` (None: the frame's)."""
    seg = net.process(frame if CHANNELS[enc] > 1 else frame[:, :, 0], enc)
    products = {"class_mask": seg.class_mask(mask_size), "confidence": seg.confidence(mask_size),
                "color_mask": seg.color_mask(), "overlay": seg.overlay(), "histogram": seg.histogram(mask_size)}
    return {name: products[name] for name in (outputs or products)}, seg


def _opencv_fuses() -> bool:
    """Whether this CPU's OpenCV rounds accumulateWeighted once (a fused multiply-add, AVX2 and NEON builds),
    as the graph does."""
    rng = np.random.default_rng(5)
    colour = (rng.random((1, 4096)) * 255).astype(np.float32)
    pixels = rng.integers(0, 256, (1, 4096), dtype=np.uint8)
    keep = np.float32(1.0) - np.float32(50) / np.float32(255.0)
    blended = colour.copy()
    cv2.accumulateWeighted(pixels, blended, float(keep))
    moved = (pixels.astype(np.float32) - colour).astype(np.float64)
    return np.array_equal(blended, (colour + moved * np.float64(keep)).astype(np.float32))


FUSED = _opencv_fuses()


def assert_graph_matches_host(got: dict[str, np.ndarray], host: dict[str, np.ndarray], seg) -> None:
    """The graph's bounds against the host path, for one frame: class mask, histogram and colour mask equal;
    confidence off by one at most, and only in cells whose 255p sits on a level's edge (Exp is not numpy's);
    the overlay equal where OpenCV fuses its blend, else off by one on at most 0.1% of its bytes."""
    assert set(got) <= set(host)
    for name in ("class_mask", "histogram", "color_mask"):
        if name in got:
            assert got[name].dtype == (np.int32 if name == "histogram" else np.uint8), name
            np.testing.assert_array_equal(got[name], host[name], err_msg=name)
    if "confidence" in got:
        levels = seg.confidence_grid * np.float32(255.0)
        edge = np.abs(levels - np.rint(levels)) < 1e-4  # cells whose level a last-bit difference can move
        height, width = got["confidence"].shape
        near = Renderer(*seg.grid_size).upsample(edge.astype(np.uint8), width, height).astype(bool)
        diff = got["confidence"].astype(int) - host["confidence"].astype(int)
        assert not diff[~near].any() and np.abs(diff).max(initial=0) <= 1, "confidence"
    if "overlay" in got:
        diff = np.abs(got["overlay"].astype(int) - host["overlay"].astype(int))
        if FUSED:
            assert not diff.any(), f"overlay: {(diff > 0).sum()} bytes differ"
        assert diff.max(initial=0) <= 1 and (diff > 0).mean() <= OVERLAY_SHARE, \
            f"overlay: {(diff > 0).sum()} bytes differ, at most {diff.max()}"
