"""``segnet_node`` and ``segnet_lifecycle_node``:
``ros2 run segnet_ros segnet_node --ros-args -r image:=/camera/image_raw``."""

from __future__ import annotations

import signal
import sys


def _run(node_class: str, argv: list[str] | None) -> int:
    """Spin one node until Ctrl-C or SIGTERM; either, even during start-up, exits quietly with 0.

    rclpy's own signal handler would shut the context down while a worker is mid-frame; ours
    turns both signals into KeyboardInterrupt, so the workers stop before the context goes.
    """
    stop_requested: list[int] = []

    def on_signal(signum, frame) -> None:
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
