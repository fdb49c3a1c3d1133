"""What the TensorRT test modules share: the fake versions every test runs against, frames, QDQ models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from segnet_ros.backends.cpu import cpu_info

# One of each API generation: 8.6 (explicit-batch flag, no progress monitor), 10.x (weak typing and
# STRONGLY_TYPED side by side), 11.x (strong typing only: no BuilderFlag.FP16 / INT8).
VERSIONS = ("8.6.1", "10.3.0", "11.0.0")


def _trt_version(request, fake_trt) -> str:
    """Runs the test once per fake TensorRT version (FAKE_TRT_VERSION)."""
    fake_trt.configure(trt_version=request.param)
    return request.param


def version_fixture():
    """The ``trt_version`` fixture, for a test module to define as ``trt_version = version_fixture()``."""
    return pytest.fixture(params=VERSIONS, ids=[f"trt{v.split('.')[0]}" for v in VERSIONS], name="trt_version")(
        _trt_version)


def frames(model, count: int, seed: int = 0, batch: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch, *model.input_shape[1:])).astype(np.float32) for _ in range(count)]


def write_qdq(onnx_path: Path, out: Path, calibration: list[np.ndarray], symmetric: bool = True) -> Path:
    """A QDQ model of ``onnx_path`` made with ONNX Runtime's static quantisation: per-channel int8 weights,
    int32 biases (which the backend folds to float for TensorRT); activations int8 and symmetric (what
    TensorRT parses) or ONNX Runtime's default uint8 (what it does not). The fake runs it on ONNX Runtime's
    CPU kernels, whose int8 x int8 products saturate on CPUs without VNNI (AVX2): 7-bit weights there, so
    the fake's answers are TensorRT's, not the saturation's (TensorRT's own kernels do not saturate)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([{"input_0": frame} for frame in calibration])

        def get_next(self):
            return next(self._items, None)

    previous = os.getcwd()
    os.chdir(out.parent)  # ONNX Runtime before 1.13 writes augmented_model.onnx into the current folder
    try:
        quantize_static(str(Path(onnx_path).resolve()), str(out.resolve()), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, reduce_range=not cpu_info().has_vnni,
                        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True})
    finally:
        os.chdir(previous)
    return out
