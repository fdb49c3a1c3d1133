"""``segnet-ros bag``: segment a recorded rosbag2 into a new bag, every frame, without ROS."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from ..backends import create_backend
from ..core.outputs import parse_mask_size
from ..core.segnet import Segmentation, SegNet
from .common import (
    add_model_arguments,
    add_rendering_arguments,
    backend_options,
    int_in_range,
    load_from_args,
    number_in_range,
    segnet_settings,
)
from .media import DEFAULT_FPS, VIDEO_EXTENSIONS, Sink, Source
from .progress import Progress
from .segment import compose, visualization

FPS_FRAMES = 10  # frames whose log times set the video's frame rate


def _outputs(text: str) -> tuple[str, ...]:
    from ..bag.pipeline import BAG_OUTPUTS

    parts = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    wrong = [p for p in parts if p not in BAG_OUTPUTS]
    if not parts or wrong:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(BAG_OUTPUTS)}; got '{text}'")
    return parts


def _mask_size(text: str) -> str | tuple[int, int]:
    value = parse_mask_size(text)
    if value is None or value == "depth":
        raise argparse.ArgumentTypeError(f"expected input, grid or WxH (e.g. 640x480); got '{text}'"
                                         + (" (depth needs a paired depth camera, which bag does not do)"
                                            if value == "depth" else ""))
    return value



def add_parser(subparsers) -> None:
    from ..bag.writer import COMPRESSIONS
    from ..core.decode import MAX_INPUT_PIXELS

    parser = subparsers.add_parser(
        "bag", help="segment the images of a rosbag2 (MCAP or SQLite 3) into a new bag, without ROS",
        usage="segnet-ros bag [options] INPUT OUTPUT\n       segnet-ros bag [options] INPUT... --output-dir DIR "
              "[--ray [ADDRESS]]",
        description="Segment every frame of a bag's image topics and write the outputs, named and typed as "
                    "segnet_node publishes them, to a new rosbag2 (MCAP). Needs no ROS install. With --output-dir, "
                    "any number of bags, each to DIR/<its name>, on this machine or a Ray cluster (--ray), "
                    "resumable: bags already done are skipped.")
    parser.add_argument("paths", nargs="+", metavar="INPUT",
                        help="rosbag2 folder, or an .mcap or .db3 file; then OUTPUT: a new rosbag2 folder, or a file "
                             "ending in .mcap for a single MCAP file. With --output-dir: bags, folders of bags, globs "
                             "or fsspec URLs (s3://...), and no OUTPUT")
    group = parser.add_argument_group("bag")
    group.add_argument("--topic", action="append", default=[], metavar="TOPIC[:=NAMESPACE]",
                       help="image topic to segment (repeatable; default every colour image topic); outputs go to "
                            "the topic's namespace (/front/image_raw -> /front/class_mask) or to NAMESPACE")
    from ..bag.pipeline import BAG_OUTPUTS

    group.add_argument("--outputs", type=_outputs, default=None,
                       help=f"outputs to write (default all: {','.join(BAG_OUTPUTS)}; label_info only where "
                            "vision_msgs' definitions are found)")
    group.add_argument("--copy-inputs", "--copy_inputs", dest="copy_inputs", action="store_true",
                       help="also copy the segmented topics' messages, so the result plays back as one bag")
    group.add_argument("--copy-all", "--copy_all", dest="copy_all", action="store_true",
                       help="also copy every other topic (implies --copy-inputs)")
    group.add_argument("--overwrite", action="store_true", help="replace OUTPUT (and --video) if it exists")
    group.add_argument("--compression", choices=COMPRESSIONS, default="none",
                       help="MCAP chunk compression (default none)")
    group.add_argument("--mask-size", "--mask_size", dest="mask_size", type=_mask_size, default="input",
                       help="class_mask/confidence size: input (default), grid or WxH")
    group.add_argument("--label-threshold", "--label_threshold", dest="label_threshold",
                       type=number_in_range(0.0, 1.0, "a number in 0..1"), default=0.5,
                       help="threshold written in label_info (default 0.5)")
    group.add_argument("--max-input-pixels", "--max_input_pixels", dest="max_input_pixels",
                       type=int_in_range(1, "a positive number of pixels"), default=MAX_INPUT_PIXELS,
                       help=f"frames larger than this are skipped as bad (default {MAX_INPUT_PIXELS})")
    group.add_argument("--workers", type=int_in_range(0, "0 (one per core, at most 4) or a count up to 64", 64),
                       default=0, help="inference threads where the backend takes concurrent calls (ONNX Runtime "
                       "on the CPU), each with its share of the cores; 0 (default): one per core, at most 4")
    group = parser.add_argument_group("many bags (doc/bags.md, 'Many bags')")
    group.add_argument("--output-dir", "--output_dir", dest="output_dir", metavar="DIR",
                       help="segment every INPUT into DIR/<its name> (a folder or an fsspec URL), with "
                            "DIR/manifest.jsonl; run again to resume: bags done are skipped, failed ones retried")
    group.add_argument("--jobs", type=int_in_range(0, "0 (as the cores allow) or a number of bags", 256), default=0,
                       help="without --ray: bags segmented side by side, each in its own process (default 0: one "
                            "per --workers cores on the CPU, one on a GPU)")
    group.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run on Ray (pip install 'segnet_ros[fleet]'): alone, a local Ray for this job; 'auto', "
                            "the cluster in RAY_ADDRESS or started on this machine; or a cluster's address")
    group.add_argument("--gpus", type=int_in_range(0, "a number of GPUs", 4096), default=None,
                       help="with --ray: GPU actors, one per GPU, each loading the model once (default: the "
                            "cluster's GPUs where the backend uses one; pass it where Ray does not see them, as on "
                            "Jetsons; 0: CPUs only)")
    group.add_argument("--cpus-per-bag", "--cpus_per_bag", dest="cpus_per_bag",
                       type=int_in_range(1, "a positive number of CPUs", 1024), default=1,
                       help="with --ray, on CPUs: the CPUs each bag's task takes, one inference thread each "
                            "(default 1)")
    group.add_argument("--max-in-flight", "--max_in_flight", dest="max_in_flight",
                       type=int_in_range(0, "0 (twice what runs at once) or a number of bags"), default=0,
                       help="with --ray: bags submitted at once (default 0: twice as many as run side by side)")
    add_model_arguments(parser)
    add_rendering_arguments(parser)
    group = parser.add_argument_group("video")
    group.add_argument("--video", metavar="FILE", help="also write one topic's overlay as a video (.mp4, .avi, ...)")
    group.add_argument("--video-topic", "--video_topic", dest="video_topic", metavar="TOPIC",
                       help="the topic --video shows (default: the first segmented topic)")
    group.add_argument("--visualize", type=visualization, default=("overlay",),
                       help="what --video shows: overlay (default), mask, or overlay,mask (segnet.py's composite)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(run=run)


class BagProgress(Progress):
    """The frame progress bar with an estimate of the time left."""

    def line(self) -> str:
        text = super().line()
        elapsed = time.perf_counter() - self._start
        if 0 < self.done < self.total and elapsed > 0:
            left = (self.total - self.done) * elapsed / self.done
            text += f"  ETA {int(left) // 60}:{int(left) % 60:02d}"
        return text


class VideoTrack:
    """One topic's pictures as a video at the bag's frame rate: the median interval of the first
    frames' log times, so the first few are held back until it is known. Written under a private
    name and moved into place by :meth:`finish`, so a failed run leaves any old video as it was."""

    def __init__(self, path: Path, topic: str, visualize: tuple[str, ...]) -> None:
        self.path, self.topic, self.visualize = path, topic, visualize
        self._partial = path.with_name(f".{path.stem}.partial{path.suffix}")
        self._sink: Sink | None = None
        self._held: list[tuple[int, np.ndarray]] = []
        self._size: tuple[int, int] | None = None
        self.frames = 0
        self.fps = 0.0

    def add(self, timestamp: int, segmentation: Segmentation) -> None:
        picture = compose(segmentation, self.visualize)
        if not segmentation.encoding.bgr:  # video files take BGR
            picture = np.ascontiguousarray(picture[:, :, ::-1])
        if self._size is None:
            self._size = (picture.shape[1], picture.shape[0])
        elif (picture.shape[1], picture.shape[0]) != self._size:  # a topic whose size changes: keep the first
            picture = cv2.resize(picture, self._size, interpolation=cv2.INTER_AREA)
        self.frames += 1
        if self._sink is not None:
            self._sink.write("", picture)
            return
        self._held.append((timestamp, picture))
        if len(self._held) > FPS_FRAMES:
            self._open()

    def _open(self) -> None:
        steps = np.diff(np.array([t for t, _ in self._held], dtype=np.float64))
        steps = steps[steps > 0]
        self.fps = round(1e9 / float(np.median(steps)), 3) if steps.size else DEFAULT_FPS
        self._sink = Sink(str(self._partial), Source([], fps=self.fps, count=0), overwrite=True)
        for _, picture in self._held:
            self._sink.write("", picture)
        self._held = []

    def finish(self) -> None:
        if self._sink is None and self._held:
            self._open()
        if self._sink is not None:
            self._sink.close()
            self._partial.replace(self.path)

    def abort(self) -> None:
        if self._sink is not None:
            self._sink.close()
        self._partial.unlink(missing_ok=True)


def _check_video(args: argparse.Namespace, output: Path) -> Path | None:
    from ..bag.typestore import BagError

    if not args.video:
        return None
    path = Path(args.video).expanduser()
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise BagError(f"--video '{args.video}' must be a video file ({', '.join(sorted(VIDEO_EXTENSIONS))})")
    if (path.exists() or path.is_symlink()) and not args.overwrite:
        raise BagError(f"video '{path}' exists; pass --overwrite to replace it (or choose another name)")
    if path.resolve() == output.resolve():
        raise BagError("--video must not be the output bag")
    return path


def summary_text(summary, class_names: tuple[str, ...], seconds: float) -> str:
    """Frames per topic, bad frames with their reasons, and each class's share of the mask pixels."""
    lines = []
    for result in summary.results:
        plan = result.plan
        plural = "s" if result.frames != 1 else ""
        line = f"{plan.topic.name} -> {plan.namespace}/*: {result.frames} frame{plural} segmented"
        if result.bad:
            line += f", {result.bad} bad frame{'s' if result.bad != 1 else ''} skipped"
        lines.append(line)
        for reason, count in result.reasons.most_common(3):
            lines.append(f"  skipped {count}x: {reason}")
        shares = result.shares()
        if shares.size:
            lines.append(f"  {'class':<20s} {'share':>8s}")
            for index in np.flatnonzero(shares):
                lines.append(f"  {class_names[index]:<20s} {shares[index] * 100:>7.2f}%")
    frames = summary.frames
    lines.append(f"{frames} frame{'s' if frames != 1 else ''} of {len(summary.results)} "
                 f"topic{'s' if len(summary.results) != 1 else ''} in {seconds:.2f} s "
                 f"({frames / max(seconds, 1e-9):.1f} fps); {summary.written} messages written"
                 + (f" ({summary.copied} copied)" if summary.copied else ""))
    return "\n".join(lines)


