"""Plain-Python pieces of the node's frame pipeline: the latest-frame slot and the statistics.

Kept free of rclpy so they can be tested and reasoned about on their own.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, fields


class LatestSlot:
    """Holds only the newest item. An item replaced before the worker took it is a dropped frame,
    so a slow model skips frames instead of building a backlog. Slots given one ``condition``
    wake one waiter for all of them (the shared inference thread waits on every camera's slot)."""

    def __init__(self, condition: threading.Condition | None = None) -> None:
        self._cond = condition or threading.Condition()
        self._item = None
        self._closed = False
        self.dropped = 0

    def put(self, item) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()

    def take(self, timeout: float | None = None):
        """The newest item, or None after ``timeout`` seconds or once closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    @property
    def ready(self) -> bool:
        return self._item is not None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


@dataclass(frozen=True)
class Stages:
    """Where one frame's time went, in milliseconds. ``wait`` (receive to inference start),
    ``inference`` (the backend call of its batch) and ``render_publish`` (inference end to the last
    publish) are wall time; the ``cpu_*`` fields are the node's own CPU time for the frame, from the
    working threads' clocks (a batch's pre-processing is shared out over its frames)."""

    wait: float = 0.0
    inference: float = 0.0
    render_publish: float = 0.0
    cpu_decode: float = 0.0
    cpu_preprocess: float = 0.0
    cpu_render_publish: float = 0.0


STAGE_NAMES = tuple(f.name for f in fields(Stages))


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
    clouds: int = 0
    missed_depth: int = 0
    compressed: int = 0
    stages: Stages = Stages()  # mean over the window

    @property
    def inference_ms(self) -> float:
        return self.stages.inference


class PipelineStats:
    """Counts and rates over a sliding window, updated from several threads."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._window = window_s
        self._arrivals: deque[float] = deque()
        self._done: deque[tuple[float, float, Stages]] = deque()  # (time, latency s, stages)
        self.received = self.processed = self.bad = self.skipped = self.clouds = self.missed = self.encoded = 0

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

    def finished(self, received_at: float, stages: Stages, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.processed += 1
            self._done.append((now, now - received_at, stages))
            self._trim(now)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def rejected(self) -> None:
        self._count("bad")

    def idle(self) -> None:
        """A frame nobody wanted: no output has a subscriber, so it was not segmented."""
        self._count("skipped")

    def cloud(self) -> None:
        self._count("clouds")

    def compressed(self) -> None:
        """A frame whose compressed pictures were encoded (only while they have subscribers)."""
        self._count("encoded")

    def missed_depth(self) -> None:
        """A frame whose cloud could not be built: no depth frame (or depth camera_info) to pair."""
        self._count("missed")

    def snapshot(self, dropped: int, now: float | None = None) -> Snapshot:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            done = list(self._done)
            arrivals = list(self._arrivals)
            counts = (self.received, self.processed, self.bad, self.skipped, self.clouds, self.missed, self.encoded)

        def rate(times) -> float:
            return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

        latencies = [d[1] for d in done]
        means = Stages(*(sum(getattr(d[2], name) for d in done) / len(done) if done else 0.0
                         for name in STAGE_NAMES))
        received, processed, bad, skipped, clouds, missed, encoded = counts
        return Snapshot(
            input_hz=rate(arrivals), processed_hz=rate([d[0] for d in done]),
            received=received, processed=processed, dropped=dropped, bad=bad, skipped=skipped,
            latency_ms=1e3 * sum(latencies) / len(latencies) if latencies else 0.0,
            latency_max_ms=1e3 * max(latencies) if latencies else 0.0,
            clouds=clouds, missed_depth=missed, compressed=encoded, stages=means,
        )


class LossCounter:
    """Frames a camera sent that never reached the node's callback: gaps in each publisher's sequence
    numbers where the rmw gives them (Iron and later), else gaps in the header stamps against the
    camera's measured period (Humble). Each call returns how many are missing before this message; the
    caller says what they were (lost in transport, or overwritten in the reader's queue)."""

    def __init__(self, history: int = 31) -> None:
        self._sequences: dict[bytes, int] = {}
        self._last_stamp: int | None = None
        self._periods: deque[int] = deque(maxlen=history)

    def sequence(self, publisher: bytes, number: int) -> int:
        """A message with publication sequence number ``number`` (1, 2, ... per publisher)."""
        last = self._sequences.get(publisher)
        self._sequences[publisher] = number  # a smaller number: the publisher restarted
        return number - last - 1 if last is not None and number > last + 1 else 0

    def stamp(self, stamp_ns: int) -> int:
        """A message stamped ``stamp_ns``: a step of about k periods means k - 1 frames missing.
        Cameras that do not stamp (0), stamps that go back and the first few steps count nothing."""
        last, self._last_stamp = self._last_stamp, stamp_ns
        if last is None or stamp_ns <= last or stamp_ns == 0:
            return 0
        step = stamp_ns - last
        if len(self._periods) >= 5:
            period = sorted(self._periods)[len(self._periods) // 2]
            if step > 1.5 * period:
                return int(round(step / period)) - 1  # a gap is not a period
        self._periods.append(step)
        return 0
