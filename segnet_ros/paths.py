"""Per-user folders, overridable by environment variables for robots and tests."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SEGNET_ROS_CACHE"


def cache_dir() -> Path:
    """``$SEGNET_ROS_CACHE``, else ``$XDG_CACHE_HOME/segnet_ros``, else ``~/.cache/segnet_ros``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "segnet_ros"
