"""``segnet-ros bag IN... --output-dir DIR --ray [ADDRESS]``: the job's bags on a Ray cluster.

The one module that imports Ray (the ``fleet`` extra). It follows Ray's "Batch Prediction with Ray
Core" pattern, one file in and one file out: on CPUs, one task per bag, whose worker process keeps its
network for the next bag; with TensorRT or CUDA, one actor per GPU that loads the model (and engine)
once and takes bags in turn. At most ``in_flight`` bags are submitted at a time, and records are taken
as they finish (``ray.wait``). Ray re-runs a task whose worker or node died (``max_retries``); a
failure of our own is a ``failed`` record, never an exception, so ``retry_exceptions`` stays off.
That makes execution at-least-once; :mod:`.fleet`'s private write, publish and create-only marker make
the results exactly-once. Ctrl-C cancels what is in flight (each bag removes its private files) and
shuts Ray down.

Nothing of ours may contact a host the user did not name. Ray phones home with usage statistics
unless told not to, so this module turns them off before Ray is imported and starts a local Ray
without its dashboard. Even so, Ray's head runs its usage module, which asks the cloud metadata
service (169.254.169.254, metadata.google.internal) which cloud this is, and, on a cluster not started
by ``ray.init``, tells usage-stats.ray.io that statistics are off: :func:`no_cloud_probe` points HTTP
and HTTPS at a closed local port while a head starts here (Ray's own gRPC ignores proxies), and workers
take the user's own settings back (:func:`restore_proxy`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .fleet import BagJob, BagWorker, NetSpec, Progress, Record, Task, one_line, runs_on_gpu
from .storage import output_dir
from .typestore import BagError

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before Ray is imported: it reads this once
RAY_MISSING = "--ray needs Ray: pip install 'segnet_ros[fleet]' (or pip install ray)"
try:
    import ray
except ImportError:
    raise BagError(RAY_MISSING) from None

LOCAL = "local"  # --ray alone: a Ray instance on this machine, for this job
OBJECT_STORE_BYTES = 128 * 1024 * 1024  # a local Ray's: only records travel through it, never bags
MAX_RETRIES = 3  # re-runs of a bag whose worker or node died
CANCEL_GRACE_S = 10.0  # for bags cancelled by Ctrl-C to remove their private files before they are killed
POLL_S = 0.25


@dataclass(frozen=True)
class RaySettings:
    """Where the job runs and how its bags are spread."""

    address: str = LOCAL  # local, auto (RAY_ADDRESS or the cluster started on this machine), or an address
    gpus: int | None = None  # GPU actors, one GPU each; None: the cluster's GPUs where the backend wants one
    cpus_per_bag: int = 1  # CPUs each bag's task asks for (its inference threads)
    in_flight: int = 0  # bags submitted at once; 0: twice as many as the cluster runs side by side
    num_cpus: int | None = None  # a local Ray's CPUs (None: this machine's)

    def __post_init__(self) -> None:
        if self.gpus is not None and self.gpus < 0 or self.cpus_per_bag < 1 or self.in_flight < 0:
            raise ValueError("gpus, cpus_per_bag and in_flight must not be negative (cpus_per_bag at least 1)")


PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY")
NOWHERE = "http://127.0.0.1:9"  # the discard port, closed: a request through it fails here, nothing leaves
SAVED_PROXY = "SEGNET_ROS_SAVED_PROXY"  # the user's own proxy settings, for the workers to take back


@contextlib.contextmanager
def no_cloud_probe():
    """While a Ray head starts here: its processes inherit an HTTP(S) proxy that goes nowhere, so their
    requests to the cloud metadata service and ray.io fail on this machine (Ray's gRPC ignores proxies)."""
    saved = {name: os.environ.get(name) for name in PROXY_VARIABLES}
    os.environ[SAVED_PROXY] = json.dumps(saved)
    os.environ.update({name: "" if "no_" in name else NOWHERE for name in PROXY_VARIABLES})
    try:
        yield
    finally:
        restore_proxy()


def restore_proxy() -> None:
    """The user's proxy settings back, where :func:`no_cloud_probe` replaced them (in a worker: inherited)."""
    saved = os.environ.pop(SAVED_PROXY, None)
    if saved is None or os.environ.get("http_proxy") != NOWHERE:
        return
    for name, value in json.loads(saved).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# -- on the workers -----------------------------------------------------------------------------------------
_WORKERS: dict[bytes, BagWorker] = {}  # per worker process: a network is loaded once, then reused


def _cached_worker(spec: NetSpec, job: BagJob, cores: int | None) -> BagWorker:
    key = pickle.dumps((spec, job, cores))
    worker = _WORKERS.get(key)
    if worker is None:
        from ..threads import reserve_cores_for_inference

        restore_proxy()
        reserve_cores_for_inference()
        worker = _WORKERS[key] = BagWorker(spec, job, cores)
    return worker


def _reporter(frames) -> Progress | None:
    return None if frames is None else (lambda index, count: frames.set.remote(index, count))


@ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)
def _segment(spec: NetSpec, job: BagJob, cores: int, task: Task, frames) -> Record:
    """One bag on CPUs (the caller sets num_cpus=cores)."""
    return _cached_worker(spec, job, cores).run(task, _reporter(frames))


