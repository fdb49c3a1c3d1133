"""Depth images to organised, labelled point clouds: the arithmetic, with no ROS in it.

A navigation consumer (Nav2's semantic segmentation layer) reads the cloud pixel by pixel beside
the class mask, so the cloud has the mask's width x height and point (u, v) is the back-projection
of the depth pixel that mask pixel (u, v) samples (the reference's nearest rule,
``int(u * depth_width / width)``). Rays are computed once per camera model and size; each frame
is then a handful of vectorised passes into a buffer the caller reuses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import FrameError

#: float32 x, y, z in metres (camera optical frame), the class id, and its softmax probability (0..1).
CLOUD_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("label", "<u4"), ("confidence", "<f4")])

#: depth encoding (lower case) -> (numpy element type, metres per unit)
DEPTH_ENCODINGS: dict[str, tuple[str, float]] = {"16uc1": ("u2", 0.001), "mono16": ("u2", 0.001),
                                                 "32fc1": ("f4", 1.0)}


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera's focal lengths and principal point (pixels), for an image of a given size."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_k(cls, k, width: int, height: int) -> Intrinsics:
        """From a row-major 3x3 camera matrix (``CameraInfo.k``); refuses one that cannot project."""
        fx, fy, cx, cy = float(k[0]), float(k[4]), float(k[2]), float(k[5])
        if not (np.isfinite([fx, fy, cx, cy]).all() and fx > 0 and fy > 0):
            raise FrameError(f"depth camera_info has no usable camera matrix (fx={fx}, fy={fy})")
        return cls(fx, fy, cx, cy, int(width), int(height))


def resampled_coordinate(coordinate: float, scale: float) -> float:
    """Where pixel coordinate ``coordinate`` lands in an image resampled by ``scale``, with pixel
    centres kept aligned (the camera_info convention): ``(u + 0.5) * scale - 0.5``."""
    return (coordinate + 0.5) * scale - 0.5


def sample_indices(size: int, source: int) -> np.ndarray:
    """Source index of each of ``size`` output pixels: the reference's nearest rule."""
    return (np.arange(size, dtype=np.int64) * source) // size


class CloudBuilder:
    """Builds clouds of one output size from depth images; keeps its rays and scratch buffers."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._rays_x = self._rays_y = self._cols = self._rows = None
        self._z: np.ndarray | None = None

    def _prepare(self, intrinsics: Intrinsics, depth_shape: tuple[int, int], width: int, height: int) -> None:
        key = (intrinsics, depth_shape, width, height)
        if key == self._key:
            return
        depth_h, depth_w = depth_shape
        self._cols, self._rows = sample_indices(width, depth_w), sample_indices(height, depth_h)
        # K belongs to the depth image as the camera_info says it was; a depth image of another size
        # (binned, or camera_info of a different mode) scales K about pixel centres.
        sx, sy = depth_w / intrinsics.width, depth_h / intrinsics.height
        fx, cx = intrinsics.fx * sx, resampled_coordinate(intrinsics.cx, sx)
        fy, cy = intrinsics.fy * sy, resampled_coordinate(intrinsics.cy, sy)
        self._rays_x = ((self._cols - cx) / fx).astype(np.float32)
        self._rays_y = ((self._rows - cy) / fy).astype(np.float32)[:, None]
        self._z = np.empty((height, width), np.float32)
        self._key = key

    def build(self, depth: np.ndarray, metres_per_unit: float, intrinsics: Intrinsics,
              labels: np.ndarray, confidence: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(H, W) CLOUD_DTYPE points for a (Hd, Wd) raw depth image (uint16 or float32, any byte
        order) and (H, W) uint8 labels and confidence (0..255). Depth 0, negative or not finite
        gives NaN x, y, z."""
        height, width = labels.shape
        if confidence.shape != labels.shape:
            raise ValueError(f"confidence {confidence.shape} and labels {labels.shape} differ in size")
        self._prepare(intrinsics, depth.shape, width, height)
        if out is None:
            out = np.empty((height, width), CLOUD_DTYPE)
        z = self._z
        same_size = depth.shape == (height, width)
        sampled = depth if same_size else depth[self._rows[:, None], self._cols[None, :]]
        np.multiply(sampled, np.float32(metres_per_unit), out=z, casting="unsafe")
        invalid = ~(z > 0) if sampled.dtype.kind == "f" else sampled == 0  # ~(z > 0) also catches NaN
        if sampled.dtype.kind == "f":
            invalid |= np.isinf(z)
        z[invalid] = np.nan
        out["z"] = z
        np.multiply(z, self._rays_x, out=out["x"])
        np.multiply(z, self._rays_y, out=out["y"])
        out["label"] = labels
        np.multiply(confidence, np.float32(1.0 / 255.0), out=out["confidence"], casting="unsafe")
        return out
