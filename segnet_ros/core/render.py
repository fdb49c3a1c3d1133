"""Rendering a class grid at any size exactly as jetson-inference's segNet does.

The formulas (``../shared/reference/segnet-semantics.md`` section 4) are applied
separably. Per output size, each axis gets its index maps, its weights and its
*spans* once: runs of output pixels that read the same grid cells. Per frame,
one small horizontal product per grid row gives the colours of every grid row
at the output width; then every output row is either a copy of one of those
rows (nearest, point filter, the clamped edges of the linear filter) or a blend
of two (the linear filter), done in tiles of rows that stay in cache. Cell
coordinates are computed in float32 in the reference's order of operations, so
cell boundaries fall on the same pixels; uint8 results are truncated.

The colour mask and the overlay share their colours: :meth:`Renderer.color_mask_and_overlay`
renders both in one pass, each tile's colours computed once, where two calls would compute them twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np

from .frames import Encoding

FILTER_MODES = ("point", "linear")

_TILE_BYTES = 1 << 20  # float32 colours per tile: about the core's L2 cache, and few calls per frame
_FOUR_TO_THREE = {cv2.COLOR_BGRA2RGB: cv2.COLOR_BGRA2BGR, cv2.COLOR_RGBA2RGB: cv2.COLOR_RGBA2RGB}


@dataclass(frozen=True)
class Span:
    """Output pixels ``start:stop`` that read grid cells ``first`` and ``second`` (equal: a copy)."""

    start: int
    stop: int
    first: int
    second: int


def _runs(first: np.ndarray, second: np.ndarray) -> tuple[Span, ...]:
    """Runs of consecutive pixels with the same (first, second) cells."""
    change = np.flatnonzero((np.diff(first) != 0) | (np.diff(second) != 0)) + 1
    starts = np.concatenate(([0], change)).astype(int)
    stops = np.concatenate((change, [len(first)])).astype(int)
    return tuple(Span(int(a), int(b), int(first[a]), int(second[a])) for a, b in zip(starts, stops, strict=True))


@dataclass(frozen=True)
class Axis:
    """Index maps, weights and spans along one axis: ``n`` output pixels over ``g`` grid cells."""

    nearest: np.ndarray  # (n,) intp, int(i * g / n): class ids and confidence
    counts: np.ndarray  # (g,) int64, output pixels per cell under ``nearest``
    cell: np.ndarray  # (n,) intp, int(float(i) / n * g): the point filter's cell
    first: np.ndarray  # (n,) intp, the linear filter's first cell
    second: np.ndarray  # (n,) intp, its second cell (the first again at the clamped edges)
    frac: np.ndarray  # (n,) float32, the second cell's weight (0 where both cells are one)
    lerp: np.ndarray  # (n, 2) float32 (1, frac): weights of (first, second - first), the lerp form
    nearest_spans: tuple[Span, ...]
    point_spans: tuple[Span, ...]
    linear_spans: tuple[Span, ...]
    # k -> (cell, first, second, frac) for rows of k values per cell, made at first use (see _flat)
    flat_maps: dict[int, tuple[np.ndarray, ...]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, n: int, g: int) -> Axis:
        index = np.arange(n, dtype=np.int64)
        nearest = ((index * g) // n).astype(np.intp)
        position = np.arange(n, dtype=np.float32) / np.float32(n) * np.float32(g)
        cell = position.astype(np.intp)
        base = np.maximum(position - np.float32(0.5), np.float32(0.0))
        first = base.astype(np.intp)
        second = np.where(first >= g - 1, first, first + 1)
        frac = np.where(first == second, np.float32(0.0), base - first.astype(np.float32)).astype(np.float32)
        lerp = np.stack([np.ones(n, dtype=np.float32), frac], axis=1)
        counts = np.bincount(nearest, minlength=g).astype(np.int64)
        return cls(nearest, counts, cell, first, second, frac, lerp,
                   _runs(nearest, nearest), _runs(cell, cell), _runs(first, second))

    def spans(self, mode: str) -> tuple[Span, ...]:
        return self.linear_spans if _mode(mode) == "linear" else self.point_spans

    def resample(self, values: np.ndarray, mode: str) -> np.ndarray:
        """``values`` (..., g, k) per cell along this axis, at the n output pixels: (..., n, k).

        In the lerp form ``a + (b - a) * f``, which is exactly ``a`` wherever both cells hold the
        same value, whatever the value (as the formula is in exact arithmetic). The k values of a
        cell are gathered as one run of the flattened rows (a gather of k-element pieces along a
        middle axis costs ten times more).
        """
        *lead, g, k = values.shape
        flat = values.reshape(*lead, g * k)
        cell, first, second, frac = self._flat(k)
        if _mode(mode) == "point":
            return np.take(flat, cell, axis=-1).reshape(*lead, -1, k)
        left = np.take(flat, first, axis=-1)
        step = np.take(flat, second, axis=-1) - left
        return (left + step * frac).reshape(*lead, -1, k)

    def _flat(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(cell, first, second, frac) for rows of k values per cell, made once per k."""
        made = self.flat_maps
        if k not in made:
            spread = np.arange(k, dtype=np.intp)
            made[k] = (*((cells[:, None] * k + spread).ravel() for cells in (self.cell, self.first, self.second)),
                       np.repeat(self.frac, k))
        return made[k]


