"""Plain-Python pieces of the node's frame pipeline: the latest-frame slot and the statistics.

Kept free of rclpy so they can be tested and reasoned about on their own.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass


class LatestSlot:
    """Holds only the newest item. An item replaced before the worker took it is a dropped frame,
    so a slow model skips frames instead of building a backlog."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item = None
        self._closed = False
        self.dropped = 0

    def put(self, item) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float | None = None):
        """The newest item, or None after ``timeout`` seconds or once closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


@dataclass
class Snapshot:
    input_hz: float
    processed_hz: float
    received: int
    processed: int
    dropped: int
    bad: int
    skipped: int
    latency_ms: float
    latency_max_ms: float
    inference_ms: float
    clouds: int = 0
    missed_depth: int = 0


class PipelineStats:
    """Counts and rates over a sliding window, updated from two threads."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._window = window_s
        self._arrivals: deque[float] = deque()
        self._done: deque[tuple[float, float, float]] = deque()  # (time, latency s, inference ms)
        self.received = self.processed = self.bad = self.skipped = self.clouds = self.missed = 0

    def _trim(self, now: float) -> None:
        while self._arrivals and self._arrivals[0] < now - self._window:
            self._arrivals.popleft()
        while self._done and self._done[0][0] < now - self._window:
            self._done.popleft()

    def arrived(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.received += 1
            self._arrivals.append(now)
            self._trim(now)

    def finished(self, received_at: float, inference_ms: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.processed += 1
            self._done.append((now, now - received_at, inference_ms))
            self._trim(now)

    def rejected(self) -> None:
        with self._lock:
            self.bad += 1

    def idle(self) -> None:
        with self._lock:
            self.skipped += 1

    def cloud(self) -> None:
        with self._lock:
            self.clouds += 1

    def missed_depth(self) -> None:
        """A frame whose cloud could not be built: no depth frame (or depth camera_info) to pair."""
        with self._lock:
            self.missed += 1

    def snapshot(self, dropped: int, now: float | None = None) -> Snapshot:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            latencies = [d[1] for d in self._done]
            inference = [d[2] for d in self._done]

            def rate(times) -> float:
                return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

            return Snapshot(
                input_hz=rate(list(self._arrivals)),
                processed_hz=rate([d[0] for d in self._done]),
                received=self.received, processed=self.processed, dropped=dropped, bad=self.bad,
                skipped=self.skipped,
                latency_ms=1e3 * sum(latencies) / len(latencies) if latencies else 0.0,
                latency_max_ms=1e3 * max(latencies) if latencies else 0.0,
                inference_ms=sum(inference) / len(inference) if inference else 0.0,
                clouds=self.clouds, missed_depth=self.missed,
            )
