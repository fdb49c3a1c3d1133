"""Pixel encodings the core accepts, and the checks that give bad frames a clear error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import FrameError


@dataclass(frozen=True)
class Encoding:
    """How a uint8 frame stores its pixels."""

    name: str
    channels: int
    rgb_order: tuple[int, int, int]  # source channel of R, G and B
    bgr: bool  # whether the overlay is returned in BGR order


ENCODINGS: dict[str, Encoding] = {
    e.name: e
    for e in (
        Encoding("rgb8", 3, (0, 1, 2), False),
        Encoding("bgr8", 3, (2, 1, 0), True),
        Encoding("rgba8", 4, (0, 1, 2), False),
        Encoding("bgra8", 4, (2, 1, 0), True),
        Encoding("mono8", 1, (0, 0, 0), False),
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
