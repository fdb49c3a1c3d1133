"""The demo's picture of one frame: the camera frame, the overlay and the colour mask side by side,
and under them a line saying when the network is untrained, a legend of the classes present
(colour swatch, name, share of the pixels) and the lines that say what ran.

Drawn with OpenCV only. The layout, top to bottom: the three panels (each at most ``panel_width``
wide, the frame's aspect kept); a white strip with each panel's title under it; the warning, in
red; the legend, one square swatch of :data:`SWATCH` pixels per class, filled with the class's
colour and framed in :data:`BORDER`; the text lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

PANEL_TITLES = ("camera frame", "overlay", "colour mask")
BACKGROUND = (255, 255, 255)  # BGR
TEXT = (0, 0, 0)
WARNING = (0, 0, 200)
BORDER = (40, 40, 40)  # the swatches' frame: a grey no published palette uses
SWATCH = 18
FONT = cv2.FONT_HERSHEY_SIMPLEX
SCALE = 0.5
LINE = 24  # pixels per text line
MARGIN = 10


@dataclass(frozen=True)
class LegendEntry:
    class_id: int
    name: str
    rgb: tuple[int, int, int]
    share: float  # of the class mask's pixels, 0..1

    @property
    def label(self) -> str:
        percent = 100.0 * self.share
        return f"{self.name} {percent:.0f}%" if percent >= 1 else f"{self.name} <1%"


def classes_present(class_mask: np.ndarray, names: Sequence[str], rgb: Sequence[Sequence[int]]) -> list[LegendEntry]:
    """One entry per class id that occurs in ``class_mask``, largest share first (then by id)."""
    counts = np.bincount(class_mask.ravel(), minlength=len(names))
    total = int(counts.sum()) or 1
    entries = [LegendEntry(int(i), names[i] if i < len(names) else f"class {i}",
                           tuple(int(v) for v in rgb[i][:3]) if i < len(rgb) else (0, 0, 0), int(counts[i]) / total)
               for i in np.flatnonzero(counts)]
    return sorted(entries, key=lambda e: (-e.share, e.class_id))


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, FONT, SCALE, 1)[0][0]


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels, broken between words."""
    lines: list[str] = []
    for word in text.split():
        if lines and _text_width(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _put(image: np.ndarray, text: str, x: int, y: int, colour=TEXT) -> None:
    """``text`` with its baseline's middle line at ``y`` (the centre of a :data:`LINE` row)."""
    height = cv2.getTextSize(text, FONT, SCALE, 1)[0][1]
    cv2.putText(image, text, (x, y + height // 2), FONT, SCALE, colour, 1, cv2.LINE_AA)


def panel_size(width: int, height: int, panel_width: int) -> tuple[int, int]:
    """A panel's (width, height): the frame's, scaled down (never up) to at most ``panel_width`` wide."""
    if width <= panel_width:
        return width, height
    return panel_width, max(1, round(height * panel_width / width))


def compose(frame: np.ndarray, overlay: np.ndarray, color_mask: np.ndarray, legend: Sequence[LegendEntry],
            lines: Sequence[str] = (), warning: str = "", panel_width: int = 640) -> np.ndarray:
    """The picture (BGR): ``frame``, ``overlay`` and ``color_mask`` (BGR, one size) side by side, then
    the panel titles, ``warning`` in red, the legend and ``lines``."""
    height, width = frame.shape[:2]
    pw, ph = panel_size(width, height, panel_width)
    panels = [cv2.resize(p, (pw, ph), interpolation=cv2.INTER_AREA) if (pw, ph) != (width, height) else p
              for p in (frame, overlay, color_mask)]
    total = 3 * pw
    text_width = total - 2 * MARGIN
    header = "classes in this frame, by share of the pixels:" if legend else "no class in this frame"
    # legend columns as wide as the widest entry, as many as fit
    column = SWATCH + 8 + max((_text_width(e.label) for e in legend), default=0) + 24
    columns = max(1, text_width // column)
    rows = -(-len(legend) // columns)
    warnings = _wrap(warning, text_width)
    texts = [line for text in lines for line in _wrap(text, text_width)]
    strip = LINE * (2 + len(warnings) + rows + len(texts)) + MARGIN
    image = np.full((ph + strip, total, 3), BACKGROUND, np.uint8)
    for index, panel in enumerate(panels):
        image[:ph, index * pw:(index + 1) * pw] = panel
        title = PANEL_TITLES[index]
        _put(image, title, index * pw + (pw - _text_width(title)) // 2, ph + LINE // 2)
    top = ph + LINE
    for index, text in enumerate(warnings):
        _put(image, text, MARGIN, top + index * LINE + LINE // 2, WARNING)
    top += len(warnings) * LINE
    _put(image, header, MARGIN, top + LINE // 2)
    top += LINE
    for index, entry in enumerate(legend):
        row, col = divmod(index, columns)
        x, y = MARGIN + col * column, top + row * LINE + (LINE - SWATCH) // 2
        r, g, b = entry.rgb
        cv2.rectangle(image, (x - 1, y - 1), (x + SWATCH, y + SWATCH), BORDER, 1)
        image[y:y + SWATCH, x:x + SWATCH] = (b, g, r)
        _put(image, entry.label, x + SWATCH + 8, y + SWATCH // 2)
    top += rows * LINE
    for index, text in enumerate(texts):
        _put(image, text, MARGIN, top + index * LINE + LINE // 2)
    return image