FLEET_ONLY = (("jobs", 0, "--jobs"), ("ray", None, "--ray"), ("gpus", None, "--gpus"),
              ("cpus_per_bag", 1, "--cpus-per-bag"), ("max_in_flight", 0, "--max-in-flight"))


def run(args: argparse.Namespace) -> int:
    """One bag (INPUT OUTPUT, as it always was), or many (INPUT... --output-dir DIR)."""
    from ..bag.typestore import BagError

    if args.output_dir is not None:
        return run_many(args)
    given = [flag for name, default, flag in FLEET_ONLY if getattr(args, name) != default]
    if given:
        raise BagError(f"{given[0]} is for many bags: add --output-dir DIR (segnet-ros bag INPUT... --output-dir DIR)")
    if len(args.paths) != 2:
        raise BagError("give INPUT and OUTPUT (one bag), or INPUT... --output-dir DIR (many bags)"
                       if len(args.paths) < 2 else
                       f"{len(args.paths)} paths given: one bag takes INPUT OUTPUT; for many bags, give "
                       "--output-dir DIR (segnet-ros bag INPUT... --output-dir DIR)")
    args.input, args.output = args.paths
    return run_one(args)


def _bag_settings(args: argparse.Namespace):
    """BagSettings from the arguments; label_info is left out, with a warning, where vision_msgs is missing."""
    from ..bag.pipeline import BAG_OUTPUTS, BagSettings, default_workers
    from ..bag.typestore import BagError, has_label_info, label_info_missing

    outputs = args.outputs or BAG_OUTPUTS
    if "label_info" in outputs and not has_label_info():
        if args.outputs:
            raise BagError(label_info_missing())
        outputs = tuple(name for name in outputs if name != "label_info")  # the default: all that can be written
        print(f"segnet-ros: warning: not writing label_info: {label_info_missing()}", file=sys.stderr)
    return BagSettings(outputs=outputs, mask_size=args.mask_size, label_threshold=args.label_threshold,
                       copy_inputs=args.copy_inputs or args.copy_all, copy_all=args.copy_all,
                       max_input_pixels=args.max_input_pixels, workers=args.workers or default_workers())


