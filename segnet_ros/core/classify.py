"""Logits to a class grid, as segNet does it: argmax of raw scores, lowest id on ties."""

from __future__ import annotations

import numpy as np


def classify(logits: np.ndarray, ignore_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return the (gh, gw) uint8 class grid and the softmax probability of each chosen class.

    ``logits`` is (1, C, gh, gw) or (C, gh, gw). The class ``ignore_id`` is never chosen.
    """
    scores = np.asarray(logits, dtype=np.float32)
    if scores.ndim == 4:
        scores = scores[0]
    choosable = scores
    if ignore_id is not None and scores.shape[0] > 1:
        choosable = scores.copy()
        choosable[ignore_id] = -np.inf
    grid = np.argmax(choosable, axis=0).astype(np.uint8)
    peak = scores.max(axis=0)
    exps = np.exp(scores - peak)
    chosen = np.take_along_axis(exps, grid[None].astype(np.intp), axis=0)[0]
    confidence = (chosen / exps.sum(axis=0)).astype(np.float32)
    return grid, confidence
