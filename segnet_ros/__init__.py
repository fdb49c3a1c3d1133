"""segnet_ros: FCN-ResNet18 semantic segmentation for ROS 2, on TensorRT or ONNX Runtime.

Every entry point (the CLI, the node, the bag tool) imports this package before any of its modules
imports ONNX Runtime or OpenCV, so the settings below are in place before those libraries read them.
A variable the user has set is left alone.
"""

import os

# ONNX Runtime's official builds send usage telemetry over HTTPS and keep a device id and an event
# database in the user's cache; a robot's perception must not phone home. Read once, at its start.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
# OpenVINO's telemetry (a Google Analytics event on ``import openvino``) has no environment switch; the
# OpenVINO backend, the one module of ours that imports it, holds it back (backends/openvino_backend.py).
# OpenCV's and FFmpeg's own log lines (imread warnings, "moov atom not found") would come before and
# beside our one-line messages; we check every result and say what went wrong in our own words.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

__version__ = "0.1.0"
