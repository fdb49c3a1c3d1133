"""How often INT8 picks the same class as FP32: overall and per class, on held-out frames.

Counted on the class grid, the network's own output that every mask is drawn from. Per class, the
share of the cells FP32 gave that class which INT8 gives it too, so a rare class that INT8 loses
shows up even when the overall figure is high.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Agreement:
    """Equal cells between FP32 and INT8 class grids."""

    cells: int  # grid cells compared
    equal: int  # of which INT8 chose FP32's class
    per_class: tuple[tuple[int, int, int], ...]  # (class id, FP32 cells of that class, of which INT8 agrees)
    frames: int

    @property
    def percent(self) -> float:
        return 100.0 * self.equal / self.cells if self.cells else 100.0

    def as_dict(self, names: Sequence[str]) -> dict:
        """For the JSON note beside the installed model."""
        return {"agreement_percent": round(self.percent, 3), "held_out_frames": self.frames, "cells": self.cells,
                "per_class": [{"id": c, "name": names[c] if c < len(names) else f"class #{c}", "cells": n,
                               "agreement_percent": round(100.0 * k / n, 3)} for c, n, k in self.per_class]}

    def table(self, names: Sequence[str]) -> list[str]:
        """Lines of the per-class report, in class order."""
        lines = [" ID  class name          cells   agreement"]
        for class_id, count, agree in self.per_class:
            name = names[class_id] if class_id < len(names) else f"class #{class_id}"
            lines.append(f" {class_id:>2d}  {name:<18s} {count:>6d}   {100.0 * agree / count:8.2f}%")
        return lines


def compare(fp32: Sequence[np.ndarray], int8: Sequence[np.ndarray], num_classes: int) -> Agreement:
    """Agreement of two equally long lists of (gh, gw) class grids, frame by frame."""
    if len(fp32) != len(int8):
        raise ValueError(f"{len(fp32)} FP32 grids but {len(int8)} INT8 grids")
    reference = np.concatenate([g.reshape(-1) for g in fp32]) if fp32 else np.zeros(0, np.uint8)
    candidate = np.concatenate([g.reshape(-1) for g in int8]) if int8 else np.zeros(0, np.uint8)
    same = reference == candidate
    counts = np.bincount(reference, minlength=num_classes)
    agreeing = np.bincount(reference[same], minlength=num_classes)
    per_class = tuple((c, int(counts[c]), int(agreeing[c])) for c in range(len(counts)) if counts[c])
    return Agreement(int(reference.size), int(same.sum()), per_class, len(fp32))
