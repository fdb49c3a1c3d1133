"""Three cameras, one model: one segnet_node with ``cameras:=[a, b, c]`` against three single-camera nodes.

Three stand-in cameras publish 1280x720 bgr8 at 10 Hz each; this process subscribes to every
camera's class_mask (serialized bytes only, so it stays light). Printed per configuration, all in one
run: aggregate and per-camera processed fps (fairness: the spread between cameras), camera-stamp ->
class_mask latency (median, p95), and the resident memory (RSS) of the node processes together.
Run: ``python benchmarks/multicamera_benchmark.py [--model M] [--seconds S]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from segnet_ros.backends.cpu import cpu_info
from segnet_ros.demo.harness import NodeProcess, Probe, private_ros_environment, stamp_of

CAMERAS = ("a", "b", "c")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bare_batching(model_spec: str, threads: int, repeat: int = 20) -> tuple[float, float]:
    """The backend alone: median ms of 3 single-frame calls, and of one call on a batch of 3."""
    from segnet_ros.backends import BackendOptions, create_backend
    from segnet_ros.core.model import load_model
    from segnet_ros.selection import select_model

    model = load_model(select_model(model_spec))
    backend = create_backend("onnxruntime", model, BackendOptions(device="cpu", threads=threads, max_batch=3))
    batch = np.random.default_rng(0).standard_normal((3, 3, model.input_height, model.input_width), np.float32)

    def median_ms(call) -> float:
        call()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return 1e3 * statistics.median(times)

    singles = median_ms(lambda: [backend.run(batch[i:i + 1]) for i in range(3)])
    batched = median_ms(lambda: backend.run(batch))
    backend.close()
    return singles, batched


def run(name: str, nodes: list[tuple[dict, str]], args, logs: Path, probe: Probe, run_index: int) -> dict:
    """Start ``nodes`` ((params, namespace) each) and the cameras; measure for ``args.seconds``."""
    processes = []
    try:
        for i, (params, namespace) in enumerate(nodes):
            processes.append(NodeProcess(logs / f"{run_index}-{name}-node{i}.log", params, namespace=namespace))
        for process in processes:
            process.wait_ready(timeout=120)
        frames = int(args.rate * (args.seconds + args.warmup + 5))
        cameras = [NodeProcess(logs / f"{run_index}-{name}-camera-{c}.log", {}, module="segnet_ros.demo.camera",
                               ready_text="camera: ", arguments=(f"--rate={args.rate}", f"--frames={frames}",
                                                                 f"--topic=/{c}/image", f"--frame-id={c}"))
                   for c in CAMERAS]
        processes += cameras
        for camera in cameras:
            camera.wait_ready(timeout=60)
        time.sleep(args.warmup)
        counts = {c: len(probe.messages(f"/{c}/class_mask")) for c in CAMERAS}
        start = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - start
        ends = {c: len(probe.messages(f"/{c}/class_mask")) for c in CAMERAS}
        memory = sum(rss_mb(p.process.pid) for p in processes[:len(nodes)])
    finally:
        for process in reversed(processes):
            process.stop()
    fps, latencies = {}, []
    for c in CAMERAS:
        topic = f"/{c}/class_mask"
        window = probe.timed(topic)[counts[c]:ends[c]]
        fps[c] = len(window) / elapsed
        latencies += [arrival - stamp_of(msg) for arrival, msg in window]
    return {"name": name, "fps": fps, "total": sum(fps.values()), "rss": memory,
            "median": 1e3 * statistics.median(latencies) if latencies else float("nan"),
            "p95": 1e3 * float(np.percentile(latencies, 95)) if latencies else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="reference")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    singles, batched = bare_batching(args.model, args.threads)
    private_ros_environment()
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    probe = Probe("multicamera_probe")
    for c in CAMERAS:
        probe.subscribe(Image, f"/{c}/class_mask", raw=True)
    logs = Path(tempfile.mkdtemp(prefix="segnet_multicamera_"))
    base = {"model": args.model, "backend": "onnxruntime", "device": "cpu", "threads": args.threads,
            "input_reliability": "reliable"}
    configurations = [
        ("one node, 3 cameras", [({**base, "cameras": list(CAMERAS)}, "")]),
        ("three nodes", [(dict(base), f"/{c}") for c in CAMERAS]),
        ("one node, batching", [({**base, "cameras": list(CAMERAS), "batching": "always"}, "")]),
    ]
    results = []
    try:
        for i, (name, nodes) in enumerate(configurations):
            for c in CAMERAS:  # each configuration is measured on its own messages
                probe.clear(f"/{c}/class_mask")
            results.append(run(name, nodes, args, logs, probe, i))
    finally:
        probe.close()
        rclpy.try_shutdown()
    print(f"CPU: {cpu_info().describe()}")
    print(f"model {args.model} on onnxruntime (cpu); 3 cameras at 1280x720 bgr8, {args.rate:g} Hz each; "
          f"every class_mask subscribed; {args.seconds:g} s measured per configuration")
    print(f"{'configuration':22} {'total fps':>9} {'per camera fps':>20} {'spread':>7} {'median':>8} {'p95':>8} "
          f"{'RSS MB':>8}")
    for r in results:
        per = r["fps"].values()
        spread = (max(per) - min(per)) / max(per) if max(per) > 0 else float("nan")
        print(f"{r['name']:22} {r['total']:9.1f} {' / '.join(f'{v:.1f}' for v in per):>20} {spread:7.0%} "
              f"{r['median']:6.0f}ms {r['p95']:6.0f}ms {r['rss']:8.0f}")
    one, three = results[0], results[1]
    print(f"one node / three nodes: throughput {one['total'] / three['total']:.2f}x (target >= 1), "
          f"RSS {one['rss'] / three['rss']:.2f}x (target <= 0.5)")
    print(f"batching on the CPU: {results[2]['total'] / one['total']:.2f}x the throughput of one camera per call "
          f"in the node; the backend alone: 3 frames in {singles:.1f} ms one by one, {batched:.1f} ms as one batch "
          f"({singles / batched:.2f}x)")
    print(f"logs: {logs}")


if __name__ == "__main__":
    main()
