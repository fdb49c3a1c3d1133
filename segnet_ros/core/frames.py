"""Pixel encodings the core accepts, and the checks that give bad frames a clear error."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import FrameError


@dataclass(frozen=True)
class Encoding:
    """How a uint8 frame stores its pixels."""

    name: str
    channels: int
    rgb_order: tuple[int, int, int]  # source channel of R, G and B
    bgr: bool  # whether the overlay is returned in BGR order
    to_rgb: int | None  # cv2.cvtColor code to RGB; None when already RGB


ENCODINGS: dict[str, Encoding] = {
    e.name: e
    for e in (
        Encoding("rgb8", 3, (0, 1, 2), False, None),
        Encoding("bgr8", 3, (2, 1, 0), True, cv2.COLOR_BGR2RGB),
        Encoding("rgba8", 4, (0, 1, 2), False, cv2.COLOR_RGBA2RGB),
        Encoding("bgra8", 4, (2, 1, 0), True, cv2.COLOR_BGRA2RGB),
        Encoding("mono8", 1, (0, 0, 0), False, cv2.COLOR_GRAY2RGB),
    )
}


def encoding(name: str) -> Encoding:
    try:
        return ENCODINGS[name.lower()]
    except KeyError:
        supported = ", ".join(ENCODINGS)
        raise FrameError(f"unsupported encoding '{name}'; supported: {supported}") from None


def check_frame(frame: np.ndarray, enc: Encoding) -> np.ndarray:
    """Return ``frame`` as (H, W, channels) uint8, or raise :class:`FrameError`."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        kind = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
        raise FrameError(f"frames must be uint8 arrays, got {kind}")
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] != enc.channels:
        raise FrameError(
            f"a {enc.name} frame must be (height, width, {enc.channels}), got shape {tuple(frame.shape)}"
        )
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FrameError(f"frame has zero size {frame.shape[1]}x{frame.shape[0]}")
    return frame


def to_rgb(frame: np.ndarray, enc: Encoding, out: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a checked (H, W, channels) frame, into ``out`` if given."""
    if enc.to_rgb is None:
        return frame
    return cv2.cvtColor(frame[:, :, 0] if enc.channels == 1 else frame, enc.to_rgb, dst=out)
