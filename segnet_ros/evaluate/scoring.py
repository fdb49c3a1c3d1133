"""Scoring SegNets on labelled frames: each frame read once, every net run on it, one confusion
matrix per net summed over the set.

Where the pixels are compared (``at``):

- ``net``: at the network's input size, the label resized nearest (sampled at pixel centres, as
  PIL's nearest resize in pytorch-segmentation's transforms does). That is how jetson-inference's
  published accuracy was measured: at the training resolution, labels resized nearest.
- ``label``: at the label's own size, the class grid upsampled to it.

How the prediction reaches that size (``upsample``):

- ``nearest``: the class mask segnet_ros publishes (segNet's rendering of the class grid);
- ``bilinear``: the logits upsampled bilinearly (half-pixel centres) before the argmax, as the
  training code's model does before it is scored; the figure jetson-inference's table reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..backends.base import Backend
from ..core.errors import SegnetError
from ..core.model import Model
from ..core.preprocess import Preprocessor
from ..core.segnet import Products, SegNet, SegNetSettings
from .labels import LabelDecoder
from .metrics import MAX_LABEL_VALUE, ConfusionMatrix, Metrics
from .pairs import BagSet, FileSet, LabelledFrame

AT = ("net", "label")
UPSAMPLE = ("nearest", "bilinear")
OPENCV_MAX_CHANNELS = 128  # cv2.resize takes at most this many channels at once
Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class ScoreSettings:
    """Where and how predictions meet labels; ``ignore_index`` None: every label value counts."""

    at: str = "net"
    ignore_index: int | None = 255
    upsample: str = "nearest"

    def __post_init__(self) -> None:
        if self.at not in AT:
            raise ValueError(f"at must be one of {', '.join(AT)}, got '{self.at}'")
        if self.upsample not in UPSAMPLE:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE)}, got '{self.upsample}'")
        if self.ignore_index is not None and not 0 <= self.ignore_index <= MAX_LABEL_VALUE:
            raise ValueError(f"ignore_index must be 0..{MAX_LABEL_VALUE} or None, got {self.ignore_index}")


@dataclass
class Score:
    """One net's result: its metrics, and how many scored pixels it labels as the first net does."""

    metrics: Metrics
    agreeing: int | None = None  # None for the first net (the reference)
    seconds: float = 0.0  # spent in this net (pre-processing, inference, class mask)

    @property
    def agreement(self) -> float | None:
        pixels = self.metrics.pixels
        return self.agreeing / pixels if self.agreeing is not None and pixels else None


def aspect_matches(label: Size, image: Size) -> bool:
    """The label is the image at some scale, up to a pixel of rounding on either side."""
    (lw, lh), (iw, ih) = label, image
    return abs(lw * ih - lh * iw) <= max(iw, ih)


