"""Depth to labelled organised clouds (core), and pairing depth with colour by stamp."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from segnet_ros.core.errors import FrameError
from segnet_ros.core.pointcloud import CLOUD_DTYPE, CloudBuilder, Intrinsics, sample_indices
from segnet_ros.node.depth import DepthPairer

K = Intrinsics(fx=50.0, fy=40.0, cx=3.5, cy=2.5, width=8, height=6)


def test_same_size_is_the_back_projection_through_k():
    depth = np.arange(1, 49, dtype=np.uint16).reshape(6, 8) * 100  # millimetres
    depth[2, 3] = 0
    labels = np.arange(48, dtype=np.uint8).reshape(6, 8)
    confidence = np.full((6, 8), 255, np.uint8)
    cloud = CloudBuilder().build(depth, 0.001, K, labels, confidence)
    assert cloud.dtype == CLOUD_DTYPE and cloud.shape == (6, 8)
    v, u = np.mgrid[0:6, 0:8]
    z = depth * 0.001
    valid = depth > 0
    np.testing.assert_allclose(cloud["z"][valid], z[valid], rtol=1e-6)
    np.testing.assert_allclose(cloud["x"][valid], ((u - 3.5) * z / 50.0)[valid], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(cloud["y"][valid], ((v - 2.5) * z / 40.0)[valid], rtol=1e-6, atol=1e-7)
    assert np.isnan([cloud["x"][2, 3], cloud["y"][2, 3], cloud["z"][2, 3]]).all()
    assert (cloud["label"] == labels).all() and (cloud["confidence"] == 1.0).all()


def test_float_depth_marks_zero_negative_nan_and_inf_invalid():
    depth = np.full((6, 8), 2.0, np.float32)
    depth[0, :4] = (0.0, -1.0, np.nan, np.inf)
    cloud = CloudBuilder().build(depth, 1.0, K, np.zeros((6, 8), np.uint8), np.zeros((6, 8), np.uint8))
    assert np.isnan(cloud["z"][0, :4]).all() and not np.isnan(cloud["z"][0, 4:]).any()
    assert np.isnan(cloud["x"][0, :4]).all() and np.isnan(cloud["y"][0, :4]).all()


def test_big_endian_depth_reads_the_same():
    depth = (np.arange(48, dtype=np.uint16).reshape(6, 8) + 1) * 7
    labels = np.zeros((6, 8), np.uint8)
    little = CloudBuilder().build(depth, 0.001, K, labels, labels)
    big = CloudBuilder().build(depth.astype(">u2"), 0.001, K, labels, labels)
    np.testing.assert_array_equal(little, big)


def test_a_mask_of_another_size_samples_the_depth_pixel_it_covers():
    depth = np.random.default_rng(0).integers(1, 5000, (6, 8)).astype(np.uint16)
    labels = np.ones((3, 16), np.uint8)
    cloud = CloudBuilder().build(depth, 0.001, K, labels, labels)
    assert cloud.shape == (3, 16)
    cols, rows = sample_indices(16, 8), sample_indices(3, 6)
    assert cols.tolist() == [x * 8 // 16 for x in range(16)] and rows.tolist() == [0, 2, 4]
    z = depth[rows][:, cols] * 0.001
    np.testing.assert_allclose(cloud["z"], z, rtol=1e-6)
    np.testing.assert_allclose(cloud["x"], (cols[None, :] - 3.5) * z / 50.0, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(cloud["y"], (rows[:, None] - 2.5) * z / 40.0, rtol=1e-5, atol=1e-7)


def test_k_of_another_resolution_is_scaled_to_the_depth_image():
    """camera_info for 16x12 with a depth image of 8x6 (binned): K scales about pixel centres."""
    full = Intrinsics(fx=100.0, fy=80.0, cx=7.5, cy=5.5, width=16, height=12)
    depth = np.full((6, 8), 1000, np.uint16)
    cloud = CloudBuilder().build(depth, 0.001, full, np.zeros((6, 8), np.uint8), np.zeros((6, 8), np.uint8))
    np.testing.assert_allclose(cloud["x"][0], (np.arange(8) - 3.5) / 50.0, rtol=1e-6, atol=1e-7)


def test_builder_reuses_the_caller_buffer():
    out = np.empty((6, 8), CLOUD_DTYPE)
    depth = np.full((6, 8), 500, np.uint16)
    labels = np.zeros((6, 8), np.uint8)
    result = CloudBuilder().build(depth, 0.001, K, labels, labels, out)
    assert result is out and (out["z"] == np.float32(0.5)).all()


def test_unusable_camera_matrix_is_a_frame_error():
    with pytest.raises(FrameError, match="no usable camera matrix"):
        Intrinsics.from_k([0.0] * 9, 8, 6)
    assert Intrinsics.from_k([50, 0, 3.5, 0, 40, 2.5, 0, 0, 1], 8, 6) == K


def test_pairing_exact_and_with_slop():
    pairer = DepthPairer()
    pairer.add(1_000, "a")
    pairer.add(2_000, "b")
    assert pairer.take(2_000, timeout=0) == "b" and pairer.take(1_500, timeout=0) is None
    loose = DepthPairer(slop_ns=600)
    loose.add(1_000, "a")
    loose.add(2_000, "b")
    assert loose.take(1_600, timeout=0) == "b" and loose.take(1_300, timeout=0) == "a"


def test_pairing_waits_for_late_depth_but_not_for_a_silent_stream():
    pairer = DepthPairer(alive_s=1.0)
    assert pairer.take(5, timeout=5.0) is None  # never any depth: no wait at all
    pairer.add(1, "old")
    threading.Timer(0.2, pairer.add, (5, "late")).start()
    start = time.monotonic()
    assert pairer.take(5, timeout=5.0) == "late" and time.monotonic() - start < 2.0
    pairer.add(9, "newer")
    start = time.monotonic()
    assert pairer.take(7, timeout=5.0) is None and time.monotonic() - start < 0.5  # 7 can no longer come
