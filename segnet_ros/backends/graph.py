"""The whole frame as one ONNX graph: the camera's bytes in, the finished products out.

:func:`build_graph` wraps a model's ONNX for one camera configuration (:class:`GraphSpec`) so that
pre-processing, argmax, confidence, masks, colour pictures and histogram run inside the engine and the
host only copies bytes in and out. Each step computes what the host path computes (``core/preprocess.py``,
``core/classify.py``, ``core/render.py``) in float32, in the host's order of operations:

* ``nearest`` resizing gathers with the host's float32 index maps; ``linear`` is OpenCV's INTER_LINEAR on
  uint8 written out in integers (11-bit coefficients, the 2x2 area shortcut for exact halving), every
  intermediate an integer below 2**24 and so exact in float32; then ``(level / 255 - mean) / std``.
* argmax takes the first maximum without TopK (whose order among ties TensorRT does not document).
* colours are interpolated separably like the renderer: each grid row at the output width elementwise,
  then the rows by one MatMul whose only non-zero weights are (1, frac): the renderer's fused
  ``row + frac * step`` (BLAS there, MLAS here). The overlay's blend is rounded once, as OpenCV's
  accumulate functions round it, by exact error terms (ONNX has no fused multiply-add).

On ONNX Runtime's CPU provider (AVX2) every product is the host's, byte for byte, except where ``Exp``
(not numpy's) moves 255p across a level's edge: then confidence differs by one (test_graph.py).

TensorRT's rules are kept (8.6 to 11): uint8 only at the graph's input and outputs, converted only to and
from float32; a Clip before every Cast to uint8; no Resize; no Gather on uint8; argmax and histogram in
float32 (TensorRT reduces float types only). The wrapper's nodes and tensors are named ``segnet_graph/...``,
except the output Casts (named after the outputs) and the Div that writes the model's input blob.
Wrap a model *after* converting it (FP16 copy, QDQ): the wrapper's own arithmetic must stay float32. Weakly
typed builds (8.6 and 10.x as the TensorRT backend makes them) pin every layer that is not the model's to
FP32 (layer precision and float output types, OBEY_PRECISION_CONSTRAINTS); strongly typed builds (11.x) keep
the graph's own types. On Ampere and later, TensorRT runs float32 MatMul in TF32 unless ``BuilderFlag.TF32``
is cleared, which the colour products need (the other MatMuls carry levels, exact in TF32). ONNX Runtime
moves single elements slowly, so the frame's columns are moved outward before they are gathered, and
trailing-axis slices and broadcasts are avoided at full size.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..core.frames import ENCODINGS
from ..core.model import Model
from ..core.outputs import MASK_SIZES, parse_mask_size
from ..core.preprocess import MEAN, RESIZE_METHODS, STD, nearest_indices
from ..core.render import FILTER_MODES, Axis
from .onnx_rewrite import BATCH_DIM, _hard_coded_batch

GRAPH_INPUT = "camera"
OUTPUTS = ("class_mask", "confidence", "color_mask", "overlay", "histogram")
PREFIX = "segnet_graph/"
MIN_OPSET = 9  # Sign, which the argmax uses, and the broadcasting forms of the arithmetic
EXACT_LIMIT = 1 << 24  # float32 holds every integer up to here: the histogram's largest count
RESIZE_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS
UINT8, INT32, FLOAT = 2, 6, 1  # onnx.TensorProto data types


def _colour_tuple(colors) -> tuple[tuple[float, float, float, float], ...]:
    table = np.asarray(colors, dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != 4 or not len(table):
        raise ValueError(f"colors must be a (classes, 4) RGBA table, got shape {table.shape}")
    return tuple(tuple(float(v) for v in row) for row in table)


@dataclass(frozen=True)
class GraphSpec:
    """One camera configuration: what the graph takes and what it gives. Hashable, so it can key a
    cache of graphs or engines; ``colors`` accepts a (C, 4) array and is kept as tuples."""

    width: int
    height: int
    encoding: str = "rgb8"
    colors: tuple[tuple[float, float, float, float], ...] = field(default=())  # (C, 4) RGBA, alpha 0..255
    batch: int | None = 1  # frames per call; None: a dynamic batch dimension
    resize: str = "linear"
    filter_mode: str = "linear"
    ignore_class: int | None = None
    mask_size: tuple[int, int] | None = None  # (width, height) of class_mask/confidence/histogram; None: camera
    outputs: frozenset[str] = frozenset(OUTPUTS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "colors", _colour_tuple(self.colors))
        object.__setattr__(self, "outputs", frozenset(self.outputs))
        if self.mask_size is not None:
            object.__setattr__(self, "mask_size", (int(self.mask_size[0]), int(self.mask_size[1])))
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got '{self.encoding}'")
        if min(self.width, self.height, *self.mask_dims) <= 0:
            raise ValueError(f"sizes must be positive: camera {self.width}x{self.height}, mask {self.mask_dims}")
        if self.batch is not None and self.batch < 1:
            raise ValueError(f"batch must be at least 1 (or None for a dynamic batch), got {self.batch}")
        if self.resize not in RESIZE_METHODS:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_METHODS)}, got '{self.resize}'")
        if self.filter_mode not in FILTER_MODES:
            raise ValueError(f"filter_mode must be one of {', '.join(FILTER_MODES)}, got '{self.filter_mode}'")
        unknown = self.outputs - set(OUTPUTS)
        if unknown or not self.outputs:
            raise ValueError(f"outputs must be a non-empty set of {', '.join(OUTPUTS)}, got {sorted(self.outputs)}")
        if self.ignore_class is not None and not 0 <= self.ignore_class < len(self.colors):
            raise ValueError(f"ignore_class {self.ignore_class} is not a class id (0..{len(self.colors) - 1})")
        mask_pixels = self.mask_dims[0] * self.mask_dims[1]
        if "histogram" in self.outputs and mask_pixels > EXACT_LIMIT:
            raise ValueError(f"the histogram counts in float32, exact up to {EXACT_LIMIT} pixels; the mask has "
                             f"{mask_pixels}")

    @property
    def table(self) -> np.ndarray:
        """(C, 4) float32 RGBA colours."""
        return np.asarray(self.colors, dtype=np.float32)

    @property
    def mask_dims(self) -> tuple[int, int]:
        """(width, height) of the class mask, the confidence and the histogram's mask."""
        return self.mask_size if self.mask_size is not None else (self.width, self.height)

    @property
    def bgr(self) -> bool:
        return ENCODINGS[self.encoding].bgr


