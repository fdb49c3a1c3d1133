"""Reading label masks as class ids, in each format datasets ship them, and reading images.

Formats (``--mask-format``):

- ``ids``: a single-channel PNG (8 or 16 bit) whose values are the class ids;
- ``palette``: a palette PNG (Pascal VOC style) whose palette index is the class;
- ``colors``: colour-coded in the model's own ``colors.txt`` colours (DeepScene style); a colour
  that is no class's, or that two classes share, is refused with its pixel count;
- ``cityscapes``: Cityscapes ``*_labelIds.png`` (ids 0..33), remapped to the 21 classes of
  jetson-inference's Cityscapes models as pytorch-segmentation's ``cityscapes_remap.py`` does;
- ``auto``: a palette PNG is ``palette``, a grey PNG ``ids``, a colour PNG ``colors``, and labels
  in the Cityscapes layout are ``cityscapes``.

OpenCV expands a palette PNG to its colours and has no way to return the indices, so the PNG's
palette is swapped for the identity palette (entry i = grey i) before decoding: the decoded grey
value is then the index, exactly, whatever the palette held (two entries of one colour included).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

from ..core.classes import ClassTable
from ..core.errors import SegnetError
from ..core.opencv_io import quietly

MASK_FORMATS = ("auto", "ids", "palette", "colors", "cityscapes")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
PNG_GREY, PNG_RGB, PNG_PALETTE, PNG_GREY_ALPHA, PNG_RGBA = 0, 2, 3, 4, 6

# Cityscapes labelIds (cityscapesScripts helpers/labels.py) -> the 21 classes of jetson-inference's
# Cityscapes models (pytorch-segmentation datasets/cityscapes_remap.py), index = labelId
CITYSCAPES_REMAP = (
    0,  # 0 unlabeled -> void
    1,  # 1 ego vehicle -> ego_vehicle
    0,  # 2 rectification border -> void
    0,  # 3 out of roi -> void
    2,  # 4 static -> ground
    2,  # 5 dynamic -> ground
    2,  # 6 ground -> ground
    3,  # 7 road -> road
    4,  # 8 sidewalk -> sidewalk
    3,  # 9 parking -> road
    3,  # 10 rail track -> road
    5,  # 11 building -> building
    6,  # 12 wall -> wall
    7,  # 13 fence -> fence
    7,  # 14 guard rail -> fence
    3,  # 15 bridge -> road
    3,  # 16 tunnel -> road
    8,  # 17 pole -> pole
    8,  # 18 polegroup -> pole
    9,  # 19 traffic light -> traffic_light
    10,  # 20 traffic sign -> traffic_sign
    11,  # 21 vegetation -> vegetation
    12,  # 22 terrain -> terrain
    13,  # 23 sky -> sky
    14,  # 24 person -> person
    14,  # 25 rider -> person
    15,  # 26 car -> car
    16,  # 27 truck -> truck
    17,  # 28 bus -> bus
    16,  # 29 caravan -> truck
    16,  # 30 trailer -> truck
    18,  # 31 train -> train
    19,  # 32 motorcycle -> motorcycle
    20,  # 33 bicycle -> bicycle
)
CITYSCAPES_CLASSES = 21


def cityscapes_lut() -> np.ndarray:
    """(256,) uint8: labelIds 0..33 remapped, every other value kept (255 stays the ignore index,
    and anything else is left for the range check to refuse)."""
    lut = np.arange(256, dtype=np.uint8)
    lut[: len(CITYSCAPES_REMAP)] = CITYSCAPES_REMAP
    return lut


def read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SegnetError(f"cannot read {what} '{path}': {exc.strerror or exc}") from None


def decode(data: bytes, flags: int, path: Path, what: str) -> np.ndarray:
    """``cv2.imdecode`` or one SegnetError naming the file and the decoder's reason."""
    image, said = quietly(lambda: cv2.imdecode(np.frombuffer(data, np.uint8), flags))
    if image is None or image.size == 0:
        because = f" ({'; '.join(said[:3])})" if said else ""
        raise SegnetError(f"cannot decode {what} '{path}'{because}; is it a valid image file?")
    return image