def run_one(args: argparse.Namespace) -> int:
    from ..bag.fleet import nothing_segmented
    from ..bag.pipeline import BagPipeline
    from ..bag.reader import BagReader
    from ..bag.topics import parse_topic, plan_topics
    from ..bag.typestore import BagError
    from ..bag.writer import BagWriter, check_output

    output = Path(args.output).expanduser()
    reader = BagReader(args.input)  # cheap checks first: a typo should not wait for a model
    check_output(output, args.overwrite, (reader.path,))
    video = _check_video(args, output)
    settings = _bag_settings(args)
    workers = settings.workers
    with reader:
        plans, notes = plan_topics(reader, [parse_topic(t) for t in args.topic])
        track = None
        if video is not None:
            name = parse_topic(args.video_topic)[0] if args.video_topic else plans[0].topic.name
            if name not in {p.topic.name for p in plans}:
                raise BagError(f"--video-topic {name} is not one of the segmented topics: "
                               f"{', '.join(p.topic.name for p in plans)}")
            track = VideoTrack(video, name, args.visualize)
        model = load_from_args(args)
        rendering = segnet_settings(args, model)
        backend = create_backend(args.backend, model, replace(backend_options(args), callers=workers))
        net = SegNet(model, backend, rendering, args.pipeline)
        progress = BagProgress(sum(p.topic.count for p in plans), enabled=None if args.progress else False)

        def on_frame(plan, timestamp, segmentation) -> None:
            if track is not None and segmentation is not None and plan.topic.name == track.topic:
                track.add(timestamp, segmentation)
            progress.update()

        writer, done = None, False
        try:
            writer = BagWriter(output, overwrite=args.overwrite, compression=args.compression).open()
            pipeline = BagPipeline(reader, writer, net, plans, settings)
            for note in notes + pipeline.notes:
                print(f"segnet-ros: {note}", file=sys.stderr)
            summary = pipeline.run(on_frame)
            empty = [result for result in summary.results if result.frames == 0]
            if len(empty) == len(summary.results):  # nothing at all: no output either, and the line says why
                raise BagError(nothing_segmented(empty) + "; nothing written")
            writer.finish()
            if track is not None:
                track.finish()
            done = True
        finally:
            progress.close()
            net.close()
            if not done:
                if writer is not None:
                    writer.abort()
                if track is not None:
                    track.abort()
    print(summary_text(summary, net.class_names, summary.seconds))
    where = f"; video {track.path} ({track.frames} frames at {track.fps:g} fps)" if track is not None else ""
    threads = f", {pipeline.workers} inference threads" if pipeline.workers > 1 else ""
    print(f"segnet-ros: wrote {output} with {model.name} on {net.backend.describe()}{threads}{where}",
          file=sys.stderr)
    if empty:  # a script must not take a topic with no segmentation for success
        raise BagError(nothing_segmented(empty) + f"; {output} holds the other topics")
    return 0


