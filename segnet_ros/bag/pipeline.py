"""The bag pipeline: every frame of the chosen topics, decoded, segmented and written, in bag order.

Threads overlap the work, joined by small bounded queues: one reads and decodes (rosbags, OpenCV's
imdecode), one or more run :meth:`SegNet.process` (pre-processing, the backend, which releases the
GIL, and the argmax), and the caller's thread renders, serialises and writes. On the CPU, ONNX
Runtime runs one single-threaded call per core (``workers``): a call that spreads over every core
waits for its slowest thread whenever the other stages take a core, and two calls side by side do
not. The reader hands every item to the writer in bag order too, and the writer waits for each in
turn, so the output is in input order and the same bag gives the same bytes whatever finishes
first. Unlike the node, nothing is ever dropped: a full queue waits.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..backends.cpu import usable_cores
from ..core.decode import MAX_INPUT_PIXELS
from ..core.errors import FrameError
from ..core.outputs import IMAGE_OUTPUTS, MODEL_OUTPUTS, class_labels_text, products_for
from ..core.segnet import Products, Segmentation, SegNet
from .reader import BagReader
from .topics import TopicPlan
from .typestore import IMAGE, LABEL_INFO, STRING, UINT32_ARRAY, BagError, has_label_info, label_info_missing
from .writer import BagWriter, Messages

BAG_OUTPUTS = IMAGE_OUTPUTS + ("class_histogram",) + MODEL_OUTPUTS
FRAME_ORDER = ("class_mask", "confidence", "class_histogram", "color_mask", "overlay")  # the node's order
OUTPUT_TYPES = {"class_histogram": UINT32_ARRAY, "class_labels": STRING, "label_info": LABEL_INFO}
AUTO_WORKERS = 4  # default_workers: one inference thread per core up to this many
BAG_MASK_SIZES = ("input", "grid")  # "depth" needs a paired depth topic, which the bag tool does not pair


def default_workers() -> int:
    """The inference threads ``--workers 0`` means: one per core, at most :data:`AUTO_WORKERS`."""
    return min(usable_cores(), AUTO_WORKERS)


@dataclass(frozen=True)
class BagSettings:
    """What is written, and how; checked whole, before anything is read."""

    outputs: tuple[str, ...] = BAG_OUTPUTS
    mask_size: str | tuple[int, int] = "input"
    label_threshold: float = 0.5
    copy_inputs: bool = False  # the segmented topics' own messages too
    copy_all: bool = False  # and every other topic
    max_input_pixels: int = MAX_INPUT_PIXELS
    queue_size: int = 4  # frames in flight between two stages
    workers: int = 1  # inference threads; more than one only where the backend runs concurrent calls

    def __post_init__(self) -> None:
        unknown = [name for name in self.outputs if name not in BAG_OUTPUTS]
        if unknown or not self.outputs:
            raise ValueError(f"outputs must be some of {', '.join(BAG_OUTPUTS)}; got {', '.join(self.outputs)}")
        if not (self.mask_size in BAG_MASK_SIZES or isinstance(self.mask_size, tuple)):
            raise ValueError(f"mask size must be input, grid or WxH, got '{self.mask_size}'")
        if not 0.0 <= self.label_threshold <= 1.0:
            raise ValueError(f"label threshold must be in 0..1, got {self.label_threshold}")
        if self.queue_size < 1 or self.max_input_pixels < 1 or self.workers < 1:
            raise ValueError("queue_size, max_input_pixels and workers must be positive")


@dataclass
class TopicResult:
    """What one segmented topic gave."""

    plan: TopicPlan
    frames: int = 0  # segmented and written
    bad: int = 0  # skipped: the reason of each is counted in ``reasons``
    reasons: Counter = field(default_factory=Counter)
    pixels: np.ndarray | None = None  # (C,) int64 class pixels over every class mask written
    first_ns: int | None = None
    last_ns: int | None = None

    def shares(self) -> np.ndarray:
        """Each class's share (0..1) of all class-mask pixels of this topic."""
        if self.pixels is None or not self.pixels.sum():
            return np.zeros(0)
        return self.pixels / self.pixels.sum()


@dataclass
class Summary:
    results: list[TopicResult]
    copied: int  # messages copied from the input
    written: int  # messages in the output, copies included
    seconds: float

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results)

    @property
    def bad(self) -> int:
        return sum(r.bad for r in self.results)


@dataclass
class _Item:
    """One input message on its way through the stages."""

    plan: TopicPlan | None  # None: a message copied as it is
    connection: object
    timestamp: int
    raw: bytes
    header: object = None
    frame: np.ndarray | None = None
    encoding: str = ""
    error: str | None = None
    segmentation: Segmentation | None = None
    done: threading.Event = field(default_factory=threading.Event)  # set once the item can be written


_END = object()
FrameCallback = Callable[[TopicPlan, int, "Segmentation | None"], None]


