"""backend=auto picks TensorRT, ONNX Runtime on CUDA or ONNX Runtime on the CPU, and says why;
backend=tensorrt where it cannot run says what is missing."""

import logging
import sys
import warnings

import pytest

from segnet_ros.backends import BackendOptions, choose_backend, create_backend, onnxruntime_backend
from segnet_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from segnet_ros.backends.tensorrt_backend import TensorRTBackend
from segnet_ros.core.errors import BackendError
from segnet_ros.core.model import ModelFiles, load_model

from tensorrt_helpers import version_fixture

trt_version = version_fixture()
pytestmark = pytest.mark.usefixtures("fake_trt")


@pytest.fixture
def model(oracle_dir):
    return load_model(ModelFiles.in_folder(oracle_dir))


@pytest.fixture
def ort_cuda(monkeypatch):
    """Pretend this ONNX Runtime has its CUDA provider (or not)."""

    def set_to(available: bool) -> None:
        monkeypatch.setattr(onnxruntime_backend, "cuda_available", lambda: available)

    return set_to


def auto(model, caplog, **options):
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="segnet_ros.backends"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ONNX Runtime warns when asked for a provider it lacks
        backend = create_backend("auto", model, BackendOptions(**options))
    choices = [r for r in caplog.records if r.message.startswith("backend auto chose")]
    # the reason at debug level (--verbose), then one short line of what runs
    assert [r.levelno for r in choices] == [logging.DEBUG, logging.INFO]
    assert choices[1].message == f"backend auto chose {backend.describe()}"
    return backend, choices[0].message


def test_tensorrt_with_a_gpu_wins(model, caplog, ort_cuda, trt_version):
    ort_cuda(True)
    backend, message = auto(model, caplog)
    try:
        assert isinstance(backend, TensorRTBackend)
        assert message == (f"backend auto chose tensorrt: TensorRT {trt_version} and CUDA device 'Fake Orin' "
                           "(compute capability 8.7) found")
    finally:
        backend.close()


@pytest.mark.parametrize("cuda_provider", [True, False])
def test_tensorrt_whose_cuda_start_fails_falls_back(model, caplog, ort_cuda, fake_trt, trt_version, cuda_provider):
    """TensorRT's own CUDA start can fail where pycuda's works (driver/CUDA mismatch, error 35): probe()
    creates a Runtime, so auto sees it and runs ONNX Runtime, saying why."""
    ort_cuda(cuda_provider)
    fake_trt.configure(trt_init_fail=1)
    backend, message = auto(model, caplog)
    assert_fell_back(backend, message, cuda_provider)
    assert "TensorRT cannot run here: TensorRT cannot start on this GPU" in message and "error 35" in message
    assert fake_trt.cuda.retained() == 0  # the probe gave its context back


@pytest.mark.parametrize("cuda_provider", [True, False])
def test_tensorrt_not_importable(model, caplog, ort_cuda, monkeypatch, cuda_provider):
    ort_cuda(cuda_provider)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "tensorrt", None)  # what a machine without TensorRT looks like
        backend, message = auto(model, caplog)
    assert_fell_back(backend, message, cuda_provider)
    assert "TensorRT cannot run here: tensorrt is not importable" in message


def assert_fell_back(backend, message: str, cuda_provider: bool) -> None:
    """Not TensorRT: ONNX Runtime on CUDA where it has the provider, else a CPU backend (which one, and at
    what precision, is the CPU policy's choice: test_backend_choice.py)."""
    if cuda_provider:
        assert isinstance(backend, OnnxRuntimeBackend) and "ONNX Runtime has its CUDA provider" in message
    else:
        assert backend.name in ("onnxruntime", "openvino") and backend.device == "cpu"
        assert "ONNX Runtime has no CUDA provider, so it runs on the CPU" in message


@pytest.mark.parametrize("cuda_provider", [True, False])
def test_no_gpu(model, caplog, ort_cuda, fake_trt, cuda_provider):
    ort_cuda(cuda_provider)
    fake_trt.configure(cuda_devices=0)
    backend, message = auto(model, caplog)
    assert_fell_back(backend, message, cuda_provider)
    assert "TensorRT cannot run here: no CUDA device: the CUDA driver finds none" in message


def test_device_cpu_means_onnx_runtime_without_probing_tensorrt(model, caplog, ort_cuda):
    ort_cuda(True)
    backend, message = auto(model, caplog, device="cpu")
    assert backend.name in ("onnxruntime", "openvino") and backend.device == "cpu"
    assert "device 'cpu' was asked for" in message
    assert "tensorrt" not in sys.modules


def test_choose_backend_without_creating_one(fake_trt):
    assert choose_backend()[0] == "tensorrt"
    fake_trt.configure(cuda_init_fail="no CUDA-capable device is detected")
    name, reason = choose_backend()
    assert name != "tensorrt" and "the CUDA driver does not start" in reason
    assert "no CUDA-capable device is detected" in reason


def block_pycuda(monkeypatch):
    import tensorrt  # noqa: F401 - the fake imports the fake pycuda itself; only the backend's import must fail

    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)


@pytest.mark.parametrize("situation, expected", [
    ("no tensorrt", "tensorrt is not importable"),
    ("no pycuda", "pycuda is not importable"),
    ("no gpu", "no CUDA device: the CUDA driver finds none"),
    ("old tensorrt", "TensorRT 8.5.3 is too old; this backend needs TensorRT 8.6 or newer"),
    ("new tensorrt", "TensorRT 12.1.0 is newer than this backend knows"),
])
def test_asking_for_tensorrt_where_it_cannot_run(model, fake_trt, monkeypatch, situation, expected):
    with monkeypatch.context() as patch:
        if situation == "no tensorrt":
            patch.setitem(sys.modules, "tensorrt", None)
        elif situation == "no pycuda":
            block_pycuda(patch)
        elif situation == "no gpu":
            fake_trt.configure(cuda_devices=0)
        elif situation == "old tensorrt":
            fake_trt.configure(trt_version="8.5.3")
        else:
            fake_trt.configure(trt_version="12.1.0")
        with pytest.raises(BackendError) as error:
            create_backend("tensorrt", model)
    assert expected in str(error.value)
