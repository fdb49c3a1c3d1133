"""Rendering a class grid at any size exactly as jetson-inference's segNet does.

The formulas (``../shared/reference/segnet-semantics.md`` section 4) are applied
separably. Per output size, each axis gets its index maps and a sparse weight
matrix once (the point filter's is one-hot, so a product with it copies values
exactly). A frame then costs one small horizontal product per grid row, and
vertical products done in tiles of rows that stay in cache, each tile blended
and truncated to uint8 before the next one starts. Cell coordinates are
computed in float32 in the reference's order of operations, so cell boundaries
fall on the same pixels; uint8 results are truncated.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from .frames import Encoding, to_rgb

FILTER_MODES = ("point", "linear")

# cv2.blendLinear divides by (w1 + w2 + 1e-5). Weights scaled by a power of two
# make that epsilon vanish in float32 without changing any other rounding.
_BLEND_SCALE = np.float32(2.0**20)
_TILE_BYTES = 1 << 18  # float32 colours per tile: the tile's work stays in cache


@dataclass(frozen=True)
class Axis:
    """Index maps and weights along one axis: ``n`` output pixels over ``g`` grid cells."""

    nearest: np.ndarray  # (n,) intp, int(i * g / n): class ids and confidence
    counts: np.ndarray  # (g,) int64, output pixels per cell under ``nearest``
    point: np.ndarray  # (n, g) float32 one-hot at int(float(i) / n * g): the point filter
    linear: np.ndarray  # (n, g) float32, the linear filter's two weights per pixel

    @classmethod
    def build(cls, n: int, g: int) -> Axis:
        index = np.arange(n, dtype=np.int64)
        nearest = (index * g) // n
        position = np.arange(n, dtype=np.float32) / np.float32(n) * np.float32(g)
        rows = np.arange(n)
        point = np.zeros((n, g), dtype=np.float32)
        point[rows, position.astype(np.intp)] = 1.0
        base = np.maximum(position - np.float32(0.5), np.float32(0.0))
        first = base.astype(np.intp)
        second = np.where(first >= g - 1, first, first + 1)
        frac = base - first.astype(np.float32)
        linear = np.zeros((n, g), dtype=np.float32)
        linear[rows, first] += np.float32(1.0) - frac
        linear[rows, second] += frac
        counts = np.bincount(nearest, minlength=g).astype(np.int64)
        return cls(nearest.astype(np.intp), counts, point, linear)

    def weights(self, mode: str) -> np.ndarray:
        if mode not in FILTER_MODES:
            raise ValueError(f"filter mode must be one of {FILTER_MODES}, got '{mode}'")
        return self.linear if mode == "linear" else self.point


def sample_indices(n: int, n_in: int) -> np.ndarray | None:
    """Input pixel under each of ``n`` output pixels, ``int(i / n * n_in)`` in exact arithmetic.

    None when the sizes are equal: the overlay is then pixel for pixel (the
    reference's float32 rounding would repeat a few rows, e.g. 34 of 720).
    """
    if n == n_in:
        return None
    return (np.arange(n, dtype=np.int64) * n_in) // n


def _output(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``out`` checked against ``shape`` (uint8), or a new array. Reusing one across frames saves
    the page faults of fresh memory, which cost more than the rendering itself at 1280x720."""
    if out is None:
        return np.empty(shape, dtype=np.uint8)
    if out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous uint8 {shape} array, got {out.dtype} {out.shape}")
    return out


class _Tiles:
    """Work buffers for a tile of ``rows`` output rows of one width, reused frame after frame."""

    def __init__(self, width: int) -> None:
        self.rows = rows = max(8, _TILE_BYTES // (width * 12))
        self.rgb = np.empty((rows, width * 3), dtype=np.float32)
        self.alpha = np.empty((rows, width), dtype=np.float32)
        self.inverse = np.empty((rows, width), dtype=np.float32)
        self.source_rgb = np.empty((rows, width, 3), dtype=np.uint8)
        self.source = np.empty((rows, width, 3), dtype=np.float32)
        self.blend = np.empty((rows, width, 3), dtype=np.float32)
        self.blend_rgb = np.empty((rows, width, 3), dtype=np.uint8)

    def spans(self, height: int):
        """(first row, last row + 1, row count) of each tile."""
        for start in range(0, height, self.rows):
            stop = min(start + self.rows, height)
            yield start, stop, stop - start


class Renderer:
    """Class masks, colour masks, overlays and histograms of one grid size.

    Safe to use from several threads: the caches and the tile buffers are shared, so a lock
    lets one colour product render at a time (the node renders on one thread anyway).
    """

    def __init__(self, grid_width: int, grid_height: int, cached_sizes: int = 4) -> None:
        self.grid_width, self.grid_height = grid_width, grid_height
        self._cached_sizes = cached_sizes
        self._lock = threading.RLock()
        self._axes: OrderedDict[tuple[str, int], Axis] = OrderedDict()
        self._tiles: OrderedDict[int, _Tiles] = OrderedDict()
        self._samples: OrderedDict[tuple[int, int, int, int], tuple] = OrderedDict()

    # -- cached geometry ---------------------------------------------------------------
    def _lru(self, cache: OrderedDict, key, make, limit: int | None = None):
        with self._lock:
            value = cache.get(key)
            if value is None:
                value = cache[key] = make()
                while len(cache) > (limit or self._cached_sizes):
                    cache.popitem(last=False)
            else:
                cache.move_to_end(key)
            return value

    def axes(self, width: int, height: int) -> tuple[Axis, Axis]:
        """The (x, y) index maps for an output of ``width`` x ``height``."""
        return (
            self._lru(self._axes, ("x", width), lambda: Axis.build(width, self.grid_width), 2 * self._cached_sizes),
            self._lru(self._axes, ("y", height), lambda: Axis.build(height, self.grid_height), 2 * self._cached_sizes),
        )

    # -- nearest products ---------------------------------------------------------------
    def upsample(self, grid: np.ndarray, width: int, height: int, out: np.ndarray | None = None) -> np.ndarray:
        """Nearest-neighbour upsampling of any uint8 per-cell array (class ids, confidence)."""
        ax, ay = self.axes(width, height)
        out = _output(out, (height, width))
        return np.take(np.take(grid, ax.nearest, axis=1), ay.nearest, axis=0, out=out)

    def class_mask(self, grid: np.ndarray, width: int, height: int, out: np.ndarray | None = None) -> np.ndarray:
        """(H, W) uint8 class ids; at the grid's own size this is the grid itself."""
        return self.upsample(grid, width, height, out)

    def histogram(self, grid: np.ndarray, num_classes: int, width: int, height: int) -> np.ndarray:
        """Pixel count per class in the ``width`` x ``height`` class mask, without rendering it."""
        ax, ay = self.axes(width, height)
        weights = np.outer(ay.counts, ax.counts).ravel()
        counts = np.bincount(grid.ravel(), weights=weights, minlength=num_classes)
        return np.rint(counts[:num_classes]).astype(np.int64)

    # -- colour products ----------------------------------------------------------------
    def _rows(self, grid: np.ndarray, table: np.ndarray, weights_x: np.ndarray, alpha: bool):
        """The horizontal pass, once per frame: (gh, W*3) colours and (gh, W) scaled alphas."""
        cells = table[grid]  # (gh, gw, 4)
        rgb = np.matmul(weights_x[None], cells[:, :, :3]).reshape(self.grid_height, -1)
        if not alpha:
            return rgb, None
        return rgb, (cells[:, :, 3] * (_BLEND_SCALE / np.float32(255.0))) @ weights_x.T

    def color_mask(self, grid: np.ndarray, table: np.ndarray, width: int, height: int, mode: str,
                   out: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB colour of each pixel's class, opaque."""
        ax, ay = self.axes(width, height)
        weights_y = ay.weights(mode)
        rgb_rows, _ = self._rows(grid, table, ax.weights(mode), alpha=False)
        out = _output(out, (height, width, 3))
        with self._lock:
            tiles = self._lru(self._tiles, width, lambda: _Tiles(width))
            for start, stop, count in tiles.spans(height):
                rgb = np.matmul(weights_y[start:stop], rgb_rows, out=tiles.rgb[:count])
                np.copyto(out[start:stop], rgb.reshape(count, width, 3), casting="unsafe")
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
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """(H, W, 3) uint8 ``a*colour + (1-a)*input``, in BGR order for BGR inputs, else RGB."""
        ax, ay = self.axes(width, height)
        weights_y = ay.weights(mode)
        rgb_rows, alpha_rows = self._rows(grid, table, ax.weights(mode), alpha=True)
        in_height, in_width = frame.shape[:2]
        rows, cols = self._lru(
            self._samples,
            (width, height, in_width, in_height),
            lambda: (sample_indices(height, in_height), sample_indices(width, in_width)),
        )
        if cols is not None:
            frame = np.take(frame, cols, axis=1)
        out = _output(out, (height, width, 3))
        with self._lock:
            tiles = self._lru(self._tiles, width, lambda: _Tiles(width))
            for start, stop, count in tiles.spans(height):
                rgb = np.matmul(weights_y[start:stop], rgb_rows, out=tiles.rgb[:count]).reshape(count, width, 3)
                alpha = np.matmul(weights_y[start:stop], alpha_rows, out=tiles.alpha[:count])
                inverse = np.subtract(_BLEND_SCALE, alpha, out=tiles.inverse[:count])
                source = frame[start:stop] if rows is None else np.take(frame, rows[start:stop], axis=0)
                np.copyto(tiles.source[:count], to_rgb(source, enc, tiles.source_rgb[:count]))
                blend = cv2.blendLinear(rgb, tiles.source[:count], alpha, inverse, dst=tiles.blend[:count])
                if enc.bgr:
                    np.copyto(tiles.blend_rgb[:count], blend, casting="unsafe")
                    cv2.cvtColor(tiles.blend_rgb[:count], cv2.COLOR_RGB2BGR, dst=out[start:stop])
                else:
                    np.copyto(out[start:stop], blend, casting="unsafe")
        return out
