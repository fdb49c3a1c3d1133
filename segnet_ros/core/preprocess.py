"""Frames to network input exactly as jetson-inference prepares them.

RGB, stretched to the network size (bilinear by default, or the reference's
nearest neighbour with ``src = int(dst * in / out)``), ``(p/255 - mean)/std``,
planar NCHW float32. Normalisation is a 256-entry table per channel, looked up
by cv2.LUT straight into each plane of the output tensor; the tensor and the
index maps are reused across frames of the same size.
"""

from __future__ import annotations

import cv2
import numpy as np

from .errors import FrameError
from .frames import Encoding, check_frame, encoding

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
RESIZE_METHODS = ("linear", "nearest")


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """``int(dst_i * src/dst)`` in float32, as the reference's CUDA kernels compute it."""
    scale = np.float32(src) / np.float32(dst)
    return (np.arange(dst, dtype=np.float32) * scale).astype(np.intp)


def normalization_tables() -> np.ndarray:
    """(3, 256) float32: the normalised value of each 8-bit level, per RGB channel."""
    levels = np.arange(256, dtype=np.float32) / np.float32(255.0)
    mean = np.asarray(MEAN, dtype=np.float32)[:, None]
    std = np.asarray(STD, dtype=np.float32)[:, None]
    return ((levels[None, :] - mean) / std).astype(np.float32)


class Preprocessor:
    """Turns uint8 frames into the network's (1, 3, H, W) float32 input."""

    def __init__(self, width: int, height: int, resize: str = "linear") -> None:
        if resize not in RESIZE_METHODS:
            raise ValueError(f"resize must be one of {RESIZE_METHODS}, got '{resize}'")
        self.width, self.height, self.resize = width, height, resize
        self._tables = normalization_tables()
        self._tensor = np.empty((1, 3, height, width), dtype=np.float32)
        self._resized: np.ndarray | None = None
        self._maps: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None

    def __call__(self, frame: np.ndarray, encoding_name: str = "rgb8") -> np.ndarray:
        """Pre-process one frame; the returned tensor is overwritten by the next call."""
        enc = encoding(encoding_name)
        return self.prepare(check_frame(frame, enc), enc)

    def prepare(self, frame: np.ndarray, enc: Encoding, out: np.ndarray | None = None) -> np.ndarray:
        """:meth:`__call__` for a frame :func:`check_frame` has already accepted; ``out`` (a (1, 3, H, W)
        float32 slice of a batch) receives the tensor instead of the preprocessor's own buffer."""
        tensor = self._tensor if out is None else out
        planes = cv2.split(self._resize(frame))
        for channel, source in enumerate(enc.rgb_order):
            cv2.LUT(planes[source], self._tables[channel], dst=tensor[0, channel])
        return tensor

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        height, width, channels = frame.shape
        if (width, height) == (self.width, self.height):
            return frame
        if self.resize == "nearest":
            if self._maps is None or self._maps[0] != (width, height):
                self._maps = (
                    (width, height),
                    nearest_indices(height, self.height)[:, None],
                    nearest_indices(width, self.width)[None, :],
                )
            _, rows, cols = self._maps
            return frame[rows, cols]
        planes = frame[:, :, 0] if channels == 1 else frame
        shape = (self.height, self.width) + planes.shape[2:]
        if self._resized is None or self._resized.shape != shape:
            self._resized = np.empty(shape, dtype=np.uint8)
        try:
            cv2.resize(planes, (self.width, self.height), dst=self._resized, interpolation=cv2.INTER_LINEAR)
        except cv2.error as exc:
            raise FrameError(f"cannot resize a {width}x{height} frame: {exc}") from None
        return self._resized.reshape(self.height, self.width, channels)