class FleetProgress(Progress):
    """One bar over the job: ``[###.......] 3/10 bags  1234 frames  45.2 fps  1 failed  ETA 1:23``."""

    unit = "bags"

    def __init__(self, total: int, enabled: bool | None = None) -> None:
        super().__init__(total, enabled=enabled)
        self.frames_done, self.failed, self.ran = 0, 0, 0
        self._live: dict[int, int] = {}  # frames so far of each bag in flight
        self._finished: set[int] = set()  # a count may arrive after its bag's record (Ray)

    def frames(self, index: int, count: int) -> None:
        if index not in self._finished:
            self._live[index] = count
            self.update(0)

    def record(self, record) -> None:
        self._finished.add(record.index)
        self._live.pop(record.index, None)
        if record.status != "skipped":
            self.ran += 1
            self.frames_done += record.frames + record.skipped_frames
        self.failed += record.status == "failed"
        self.update()

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        frames = self.frames_done + sum(self._live.values())
        filled = min(self.width, self.width * self.done // max(self.total, 1))
        text = (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} bags  {frames} frames  "
                f"{frames / elapsed:.1f} fps")
        if self.failed:
            text += f"  {self.failed} failed"
        if self.ran and self.done < self.total:
            left = (self.total - self.done) * elapsed / self.ran
            text += f"  ETA {int(left) // 3600}:{int(left) % 3600 // 60:02d}:{int(left) % 60:02d}"
        return text


