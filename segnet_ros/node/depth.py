"""Pairing colour frames with depth frames by stamp (plain Python, testable without ROS).

Nav2's semantic layer pairs mask, confidence and cloud with an *exact* time synchronizer, so the
cloud must come from the depth frame of the colour frame's own stamp. Depth usually arrives within
milliseconds of colour; the publishing thread waits for it a bounded time, and not at all while
the depth stream is silent, so a dead depth camera never slows the masks.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class DepthPairer:
    """Keeps the last few depth frames and hands out the one that matches a colour stamp.

    ``slop_ns`` 0 asks for identical stamps; otherwise the nearest depth frame within the slop.
    """

    def __init__(self, slop_ns: int = 0, keep: int = 30, alive_s: float = 1.0) -> None:
        self.slop_ns = slop_ns
        self._alive_s = alive_s
        self._frames: deque[tuple[int, object]] = deque(maxlen=keep)
        self._cond = threading.Condition()
        self._last_arrival = float("-inf")
        self._closed = False

    def add(self, stamp_ns: int, item, now: float | None = None) -> None:
        with self._cond:
            self._frames.append((stamp_ns, item))
            self._last_arrival = time.monotonic() if now is None else now
            self._cond.notify_all()

    def _match(self, stamp_ns: int):
        best = None
        for stamp, item in self._frames:
            gap = abs(stamp - stamp_ns)
            if gap <= self.slop_ns and (best is None or gap < best[0]):
                best = (gap, item)
        return None if best is None else best[1]

    def _hopeless(self, stamp_ns: int, now: float) -> bool:
        """No match can still come: depth is silent, or frames newer than the slop already arrived."""
        if now - self._last_arrival > self._alive_s:
            return True
        return bool(self._frames) and self._frames[-1][0] > stamp_ns + self.slop_ns

    def take(self, stamp_ns: int, timeout: float):
        """The depth item paired with ``stamp_ns``, waiting up to ``timeout`` s; None if none comes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                item = self._match(stamp_ns)
                now = time.monotonic()
                if item is not None or self._closed or now >= deadline or self._hopeless(stamp_ns, now):
                    return item
                self._cond.wait(deadline - now)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
