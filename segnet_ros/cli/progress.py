"""A dependency-free progress bar for multi-frame runs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``[#####.....] 12/40 frames  8.1 fps`` redrawn in place on a terminal."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None,
                 width: int = 30) -> None:
        self.total, self.width, self.done = total, width, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._start = time.perf_counter()

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = self.done / elapsed
        if self.total > 0:
            filled = min(self.width, self.width * self.done // self.total)
            bar = "#" * filled + "." * (self.width - filled)
            return f"[{bar}] {self.done}/{self.total} frames  {rate:.1f} fps"
        return f"{self.done} frames  {rate:.1f} fps"

    def update(self, count: int = 1) -> None:
        self.done += count
        if self.enabled:
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()