def spec_for(model: Model, settings, width: int, height: int, encoding: str = "rgb8",
             outputs: Iterable[str] = OUTPUTS, mask_size: str | tuple[int, int] = "input",
             batch: int | None = 1, depth_size: tuple[int, int] | None = None) -> GraphSpec:
    """The spec of a camera as ``SegNet`` would serve it with ``settings`` (a SegNetSettings): the same
    colour table and ignore class; ``mask_size`` as the node takes it (input, grid, depth, "WxH" or (w, h))."""
    classes = model.classes
    ignore = classes.index_of(settings.ignore_class) if settings.ignore_class else None
    if isinstance(mask_size, str) and mask_size not in MASK_SIZES:
        parsed = parse_mask_size(mask_size)
        if parsed is None:
            raise ValueError(f"mask_size must be input, grid, depth or WxH, got '{mask_size}'")
        mask_size = parsed
    if mask_size == "input":
        size = None
    elif mask_size == "grid":
        size = (model.grid_width, model.grid_height)
    elif mask_size == "depth":
        if depth_size is None:
            raise ValueError("mask_size 'depth' needs the depth image's size (depth_size)")
        size = depth_size
    else:
        size = tuple(mask_size)
    return GraphSpec(width, height, encoding.lower(), classes.rgba(settings.overlay_alpha), batch, settings.resize,
                     settings.filter_mode, ignore, size, frozenset(outputs))


