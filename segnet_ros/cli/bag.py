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
        description="Segment every frame of a bag's image topics and write the outputs, named and typed as "
                    "segnet_node publishes them, to a new rosbag2 (MCAP). Needs no ROS install.")
    parser.add_argument("input", help="rosbag2 folder, or an .mcap or .db3 file")
    parser.add_argument("output", help="new rosbag2 folder, or a file ending in .mcap for a single MCAP file")
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


def run(args: argparse.Namespace) -> int:
    from ..bag.pipeline import BAG_OUTPUTS, BagPipeline, BagSettings, default_workers
    from ..bag.reader import BagReader
    from ..bag.topics import parse_topic, plan_topics
    from ..bag.typestore import BagError, has_label_info, label_info_missing
    from ..bag.writer import BagWriter, check_output

    output = Path(args.output).expanduser()
    reader = BagReader(args.input)  # cheap checks first: a typo should not wait for a model
    check_output(output, args.overwrite, (reader.path,))
    video = _check_video(args, output)
    outputs = args.outputs or BAG_OUTPUTS
    if "label_info" in outputs and not has_label_info():
        if args.outputs:
            raise BagError(label_info_missing())
        outputs = tuple(name for name in outputs if name != "label_info")  # the default: all that can be written
        print(f"segnet-ros: warning: not writing label_info: {label_info_missing()}", file=sys.stderr)
    workers = args.workers or default_workers()
    settings = BagSettings(outputs=outputs, mask_size=args.mask_size, label_threshold=args.label_threshold,
                           copy_inputs=args.copy_inputs or args.copy_all, copy_all=args.copy_all,
                           max_input_pixels=args.max_input_pixels, workers=workers)
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
        net = SegNet(model, backend, rendering)
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
            if len(empty) == len(summary.results):  # nothing at all: no output either
                print(summary_text(summary, net.class_names, summary.seconds))
                raise BagError(_nothing_segmented(empty) + "; nothing written")
            writer.finish()
            if track is not None:
                track.finish()
            done = True
        finally:
            progress.close()
            net.backend.close()
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
        raise BagError(_nothing_segmented(empty) + f"; {output} holds the other topics")
    return 0


def _nothing_segmented(results) -> str:
    """The error for topics none of whose frames could be segmented, with the commonest reason."""
    parts = []
    for result in results:
        reason = result.reasons.most_common(1)
        parts.append(f"{result.plan.topic.name} ({result.bad} bad frame{'s' if result.bad != 1 else ''}"
                     + (f": {reason[0][0]}" if reason else "") + ")")
    return f"no frame of {', '.join(parts)} could be segmented"
