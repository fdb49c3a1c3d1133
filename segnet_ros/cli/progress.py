"""A dependency-free progress bar for multi-frame runs and downloads."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``[#####.....] 12/40 frames  8.1 fps`` redrawn in place on a terminal."""

    unit, rate_unit, scale = "frames", "fps", 1.0

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None,
                 width: int = 30) -> None:
        self.total, self.width, self.done = total, width, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._start = time.perf_counter()

    def amount(self, value: int) -> str:
        return str(value)

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = f"{self.done / self.scale / elapsed:.1f} {self.rate_unit}"
        if self.total > 0:
            filled = min(self.width, self.width * self.done // self.total)
            bar = "#" * filled + "." * (self.width - filled)
            return f"[{bar}] {self.amount(self.done)}/{self.amount(self.total)} {self.unit}  {rate}"
        return f"{self.amount(self.done)} {self.unit}  {rate}"

    def update(self, count: int = 1) -> None:
        self.done += count
        if self.enabled:
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()


class ByteProgress(Progress):
    """``[#####.....] 12.3/45.0 MB  3.2 MB/s``; callable as a download's progress callback."""

    unit, rate_unit, scale = "MB", "MB/s", 1e6

    def amount(self, value: int) -> str:
        return f"{value / self.scale:.1f}"

    def __call__(self, done: int, total: int | None) -> None:
        self.total = total or 0
        self.update(done - self.done)
