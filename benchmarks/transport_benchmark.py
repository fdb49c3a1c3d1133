"""Raw image transport between two Python processes (rclpy over real DDS), per middleware setting.

A publisher process sends ``sensor_msgs/Image`` (1280x720 rgb8 by default) at 10 Hz to a subscriber
process, both reliable with depth 1 (as the demo camera and the node's reliable input). Each case
gives each side its own environment: Fast DDS as it comes, ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA``,
the XML profile ``config/fastdds_large_data.xml`` (shared memory with a large segment), mixed pairs
(one side tuned, the other default), and Cyclone DDS where ``rmw_cyclonedds_cpp`` is installed (it
has no PyPI wheel). Printed per case: messages received, publish -> callback latency (median, p95),
and the CPU time per message of the receiving and the sending process (their own clocks: every
thread, the DDS ones included). rclpy has no loaned-message API, so there is no case for it.
Run: ``python benchmarks/transport_benchmark.py [--messages N] [--cases default,large_data,...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from segnet_ros.backends.cpu import cpu_info
from segnet_ros.transport import TRANSPORT_VARIABLES, profile_environment, profile_path

ROOT = Path(__file__).resolve().parents[1]
PROFILE = profile_path()
TOPIC = "/transport_bench/image"
# Every variable a case may set (TRANSPORT_VARIABLES): each side starts without them, so only the case decides.



DEFAULT: dict[str, str] = {}
LARGE_DATA = {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}
SHM_PROFILE = profile_environment(PROFILE, environ={})
CYCLONE = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}

# name -> (publisher's environment, subscriber's environment)
CASES = {
    "default": (DEFAULT, DEFAULT),
    "large_data": (LARGE_DATA, LARGE_DATA),
    "shm_profile": (SHM_PROFILE, SHM_PROFILE),
    "pub_large_data/sub_default": (LARGE_DATA, DEFAULT),
    "pub_default/sub_large_data": (DEFAULT, LARGE_DATA),
    "pub_shm_profile/sub_default": (SHM_PROFILE, DEFAULT),
    "pub_default/sub_shm_profile": (DEFAULT, SHM_PROFILE),
    "cyclonedds": (CYCLONE, CYCLONE),
}


def transport_environment(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without any transport setting, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if k not in TRANSPORT_VARIABLES}
    env.update(settings)
    return env


def cyclone_installed() -> bool:
    """rmw_implementation loads ``librmw_cyclonedds_cpp.so`` from an ament prefix or this environment."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    return any((Path(p) / "lib" / "librmw_cyclonedds_cpp.so").exists() for p in prefixes)


NETNS_MARK = "SEGNET_BENCH_PRIVATE_NETNS"


def run_in_private_network(argv: list[str]) -> int:
    """Run ``argv`` in a new network namespace holding only loopback (with multicast), so that DDS can
    discover as on a robot (``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET``, multicast) and yet nothing leaves
    this machine. Needs ``unshare -rn`` (unprivileged user namespaces, or root) and ``ip``."""
    setup = ("ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"
             ' && exec "$@"')
    env = {**os.environ, NETNS_MARK: "1"}
    try:
        return subprocess.run(["unshare", "-rn", "sh", "-c", setup, "sh", *argv], env=env).returncode
    except FileNotFoundError:
        print("--discovery-range subnet needs unshare(1) and ip(8)", file=sys.stderr)
        return 1


def apply_discovery_range(discovery_range: str) -> None:
    """After ``private_ros_environment``: SUBNET (a robot's default) only inside the private namespace."""
    if discovery_range == "subnet":
        if os.environ.get(NETNS_MARK) != "1":
            raise RuntimeError("subnet discovery runs only inside run_in_private_network")
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SUBNET"
        os.environ.pop("ROS_LOCALHOST_ONLY", None)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- the two child processes ------------------------------------------------------------------
def _qos():
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


def _stamp_and_index(data: bytes) -> tuple[float, int]:
    """Header stamp and frame_id (our message index) of a serialized Image: after the 4-byte CDR
    encapsulation come stamp.sec (int32), stamp.nanosec (uint32), then frame_id (uint32 length, bytes)."""
    order = "<" if data[1] == 1 else ">"
    sec, nanosec, length = struct.unpack_from(order + "iII", data, 4)
    return sec + nanosec * 1e-9, int(data[16:16 + length - 1])


