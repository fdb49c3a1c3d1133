"""The row-normalised confusion matrix as a picture, drawn with OpenCV (already a dependency).

Row i is label class i: each cell is the share of that class's label pixels predicted as the column's
class, from white (0) to dark blue (1), with the percentage written where the cell is large enough.
Several runs (``--compare``) are drawn side by side with their titles.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import SegnetError
from ..files import write_atomic
from .metrics import Metrics

FONT = cv2.FONT_HERSHEY_SIMPLEX
INK = (40, 40, 40)
FULL = np.array([110, 40, 10], dtype=np.float64)  # BGR of a row share of 1: dark blue
EMPTY_ROW = (225, 225, 225)  # a class without label pixels: no row to normalise
MARGIN = 12


def _text(name: str) -> str:
    """Hershey fonts draw ASCII only."""
    return name.encode("ascii", "replace").decode()


def _cell_size(classes: int) -> int:
    return int(np.clip(640 // max(classes, 1), 6, 40))


def _panel(metrics: Metrics, title: str) -> np.ndarray:
    names = [_text(n) for n in metrics.names]
    n = len(names)
    cell = _cell_size(n)
    scale = float(np.clip(cell / 48, 0.3, 0.45))
    name_width = max(cv2.getTextSize(name, FONT, scale, 1)[0][0] for name in names) + 8
    text_height = cv2.getTextSize("Ag", FONT, scale, 1)[0][1]
    title_height = 2 * text_height + 22
    top = title_height + name_width
    left = name_width + text_height + 12
    height, width = top + n * cell + MARGIN, left + n * cell + MARGIN
    width = max(width, cv2.getTextSize(title, FONT, 0.5, 1)[0][0] + 2 * MARGIN)
    panel = np.full((height, width, 3), 255, dtype=np.uint8)

    shares = metrics.normalized()
    empty = np.isnan(shares)
    colours = 255.0 + np.nan_to_num(shares)[:, :, None] * (FULL - 255.0)
    cells = np.clip(colours, 0, 255).astype(np.uint8)
    cells[empty] = EMPTY_ROW
    panel[top:top + n * cell, left:left + n * cell] = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)
    for k in range(n + 1):  # grid lines
        cv2.line(panel, (left, top + k * cell), (left + n * cell, top + k * cell), (200, 200, 200), 1)
        cv2.line(panel, (left + k * cell, top), (left + k * cell, top + n * cell), (200, 200, 200), 1)
    if cell >= 22:
        for row in range(n):
            for column in range(n):
                if empty[row, column] or shares[row, column] < 0.005:
                    continue
                value = f"{100 * shares[row, column]:.0f}"
                size = cv2.getTextSize(value, FONT, scale * 0.8, 1)[0]
                origin = (left + column * cell + (cell - size[0]) // 2, top + row * cell + (cell + size[1]) // 2)
                ink = (255, 255, 255) if shares[row, column] > 0.5 else INK
                cv2.putText(panel, value, origin, FONT, scale * 0.8, ink, 1, cv2.LINE_AA)

    for row, name in enumerate(names):  # row names, right-aligned beside the rows
        size = cv2.getTextSize(name, FONT, scale, 1)[0]
        origin = (left - 6 - size[0], top + row * cell + (cell + size[1]) // 2)
        cv2.putText(panel, name, origin, FONT, scale, INK, 1, cv2.LINE_AA)
    header = np.full((name_width, n * cell, 3), 255, dtype=np.uint8)  # column names, drawn across then turned
    turned = np.full((n * cell, name_width, 3), 255, dtype=np.uint8)
    for column, name in enumerate(names):
        size = cv2.getTextSize(name, FONT, scale, 1)[0]
        cv2.putText(turned, name, (4, column * cell + (cell + size[1]) // 2), FONT, scale, INK, 1, cv2.LINE_AA)
    header[:] = cv2.rotate(turned, cv2.ROTATE_90_COUNTERCLOCKWISE)
    panel[title_height:top, left:left + n * cell] = header

    cv2.putText(panel, title, (MARGIN, text_height + 8), FONT, 0.5, INK, 1, cv2.LINE_AA)
    cv2.putText(panel, "rows: label, columns: prediction (share of each label row)", (MARGIN, 2 * text_height + 16),
                FONT, scale, INK, 1, cv2.LINE_AA)
    vertical = np.full((text_height + 8, n * cell, 3), 255, dtype=np.uint8)
    label_width = cv2.getTextSize("label", FONT, scale, 1)[0][0]
    cv2.putText(vertical, "label", (max((n * cell - label_width) // 2, 0), text_height + 2), FONT, scale, INK, 1,
                cv2.LINE_AA)
    panel[top:top + n * cell, MARGIN - 6:MARGIN - 6 + text_height + 8] = cv2.rotate(
        vertical, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return panel


def confusion_picture(runs: Sequence[tuple[str, Metrics]]) -> np.ndarray:
    """(H, W, 3) uint8 BGR: one panel per (title, metrics), side by side."""
    panels = [_panel(metrics, _text(title)) for title, metrics in runs]
    height = max(p.shape[0] for p in panels)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255) for p in panels]
    return np.concatenate(padded, axis=1)


def check_plot_path(path: Path) -> None:
    """Refuse, before any work, a picture that could not be written: no folder, a folder, a format
    OpenCV cannot encode."""
    if path.is_dir():
        raise SegnetError(f"--plot '{path}' is a folder; give a file such as confusion.png")
    if not path.parent.is_dir():
        raise SegnetError(f"--plot '{path}': folder '{path.parent}' does not exist")
    try:
        ok = cv2.imencode(path.suffix or ".none", np.zeros((2, 2, 3), np.uint8))[0]
    except cv2.error:
        ok = False
    if not ok:
        raise SegnetError(f"--plot '{path}': OpenCV cannot write '{path.suffix}' pictures; use .png")


def write_plot(path: Path, picture: np.ndarray) -> None:
    """Encode, then write atomically: a failed run never leaves half a picture."""
    ok, encoded = cv2.imencode(path.suffix, picture)
    if not ok:
        raise SegnetError(f"cannot encode the confusion picture as '{path.suffix}'")
    try:
        write_atomic(path, encoded.tobytes())
    except OSError as exc:
        raise SegnetError(f"cannot write --plot '{path}': {exc.strerror or exc}") from None
