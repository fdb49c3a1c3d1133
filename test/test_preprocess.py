import numpy as np
import pytest

from segnet_ros.core.errors import FrameError
from segnet_ros.core.preprocess import Preprocessor, nearest_indices

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def expected(rgb: np.ndarray) -> np.ndarray:
    return ((rgb / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None]


@pytest.mark.parametrize("name,convert", [
    ("rgb8", lambda rgb: rgb),
    ("bgr8", lambda rgb: rgb[:, :, ::-1]),
    ("rgba8", lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])),
    ("bgra8", lambda rgb: np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 7, np.uint8)])),
])
def test_channel_order_and_normalization(rng, name, convert):
    rgb = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    tensor = Preprocessor(48, 32)(np.ascontiguousarray(convert(rgb)), name)
    assert tensor.shape == (1, 3, 32, 48) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor, expected(rgb), rtol=0, atol=2e-6)


def test_mono_replicates_grey(rng):
    grey = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    tensor = Preprocessor(16, 16)(grey, "mono8")
    np.testing.assert_allclose(tensor, expected(np.dstack([grey] * 3)), atol=2e-6)
    np.testing.assert_array_equal(Preprocessor(16, 16)(grey[:, :, None], "mono8"), tensor)


def test_nearest_resize_follows_reference_indices(rng):
    frame = rng.integers(0, 256, (37, 101, 3), dtype=np.uint8)
    tensor = Preprocessor(64, 16, resize="nearest")(frame, "rgb8")
    rows = [int(np.float32(y) * (np.float32(37) / np.float32(16))) for y in range(16)]
    cols = [int(np.float32(x) * (np.float32(101) / np.float32(64))) for x in range(64)]
    np.testing.assert_allclose(tensor, expected(frame[np.ix_(rows, cols)]), atol=2e-6)
    assert nearest_indices(10, 5).tolist() == [0, 2, 4, 6, 8]


def test_bilinear_resize_stretches_without_keeping_aspect(rng):
    frame = np.zeros((100, 400, 3), np.uint8)
    frame[:, 200:] = 255  # left half black, right half white
    tensor = Preprocessor(64, 64)(frame, "rgb8")
    assert tensor.shape == (1, 3, 64, 64)
    black, white = expected(np.zeros((1, 1, 3))), expected(np.full((1, 1, 3), 255.0))
    np.testing.assert_allclose(tensor[..., :30], np.broadcast_to(black, (1, 3, 64, 30)), atol=1e-5)
    np.testing.assert_allclose(tensor[..., 34:], np.broadcast_to(white, (1, 3, 64, 30)), atol=1e-5)


def test_padded_rows_are_honoured(rng):
    padded = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    view = padded[:, :30]  # a strided view, as a message with row padding gives
    np.testing.assert_array_equal(Preprocessor(30, 20)(view, "rgb8"),
                                  Preprocessor(30, 20)(np.ascontiguousarray(view), "rgb8"))


def test_output_buffer_is_reused(rng):
    pre = Preprocessor(32, 32)
    first = pre(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "rgb8")
    second = pre(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "rgb8")
    assert first is second


@pytest.mark.parametrize("frame,encoding,message", [
    (np.zeros((8, 8, 3), np.float32), "rgb8", "uint8"),
    (np.zeros((8, 8, 4), np.uint8), "rgb8", r"\(height, width, 3\)"),
    (np.zeros((8, 8, 3), np.uint8), "mono8", r"\(height, width, 1\)"),
    (np.zeros((0, 8, 3), np.uint8), "rgb8", "zero size"),
    (np.zeros((8, 8, 3), np.uint8), "yuv9", "unsupported encoding 'yuv9'"),
    (np.zeros((2, 8, 8, 3), np.uint8), "rgb8", "got shape"),
])
def test_bad_frames(frame, encoding, message):
    with pytest.raises(FrameError, match=message):
        Preprocessor(16, 16)(frame, encoding)


def test_unknown_resize_method():
    with pytest.raises(ValueError, match="resize must be one of"):
        Preprocessor(16, 16, resize="cubic")