# -- OpenCV's INTER_LINEAR on uint8, as integers ---------------------------------------------
@dataclass(frozen=True)
class LinearAxis:
    """One axis of cv2.resize INTER_LINEAR on uint8: source pixels and 11-bit weights per output pixel."""

    low: np.ndarray  # (n,) int64 first source pixel
    high: np.ndarray  # (n,) int64 second source pixel (the first again at the clamped edges)
    weights: np.ndarray  # (n, 2) int64, each about (1 - f, f) * 2048

    @classmethod
    def build(cls, src: int, dst: int, rows: bool) -> LinearAxis:
        """OpenCV's coordinates: ``f = float((d + 0.5) * src/dst - 0.5)`` (the scale in double), rounded
        weights. Out-of-range columns take the edge pixel whole; out-of-range rows keep their weights
        but read the edge row twice (what OpenCV 4.5 and 5.x do, measured)."""
        scale = 1.0 / (dst / src)
        position = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
        first = np.floor(position).astype(np.int64)
        frac = (position - first.astype(np.float32)).astype(np.float32)
        outside = (first < 0) | (first >= src - 1)
        if not rows:
            frac = np.where(outside, np.float32(0.0), frac)
        low = np.clip(first, 0, src - 1)
        high = np.clip(first + 1, 0, src - 1)
        one = np.float32(1 << RESIZE_BITS)
        weights = np.stack([np.rint((np.float32(1.0) - frac) * one), np.rint(frac * one)], axis=1).astype(np.int64)
        return cls(low, high, weights)


def resize_linear_reference(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """numpy's version of what the graph computes for ``linear``: cv2.resize INTER_LINEAR of a uint8
    (H, W, C) frame, bit for bit (OpenCV 4.5.5 and 5.1 on x86-64, measured). A definition the host
    could adopt where its OpenCV differs (another CPU's SIMD, a HAL)."""
    src_h, src_w = frame.shape[:2]
    pixels = frame.reshape(src_h, src_w, -1)
    if (src_w, src_h) == (width, height):
        return pixels.copy()
    if (src_w, src_h) == (2 * width, 2 * height):
        total = pixels.reshape(height, 2, width, 2, -1).sum(axis=(1, 3), dtype=np.int32)
        return ((total + 2) >> 2).astype(np.uint8)
    ax, ay = LinearAxis.build(src_w, width, False), LinearAxis.build(src_h, height, True)
    out = None
    for rows, weight in ((ay.low, ay.weights[:, 0]), (ay.high, ay.weights[:, 1])):  # the rows read first
        source = pixels[rows].astype(np.int32)
        across = source[:, ax.low] * ax.weights[:, 0, None].astype(np.int32)
        across += source[:, ax.high] * ax.weights[:, 1, None].astype(np.int32)  # below 2**19
        part = ((across >> 4) * weight[:, None, None].astype(np.int32)) >> 16  # below 2**26 before the shift
        out = part if out is None else out + part
    return np.clip((out + 2) >> 2, 0, 255).astype(np.uint8)


# -- the graph ---------------------------------------------------------------------------------
class _Emitter:
    """Nodes, constants and names of the wrapper, in the forms the model's opset expects."""

    def __init__(self, opset: int) -> None:
        from onnx import helper

        self.helper = helper
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def name(self, what: str) -> str:
        self._count += 1
        return f"{PREFIX}{what}_{self._count}"

    def const(self, value, dtype=np.float32, what: str = "const") -> str:
        from onnx import numpy_helper

        name = self.name(what)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, kind: str, inputs: list[str], output: str | None = None, **attributes) -> str:
        output = output or self.name(kind.lower())
        self.nodes.append(self.helper.make_node(kind, inputs, [output], name=output, **attributes))
        return output

    def cast(self, x: str, to: int, output: str | None = None) -> str:
        return self.op("Cast", [x], output, to=to)

    def clip(self, x: str, low: float, high: float) -> str:
        if self.opset < 11:
            return self.op("Clip", [x], min=float(low), max=float(high))
        return self.op("Clip", [x, self.const(low, what="low"), self.const(high, what="high")])

    def reduce(self, kind: str, x: str, axes: list[int], keepdims: int = 1) -> str:
        """ReduceMax/Min/Sum: axes an attribute before opset 13 (Sum) or 18 (the others), an input after."""
        as_input = self.opset >= (13 if kind == "ReduceSum" else 18)
        if as_input:
            return self.op(kind, [x, self.const(axes, np.int64, "axes")], keepdims=keepdims)
        return self.op(kind, [x], axes=axes, keepdims=keepdims)

    def gather(self, x: str, indices, axis: int) -> str:
        return self.op("Gather", [x, self.const(np.asarray(indices, np.int64), np.int64, "index")], axis=axis)

    def reshape(self, x: str, shape: list[int]) -> str:
        return self.op("Reshape", [x, self.const(shape, np.int64, "shape")])

    def to_uint8(self, x: str, output: str) -> str:
        """TensorRT's only way to uint8: float32 clipped to [0, 255], then cast (truncating)."""
        return self.cast(self.clip(x, 0.0, 255.0), UINT8, output)


