"""Output QoS against lost frames: segnet_node at 640x480 and 10 Hz, for several output depths.

For each ``output_depth`` (reliable output), a stand-in camera publishes 640x480 frames at 10 Hz
and this process subscribes to class_mask, confidence and overlay twice: reliable depth 50 and best
effort depth 50 (what Nav2's semantic segmentation layer uses). Printed per depth: the frames the
node processed in the measured window (stamps any subscriber received; /diagnostics' own
frames_processed delta next to it) and, per topic and subscriber, how many of them arrived.
Run: ``python benchmarks/qos_benchmark.py [--depths 1 2 5 10] [--seconds S]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from segnet_ros.backends.cpu import cpu_info
from segnet_ros.demo.harness import Probe, Session, stamp_of

TOPICS = ("class_mask", "confidence", "overlay")
WIDTH, HEIGHT = 640, 480


def diagnostics_processed(probe: Probe) -> list[tuple[float, int]]:
    """(arrival, frames_processed) of each /diagnostics message from segnet_node."""
    out = []
    for arrival, msg in probe.timed("/diagnostics"):
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if "frames_processed" in values:
                out.append((arrival, int(values["frames_processed"])))
    return out


def measure(depth: int, args: argparse.Namespace, logs: Path) -> dict:
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    params = {"model": args.model, "backend": "onnxruntime", "device": "cpu", "threads": args.threads,
              "input_reliability": "reliable", "output_reliability": "reliable", "output_depth": depth,
              "diagnostics_period": 0.5}
    run_logs = logs / f"depth{depth}"
    run_logs.mkdir()
    with Session(run_logs, params, remaps={"image": "/bench/image_raw"}, probe_name="qos_reliable") as session:
        reliable = session.probe
        best_effort = Probe("qos_best_effort")
        try:
            for topic in TOPICS:
                reliable.subscribe(Image, topic, QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE),
                                   raw=True)
                best_effort.subscribe(Image, topic, QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT),
                                      raw=True)
            reliable.subscribe(DiagnosticArray, "/diagnostics")
            time.sleep(2.0)  # discovery
            camera = session.camera(f"--rate={args.rate}", f"--frames={int(args.rate * (args.seconds + 6))}",
                                    f"--width={WIDTH}", f"--height={HEIGHT}", "--topic=/bench/image_raw")
            camera.wait_ready(timeout=60)
            time.sleep(args.warmup)  # not measured
            start = time.time()
            time.sleep(args.seconds)
            end = time.time()
            time.sleep(1.5)  # let frames stamped inside the window arrive
            received = {}
            for name, probe in (("reliable", reliable), ("best_effort", best_effort)):
                for topic in TOPICS:
                    received[name, topic] = {s for s in map(stamp_of, probe.messages(topic)) if start <= s < end}
            diag = diagnostics_processed(reliable)
        finally:
            best_effort.close()
    before = [item for item in diag if item[0] <= start]
    after = [item for item in diag if item[0] >= end]
    diag_delta = None  # the node's frames_processed delta, scaled to the window's length
    if before and after:
        (t0, n0), (t1, n1) = before[-1], after[0]
        diag_delta = round((n1 - n0) * (end - start) / (t1 - t0))
    processed = set().union(*received.values())
    return {"processed": len(processed), "diag": diag_delta, "window": end - start,
            "received": {key: len(stamps) for key, stamps in received.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="reference", help="model name or .onnx path (default reference)")
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured window per depth (default 6)")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate (default 10)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()

    print(f"CPU: {cpu_info().describe()}")
    print(f"model {args.model} on onnxruntime cpu; camera {WIDTH}x{HEIGHT} bgr8 at {args.rate:g} Hz; "
          f"output reliable, subscribers reliable/best-effort depth 50; window {args.seconds:g} s")
    logs = Path(tempfile.mkdtemp(prefix="segnet_qos_benchmark_"))
    header = f"{'depth':>5} {'processed':>9} {'(diag)':>6}  " + "  ".join(
        f"{topic + ' rel / be':>26}" for topic in TOPICS)
    rows = []
    for depth in args.depths:
        result = measure(depth, args, logs)
        total = result["processed"]
        cells = []
        for topic in TOPICS:
            parts = []
            for name in ("reliable", "best_effort"):
                got = result["received"][name, topic]
                parts.append(f"{got:3d} {100 * got / total if total else 0:5.1f}%")
            cells.append(f"{' / '.join(parts):>26}")
        diag = "?" if result["diag"] is None else str(result["diag"])
        rows.append(f"{depth:5d} {total:9d} {diag:>6}  " + "  ".join(cells))
        print(f"  depth {depth} done ({total} frames in {result['window']:.1f} s)", flush=True)
    print(header)
    print("\n".join(rows))
    print(f"logs: {logs}")


if __name__ == "__main__":
    main()
