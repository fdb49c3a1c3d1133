"""Calibration frames: the user's own frames, pre-processed exactly as inference will see them.

The frames are split once, evenly, into calibration frames (which set the INT8 ranges) and held-out
frames (which only judge the result), so the agreement figure is never measured on data the
quantiser has seen. The calibration set's digest is part of the INT8 model's cache key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ..core.errors import SegnetError
from ..core.preprocess import Preprocessor, normalization_tables

MIN_FRAMES = 2  # one to calibrate on, one to judge with
T = TypeVar("T")


class PackedTensors(Sequence):
    """Pre-processed tensors kept as their 8-bit levels, a quarter of the float32 size (100 frames at
    2048x1024 are 630 MB, not 2.5 GB). Every value of a pre-processed tensor is an entry of the
    pre-processor's per-channel table, so unpacking gives back the exact float32 tensor."""

    def __init__(self, tables: np.ndarray) -> None:
        self._tables = tables  # (3, 256) float32, strictly increasing per channel
        self._levels: list[np.ndarray] = []

    def append(self, tensor: np.ndarray) -> None:
        """Pack one (1, 3, H, W) tensor the pre-processor made."""
        levels = np.stack([np.searchsorted(self._tables[c], tensor[0, c]) for c in range(3)]).astype(np.uint8)
        self._levels.append(levels)

    def select(self, indices: Iterable[int]) -> PackedTensors:
        chosen = PackedTensors(self._tables)
        chosen._levels = [self._levels[i] for i in indices]
        return chosen

    def __len__(self) -> int:
        return len(self._levels)

    def __getitem__(self, index):  # a tensor, or a list of tensors for a slice
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        levels = self._levels[index]
        return np.stack([self._tables[c][levels[c]] for c in range(3)])[None]


@dataclass(frozen=True)
class FrameSet:
    """Pre-processed (1, 3, H, W) float32 tensors, split into calibration and held-out frames."""

    calibration: Sequence[np.ndarray]
    held_out: Sequence[np.ndarray]

    def digest(self) -> str:
        """sha256 over the calibration tensors, in order (what the INT8 ranges depend on)."""
        digest = hashlib.sha256(f"{len(self.calibration)}".encode())
        for tensor in self.calibration:
            digest.update(str(tensor.shape).encode())
            digest.update(np.ascontiguousarray(tensor).tobytes())
        return digest.hexdigest()


def held_out_indices(count: int, fraction: float) -> set[int]:
    """Evenly spaced indices of the held-out frames: at least one, and at least one frame left to calibrate."""
    if count < MIN_FRAMES:
        raise SegnetError(f"quantisation needs at least {MIN_FRAMES} frames (some to calibrate on, some held out "
                          f"to check the result), got {count}; give more images or a video")
    held = min(count - 1, max(1, round(count * fraction)))
    return {int((i + 0.5) * count / held) for i in range(held)}


def prepare_frames(frames: Iterable[tuple[np.ndarray, str]], width: int, height: int, resize: str = "linear",
                   held_out_fraction: float = 0.2) -> FrameSet:
    """(frame, encoding) pairs to a :class:`FrameSet` at the network's size."""
    preprocessor = Preprocessor(width, height, resize)
    packed = PackedTensors(normalization_tables())
    for frame, encoding in frames:
        packed.append(preprocessor(frame, encoding))
    held = held_out_indices(len(packed), held_out_fraction)
    return FrameSet(packed.select(i for i in range(len(packed)) if i not in held), packed.select(sorted(held)))


def sample_evenly(frames: Iterable[T], total: int, limit: int) -> Iterator[T]:
    """At most ``limit`` items spread over ``total`` (0: unknown, then the first ``limit``)."""
    step = max(1, -(-total // limit)) if total > 0 else 1
    taken = 0
    for index, item in enumerate(frames):
        if taken >= limit:
            return
        if index % step == 0:
            taken += 1
            yield item


def reader(tensors: Sequence[np.ndarray], input_name: str):
    """An ONNX Runtime CalibrationDataReader over ``tensors``."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(tensors)

        def get_next(self) -> dict | None:
            tensor = next(self._items, None)
            return None if tensor is None else {input_name: tensor}

        def rewind(self) -> None:
            self._items = iter(tensors)

    return _Reader()
