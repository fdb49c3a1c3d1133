"""Synthetic camera frames for demos and benchmarks: a road scene with moving objects."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np


def street_frame(index: int, width: int = 1280, height: int = 720) -> np.ndarray:
    """One BGR frame: sky, buildings, road and a few objects that move with ``index``."""
    frame = np.empty((height, width, 3), dtype=np.uint8)
    horizon = int(height * 0.45)
    sky = np.linspace(235, 160, horizon, dtype=np.float32)[:, None]
    frame[:horizon] = np.stack([sky * 1.0, sky * 0.85, sky * 0.6], axis=2).astype(np.uint8)[:, :, ::-1]
    frame[horizon:] = (90, 90, 95)
    cv2.rectangle(frame, (0, int(height * 0.85)), (width, height), (60, 130, 60), -1)
    for b in range(6):
        x0 = (b * width) // 6 + 10
        top = horizon - 40 - (b * 37 % 120)
        cv2.rectangle(frame, (x0, top), (x0 + width // 8, horizon), (70 + 15 * b, 70, 80 + 10 * b), -1)
    for lane in range(8):
        x = (lane * width // 8 + index * 12) % width
        cv2.rectangle(frame, (x, int(height * 0.7)), (x + width // 20, int(height * 0.72)), (230, 230, 230), -1)
    car_x = (index * 18) % (width + 300) - 300
    cv2.rectangle(frame, (car_x, int(height * 0.55)), (car_x + 300, int(height * 0.75)), (40, 40, 200), -1)
    person_x = width - (index * 7) % width
    cv2.circle(frame, (person_x, int(height * 0.5)), height // 30, (140, 180, 220), -1)
    cv2.rectangle(frame, (person_x - 15, int(height * 0.53)), (person_x + 15, int(height * 0.68)),
                  (150, 60, 30), -1)
    return frame


def street_frames(count: int, width: int = 1280, height: int = 720) -> Iterator[np.ndarray]:
    for index in range(count):
        yield street_frame(index, width, height)
