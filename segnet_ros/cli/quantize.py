"""``segnet-ros quantize``: make a model's INT8 model from the user's own frames, check it, install it.

Quantisation is only as good as its calibration frames, so they are the robot's own (images, a
folder, a glob, a video or a rosbag2), some are held out to measure how often INT8 picks FP32's
class, and below ``--min-agreement`` nothing is installed unless ``--force`` says so.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..backends.qdq import TARGETS
from ..core.errors import FrameError, SegnetError
from ..core.preprocess import RESIZE_METHODS
from ..evaluate.labels import MASK_FORMATS
from ..zoo import DEFAULT_NETWORK, REFERENCE_NAME
from .common import add_model_file_arguments, int_in_range, load_from_args, number_in_range

DEFAULT_MAX_FRAMES = 100
BAG_SUFFIXES = (".mcap", ".db3")




def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "quantize", help="make a model's INT8 model from your own frames (for precision int8)",
        description="Quantise a model to INT8 (QDQ, per-channel int8 weights, uint8 activations) with ranges "
                    "calibrated on your own frames, print how often it agrees with FP32 on held-out frames, "
                    "and install it in the user cache when it agrees well enough. 'precision int8' (segment's "
                    "--precision, the node's precision parameter) then uses it.")
    parser.add_argument("input", nargs="+",
                        help="calibration frames: images, folders, quoted globs, videos or rosbag2 bags "
                             "(a bag folder, .mcap or .db3); frames like the robot's camera sees")
    add_model_file_arguments(parser)
    group = parser.add_argument_group("quantisation")
    group.add_argument("--max-frames", "--max_frames", dest="max_frames", default=DEFAULT_MAX_FRAMES,
                       type=int_in_range(2, "a frame count of at least 2", 100000),
                       help=f"use at most this many frames, spread evenly over the inputs "
                            f"(default {DEFAULT_MAX_FRAMES})")
    group.add_argument("--held-out", "--held_out", dest="held_out", default=0.2,
                       type=number_in_range(0.0, 0.9, "a fraction above 0 and at most 0.9", open_low=True),
                       help="share of the frames kept out of calibration to measure agreement (default 0.2)")
    group.add_argument("--reduce-range", "--reduce_range", dest="reduce_range", choices=("auto", "on", "off"),
                       default="auto",
                       help="7-bit weights; auto tries both on CPUs without VNNI and keeps the better (default auto)")
    group.add_argument("--min-agreement", "--min_agreement", dest="min_agreement", default=98.0,
                       type=number_in_range(0.0, 100.0, "a percentage 0..100"),
                       help="install only if INT8 and FP32 agree on at least this %% of held-out cells (default 98)")
    group.add_argument("--force", action="store_true", help="install even below --min-agreement")
    group.add_argument("--target", choices=TARGETS, default="cpu",
                       help="cpu: for ONNX Runtime and OpenVINO (uint8 activations); tensorrt: symmetric int8 "
                            "activations, as TensorRT's explicit quantisation needs (default cpu)")
    group.add_argument("--topic", help="image topic of a bag (default: its only image topic)")
    group.add_argument("--resize", choices=RESIZE_METHODS, default="linear",
                       help="pre-processing resize, as you will run the model (default linear)")
    group.add_argument("--ignore-class", "--ignore_class", dest="ignore_class", default="void",
                       help="class never chosen, as you will run the model (default void)")
    group.add_argument("--threads", default=0,
                       type=int_in_range(0, "0 (ONNX Runtime decides) or a thread count up to 1024", 1024),
                       help="CPU threads for the agreement check (0: ONNX Runtime's default)")
    group = parser.add_argument_group("accuracy gate (labelled frames, as 'segnet-ros evaluate' takes them)")
    group.add_argument("--eval", nargs="+", metavar="INPUT",
                       help="IMAGES MASKS (folders or quoted globs), or a rosbag2 with --label-topic: score FP32 "
                            "and INT8 on them and install only within --max-miou-drop")
    group.add_argument("--label-topic", "--label_topic", dest="label_topic",
                       help="the --eval bag's label topic (mono8 class ids); its images: --eval-topic")
    group.add_argument("--eval-topic", "--eval_topic", dest="eval_topic",
                       help="the --eval bag's image topic (default: its only image topic)")
    group.add_argument("--mask-format", "--mask_format", dest="mask_format", choices=MASK_FORMATS, default="auto",
                       help="how --eval's labels are written (default auto)")
    group.add_argument("--max-miou-drop", "--max_miou_drop", dest="max_miou_drop", default=1.0,
                       type=number_in_range(0.0, 100.0, "a number of mean-IoU points 0..100"),
                       help="install only if INT8 loses at most this many points of mean IoU against FP32 on "
                            "--eval's frames (default 1)")
    parser.set_defaults(run=run)


@dataclass
class _Input:
    """One calibration input: how many frames it holds (0: unknown) and how to read them."""

    spec: str
    count: int
    frames: object  # a callable returning an iterator of (frame, encoding)


def _is_bag(spec: str) -> bool:
    path = Path(spec).expanduser()
    return path.suffix.lower() in BAG_SUFFIXES or (path.is_dir() and (path / "metadata.yaml").is_file())


def _bag_input(spec: str, topic: str | None) -> _Input:
    from ..bag.reader import BagReader

    with BagReader(spec) as bag:
        images = bag.image_topics
        if topic is None:
            if len(images) != 1:
                names = ", ".join(t.name for t in images) or "none"
                raise SegnetError(f"bag '{spec}' has {len(images)} image topics ({names}); choose one with --topic")
            chosen = images[0]
        elif topic not in bag.topics or not bag.topics[topic].is_image:
            names = ", ".join(t.name for t in images) or "none"
            raise SegnetError(f"bag '{spec}' has no image topic '{topic}' (its image topics: {names})")
        else:
            chosen = bag.topics[topic]

    def frames() -> Iterator[tuple[np.ndarray, str]]:
        with BagReader(spec) as bag:
            for connection, _, raw in bag.messages([chosen.name]):
                try:
                    _, frame, encoding = bag.frame(connection.msgtype, raw)
                except FrameError as exc:
                    print(f"segnet-ros: warning: {spec}: skipped a frame of {chosen.name}: {exc}", file=sys.stderr)
                    continue
                yield frame, encoding

    return _Input(spec, chosen.count, frames)


def _media_input(spec: str) -> _Input:
    from .media import open_source

    source = open_source(spec)
    return _Input(spec, source.count, lambda: ((image, "bgr8") for _, image in source))


def read_frames(specs: list[str], topic: str | None, limit: int) -> Iterator[tuple[np.ndarray, str]]:
    """At most ``limit`` frames spread evenly over every input, each input getting its share; read as they
    are used, so only the pre-processed tensors are kept."""
    from ..quantize import sample_evenly

    inputs = [_bag_input(spec, topic) if _is_bag(spec) else _media_input(spec) for spec in specs]
    known = sum(item.count for item in inputs)

    def frames() -> Iterator[tuple[np.ndarray, str]]:
        for item in inputs:
            share = max(1, round(limit * item.count / known)) if known and item.count else max(1, limit // len(inputs))
            yield from sample_evenly(item.frames(), item.count, share)

    return itertools.islice(frames(), limit)


def _judge(args: argparse.Namespace, model, labelled):
    """The accuracy gate: FP32 and the INT8 candidate scored on the labelled frames (as evaluate does)."""
    from ..backends import BackendOptions, create_backend
    from ..core.segnet import SegNetSettings
    from ..evaluate.scoring import ScoreSettings, evaluate_backends
    from ..quantize import CandidateBackend

    def judge(data: bytes) -> tuple[bool, dict]:
        fp32 = create_backend("onnxruntime", model, BackendOptions(device="cpu", precision="fp32",
                                                                   threads=args.threads))
        scores = evaluate_backends(model, [fp32, CandidateBackend(data, model, args.threads)], labelled,
                                   args.mask_format, ScoreSettings(),
                                   SegNetSettings(resize=args.resize, ignore_class=args.ignore_class))
        (miou32, acc32), (miou8, acc8) = ((100 * (s.metrics.mean_iou or 0.0), 100 * (s.metrics.pixel_accuracy or 0.0))
                                          for s in scores)
        figures = {"eval_frames": scores[0].metrics.frames, "mean_iou_fp32": round(miou32, 3),
                   "mean_iou_int8": round(miou8, 3), "miou_drop_points": round(miou32 - miou8, 3),
                   "pixel_accuracy_fp32": round(acc32, 3), "pixel_accuracy_int8": round(acc8, 3),
                   "max_miou_drop": args.max_miou_drop}
        return miou32 - miou8 <= args.max_miou_drop, figures

    return judge


def run(args: argparse.Namespace) -> int:
    from ..quantize import QuantizeSettings, prepare_frames, quantize_model

    frames = read_frames(args.input, args.topic, args.max_frames)  # opens every input: a typo fails before the model
    labelled = None
    if args.eval:
        from ..evaluate.pairs import open_labelled

        labelled = open_labelled(args.eval, args.eval_topic, args.label_topic)
    elif args.label_topic:
        raise SegnetError("--label-topic belongs to --eval BAG")
    model = load_from_args(args)
    settings = QuantizeSettings(reduce_range=args.reduce_range, min_agreement=args.min_agreement, force=args.force,
                                threads=args.threads, ignore_class=args.ignore_class, target=args.target,
                                judge=_judge(args, model, labelled) if labelled is not None else None)
    frame_set = prepare_frames(frames, model.input_width, model.input_height, args.resize, args.held_out)
    result = quantize_model(model, frame_set, settings)
    agreement = result.chosen.agreement
    print(f"INT8 vs FP32 class grids of {model.name} on {result.held_out_frames} held-out frames "
          f"({agreement.cells} cells; {result.calibration_frames} frames calibrated):")
    for candidate in result.candidates:
        kept = "  <- kept" if candidate is result.chosen and len(result.candidates) > 1 else ""
        label = f"reduce_range {'on' if candidate.reduce_range else 'off'}:"
        print(f"  {label:<18}{candidate.agreement.percent:6.2f}% equal{kept}")
    print("\n".join(agreement.table(model.classes.names)))
    accuracy = result.accuracy
    if accuracy:
        print(f"on {accuracy['eval_frames']} labelled frames: mean IoU {accuracy['mean_iou_fp32']:.2f}% FP32, "
              f"{accuracy['mean_iou_int8']:.2f}% INT8 ({-accuracy['miou_drop_points']:+.2f} points); pixel accuracy "
              f"{accuracy['pixel_accuracy_fp32']:.2f}% FP32, {accuracy['pixel_accuracy_int8']:.2f}% INT8")
    if result.installed is None and result.agreement_passed:  # refused on accuracy
        raise SegnetError(
            f"INT8 loses {accuracy['miou_drop_points']:.2f} points of mean IoU on the labelled frames, more than "
            f"--max-miou-drop {args.max_miou_drop:g}; nothing installed. Calibrate on more frames like the robot's "
            "camera sees, or pass --force to install it anyway")
    if result.installed is None:
        if REFERENCE_NAME.match(model.name):  # doc/cpu_precisions.md's example: say why, not what to try
            raise SegnetError(
                f"INT8 agrees with FP32 on {agreement.percent:.2f}% of the held-out cells, below --min-agreement "
                f"{args.min_agreement:g}; nothing installed. That is expected of the untrained reference network "
                "(its scores are nearly tied, so 90-92% is what it gets); quantize a trained model "
                f"(--network {DEFAULT_NETWORK}) on your camera's frames")
        raise SegnetError(
            f"INT8 agrees with FP32 on {agreement.percent:.2f}% of the held-out cells, below --min-agreement "
            f"{args.min_agreement:g}; nothing installed. Calibrate on more frames like the robot's camera sees, "
            "or pass --force to install it anyway")
    gate = f"below --min-agreement {args.min_agreement:g}" if not result.agreement_passed else \
        f"past --max-miou-drop {args.max_miou_drop:g}"
    forced = "" if result.passed else (f" ({gate}: --force; precision auto will not pick it, --precision int8 "
                                       "runs it)")
    print(f"installed{forced}: {result.installed}")
    if args.target == "tensorrt":
        print("use it with --backend tensorrt --precision int8 (segnet-ros segment, build-engine) or "
              "backend:=tensorrt precision:=int8 (segnet_node)")
    else:
        print("use it with --precision int8 (segnet-ros segment) or precision:=int8 (segnet_node)")
    return 0
