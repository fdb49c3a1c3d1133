"""``segnet_node``: ``ros2 run segnet_ros segnet_node --ros-args -r image:=/camera/image_raw``."""

from __future__ import annotations

import logging
import sys

from ..threads import reserve_cores_for_inference

reserve_cores_for_inference()

import rclpy  # noqa: E402
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: E402

from ..core.errors import SegnetError  # noqa: E402

_LEVELS = ((logging.ERROR, "error"), (logging.WARNING, "warning"), (logging.INFO, "info"), (logging.DEBUG, "debug"))


class RosLogHandler(logging.Handler):
    """Sends the core's Python log records (backend choice, engine builds) to the ROS log."""

    def __init__(self, logger_name: str) -> None:
        super().__init__(logging.INFO)
        self._logger = rclpy.logging.get_logger(logger_name)

    def emit(self, record: logging.LogRecord) -> None:
        method = next((name for level, name in _LEVELS if record.levelno >= level), "debug")
        getattr(self._logger, method)(record.getMessage())


def main(argv: list[str] | None = None) -> int:
    from .segnet_node import SegnetNode  # after rclpy.init's argument handling

    rclpy.init(args=argv)
    package_logger = logging.getLogger("segnet_ros")
    package_logger.setLevel(logging.INFO)
    package_logger.addHandler(RosLogHandler("segnet"))
    try:
        node = SegnetNode()
    except SegnetError as exc:
        rclpy.logging.get_logger("segnet").fatal(str(exc))
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
