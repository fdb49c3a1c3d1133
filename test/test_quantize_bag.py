"""``segnet-ros quantize`` on frames from a rosbag2 (needs rosbags, the bag extra: listed for FLOOR_SKIP)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from test_quantize_cli import H, W, one_error_line

from conftest import run_cli
from oracle import block_image


@pytest.fixture
def cache_env(tmp_path):
    return {"SEGNET_ROS_CACHE": str(tmp_path / "cache")}


def _write_bag(path, topics: dict[str, list[np.ndarray]]) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    from segnet_ros.bag.typestore import IMAGE, typestore

    store = typestore()
    image_type, header_type, time_type = (store.types[name] for name in
                                          (IMAGE, "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic, frames in topics.items():
            connection = writer.add_connection(topic, IMAGE, typestore=store)
            for i, frame in enumerate(frames):
                header = header_type(stamp=time_type(sec=i, nanosec=0), frame_id="camera")
                msg = image_type(header=header, height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3,
                                 data=np.ascontiguousarray(frame).reshape(-1))
                writer.write(connection, i * 10**9, store.serialize_cdr(msg, IMAGE))


def test_frames_from_a_bag_calibrate_the_oracle_exactly(oracle_dir, tmp_path, cache_env, rng):
    frames = [block_image(rng.integers(0, 8, (4, 8)), W, H) for _ in range(5)]
    _write_bag(tmp_path / "one", {"/camera/image_raw": frames})
    model = ("--model", str(oracle_dir / "fcn_resnet18.onnx"), "--labels", str(oracle_dir / "classes.txt"))
    result = run_cli("quantize", *model, "--reduce-range", "on", str(tmp_path / "one"), env=cache_env)
    assert result.returncode == 0, result.stderr
    assert "on 1 held-out frames (32 cells; 4 frames calibrated)" in result.stdout
    assert re.search(r"reduce_range on:\s+100\.00% equal", result.stdout)  # 7-bit: no u8s8 saturation anywhere
    _write_bag(tmp_path / "two", {"/left/image": frames, "/right/image": frames})
    line = one_error_line(run_cli("quantize", *model, str(tmp_path / "two"), env=cache_env))
    assert line.endswith("has 2 image topics (/left/image, /right/image); choose one with --topic")
    chosen = run_cli("quantize", *model, "--topic", "/right/image", str(tmp_path / "two"), env=cache_env)
    assert chosen.returncode == 0, chosen.stderr