class _Graph:
    """Builds the wrapper around one model for one spec."""

    def __init__(self, model: Model, spec: GraphSpec, opset: int) -> None:
        self.model, self.spec = model, spec
        self.e = _Emitter(opset)
        self.enc = ENCODINGS[spec.encoding]
        self.channels = self.enc.channels
        self.grid_size = (model.grid_width, model.grid_height)
        self.classes = len(spec.colors)

    # -- pre-processing ----------------------------------------------------------------------
    # ONNX Runtime gathers single elements slowly (tens of ns each) and whole blocks fast, so the frame's
    # columns are moved outward (one transpose of the rows the network reads) before they are gathered,
    # and the planes come out by one more transpose at the network's size.
    def preprocess(self, frame: str, output: str) -> None:
        """(N, H, W, c) float32 camera levels to the network's normalised (N, 3, h, w) input."""
        e, spec = self.e, self.spec
        width, height = self.model.input_width, self.model.input_height
        c = self.channels
        if (spec.width, spec.height) == (width, height):
            levels = self._planes(frame)
        elif spec.resize == "nearest":
            rows = e.gather(frame, nearest_indices(spec.height, height), axis=1)  # (N, h, W, c)
            outward = e.op("Transpose", [rows], perm=[0, 2, 3, 1])  # (N, W, c, h)
            cols = self._pick(e.gather(outward, nearest_indices(spec.width, width), axis=1), 2)  # (N, w, k, h)
            levels = e.op("Transpose", [cols], perm=[0, 2, 3, 1])
        elif (spec.width, spec.height) == (2 * width, 2 * height):
            blocks = e.reshape(frame, [0, height, 2, width, 2, c])
            total = e.reduce("ReduceSum", blocks, [2, 4], keepdims=0)  # (N, h, w, c): four levels, exact
            levels = self._planes(e.op("Floor", [e.op("Mul", [e.op("Add", [total, e.const(2.0)]), e.const(0.25)])]))
        else:
            levels = e.op("Transpose", [self._linear(frame, width, height)], perm=[0, 2, 3, 1])
        # the host's tables, computed as the host computes them: ((level / 255) - mean) / std in float32
        # (correctly rounded division; a mono plane broadcasts to the three channels)
        mean, std = (np.asarray(v, np.float32).reshape(1, 3, 1, 1) for v in (MEAN, STD))
        scaled = e.op("Div", [levels, e.const(255.0)])
        e.op("Div", [e.op("Sub", [scaled, e.const(mean, what="mean")]), e.const(std, what="std")], output)

    def _pick(self, x: str, axis: int) -> str:
        """The channels the network reads, in RGB order, from ``axis``; mono keeps its one plane."""
        picks = [0] if self.channels == 1 else list(self.enc.rgb_order)
        if picks == list(range(self.channels)):
            return x
        return self.e.gather(x, picks, axis=axis)

    def _planes(self, pixels: str) -> str:
        """(N, h, w, c) levels at the network's size to its (N, k, h, w) planes."""
        return self._pick(self.e.op("Transpose", [pixels], perm=[0, 3, 1, 2]), 1)

    def _linear(self, frame: str, width: int, height: int) -> str:
        """cv2.resize INTER_LINEAR on uint8 in exact float32 integers (see resize_linear_reference): (N, w, k, h)."""
        e, spec = self.e, self.spec
        ax = LinearAxis.build(spec.width, width, False)
        ay = LinearAxis.build(spec.height, height, True)
        rows = e.gather(frame, np.concatenate([ay.low, ay.high]), axis=1)  # (N, 2h, W, c)
        outward = e.op("Transpose", [rows], perm=[0, 2, 3, 1])  # (N, W, c, 2h)
        parts = []
        for source, weight in ((ax.low, ax.weights[:, 0]), (ax.high, ax.weights[:, 1])):
            taken = self._pick(e.gather(outward, source, axis=1), 2)  # (N, w, k, 2h)
            parts.append(e.op("Mul", [taken, e.const(weight.astype(np.float32).reshape(-1, 1, 1))]))
        sums = e.reshape(e.op("Add", parts), [0, width, -1, 2, height])  # (N, w, k, 2, h): a0*p0 + a1*p1, exact
        # OpenCV's SIMD row blend, for the top and the bottom row at once: ((sum >> 4) * b) >> 16, the product
        # (below 2**26) split at b's bit 5 so that every float32 intermediate is an integer below 2**24
        shifted = e.op("Floor", [e.op("Mul", [sums, e.const(1.0 / 16)])])
        weights = ay.weights.T  # (2, h): b0 of each output row, then b1
        high = e.const((weights >> 5).astype(np.float32))
        low = e.const(((weights & 31) / 32.0).astype(np.float32))
        part = e.op("Add", [e.op("Mul", [shifted, high]), e.op("Floor", [e.op("Mul", [shifted, low])])])
        terms = e.op("Floor", [e.op("Mul", [part, e.const(1.0 / 2048)])])
        total = e.op("Add", [e.reduce("ReduceSum", terms, [3], keepdims=0), e.const(2.0)])  # (N, w, k, h)
        return e.op("Floor", [e.op("Mul", [total, e.const(0.25)])])

    # -- post-processing ---------------------------------------------------------------------
    def classify(self, logits: str) -> tuple[str, str, str]:
        """(grid, top, peak): (N, 1, gh, gw) float32 class ids (first maximum among the classes that
        may be chosen), the chosen class's score and the highest score of all."""
        e, spec = self.e, self.spec
        classes = self.classes
        choosable = logits
        if spec.ignore_class is not None and classes > 1:
            barrier = np.zeros((1, classes, 1, 1), np.float32)
            barrier[0, spec.ignore_class] = -np.inf
            choosable = e.op("Add", [logits, e.const(barrier, what="ignore")])
        top = e.reduce("ReduceMax", choosable, [1])
        # ids + C wherever a class is below the maximum (Sign: -1 there, 0 at the maxima); the least is the
        # first maximum, whatever order TopK would give ties
        below = e.op("Sign", [e.op("Sub", [choosable, top])])
        ids = np.arange(classes, dtype=np.float32).reshape(1, classes, 1, 1)
        candidates = e.op("Sub", [e.const(ids, what="class_ids"), e.op("Mul", [below, e.const(float(classes))])])
        grid = e.reduce("ReduceMin", candidates, [1])
        peak = top if choosable is logits else e.reduce("ReduceMax", logits, [1])
        return grid, top, peak

    def confidence_levels(self, logits: str, top: str, peak: str) -> str:
        """(N, 1, gh, gw) float32 floor(255 * softmax probability of the chosen class), as the host."""
        e = self.e
        total = e.reduce("ReduceSum", e.op("Exp", [e.op("Sub", [logits, peak])]), [1])
        chosen = e.op("Exp", [e.op("Sub", [top, peak])])
        probability = e.op("Div", [chosen, total])
        return e.op("Floor", [e.op("Mul", [probability, e.const(255.0)])])

    def upsample(self, cells: str, output: str) -> None:
        """(N, 1, gh, gw) float32 per-cell values to a uint8 (N, mh, mw) output, nearest."""
        e = self.e
        gw, gh = self.grid_size
        mw, mh = self.spec.mask_dims
        values = e.reshape(cells, [0, gh, gw])
        if mw != gw:
            values = e.gather(values, Axis.build(mw, gw).nearest, axis=2)
        if mh != gh:
            values = e.gather(values, Axis.build(mh, gh).nearest, axis=1)
        e.to_uint8(values, output)

    def histogram(self, grid: str, output: str) -> None:
        """(N, C) int32 pixels per class in the class mask: per-cell pixel counts summed per class
        (integers below 2**24: exact in float32, in any order)."""
        e = self.e
        gw, gh = self.grid_size
        mw, mh = self.spec.mask_dims
        counts = np.outer(Axis.build(mh, gh).counts, Axis.build(mw, gw).counts).astype(np.float32)
        ids = np.arange(self.classes, dtype=np.float32).reshape(1, -1, 1, 1)
        distance = e.op("Abs", [e.op("Sub", [grid, e.const(ids, what="class_ids")])])
        member = e.op("Relu", [e.op("Sub", [e.const(1.0), distance])])  # 1 for the cell's class, else 0
        weighted = e.op("Mul", [member, e.const(counts[None, None], what="pixels_per_cell")])
        e.cast(e.reduce("ReduceSum", weighted, [2, 3], keepdims=0), INT32, output)

    # -- colour products ---------------------------------------------------------------------
    def _rows(self, cells: str, channels: int, ax: Axis) -> str:
        """(N, gh, gw, k) per-cell values to (N, gh, W*k) at the output width: the renderer's horizontal
        pass, elementwise as it does it (``left + (right - left) * frac``)."""
        e = self.e
        gw, gh = self.grid_size
        flat = e.reshape(cells, [0, gh, gw * channels])
        spread = np.arange(channels)

        def columns(cell: np.ndarray) -> np.ndarray:
            return (cell[:, None] * channels + spread).reshape(-1)

        if self.spec.filter_mode == "point":
            return e.gather(flat, columns(ax.cell), axis=2)
        left = e.gather(flat, columns(ax.first), axis=2)
        if (ax.first == ax.second).all():
            return left
        right = e.gather(flat, columns(ax.second), axis=2)
        step = e.op("Sub", [right, left])
        return e.op("Add", [left, e.op("Mul", [step, e.const(np.repeat(ax.frac, channels))])])

    def _columns(self, rows: str, width: int, channels: int, ay: Axis) -> str:
        """(N, gh, W*k) rows to (N, H, W, k): the vertical pass. Linear: one MatMul of constant
        (1, frac) weights over (rows, next row - row), the renderer's fused product (BLAS there)."""
        e = self.e
        gh = self.grid_size[1]
        height = len(ay.first)
        if self.spec.filter_mode == "point":
            out = e.gather(rows, ay.cell, axis=1)
        elif gh == 1 or (ay.first == ay.second).all():
            out = e.gather(rows, ay.first, axis=1)
        else:
            following = e.gather(rows, np.minimum(np.arange(gh) + 1, gh - 1), axis=1)
            steps = e.op("Sub", [following, rows])  # the last row's step is 0: it only ever copies
            stacked = e.op("Concat", [rows, steps], axis=1)  # (N, 2 gh, W*k)
            weights = np.zeros((height, 2 * gh), np.float32)
            weights[np.arange(height), ay.first] = 1.0
            weights[np.arange(height), gh + ay.first] = np.where(ay.first == ay.second, 0.0, ay.frac)
            out = e.op("MatMul", [e.const(weights, what="row_weights"), stacked])
        return e.reshape(out, [0, height, width, channels])

    def colours(self, grid: str, frame: str, outputs: set[str]) -> None:
        """The colour mask (RGB) and the overlay (the input's order) at the camera's size."""
        e, spec = self.e, self.spec
        width, height = spec.width, spec.height
        gw, gh = self.grid_size
        ax, ay = Axis.build(width, gw), Axis.build(height, gh)
        table = spec.table
        index = e.cast(e.reshape(grid, [0, gh, gw]), INT32)

        def pictured(columns, values: np.ndarray | None = None) -> str:
            """Per-cell values (the table's ``columns``, or ``values`` (C, k)) at the camera's size."""
            values = table[:, columns] if values is None else values
            cells = e.op("Gather", [e.const(values, what="colours"), index], axis=0)
            return self._columns(self._rows(cells, values.shape[1], ax), width, values.shape[1], ay)

        overlay_order = [2, 1, 0] if spec.bgr else [0, 1, 2]
        rgb = pictured([0, 1, 2]) if "color_mask" in outputs or overlay_order == [0, 1, 2] else None
        if "color_mask" in outputs:
            e.to_uint8(rgb, "color_mask")
        if "overlay" not in outputs:
            return
        colour = rgb if overlay_order == [0, 1, 2] else pictured(overlay_order)
        pixels = self._overlay_pixels(frame)
        alphas = table[:, 3]
        if (alphas == alphas[0]).all():
            # cv2.accumulateWeighted as the renderer calls it: colour + (input - colour) * (1 - a), one rounding
            keep = np.float32(1.0) - alphas[0] / np.float32(255.0)
            blended = self._fused(colour, e.op("Sub", [pixels, colour]), keep)
        else:
            # per pixel: colour * a + input * (1 - a), a and 1 - a interpolated like the colours (each repeated
            # per channel, as the renderer does), the second product fused (cv2.accumulateProduct)
            opacity = table[:, 3] / np.float32(255.0)
            a, rest = (pictured(None, np.repeat(weight[:, None], 3, axis=1))
                       for weight in (opacity, np.float32(1.0) - opacity))
            blended = self._fused_integer(e.op("Mul", [colour, a]), pixels, rest)
        e.to_uint8(blended, "overlay")

    def _overlay_pixels(self, frame: str) -> str:
        """The camera's pixels as the overlay blends them: (N, H, W, 3) in the input's order. ONNX Runtime
        broadcasts a trailing 1 and slices a trailing axis element by element (slowly), so mono is
        repeated by a Concat and a 4-channel frame loses its alpha through a MatMul with a 0/1 matrix
        (exact: levels times 1, plus zeros)."""
        e = self.e
        if self.channels == 1:
            return e.op("Concat", [frame, frame, frame], axis=3)
        if self.channels == 4:
            return e.op("MatMul", [frame, e.const(np.eye(4, 3, dtype=np.float32), what="drop_alpha")])
        return frame

    def _two_sum(self, base: str, addend: str) -> tuple[str, str]:
        """(total, error): base + addend rounded, and what the rounding lost, exactly (Knuth's two-sum)."""
        e = self.e
        total = e.op("Add", [base, addend])
        back = e.op("Sub", [total, base])
        error = e.op("Add", [e.op("Sub", [base, e.op("Sub", [total, back])]), e.op("Sub", [addend, back])])
        return total, error

    def _fused(self, base: str, factor: str, weight: np.float32) -> str:
        """``base + factor * weight`` rounded once (a fused multiply-add, which ONNX has no operator for),
        for a constant ``weight`` in [0, 1] and a ``factor`` in (-256, 256).

        Rounding twice would move many bytes by one level: with saturated colours and pixels the exact
        value is often an integer, and truncation then follows the last bit. Dekker's product error, with
        the factor split at 2**-4 by a Floor (no compiler fuses that) and the constant split at build time
        into 11 + 13 bits, and a two-sum leave one rounding, up to error terms far below a level's last bit
        (they could only matter within a hair of a midpoint between two floats, never at an integer)."""
        e = self.e
        high = np.float32(np.rint(weight * np.float32(1 << 11)) / np.float32(1 << 11))
        low = np.float32(weight - high)
        product = e.op("Mul", [factor, e.const(weight)])
        top = e.op("Mul", [e.op("Floor", [e.op("Mul", [factor, e.const(16.0)])]), e.const(1.0 / 16)])
        bottom = e.op("Sub", [factor, top])  # below 2**-4, exact
        error = e.op("Sub", [e.op("Mul", [top, e.const(high)]), product])  # top * high: at most 13 + 11 bits
        error = e.op("Add", [error, e.op("Mul", [top, e.const(low)])])
        error = e.op("Add", [error, e.op("Mul", [bottom, e.const(high)])])
        error = e.op("Add", [error, e.op("Mul", [bottom, e.const(low)])])  # ~ factor * weight - product
        total, lost = self._two_sum(base, product)
        return e.op("Add", [total, e.op("Add", [lost, error])])

    def _fused_integer(self, base: str, pixels: str, weight: str) -> str:
        """``base + pixels * weight`` rounded once, where ``pixels`` are integers below 256 and ``weight``
        varies per pixel in [0, 1]: the weight split at 2**-15 (by a Floor, which no compiler fuses) makes
        the larger product exact, and a two-sum leaves one rounding, up to the small product."""
        e = self.e
        scale = float(1 << 15)
        upper = e.op("Mul", [e.op("Floor", [e.op("Mul", [weight, e.const(scale)])]), e.const(1.0 / scale)])
        exact = e.op("Mul", [pixels, upper])  # at most 8 + 16 significant bits
        small = e.op("Mul", [pixels, e.op("Sub", [weight, upper])])
        total, lost = self._two_sum(base, exact)
        return e.op("Add", [total, e.op("Add", [lost, small])])