def run_subscriber(args: argparse.Namespace) -> int:
    """Receive ``warmup + messages`` images; print one JSON line: latencies and CPU per message.
    ``--raw`` keeps the serialized bytes (as a light consumer does), else rclpy builds the message."""
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("transport_bench_sub")
    latencies: dict[int, float] = {}
    cpu_marks: list[float] = []
    total = args.warmup + args.messages

    def receive(msg) -> None:
        now = time.time()
        if args.raw:
            stamp, index = _stamp_and_index(msg)
        else:
            np.frombuffer(msg.data, dtype=np.uint8)  # what a consumer does first: a view of the pixels
            stamp, index = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, int(msg.header.frame_id)
        if index >= args.warmup:
            if not cpu_marks:
                cpu_marks.append(time.process_time())
            latencies[index] = now - stamp
            cpu_marks[1:] = [time.process_time()]

    node.create_subscription(Image, args.topic, receive, _qos(), raw=args.raw)
    print("subscriber: ready", flush=True)
    deadline = time.monotonic() + args.timeout
    while rclpy.ok() and time.monotonic() < deadline and max(latencies, default=-1) < total - 1:
        rclpy.spin_once(node, timeout_sec=0.1)
    received = len(latencies)
    cpu_ms = 1e3 * (cpu_marks[-1] - cpu_marks[0]) / (received - 1) if received > 1 else float("nan")
    print("RESULT " + json.dumps({"latencies_ms": [1e3 * v for v in latencies.values()], "cpu_ms": cpu_ms}),
          flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def run_publisher(args: argparse.Namespace) -> int:
    """Publish ``warmup + messages`` images at ``rate`` once the subscriber matched; print CPU/message."""
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    from segnet_ros.node.conversions import array_to_image

    rclpy.init()
    node = rclpy.create_node("transport_bench_pub")
    publisher = node.create_publisher(Image, args.topic, _qos())
    channels = {"rgb8": 3, "mono8": 1}[args.encoding]
    pixels = np.random.default_rng(0).integers(0, 256, (args.height, args.width, channels), dtype=np.uint8)
    message = array_to_image(None, pixels.squeeze(), args.encoding)
    deadline = time.monotonic() + 10
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the reader's side of discovery settles too
    period = 1.0 / args.rate
    start = time.monotonic()
    cpu_start = None
    for index in range(args.warmup + args.messages):
        if index == args.warmup:
            cpu_start = time.process_time()
        message.header.frame_id = str(index)
        now = time.time()
        message.header.stamp.sec, message.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        publisher.publish(message)
        time.sleep(max(0.0, start + (index + 1) * period - time.monotonic()))
    cpu_ms = 1e3 * (time.process_time() - cpu_start) / args.messages if cpu_start is not None else float("nan")
    time.sleep(1.0)  # reliable: the last messages are still being acknowledged
    print("RESULT " + json.dumps({"cpu_ms": cpu_ms}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# -- the parent: one case = one subscriber and one publisher process ---------------------------
@dataclass
class Result:
    case: str
    sent: int
    latencies_ms: list[float] = field(default_factory=list)
    receiver_cpu_ms: float = float("nan")
    sender_cpu_ms: float = float("nan")
    error: str = ""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_ms, 95) if self.latencies_ms else float("nan")

    def line(self) -> str:
        if self.error:
            return f"{self.case:<30} {self.error}"
        return (f"{self.case:<30} {len(self.latencies_ms):>3}/{self.sent:<3} {self.median_ms:8.1f} {self.p95_ms:8.1f}"
                f" {self.receiver_cpu_ms:10.2f} {self.sender_cpu_ms:10.2f}")


HEADER = f"{'case':<30} {'received':>7} {'median':>8} {'p95':>8} {'rx cpu/msg':>10} {'tx cpu/msg':>10}  (ms)"


def _result_line(text: str) -> dict:
    for line in text.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise ValueError("no result")


def measure(case: str, publisher_env: dict[str, str], subscriber_env: dict[str, str], *, width: int = 1280,
            height: int = 720, encoding: str = "rgb8", messages: int = 30, warmup: int = 5, rate: float = 10.0,
            topic: str = TOPIC, raw: bool = False, keep_heap: bool = False) -> Result:
    """One publisher and one subscriber process with their own transport settings (on the private domain
    this process set up with ``private_ros_environment``); ``raw``: the subscriber takes serialized bytes;
    ``keep_heap``: both keep large buffers in the heap, as segnet_node does (segnet_ros/memory.py)."""
    common = [f"--width={width}", f"--height={height}", f"--encoding={encoding}", f"--messages={messages}",
              f"--warmup={warmup}", f"--rate={rate}", f"--topic={topic}"] + (["--raw"] if raw else [])
    common += ["--keep-heap"] if keep_heap else []
    timeout = (messages + warmup) / rate + 15
    script = str(Path(__file__).resolve())
    subscriber = subprocess.Popen([sys.executable, script, "--role=sub", f"--timeout={timeout}", *common],
                                  env=transport_environment(subscriber_env), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
    try:
        publisher = subprocess.run([sys.executable, script, "--role=pub", *common],
                                   env=transport_environment(publisher_env), capture_output=True, text=True,
                                   timeout=timeout + 30)
        sub_out, _ = subscriber.communicate(timeout=timeout + 30)
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.wait()
    result = Result(case, messages)
    try:
        sub, pub = _result_line(sub_out), _result_line(publisher.stdout)
    except ValueError:
        tail = (sub_out + publisher.stdout + publisher.stderr).strip().splitlines()[-3:]
        result.error = "failed: " + " | ".join(tail)
        return result
    result.latencies_ms, result.receiver_cpu_ms = sub["latencies_ms"], sub["cpu_ms"]
    result.sender_cpu_ms = pub["cpu_ms"]
    if not result.latencies_ms:
        result.error = "received nothing"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("sub", "pub"), help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--topic", default=TOPIC, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--encoding", choices=("rgb8", "mono8"), default="rgb8")
    parser.add_argument("--messages", type=int, default=30, help="measured messages per case (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="messages sent first, not measured (default 5)")
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--raw", action="store_true", help="the subscriber takes serialized bytes (no message built)")
    parser.add_argument("--keep-heap", action="store_true",
                        help="both sides keep large buffers in the heap, as segnet_node does (no page fault per byte)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--discovery-range", choices=("localhost", "subnet"), default="localhost",
                        help="localhost (the tests' setting) or subnet (a robot's default), the latter in a private "
                             "network namespace with only loopback, so nothing leaves the machine")
    args = parser.parse_args()
    if args.role and args.keep_heap:
        sys.path.insert(0, str(ROOT))
        from segnet_ros.memory import keep_large_blocks_in_heap

        keep_large_blocks_in_heap()
    if args.role == "sub":
        sys.exit(run_subscriber(args))
    if args.role == "pub":
        sys.exit(run_publisher(args))
    if args.discovery_range == "subnet" and os.environ.get(NETNS_MARK) != "1":
        sys.exit(run_in_private_network([sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]))

    sys.path.insert(0, str(ROOT))
    from segnet_ros.demo.harness import private_ros_environment

    private_ros_environment()
    apply_discovery_range(args.discovery_range)
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    print(f"{args.width}x{args.height} {args.encoding} at {args.rate:g} Hz, reliable depth 1, "
          f"{'serialized bytes' if args.raw else 'rclpy messages'} received, "
          f"ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE', '-')}, "
          f"{args.messages} messages per case after {args.warmup}; CPU: {cpu_info().describe()}")
    print(HEADER)
    for name in names:
        if CASES[name] == (CYCLONE, CYCLONE) and not cyclone_installed():
            print(f"{name:<30} not installed: rmw_cyclonedds_cpp has no PyPI wheel "
                  "(apt: ros-<distro>-rmw-cyclonedds-cpp)")
            continue
        result = measure(name, *CASES[name], width=args.width, height=args.height, encoding=args.encoding,
                         messages=args.messages, warmup=args.warmup, rate=args.rate, raw=args.raw)
        print(result.line(), flush=True)


if __name__ == "__main__":
    main()
