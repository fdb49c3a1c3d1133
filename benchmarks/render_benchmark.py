"""Milliseconds per frame for pre-processing and each rendered product, ours vs straightforward.

1280x720 bgr8 input, a 512x256 network (16x8 grid, 21 classes), random logits.
Run: ``make benchmark`` or ``python benchmarks/render_benchmark.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import time

from segnet_ros.threads import reserve_cores_for_inference

reserve_cores_for_inference()  # as in the node and the CLI: one thread each for OpenBLAS and OpenCV

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from segnet_ros.core.classes import ClassTable  # noqa: E402
from segnet_ros.core.classify import classify  # noqa: E402
from segnet_ros.core.frames import encoding  # noqa: E402
from segnet_ros.core.preprocess import MEAN, STD, Preprocessor  # noqa: E402
from segnet_ros.core.render import Renderer  # noqa: E402

WIDTH, HEIGHT, NET_W, NET_H, GRID_W, GRID_H, CLASSES = 1280, 720, 512, 256, 16, 8, 21


def timed(function, repeat: int) -> float:
    function()  # warm-up: index maps and buffers
    best = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best.append(time.perf_counter() - start)
    return float(np.median(best)) * 1e3


def straightforward(frame, logits, table):
    """The obvious way: full-size logits, argmax, palette lookup, float blend."""
    def preprocess():
        rgb = cv2.cvtColor(cv2.resize(frame, (NET_W, NET_H)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        return ((rgb - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(2, 0, 1)[None].copy()

    def class_mask():
        up = np.stack([cv2.resize(plane, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR) for plane in logits[0]])
        return up.argmax(axis=0).astype(np.uint8)

    mask = class_mask()

    def color_mask():
        return table[:, :3].astype(np.uint8)[mask]

    def overlay():
        colour = table[mask]
        alpha = colour[:, :, 3:] / 255.0
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32)
        return (alpha * colour[:, :, :3] + (1 - alpha) * rgb).astype(np.uint8)

    def histogram():
        return np.bincount(mask.ravel(), minlength=CLASSES)

    return {"preprocess": preprocess, "class mask": class_mask, "colour mask": color_mask,
            "overlay": overlay, "histogram": histogram}


def ours(frame, logits, table):
    preprocessor = Preprocessor(NET_W, NET_H)
    renderer = Renderer(GRID_W, GRID_H)
    grid, _ = classify(logits)
    bgr = encoding("bgr8")
    # Output buffers reused across frames, as the node's message buffers are; a fresh grid object
    # per call, so colours are really recomputed, never reused from the renderer's cache.
    mask = np.empty((HEIGHT, WIDTH), np.uint8)
    colour, blended = np.empty((HEIGHT, WIDTH, 3), np.uint8), np.empty((HEIGHT, WIDTH, 3), np.uint8)
    return {
        "preprocess": lambda: preprocessor(frame, "bgr8"),
        "class mask": lambda g=None: renderer.class_mask(grid if g is None else g, WIDTH, HEIGHT, mask),
        "colour mask": lambda g=None: renderer.color_mask(grid.copy() if g is None else g, table, WIDTH, HEIGHT,
                                                          "linear", colour),
        "overlay": lambda g=None: renderer.overlay(grid.copy() if g is None else g, table, frame, bgr, WIDTH,
                                                   HEIGHT, "linear", blended),
        "histogram": lambda g=None: renderer.histogram(grid if g is None else g, CLASSES, WIDTH, HEIGHT),
    }


def one_frame(stages, grid) -> None:
    """Every product of one new grid, as the node renders them for a fully subscribed frame."""
    stages["preprocess"]()
    fresh = grid.copy()
    for key in ("class mask", "colour mask", "overlay", "histogram"):
        stages[key](fresh)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    logits = rng.normal(size=(1, CLASSES, GRID_H, GRID_W)).astype(np.float32)
    table = ClassTable.build(CLASSES).rgba(150)
    fast_stages, slow_stages = ours(frame, logits, table), straightforward(frame, logits, table)
    fast = {k: timed(f, args.repeat) for k, f in fast_stages.items()}
    slow = {k: timed(f, max(3, args.repeat // 5)) for k, f in slow_stages.items()}
    print(f"{WIDTH}x{HEIGHT} bgr8 input, {NET_W}x{NET_H} network, {GRID_W}x{GRID_H} grid, {CLASSES} classes "
          f"(median of {args.repeat} runs, OpenCV {cv2.__version__}, numpy {np.__version__})")
    print(f"{'stage':<14}{'segnet_ros ms':>15}{'straightforward ms':>20}{'speed-up':>10}")
    for key in fast:
        print(f"{key:<14}{fast[key]:>15.2f}{slow[key]:>20.2f}{slow[key] / fast[key]:>9.1f}x")
    total_fast, total_slow = sum(fast.values()), sum(slow.values())
    print(f"{'sum of stages':<14}{total_fast:>15.2f}{total_slow:>20.2f}{total_slow / total_fast:>9.1f}x")
    grid, _ = classify(logits)
    frame_fast = timed(lambda: one_frame(fast_stages, grid), args.repeat)
    frame_slow = timed(lambda: [stage() for stage in slow_stages.values()], max(3, args.repeat // 5))
    print(f"{'one frame':<14}{frame_fast:>15.2f}{frame_slow:>20.2f}{frame_slow / frame_fast:>9.1f}x"
          "   (all five products of one new grid, as the node renders a fully subscribed frame)")


if __name__ == "__main__":
    main()
