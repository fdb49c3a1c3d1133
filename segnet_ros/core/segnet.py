"""SegNet: one small object that segments frames, in the spirit of jetson-inference's segNet.

``SegNet.process(frame)`` runs pre-processing, the backend and the argmax, and returns a
:class:`Segmentation`; every picture is rendered only when asked for. With ``pipeline graph`` the
whole frame runs in the backend instead (camera bytes in, finished products out: the backends'
``graph_runner``), and the result is a :class:`GraphSegmentation` of the products asked for: the host
only copies bytes in and out, which is what a GPU needs (its numpy would be the bottleneck).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .classify import classify
from .errors import SettingsError
from .frames import Encoding, check_frame, encoding
from .model import Model
from .outputs import PRODUCTS
from .preprocess import RESIZE_METHODS, Preprocessor
from .render import FILTER_MODES, Renderer

PIPELINES = ("auto", "graph", "host")
CACHED_GRAPHS = 8  # camera configurations whose graph stays loaded (a node has a few cameras and settings)

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class SegNetSettings:
    """How frames are prepared and rendered; replaced whole, so a frame never sees half a change."""

    resize: str = "linear"
    filter_mode: str = "linear"
    overlay_alpha: int = 150
    ignore_class: str = "void"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_METHODS:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_METHODS)}, got '{self.resize}'")
        if self.filter_mode not in FILTER_MODES:
            raise ValueError(f"filter_mode must be one of {', '.join(FILTER_MODES)}, got '{self.filter_mode}'")
        if isinstance(self.overlay_alpha, bool) or not isinstance(self.overlay_alpha, (int, np.integer)):
            raise ValueError(f"overlay_alpha must be an integer 0..255, got {self.overlay_alpha!r}")
        if not 0 <= self.overlay_alpha <= 255:
            raise ValueError(f"overlay_alpha must be in 0..255, got {self.overlay_alpha}")


@dataclass(frozen=True)
class Products:
    """What the graph computes for a frame: ``outputs`` (of :data:`PRODUCTS`), with class mask, confidence
    and histogram at ``mask_size`` ((width, height); None: the frame's size). The host path renders
    lazily and needs no such request."""

    outputs: frozenset[str] = frozenset(PRODUCTS)
    mask_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs", frozenset(self.outputs))
        if not self.outputs <= set(PRODUCTS):
            raise ValueError(f"products must be among {', '.join(PRODUCTS)}, got {sorted(self.outputs)}")


ALL_PRODUCTS = Products()


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent in each stage of the last call (a batch: all of its frames together);
    ``*_cpu`` is the calling thread's CPU time, the rest wall time."""

    preprocess: float = 0.0
    inference: float = 0.0
    classify: float = 0.0
    frames: int = 1
    preprocess_cpu: float = 0.0
    classify_cpu: float = 0.0


class Segmentation:
    """The result for one frame: the class grid, and lazily rendered products at any size."""

    def __init__(self, net: SegNet, frame: np.ndarray, enc: Encoding, grid: np.ndarray,
                 confidence: np.ndarray, settings: SegNetSettings, colors: np.ndarray,
                 timings: Timings = Timings()) -> None:
        self._net = net
        self.timings = timings  # of the call (batch) that made this result
        self.frame = frame
        self.encoding = enc
        self.grid = grid
        self.confidence_grid = confidence
        self.settings = settings
        self.colors = colors  # (C, 4) float32 RGBA used for this frame

    @property
    def input_size(self) -> Size:
        return (self.frame.shape[1], self.frame.shape[0])

    @property
    def grid_size(self) -> Size:
        return (self.grid.shape[1], self.grid.shape[0])

    def _size(self, size: Size | None) -> Size:
        width, height = size if size is not None else self.input_size
        if width <= 0 or height <= 0:
            raise ValueError(f"render size must be positive, got {width}x{height}")
        return int(width), int(height)

    # Every picture is a new array, or is drawn into ``out`` (uint8, the picture's shape) when given.
    def class_mask(self, size: Size | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """(H, W) uint8 class ids (input size by default; the grid size gives the raw grid)."""
        return self._net.renderer.class_mask(self.grid, *self._size(size), out)

    def confidence(self, size: Size | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """(H, W) uint8, 255 x the softmax probability of each pixel's class."""
        scaled = (self.confidence_grid * np.float32(255.0)).astype(np.uint8)
        return self._net.renderer.upsample(scaled, *self._size(size), out)

    def histogram(self, size: Size | None = None) -> np.ndarray:
        """(C,) int64 pixel counts per class over the class mask of ``size``."""
        return self._net.renderer.histogram(self.grid, self._net.num_classes, *self._size(size))

    def color_mask(self, size: Size | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB class colours."""
        return self._net.renderer.color_mask(self.grid, self.colors, *self._size(size), self.settings.filter_mode,
                                             out)

    def overlay(self, size: Size | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 blend of colours over the input; BGR for BGR inputs, RGB otherwise."""
        return self._net.renderer.overlay(
            self.grid, self.colors, self.frame, self.encoding, *self._size(size), self.settings.filter_mode, out)

    def pictures(self, color_out: np.ndarray | None = None, overlay_out: np.ndarray | None = None,
                 color: bool = True, overlay: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The colour mask and/or the overlay at the input size (None for one not asked for); both from one
        computation of the colours when both are asked for (the same pictures as the separate calls)."""
        if color and overlay:
            return self._net.renderer.color_mask_and_overlay(
                self.grid, self.colors, self.frame, self.encoding, *self.input_size, self.settings.filter_mode,
                color_out, overlay_out)
        return (self.color_mask(None, color_out) if color else None,
                self.overlay(None, overlay_out) if overlay else None)

    @property
    def overlay_encoding(self) -> str:
        """The overlay's channel order as a ROS encoding: the input's for BGR inputs, else RGB."""
        return "bgr8" if self.encoding.bgr else "rgb8"


class GraphSegmentation(Segmentation):
    """A frame's products as the whole-frame graph computed them (pipeline graph): the same calls as
    :class:`Segmentation`, answered by copies of the graph's outputs. Class ids, confidence and the
    histogram exist at the size asked for only; a picture at another size (segnet.py's half-size mask)
    is the full one resized for display."""

    def __init__(self, net: SegNet, frame: np.ndarray, enc: Encoding, products: dict[str, np.ndarray],
                 mask_size: tuple[int, int], settings: SegNetSettings, colors: np.ndarray,
                 timings: Timings = Timings()) -> None:
        self._net = net
        self.timings = timings
        self.frame = frame
        self.encoding = enc
        self.products = products
        self.mask_size = mask_size
        self.settings = settings
        self.colors = colors

    @property
    def grid_size(self) -> Size:
        return self._net.grid_size

    def _product(self, name: str) -> np.ndarray:
        if name not in self.products:
            raise ValueError(f"the graph did not compute {name} for this frame; ask process_batch for it")
        return self.products[name]

    def _mask_product(self, name: str, size: Size | None, out: np.ndarray | None) -> np.ndarray:
        if self._size(size) != self.mask_size:
            raise ValueError(f"the graph computed {name} at {self.mask_size[0]}x{self.mask_size[1]}, not "
                             f"{self._size(size)[0]}x{self._size(size)[1]}; ask process_batch for that size")
        return _into(self._product(name), out)

    def class_mask(self, size: Size | None = None, out: np.ndarray | None = None) -> np.ndarray:
        return self._mask_product("class_mask", size, out)

    def confidence(self, size: Size | None = None, out: np.ndarray | None = None) -> np.ndarray:
        return self._mask_product("confidence", size, out)

    def histogram(self, size: Size | None = None) -> np.ndarray:
        return self._mask_product("histogram", size, None).astype(np.int64)

    def _picture(self, name: str, size: Size | None, out: np.ndarray | None) -> np.ndarray:
        picture = self._product(name)
        width, height = self._size(size)
        if (width, height) != self.input_size:
            picture = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
        return _into(picture, out)

    def color_mask(self, size: Size | None = None, out: np.ndarray | None = None) -> np.ndarray:
        return self._picture("color_mask", size, out)

    def overlay(self, size: Size | None = None, out: np.ndarray | None = None) -> np.ndarray:
        return self._picture("overlay", size, out)

    def pictures(self, color_out: np.ndarray | None = None, overlay_out: np.ndarray | None = None,
                 color: bool = True, overlay: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
        return (self.color_mask(None, color_out) if color else None,
                self.overlay(None, overlay_out) if overlay else None)


def _into(array: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``array`` copied into ``out`` (checked like the renderer's), or ``array`` itself."""
    if out is None:
        return array
    if out.shape != array.shape or out.dtype != array.dtype:
        raise ValueError(f"out must be a {array.dtype} {array.shape} array, got {out.dtype} {out.shape}")
    np.copyto(out, array)
    return out


def ignore_class_problem(names: Sequence[str], name: str, model_name: str) -> str | None:
    """Why ``name`` cannot be the ignore class, or None. "" means none; the default ``void``
    (jetson-inference's, a class of Cityscapes only) is allowed for every model; any other name that
    matches no class is a typo, refused in the same words by the CLI and the node ("none" and "" ignore
    nothing)."""
    if name.strip().lower() in ("", "none", SegNetSettings.ignore_class) or name.strip().lower() in (
            n.lower() for n in names):
        return None
    return f"ignore_class '{name}' names no class of {model_name}; its classes: {', '.join(names)} (or none)"


class SegNet:
    """A loaded model on a backend: frames in, :class:`Segmentation` out."""

    def __init__(self, model: Model, backend, settings: SegNetSettings | None = None, pipeline: str = "host") -> None:
        """``pipeline``: ``host`` (pre-processing, argmax and rendering in numpy), ``graph`` (the whole frame
        in the backend) or ``auto`` (graph where the backend says it pays: GPUs)."""
        if pipeline not in PIPELINES:
            raise SettingsError(f"pipeline must be one of {', '.join(PIPELINES)}, got '{pipeline}'")
        if pipeline == "auto":
            pipeline = "graph" if getattr(backend, "graph_by_default", False) else "host"
        if pipeline == "graph" and not getattr(backend, "runs_graph", False):
            raise SettingsError(f"pipeline graph needs a backend that runs the whole-frame graph (onnxruntime, "
                                f"openvino or tensorrt); {getattr(backend, 'name', 'this backend')} does not")
        self.model = model
        self.backend = backend
        self.pipeline = pipeline
        self.renderer = Renderer(model.grid_width, model.grid_height)
        self.timings = Timings()
        self._local = threading.local()  # each calling thread's batch tensor and pre-processor
        self._lock = threading.Lock()
        self._runners: OrderedDict = OrderedDict()  # (camera configuration, settings) -> the backend's graph
        self._apply(settings or SegNetSettings())

    # -- settings -----------------------------------------------------------------------
    @property
    def settings(self) -> SegNetSettings:
        return self._settings

    def update_settings(self, **changes) -> SegNetSettings:
        """Validate and apply changes; raises ValueError and changes nothing if one is invalid."""
        new = dataclasses.replace(self._settings, **changes)
        self._apply(new)
        return new

    def _apply(self, settings: SegNetSettings) -> None:
        classes = self.model.classes
        reason = ignore_class_problem(classes.names, settings.ignore_class, self.model.name)
        if reason:
            raise SettingsError(reason)
        colors = classes.rgba(settings.overlay_alpha)
        ignore_id = classes.index_of(settings.ignore_class) if settings.ignore_class else None
        with self._lock:
            self._settings, self._colors, self._ignore_id = settings, colors, ignore_id

    # -- facts about the model ------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        return self.model.classes.names

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def grid_size(self) -> Size:
        return (self.model.grid_width, self.model.grid_height)

    # -- the work ---------------------------------------------------------------------------
    def _thread_buffers(self, count: int, resize: str) -> tuple[np.ndarray, Preprocessor]:
        """This thread's batch tensor (at least ``count`` frames) and pre-processor (for ``resize``),
        reused call after call: the tensor and the pre-processor's buffers are written in place."""
        local = self._local
        batch = getattr(local, "batch", None)
        if batch is None or batch.shape[0] < count:
            batch = local.batch = np.empty((count, 3, self.model.input_height, self.model.input_width), np.float32)
        preprocessor = getattr(local, "preprocessor", None)
        if preprocessor is None or preprocessor.resize != resize:
            preprocessor = local.preprocessor = Preprocessor(self.model.input_width, self.model.input_height, resize)
        return batch, preprocessor

    def process(self, frame: np.ndarray, encoding_name: str = "rgb8", products: Products = ALL_PRODUCTS
                ) -> Segmentation:
        """Segment one uint8 frame given in ``encoding_name`` (rgb8, bgr8, rgba8, bgra8, mono8);
        ``products``: what the graph computes (pipeline graph; the host renders what is asked later)."""
        return self.process_batch([(frame, encoding_name)], [products])[0]

    def process_batch(self, frames: Sequence[tuple[np.ndarray, str]],
                      products: Sequence[Products] | None = None) -> list[Segmentation]:
        """Segment several (frame, encoding) pairs, e.g. one per camera, in as few backend calls as the
        backend's ``max_batch`` allows; frames may differ in size and encoding. Result i is frame i's.
        Several threads may call it at once where the backend takes concurrent calls
        (``backend.concurrent_runs``): each thread has its own batch tensor and pre-processor.
        ``products[i]`` is what the graph computes for frame i (pipeline graph; default: everything)."""
        with self._lock:
            settings, colors, ignore_id = self._settings, self._colors, self._ignore_id
        checked = []
        for frame, encoding_name in frames:
            enc = encoding(encoding_name)
            checked.append((check_frame(frame, enc), enc))
        count = len(checked)
        if count == 0:
            return []
        if self.pipeline == "graph":
            return self._graph_batch(checked, list(products or [ALL_PRODUCTS] * count), settings, colors)
        batch, preprocessor = self._thread_buffers(count, settings.resize)
        start, start_cpu = time.perf_counter(), time.thread_time()
        for i, (frame, enc) in enumerate(checked):
            preprocessor.prepare(frame, enc, batch[i:i + 1])
        prepared, prepared_cpu = time.perf_counter(), time.thread_time()
        step = max(1, getattr(self.backend, "max_batch", 1))
        results, inference, classify_s, classify_cpu = [], 0.0, 0.0, 0.0
        for first in range(0, count, step):
            began = time.perf_counter()
            logits = self.backend.run(batch[first:min(first + step, count)])
            ran, ran_cpu = time.perf_counter(), time.thread_time()
            # classified before the next call: a backend may hand back the same output buffer each time
            results += [classify(logits[j], ignore_id) for j in range(logits.shape[0])]
            inference += ran - began
            classify_s += time.perf_counter() - ran
            classify_cpu += time.thread_time() - ran_cpu
        self.timings = timings = Timings(
            (prepared - start) * 1e3, inference * 1e3, classify_s * 1e3, count,
            (prepared_cpu - start_cpu) * 1e3, classify_cpu * 1e3)
        return [Segmentation(self, frame, enc, grid, confidence, settings, colors, timings)
                for (frame, enc), (grid, confidence) in zip(checked, results, strict=True)]

    # -- the whole frame in the backend (pipeline graph) -------------------------------------------
    def _runner(self, key: tuple, settings: SegNetSettings, batch: int | None):
        """The backend's graph for this camera configuration and these settings, kept for the next frames
        (a settings change makes another; the oldest of more than CACHED_GRAPHS is closed)."""
        width, height, name, wanted = key
        with self._lock:
            runner = self._runners.get((key, settings))
            if runner is not None:
                self._runners.move_to_end((key, settings))
                return runner
        runner = self.backend.graph_runner_for(self.model, settings, width, height, name, wanted.outputs,
                                               wanted.mask_size, batch)
        with self._lock:
            self._runners[(key, settings)] = runner
            while len(self._runners) > CACHED_GRAPHS:
                self._runners.popitem(last=False)[1].close()
        return runner

    def _graph_batch(self, checked: list[tuple[np.ndarray, Encoding]], products: list[Products],
                     settings: SegNetSettings, colors: np.ndarray) -> list[Segmentation]:
        """Frames of one size, encoding and request go through one graph, ``max_batch`` at a time."""
        groups: dict[tuple, list[int]] = {}
        for index, ((frame, enc), wanted) in enumerate(zip(checked, products, strict=True)):
            groups.setdefault((frame.shape[1], frame.shape[0], enc.name, wanted), []).append(index)
        step = max(1, getattr(self.backend, "max_batch", 1))
        results: list[Segmentation | None] = [None] * len(checked)
        copy_in = run = copy_out = copy_in_cpu = copy_out_cpu = 0.0
        for key, indices in groups.items():
            mask_size = key[3].mask_size or (key[0], key[1])
            if not key[3].outputs:  # nothing wanted but the frame's header (camera_info_mask): no call
                for index in indices:
                    results[index] = GraphSegmentation(self, *checked[index], {}, mask_size, settings, colors)
                continue
            runner = self._runner(key, settings, None if step > 1 else 1)
            for first in range(0, len(indices), step):
                chunk = indices[first:first + step]
                start, start_cpu = time.perf_counter(), time.thread_time()
                # (N, H, W, C) uint8: one frame as it is (a copy only where its rows are padded), several stacked
                frames = (np.ascontiguousarray(checked[chunk[0]][0])[None] if len(chunk) == 1
                          else np.stack([checked[i][0] for i in chunk]))
                began, began_cpu = time.perf_counter(), time.thread_time()
                outputs = runner.run(frames)
                ran, ran_cpu = time.perf_counter(), time.thread_time()
                keep = (lambda a: a) if getattr(runner, "fresh_outputs", False) else np.copy
                for j, index in enumerate(chunk):  # the copies out, where the runner reuses its buffers
                    frame, enc = checked[index]
                    results[index] = GraphSegmentation(self, frame, enc, {k: keep(v[j]) for k, v in outputs.items()},
                                                       mask_size, settings, colors)
                copy_in += began - start
                run += ran - began
                copy_out += time.perf_counter() - ran
                copy_in_cpu += began_cpu - start_cpu
                copy_out_cpu += time.thread_time() - ran_cpu
        self.timings = timings = Timings(copy_in * 1e3, run * 1e3, copy_out * 1e3, len(checked), copy_in_cpu * 1e3,
                                         copy_out_cpu * 1e3)
        for result in results:
            result.timings = timings
        return results

    def close(self) -> None:
        """Release the graphs and the backend."""
        with self._lock:
            runners, self._runners = list(self._runners.values()), OrderedDict()
        for runner in runners:
            runner.close()
        self.backend.close()
