"""One inference thread for every camera of the node: the shared model, fairly scheduled.

Each camera keeps only its newest frame (a :class:`~segnet_ros.node.pipeline.LatestSlot` on the
scheduler's condition). The thread takes the waiting frames in round-robin order, starting after
the camera it served last, one frame per camera per turn: a camera that publishes faster only
replaces its own waiting frame, so it can never starve another, and a camera that stops publishing
is simply never waiting. With batching on, every waiting camera's frame goes into one backend call
(up to the backend's ``max_batch``); without, one camera per call. Frames of cameras whose outputs
have no subscribers are dropped before decoding (they cost nothing).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence

from ..core.errors import FrameError
from ..core.segnet import SegNet


class InferenceScheduler:
    """Runs ``net`` for the cameras (objects with ``slot``, ``job(item)``, ``deliver(job, seg, t0, t1)``
    and ``failed(exc)``, i.e. :class:`~segnet_ros.node.camera.CameraPipeline`) on one thread."""

    def __init__(self, net: SegNet, batch: bool, window_s: float = 5.0) -> None:
        self.net = net
        self.batch_limit = max(1, getattr(net.backend, "max_batch", 1)) if batch else 1
        self.condition = threading.Condition()
        self._cameras: list = []
        self._next = 0
        self._closed = True
        self._thread: threading.Thread | None = None
        self._batches: deque[tuple[float, int, float]] = deque()  # (time, frames, inference ms)
        self._window = window_s
        self.batches_run = 0

    def set_cameras(self, cameras: Sequence) -> None:
        self._cameras = list(cameras)
        self._next = 0

    def start(self) -> None:
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="segnet-infer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the batch in flight and stop the thread."""
        with self.condition:
            self._closed = True
            self.condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _waiting(self) -> list:
        """The cameras with a frame waiting, in round-robin order from the one after the last served."""
        count = len(self._cameras)
        order = (self._cameras[(self._next + i) % count] for i in range(count))
        return [camera for camera in order if camera.slot.ready]

    def _take(self) -> list[tuple[object, object]]:
        with self.condition:
            while not self._closed:
                waiting = self._waiting()
                if waiting:
                    chosen = waiting[: self.batch_limit]
                    self._next = (self._cameras.index(chosen[-1]) + 1) % len(self._cameras)
                    return [(camera, camera.slot.take(0)) for camera in chosen]
                self.condition.wait(0.5)
            return []

    def _run(self) -> None:
        while not self._closed:
            taken = self._take()
            jobs = [(camera, job) for camera, item in taken
                    if item is not None and (job := camera.job(item)) is not None]
            if jobs:
                self._infer(jobs)

    def _infer(self, jobs: list[tuple[object, object]]) -> None:
        started = time.monotonic()
        try:
            results = self.net.process_batch([(job.frame, job.encoding) for _, job in jobs])
        except FrameError as exc:
            if len(jobs) == 1:
                jobs[0][0].failed(exc)
                return
            for pair in jobs:  # find the bad frame; the others still get their results
                self._infer([pair])
            return
        except Exception as exc:  # keep serving: a failed call must not stop the robot's perception
            for camera, _ in jobs:
                camera.failed(exc)
            return
        finished = time.monotonic()
        self._record(len(jobs), results[0].timings.inference)
        for (camera, job), segmentation in zip(jobs, results, strict=True):
            camera.deliver(job, segmentation, started, finished)

    def _record(self, frames: int, inference_ms: float) -> None:
        now = time.monotonic()
        with self.condition:
            self.batches_run += 1
            self._batches.append((now, frames, inference_ms))
            while self._batches and self._batches[0][0] < now - self._window:
                self._batches.popleft()

    def summary(self) -> dict[str, str]:
        """Node-wide figures for /diagnostics: calls per second, frames per call, time per call."""
        with self.condition:
            batches = list(self._batches)
        span = batches[-1][0] - batches[0][0] if len(batches) > 1 else 0.0
        frames = sum(b[1] for b in batches)
        return {
            "batch_limit": str(self.batch_limit),
            "inference_calls": str(self.batches_run),
            "inference_calls_hz": f"{(len(batches) - 1) / span:.2f}" if span > 0 else "0.00",
            "mean_batch_size": f"{frames / len(batches):.2f}" if batches else "0.00",
            "inference_call_ms": f"{sum(b[2] for b in batches) / len(batches):.1f}" if batches else "0.0",
        }

