"""``segnet-ros evaluate``'s frame rate against ``segment``'s, on the same frames, same model, same run.

A labelled set of N street frames (JPEG, as cameras record) with Cityscapes-style labels (PNG labelIds
in the Cityscapes layout, so the remap runs too) is written to a temporary folder; the model is the
reference network (FCN-ResNet18's topology, 21 classes, 512x256 by default). Two measurements:

1. **Frame by frame, in one process** (the robust figure): each frame is put through ``segment``'s
   per-frame work (its reader, then ``SegNet.process``; nothing written, its least work) and through
   ``evaluate``'s (image and label read, the label checked and resized, ``SegNet.process``, the class
   mask, the confusion matrix), the two taking turns frame by frame, which goes first alternating, on
   one backend. A machine that gets busier meanwhile slows both alike.
2. **The commands as users run them**, each in its own process, taking turns ``--repeat`` times:
   ``segment FRAMES`` and ``evaluate FRAMES LABELS``; each prints its own frame rate over its frame loop
   (start-up excluded). On a shared machine these vary from run to run; the median of the pairs' ratios
   is given.

Target: evaluate / segment >= 0.9.

Run: ``python benchmarks/evaluate_benchmark.py [--frames 30] [--repeat 3] [--size 1024x512] [--at net]``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from segnet_ros.backends import BackendOptions, create_backend
from segnet_ros.backends.cpu import cpu_info
from segnet_ros.cli.media import open_source
from segnet_ros.core.model import load_model
from segnet_ros.core.refnet import write_reference_model
from segnet_ros.core.segnet import SegNet
from segnet_ros.demo.scenes import street_frame
from segnet_ros.evaluate import LabelDecoder, ScoreSettings, evaluate, open_labelled
from segnet_ros.evaluate.pairs import FileSet

FPS = re.compile(r"\(([\d.]+) fps\)")


def cpu_line() -> str:
    """The CPU's model name and its widest vector extension, from /proc/cpuinfo."""
    info = cpu_info()
    widest = "AVX-512" if "avx512f" in info.flags else "AVX2" if "avx2" in info.flags else "neither AVX-512 nor AVX2"
    return f"{info.model}, {info.cores} cores, {widest} ({info.describe().split(': ', 1)[-1]})"


