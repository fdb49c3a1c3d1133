"""Class names and colours, parsed and reconciled with the network's class count.

Follows jetson-inference's segNet: missing names become ``class #n``, missing
colours are generated, and an alpha given in ``colors.txt`` that is not 255
is *explicit* and survives changes of the overlay alpha.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ModelError

_SEPARATORS = re.compile(r"[\s,]+")


def generated_colors(count: int) -> np.ndarray:
    """Deterministic, well-separated RGB colours (the Pascal VOC bit-interleave palette)."""
    ids = np.arange(count, dtype=np.int64)
    rgb = np.zeros((count, 3), dtype=np.int64)
    for shift in range(7, -1, -1):
        for channel in range(3):
            rgb[:, channel] |= ((ids >> (3 * (7 - shift) + channel)) & 1) << shift
    return rgb.astype(np.uint8)


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ModelError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise ModelError(f"{path}: not UTF-8 text; expected one entry per line") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror})") from None
    return text.splitlines()


def parse_labels(path: Path) -> list[str]:
    """Read ``classes.txt``: one class name per non-blank line."""
    names = []
    for number, line in enumerate(_read_lines(path), start=1):
        name = line.strip()
        if not name:
            continue
        if any(ord(ch) < 32 for ch in name):
            raise ModelError(f"{path} line {number}: class name contains control characters")
        names.append(name)
    return names


def parse_colors(path: Path) -> list[tuple[int, int, int, int | None]]:
    """Read ``colors.txt``: lines of ``r g b [a]``, space or comma separated, 0..255."""
    colors: list[tuple[int, int, int, int | None]] = []
    for number, line in enumerate(_read_lines(path), start=1):
        text = line.strip()
        if not text:
            continue
        fields = [f for f in _SEPARATORS.split(text) if f]
        try:
            values = [int(f) for f in fields]
        except ValueError:
            values = []
        if len(values) not in (3, 4) or any(v < 0 or v > 255 for v in values):
            raise ModelError(
                f"{path} line {number}: expected 'r g b [a]' with integers 0..255, got {text!r}"
            )
        alpha = values[3] if len(values) == 4 else None
        colors.append((values[0], values[1], values[2], alpha))
    return colors


@dataclass(frozen=True)
class ClassTable:
    """Names and RGBA colours of every class the network outputs."""

    names: tuple[str, ...]
    rgb: np.ndarray  # (C, 3) uint8
    explicit_alpha: np.ndarray  # (C,) int16: alpha from colors.txt, or -1 when not explicit
    warnings: tuple[str, ...] = field(default=())

    @property
    def count(self) -> int:
        return len(self.names)

    def index_of(self, name: str) -> int | None:
        """Id of the class called ``name`` (case-insensitive), or None."""
        wanted = name.strip().lower()
        for index, candidate in enumerate(self.names):
            if candidate.lower() == wanted:
                return index
        return None

    def rgba(self, overlay_alpha: int) -> np.ndarray:
        """(C, 4) float32 colours with the overlay alpha where no alpha is explicit."""
        table = np.empty((self.count, 4), dtype=np.float32)
        table[:, :3] = self.rgb
        table[:, 3] = np.where(self.explicit_alpha >= 0, self.explicit_alpha, overlay_alpha)
        return table

    @classmethod
    def build(
        cls,
        num_classes: int,
        labels: Path | None = None,
        colors: Path | None = None,
    ) -> ClassTable:
        """Reconcile the label and colour files with the network's class count."""
        warnings: list[str] = []
        names = parse_labels(labels) if labels is not None else []
        if labels is not None and len(names) != num_classes:
            warnings.append(
                f"{labels}: {len(names)} class names for a network with {num_classes} classes"
                + ("; extra names ignored" if len(names) > num_classes else "; using placeholders")
            )
        names = names[:num_classes] + [f"class #{i}" for i in range(len(names), num_classes)]

        parsed = parse_colors(colors) if colors is not None else []
        if colors is not None and len(parsed) != num_classes:
            warnings.append(
                f"{colors}: {len(parsed)} colours for a network with {num_classes} classes"
                + ("; extra colours ignored" if len(parsed) > num_classes else "; generating the rest")
            )
        rgb = generated_colors(num_classes)
        explicit = np.full(num_classes, -1, dtype=np.int16)
        for index, (r, g, b, a) in enumerate(parsed[:num_classes]):
            rgb[index] = (r, g, b)
            if a is not None and a != 255:
                explicit[index] = a
        return cls(tuple(names), rgb, explicit, tuple(warnings))

    def texts(self) -> tuple[str, str]:
        """The contents of ``classes.txt`` and ``colors.txt``, in the format :meth:`build` reads."""
        labels = "".join(f"{n}\n" for n in self.names)
        colors = "".join(f"{r} {g} {b}" + (f" {a}" if a >= 0 else "") + "\n"
                         for (r, g, b), a in zip(self.rgb.tolist(), self.explicit_alpha.tolist(), strict=True))
        return labels, colors
