"""Fast DDS settings that make large images travel fast between processes on one machine (ROS-free).

Fast DDS already moves samples between local processes through shared memory, but its default
segment (512 KB) is smaller than one 1280x720 rgb8 image (2.7 MB), so the writer waits for the
reader to free fragments: about 40 ms a frame here, against 8 ms with a 32 MB segment
(``benchmarks/transport_benchmark.py``). ``config/fastdds_large_data.xml`` changes only that
segment's size and keeps Fast DDS's own shared-memory and UDPv4 transports, so discovery and the
wire are untouched and peers with default settings keep working. It is the *sender's* segment
that counts: the node's profile speeds up its outputs; a camera needs the profile for its images.
``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` is not used: with a robot's default discovery a
LARGE_DATA process and a default one on the same machine exchanged nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

PROFILE_NAME = "fastdds_large_data.xml"
# the variables by which Fast DDS 3 (Kilted and later) and Fast DDS 2 (Humble, Jazzy) find an XML profile
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
# every variable that changes how Fast DDS or the RMW moves data (a process "with default settings" has none)
TRANSPORT_VARIABLES = (*PROFILE_VARIABLES, "FASTDDS_BUILTIN_TRANSPORTS", "RMW_FASTRTPS_USE_QOS_FROM_XML",
                       "RMW_IMPLEMENTATION", "CYCLONEDDS_URI")


def _prefixes() -> list[Path]:
    return [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [Path(sys.prefix)]


def profile_path() -> Path | None:
    """The installed profile (``<prefix>/share/segnet_ros/config``), else the source tree's."""
    candidates = [prefix / "share" / "segnet_ros" / "config" / PROFILE_NAME for prefix in _prefixes()]
    candidates.append(Path(__file__).resolve().parents[1] / "config" / PROFILE_NAME)
    return next((path for path in candidates if path.is_file()), None)


def fast_dds_major() -> int:
    """3 where Fast DDS 3 is installed (libfastdds.so.3: Kilted and later), else 2 (Humble, Jazzy)."""
    return 3 if any(any((prefix / "lib").glob("libfastdds.so.3*")) for prefix in _prefixes()) else 2


def profile_environment(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The one variable that points this Fast DDS at the profile (``FASTRTPS_...`` on Fast DDS 3 works
    but logs a deprecation warning), or nothing: when the user already chose a profile in ``environ``,
    or when no profile file is found."""
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in PROFILE_VARIABLES):
        return {}
    path = path or profile_path()
    if path is None:
        return {}
    return {PROFILE_VARIABLES[0] if fast_dds_major() >= 3 else PROFILE_VARIABLES[1]: str(path)}


def launch_environment(choice: str, share: str) -> dict[str, str]:
    """What the launch files' ``transport_profile`` argument gives the node's process: "" nothing,
    ``default`` the package's profile under ``share``, else that file; nothing either way where the user
    already set a Fast DDS profile variable. Only the node's process: other nodes of a launch are untouched."""
    if not choice:
        return {}
    return profile_environment(f"{share}/config/{PROFILE_NAME}" if choice == "default" else choice)
