"""The core's Python log records (backend choice, engine builds, warnings) into the ROS log."""

from __future__ import annotations

import logging

_LEVELS = ((logging.ERROR, "error"), (logging.WARNING, "warning"), (logging.INFO, "info"), (logging.DEBUG, "debug"))


class RosLogHandler(logging.Handler):
    """Forwards records to one node's logger, so they carry its real (namespaced) name in /rosout."""

    def __init__(self, ros_logger) -> None:
        super().__init__(logging.INFO)
        self._logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        method = next((name for level, name in _LEVELS if record.levelno >= level), "debug")
        getattr(self._logger, method)(record.getMessage())
