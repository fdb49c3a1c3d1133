"""Many bags into one output folder, each result exactly once: ``segnet-ros bag IN... --output-dir DIR``.

This is the plain, Ray-free part: which bags, the work of one bag on a worker, the job's driver and
the embedded runner. Runners (this module's :class:`EmbeddedRunner`, or :mod:`.ray_runner`'s) run
bags at least once: a worker or node that dies has its bag run again. Exactly-once results are made
here from three things: the same input gives the same bytes (:mod:`.writer`); a bag is written under
a private name and published whole (:mod:`.storage`); and only then is it marked done, with a
create-only marker. A bag marked done is never written again, and a bag's output that exists
without a marker is replaced only where a ``pending`` note says an earlier attempt published it.

The driver (:func:`run_job`) skips bags already done, hands the rest to a runner, takes their records
in the order they finish, and keeps ``DIR/manifest.jsonl`` (one line per input) up to date.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Protocol

from ..backends import BackendOptions, create_backend
from ..backends.cpu import usable_cores
from ..core.errors import SegnetError
from ..core.model import ModelFiles, load_model
from ..core.segnet import SegNet, SegNetSettings
from .pipeline import BagPipeline, BagSettings, Summary, TopicResult
from .reader import BagReader
from .storage import STATE, bag_digest, find_bags, is_url, output_dir, output_name, staged
from .topics import plan_topics
from .typestore import BagError
from .writer import BagWriter, check_output

MANIFEST = "manifest.jsonl"
MANIFEST_KEYS = ("input", "output", "status", "frames", "skipped_frames", "sha256", "backend", "precision",
                 "seconds", "error")
STATUSES = ("done", "skipped", "failed")
PROGRESS_PERIOD = 0.25  # seconds between a worker's frame counts
MANIFEST_PERIOD = 2.0  # seconds between rewrites of the manifest while the job runs
Progress = Callable[[int, int], None]  # (task index, frames of that bag so far)


def nothing_segmented(results: list[TopicResult]) -> str:
    """The error for topics none of whose frames could be segmented, with the commonest reason."""
    parts = []
    for result in results:
        reason = result.reasons.most_common(1)
        parts.append(f"{result.plan.topic.name} ({result.bad} bad frame{'s' if result.bad != 1 else ''}"
                     + (f": {reason[0][0]}" if reason else "") + ")")
    return f"no frame of {', '.join(parts)} could be segmented"


def one_line(message: object) -> str:
    return " ".join(str(message).split())


# -- what every bag of the job gets ------------------------------------------------------------------------
@dataclass(frozen=True)
class NetSpec:
    """How a worker builds its network, as the command line asked: picklable, so every process, Ray
    worker or actor builds the same one (the model's files must be at the same path on every node)."""

    files: ModelFiles
    backend: str = "auto"
    options: BackendOptions = field(default_factory=BackendOptions)
    settings: SegNetSettings = field(default_factory=SegNetSettings)
    pipeline: str = "host"

    def build(self, workers: int = 1, threads: int = 0) -> SegNet:
        """``workers`` threads will call it at once, each with ``threads`` CPU threads (0: a fair share)."""
        model = load_model(self.files)
        options = replace(self.options, callers=workers, threads=threads or self.options.threads)
        backend = create_backend(self.backend, model, options)
        try:
            return SegNet(model, backend, self.settings, self.pipeline)
        except BaseException:
            backend.close()
            raise


@dataclass(frozen=True)
class BagJob:
    """Where the bags go and what is written: the same for every bag."""

    output_dir: str
    topics: tuple[tuple[str, str | None], ...] = ()
    settings: BagSettings = field(default_factory=BagSettings)
    compression: str = "none"


@dataclass(frozen=True)
class Task:
    """One input bag: its place among the inputs, where it is, and its name in the output folder."""

    index: int
    input: str
    name: str


@dataclass
class Record:
    """What became of one bag; the manifest's line is :data:`MANIFEST_KEYS` of it."""

    input: str
    output: str
    status: str = "failed"
    frames: int = 0  # segmented
    skipped_frames: int = 0  # bad frames, skipped
    sha256: str | None = None
    backend: str | None = None
    precision: str | None = None
    seconds: float = 0.0
    error: str | None = None
    index: int = -1  # not in the manifest: the task's index,
    worker: str = ""  # the worker (pid@host) that made it,
    loads: int = 0  # and how many networks that worker process had loaded

    def line(self) -> str:
        return json.dumps({key: getattr(self, key) for key in MANIFEST_KEYS})

    def marker(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, **changes) -> Record:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in json.loads(data).items() if k in known}
        return cls(**{**values, **changes})


