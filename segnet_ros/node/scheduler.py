"""The inference threads every camera of the node shares: the shared model, fairly scheduled.

Each camera keeps only its newest frame (a :class:`~segnet_ros.node.pipeline.LatestSlot` on the
scheduler's condition). A thread takes the waiting frames in round-robin order, starting after
the camera served last, one frame per camera per turn: a camera that publishes faster only
replaces its own waiting frame, so it can never starve another, and a camera that stops publishing
is simply never waiting. With batching on, every waiting camera's frame goes into one backend call
(up to the backend's ``max_batch``); without, one camera per call, and where the backend takes
concurrent calls (ONNX Runtime on the CPU) several threads each run one camera's frame on their
share of the cores, as the bag tool does: a call spread over every core waits for its slowest
thread whenever rendering or publishing takes a core. A camera has at most one frame in flight, so
its outputs keep their order. Frames of cameras whose outputs have no subscribers are dropped
before decoding (they cost nothing).
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
    and ``failed(exc)``, i.e. :class:`~segnet_ros.node.camera.CameraPipeline`) on ``workers`` threads
    (one unless the backend takes concurrent calls and frames go one per call)."""

    def __init__(self, net: SegNet, batch: bool, workers: int = 1, window_s: float = 5.0) -> None:
        self.net = net
        self.batch_limit = max(1, getattr(net.backend, "max_batch", 1)) if batch else 1
        concurrent = self.batch_limit == 1 and getattr(net.backend, "concurrent_runs", False)
        self.workers = max(1, workers) if concurrent else 1
        self.condition = threading.Condition()
        self._cameras: list = []
        self._busy: set[int] = set()  # id() of the cameras with a frame in flight
        self._next = 0
        self._closed = True
        self._threads: list[threading.Thread] = []
        self._batches: deque[tuple[float, int, float]] = deque()  # (time, frames, inference ms)
        self._window = window_s
        self.batches_run = 0

    def set_cameras(self, cameras: Sequence) -> None:
        self._cameras = list(cameras)
        self._next = 0

    def start(self) -> None:
        self._closed = False
        self._busy.clear()
        names = ["segnet-infer"] if self.workers == 1 else [f"segnet-infer-{i}" for i in range(self.workers)]
        self._threads = [threading.Thread(target=self._run, name=name, daemon=True) for name in names]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Finish the calls in flight and stop the threads."""
        with self.condition:
            self._closed = True
            self.condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=10.0)
        self._threads = []

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _waiting(self) -> list:
        """The cameras with a frame waiting and none in flight, in round-robin order from the one
        after the last served."""
        count = len(self._cameras)
        order = (self._cameras[(self._next + i) % count] for i in range(count))
        return [camera for camera in order if camera.slot.ready and id(camera) not in self._busy]

    def _take(self) -> list[tuple[object, object]]:
        with self.condition:
            while not self._closed:
                waiting = self._waiting()
                if waiting:
                    chosen = waiting[: self.batch_limit]
                    self._next = (self._cameras.index(chosen[-1]) + 1) % len(self._cameras)
                    self._busy.update(id(camera) for camera in chosen)
                    return [(camera, camera.slot.take(0)) for camera in chosen]
                self.condition.wait(0.5)
            return []

    def _run(self) -> None:
        while not self._closed:
            taken = self._take()
            try:
                jobs = [(camera, job) for camera, item in taken
                        if item is not None and (job := camera.job(item)) is not None]
                if jobs:
                    self._infer(jobs)
            finally:
                with self.condition:  # the cameras may send their next frame: wake a thread for it
                    self._busy.difference_update(id(camera) for camera, _ in taken)
                    self.condition.notify_all()

    def _infer(self, jobs: list[tuple[object, object]]) -> None:
        started = time.monotonic()
        try:
            results = self.net.process_batch([(job.frame, job.encoding) for _, job in jobs],
                                             [job.products for _, job in jobs])
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
            "inference_threads": str(self.workers),
            "inference_calls": str(self.batches_run),
            "inference_calls_hz": f"{(len(batches) - 1) / span:.2f}" if span > 0 else "0.00",
            "mean_batch_size": f"{frames / len(batches):.2f}" if batches else "0.00",
            "inference_call_ms": f"{sum(b[2] for b in batches) / len(batches):.1f}" if batches else "0.0",
        }

