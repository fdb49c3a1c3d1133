"""segnet_node end to end at 1280x720 with every output subscribed, next to the bare backend.

A camera process publishes faster than the node can segment; this process subscribes to all
outputs. Printed: the backend's bare ``run`` time for the same model, the node's throughput
(frames whose five outputs all arrived) and camera-to-output latency, and their ratio.
Run: ``make benchmark`` or ``python benchmarks/node_benchmark.py [--model M] [--seconds S]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from segnet_ros.backends import BackendOptions, create_backend
from segnet_ros.core.model import load_model
from segnet_ros.core.preprocess import Preprocessor
from segnet_ros.demo.harness import Session, stamp_of
from segnet_ros.demo.scenes import street_frame
from segnet_ros.selection import select_model

OUTPUTS = ("class_mask", "color_mask", "overlay", "confidence")


def bare_backend_ms(model_spec: str, device: str, threads: int, repeat: int) -> tuple[float, str]:
    model = load_model(select_model(model_spec))
    backend = create_backend("onnxruntime", model, BackendOptions(device=device, threads=threads))
    tensor = Preprocessor(model.input_width, model.input_height)(street_frame(0), "bgr8").copy()
    backend.run(tensor)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        backend.run(tensor)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), backend.describe()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="reference", help="model name or .onnx path (default reference)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate, above the node's (default 30)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()

    bare_ms, described = bare_backend_ms(args.model, args.device, args.threads, repeat=30)
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from std_msgs.msg import UInt32MultiArray

    logs = Path(tempfile.mkdtemp(prefix="segnet_node_benchmark_"))
    params = {"model": args.model, "backend": "onnxruntime", "device": args.device, "threads": args.threads,
              "input_reliability": "reliable"}  # see README: best effort needs a larger rmem_max for 2.7 MB frames
    with Session(logs, params, remaps={"image": "/bench/image_raw"}, probe_name="benchmark_probe") as session:
        probe = session.probe
        for topic in OUTPUTS:
            probe.subscribe(Image, topic, raw=True)  # no deserialization: the probe must stay light
        probe.subscribe(UInt32MultiArray, "class_histogram")
        probe.subscribe(DiagnosticArray, "/diagnostics")
        time.sleep(2.0)  # discovery
        camera = session.camera(f"--rate={args.rate}", f"--frames={int(args.rate * (args.seconds + 3))}",
                                "--topic=/bench/image_raw")
        camera.wait_ready(timeout=60)
        time.sleep(3.0)  # warm-up, not measured
        start_count = len(probe.messages("class_mask"))
        start = time.monotonic()
        time.sleep(args.seconds)
        window = probe.messages("class_mask")[start_count:]
        elapsed = time.monotonic() - start

    received = {topic: {stamp_of(m) for m in probe.messages(topic)} for topic in OUTPUTS}
    complete = {stamp_of(m) for m in window}.intersection(*received.values())
    latencies = []
    for topic in OUTPUTS:
        for arrival, msg in zip(probe.arrival[topic], probe.messages(topic), strict=True):
            stamp = stamp_of(msg)
            if stamp in complete:
                latencies.append((stamp, arrival - stamp))
    last_output = {}
    for stamp, latency in latencies:
        last_output[stamp] = max(latency, last_output.get(stamp, 0.0))
    node_fps = len(complete) / elapsed
    bare_fps = 1e3 / bare_ms
    worst = sorted(last_output.values())
    print(f"model {args.model} on {described}; camera 1280x720 bgr8 at {args.rate:g} Hz; all outputs subscribed")
    print(f"bare backend run:        {bare_ms:7.1f} ms  ({bare_fps:.1f} fps)")
    print(f"node throughput:         {node_fps:7.1f} fps ({len(complete)} complete frames in {elapsed:.1f} s)")
    print(f"node / bare backend:     {node_fps / bare_fps:7.2f}x")
    if worst:
        print(f"camera -> last output:   median {1e3 * statistics.median(worst):.0f} ms, "
              f"p95 {1e3 * float(np.percentile(worst, 95)):.0f} ms")
    diagnostics = probe.messages("/diagnostics")
    if diagnostics:
        values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
        print(f"node's own view:         inference {values['inference_ms']} ms, "
              f"{values['processed_rate_hz']} fps processed of {values['input_rate_hz']} fps received, "
              f"{values['frames_dropped']} dropped")
    print(f"logs: {logs}")


if __name__ == "__main__":
    main()