def read_image(path: Path) -> np.ndarray:
    """A bgr8 frame from an image file."""
    return decode(read_bytes(path, "image"), cv2.IMREAD_COLOR, path, "image")


# -- PNG facts and the palette trick --------------------------------------------------------------
def png_header(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR, or None for anything that is not a PNG."""
    if data[:8] != PNG_SIGNATURE or len(data) < 26 or data[12:16] != b"IHDR":
        return None
    return data[24], data[25]


def _chunks(data: bytes, path: Path):
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        end = position + 12 + length
        if end > len(data):
            raise SegnetError(f"cannot decode label '{path}': PNG chunk {kind!r} is cut short; is the file complete?")
        yield kind, data[position + 8:position + 8 + length], data[position:end]
        position = end


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def palette_indices(data: bytes, path: Path) -> np.ndarray:
    """(H, W) uint8 palette indices of a palette PNG: the palette swapped for grey ramps, then decoded."""
    bit_depth = data[24]
    parts = [data[:8]]
    for kind, _, whole in _chunks(data, path):
        if kind == b"PLTE":
            entries = 1 << bit_depth  # every index the bit depth can hold, so none is out of the palette
            parts.append(_chunk(b"PLTE", bytes(np.repeat(np.arange(entries, dtype=np.uint8), 3))))
        elif kind != b"tRNS":  # transparency would only add an alpha channel
            parts.append(whole)
    grey = decode(b"".join(parts), cv2.IMREAD_COLOR, path, "label")
    return np.ascontiguousarray(grey[:, :, 0])


# -- label decoding -----------------------------------------------------------------------------
def _packed(bgr: np.ndarray) -> np.ndarray:
    """(H, W) int32 0xRRGGBB of a BGR image."""
    packed = bgr[:, :, 2].astype(np.int32) << 16
    packed |= bgr[:, :, 1].astype(np.int32) << 8
    packed |= bgr[:, :, 0]
    return packed


def _rgb(value: int) -> str:
    return f"({value >> 16},{(value >> 8) & 255},{value & 255})"


def _in_words(counts: dict[int, int], limit: int = 4) -> str:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{_rgb(colour)} {count} px" for colour, count in ranked[:limit])
    return text + (f" and {len(ranked) - limit} more" if len(ranked) > limit else "")


class LabelDecoder:
    """Reads label files (or bag label frames) as (H, W) class ids, uint8 or uint16, for one model.

    The values are not checked here: the scorer refuses values that are neither a class nor the
    ignore index, counted. ``layout`` is the pairing's ("cityscapes" makes ``auto`` read labelIds).
    """

    def __init__(self, mask_format: str, classes: ClassTable, layout: str = "stem", model_name: str = "") -> None:
        if mask_format not in MASK_FORMATS:
            raise ValueError(f"mask_format must be one of {', '.join(MASK_FORMATS)}, got '{mask_format}'")
        self.format = "cityscapes" if mask_format == "auto" and layout == "cityscapes" else mask_format
        self.classes = classes
        self.model_name = model_name or "the model"
        if layout == "bag" and self.format in ("palette", "colors"):
            raise SegnetError(f"--mask-format {self.format} reads label files; a bag's label topic holds mono8 "
                              "class ids: use --mask-format ids (or cityscapes for labelIds)")
        if self.format == "cityscapes" and classes.count != CITYSCAPES_CLASSES:
            raise SegnetError(f"Cityscapes labelIds are remapped to the {CITYSCAPES_CLASSES} classes of "
                              f"jetson-inference's Cityscapes models, but {self.model_name} has {classes.count} "
                              "classes; use --mask-format ids if the labels hold this model's class ids")
        self._lut = cityscapes_lut() if self.format == "cityscapes" else None
        self._class_colours = _packed(classes.rgb[None, :, ::-1])[0]  # (C,) 0xRRGGBB
        self._colours, first, counts = np.unique(self._class_colours, return_index=True, return_counts=True)
        self._colour_ids = np.where(counts == 1, first, -1)  # -1: a colour two classes share

    def read(self, path: Path) -> np.ndarray:
        """The class ids of one label file."""
        data = read_bytes(path, "label")
        if data[:3] == JPEG_SIGNATURE:
            raise SegnetError(f"label '{path}' is a JPEG: its lossy compression changes class ids and colours at "
                              "every edge; labels must be PNG (or another lossless format)")
        header = png_header(data)
        kind = self.format
        if kind == "palette" and (header is None or header[1] != PNG_PALETTE):
            raise SegnetError(f"label '{path}' is not a palette PNG (--mask-format palette); use --mask-format auto")
        if header is not None and header[1] == PNG_PALETTE and kind in ("auto", "ids", "palette", "cityscapes"):
            return self._remapped(palette_indices(data, path))
        if kind == "colors" or (kind == "auto" and header is not None and header[1] in (PNG_RGB, PNG_RGBA)):
            return self._colour_ids_of(decode(data, cv2.IMREAD_COLOR, path, "label"), path)
        image = decode(data, cv2.IMREAD_UNCHANGED, path, "label")
        if image.ndim == 3 and kind == "auto" and image.shape[2] >= 3:
            return self._colour_ids_of(image[:, :, :3], path)
        return self._remapped(self._grey(image, path))

    def ids(self, ids: np.ndarray) -> np.ndarray:
        """Class ids of a mono8 label frame (from a bag): remapped when they are Cityscapes labelIds."""
        return self._remapped(np.ascontiguousarray(ids.reshape(ids.shape[0], ids.shape[1])))

    def _remapped(self, ids: np.ndarray) -> np.ndarray:
        if self._lut is None:
            return ids
        if ids.dtype != np.uint8:  # 16-bit labelIds: 0..33 remapped, the rest kept for the range check
            out = ids.copy()
            small = ids < 256
            out[small] = self._lut[ids[small]]
            return out
        return cv2.LUT(ids, self._lut)

    def _grey(self, image: np.ndarray, path: Path) -> np.ndarray:
        """A single channel of ids: grey (+ alpha) as it is, or colour whose channels are all equal."""
        if image.dtype not in (np.uint8, np.uint16):
            raise SegnetError(f"label '{path}' holds {image.dtype} pixels; class ids are 8 or 16-bit integers")
        if image.ndim == 2:
            return image
        if image.shape[2] == 2:  # grey + alpha
            return np.ascontiguousarray(image[:, :, 0])
        channels = image[:, :, :3]
        if not ((channels[:, :, 0] == channels[:, :, 1]).all() and (channels[:, :, 1] == channels[:, :, 2]).all()):
            raise SegnetError(f"label '{path}' is a colour image, not class ids (--mask-format {self.format}); "
                              "use --mask-format colors for labels in the model's colours")
        return np.ascontiguousarray(channels[:, :, 0])

    def _colour_ids_of(self, bgr: np.ndarray, path: Path) -> np.ndarray:
        """Class ids of a label coloured in the model's colours; unknown or shared colours refused, counted."""
        if bgr.dtype != np.uint8:
            bgr = (bgr >> 8).astype(np.uint8)  # 16-bit colour PNG: its high bytes are the 8-bit colours
        packed = _packed(bgr)
        position = np.searchsorted(self._colours, packed)
        np.minimum(position, len(self._colours) - 1, out=position)
        known = self._colours[position] == packed
        if not known.all():
            values, counts = np.unique(packed[~known], return_counts=True)
            raise SegnetError(
                f"label '{path}' has {int(counts.sum())} pixels in {len(values)} colours that are no class's colour "
                f"of {self.model_name} ({_in_words(dict(zip(values.tolist(), counts.tolist(), strict=True)))}); "
                "colour-coded labels must use the model's own colors.txt colours (give the dataset's with "
                "--colors), or use --mask-format ids/palette if they are not colour-coded")
        ids = self._colour_ids[position]
        if (ids < 0).any():
            shared = np.unique(packed[ids < 0])
            colour = int(shared[0])
            names = [self.classes.names[i] for i in np.flatnonzero(self._class_colours == colour)]
            raise SegnetError(f"label '{path}' uses colour {_rgb(colour)}, which {' and '.join(names)} share in "
                              f"the colours of {self.model_name}, so its pixels cannot be told apart; give "
                              "distinct colours with --colors, or labels of class ids")
        return ids.astype(np.uint8)