@ray.remote(max_restarts=-1, max_task_retries=MAX_RETRIES)
class _GpuWorker:
    """One GPU: the model (and TensorRT engine) loaded once, then bag after bag."""

    def __init__(self, spec: NetSpec, job: BagJob) -> None:
        from ..threads import reserve_cores_for_inference

        restore_proxy()
        reserve_cores_for_inference()
        self.worker = BagWorker(spec, job)

    def run(self, task: Task, frames) -> Record:
        return self.worker.run(task, _reporter(frames))


@ray.remote(num_cpus=0)
class _Frames:
    """Frames done so far per bag in flight, for the driver's progress bar (a retry starts its bag afresh)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def set(self, index: int, count: int) -> None:
        self.counts[index] = count

    def take(self) -> dict[int, int]:
        counts, self.counts = self.counts, {}
        return counts


# -- on the driver ------------------------------------------------------------------------------------------
def _frames_actor():
    """The progress counter, on the driver's node where it can be (a lost worker node must not take it)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    return _Frames.options(max_restarts=-1, scheduling_strategy=here).remote()


def connect(settings: RaySettings) -> None:
    """Start a local Ray, or attach to a cluster; quiet (its log lines would break the progress bar)."""
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if settings.address == LOCAL:
            with no_cloud_probe():
                ray.init(address=LOCAL, num_cpus=settings.num_cpus, num_gpus=settings.gpus or None,
                         include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES, **quiet)
        else:
            ray.init(address=settings.address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BagError(f"cannot start or reach Ray at '{settings.address}': {one_line(exc)}") from None


class RayRunner:
    """The job's bags on Ray: :meth:`run` connects, runs them, and shuts down (or detaches)."""

    def __init__(self, spec: NetSpec, job: BagJob, settings: RaySettings = RaySettings()) -> None:
        self.spec, self.job, self.settings = spec, job, settings
        self.describe = ""  # what it ran on, once connected: for the CLI's last line
        self.connect_seconds = 0.0  # starting or reaching Ray

    def run(self, tasks: list[Task], progress: Progress) -> Iterator[Record]:
        if not tasks:  # every bag done before: no Ray to start
            return
        started = time.perf_counter()
        connect(self.settings)
        self.connect_seconds = time.perf_counter() - started
        try:
            gpus = self._gpus()
            frames = _frames_actor()
            if gpus:
                self.describe = f"Ray, {gpus} GPU actor{'s' if gpus != 1 else ''}"
                yield from self._on_actors(tasks, progress, frames, gpus)
            else:
                yield from self._on_tasks(tasks, progress, frames)
        finally:
            ray.shutdown()

    def _gpus(self) -> int:
        """GPU actors to start: as asked; else the cluster's GPUs where the backend runs on one."""
        wanted = self.settings.gpus
        if wanted is not None:
            return wanted
        spec = self.spec
        if spec.options.device == "cpu" or spec.backend == "openvino":
            return 0
        cluster = int(ray.cluster_resources().get("GPU", 0))
        if not cluster and (spec.backend == "tensorrt" or spec.options.device == "cuda"):
            raise BagError("the Ray cluster reports no GPUs (Ray's detection fails on some machines, Jetsons "
                           "among them): pass --gpus N, or start its nodes with 'ray start --num-gpus N'")
        if cluster and spec.backend == "onnxruntime" and spec.options.device == "auto" and not runs_on_gpu(spec):
            return 0  # this ONNX Runtime has no CUDA provider: the bags run on CPUs
        return cluster

    def _slots(self) -> int:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return max(1, cpus // self.settings.cpus_per_bag)

    def _failed(self, task: Task, exc: BaseException) -> Record:
        """A bag Ray could not finish: its workers lost every try, or cancelled."""
        lost = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.RayActorError,
                ray.exceptions.OwnerDiedError)
        if isinstance(exc, lost):
            reason = f"its Ray worker or node was lost on every try ({type(exc).__name__})"
        else:
            lines = str(exc).strip().splitlines() or [""]
            reason = f"{type(exc).__name__}: {one_line(lines[0])}"[:500]
        return Record(task.input, output_dir(self.job.output_dir).child(task.name), index=task.index, error=reason)

    def _on_tasks(self, tasks: list[Task], progress: Progress, frames) -> Iterator[Record]:
        cores = self.settings.cpus_per_bag
        slots = self._slots()
        self.describe = f"Ray, {slots} bag{'s' if slots != 1 else ''} at once on {slots * cores} CPUs"
        limit = self.settings.in_flight or 2 * slots
        remote = _segment.options(num_cpus=cores)
        yield from self._drive(tasks, progress, frames, limit,
                               lambda task: remote.remote(self.spec, self.job, cores, task, frames))

    def _on_actors(self, tasks: list[Task], progress: Progress, frames, gpus: int) -> Iterator[Record]:
        actors = [_GpuWorker.options(num_gpus=1).remote(self.spec, self.job) for _ in range(gpus)]
        free = list(actors)
        owner: dict[int, object] = {}

        def submit(task: Task):
            actor = free.pop()
            owner[task.index] = actor
            return actor.run.remote(task, frames)

        def release(task: Task) -> None:
            free.append(owner.pop(task.index))

        try:
            yield from self._drive(tasks, progress, frames, gpus, submit, release)
        finally:
            for actor in actors:
                ray.kill(actor)

    def _drive(self, tasks: list[Task], progress: Progress, frames, limit: int, submit, release=None):
        """Keep ``limit`` bags in flight; yield each record as it finishes; on any exit, cancel the rest."""
        waiting = list(reversed(tasks))
        in_flight: dict[object, Task] = {}
        last_poll = 0.0
        try:
            while waiting or in_flight:
                while waiting and len(in_flight) < limit:
                    task = waiting.pop()
                    in_flight[submit(task)] = task
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
                if time.monotonic() - last_poll >= POLL_S:
                    last_poll = time.monotonic()
                    with contextlib.suppress(ray.exceptions.RayError):  # restarting: counts come back with it
                        for index, count in ray.get(frames.take.remote()).items():
                            progress(index, count)
                for ref in ready:
                    task = in_flight.pop(ref)
                    if release is not None:
                        release(task)
                    try:
                        record = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        record = self._failed(task, exc)
                    yield record
        finally:
            if in_flight:
                self._cancel(list(in_flight))

    @staticmethod
    def _cancel(refs: list) -> None:
        """Ctrl-C or an error: ask each bag to stop (it removes its private files), then kill the rest."""
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        _, left = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S)
        for ref in left:
            with contextlib.suppress(Exception):  # an actor's call cannot be forced: the actor is killed instead
                ray.cancel(ref, force=True)
