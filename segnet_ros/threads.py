"""Keeping helper thread pools from fighting the inference backend for the same cores.

numpy's OpenBLAS and OpenCV keep worker threads spinning after each call. Beside
ONNX Runtime on the CPU they steal its cores: measured on 2 cores, one FCN-ResNet18
``run`` took 89 ms inside the node against 43 ms alone, and 43 ms again once both
pools had one thread. Our rendering work is small, so one thread each costs little.
"""

from __future__ import annotations

import os


def reserve_cores_for_inference() -> None:
    """Call first in our own processes (node, CLI), before numpy or OpenCV is imported."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # read once, when numpy loads OpenBLAS
    import cv2

    cv2.setNumThreads(1)
