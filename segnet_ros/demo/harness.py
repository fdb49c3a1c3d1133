"""Real ROS 2 plumbing for the demo, the benchmarks and the tests: ``segnet_node`` in a child
process, and a probe node in this process that publishes frames and collects outputs.

Runs use a private DDS domain limited to this machine, so a demo never meets a real robot's topics.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


@functools.lru_cache(maxsize=1)
def _rclpy_major() -> int | None:
    """The installed rclpy's major version, read without importing it (once per process)."""
    candidates = [Path(p) / "share" / "rclpy" / "package.xml"
                  for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    try:
        spec = importlib.util.find_spec("rclpy")  # finds the package, does not run it
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        # <prefix>/lib/pythonX.Y/site-packages/rclpy/__init__.py, or /opt/ros/<distro>/local/lib/
        # pythonX.Y/dist-packages/rclpy/__init__.py: the prefix holds share/rclpy/package.xml.
        candidates[:0] = [p / "share" / "rclpy" / "package.xml" for p in Path(spec.origin).parents[3:6]]
    for path in candidates:
        try:
            match = re.search(r"<version>\s*(\d+)\.", path.read_text())
        except OSError:
            continue
        if match:
            return int(match.group(1))
    for distribution in ("ros-rclpy", "rclpy"):
        try:
            return int(importlib.metadata.version(distribution).split(".")[0])
        except (importlib.metadata.PackageNotFoundError, ValueError):
            continue
    return None


_domain_lock: int | None = None  # held while this process lives: no other run on this machine takes its domain


def _reserve_domain() -> int:
    """A DDS domain (1..100) that no other run on this machine holds, by an flock per domain in the
    temp folder: a ``make test`` beside a ``make test-jazzy`` never hears the other's topics. Where
    nothing can be locked, a random one, as likely as any to be free."""
    global _domain_lock
    start = random.Random(os.getpid() ^ time.time_ns()).randint(1, 100)
    try:
        import fcntl
    except ImportError:  # not POSIX
        return start
    for offset in range(100):
        domain = (start - 1 + offset) % 100 + 1
        try:
            fd = os.open(Path(tempfile.gettempdir()) / f"segnet_ros_domain_{domain}.lock", os.O_WRONLY | os.O_CREAT)
        except OSError:  # another user's file, or no temp folder to write in
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another run holds it
            os.close(fd)
            continue
        _domain_lock = fd  # not inherited (os.open's default): children share the domain, not the lock
        return domain
    return start


def private_ros_environment() -> dict[str, str]:
    """Call before rclpy.init: one DDS domain per process that no other run here holds (children
    inherit it), loopback only.

    Loopback-only discovery is ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST from Iron (rclpy 4) on and
    ROS_LOCALHOST_ONLY=1 on Humble, which has no discovery range; the old variable makes Jazzy's rcl
    print deprecation warnings into every node's log. The installed rclpy's version is read from its
    package.xml (or its wheel's metadata) without importing it; if it cannot be read, both are set.
    """
    if "SEGNET_PRIVATE_DOMAIN" not in os.environ:
        os.environ["SEGNET_PRIVATE_DOMAIN"] = str(_reserve_domain())
    env = {"ROS_DOMAIN_ID": os.environ["SEGNET_PRIVATE_DOMAIN"], "PYTHONUNBUFFERED": "1"}
    major = _rclpy_major()
    if major is None or major < 4:  # Humble (rclpy 3.x) and older
        env["ROS_LOCALHOST_ONLY"] = "1"
    if major is None or major >= 4:  # Iron, Jazzy, Kilted, Rolling
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        if major is not None:
            os.environ.pop("ROS_LOCALHOST_ONLY", None)
    os.environ.update(env)
    return env


class NodeProcess:
    """A ROS node in a child process (``segnet_node`` unless ``module`` names another), with
    parameters and remappings given as on a ``ros2 run`` command line."""

    def __init__(self, log_path: Path, params: dict, remaps: dict | None = None, namespace: str = "",
                 module: str = "segnet_ros.node.main", ready_text: str = "segmenting ",
                 arguments: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        args = [sys.executable, "-m", module, *arguments, "--ros-args"]
        for key, value in params.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["-p", f"{key}:={text}"]
        for old, new in (remaps or {}).items():
            args += ["-r", f"{old}:={new}"]
        if namespace:
            args += ["-r", f"__ns:={namespace}"]
        self.log_path = log_path
        self.ready_text = ready_text
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **private_ros_environment(), **(env or {})})

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_text in self.log():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.log_path.stem} exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.log_path.stem} not ready after {timeout} s:\n{self.log()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


class Probe:
    """A node in the test process that publishes inputs and collects outputs."""

    def __init__(self, name: str = "probe") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._received: dict[str, list[tuple[float, object]]] = {}  # (arrival time, message), in order
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    def _spin(self) -> None:
        while self._running:
            self.executor.spin_once(timeout_sec=0.05)

    def subscribe(self, msg_type, topic: str, qos=None, raw: bool = False) -> None:
        """Collect ``topic``; ``raw`` keeps the serialized bytes (cheap for big images)."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        qos = qos or QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._received[topic] = []

        def keep(msg, topic=topic):
            arrival = time.time()
            with self._lock:
                self._received[topic].append((arrival, msg))

        self.node.create_subscription(msg_type, topic, keep, qos, raw=raw)

    def publisher(self, msg_type, topic: str, qos=None):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        return self.node.create_publisher(msg_type, topic, qos or QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE))

    def messages(self, topic: str) -> list:
        with self._lock:
            return [msg for _, msg in self._received[topic]]

    def timed(self, topic: str) -> list[tuple[float, object]]:
        """(arrival time, message) of each message so far: one snapshot, so the two always pair up."""
        with self._lock:
            return list(self._received[topic])

    def clear(self, topic: str) -> None:
        with self._lock:
            self._received[topic].clear()

    def wait_for(self, predicate, timeout: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")

    def wait_matched(self, publisher, count: int = 1, timeout: float = 20.0) -> None:
        self.wait_for(lambda: publisher.get_subscription_count() >= count, timeout, "subscription match")

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=5)
        self.executor.remove_node(self.node)
        self.node.destroy_node()


def stamp_of(message) -> float:
    """Header stamp in seconds, of a message or of its serialized (CDR) bytes: after the 4-byte
    encapsulation header a Header starts with stamp.sec (int32) and stamp.nanosec (uint32)."""
    if isinstance(message, bytes | bytearray):
        sec, nanosec = struct.unpack_from("<iI" if message[1] == 1 else ">iI", message, 4)
    else:
        sec, nanosec = message.header.stamp.sec, message.header.stamp.nanosec
    return sec + nanosec * 1e-9


class Session:
    """segnet_node, a probe in this process and any stand-in cameras, all stopped on exit::

        with Session(log_dir, {"model": "reference"}) as session:
            session.probe.subscribe(Image, "overlay")
            session.camera("--rate=10", "--frames=50")
    """

    def __init__(self, log_dir: Path, params: dict, remaps: dict | None = None, namespace: str = "",
                 probe_name: str = "probe", env: dict[str, str] | None = None) -> None:
        self.log_dir, self.params, self.remaps, self.namespace = log_dir, params, remaps, namespace
        self.probe_name, self.env = probe_name, env  # env: extra variables of the node's process
        self._processes: list[NodeProcess] = []

    def __enter__(self) -> Session:
        private_ros_environment()
        import rclpy

        self.node = NodeProcess(self.log_dir / "segnet_node.log", self.params, self.remaps, self.namespace,
                                env=self.env)
        self._processes.append(self.node)
        rclpy.init()
        self.probe = Probe(self.probe_name)
        try:
            self.node.wait_ready(timeout=120)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def camera(self, *arguments: str, env: dict[str, str] | None = None) -> NodeProcess:
        """Start ``segnet_ros.demo.camera`` with ``arguments`` (and ``env`` added to its environment);
        it is stopped with the session."""
        camera = NodeProcess(self.log_dir / "camera.log", {}, module="segnet_ros.demo.camera",
                             ready_text="camera: ", arguments=arguments, env=env)
        self._processes.append(camera)
        return camera

    def __exit__(self, *exc) -> None:
        import rclpy

        for process in reversed(self._processes):
            process.stop()
        self.probe.close()
        rclpy.try_shutdown()
