"""ONNX Runtime FP32 against INT8 (QDQ, with and without reduce_range), side by side in one run.

The model (default: the reference network at 512x256) is quantised on the demo's street frames and
judged on other street frames, each INT8 model is installed in a private cache and run through the
real backend (``precision int8``), and the three backends are timed in turns (warm-up excluded) so
a busy machine slows them alike. Printed: the CPU's relevant flags, median, p95 and minimum per
frame (the minimum is the least disturbed figure on a shared machine), the speed-up over FP32 and
the agreement of the class grids with FP32 (the reference network's weights are untrained, so its
agreement is a lower bound for trained models).
Run: ``python benchmarks/quantize_benchmark.py [--model M] [--threads 2] [--repeat 30]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="reference", help="model name or .onnx path (default reference, 512x256)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per backend (default 30)")
    parser.add_argument("--calibration", type=int, default=32, help="street frames to calibrate on (default 32)")
    parser.add_argument("--held-out", type=int, default=12, help="other street frames to judge with (default 12)")
    args = parser.parse_args()
    os.environ["SEGNET_ROS_CACHE"] = tempfile.mkdtemp(prefix="segnet-quantize-benchmark-")  # never the user's cache

    from segnet_ros.backends import BackendOptions, create_backend
    from segnet_ros.backends.cpu import cpu_info
    from segnet_ros.backends.qdq import install_qdq_model
    from segnet_ros.core.classify import classify
    from segnet_ros.core.model import load_model
    from segnet_ros.core.preprocess import Preprocessor
    from segnet_ros.demo.scenes import street_frame
    from segnet_ros.quantize import FrameSet, compare
    from segnet_ros.quantize.quantizer import qdq_key, quantize_to_bytes, tool_versions
    from segnet_ros.selection import select_model

    model = load_model(select_model(args.model))
    preprocessor = Preprocessor(model.input_width, model.input_height)

    def tensors(indices) -> tuple[np.ndarray, ...]:
        return tuple(preprocessor(street_frame(i), "bgr8").copy() for i in indices)

    calibration = tensors(range(0, 2 * args.calibration, 2))  # even frames calibrate, odd ones judge
    held_out = tensors(range(1, 2 * args.held_out, 2))
    frames = FrameSet(calibration, held_out)
    cpu = cpu_info()
    ort_version, onnx_version = tool_versions()
    print(f"CPU: {cpu.describe()}")
    print(f"model: {model.name} {model.input_width}x{model.input_height}, ONNX Runtime {ort_version}, "
          f"onnx {onnx_version}, {args.threads} threads; {len(calibration)} calibration + {len(held_out)} held-out "
          "street frames")

    options = BackendOptions(device="cpu", threads=args.threads)
    backends = {"fp32": create_backend("onnxruntime", model, options)}
    for reduce_range in (False, True):
        started = time.perf_counter()
        data = quantize_to_bytes(model, frames, reduce_range)
        label = f"int8 reduce_range {'on' if reduce_range else 'off'}"
        install_qdq_model(qdq_key(model, frames, reduce_range), model.name, data, {"benchmark": True})
        backends[label] = create_backend("onnxruntime", model, BackendOptions(device="cpu", threads=args.threads,
                                                                               precision="int8"))
        print(f"quantised ({label}) in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    ignore_id = model.classes.index_of("void")  # as segment and the node run it by default
    grids = {name: [classify(b.run(t), ignore_id)[0] for t in held_out] for name, b in backends.items()}
    tensor = held_out[0]
    for backend in backends.values():  # warm-up
        for _ in range(3):
            backend.run(tensor)
    times: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(args.repeat):
        for name, backend in backends.items():
            start = time.perf_counter()
            backend.run(tensor)
            times[name].append(1e3 * (time.perf_counter() - start))
    fp32_median = statistics.median(times["fp32"])
    fp32_min = min(times["fp32"])
    print(f"{'backend / precision':<34} {'median ms':>9} {'p95 ms':>8} {'min ms':>8} {'vs fp32':>8} "
          f"{'(by min)':>8} {'agreement':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        p95 = float(np.percentile(values, 95))
        agreement = compare(grids["fp32"], grids[name], model.num_classes).percent
        print(f"{'onnxruntime ' + name:<34} {median:9.2f} {p95:8.2f} {min(values):8.2f} {fp32_median / median:7.2f}x "
              f"{fp32_min / min(values):7.2f}x {agreement:9.2f}%")


if __name__ == "__main__":
    main()