def _mode(mode: str) -> str:
    if mode not in FILTER_MODES:
        raise ValueError(f"filter mode must be one of {FILTER_MODES}, got '{mode}'")
    return mode


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


def _tiles(spans: tuple[Span, ...], rows: int):
    """The spans cut into tiles of at most ``rows`` rows: (start, stop, first, second)."""
    for span in spans:
        for start in range(span.start, span.stop, rows):
            yield start, min(start + rows, span.stop), span.first, span.second


class _Tiles:
    """Work buffers for a tile of ``rows`` output rows of one width, reused frame after frame."""

    def __init__(self, width: int) -> None:
        self.rows = rows = max(4, _TILE_BYTES // (width * 12))
        self.colour = np.empty((rows, width * 3), dtype=np.float32)
        self.pixels = np.empty((rows, width * 3), dtype=np.uint8)
        self.swap = np.empty((rows, width * 3), dtype=np.uint8)
        self._per_pixel: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def per_pixel(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(a, 1 - a, input) float32 tiles, made the first time classes on screen differ in alpha."""
        if self._per_pixel is None:
            self._per_pixel = tuple(np.empty_like(self.colour) for _ in range(3))
        return self._per_pixel


@dataclass
class _Source:
    """The input frame as the overlay reads it: sampled to the output size, three channels."""

    frame: np.ndarray  # (h, W, channels) uint8, columns already sampled
    rows: np.ndarray | None  # input row under each output row, None when pixel for pixel
    convert: int | None  # cv2 code to three channels in the overlay's order, None when already so
    flat: np.ndarray | None = field(init=False)  # (H, W * 3) view of the frame when it is read as it is

    def __post_init__(self) -> None:
        plain = self.rows is None and self.convert is None and self.frame.flags.c_contiguous
        self.flat = self.frame.reshape(self.frame.shape[0], -1) if plain else None

    def tile(self, start: int, stop: int, scratch: np.ndarray) -> np.ndarray:
        """(stop - start, W * 3) uint8 input pixels under output rows ``start:stop``."""
        if self.flat is not None:  # the usual case: the input pixel for pixel, three channels
            return self.flat[start:stop]
        count = stop - start
        part = self.frame[start:stop] if self.rows is None else np.take(self.frame, self.rows[start:stop], axis=0)
        if self.convert is not None:
            width = part.shape[1]
            target = scratch[:count].reshape(count, width, 3)
            cv2.cvtColor(part[:, :, 0] if part.shape[2] == 1 else part, self.convert, dst=target)
            return scratch[:count]
        if not part.flags.c_contiguous:
            part = np.ascontiguousarray(part)
        return part.reshape(count, -1)


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
        rows = np.take(grid, ax.nearest, axis=1)  # (gh, W): each grid row at the output width
        for span in ay.nearest_spans:
            out[span.start:span.stop] = rows[span.first]
        return out

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
    def color_mask(self, grid: np.ndarray, table: np.ndarray, width: int, height: int, mode: str,
                   out: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB colour of each pixel's class, opaque."""
        return self._colours(grid, table, None, None, width, height, mode, out, None)[0]

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
        return self._colours(grid, table, frame, enc, width, height, mode, None, out)[1]

    def color_mask_and_overlay(
        self,
        grid: np.ndarray,
        table: np.ndarray,
        frame: np.ndarray,
        enc: Encoding,
        width: int,
        height: int,
        mode: str,
        color_out: np.ndarray | None = None,
        overlay_out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`color_mask` and :meth:`overlay` in one pass, each tile's colours computed once;
        the pictures are identical to the two calls'."""
        return self._colours(grid, table, frame, enc, width, height, mode, color_out, overlay_out, both=True)

    def _source(self, frame: np.ndarray, enc: Encoding, width: int, height: int) -> _Source:
        in_height, in_width = frame.shape[:2]
        rows, cols = self._lru(
            self._samples,
            (width, height, in_width, in_height),
            lambda: (sample_indices(height, in_height), sample_indices(width, in_width)),
        )
        if cols is not None:
            frame = np.take(frame, cols, axis=1)
        convert = None
        if enc.channels == 1:
            convert = cv2.COLOR_GRAY2RGB
        elif enc.channels == 4:
            convert = _FOUR_TO_THREE[enc.to_rgb]  # keep the input's order: the colours follow it
        return _Source(frame, rows, convert)

    def _colours(self, grid, table, frame, enc, width, height, mode, color_out, overlay_out, both=False):
        """The colour mask (when ``frame`` is None or ``both``) and the overlay (when a frame is given)."""
        ax, ay = self.axes(width, height)
        spans = ay.spans(mode)
        cells = np.asarray(table, dtype=np.float32)[grid]  # (gh, gw, 4)
        want_color, want_overlay = frame is None or both, frame is not None
        # The overlay comes out in the input's order, so its colours are made in that order; the colour
        # mask, always RGB, is then a uint8 swap of them when both come from one tile.
        order = [2, 1, 0] if want_overlay and enc.bgr else [0, 1, 2]
        swap = want_color and order[0] == 2
        colours = _Rows(ax.resample(cells[:, :, order], mode).reshape(self.grid_height, -1))
        color = _output(color_out, (height, width, 3)) if want_color else None
        blended = _output(overlay_out, (height, width, 3)) if want_overlay else None
        if want_overlay:
            source = self._source(frame, enc, width, height)
            alphas = cells[:, :, 3:]
            constant = bool((alphas == alphas.flat[0]).all())
            if constant:
                keep = float(np.float32(1.0) - alphas.flat[0] / np.float32(255.0))  # the input's weight, 1 - a
            else:  # a and 1 - a each interpolated, so each is exactly 0 or 1 wherever the cells say so;
                # repeated per channel, so that every product below runs along whole rows
                opacity = alphas / np.float32(255.0)  # 255 / 255 is exactly 1; 255 * (1 / 255) need not be
                opacity, transparency = (_Rows(np.repeat(ax.resample(weight, mode), 3, axis=2).reshape(
                    self.grid_height, -1)) for weight in (opacity, np.float32(1.0) - opacity))
        with self._lock:
            tiles = self._lru(self._tiles, width, lambda: _Tiles(width))
            if not want_overlay:
                _color_only(colours, spans, ay.lerp, tiles, color.reshape(height, -1))
                return color, None
            flat_color = None if color is None else color.reshape(height, -1)
            flat_blend = blended.reshape(height, -1)
            for start, stop, first, second in _tiles(spans, tiles.rows):
                count = stop - start
                mixed = colours.tile(ay.lerp, start, stop, first, second, tiles.colour[:count])
                if swap:  # BGR colours made for a BGR overlay: the RGB colour mask is their swap
                    np.copyto(tiles.swap[:count], mixed, casting="unsafe")
                    cv2.cvtColor(tiles.swap[:count].reshape(count, width, 3), cv2.COLOR_BGR2RGB, dst=color[start:stop])
                elif flat_color is not None:
                    np.copyto(flat_color[start:stop], mixed, casting="unsafe")
                pixels = source.tile(start, stop, tiles.pixels)
                if constant:
                    cv2.accumulateWeighted(pixels, mixed, keep)  # a*colour + (1-a)*input, in place
                else:
                    alpha, rest, through = (buffer[:count] for buffer in tiles.per_pixel())
                    np.multiply(mixed, opacity.tile(ay.lerp, start, stop, first, second, alpha), out=mixed)
                    rest = transparency.tile(ay.lerp, start, stop, first, second, rest)
                    np.copyto(through, pixels)
                    cv2.accumulateProduct(through, rest, mixed)  # a*colour + (1-a)*input
                np.copyto(flat_blend[start:stop], mixed, casting="unsafe")
        return color, blended


class _Rows:
    """Per-frame values of every grid row at the output width, (gh, K) float32, and the
    (row, next row - row) pairs that one small product per tile blends in the lerp form."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.steps = np.stack([rows[:-1], rows[1:] - rows[:-1]], axis=1) if len(rows) > 1 else None

    def tile(self, lerp: np.ndarray, start: int, stop: int, first: int, second: int, out: np.ndarray) -> np.ndarray:
        """Output rows ``start:stop``, which read grid rows ``first`` and ``second``, into ``out``."""
        if first == second:
            np.copyto(out, self.rows[first])
        else:  # second == first + 1
            np.matmul(lerp[start:stop], self.steps[first], out=out)
        return out


def _color_only(colours: _Rows, spans, lerp: np.ndarray, tiles: _Tiles, flat: np.ndarray) -> None:
    """The colour mask alone: rows that copy one grid row are truncated once and repeated."""
    for start, stop, first, second in _tiles(spans, tiles.rows):
        if first == second:
            np.copyto(tiles.pixels[0], colours.rows[first], casting="unsafe")
            flat[start:stop] = tiles.pixels[0]
        else:
            mixed = colours.tile(lerp, start, stop, first, second, tiles.colour[:stop - start])
            np.copyto(flat[start:stop], mixed, casting="unsafe")
