"""Receiving a 2.7 MB Image costs no page fault per byte once our process keeps large blocks in the heap
(segnet_ros/memory.py, which segnet_node and the bag tool call at start-up). Real rclpy and DDS between
two processes: this file, run as a script, is the subscriber (``sub on|off``) or the camera (``pub``)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import pytest

MESSAGES, SKIPPED = 24, 8  # the first messages warm the heap and DDS up


def camera() -> None:
    import numpy as np
    import rclpy
    from rclpy.duration import Duration
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from segnet_ros.node.conversions import array_to_image

    rclpy.init()
    node = rclpy.create_node("memory_camera")
    reliable = QoSProfile(depth=MESSAGES, reliability=ReliabilityPolicy.RELIABLE)  # none lost if the reader lags
    publisher = node.create_publisher(Image, "memory_test", reliable)
    msg = array_to_image(Header(), np.zeros((720, 1280, 3), np.uint8), "rgb8")
    deadline = time.monotonic() + 20
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    for _ in range(MESSAGES):
        publisher.publish(msg)
        time.sleep(0.05)
    assert publisher.wait_for_all_acked(Duration(seconds=20))


def subscriber(keep: bool) -> None:
    """Prints whether the setting took and the median of the minor page faults between two received
    messages (the median: a one-off growth of the heap or of DDS's history is not a cost per byte)."""
    took = None
    if keep:
        from segnet_ros.memory import keep_large_blocks_in_heap

        took = keep_large_blocks_in_heap()
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("memory_subscriber")
    faults: list[int] = []
    node.create_subscription(Image, "memory_test", lambda _: faults.append(resource.getrusage(
        resource.RUSAGE_SELF).ru_minflt), QoSProfile(depth=MESSAGES, reliability=ReliabilityPolicy.RELIABLE))
    child = subprocess.Popen([sys.executable, __file__, "pub"])
    deadline = time.monotonic() + 40
    while (child.poll() is None or len(faults) < MESSAGES) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    child.kill()
    steps = sorted(b - a for a, b in zip(faults[SKIPPED:-1], faults[SKIPPED + 1:], strict=True))
    print(took, len(faults), steps[len(steps) // 2] if steps else -1)


def run_subscriber(mode: str, **env: str) -> tuple[str, int, float]:
    from segnet_ros.demo.harness import private_ros_environment

    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    result = subprocess.run([sys.executable, __file__, "sub", mode], capture_output=True, text=True, timeout=90,
                            env={**clean, **private_ros_environment(), **env})
    assert result.returncode == 0, result.stdout + result.stderr
    took, count, per_message = result.stdout.split()[-3:]
    return took, int(count), float(per_message)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_received_frame_costs_no_page_fault_per_byte():
    _, count, by_default = run_subscriber("off")
    assert count == MESSAGES
    took, count, kept = run_subscriber("on")
    pages = 1280 * 720 * 3 // 4096
    assert by_default > pages / 2, f"{by_default} faults per message: glibc no longer maps a fresh block?"
    assert took == "True" and count == MESSAGES and kept < pages / 50, (by_default, kept)


def test_the_users_own_malloc_setting_wins():
    result = subprocess.run([sys.executable, "-c", "from segnet_ros.memory import keep_large_blocks_in_heap as k; "
                             "print(k())"], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"})
    assert result.stdout.strip() == "False"


if __name__ == "__main__":
    camera() if sys.argv[1] == "pub" else subscriber(sys.argv[2] == "on")