def _opset(proto) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ValueError("the model imports no default ONNX opset")


def build_graph(model: Model, spec: GraphSpec, proto=None):
    """The model's ONNX (``proto``: a ModelProto, its bytes, or None to read ``model.files.onnx``) wrapped
    for ``spec``: input ``camera`` uint8 (N, H, W, channels); outputs, those in ``spec.outputs``, in
    this order: class_mask and confidence uint8 (N, mh, mw), color_mask uint8 (N, H, W, 3) RGB, overlay
    uint8 (N, H, W, 3) in the input's order, histogram int32 (N, C). Returns a new ModelProto."""
    import onnx
    from onnx import helper

    if proto is None:
        proto = onnx.load(str(model.files.onnx))
    elif isinstance(proto, (bytes, bytearray)):
        proto = onnx.load_from_string(bytes(proto))
    else:
        copy = onnx.ModelProto()
        copy.CopyFrom(proto)
        proto = copy
    if len(spec.colors) != model.num_classes:
        raise ValueError(f"the colour table has {len(spec.colors)} classes, the model {model.num_classes}")
    opset = _opset(proto)
    if opset < MIN_OPSET:
        raise ValueError(f"the model's opset is {opset}; the graph needs {MIN_OPSET} or later")
    graph = proto.graph
    names = {n for node in graph.node for n in (*node.input, *node.output)} | {t.name for t in graph.initializer}
    if any(name.startswith(PREFIX) for name in names) or GRAPH_INPUT in names:
        raise ValueError(f"the model already uses names of the wrapper ('{GRAPH_INPUT}', '{PREFIX}...')")
    input_blob, output_blob = model.files.input_blob, model.files.output_blob
    if spec.batch != 1:
        culprit = _hard_coded_batch(proto)
        if culprit is not None:
            raise ValueError(f"node '{culprit}' reshapes to a fixed batch of 1; use batch 1")

    g = _Graph(model, spec, opset)
    e = g.e
    batch = BATCH_DIM if spec.batch is None else spec.batch
    camera = helper.make_tensor_value_info(GRAPH_INPUT, UINT8, [batch, spec.height, spec.width, g.channels])
    frame = e.cast(GRAPH_INPUT, FLOAT)  # (N, H, W, c) float32: the one conversion of the camera's bytes
    g.preprocess(frame, input_blob)
    preprocessing = len(e.nodes)
    wanted = set(spec.outputs)
    grid, top, peak = g.classify(output_blob)
    if "class_mask" in wanted:
        g.upsample(grid, "class_mask")
    if "confidence" in wanted:
        g.upsample(g.confidence_levels(output_blob, top, peak), "confidence")
    if "histogram" in wanted:
        g.histogram(grid, "histogram")
    if wanted & {"color_mask", "overlay"}:
        g.colours(grid, frame, wanted)

    mw, mh = spec.mask_dims
    shapes = {"class_mask": (UINT8, [batch, mh, mw]), "confidence": (UINT8, [batch, mh, mw]),
              "color_mask": (UINT8, [batch, spec.height, spec.width, 3]),
              "overlay": (UINT8, [batch, spec.height, spec.width, 3]),
              "histogram": (INT32, [batch, model.num_classes])}
    outputs = [helper.make_tensor_value_info(name, *shapes[name]) for name in OUTPUTS if name in wanted]
    before, after = e.nodes[:preprocessing], e.nodes[preprocessing:]
    initializers = {t.name for t in graph.initializer}
    inputs = [camera] + [v for v in graph.input if v.name != input_blob and v.name in initializers]
    wrapped = helper.make_graph(before + list(graph.node) + after, f"{graph.name or 'model'}_frame", inputs,
                                outputs, list(graph.initializer) + e.initializers)
    result = helper.make_model(wrapped, opset_imports=list(proto.opset_import), producer_name="segnet_ros",
                               doc_string=f"{model.name} for a {spec.width}x{spec.height} {spec.encoding} camera")
    result.ir_version = proto.ir_version
    return result