class BagPipeline:
    """Segments ``plans`` of ``reader`` into ``writer`` with ``net``; :meth:`run` does it."""

    def __init__(self, reader: BagReader, writer: BagWriter, net: SegNet, plans: list[TopicPlan],
                 settings: BagSettings = BagSettings(), model_name: str = "") -> None:
        if "label_info" in settings.outputs and not has_label_info():
            raise BagError(label_info_missing())
        self.reader, self.writer, self.net, self.plans, self.settings = reader, writer, net, plans, settings
        self.model_name = model_name or net.model.name
        self.messages = Messages(writer.store)
        self.notes: list[str] = []
        self._by_topic = {plan.topic.name: plan for plan in plans}
        self._results = {plan.topic.name: TopicResult(plan) for plan in plans}
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._buffers: dict[tuple, np.ndarray] = {}
        self._copied = self._written = 0
        self._announced: set[str] = set()
        # what the graph computes per frame (pipeline graph): the outputs written, and the histogram, whose
        # shares the summary reports, at the mask's size
        mask = settings.mask_size
        self._products = Products(products_for(settings.outputs) | {"histogram"},
                                  None if mask == "input" else net.grid_size if mask == "grid" else mask)
        self._connect()

    # -- connections, made up front in a fixed order ---------------------------------------------------
    def _connect(self) -> None:
        settings, writer = self.settings, self.writer
        outputs = {plan.output(name) for plan in self.plans for name in settings.outputs}
        self._copy: dict[int, object] = {}  # input connection id (the same in every open of the bag) -> output
        self._copied_topics: set[str] = set()
        if settings.copy_inputs or settings.copy_all:
            for topic in self.reader.topics.values():
                if topic.name not in self._by_topic and not settings.copy_all:
                    continue
                if topic.name in outputs:
                    self.notes.append(f"{topic.name} is not copied: the output of that name is written anew")
                    continue
                for source in topic.connections:
                    connection, why_not = writer.copy_connection(source)
                    if connection is None:
                        self.notes.append(why_not)
                    else:
                        self._copy[source.id] = connection
                        self._copied_topics.add(topic.name)
        self._out: dict[tuple[str, str], object] = {}
        for plan in self.plans:
            for name in (*[n for n in MODEL_OUTPUTS if n in settings.outputs],
                         *[n for n in FRAME_ORDER if n in settings.outputs]):
                self._out[plan.namespace, name] = writer.connection(
                    plan.output(name), OUTPUT_TYPES.get(name, IMAGE), latched=name in MODEL_OUTPUTS)

    @property
    def workers(self) -> int:
        """Inference threads: as asked where the backend takes concurrent calls, else one."""
        return self.settings.workers if getattr(self.net.backend, "concurrent_runs", False) else 1

    @property
    def read_topics(self) -> list[str]:
        """The topics the reader stage reads: the segmented ones, and every copied one."""
        return sorted(set(self._by_topic) | self._copied_topics)

    # -- the stages --------------------------------------------------------------------------------------
    def _put(self, q: queue.Queue, item) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue):
        while True:
            if self._failure is not None:
                raise self._failure
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set() and self._failure is None:
                    return _END

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._stop.set()

    def _read(self, work: queue.Queue, ordered: queue.Queue, workers: int) -> None:
        """Stage 1: messages in log-time order; images decoded (a bad one carries its reason).

        The bag is opened again on this thread: some rosbags versions read SQLite 3 through Python's
        sqlite3, whose connections serve only the thread that made them."""
        try:
            limit = self.settings.max_input_pixels
            with BagReader(self.reader.path) as reader:
                for connection, timestamp, raw in reader.messages(self.read_topics):
                    plan = self._by_topic.get(connection.topic)
                    item = _Item(plan, connection, timestamp, raw)
                    if plan is not None:
                        try:
                            msg, item.frame, item.encoding = reader.frame(connection.msgtype, raw, limit)
                            item.header = msg.header
                        except FrameError as exc:
                            item.error = str(exc)
                    if item.frame is None:
                        item.done.set()  # nothing to segment: a copied message, or a bad frame
                    elif not self._put(work, item):
                        return
                    if not self._put(ordered, item):
                        return
            for _ in range(workers):
                self._put(work, _END)
            self._put(ordered, _END)
        except BaseException as exc:  # handed to the caller's thread, which raises it
            self._fail(exc)

    def _infer(self, work: queue.Queue) -> None:
        """Stage 2, on one or more threads: SegNet.process on every good frame."""
        try:
            while True:
                item = self._get(work)
                if item is _END:
                    return
                try:
                    item.segmentation = self.net.process(item.frame, item.encoding, self._products)
                except FrameError as exc:
                    item.error = str(exc)
                item.frame = None
                item.done.set()
        except BaseException as exc:
            self._fail(exc)

    def _wait(self, item: _Item) -> None:
        while not item.done.wait(0.1):
            if self._failure is not None:
                raise self._failure

    def run(self, on_frame: FrameCallback | None = None) -> Summary:
        """Stage 3 on this thread: render and write each item in order. Raises what any stage raised
        (BagError for an unreadable bag); KeyboardInterrupt stops every stage."""
        started = time.perf_counter()
        size, workers = self.settings.queue_size, self.workers
        work, ordered = queue.Queue(size), queue.Queue(size + workers)
        threads = [threading.Thread(target=self._read, args=(work, ordered, workers), name="segnet-bag-read",
                                    daemon=True)]
        threads += [threading.Thread(target=self._infer, args=(work,), name=f"segnet-bag-infer-{i}", daemon=True)
                    for i in range(workers)]
        for thread in threads:
            thread.start()
        try:
            while True:
                item = self._get(ordered)
                if item is _END:
                    break
                self._wait(item)
                self._write(item, on_frame)
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=30.0)
        if self._failure is not None:
            raise self._failure
        return Summary(list(self._results.values()), self._copied, self._written, time.perf_counter() - started)

    # -- writing -------------------------------------------------------------------------------------------
    def _emit(self, connection, timestamp: int, data) -> None:
        self.writer.write(connection, timestamp, data)
        self._written += 1

    def _write(self, item: _Item, on_frame: FrameCallback | None) -> None:
        copy = self._copy.get(item.connection.id)
        if copy is not None:
            self._emit(copy, item.timestamp, item.raw)
            self._copied += 1
        plan = item.plan
        if plan is None:
            return
        result = self._results[plan.topic.name]
        if result.first_ns is None:
            result.first_ns = item.timestamp
        result.last_ns = item.timestamp
        if plan.namespace not in self._announced:
            self._announced.add(plan.namespace)
            self._write_model_outputs(plan, item.timestamp)
        if item.error is not None:
            result.bad += 1
            result.reasons[item.error] += 1
        else:
            counts = self._write_frame(plan, item)
            result.pixels = counts if result.pixels is None else result.pixels + counts
            result.frames += 1
        if on_frame is not None:
            on_frame(plan, item.timestamp, item.segmentation)

    def _write_model_outputs(self, plan: TopicPlan, timestamp: int) -> None:
        """class_labels and label_info, once per namespace, at its first frame's receive time."""
        net, outputs = self.net, self.settings.outputs
        if "class_labels" in outputs:
            rgba = net.model.classes.rgba(net.settings.overlay_alpha)
            text = class_labels_text(self.model_name, net.class_names, rgba)
            self._emit(self._out[plan.namespace, "class_labels"], timestamp, self.messages.string(text))
        if "label_info" in outputs:
            data = self.messages.label_info(timestamp, net.class_names, self.settings.label_threshold)
            self._emit(self._out[plan.namespace, "label_info"], timestamp, data)

    def _buffer(self, plan: TopicPlan, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """One array per topic and output, drawn into frame after frame (fresh pages cost more than
        the drawing); the serialiser copies it, so reusing it at once is safe."""
        key = (plan.topic.name, name)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.shape != shape:
            buffer = self._buffers[key] = np.empty(shape, dtype=np.uint8)
        return buffer

    def _mask_size(self, seg: Segmentation) -> tuple[int, int]:
        setting = self.settings.mask_size
        if setting == "input":
            return seg.input_size
        if setting == "grid":
            return seg.grid_size
        return setting

    def _write_frame(self, plan: TopicPlan, item: _Item) -> np.ndarray:
        """The frame's outputs in the node's order, each with the input's header and log time."""
        seg, header, timestamp, outputs = item.segmentation, item.header, item.timestamp, self.settings.outputs
        width, height = size = self._mask_size(seg)
        mask_shape, image_shape = (height, width), (seg.input_size[1], seg.input_size[0], 3)
        counts = seg.histogram(size)
        want_colors, want_overlay = "color_mask" in outputs, "overlay" in outputs
        colors, overlay = seg.pictures(self._buffer(plan, "color_mask", image_shape) if want_colors else None,
                                       self._buffer(plan, "overlay", image_shape) if want_overlay else None,
                                       want_colors, want_overlay)
        for name in FRAME_ORDER:
            if name not in outputs:
                continue
            if name == "class_mask":
                data = self.messages.image(header, seg.class_mask(size, self._buffer(plan, name, mask_shape)), "mono8")
            elif name == "confidence":
                data = self.messages.image(header, seg.confidence(size, self._buffer(plan, name, mask_shape)), "mono8")
            elif name == "class_histogram":
                data = self.messages.histogram(counts)
            elif name == "color_mask":
                data = self.messages.image(header, colors, "rgb8")
            else:
                data = self.messages.image(header, overlay, seg.overlay_encoding)
            self._emit(self._out[plan.namespace, name], timestamp, data)
        return counts.astype(np.int64)
