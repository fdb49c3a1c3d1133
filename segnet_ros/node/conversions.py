"""sensor_msgs <-> numpy, without cv_bridge (it is not installable everywhere we run).

Incoming images become zero-copy views that honour ``step`` (row padding) wherever
the encoding allows it; colour conversions (YUV 4:2:2, Bayer) go through OpenCV.
"""

from __future__ import annotations

import array
import struct
from collections.abc import Callable

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from ..core.errors import FrameError
from ..core.pointcloud import CLOUD_DTYPE, DEPTH_ENCODINGS, resampled_coordinate

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


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Refuse a frame larger than ``max_pixels`` before any work is spent on it."""
    if width * height > max_pixels:
        raise FrameError(f"image of {width}x{height} has more than max_input_pixels ({max_pixels}) pixels")


def _rows(msg: Image, bytes_per_pixel: int, max_pixels: int) -> np.ndarray:
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


def image_to_array(msg: Image, max_pixels: int = 1 << 62) -> tuple[np.ndarray, str]:
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


def compressed_to_array(msg: CompressedImage, max_pixels: int = 1 << 62) -> tuple[np.ndarray, str]:
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


def depth_to_array(msg: Image, max_pixels: int = 1 << 62) -> tuple[np.ndarray, float]:
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


_CLOUD_FIELDS = {"f4": PointField.FLOAT32, "u4": PointField.UINT32}


def cloud_fields() -> list[PointField]:
    """PointField descriptions of :data:`CLOUD_DTYPE`."""
    return [PointField(name=name, offset=CLOUD_DTYPE.fields[name][1], count=1,
                       datatype=_CLOUD_FIELDS[CLOUD_DTYPE.fields[name][0].str[1:]]) for name in CLOUD_DTYPE.names]


class ImageBuffers:
    """One data buffer per output topic, reused frame after frame: pictures are drawn into memory
    that is already mapped, so rendering pays no page faults for fresh pages (at 1280x720 these
    cost more than the rendering). The message gets this buffer, or a copy where rosidl copies on
    assignment; either way, publish each message before the next call for the same topic."""

    def __init__(self) -> None:
        self._data: dict[str, array.array] = {}

    def _buffer(self, topic: str, size: int) -> array.array:
        data = self._data.get(topic)
        if data is None or len(data) != size:
            data = self._data[topic] = array.array("B", bytes(size))
        return data

    def pixels(self, topic: str, shape: tuple[int, ...]) -> np.ndarray:
        """``topic``'s buffer as a uint8 array of ``shape``, to draw into before :meth:`image`."""
        return np.frombuffer(self._buffer(topic, int(np.prod(shape))), dtype=np.uint8).reshape(shape)

    def image(self, topic: str, header, shape: tuple[int, ...], encoding: str,
              draw: Callable[[np.ndarray], object] | None = None) -> Image:
        """An Image message for ``topic`` whose pixels ``draw`` writes into the array it is given
        (without ``draw``: whatever was drawn into :meth:`pixels` of the same shape)."""
        pixels = self.pixels(topic, shape)
        if draw is not None:
            draw(pixels)
        return _image(header, shape, encoding, self._data[topic])

    def cloud(self, topic: str, header, height: int, width: int, fill: Callable[[np.ndarray], object]) -> PointCloud2:
        """An organised PointCloud2 of :data:`CLOUD_DTYPE` points whose (H, W) array ``fill`` writes."""
        data = self._buffer(topic, height * width * CLOUD_DTYPE.itemsize)
        fill(np.frombuffer(data, dtype=CLOUD_DTYPE).reshape(height, width))
        msg = PointCloud2(header=header, height=height, width=width, fields=cloud_fields(), is_bigendian=False,
                          point_step=CLOUD_DTYPE.itemsize, row_step=CLOUD_DTYPE.itemsize * width, is_dense=False)
        msg.data = data
        return msg


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
    k[0], k[1], k[2] = k[0] * sx, k[1] * sx, resampled_coordinate(k[2], sx)
    k[4], k[5] = k[4] * sy, resampled_coordinate(k[5], sy)
    out.k = k
    p = list(info.p)
    p[0], p[1], p[2], p[3] = p[0] * sx, p[1] * sx, resampled_coordinate(p[2], sx), p[3] * sx
    p[5], p[6], p[7] = p[5] * sy, resampled_coordinate(p[6], sy), p[7] * sy
    out.p = p
    out.binning_x, out.binning_y = info.binning_x, info.binning_y
    roi = info.roi
    out.roi.x_offset, out.roi.width = int(roi.x_offset * sx), int(roi.width * sx)
    out.roi.y_offset, out.roi.height = int(roi.y_offset * sy), int(roi.height * sy)
    out.roi.do_rectify = roi.do_rectify
    return out
