"""``make demo``: segnet_node on what ``backend auto`` and ``precision auto`` pick here, fed by a camera
in another process, pictures on disk.

Usage: ``python -m segnet_ros.demo [INPUT] [--frames N] [--rate HZ] [--output DIR] [--model M]``.
INPUT is an image folder, glob or video; without it, generated street frames are used. The model
is the node's default (fcn-resnet18-cityscapes) where it is installed, else the built-in, untrained
reference network, so the demo runs offline.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from ..transport import profile_environment
from ..zoo import DEFAULT_NETWORK, installed_or_reference
from .harness import Probe, Session, stamp_of
from .picture import LegendEntry, classes_present, compose

UNTRAINED = re.compile(r"reference(-\d+x\d+)?")  # the built-in network's names
SAVED = 4
PARTS = ("image", "overlay", "color_mask", "class_mask")
UNTRAINED_WARNING = ("UNTRAINED reference network: its classes mean nothing; the picture shows the pipeline, "
                     "not perception ('segnet-ros models download fcn-resnet18-cityscapes' gives a trained one).")


def pick_model(requested: str | None) -> str:
    """``requested``, else the default model (the node's, every command's) where it is installed, else
    the reference network, so that the demo runs offline."""
    if requested:
        return requested
    model = installed_or_reference(DEFAULT_NETWORK)
    if model != DEFAULT_NETWORK:
        print(f"demo: {DEFAULT_NETWORK} is not installed ('segnet-ros models download {DEFAULT_NETWORK}' adds it); "
              "using the UNTRAINED reference network: its classes are meaningless, the pictures show the "
              "pipeline, not perception.", flush=True)
    return model


class Frames:
    """The viewer's side: each frame's camera image and the node's overlay, colour mask and class mask,
    paired by header stamp and kept serialized (decoded only when saved). Of the complete frames, at
    most ``2 * keep`` spread evenly over the run are kept (halved, every other one, when full), so
    :meth:`snapshot` can choose ``keep`` of them from start to end however many came; incomplete ones
    only while they are among the newest few."""

    PENDING = 16

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.every = 1  # keep each every-th complete frame
        self.complete = 0
        self.kept: list[dict[str, bytes]] = []
        self.overlays: list[tuple[float, float]] = []  # (arrival, stamp) of each overlay
        self._pending: dict[float, dict[str, bytes]] = {}
        self._lock = threading.Lock()

    def add(self, part: str, data: bytes) -> None:
        arrival, stamp = time.time(), stamp_of(data)
        with self._lock:
            if part == "overlay":
                self.overlays.append((arrival, stamp))
            entry = self._pending.setdefault(stamp, {})
            entry[part] = bytes(data)
            if len(entry) == len(PARTS):
                del self._pending[stamp]
                if self.complete % self.every == 0:
                    self.kept.append(entry)
                    if len(self.kept) > 2 * self.keep:
                        self.kept, self.every = self.kept[::2], 2 * self.every
                self.complete += 1
            while len(self._pending) > self.PENDING:  # frames the node dropped: their outputs never come
                del self._pending[min(self._pending)]

    def snapshot(self) -> tuple[list[dict[str, bytes]], list[tuple[float, float]]]:
        """``keep`` frames spread from the first to the last, and the overlays' (arrival, stamp) so far,
        as one consistent copy."""
        with self._lock:
            kept, overlays = list(self.kept), list(self.overlays)
        if len(kept) > self.keep:
            kept = [kept[round(i * (len(kept) - 1) / (self.keep - 1))] for i in range(self.keep)]
        return kept, overlays

    def subscribe(self, probe: Probe, topics: dict[str, str]) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for part, topic in topics.items():
            probe.node.create_subscription(Image, topic, lambda data, part=part: self.add(part, data), qos, raw=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="segnet_ros.demo", description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", help="image folder, glob or video (default: generated frames)")
    parser.add_argument("--frames", type=int, default=60, help="frames to publish (default 60)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default 10)")
    parser.add_argument("--output", default="demo_output", help="where pictures and logs go (default demo_output)")
    parser.add_argument("--model", "--network", dest="model",
                        help=f"model name or .onnx path (default {DEFAULT_NETWORK} where installed, else reference)")
    parser.add_argument("--panel-width", type=int, default=640,
                        help="width of each of the picture's three panels (default 640; frames are never enlarged)")
    args = parser.parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    model = pick_model(args.model)

    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    # Every setting the node's default (backend, precision, pipeline, the input QoS that follows the camera's
    # reliability), so the demo shows what a user gets here.
    params = {"model": model}
    # the large shared-memory segment for both senders of large images: the camera and the node
    transport = profile_environment()
    frames = Frames(keep=SAVED)
    try:
        session = Session(output, params, remaps={"image": "/demo/camera/image_raw"}, namespace="/demo",
                          probe_name="demo_viewer", env=transport).__enter__()
    except RuntimeError as exc:
        print(f"demo: segnet_node did not start: {str(exc).strip()}", file=sys.stderr)
        return 1
    try:
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        session.probe.subscribe(String, "/demo/class_labels", qos=latched)
        session.probe.subscribe(DiagnosticArray, "/diagnostics")
        frames.subscribe(session.probe, {"image": "/demo/camera/image_raw", "overlay": "/demo/overlay",
                                         "color_mask": "/demo/color_mask", "class_mask": "/demo/class_mask"})
        # the node drops frames whose outputs nobody takes: start the camera once it sees the viewer
        outputs = ("/demo/overlay", "/demo/color_mask", "/demo/class_mask")
        with contextlib.suppress(TimeoutError):
            session.probe.wait_for(lambda: all(session.probe.node.count_publishers(t) for t in outputs), timeout=10,
                                   what="the node's outputs")
        camera = session.camera(*([args.input] if args.input else []), f"--frames={args.frames}",
                                f"--rate={args.rate}", "--topic=/demo/camera/image_raw",
                                "--subscribers=2", env=transport)  # the node and this viewer
        started = time.monotonic()
        while camera.process.poll() is None and time.monotonic() - started < args.frames / args.rate + 60:
            time.sleep(0.2)
        time.sleep(1.0)  # the last frames in flight
        with contextlib.suppress(TimeoutError):  # the backend and precision come in /diagnostics, once a second
            session.probe.wait_for(lambda: session.probe.messages("/diagnostics"), timeout=5, what="/diagnostics")
        return _report(session, frames, output, args.panel_width)
    finally:
        session.__exit__(None, None, None)


def _status_values(diagnostics: list, key: str) -> dict[str, str]:
    """The values of the newest diagnostic status that has ``key``."""
    for array in reversed(diagnostics):
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            if key in values:
                return values
    return {}


def _report(session: Session, frames: Frames, output: Path, panel_width: int) -> int:
    probe, node = session.probe, session.node
    chosen, overlays = frames.snapshot()
    if not overlays:
        print(f"demo: no overlay received; see {node.log_path}", file=sys.stderr)
        return 1
    diagnostics = probe.messages("/diagnostics")
    camera, model = _status_values(diagnostics, "frames_processed"), _status_values(diagnostics, "precision")
    labels = probe.messages("/demo/class_labels")
    table = yaml.safe_load(labels[-1].data) if labels else {"model": "?", "classes": []}
    names = [row["name"] for row in table["classes"]]
    rgb = [row["rgba"][:3] for row in table["classes"]]
    model_name = model.get("model") or table.get("model", "?")
    ran = f"{model.get('backend', '?')} {model.get('precision', '?')} on the {model.get('device', '?').upper()}"
    untrained = bool(UNTRAINED.fullmatch(model_name))

    arrivals = [arrival for arrival, _ in overlays]
    latencies = [1e3 * (arrival - stamp) for arrival, stamp in overlays]
    span = arrivals[-1] - arrivals[0]
    rate = (len(arrivals) - 1) / span if span > 0 else 0.0
    print(f"demo: segnet_node ran {model_name} with {ran}: what backend auto and precision auto pick here")
    print(f"demo: {len(overlays)} overlays received at {rate:.1f} fps; latency camera->overlay "
          f"median {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms; "
          f"node: {camera.get('frames_processed', '?')} processed, {camera.get('frames_dropped', '?')} dropped, "
          + (f"{camera['frames_lost']} lost in transport, " if "frames_lost" in camera else "")
          + f"inference {camera.get('inference_ms', '?')} ms")
    lines = [f"segnet_node: {model_name} with {ran} (backend auto, precision auto)"]
    for stale in [*output.glob("frame_*.png"), *output.glob("class_mask_*.png")]:  # an earlier run's
        if re.fullmatch(r"(frame|class_mask)_\d+\.png", stale.name):
            stale.unlink()
    for index, parts in enumerate(chosen):
        image, overlay, color_mask, class_mask = (_pixels(parts[part]) for part in PARTS)
        legend = classes_present(class_mask, names, rgb)
        picture = compose(image, overlay, color_mask, legend, lines, UNTRAINED_WARNING if untrained else "",
                          panel_width=panel_width)
        cv2.imwrite(str(output / f"frame_{index}.png"), picture)
        cv2.imwrite(str(output / f"class_mask_{index}.png"), class_mask)
        print(f"demo: frame_{index}.png: {_legend_text(legend)}")
    print(f"demo: pictures and logs in {output}/ (frame_N.png: camera frame, overlay and colour mask with the "
          "classes present; class_mask_N.png: the class ids, as a robot gets them)")
    return 0


def _legend_text(legend: list[LegendEntry]) -> str:
    return ", ".join(entry.label for entry in legend)


def _pixels(data: bytes) -> np.ndarray:
    """A serialized sensor_msgs/Image (rgb8, bgr8 or mono8) as BGR or mono8 pixels."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    msg = deserialize_message(data, Image)
    channels = msg.step // msg.width
    pixels = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :msg.width * channels]
    pixels = pixels.reshape(msg.height, msg.width, channels)
    if channels == 1:
        return pixels[:, :, 0].copy()
    return pixels.copy() if msg.encoding == "bgr8" else np.ascontiguousarray(pixels[:, :, ::-1])


if __name__ == "__main__":
    sys.exit(main())
