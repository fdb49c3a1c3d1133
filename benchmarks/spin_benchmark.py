"""ONNX Runtime's spinning threads: what they cost and what they give, at a camera's rate and back to back.

ONNX Runtime's intra-op threads spin-wait after each call by default. Our backend turns that off
(``session.intra_op.allow_spinning`` 0). This compares two sessions of the same model, one with
ONNX Runtime's default and one as our backend makes it, taking turns in one run:
- paced at ``--rate`` (a camera): wall time per call, and process CPU time per frame;
- back to back (the bag tool's and ``segnet-ros benchmark``'s case): frames per second.
Run: ``python benchmarks/spin_benchmark.py [--model reference] [--rate 10] [--frames 20] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from segnet_ros.backends.cpu import cpu_info
from segnet_ros.threads import reserve_cores_for_inference

reserve_cores_for_inference()  # as in the node and the CLI

import numpy as np  # noqa: E402

from segnet_ros.backends import BackendOptions, create_backend  # noqa: E402
from segnet_ros.backends.onnxruntime_backend import SPINNING, import_onnxruntime  # noqa: E402
from segnet_ros.core.model import load_model  # noqa: E402
from segnet_ros.selection import select_model  # noqa: E402


def paced(run, tensor: np.ndarray, frames: int, rate: float) -> tuple[float, float]:
    """(median wall ms per call, process CPU ms per frame) at ``rate`` calls per second."""
    run(tensor)
    walls, start, cpu = [], time.perf_counter(), time.process_time()
    for index in range(frames):
        began = time.perf_counter()
        run(tensor)
        walls.append(time.perf_counter() - began)
        time.sleep(max(0.0, start + (index + 1) / rate - time.perf_counter()))
    return statistics.median(walls) * 1e3, (time.process_time() - cpu) * 1e3 / frames


def back_to_back(run, tensor: np.ndarray, frames: int) -> float:
    run(tensor)
    start = time.perf_counter()
    for _ in range(frames):
        run(tensor)
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="reference", help="model name or .onnx path (default reference)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate for the paced runs (default 10 Hz)")
    parser.add_argument("--frames", type=int, default=20, help="calls per measurement (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each kind per session (default 3)")
    args = parser.parse_args()

    model = load_model(select_model(args.model))
    ours = create_backend("onnxruntime", model, BackendOptions(device="cpu"))
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    default = ort.InferenceSession(str(model.files.onnx), sess_options=options, providers=["CPUExecutionProvider"])
    name = default.get_inputs()[0].name
    runs = {"ONNX Runtime's default (spinning)": lambda t: default.run(None, {name: t}),
            "segnet_ros (no spinning)": ours.run}
    tensor = np.random.default_rng(0).normal(size=model.input_shape).astype(np.float32)
    figures: dict[str, dict[str, list[float]]] = {label: {"wall": [], "cpu": [], "fps": []} for label in runs}
    for _ in range(max(1, args.repeat)):
        for label, run in runs.items():
            wall, cpu = paced(run, tensor, args.frames, args.rate)
            figures[label]["wall"].append(wall)
            figures[label]["cpu"].append(cpu)
        for label, run in runs.items():
            figures[label]["fps"].append(back_to_back(run, tensor, args.frames))
    print(f"CPU: {cpu_info().describe()}")
    print(f"model: {model.name} ({model.input_width}x{model.input_height}); {SPINNING}; medians of {args.repeat} "
          f"measurements of {args.frames} calls, the sessions taking turns")
    for label, values in figures.items():
        print(f"{label:<36} at {args.rate:g} Hz: {statistics.median(values['wall']):6.1f} ms per call, "
              f"{statistics.median(values['cpu']):6.1f} ms CPU per frame; back to back "
              f"{statistics.median(values['fps']):5.1f} fps")
    spin, quiet = (figures[label] for label in runs)
    saved = statistics.median(spin["cpu"]) - statistics.median(quiet["cpu"])
    speed = statistics.median(quiet["fps"]) / statistics.median(spin["fps"])
    print(f"no spinning: {saved:.1f} ms less CPU per frame at {args.rate:g} Hz; back to back {speed:.2f}x "
          "the frames per second")


if __name__ == "__main__":
    main()
