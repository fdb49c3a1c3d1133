"""Test bags written with rosbags, and reading back what ``segnet-ros bag`` wrote.

A scene: two cameras of different sizes (raw rgb8 at the front, PNG-compressed bgr8 at the rear),
an unrelated topic, stamps that differ from the log (receive) times, and the frames each message
holds, so a test can segment the same frames with the core and compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from oracle import block_image

FRONT, REAR, CHATTER = "/front/image_raw", "/rear/image_raw/compressed", "/chatter"
FRONT_SIZE, REAR_SIZE = (80, 40), (96, 64)  # (width, height): neither is the network's 256x128
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000  # 10 Hz
RECEIVE_DELAY_NS = 3_000_000  # log time = stamp + 3 ms


@dataclass
class Sent:
    """One image message as written: its topic, log time, header and the frame the core receives."""

    topic: str
    log_ns: int
    stamp_ns: int
    frame_id: str
    frame: np.ndarray | None  # None: a frame that is meant to be bad
    encoding: str


@dataclass
class Scene:
    path: Path
    sent: list[Sent] = field(default_factory=list)
    chatter: list[tuple[int, str]] = field(default_factory=list)

    def frames(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]


def store():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def _header(types, stamp_ns: int, frame_id: str):
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)


def image_bytes(ts, stamp_ns: int, frame_id: str, pixels: np.ndarray, encoding: str, pad: int = 0) -> memoryview:
    """A sensor_msgs/Image; ``pad`` extra bytes per row exercise ``step``."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    if pad:
        rows = np.concatenate([rows, np.full((height, pad), 77, np.uint8)], axis=1)
    msg = ts.types["sensor_msgs/msg/Image"](header=_header(ts.types, stamp_ns, frame_id), height=height, width=width,
                                            encoding=encoding, is_bigendian=0, step=rows.shape[1],
                                            data=np.ascontiguousarray(rows).reshape(-1))
    return ts.serialize_cdr(msg, "sensor_msgs/msg/Image")


def compressed_bytes(ts, stamp_ns: int, frame_id: str, payload: bytes, fmt: str = "bgr8; png compressed bgr8"):
    msg = ts.types["sensor_msgs/msg/CompressedImage"](header=_header(ts.types, stamp_ns, frame_id), format=fmt,
                                                      data=np.frombuffer(payload, np.uint8))
    return ts.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage")


def write_scene(path: Path, storage: str = "mcap", front: int = 5, rear: int = 4, bad_front: tuple[int, ...] = (),
                seed: int = 3, version: int = 9) -> Scene:
    """A bag at ``path`` (a folder; ``storage`` mcap or sqlite3) with the two cameras and /chatter.

    Frame i of a camera has stamp START + i x PERIOD (the rear 40 ms later) and log time stamp + 3 ms;
    front frames whose index is in ``bad_front`` carry the unsupported encoding 'yuv444'.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = store()
    rng = np.random.default_rng(seed)
    scene = Scene(path)
    messages = []  # (log_ns, connection key, data)
    for i in range(front):
        stamp = START_NS + i * PERIOD_NS
        rgb = block_image(rng.integers(0, 8, (4, 8)), *FRONT_SIZE).astype(np.uint8)
        bad = i in bad_front
        data = image_bytes(ts, stamp, "front_camera", rgb, "yuv444" if bad else "rgb8", pad=0 if bad else 4)
        scene.sent.append(Sent(FRONT, stamp + RECEIVE_DELAY_NS, stamp, "front_camera", None if bad else rgb, "rgb8"))
        messages.append((stamp + RECEIVE_DELAY_NS, "front", data))
    for i in range(rear):
        stamp = START_NS + i * PERIOD_NS + 40_000_000
        bgr = block_image(rng.integers(0, 8, (4, 8)), *REAR_SIZE)[:, :, ::-1].astype(np.uint8)
        ok, png = cv2.imencode(".png", bgr)
        assert ok
        scene.sent.append(Sent(REAR, stamp + RECEIVE_DELAY_NS, stamp, "rear_camera", bgr, "bgr8"))
        messages.append((stamp + RECEIVE_DELAY_NS, "rear", compressed_bytes(ts, stamp, "rear_camera", png.tobytes())))
    for i in range(3):
        text = f"hello {i}"
        log = START_NS + i * 150_000_000 + 1
        scene.chatter.append((log, text))
        messages.append((log, "chatter", ts.serialize_cdr(ts.types["std_msgs/msg/String"](data=text),
                                                          "std_msgs/msg/String")))
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=version, storage_plugin=plugin) as writer:
        connections = {
            "front": writer.add_connection(FRONT, "sensor_msgs/msg/Image", typestore=ts),
            "rear": writer.add_connection(REAR, "sensor_msgs/msg/CompressedImage", typestore=ts),
            "chatter": writer.add_connection(CHATTER, "std_msgs/msg/String", typestore=ts),
        }
        for log, key, data in sorted(messages, key=lambda m: m[0]):
            writer.write(connections[key], log, data)
    scene.sent.sort(key=lambda s: s.log_ns)
    return scene


def read_bag(path: Path):
    """Every message of a bag: {topic: [(log_ns, message, raw bytes)]}, and {topic: msgtype}.

    Uses the bag tool's type store, so vision_msgs/LabelInfo deserialises too."""
    from rosbags.rosbag2 import Reader

    from segnet_ros.bag.typestore import typestore

    ts = typestore()
    topics: dict[str, list] = {}
    types: dict[str, str] = {}
    with Reader(path) as reader:
        for connection in reader.connections:
            types[connection.topic] = connection.msgtype
            topics.setdefault(connection.topic, [])
        for connection, log, raw in reader.messages():
            topics[connection.topic].append((log, ts.deserialize_cdr(raw, connection.msgtype), bytes(raw)))
    return topics, types


def stamp_ns(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def pixels(msg) -> np.ndarray:
    """(H, W) or (H, W, C) uint8 of an unpadded Image message."""
    channels = msg.step // msg.width
    data = np.asarray(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, channels)
    return data[:, :, 0] if channels == 1 else data
