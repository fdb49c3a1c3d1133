"""Rendering a class grid at any size exactly as jetson-inference's segNet does.

The formulas (``../shared/reference/segnet-semantics.md`` section 4) are applied
separably: per output size, each axis gets its index maps and a sparse
interpolation matrix once; a frame then costs two small matrix products for
the linear filter, or two gathers for the point filter, plus one blend.
Cell coordinates are computed in float32 in the reference's order of operations,
so cell boundaries fall on the same pixels; uint8 results are truncated.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from .frames import Encoding, to_rgb

FILTER_MODES = ("point", "linear")

# cv2.blendLinear divides by (w1 + w2 + 1e-5). Weights scaled by a power of two
# make that epsilon vanish in float32 without changing any other rounding.
_BLEND_SCALE = np.float32(2.0**20)


@dataclass(frozen=True)
class Axis:
    """Index maps along one axis: ``n`` output pixels over ``g`` grid cells."""

    nearest: np.ndarray  # (n,) intp, int(i * g / n): class ids and confidence
    counts: np.ndarray  # (g,) int64, output pixels per cell under ``nearest``
    point: np.ndarray  # (n,) intp, int(float(i) / n * g): the point filter
    linear: np.ndarray  # (n, g) float32, the linear filter's weights

    @classmethod
    def build(cls, n: int, g: int) -> Axis:
        index = np.arange(n, dtype=np.int64)
        nearest = (index * g) // n
        position = np.arange(n, dtype=np.float32) / np.float32(n) * np.float32(g)
        point = position.astype(np.intp)
        base = np.maximum(position - np.float32(0.5), np.float32(0.0))
        first = base.astype(np.intp)
        second = np.where(first >= g - 1, first, first + 1)
        frac = base - first.astype(np.float32)
        linear = np.zeros((n, g), dtype=np.float32)
        rows = np.arange(n)
        linear[rows, first] += np.float32(1.0) - frac
        linear[rows, second] += frac
        counts = np.bincount(nearest, minlength=g).astype(np.int64)
        return cls(nearest.astype(np.intp), counts, point, linear)


def sample_indices(n: int, n_in: int) -> np.ndarray | None:
    """Input pixel under each of ``n`` output pixels, ``int(i / n * n_in)`` in exact arithmetic.

    None when the sizes are equal: the overlay is then pixel for pixel (the
    reference's float32 rounding would repeat a few rows, e.g. 34 of 720).
    """
    if n == n_in:
        return None
    return (np.arange(n, dtype=np.int64) * n_in) // n


class _Buffers:
    """Float work buffers for one output size, reused frame after frame."""

    def __init__(self, width: int, height: int) -> None:
        self.rgb = np.empty((height, width, 3), dtype=np.float32)
        self.alpha = np.empty((height, width), dtype=np.float32)
        self.inverse = np.empty((height, width), dtype=np.float32)
        self.source_rgb = np.empty((height, width, 3), dtype=np.uint8)
        self.source = np.empty((height, width, 3), dtype=np.float32)
        self.blend = np.empty((height, width, 3), dtype=np.float32)
        self.key: tuple | None = None  # what ``rgb``/``alpha`` hold now


class Renderer:
    """Class masks, colour masks, overlays and histograms of one grid size."""

    def __init__(self, grid_width: int, grid_height: int, cached_sizes: int = 4) -> None:
        self.grid_width, self.grid_height = grid_width, grid_height
        self._cached_sizes = cached_sizes
        self._axes: OrderedDict[tuple[str, int], Axis] = OrderedDict()
        self._buffers: OrderedDict[tuple[int, int], _Buffers] = OrderedDict()
        self._samples: OrderedDict[tuple[int, int, int, int], tuple] = OrderedDict()

    # -- cached geometry ---------------------------------------------------------------
    def _lru(self, cache: OrderedDict, key, make):
        value = cache.get(key)
        if value is None:
            value = cache[key] = make()
            while len(cache) > 2 * self._cached_sizes:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return value

    def axes(self, width: int, height: int) -> tuple[Axis, Axis]:
        """The (x, y) index maps for an output of ``width`` x ``height``."""
        return (
            self._lru(self._axes, ("x", width), lambda: Axis.build(width, self.grid_width)),
            self._lru(self._axes, ("y", height), lambda: Axis.build(height, self.grid_height)),
        )

    # -- nearest products ---------------------------------------------------------------
    def upsample(self, grid: np.ndarray, width: int, height: int) -> np.ndarray:
        """Nearest-neighbour upsampling of any per-cell array (class ids, confidence)."""
        ax, ay = self.axes(width, height)
        return np.take(np.take(grid, ax.nearest, axis=1), ay.nearest, axis=0)

    def class_mask(self, grid: np.ndarray, width: int, height: int) -> np.ndarray:
        """(H, W) uint8 class ids; at the grid's own size this is the grid itself."""
        return self.upsample(grid, width, height)

    def histogram(self, grid: np.ndarray, num_classes: int, width: int, height: int) -> np.ndarray:
        """Pixel count per class in the ``width`` x ``height`` class mask, without rendering it."""
        ax, ay = self.axes(width, height)
        weights = np.outer(ay.counts, ax.counts).ravel()
        counts = np.bincount(grid.ravel(), weights=weights, minlength=num_classes)
        return np.rint(counts[:num_classes]).astype(np.int64)

    # -- colour products ----------------------------------------------------------------
    def _colors(self, grid: np.ndarray, table: np.ndarray, width: int, height: int, mode: str) -> _Buffers:
        """Fill (or reuse) the float colour and alpha planes for this grid."""
        buffers = self._lru(self._buffers, (width, height), lambda: _Buffers(width, height))
        key = (grid, table, mode)
        if buffers.key is not None and all(a is b for a, b in zip(buffers.key, key, strict=True)):
            return buffers
        if mode not in FILTER_MODES:
            raise ValueError(f"filter mode must be one of {FILTER_MODES}, got '{mode}'")
        ax, ay = self.axes(width, height)
        cells = table[grid]  # (gh, gw, 4)
        alpha_cells = cells[:, :, 3] * (_BLEND_SCALE / np.float32(255.0))
        if mode == "linear":
            rows_rgb = np.matmul(ax.linear[None], cells[:, :, :3])  # (gh, W, 3): horizontal pass
            np.matmul(ay.linear, rows_rgb.reshape(self.grid_height, -1), out=buffers.rgb.reshape(height, -1))
            np.matmul(ay.linear, alpha_cells @ ax.linear.T, out=buffers.alpha)
        else:
            np.take(np.take(cells[:, :, :3], ax.point, axis=1), ay.point, axis=0, out=buffers.rgb)
            np.take(np.take(alpha_cells, ax.point, axis=1), ay.point, axis=0, out=buffers.alpha)
        np.subtract(_BLEND_SCALE, buffers.alpha, out=buffers.inverse)
        buffers.key = key
        return buffers

    def color_mask(self, grid: np.ndarray, table: np.ndarray, width: int, height: int, mode: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB colour of each pixel's class, opaque."""
        buffers = self._colors(grid, table, width, height, mode)
        out = np.empty((height, width, 3), dtype=np.uint8)
        np.copyto(out, buffers.rgb, casting="unsafe")
        return out

    def overlay(
        self,
        grid: np.ndarray,
        table: np.ndarray,
        frame: np.ndarray,
        enc: Encoding,
        width: int,
        height: int,
        mode: str,
    ) -> np.ndarray:
        """(H, W, 3) uint8 ``a*colour + (1-a)*input``, in BGR order for BGR inputs, else RGB."""
        buffers = self._colors(grid, table, width, height, mode)
        in_height, in_width = frame.shape[:2]
        rows, cols = self._lru(
            self._samples,
            (width, height, in_width, in_height),
            lambda: (sample_indices(height, in_height), sample_indices(width, in_width)),
        )
        if cols is not None:
            frame = np.take(frame, cols, axis=1)
        if rows is not None:
            frame = np.take(frame, rows, axis=0)
        np.copyto(buffers.source, to_rgb(frame, enc, buffers.source_rgb))
        cv2.blendLinear(buffers.rgb, buffers.source, buffers.alpha, buffers.inverse, dst=buffers.blend)
        out = np.empty((height, width, 3), dtype=np.uint8)
        np.copyto(out, buffers.blend, casting="unsafe")
        return cv2.cvtColor(out, cv2.COLOR_RGB2BGR) if enc.bgr else out
