"""``segnet-ros evaluate``: accuracy against the user's own labelled frames or bag, per backend and
precision, so INT8, BF16 and FP16 are chosen on numbers.

Pixel accuracy (jetson-inference's published "Accuracy"), mean IoU and mean class accuracy, all from
one confusion matrix summed over the set; ``--compare`` runs several backends or precisions on the
same frames, each frame read once, and reports their differences from the first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..backends import BACKENDS, create_backend
from ..backends.base import PRECISIONS, Backend
from ..core.errors import SegnetError
from ..core.model import Model
from ..core.segnet import SegNet
from ..evaluate import AT, MASK_FORMATS, UPSAMPLE, LabelDecoder, Score, ScoreSettings, evaluate, open_labelled
from ..evaluate.plot import check_plot_path, confusion_picture, write_plot
from .common import (
    add_model_arguments,
    add_rendering_arguments,
    backend_from_args,
    backend_options,
    int_in_range,
    load_from_args,
    segnet_settings,
)
from .progress import Progress


def compare_list(text: str) -> tuple[tuple[str, str], ...]:
    """An argparse type: ``fp32,int8``, ``onnxruntime,openvino`` or ``openvino:int8,onnxruntime:fp32``
    as (backend, precision) pairs, "" where the item leaves it to --backend / --precision."""
    items = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        backend, sep, precision = part.partition(":")
        if not sep:
            backend, precision = (part, "") if part in BACKENDS else ("", part)
        if (backend and backend not in BACKENDS) or (precision and precision not in PRECISIONS) or \
                not (backend or precision):
            raise argparse.ArgumentTypeError(
                f"'{part}' is neither a precision ({', '.join(PRECISIONS)}), a backend ({', '.join(BACKENDS)}) "
                "nor BACKEND:PRECISION")
        if (backend, precision) in items:
            raise argparse.ArgumentTypeError(f"'{part}' is named twice")
        items.append((backend, precision))
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list such as fp32,int8; got '{text}'")
    return tuple(items)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="accuracy (pixel accuracy, mean IoU) on your own labelled images or bag",
        description="Score a model against ground truth: images and label masks (folders or quoted globs, paired "
                    "by file stem or by the Cityscapes layout), or a rosbag2 with a label topic of mono8 class ids "
                    "(paired by header stamp). Prints pixel accuracy (jetson-inference's 'Accuracy'), mean IoU and "
                    "mean class accuracy from one confusion matrix summed over the set, and per-class figures; "
                    "--compare runs several backends or precisions on the same frames.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="IMAGES MASKS (folders or quoted globs), or one rosbag2 (a bag folder, .mcap or .db3)")
    add_model_arguments(parser)
    add_rendering_arguments(parser)
    group = parser.add_argument_group("evaluation")
    group.add_argument("--mask-format", "--mask_format", dest="mask_format", choices=MASK_FORMATS, default="auto",
                       help="label format: ids (grey PNG of class ids), palette (palette PNG, index = class), colors "
                            "(the model's colors.txt colours), cityscapes (labelIds remapped to jetson-inference's 21 "
                            "classes); default auto: told apart by the PNG, Cityscapes layout read as cityscapes")
    group.add_argument("--ignore-index", "--ignore_index", dest="ignore_index", default=255,
                       type=int_in_range(-1, "a label value 0..255, or -1 to ignore none", 255),
                       help="label value that never counts (default 255; -1: none)")
    group.add_argument("--at", choices=AT, default="net",
                       help="net: at the network's input size, labels resized nearest (jetson-inference's "
                            "convention, the default); label: at each label's size, the class mask upsampled")
    group.add_argument("--upsample", choices=UPSAMPLE, default="nearest",
                       help="nearest: score the class mask segnet_ros publishes (default); bilinear: upsample the "
                            "logits bilinearly before the argmax, as the training code scored the published figures")
    group.add_argument("--compare", type=compare_list, metavar="LIST",
                       help="run several precisions or backends on the same frames, e.g. fp32,int8,bf16 or "
                            "onnxruntime:fp32,openvino:int8; differences are to the first")
    group.add_argument("--skip-unpaired", "--skip_unpaired", dest="skip_unpaired", action="store_true",
                       help="score the pairs found and skip images or labels without a partner (default: refuse)")
    group.add_argument("--topic", help="a bag's image topic (default: its only image topic besides the labels)")
    group.add_argument("--label-topic", "--label_topic", dest="label_topic",
                       help="a bag's label topic: sensor_msgs/Image mono8 class ids, stamped as their images")
    group.add_argument("--json", action="store_true", help="print one JSON object per run instead of the tables")
    group.add_argument("--plot", metavar="FILE", help="write the row-normalised confusion matrix as a picture (.png)")
    group.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(run=run)


@dataclass
class Run:
    """One backend x precision of the comparison: its backend, or why it cannot run; then its score."""

    backend_name: str
    precision: str
    backend: Backend | None = None
    reason: str = ""
    score: Score | None = None

    @property
    def label(self) -> str:
        if self.backend is None:
            return f"{self.backend_name} {self.precision}"
        cuda = " (cuda)" if self.backend.device == "cuda" else ""
        return f"{self.backend.name} {self.backend.precision}{cuda}"


def _create(model: Model, args: argparse.Namespace, backend_name: str, precision: str) -> Run:
    run = Run(backend_name, precision)
    try:
        backend = create_backend(backend_name, model, replace(backend_options(args), precision=precision))
    except SegnetError as exc:
        run.reason = " ".join(str(exc).split())
        return run
    if precision != "auto" and backend.precision != precision:  # never score one thing under another's name
        run.reason = f"{backend.name} runs {backend.precision} when asked for {precision}"
        backend.close()
        return run
    run.backend = backend
    return run


def _runs(model: Model, args: argparse.Namespace) -> list[Run]:
    if not args.compare:
        backend = backend_from_args(args, model)
        return [Run(backend.name, backend.precision, backend)]
    runs = [_create(model, args, backend or args.backend, precision or args.precision)
            for backend, precision in args.compare]
    if not any(run.backend for run in runs):
        raise SegnetError("none of --compare can run here: " + "; ".join(f"{r.label}: {r.reason}" for r in runs))
    return runs


# -- what is printed ------------------------------------------------------------------------------
def _percent(value: float | None, width: int = 7) -> str:
    return f"{100 * value:{width - 1}.2f}%" if value is not None else f"{'-':>{width}}"


def _points(value: float | None, reference: float | None) -> str:
    return f"{100 * (value - reference):+7.2f}" if value is not None and reference is not None else f"{'-':>7}"


def _where(args: argparse.Namespace, model: Model) -> str:
    if args.at == "net":
        where = (f"at {model.input_width}x{model.input_height}, the network's input size (labels resized "
                 "nearest)")
    else:
        where = "at each label's own size"
    how = "the class mask" if args.upsample == "nearest" else "logits upsampled bilinearly"
    ignore = f"ignore index {args.ignore_index}" if args.ignore_index >= 0 else "no ignore index"
    return f"scored {where}; predictions: {how}; {ignore}"


def _single_table(run: Run, model: Model, args: argparse.Namespace, described: str) -> list[str]:
    metrics = run.score.metrics
    lines = [f"{model.name} on {run.backend.describe()}: {described}", _where(args, model), "",
             f"pixel accuracy  {_percent(metrics.pixel_accuracy)}   ({metrics.pixels} pixels)",
             f"mean IoU        {_percent(metrics.mean_iou)}   over {metrics.iou_classes} classes in labels or "
             "predictions",
             f"mean accuracy   {_percent(metrics.mean_accuracy)}   over {metrics.accuracy_classes} classes in "
             "labels"]
    if metrics.left_out:
        lines.append(f"left out (no pixels in labels or predictions): {', '.join(metrics.left_out)}")
    lines += ["", f" ID  {'class name':<20} {'IoU':>8} {'accuracy':>9} {'label pixels':>13} {'predicted':>13}"]
    for c in metrics.classes():
        lines.append(f" {c.id:>2d}  {c.name:<20} {_percent(c.iou, 8)} {_percent(c.accuracy, 9)} "
                     f"{c.label_pixels:>13d} {c.predicted_pixels:>13d}")
    return lines


def _compare_table(runs: list[Run], model: Model, args: argparse.Namespace, described: str) -> list[str]:
    scored = [run for run in runs if run.score is not None]
    reference = scored[0].score.metrics
    width = max(20, *(len(run.label) for run in runs))
    lines = [f"{model.name}: {described}", _where(args, model), "",
             f"{'run':<{width}} {'pixel acc':>9} {'Δ pts':>7} {'mean IoU':>9} {'Δ pts':>7} {'mean acc':>9} "
             f"{'Δ pts':>7} {'ms/frame':>9}  same class as {scored[0].label}"]
    for run in runs:
        if run.score is None:
            lines.append(f"{run.label:<{width}} cannot run: {run.reason}")
            continue
        m = run.score.metrics
        first = run is scored[0]
        base = None if first else reference  # the reference row has no differences
        agreement = "(reference)" if first else f"{_percent(run.score.agreement).strip()} of {m.pixels} pixels"
        lines.append(f"{run.label:<{width}} {_percent(m.pixel_accuracy, 9)} "
                     f"{_points(m.pixel_accuracy, base and base.pixel_accuracy)} {_percent(m.mean_iou, 9)} "
                     f"{_points(m.mean_iou, base and base.mean_iou)} {_percent(m.mean_accuracy, 9)} "
                     f"{_points(m.mean_accuracy, base and base.mean_accuracy)} "
                     f"{1e3 * run.score.seconds / max(m.frames, 1):9.1f}  {agreement}")
    left_out = {run.label: run.score.metrics.left_out for run in scored}
    if len(set(left_out.values())) == 1:
        if scored[0].score.metrics.left_out:
            lines.append(f"left out of every run's means (no pixels in labels or predictions): "
                         f"{', '.join(scored[0].score.metrics.left_out)}")
    else:
        lines += [f"left out of {label}'s means (no pixels in labels or predictions): {', '.join(names) or 'none'}"
                  for label, names in left_out.items()]
    columns = [max(len(run.label), 9) for run in scored]
    lines += ["", "per-class IoU (Δ points to the first)",
              f" ID  {'class name':<20} " + " ".join(f"{run.label:>{w}}" for run, w in zip(scored, columns,
                                                                                             strict=True))]
    per_run = [run.score.metrics.classes() for run in scored]
    for index, name in enumerate(reference.names):
        cells = []
        for k, (classes, w) in enumerate(zip(per_run, columns, strict=True)):
            iou = classes[index].iou
            if k == 0:
                cells.append(_percent(iou, w))
            else:
                cells.append(_points(iou, per_run[0][index].iou).rjust(w))
        lines.append(f" {index:>2d}  {name:<20} " + " ".join(cells))
    return lines


def _difference(value: float | None, reference: float | None) -> float | None:
    return None if value is None or reference is None else value - reference


def _json(runs: list[Run], model: Model, args: argparse.Namespace) -> list[dict]:
    reference = next(run.score.metrics for run in runs if run.score is not None)
    out = []
    for run in runs:
        entry = {"run": run.label, "backend": run.backend.name if run.backend else run.backend_name,
                 "device": run.backend.device if run.backend else None,
                 "precision": run.backend.precision if run.backend else run.precision,
                 "available": run.score is not None, "reason": run.reason, "model": model.name, "at": args.at,
                 "upsample": args.upsample, "ignore_index": args.ignore_index if args.ignore_index >= 0 else None}
        if run.score is None:
            entry.update({"frames": 0, "pixels": 0, "pixel_accuracy": None, "mean_iou": None, "mean_accuracy": None,
                          "classes": [], "left_out": [], "ms_per_frame": None, "agreement": None, "delta": None})
            out.append(entry)
            continue
        metrics = run.score.metrics
        entry.update(metrics.as_dict())
        first = run.score.agreeing is None
        entry["ms_per_frame"] = 1e3 * run.score.seconds / max(metrics.frames, 1)
        entry["agreement"] = None if first else run.score.agreement
        entry["agreeing_pixels"] = None if first else run.score.agreeing
        entry["delta"] = None if first else {key: _difference(getattr(metrics, key), getattr(reference, key))
                                             for key in ("pixel_accuracy", "mean_iou", "mean_accuracy")}
        out.append(entry)
    return out


def run(args: argparse.Namespace) -> int:
    plot = Path(args.plot).expanduser() if args.plot else None
    if plot is not None:
        check_plot_path(plot)
    source = open_labelled(args.inputs, args.topic, args.label_topic, args.skip_unpaired)  # before the model
    if source.unpaired.count:
        print(f"segnet-ros: warning: --skip-unpaired: skipped {source.unpaired.describe()}", file=sys.stderr)
    settings = ScoreSettings(args.at, args.ignore_index if args.ignore_index >= 0 else None, args.upsample)
    model = load_from_args(args)
    decoder = LabelDecoder(args.mask_format, model.classes, source.layout, model.name)
    runs = _runs(model, args)
    try:
        active = [item for item in runs if item.backend is not None]
        nets = [SegNet(model, item.backend, segnet_settings(args), args.pipeline) for item in active]
        progress = Progress(source.count, enabled=None if args.progress else False)
        started = time.perf_counter()
        try:
            scores = evaluate(nets, source.frames(decoder), settings, progress.update)
        finally:
            progress.close()
        elapsed = time.perf_counter() - started
    finally:
        for item in runs:
            if item.backend is not None:
                item.backend.close()
    for item, score in zip(active, scores, strict=True):
        item.score = score
    frames = scores[0].metrics.frames
    if plot is not None:  # written whole before anything is printed: a failure leaves neither
        write_plot(plot, confusion_picture([(f"{model.name} on {item.label}", item.score.metrics)
                                            for item in active]))
    if args.json:
        print(json.dumps(_json(runs, model, args), indent=1))
    elif args.compare:
        print("\n".join(_compare_table(runs, model, args, source.describe())))
    else:
        print("\n".join(_single_table(runs[0], model, args, source.describe())))
    print(f"segnet-ros: evaluated {frames} frame{'s' if frames != 1 else ''} with {model.name} on "
          f"{', '.join(item.label for item in active)} in {elapsed:.2f} s ({frames / max(elapsed, 1e-9):.1f} fps)"
          + (f"; wrote {plot}" if plot is not None else ""), file=sys.stderr)
    return 0
