"""Milliseconds per frame to build the labelled organised cloud (``points``), at 640x480 and 1280x720.

What the node's publishing thread spends per frame with depth on: sampling the depth image,
metres and NaNs, the back-projection, labels and confidence, into a reused message buffer.
Beside it, one plain copy of the cloud's bytes (``np.copyto``), the floor any cloud costs.
Run: ``python benchmarks/pointcloud_benchmark.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from segnet_ros.backends.cpu import cpu_info
from segnet_ros.core.pointcloud import CLOUD_DTYPE, CloudBuilder, Intrinsics


def timed(function, repeat: int) -> float:
    function()  # warm-up: rays and buffers
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        runs.append(time.perf_counter() - start)
    return float(np.median(runs)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    print(f"CPU: {cpu_info().describe()}; median of {args.repeat} runs")
    rng = np.random.default_rng(0)
    for width, height in ((640, 480), (1280, 720)):
        intrinsics = Intrinsics(600.0, 600.0, (width - 1) / 2, (height - 1) / 2, width, height)
        labels = rng.integers(0, 21, (height, width), dtype=np.uint8)
        confidence = rng.integers(0, 256, (height, width), dtype=np.uint8)
        out = np.empty((height, width), CLOUD_DTYPE)
        out_bytes, copy_source = out.view(np.uint8), np.ones(out.nbytes, np.uint8).reshape(out.view(np.uint8).shape)
        builder = CloudBuilder()
        millimetres = rng.integers(0, 8000, (height, width), dtype=np.uint16)
        metres = (millimetres * 0.001).astype(np.float32)
        half = millimetres[::2, ::2].copy()  # a depth image of half the mask's size
        build = partial(builder.build, intrinsics=intrinsics, labels=labels, confidence=confidence, out=out)
        cases = {
            "16UC1, same size": partial(build, millimetres, 0.001),
            "32FC1, same size": partial(build, metres, 1.0),
            "16UC1, half-size depth": partial(build, half, 0.001),
            "copy of the cloud bytes": partial(np.copyto, out_bytes, copy_source),
        }
        megabytes = out.nbytes / 1e6
        for name, case in cases.items():
            print(f"{width}x{height} ({megabytes:.1f} MB cloud)  {name:<26} {timed(case, args.repeat):6.2f} ms")


if __name__ == "__main__":
    main()
