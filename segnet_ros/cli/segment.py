"""``segnet-ros segment``: segnet.py's command line, on our core."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ..core.segnet import Products, Segmentation, SegNet
from .common import add_model_arguments, add_rendering_arguments, backend_from_args, load_from_args, segnet_settings
from .media import Sink, open_source
from .progress import Progress

VISUALIZATIONS = ("overlay", "mask")
RULE = "-" * 41


def visualization(text: str) -> tuple[str, ...]:
    """An argparse type: what a written picture shows (overlay, mask, or segnet.py's composite of both)."""
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if not parts or any(p not in VISUALIZATIONS for p in parts):
        raise argparse.ArgumentTypeError(f"expected overlay, mask or overlay,mask; got '{text}'")
    return parts


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment", help="segment images, folders, globs or videos (segnet.py's arguments)",
        description="Segment images or video with an FCN-ResNet18 model, as jetson-inference's segnet.py does.")
    parser.add_argument("input", help="image, folder, glob (quote it) or video file")
    parser.add_argument("output", nargs="?",
                        help="image, folder, pattern (out_%%i.jpg) or video; omit to write nothing")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files (an input is never written over)")
    add_model_arguments(parser)
    group = add_rendering_arguments(parser)
    group.add_argument("--visualize", type=visualization, default=VISUALIZATIONS,
                       help="overlay,mask (default), overlay or mask")
    group.add_argument("--stats", action="store_true", help="print the class histogram of each frame's grid")
    group.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(run=run)


def compose(segmentation: Segmentation, visualize: tuple[str, ...]) -> np.ndarray:
    """segnet.py's picture: the overlay at full size and the colour mask at half size beside it."""
    width, height = segmentation.input_size
    bgr = segmentation.encoding.bgr

    def mask(size):
        image = segmentation.color_mask(size)
        return image[:, :, ::-1] if bgr else image

    if visualize == ("overlay",):
        return segmentation.overlay()
    if visualize == ("mask",):
        return mask(None)
    canvas = np.zeros((height, width + width // 2, 3), dtype=np.uint8)
    canvas[:, :width] = segmentation.overlay()
    if width // 2 and height // 2:
        canvas[: height // 2, width:] = mask((width // 2, height // 2))
    return canvas


def format_stats(segmentation: Segmentation, names: tuple[str, ...]) -> str:
    """The class-grid histogram table, line for line as segnet.py prints it."""
    grid_width, grid_height = segmentation.grid_size
    counts = segmentation.histogram(segmentation.grid_size)
    lines = [
        f"grid size:   {grid_width}x{grid_height}",
        f"num classes: {len(names)}",
        RULE,
        " ID  class name        count     %",
        RULE,
    ]
    cells = float(grid_width * grid_height)
    for index, name in enumerate(names):
        lines.append(f" {index:>2d}  {name:<18s} {int(counts[index]):>3d}   {counts[index] / cells:f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    source = open_source(args.input)  # cheap checks first: a typo should not wait for a model
    sink = Sink(args.output, source, args.overwrite) if args.output else None
    model = load_from_args(args)
    settings = segnet_settings(args, model)
    net = SegNet(model, backend_from_args(args, model), settings, args.pipeline)
    # what the graph computes (pipeline graph): the pictures, and the grid's histogram for --stats
    products = Products(frozenset({"overlay", "color_mask"} | ({"histogram"} if args.stats else set())),
                        net.grid_size if args.stats else None)
    progress = Progress(source.count, enabled=None if args.progress and source.count != 1 else False)
    totals = np.zeros(4)
    frames = 0
    started = time.perf_counter()
    try:
        for name, image in source:
            segmentation = net.process(image, "bgr8", products)
            render_start = time.perf_counter()
            if sink is not None:
                sink.write(name, compose(segmentation, args.visualize))
            render_ms = (time.perf_counter() - render_start) * 1e3
            timings = net.timings
            totals += (timings.preprocess, timings.inference, timings.classify, render_ms)
            frames += 1
            if args.stats:
                print(format_stats(segmentation, net.class_names))
            progress.update()
    finally:
        progress.close()
        net.close()
        if sink is not None:
            sink.close()
    elapsed = time.perf_counter() - started
    mean = totals / max(frames, 1)
    print(
        f"segnet-ros: segmented {frames} frame{'s' if frames != 1 else ''} with {model.name} on "
        f"{net.backend.describe()}, pipeline {net.pipeline}, in {elapsed:.2f} s "
        f"({frames / max(elapsed, 1e-9):.1f} fps); "
        f"per frame: preprocess {mean[0]:.1f} ms, inference {mean[1]:.1f} ms, "
        f"classify {mean[2]:.1f} ms, render+write {mean[3]:.1f} ms",
        file=sys.stderr,
    )
    return 0
