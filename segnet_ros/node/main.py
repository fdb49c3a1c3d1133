"""``segnet_node`` and ``segnet_lifecycle_node``:
``ros2 run segnet_ros segnet_node --ros-args -r image:=/camera/image_raw``."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading

STOP_GRACE_S = 10.0  # after a stop signal, the most the node may take to be gone


def _exit_now() -> None:
    """A stop that has not finished in :data:`STOP_GRACE_S` (a library stuck in its teardown, an
    interrupt swallowed mid start-up): say where every thread is, and leave as asked."""
    print(f"segnet_node: still running {STOP_GRACE_S:g} s after the stop signal; exiting. Where each thread was:",
          file=sys.stderr, flush=True)
    faulthandler.dump_traceback(all_threads=True)
    sys.stdout.flush()
    os._exit(0)


def _run(node_class: str, argv: list[str] | None) -> int:
    """Spin one node until Ctrl-C or SIGTERM; either, even during start-up, exits quietly with 0.

    rclpy's own signal handler would shut the context down while a worker is mid-frame; ours
    turns both signals into KeyboardInterrupt, so the workers stop before the context goes.
    The first signal also starts a timer: a stop is over within :data:`STOP_GRACE_S` whatever
    the libraries do, so a launch file never has to escalate to SIGKILL.
    """
    stop_requested: list[int] = []

    def on_signal(signum, frame) -> None:
        if not stop_requested:
            timer = threading.Timer(STOP_GRACE_S, _exit_now)
            timer.daemon = True
            timer.start()
        stop_requested.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    rclpy = None
    try:
        from ..memory import keep_large_blocks_in_heap
        from ..threads import reserve_cores_for_inference

        reserve_cores_for_inference()
        keep_large_blocks_in_heap()  # every frame in and out is MBs: no page fault per byte
        import rclpy
        from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        from ..core.errors import SegnetError

        rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
        if node_class == "lifecycle":
            from .lifecycle import SegnetLifecycleNode as NodeClass
        else:
            from .segnet_node import SegnetNode as NodeClass
        try:
            node = NodeClass()
        except SegnetError as exc:
            if stop_requested:  # an interrupted import or build can surface as an error: it is a stop
                return 0
            rclpy.logging.get_logger("segnet").fatal(str(exc))
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while rclpy.ok():  # short waits, so a signal is handled promptly
                executor.spin_once(timeout_sec=0.2)
        except ExternalShutdownException:
            pass
        finally:
            node.destroy_node()
    except KeyboardInterrupt:
        pass
    finally:
        if rclpy is not None:
            rclpy.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    return _run("plain", argv)


def lifecycle_main(argv: list[str] | None = None) -> int:
    return _run("lifecycle", argv)


if __name__ == "__main__":
    sys.exit(lifecycle_main() if "--lifecycle" in sys.argv[1:2] else main())
