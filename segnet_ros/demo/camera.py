"""A stand-in camera: publishes frames as ``sensor_msgs/Image`` (bgr8) at a fixed rate.

``python -m segnet_ros.demo.camera [INPUT] --rate 10 --frames 100 --topic /camera/image_raw``
INPUT is an image folder, glob or video (the CLI's sources); without it, generated street frames.
It starts once ``--subscribers`` subscriptions (default 1) have matched, or after 30 s.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ..cli.media import open_source
from ..node.conversions import array_to_image
from .scenes import street_frames


def frames(source: str | None, count: int, width: int, height: int):
    if source is None:
        return street_frames(count, width, height)
    return itertools.islice(itertools.cycle([image for _, image in open_source(source)]), count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="segnet_ros.demo.camera", description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?")
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--topic", default="/camera/image_raw")
    parser.add_argument("--frame-id", default="camera")
    parser.add_argument("--subscribers", type=int, default=1, help="subscriptions to wait for before the first frame")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = rclpy.create_node("demo_camera")
    publisher = node.create_publisher(Image, args.topic, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    images = list(frames(args.input, args.frames, args.width, args.height))
    deadline = time.monotonic() + 30
    while publisher.get_subscription_count() < args.subscribers and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"camera: publishing {len(images)} frames at {args.rate:g} Hz on {args.topic}", flush=True)
    period, start = 1.0 / args.rate, time.monotonic()
    for index, image in enumerate(images):
        msg = array_to_image(None, image, "bgr8")
        msg.header.frame_id = args.frame_id
        msg.header.stamp = node.get_clock().now().to_msg()
        publisher.publish(msg)
        time.sleep(max(0.0, start + (index + 1) * period - time.monotonic()))
    print("camera: done", flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