def marker_path(name: str) -> str:
    return f"{STATE}/done/{name}.json"


def pending_path(name: str) -> str:
    return f"{STATE}/pending/{name}.json"


def worker_id() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


# -- one bag ---------------------------------------------------------------------------------------------
def segment_bag(source: Path, output: Path, net: SegNet, job: BagJob, settings: BagSettings,
                on_frame=None) -> Summary:
    """``segnet-ros bag SOURCE OUTPUT`` with a network already built: the same bytes. A topic none of whose
    frames could be segmented fails the bag (as the single command's exit status does), and nothing is
    written."""
    with BagReader(source) as reader:
        plans, _ = plan_topics(reader, list(job.topics))
        writer = BagWriter(output, compression=job.compression).open()
        try:
            summary = BagPipeline(reader, writer, net, plans, settings).run(on_frame)
            empty = [result for result in summary.results if result.frames == 0]
            if empty:
                raise BagError(nothing_segmented(empty))
            writer.finish()
        except BaseException:
            writer.abort()
            raise
    return summary


class BagWorker:
    """One network, bag after bag: what an embedded process, a Ray task's worker or a GPU actor runs.

    A bag's failure (corrupt, unreadable, nothing to segment) comes back as its record, never raised:
    a runner retries only lost workers. Only an interruption (KeyboardInterrupt) is raised; the bag it
    cut short leaves nothing but its private folder, which the driver removes.
    """

    loads = 0  # networks built in this process

    def __init__(self, spec: NetSpec, job: BagJob, cores: int | None = None) -> None:
        """``cores``: this worker's share of the machine (None: all of it, as the single-bag command)."""
        self.spec, self.job, self.cores = spec, job, cores
        workers = job.settings.workers
        self.threads = 0
        if cores:
            workers = max(1, min(workers, cores))
            self.threads = max(1, cores // workers)
        self.settings = replace(job.settings, workers=workers)
        self.out = output_dir(job.output_dir)
        self._net: SegNet | None = None

    def net(self) -> SegNet:
        if self._net is None:
            self._net = self.spec.build(self.settings.workers, self.threads)
            BagWorker.loads += 1
        return self._net

    def close(self) -> None:
        if self._net is not None:
            self._net.close()
            self._net = None

    def run(self, task: Task, progress: Progress | None = None) -> Record:
        started = time.perf_counter()
        record = Record(task.input, self.out.child(task.name), index=task.index, worker=worker_id())  # failed, unless
        try:
            done = self.out.read(marker_path(task.name))
            if done is not None:  # another attempt of this bag (a retry) finished it
                return self._theirs(done, task)
            net = self.net()
            started = time.perf_counter()  # the bag's own time, without loading the network
            count, last = 0, time.monotonic()

            def on_frame(plan, timestamp, segmentation) -> None:
                nonlocal count, last
                count += 1
                if progress is not None and time.monotonic() - last >= PROGRESS_PERIOD:
                    last = time.monotonic()
                    progress(task.index, count)

            with staged(task.input) as source, self.out.work(task.name) as folder:
                made = folder / task.name
                summary = segment_bag(source, made, net, self.job, self.settings, on_frame)
                backend = net.backend
                made_record = replace(record, status="done", frames=summary.frames, skipped_frames=summary.bad,
                                      sha256=bag_digest(made), backend=f"{backend.name} ({backend.device})",
                                      precision=backend.precision, seconds=round(time.perf_counter() - started, 3),
                                      loads=BagWorker.loads)
                return self._publish(made, task, made_record)
        except SegnetError as exc:
            record.error = one_line(exc)
        except Exception as exc:  # a file system or library failure, or a bug: this bag's, not the job's
            record.error = one_line(f"unexpected {type(exc).__name__}: {exc}")
        record.seconds = round(time.perf_counter() - started, 3)
        record.loads = BagWorker.loads
        return record

    def _publish(self, made: Path, task: Task, record: Record) -> Record:
        """The pending note, the bag, then the create-only marker: the last step makes it done."""
        out, name = self.out, task.name
        out.write(pending_path(name), record.marker())
        done = out.read(marker_path(name))
        if done is not None:
            return self._theirs(done, task)
        out.publish(made, name)
        if not out.create(marker_path(name), record.marker()):
            return self._theirs(out.read(marker_path(name)) or b"{}", task)
        out.remove(pending_path(name))
        return record

    def _theirs(self, marker: bytes, task: Task) -> Record:
        """The record of the attempt that marked the bag done first."""
        return Record.from_json(marker, input=task.input, output=self.out.child(task.name), status="done",
                                index=task.index, worker=worker_id(), loads=BagWorker.loads)


# -- runners -----------------------------------------------------------------------------------------------
class Runner(Protocol):
    def run(self, tasks: list[Task], progress: Progress) -> Iterator[Record]:
        """Each task's record, in the order they finish. Closing the iterator stops every worker."""


def runs_on_gpu(spec: NetSpec) -> bool:
    """Whether the network will run on this machine's GPU (TensorRT, or ONNX Runtime's CUDA provider)."""
    backend, options = spec.backend, spec.options
    if options.device == "cpu" or backend == "openvino":
        return False
    if backend == "tensorrt" or options.device == "cuda":
        return True
    from ..backends import detect_facts

    facts = detect_facts(backend, options)
    return bool(backend == "auto" and facts.tensorrt) or facts.onnxruntime_cuda


def embedded_bags_at_once(spec: NetSpec, workers: int) -> int:
    """Bags side by side on this machine: one per ``workers`` cores on the CPU; one on a GPU."""
    if runs_on_gpu(spec):
        return 1
    return max(1, usable_cores() // max(1, workers))


class EmbeddedRunner:
    """Bags on this machine, without Ray: one after another in this process, or ``bags_at_once``
    processes side by side, each with its share of the cores and its own network."""

    def __init__(self, spec: NetSpec, job: BagJob, bags_at_once: int = 1) -> None:
        self.spec, self.job, self.bags_at_once = spec, job, max(1, bags_at_once)

    def run(self, tasks: list[Task], progress: Progress) -> Iterator[Record]:
        if self.bags_at_once == 1 or len(tasks) <= 1:
            worker = BagWorker(self.spec, self.job)
            try:
                for task in tasks:
                    yield worker.run(task, progress)
            finally:
                worker.close()
            return
        yield from self._processes(tasks, progress)

    def _processes(self, tasks: list[Task], progress: Progress) -> Iterator[Record]:
        context = multiprocessing.get_context("spawn")
        todo, results = context.Queue(), context.Queue()
        count = min(self.bags_at_once, len(tasks))
        cores = max(1, usable_cores() // count)
        for task in tasks:
            todo.put(task)
        for _ in range(count):
            todo.put(None)
        children: dict[int, multiprocessing.Process] = {}

        def start() -> None:
            child = context.Process(target=_child_main, args=(self.spec, self.job, cores, todo, results),
                                    name="segnet-bag-worker", daemon=True)
            child.start()
            children[child.pid] = child

        for _ in range(count):
            start()
        by_index = {task.index: task for task in tasks}
        waiting, holding = set(by_index), {}  # holding: pid -> the task index it works on
        try:
            while waiting:
                try:
                    kind, index, value = results.get(timeout=0.5)
                except queue.Empty:
                    yield from self._reap(children, holding, waiting, by_index, start)
                    continue
                if kind == "start":
                    holding[value] = index
                elif kind == "frames":
                    progress(index, value)
                elif index in waiting:
                    waiting.discard(index)
                    holding = {pid: held for pid, held in holding.items() if held != index}
                    yield value
        finally:
            for child in children.values():
                if child.is_alive():
                    child.terminate()  # SIGTERM: its bag aborts (KeyboardInterrupt) and cleans up
            for child in children.values():
                child.join(timeout=10)
                if child.is_alive():
                    child.kill()
                    child.join()
            for q in (todo, results):
                q.cancel_join_thread()
                q.close()

    def _reap(self, children, holding, waiting, by_index, start) -> Iterator[Record]:
        """Children that died: the bag each held fails (a rerun retries it); one is started in its place."""
        for pid, child in list(children.items()):
            if child.is_alive():
                continue
            del children[pid]
            index = holding.pop(pid, None)
            if index is not None and index in waiting:
                waiting.discard(index)
                task = by_index[index]
                yield Record(task.input, output_dir(self.job.output_dir).child(task.name), index=index,
                             error=f"its worker process died (exit code {child.exitcode})")
            if child.exitcode != 0 and waiting:
                start()
        if not children:
            for index in sorted(waiting):
                task = by_index[index]
                yield Record(task.input, output_dir(self.job.output_dir).child(task.name), index=index,
                             error="no worker process was left to run it")
            waiting.clear()


def _die_with_parent() -> None:
    """Linux: this process gets SIGTERM when the driver dies, even by SIGKILL, so no orphan goes on."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _child_main(spec: NetSpec, job: BagJob, cores: int, todo, results) -> None:
    """An embedded worker process: bags from ``todo`` until None; Ctrl-C is the driver's to handle."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt)
    from ..threads import reserve_cores_for_inference

    reserve_cores_for_inference()
    worker = BagWorker(spec, job, cores)
    try:
        while (task := todo.get()) is not None:
            results.put(("start", task.index, os.getpid()))
            record = worker.run(task, lambda index, frames: results.put(("frames", index, frames)))
            results.put(("record", task.index, record))
    except KeyboardInterrupt:
        pass
    finally:
        worker.close()


# -- the driver -------------------------------------------------------------------------------------------
def plan_tasks(inputs: list[str], job: BagJob) -> list[Task]:
    """The job's bags, each with its output name; refused before anything runs where two would write the
    same output, or an output would be an input or inside one."""
    tasks: list[Task] = []
    names: dict[str, str] = {}
    local_out = None if is_url(job.output_dir) else Path(job.output_dir).expanduser()
    for source in find_bags(inputs):
        name = output_name(source)
        if name in names:
            raise BagError(f"'{names[name]}' and '{source}' would both be written to {name} in the output folder; "
                           "segment them into different --output-dir folders")
        names[name] = source
        if local_out is not None and not is_url(source):
            check_output(local_out / name, True, (Path(source),))
            check_output(local_out, True, (Path(source),))
        tasks.append(Task(len(tasks), source, name))
    return tasks


@dataclass
class Outcome:
    """The job's records, one per input that has one (every input, unless interrupted), in input order."""

    records: list[Record]
    inputs: int
    seconds: float
    manifest: str

    def count(self, status: str) -> int:
        return sum(record.status == status for record in self.records)

    @property
    def frames(self) -> int:
        return sum(record.frames for record in self.records if record.status == "done")


class Manifest:
    """``DIR/manifest.jsonl``: one line per input with a record, in input order, rewritten whole (atomically
    on a local folder, one put on object storage) at most every :data:`MANIFEST_PERIOD` seconds and at the end."""

    def __init__(self, out) -> None:
        self.out, self.records, self._written = out, {}, 0.0

    def add(self, record: Record) -> None:
        self.records[record.index] = record
        if time.monotonic() - self._written >= MANIFEST_PERIOD:
            self.write()

    def write(self) -> None:
        self.out.write(MANIFEST, "".join(self.records[i].line() + "\n" for i in sorted(self.records)).encode())
        self._written = time.monotonic()


def _marked_meanwhile(tasks: list[Task], out, manifest: Manifest) -> None:
    """Bags whose record never reached the driver (interrupted as they finished) but that are marked done."""
    missing = [task for task in tasks if task.index not in manifest.records]
    marked = out.listing(f"{STATE}/done") if missing else set()
    for task in missing:
        if f"{task.name}.json" in marked and (done := out.read(marker_path(task.name))) is not None:
            manifest.records[task.index] = Record.from_json(done, input=task.input, output=out.child(task.name),
                                                            status="done", index=task.index, error=None)


def run_job(tasks: list[Task], job: BagJob, runner: Runner, progress: Progress | None = None,
            on_record: Callable[[Record], None] | None = None) -> Outcome:
    """Skip the bags already done, run the others on ``runner``, keep the manifest. Returns when every
    bag has a record; an interruption (KeyboardInterrupt) still writes the manifest of what finished."""
    started = time.perf_counter()
    out = output_dir(job.output_dir)
    out.prepare()
    manifest = Manifest(out)

    def note(record: Record) -> None:
        manifest.add(record)
        if on_record is not None:
            on_record(record)

    with out.lock():
        out.clean_work()  # what killed attempts left: no run is using it (the lock)
        todo = []
        pending = out.listing(f"{STATE}/pending")
        for task in tasks:
            done = out.read(marker_path(task.name))
            if done is not None:
                note(Record.from_json(done, input=task.input, output=out.child(task.name), status="skipped",
                                      index=task.index, error=None))
                if f"{task.name}.json" in pending:  # stopped between its marker and this note's removal
                    out.remove(pending_path(task.name))
            elif out.exists(task.name) and f"{task.name}.json" not in pending:
                note(Record(task.input, out.child(task.name), index=task.index,
                            error=f"'{out.child(task.name)}' exists and was not written by segnet-ros bag --output-dir "
                                  "(it has no done marker); remove it, or choose another --output-dir"))
            else:
                todo.append(task)
        try:
            with contextlib.closing(runner.run(todo, progress or (lambda index, frames: None))) as records:
                for record in records:
                    note(record)
        finally:
            _marked_meanwhile(todo, out, manifest)
            manifest.write()
            out.clean_work()
    return Outcome([manifest.records[i] for i in sorted(manifest.records)], len(tasks),
                   time.perf_counter() - started, out.child(MANIFEST))