def nearest_centres(src: int, dst: int) -> np.ndarray:
    """Source index of each of ``dst`` samples taken at pixel centres: floor((i + 0.5) * src / dst)."""
    return ((2 * np.arange(dst, dtype=np.int64) + 1) * src // (2 * dst)).astype(np.intp)


def resize_label(label: np.ndarray, size: Size) -> np.ndarray:
    width, height = size
    if label.shape == (height, width):
        return label
    rows = nearest_centres(label.shape[0], height)
    columns = nearest_centres(label.shape[1], width)
    return np.take(np.take(label, rows, axis=0), columns, axis=1)  # 4x faster than one 2-D fancy index


def bilinear_classes(logits: np.ndarray, size: Size, ignore_id: int | None) -> np.ndarray:
    """(H, W) uint8 argmax of (C, gh, gw) logits upsampled bilinearly to ``size`` (half-pixel centres,
    edges clamped: PyTorch's align_corners=False); ``ignore_id`` is never chosen; ties: lowest id."""
    planes = np.ascontiguousarray(np.moveaxis(np.asarray(logits, dtype=np.float32), 0, -1))
    parts = [cv2.resize(planes[:, :, first:first + OPENCV_MAX_CHANNELS], size, interpolation=cv2.INTER_LINEAR)
             for first in range(0, planes.shape[2], OPENCV_MAX_CHANNELS)]
    parts = [p[:, :, None] if p.ndim == 2 else p for p in parts]  # a single channel comes back 2-D
    scores = np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
    if ignore_id is not None and scores.shape[2] > 1:
        scores[:, :, ignore_id] = -np.inf
    return np.argmax(scores, axis=2).astype(np.uint8)


class _Run:
    """One net's running state: its confusion matrix, agreement count and time."""

    def __init__(self, net: SegNet, upsample: str) -> None:
        self.net = net
        self.matrix = ConfusionMatrix(net.num_classes)
        self.agreeing = 0
        self.seconds = 0.0
        self.upsample = upsample
        if upsample == "bilinear":
            model = net.model
            self.preprocessor = Preprocessor(model.input_width, model.input_height, net.settings.resize)
            ignore = net.settings.ignore_class
            self.ignore_id = model.classes.index_of(ignore) if ignore else None

    def predict(self, frame: LabelledFrame, size: Size) -> np.ndarray:
        started = time.perf_counter()
        if self.upsample == "nearest":
            # the class mask alone, at the scoring size (all the graph computes on pipeline graph)
            prediction = self.net.process(frame.image, frame.encoding,
                                          Products(frozenset({"class_mask"}), tuple(size))).class_mask(size)
        else:
            logits = self.net.backend.run(self.preprocessor(frame.image, frame.encoding))
            prediction = bilinear_classes(logits[0], size, self.ignore_id)
        self.seconds += time.perf_counter() - started
        return prediction


def checked_label(frame: LabelledFrame, num_classes: int, ignore_index: int | None) -> np.ndarray:
    """The frame's label as uint8 class ids, or one error: a shape that is not the image's, or values
    that are neither a class nor the ignore index (counted, with the values named)."""
    label = frame.label
    height, width = label.shape[:2]
    image_height, image_width = frame.image.shape[:2]
    if label.ndim != 2 or not aspect_matches((width, height), (image_width, image_height)):
        raise SegnetError(f"{frame.where} is {width}x{height} but its image '{frame.name}' is "
                          f"{image_width}x{image_height}: not the same aspect, so its pixels do not line up")
    if label.dtype == np.uint8:
        counts = cv2.calcHist([label], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    else:
        counts = np.bincount(label.reshape(-1), minlength=256).astype(np.int64)
    outside = counts.copy()
    outside[:num_classes] = 0
    if ignore_index is not None:
        outside[ignore_index] = 0
    if outside.any():
        values = np.flatnonzero(outside)
        listed = ", ".join(f"{v} ({outside[v]} px)" for v in values[:5]) + (" ..." if len(values) > 5 else "")
        ignored = f"the ignore index {ignore_index}" if ignore_index is not None else "ignored (--ignore-index -1)"
        raise SegnetError(
            f"{frame.where} has {int(outside.sum())} pixels whose values are no class of the model "
            f"(0..{num_classes - 1}) and not {ignored}: {listed}; check --mask-format (Cityscapes labelIds: "
            "cityscapes, colour-coded: colors) and --ignore-index")
    return label if label.dtype == np.uint8 else label.astype(np.uint8)


def evaluate(nets: Sequence[SegNet], frames: Iterable[LabelledFrame], settings: ScoreSettings = ScoreSettings(),
             on_frame: Callable[[], None] | None = None) -> list[Score]:
    """Score every net on the same frames (each frame read once). The first net is the reference that
    the others' agreement is counted against. Raises SegnetError on the first bad frame."""
    if not nets:
        raise ValueError("evaluate needs at least one net")
    num_classes = nets[0].num_classes
    if any(net.num_classes != num_classes for net in nets):
        raise ValueError("the nets differ in class count")
    runs = [_Run(net, settings.upsample) for net in nets]
    ignore = settings.ignore_index
    frame_count = 0
    model = nets[0].model
    for frame in frames:
        label = checked_label(frame, num_classes, ignore)
        if settings.at == "net":
            size = (model.input_width, model.input_height)
            label = resize_label(label, size)
        else:
            size = (label.shape[1], label.shape[0])
        first = None
        scored = None
        for index, run in enumerate(runs):
            prediction = run.predict(frame, size)
            run.matrix.add(label, prediction, ignore)
            if index == 0:
                first = prediction
                continue
            same = prediction == first
            if ignore is not None:
                if scored is None:
                    scored = label != ignore
                same &= scored
            run.agreeing += int(np.count_nonzero(same))
        frame_count += 1
        if on_frame is not None:
            on_frame()
    if not frame_count:
        raise SegnetError("empty set: no labelled frames to evaluate")
    return [Score(Metrics.of(run.matrix, run.net.class_names, frame_count), None if i == 0 else run.agreeing,
                  run.seconds) for i, run in enumerate(runs)]


def evaluate_backends(model: Model, backends: Sequence[Backend], source: FileSet | BagSet, mask_format: str = "auto",
                      settings: ScoreSettings = ScoreSettings(), segnet_settings: SegNetSettings | None = None,
                      on_frame: Callable[[], None] | None = None) -> list[Score]:
    """Score each backend of ``model`` (the first is the reference) on a labelled set from
    :func:`~segnet_ros.evaluate.pairs.open_labelled`: what ``quantize --eval`` needs to weigh an INT8
    model against FP32 on ground truth."""
    decoder = LabelDecoder(mask_format, model.classes, source.layout, model.name)
    nets = [SegNet(model, backend, segnet_settings) for backend in backends]
    return evaluate(nets, source.frames(decoder), settings, on_frame)
