"""Keeping multi-MB message buffers in the heap instead of fresh memory maps (ROS-free).

Every 1280x720 image that arrives or leaves costs buffers of its size (rclpy's message, the
serialized copy, rosbags' records). glibc serves blocks that large with a new ``mmap`` and unmaps
them when freed, so every byte of every frame is first a page fault. Raising its thresholds lets
the heap serve and keep them: a 2.7 MB Image between two processes then cost the receiver 2.2 ms of
CPU instead of 6.4-7.5 ms (and arrived in 2.7 ms instead of 6-7 ms), and the bag tool's writing
of a 640x480 frame's outputs 1 ms instead of 5 (2-core AVX-512 EPYC; benchmarks/transport_benchmark.py).
The price is that up to ``TRIM_BYTES`` of freed memory stays with the process for reuse.
"""

from __future__ import annotations

import contextlib
import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_BYTES = 32 << 20  # blocks up to this size come from the heap (a 1920x1080 frame's outputs fit)
TRIM_BYTES = 128 << 20  # freed heap memory kept for reuse, at most
_done = False


def keep_large_blocks_in_heap() -> bool:
    """Process-wide and once: call early in our node and bag processes. True where glibc took the
    settings; False where the C library has no ``mallopt`` (musl, macOS) or a ``MALLOC_*_`` variable
    already chose (the user's setting wins)."""
    global _done
    if _done:
        return True
    import os

    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return False
    with contextlib.suppress(AttributeError, OSError):
        mallopt = ctypes.CDLL(None).mallopt
        _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
    return _done
