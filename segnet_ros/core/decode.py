"""sensor_msgs/Image, CompressedImage and depth payloads to the arrays the core works on, without ROS.

The functions take any object with the messages' fields: rclpy's messages in the node, rosbags' in
the bag tool, so both accept the same encodings with the same checks and the same words. Incoming
images become zero-copy views that honour ``step`` (row padding) wherever the encoding allows it;
colour conversions (YUV 4:2:2, Bayer) go through OpenCV; a compressed frame's declared size is
checked before decoding.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from .errors import FrameError
from .pointcloud import DEPTH_ENCODINGS

MAX_INPUT_PIXELS = 33_554_432  # the node's max_input_pixels default (32 MP)

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


def is_supported(encoding: str) -> bool:
    return encoding.lower() in _RAW


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Refuse a frame larger than ``max_pixels`` before any work is spent on it."""
    if width * height > max_pixels:
        raise FrameError(f"image of {width}x{height} has more than max_input_pixels ({max_pixels}) pixels")


def _rows(msg, bytes_per_pixel: int, max_pixels: int) -> np.ndarray:
    """(H, W * bytes_per_pixel) uint8 view of an Image's pixels, honouring ``step``."""
    width, height, step = msg.width, msg.height, msg.step
    if width == 0 or height == 0:
        raise FrameError(f"image has zero size {width}x{height}")
    check_pixels(width, height, max_pixels)
    if step < width * bytes_per_pixel:
        raise FrameError(f"step {step} is smaller than width x {bytes_per_pixel} bytes ({width * bytes_per_pixel})")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * height:
        raise FrameError(f"image data has {data.size} bytes; step x height needs {step * height}")
    return data[: step * height].reshape(height, step)[:, : width * bytes_per_pixel]  # a view: no copy


def image_to_array(msg, max_pixels: int = MAX_INPUT_PIXELS) -> tuple[np.ndarray, str]:
    """A (H, W, C) uint8 frame and its core encoding; raises :class:`FrameError` on bad messages."""
    name = msg.encoding.lower()
    if name not in _RAW:
        raise FrameError(f"unsupported encoding '{msg.encoding}'; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    channels, conversion, core_encoding = _RAW[name]
    width, height = msg.width, msg.height
    pixels = _rows(msg, channels, max_pixels).reshape(height, width, channels)
    if conversion is None:
        return pixels, core_encoding
    if channels == 2 and width % 2:
        raise FrameError(f"{msg.encoding} needs an even width, got {width}")
    source = pixels if channels == 2 else pixels[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(source), conversion), core_encoding


def compressed_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a PNG or JPEG payload declares, read from its header without decoding;
    None for other formats or a header too short to tell."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 9 <= len(data):  # walk the JPEG segments to the first start-of-frame marker
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:  # segments without a length
            pos += 2
            continue
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
    return None


def compressed_to_array(msg, max_pixels: int = MAX_INPUT_PIXELS) -> tuple[np.ndarray, str]:
    """Decode a JPEG or PNG payload to bgr8; the size its header declares is checked first, so a
    small, highly compressed file cannot make us decode gigabytes."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise FrameError("compressed image is empty")
    declared = compressed_size(data[:65536].tobytes())
    if declared is not None:
        check_pixels(*declared, max_pixels)
    try:
        frame = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV 5 raises where 4.x returned None
        raise FrameError(f"cannot decode compressed image (format '{msg.format}', {data.size} bytes): "
                         f"{str(exc).strip().splitlines()[-1]}") from None
    if frame is None:
        raise FrameError(f"cannot decode compressed image (format '{msg.format}', {data.size} bytes)")
    check_pixels(frame.shape[1], frame.shape[0], max_pixels)
    return frame, "bgr8"


def depth_to_array(msg, max_pixels: int = MAX_INPUT_PIXELS) -> tuple[np.ndarray, float]:
    """A (H, W) view of a depth image's raw values (uint16 millimetres or float32 metres, in the
    message's byte order) and the metres per unit; raises :class:`FrameError` on bad messages."""
    name = msg.encoding.lower()
    if name not in DEPTH_ENCODINGS:
        raise FrameError(f"unsupported depth encoding '{msg.encoding}'; supported: 16UC1 (mm), 32FC1 (m)")
    kind, metres_per_unit = DEPTH_ENCODINGS[name]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    rows = _rows(msg, dtype.itemsize, max_pixels)
    if msg.step % dtype.itemsize:
        raise FrameError(f"depth step {msg.step} is not a multiple of {dtype.itemsize} bytes")
    return rows.view(dtype), metres_per_unit
