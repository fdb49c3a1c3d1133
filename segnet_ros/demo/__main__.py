"""``make demo``: segnet_node on the CPU, fed by a camera in another process, results on disk.

Usage: ``python -m segnet_ros.demo [INPUT] [--frames N] [--rate HZ] [--output DIR] [--model M]``.
INPUT is an image folder, glob or video; without it, generated street frames are used.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import ModelError
from ..transport import profile_environment
from ..zoo import resolve_network
from .harness import NodeProcess, Probe, Session, stamp_of

# Pretrained models the demo prefers when one is installed, best first.
PREFERRED = ("fcn-resnet18-cityscapes", "fcn-resnet18-deepscene", "fcn-resnet18-voc", "fcn-resnet18-mhp",
             "fcn-resnet18-sun")
REFERENCE = "reference"
SAVED = 4


def pick_model(requested: str | None) -> str:
    if requested:
        return requested
    for name in PREFERRED:
        try:
            resolve_network(name)
        except ModelError:
            continue
        return name
    print("demo: no pretrained model installed ('segnet-ros models download fcn-resnet18-cityscapes' adds "
          "one); using the UNTRAINED reference network: its classes are meaningless, the pictures show the "
          "pipeline, not perception.", flush=True)
    return REFERENCE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="segnet_ros.demo", description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", help="image folder, glob or video (default: generated frames)")
    parser.add_argument("--frames", type=int, default=60, help="frames to publish (default 60)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default 10)")
    parser.add_argument("--output", default="demo_output", help="where pictures and logs go (default demo_output)")
    parser.add_argument("--model", help="model name or .onnx path (default: best installed, else reference)")
    args = parser.parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    model = pick_model(args.model)

    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    # Reliable input: best-effort DDS loses 2.7 MB frames unless net.core.rmem_max is raised (see README).
    params = {"model": model, "backend": "onnxruntime", "device": "cpu", "input_reliability": "reliable"}
    # the large shared-memory segment for both senders of large images: the camera and the node
    transport = profile_environment()
    with Session(output, params, remaps={"image": "/demo/camera/image_raw"}, namespace="/demo",
                 probe_name="demo_viewer", env=transport) as session:
        for topic in ("/demo/overlay", "/demo/color_mask"):
            session.probe.subscribe(Image, topic)
        session.probe.subscribe(DiagnosticArray, "/diagnostics")
        camera = session.camera(*([args.input] if args.input else []), f"--frames={args.frames}",
                                f"--rate={args.rate}", "--topic=/demo/camera/image_raw", env=transport)
        started = time.monotonic()
        while camera.process.poll() is None and time.monotonic() - started < args.frames / args.rate + 60:
            time.sleep(0.2)
        time.sleep(1.0)  # the last frames in flight
        return _report(session.probe, output, session.node)


def _report(probe: Probe, output: Path, node: NodeProcess) -> int:
    timed = probe.timed("/demo/overlay")
    overlays = [msg for _, msg in timed]
    masks = probe.messages("/demo/color_mask")
    if not overlays:
        print(f"demo: no overlay received; see {node.log_path}", file=sys.stderr)
        return 1
    step = max(1, len(overlays) // SAVED)
    for index, msg in enumerate(overlays[::step][:SAVED]):
        _save(output / f"overlay_{index}.png", msg)
    for index, msg in enumerate(masks[::step][:SAVED]):
        _save(output / f"color_mask_{index}.png", msg)
    arrivals = [arrival for arrival, _ in timed]
    latencies = [1e3 * (arrival - stamp_of(msg)) for arrival, msg in timed]
    span = arrivals[-1] - arrivals[0]
    rate = (len(arrivals) - 1) / span if span > 0 else 0.0
    diagnostics = probe.messages("/diagnostics")
    values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values} if diagnostics else {}
    print(f"demo: {len(overlays)} overlays received at {rate:.1f} fps; latency camera->overlay "
          f"median {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms; "
          f"node: {values.get('frames_processed', '?')} processed, {values.get('frames_dropped', '?')} dropped, "
          f"inference {values.get('inference_ms', '?')} ms on {values.get('backend', '?')} "
          f"({values.get('device', '?')})")
    print(f"demo: pictures and logs in {output}/")
    return 0


def _save(path: Path, msg) -> None:
    channels = msg.step // msg.width
    pixels = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, channels)
    cv2.imwrite(str(path), pixels if msg.encoding == "bgr8" else pixels[:, :, ::-1])


if __name__ == "__main__":
    sys.exit(main())