def street_labels(index: int, width: int, height: int) -> np.ndarray:
    """Cityscapes labelIds shaped like the demo's street frame: sky, buildings, road, grass, a car."""
    label = np.full((height, width), 7, np.uint8)  # road
    horizon = int(height * 0.45)
    label[:horizon] = 23  # sky
    for b in range(6):
        x0 = (b * width) // 6 + 10
        label[horizon - 40 - (b * 37 % 120):horizon, x0:x0 + width // 8] = 11  # building
    label[int(height * 0.85):] = 22  # terrain
    car_x = (index * 18) % (width + 300) - 300
    label[int(height * 0.55):int(height * 0.75), max(car_x, 0):max(car_x + 300, 0)] = 26  # car
    label[:4] = 255  # ignored rows, as annotation borders are
    return label


def write_set(root: Path, count: int, width: int, height: int) -> tuple[Path, Path]:
    images, labels = root / "leftImg8bit" / "val" / "city", root / "gtFine" / "val" / "city"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i in range(count):
        name = f"city_{i:06d}_000019"
        cv2.imwrite(str(images / f"{name}_leftImg8bit.jpg"), street_frame(i, width, height),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        cv2.imwrite(str(labels / f"{name}_gtFine_labelIds.png"), street_labels(i, width, height))
    return images.parent, labels.parent


def command(args: list[str]) -> tuple[float, float]:
    """(frames/s the command reports for its frame loop, wall seconds of the whole process)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "segnet_ros.cli.main", *args], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"segnet-ros {args[0]} failed:\n{result.stderr}")
    found = FPS.findall(result.stderr)
    if not found:
        raise SystemExit(f"no frame rate in segnet-ros {args[0]}'s output:\n{result.stderr}")
    return float(found[-1]), wall


def frame_by_frame(images: Path, labels: Path, model_files, at: str, rounds: int) -> tuple[float, float]:
    """(segment's, evaluate's) milliseconds per frame, the two taking turns on each frame (warm-up excluded)."""
    model = load_model(model_files)
    net = SegNet(model, create_backend("onnxruntime", model, BackendOptions(device="cpu", precision="fp32")))
    labelled = open_labelled([str(images), str(labels)])
    decoder = LabelDecoder("auto", model.classes, labelled.layout, model.name)
    settings = ScoreSettings(at=at)
    spent = {"segment": 0.0, "evaluate": 0.0}

    def segment_frame(pair) -> None:  # segment's loop body: its reader, then SegNet.process
        for _, image in open_source(str(pair.image)):
            net.process(image, "bgr8")

    def evaluate_frame(pair) -> None:  # evaluate's: the same scorer on a one-frame set
        evaluate([net], FileSet([pair], labelled.layout).frames(decoder), settings)

    steps = {"segment": segment_frame, "evaluate": evaluate_frame}
    for pair in labelled.pairs[:2]:  # warm-up: buffers, index maps, the file cache
        segment_frame(pair)
        evaluate_frame(pair)
    frames = 0
    for round_index in range(rounds):
        for index, pair in enumerate(labelled.pairs):
            order = ("segment", "evaluate") if (index + round_index) % 2 == 0 else ("evaluate", "segment")
            for name in order:
                started = time.perf_counter()
                steps[name](pair)
                spent[name] += time.perf_counter() - started
            frames += 1
    net.backend.close()
    return 1e3 * spent["segment"] / frames, 1e3 * spent["evaluate"] / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", default="1024x512", help="camera frame and label size WxH (default 1024x512)")
    parser.add_argument("--network-size", default="512x256", help="reference network input WxH (default 512x256)")
    parser.add_argument("--at", choices=("net", "label"), default="net")
    options = parser.parse_args()
    width, height = (int(v) for v in options.size.split("x"))
    net_width, net_height = (int(v) for v in options.network_size.split("x"))
    with tempfile.TemporaryDirectory(prefix="segnet-evaluate-benchmark-") as temp:
        root = Path(temp)
        images, labels = write_set(root, options.frames, width, height)
        files = write_reference_model(root / "model", net_width, net_height, 21)
        segment_ms, evaluate_ms = frame_by_frame(images, labels, files, options.at, options.repeat)
        common = ["--model", str(files.onnx), "--backend", "onnxruntime", "--device", "cpu", "--no-progress"]
        segment = ["segment", str(images / "city"), *common]
        evaluate = ["evaluate", str(images), str(labels), *common, "--at", options.at]
        command(segment)  # warm the file cache and the model's first load
        pairs = []
        for _ in range(options.repeat):
            pairs.append((command(segment), command(evaluate)))
    print(f"CPU: {cpu_line()}")
    print(f"{options.frames} frames of {width}x{height} (JPEG) with Cityscapes labelIds (PNG), reference network "
          f"{net_width}x{net_height} (21 classes) on ONNX Runtime fp32; evaluate --at {options.at}; "
          f"{options.repeat} rounds")
    print(f"frame by frame, one process: segment {segment_ms:.1f} ms/frame, evaluate {evaluate_ms:.1f} ms/frame "
          f"(+{evaluate_ms - segment_ms:.1f} ms); evaluate / segment frame rate: {segment_ms / evaluate_ms:.3f}")
    print("the commands, alternating processes:")
    for k, ((seg_fps, seg_wall), (eval_fps, eval_wall)) in enumerate(pairs, 1):
        print(f"  run {k}: segment {seg_fps:6.1f} fps ({seg_wall:.1f} s in all)   evaluate {eval_fps:6.1f} fps "
              f"({eval_wall:.1f} s in all)   ratio {eval_fps / seg_fps:.3f}")
    ratios = [evaluate_fps / segment_fps for (segment_fps, _), (evaluate_fps, _) in pairs]
    median = statistics.median(ratios)
    print(f"  evaluate / segment frame rate: {median:.3f} (median of {len(ratios)} pairs, "
          f"{min(ratios):.3f}-{max(ratios):.3f})")
    robust = segment_ms / evaluate_ms
    print(f"target evaluate / segment >= 0.9: {'met' if robust >= 0.9 else 'NOT met'} ({robust:.3f} frame by frame)")


if __name__ == "__main__":
    main()
