"""Offline demo: segments generated (or given) frames with ``segnet-ros segment`` on the CPU.

Usage: ``python -m segnet_ros.demo [INPUT] [--frames N] [--output DIR]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

from ..cli.main import main as cli_main
from .scenes import street_frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="segnet_ros.demo", description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", help="image folder, glob or video (default: generated frames)")
    parser.add_argument("--frames", type=int, default=24, help="generated frames (default 24)")
    parser.add_argument("--output", default="demo_output", help="where pictures go (default demo_output)")
    parser.add_argument("--network", default="reference", help="model name (default: the untrained reference)")
    args = parser.parse_args(argv)
    output = Path(args.output)
    source = args.input
    if source is None:
        folder = output / "frames"
        folder.mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(street_frames(args.frames)):
            cv2.imwrite(str(folder / f"frame_{index:04d}.jpg"), frame)
        source = str(folder)
    if args.network.startswith("reference"):
        print("segnet_ros demo: using the UNTRAINED reference network; its classes are meaningless, "
              "the pictures show the pipeline, not perception.", file=sys.stderr)
    status = cli_main(["segment", "--network", args.network, "--backend", "onnxruntime", "--device", "cpu",
                       source, str(output / "segmented")])
    if status == 0:
        print(f"segnet_ros demo: pictures in {output / 'segmented'}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
