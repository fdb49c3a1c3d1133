"""segnet_node with the tuned transport (config/fastdds_large_data.xml) still serves peers that run Fast DDS
as it comes: a camera and a subscriber in another process with no transport settings at all.

The peer is a child process (this file run as a script) whose environment is stripped of every transport
variable, so the test does not depend on how the test process itself was started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segnet_ros.transport import TRANSPORT_VARIABLES, profile_environment

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / "fastdds_large_data.xml"
TUNED = profile_environment(PROFILE, environ={})  # what the launch files and the demo give the node
WIDTH, HEIGHT = 1280, 720  # 2.7 MB rgb8: larger than the default 512 KB shared-memory segment
MASKS_WANTED = 5
PROFILE_SEGMENT = 32 << 20  # segment_size in the profile
SEGMENT_PREFIXES = ("/dev/shm/fastdds_", "/dev/shm/fastrtps_")  # Fast DDS 3, Fast DDS 2


def shm_segments(pid: int | str = "self") -> dict[str, int]:
    """Name -> mapped size of the Fast DDS shared-memory data segments a process has mapped (its own, and
    those of the writers it reads from), not its port queues."""
    sizes: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5].startswith(SEGMENT_PREFIXES) and "port" not in fields[5]:
            start, end = (int(v, 16) for v in fields[0].split("-"))
            name = Path(fields[5]).name
            sizes[name] = sizes.get(name, 0) + end - start
    return sizes


def run_default_peer(timeout: float) -> dict:
    """The peer: publishes frames on ``image`` and collects ``class_mask`` until it has MASKS_WANTED."""
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from segnet_ros.node.conversions import array_to_image

    existing = set(os.listdir("/dev/shm"))  # the node's segments among them
    rclpy.init()
    node = rclpy.create_node("default_peer")
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    publisher = node.create_publisher(Image, "image", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    masks: list[dict] = []

    def keep(msg: Image) -> None:
        data = np.frombuffer(msg.data, np.uint8)
        masks.append({"stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec], "width": msg.width,
                      "height": msg.height, "encoding": msg.encoding, "bytes": int(data.size),
                      "max": int(data.max())})

    node.create_subscription(Image, "class_mask", keep, reliable)
    pixels = np.random.default_rng(3).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    message = array_to_image(None, pixels, "rgb8")
    sent = []
    deadline = time.monotonic() + timeout
    next_frame = 0.0
    while time.monotonic() < deadline and len(masks) < MASKS_WANTED:
        if publisher.get_subscription_count() and time.monotonic() >= next_frame:
            message.header.stamp.sec, message.header.stamp.nanosec = 1000 + len(sent), 0
            publisher.publish(message)
            sent.append([message.header.stamp.sec, 0])
            next_frame = time.monotonic() + 0.1
        rclpy.spin_once(node, timeout_sec=0.02)
    # its own segments: those it created; it maps the node's too, to read what the node wrote there
    own = [size for name, size in shm_segments().items() if name not in existing]
    result = {"sent": sent, "masks": masks, "segments": own}
    node.destroy_node()
    rclpy.try_shutdown()
    return result


pytestmark = pytest.mark.usefixtures("ros_context")


def test_default_peers_exchange_frames_with_a_node_on_the_tuned_transport(start_node, monkeypatch):
    with monkeypatch.context() as patch:  # the node alone gets the profile
        for name, value in TUNED.items():
            patch.setenv(name, value)
        node = start_node({"input_reliability": "reliable"})
    tuned_segments = shm_segments(node.process.pid)
    assert any(size >= PROFILE_SEGMENT for size in tuned_segments.values()), \
        f"the node did not take the profile's {PROFILE_SEGMENT} B segment: {tuned_segments}"

    peer_env = {k: v for k, v in os.environ.items() if k not in TRANSPORT_VARIABLES}
    peer = subprocess.run([sys.executable, __file__, "--peer", "--timeout=20"], env=peer_env, capture_output=True,
                          text=True, timeout=45, cwd=ROOT)
    assert peer.returncode == 0, peer.stdout + peer.stderr
    result = json.loads(peer.stdout.strip().splitlines()[-1])

    assert result["segments"] and max(result["segments"]) < 1 << 20, \
        f"the peer was meant to run Fast DDS's default 512 KB segment: {result['segments']}"
    masks = result["masks"]
    assert len(masks) >= MASKS_WANTED, f"{len(masks)} class_mask of {len(result['sent'])} frames sent\n{node.log()}"
    sent = {tuple(s) for s in result["sent"]}
    for mask in masks:  # camera -> node -> subscriber, both legs between default and tuned participants
        assert tuple(mask["stamp"]) in sent
        assert (mask["width"], mask["height"], mask["encoding"]) == (WIDTH, HEIGHT, "mono8")
        assert mask["bytes"] == WIDTH * HEIGHT and mask["max"] < 21


if __name__ == "__main__":  # the peer process
    if "--peer" in sys.argv:
        seconds = float(next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--timeout=")))
        print(json.dumps(run_default_peer(seconds)), flush=True)
