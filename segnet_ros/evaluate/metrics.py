"""Accuracy figures from one confusion matrix summed over a whole labelled set (pure numpy).

The figures follow what well-kept evaluators agree on (mmsegmentation's ``IoUMetric``,
cityscapesScripts, torchmetrics' dataset-level Jaccard index): pixels labelled with the ignore index
never count; intersections, unions and label counts are sums over every frame, not a mean of
per-frame scores; a class that neither the labels nor the predictions hold has no IoU (0/0), stays
out of the mean and is named. Pixel accuracy, trace / total, is the figure jetson-inference publishes
as "Accuracy" (pytorch-segmentation's "global correct").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_LABEL_VALUE = 255  # labels reach the matrix as uint8: class ids and the ignore index


class ConfusionMatrix:
    """``counts[label, prediction]``: pixels of each (ground truth, predicted) class pair."""

    def __init__(self, num_classes: int) -> None:
        if not 1 <= num_classes <= MAX_LABEL_VALUE + 1:
            raise ValueError(f"num_classes must be 1..{MAX_LABEL_VALUE + 1}, got {num_classes}")
        self.num_classes = num_classes
        self.counts = np.zeros((num_classes, num_classes), dtype=np.int64)

    def add(self, label: np.ndarray, prediction: np.ndarray, ignore_index: int | None = None) -> None:
        """Count one frame. ``label`` is uint8 and holds class ids or ``ignore_index`` only (the caller
        checked); ``prediction`` is uint8 class ids of the same shape."""
        if label.shape != prediction.shape:
            raise ValueError(f"label {label.shape} and prediction {prediction.shape} differ in shape")
        n = self.num_classes
        # one bincount over label * n + prediction: every label value 0..255 has a row, so the
        # ignore index (wherever it lies) lands in a row of its own and is dropped below
        index = label.reshape(-1).astype(np.intp)
        index *= n
        index += prediction.reshape(-1)
        counts = np.bincount(index, minlength=(MAX_LABEL_VALUE + 1) * n)[: n * n].reshape(n, n)
        if ignore_index is not None and 0 <= ignore_index < n:
            counts[ignore_index] = 0
        self.counts += counts


@dataclass(frozen=True)
class ClassScore:
    """One class's figures; ``iou`` is None with no pixel in labels or predictions, ``accuracy`` with
    no label pixel (0/0 in both cases)."""

    id: int
    name: str
    iou: float | None
    accuracy: float | None
    label_pixels: int
    predicted_pixels: int

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "iou": self.iou, "accuracy": self.accuracy,
                "label_pixels": self.label_pixels, "predicted_pixels": self.predicted_pixels}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator with NaN where the denominator is 0 (no warning)."""
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


@dataclass(frozen=True)
class Metrics:
    """Everything one confusion matrix says, with the class names to report it by."""

    confusion: np.ndarray  # (C, C) int64, rows: label, columns: prediction
    names: tuple[str, ...]
    frames: int

    @classmethod
    def of(cls, matrix: ConfusionMatrix, names: Sequence[str], frames: int) -> Metrics:
        if len(names) != matrix.num_classes:
            raise ValueError(f"{len(names)} names for {matrix.num_classes} classes")
        return cls(matrix.counts.copy(), tuple(names), frames)

    @property
    def intersection(self) -> np.ndarray:
        return np.diagonal(self.confusion).astype(np.int64)

    @property
    def label_pixels(self) -> np.ndarray:
        return self.confusion.sum(axis=1)

    @property
    def predicted_pixels(self) -> np.ndarray:
        return self.confusion.sum(axis=0)

    @property
    def union(self) -> np.ndarray:
        return self.label_pixels + self.predicted_pixels - self.intersection

    @property
    def pixels(self) -> int:
        """Pixels scored (not ignored), over all frames."""
        return int(self.confusion.sum())

    @property
    def iou(self) -> np.ndarray:
        """(C,) float64 intersection / union, NaN for a class with zero union."""
        return _ratio(self.intersection.astype(np.float64), self.union.astype(np.float64))

    @property
    def accuracy(self) -> np.ndarray:
        """(C,) float64 per-class accuracy (recall), NaN for a class with no label pixel."""
        return _ratio(self.intersection.astype(np.float64), self.label_pixels.astype(np.float64))

    @property
    def pixel_accuracy(self) -> float | None:
        total = self.pixels
        return float(self.intersection.sum()) / total if total else None

    @property
    def mean_iou(self) -> float | None:
        """Mean over the classes present in the labels or the predictions."""
        iou = self.iou
        return float(np.nanmean(iou)) if not np.isnan(iou).all() else None

    @property
    def mean_accuracy(self) -> float | None:
        """Mean over the classes present in the labels (accuracy needs label pixels)."""
        accuracy = self.accuracy
        return float(np.nanmean(accuracy)) if not np.isnan(accuracy).all() else None

    @property
    def iou_classes(self) -> int:
        """How many classes the mean IoU is over."""
        return int((self.union > 0).sum())

    @property
    def accuracy_classes(self) -> int:
        return int((self.label_pixels > 0).sum())

    @property
    def left_out(self) -> tuple[str, ...]:
        """Classes with no pixel in labels or predictions: no IoU, not in the means."""
        return tuple(name for name, union in zip(self.names, self.union.tolist(), strict=True) if union == 0)

    def classes(self) -> list[ClassScore]:
        iou, accuracy = self.iou, self.accuracy
        labels, predicted = self.label_pixels, self.predicted_pixels
        return [ClassScore(i, name, _optional(iou[i]), _optional(accuracy[i]), int(labels[i]), int(predicted[i]))
                for i, name in enumerate(self.names)]

    def normalized(self) -> np.ndarray:
        """The row-normalised matrix (each label class's pixels sum to 1; NaN rows without pixels)."""
        rows = self.label_pixels.astype(np.float64)[:, None]
        return _ratio(self.confusion.astype(np.float64), np.broadcast_to(rows, self.confusion.shape))

    def as_dict(self) -> dict:
        """The figures as JSON-ready values: fractions 0..1, None where a figure has no pixels."""
        return {"frames": self.frames, "pixels": self.pixels, "pixel_accuracy": self.pixel_accuracy,
                "mean_iou": self.mean_iou, "mean_accuracy": self.mean_accuracy,
                "iou_classes": self.iou_classes, "accuracy_classes": self.accuracy_classes,
                "left_out": list(self.left_out), "classes": [c.as_dict() for c in self.classes()],
                "confusion": self.confusion.tolist()}
