"""sensor_msgs <-> numpy, without cv_bridge (it is not installable everywhere we run).

Decoding is the core's (:mod:`segnet_ros.core.decode`, shared with the bag tool); this module adds
what needs the ROS message types: building output messages into reused buffers.
"""

from __future__ import annotations

import array
from collections.abc import Callable

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from ..core.errors import FrameError
from ..core.pointcloud import CLOUD_DTYPE, resampled_coordinate


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


def array_to_compressed(header, pixels: np.ndarray, encoding: str, jpeg_quality: int | None) -> CompressedImage:
    """A CompressedImage as image_transport's ``compressed`` plugin writes it: JPEG (colour pictures,
    ``jpeg_quality``) or, with ``jpeg_quality`` None, lossless PNG (class ids must survive exactly);
    ``format`` is "<encoding>; jpeg|png compressed <bgr8|mono8>", which its subscriber and RViz parse."""
    colour = pixels.ndim == 3
    if colour and encoding == "rgb8":
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)  # OpenCV's encoders take BGR
    if jpeg_quality is None:
        kind, ok, payload = "png", *cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        kind, ok, payload = "jpeg", *cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise FrameError(f"OpenCV could not encode a {pixels.shape} picture as {kind}")
    msg = CompressedImage(header=header, format=f"{encoding}; {kind} compressed {'bgr8' if colour else 'mono8'}")
    data = array.array("B")
    data.frombytes(payload.data)
    msg.data = data
    return msg


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
