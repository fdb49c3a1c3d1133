"""sensor_msgs <-> numpy, without cv_bridge (it is not installable everywhere we run).

Incoming images become zero-copy views that honour ``step`` (row padding) wherever
the encoding allows it; colour conversions (YUV 4:2:2, Bayer) go through OpenCV.
"""

from __future__ import annotations

import array
from collections.abc import Callable

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..core.errors import FrameError

# encoding -> (bytes per pixel, cv2 conversion to RGB or None, encoding the core receives)
_RAW = {
    "rgb8": (3, None, "rgb8"),
    "bgr8": (3, None, "bgr8"),
    "rgba8": (4, None, "rgba8"),
    "bgra8": (4, None, "bgra8"),
    "mono8": (1, None, "mono8"),
    "8uc1": (1, None, "mono8"),
    "8uc3": (3, None, "bgr8"),
    "yuv422": (2, cv2.COLOR_YUV2RGB_UYVY, "rgb8"),
    "uyvy": (2, cv2.COLOR_YUV2RGB_UYVY, "rgb8"),
    "yuv422_yuy2": (2, cv2.COLOR_YUV2RGB_YUY2, "rgb8"),
    "yuyv": (2, cv2.COLOR_YUV2RGB_YUY2, "rgb8"),
    # OpenCV names Bayer patterns by the second row's first two pixels.
    "bayer_rggb8": (1, cv2.COLOR_BayerBG2RGB, "rgb8"),
    "bayer_bggr8": (1, cv2.COLOR_BayerRG2RGB, "rgb8"),
    "bayer_gbrg8": (1, cv2.COLOR_BayerGR2RGB, "rgb8"),
    "bayer_grbg8": (1, cv2.COLOR_BayerGB2RGB, "rgb8"),
}
SUPPORTED_ENCODINGS = tuple(e for e in _RAW if e not in ("8uc1", "8uc3", "uyvy", "yuyv"))


def image_to_array(msg: Image) -> tuple[np.ndarray, str]:
    """A (H, W, C) uint8 frame and its core encoding; raises :class:`FrameError` on bad messages."""
    name = msg.encoding.lower()
    if name not in _RAW:
        raise FrameError(f"unsupported encoding '{msg.encoding}'; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    channels, conversion, core_encoding = _RAW[name]
    width, height, step = msg.width, msg.height, msg.step
    if width == 0 or height == 0:
        raise FrameError(f"image has zero size {width}x{height}")
    if step < width * channels:
        raise FrameError(f"step {step} is smaller than width x {channels} bytes ({width * channels})")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * height:
        raise FrameError(f"image data has {data.size} bytes; step x height needs {step * height}")
    rows = data[: step * height].reshape(height, step)
    pixels = rows[:, : width * channels].reshape(height, width, channels)  # a view: no copy
    if conversion is None:
        return pixels, core_encoding
    if channels == 2 and width % 2:
        raise FrameError(f"{msg.encoding} needs an even width, got {width}")
    source = pixels if channels == 2 else pixels[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(source), conversion), core_encoding


def compressed_to_array(msg: CompressedImage) -> tuple[np.ndarray, str]:
    """Decode a JPEG or PNG payload to bgr8."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise FrameError("compressed image is empty")
    frame = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if frame is None:
        raise FrameError(f"cannot decode compressed image (format '{msg.format}', {data.size} bytes)")
    return frame, "bgr8"


def _image(header, shape: tuple[int, ...], encoding: str, data: array.array) -> Image:
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(shape[0]), int(shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(shape[1] * (shape[2] if len(shape) == 3 else 1))
    msg.data = data  # an array.array('B'): no per-byte check (some rosidl versions still copy it)
    return msg


def array_to_image(header, pixels: np.ndarray, encoding: str) -> Image:
    """An Image message holding a copy of ``pixels`` (H, W) or (H, W, C) uint8."""
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(pixels).data)
    return _image(header, pixels.shape, encoding, data)


class ImageBuffers:
    """One data buffer per output topic, reused frame after frame: pictures are drawn into memory
    that is already mapped, so rendering pays no page faults for fresh pages (at 1280x720 these
    cost more than the rendering). The message gets this buffer, or a copy where rosidl copies on
    assignment; either way, publish each message before the next call for the same topic."""

    def __init__(self) -> None:
        self._data: dict[str, array.array] = {}

    def image(self, topic: str, header, shape: tuple[int, ...], encoding: str,
              draw: Callable[[np.ndarray], object]) -> Image:
        """An Image message for ``topic`` whose pixels ``draw`` writes into the array it is given."""
        size = int(np.prod(shape))
        data = self._data.get(topic)
        if data is None or len(data) != size:
            data = self._data[topic] = array.array("B", bytes(size))
        draw(np.frombuffer(data, dtype=np.uint8).reshape(shape))
        return _image(header, shape, encoding, data)


def scale_camera_info(info: CameraInfo, header, width: int, height: int) -> CameraInfo:
    """``info`` for an image resampled to ``width`` x ``height`` (pixel-centre convention:
    a point at input pixel u lands at (u + 0.5) * s - 0.5), e.g. the class grid."""
    sx = width / info.width if info.width else 1.0
    sy = height / info.height if info.height else 1.0
    out = CameraInfo()
    out.header = header
    out.width, out.height = width, height
    out.distortion_model = info.distortion_model
    out.d = list(info.d)
    out.r = list(info.r)
    k = list(info.k)
    k[0], k[1], k[2] = k[0] * sx, k[1] * sx, (k[2] + 0.5) * sx - 0.5
    k[4], k[5] = k[4] * sy, (k[5] + 0.5) * sy - 0.5
    out.k = k
    p = list(info.p)
    p[0], p[1], p[2], p[3] = p[0] * sx, p[1] * sx, (p[2] + 0.5) * sx - 0.5, p[3] * sx
    p[5], p[6], p[7] = p[5] * sy, (p[6] + 0.5) * sy - 0.5, p[7] * sy
    out.p = p
    out.binning_x, out.binning_y = info.binning_x, info.binning_y
    roi = info.roi
    out.roi.x_offset, out.roi.width = int(roi.x_offset * sx), int(roi.width * sx)
    out.roi.y_offset, out.roi.height = int(roi.y_offset * sy), int(roi.height * sy)
    out.roi.do_rectify = roi.do_rectify
    return out