def run_many(args: argparse.Namespace) -> int:
    """``bag INPUT... --output-dir DIR``: every bag to DIR/<its name>, here or on Ray; resumable."""
    from ..bag.fleet import BagJob, EmbeddedRunner, NetSpec, embedded_bags_at_once, plan_tasks, run_job
    from ..bag.topics import parse_topic
    from ..bag.typestore import BagError

    if args.video:
        raise BagError("--video is for one bag (segnet-ros bag INPUT OUTPUT --video FILE), not --output-dir")
    if args.overwrite:
        raise BagError("--overwrite does not apply to --output-dir: bags already done are kept, the others (re)made; "
                       "to redo a bag, delete it and its marker DIR/.segnet-ros/done/<its name>.json")
    if args.ray is None:
        wrong = [flag for name, default, flag in FLEET_ONLY[2:] if getattr(args, name) != default]
        if wrong:
            raise BagError(f"{wrong[0]} is for --ray")
    elif args.jobs:
        raise BagError("--jobs is for the embedded runner; with --ray, Ray places the bags (--cpus-per-bag, --gpus)")
    settings = _bag_settings(args)
    job = BagJob(output_dir=args.output_dir, topics=tuple(parse_topic(t) for t in args.topic), settings=settings,
                 compression=args.compression)
    tasks = plan_tasks(args.paths, job)  # cheap checks first: a typo should not wait for a model
    model = load_from_args(args)
    spec = NetSpec(files=model.files, backend=args.backend, options=backend_options(args),
                   settings=segnet_settings(args, model), pipeline=getattr(args, "pipeline", "host"))
    if args.ray is not None:
        from ..bag import ray_runner  # BagError, in one line, where Ray is not installed

        runner = ray_runner.RayRunner(spec, job, ray_runner.RaySettings(
            address=args.ray, gpus=args.gpus, cpus_per_bag=args.cpus_per_bag, in_flight=args.max_in_flight))
        where = "Ray"
    else:
        at_once = args.jobs or embedded_bags_at_once(spec, settings.workers)
        runner = EmbeddedRunner(spec, job, at_once)
        where = f"this machine, {at_once} bag{'s' if at_once != 1 else ''} at a time"
    progress = FleetProgress(len(tasks), enabled=None if args.progress else False)
    try:
        outcome = run_job(tasks, job, runner, progress.frames, progress.record)
    finally:
        progress.close()
    where = getattr(runner, "describe", "") or where
    failed = [record for record in outcome.records if record.status == "failed"]
    for record in failed:
        print(f"failed: {record.input}: {record.error}")
    ran = [record for record in outcome.records if record.status == "done"]
    frames = sum(record.frames for record in ran)
    print(f"{outcome.inputs} bag{'s' if outcome.inputs != 1 else ''}: {len(ran)} done, "
          f"{outcome.count('skipped')} skipped (done before), {len(failed)} failed; {frames} frames in "
          f"{outcome.seconds:.1f} s ({frames / max(outcome.seconds, 1e-9):.1f} fps); manifest {outcome.manifest}")
    ran_on = sorted({f"{record.backend}, {record.precision}" for record in ran})
    print(f"segnet-ros: wrote {len(ran)} bag{'s' if len(ran) != 1 else ''} to {args.output_dir} with {model.name}"
          + (f" on {'; '.join(ran_on)}" if ran_on else "") + f" ({where})", file=sys.stderr)
    if failed:
        raise BagError(f"{len(failed)} of {outcome.inputs} bags failed, the first: {failed[0].input}: "
                       f"{failed[0].error} (all in {outcome.manifest}; run the command again to retry them)")
    return 0
