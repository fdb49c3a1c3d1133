from __future__ import annotations

import gc
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from oracle import palette_oracle

ROOT = Path(__file__).resolve().parents[1]
FAKES = ROOT / "test" / "fakes"
FAKE_PACKAGES = ("tensorrt", "pycuda")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets the session's own cache folder, never the user's, and no fake TensorRT
    left over from a test that asked for one (fake_trt)."""
    monkeypatch.setenv("SEGNET_ROS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    leftovers = [n for n in ("tensorrt", "pycuda", "pycuda.driver") if getattr(sys.modules.get(n), "FAKE", False)]
    assert not leftovers and str(FAKES) not in sys.path, f"fake modules leaked: {leftovers}"


@pytest.fixture(autouse=True)
def zoo_dirs(tmp_path_factory, monkeypatch) -> SimpleNamespace:
    """Model folders of this test alone, so no model installed on the machine leaks in."""
    base = tmp_path_factory.mktemp("zoo")
    dirs = SimpleNamespace(models=base / "models", jetson=base / "jetson-inference", system=base / "networks")
    monkeypatch.setenv("SEGNET_ROS_MODELS", str(dirs.models))
    monkeypatch.setenv("JETSON_INFERENCE_ROOT", str(dirs.jetson))
    monkeypatch.setenv("SEGNET_ROS_JETSON_NETWORKS", str(dirs.system))
    monkeypatch.delenv("SEGNET_ROS_MODEL_URL_BASE", raising=False)
    for name in ("no_proxy", "NO_PROXY"):  # the tests' HTTP servers are local, whatever proxy is configured
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    return dirs


@pytest.fixture
def model_server():
    from zoo_helpers import ModelServer

    server = ModelServer()
    yield server
    server.close()


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """The test's own user cache (INT8 models, engines): what one test installs never answers another's lookup."""
    monkeypatch.setenv("SEGNET_ROS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def oracle_model(oracle_dir):
    from segnet_ros.core.model import ModelFiles, load_model

    return load_model(ModelFiles.in_folder(oracle_dir))


@pytest.fixture
def reexported_model(tmp_path):
    """The reference network re-exported at 512x256 whose output is still declared 8x4 (the old size):
    a model that declares one output and computes another."""
    import onnx

    from segnet_ros.core.model import ModelFiles, load_model
    from segnet_ros.core.refnet import write_reference_model

    files = write_reference_model(tmp_path / "ref", 256, 128, 5)
    proto = onnx.load(str(files.onnx))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = 256, 512
    bad = tmp_path / "reexported.onnx"
    onnx.save(proto, str(bad))
    return load_model(ModelFiles(onnx=bad, labels=files.labels))


@pytest.fixture(scope="session")
def oracle_dir(tmp_path_factory) -> Path:
    return palette_oracle(tmp_path_factory.mktemp("oracle"))


@pytest.fixture(scope="session")
def reference_files(tmp_path_factory):
    from segnet_ros.core.refnet import write_reference_model

    return write_reference_model(tmp_path_factory.mktemp("reference"), 512, 256, 21)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def run_cli(*args: str, env: dict | None = None, timeout: float = 120, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run ``segnet-ros`` as users do, in a child process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "segnet_ros.cli.main", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd,
    )


def _is_fake(module) -> bool:
    return str(getattr(module, "__file__", None) or "").startswith(str(FAKES))


def _forget_fake_modules() -> list[str]:
    """Unload the fakes (never a real tensorrt or pycuda); the violations the fake driver had recorded."""
    driver = sys.modules.get("pycuda.driver")
    violations = list(getattr(driver, "VIOLATIONS", [])) if _is_fake(driver) else []
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in FAKE_PACKAGES and _is_fake(module):
            del sys.modules[name]
    return violations


@dataclass
class FakeTensorRT:
    """Handle on the fake tensorrt + pycuda of one test (see test/fakes/README.md)."""

    monkeypatch: pytest.MonkeyPatch
    build_log: Path
    engine_dir: Path
    violations: list[str]

    def configure(self, **settings: str) -> None:
        """Set FAKE_* variables (``gpu_name="X"`` sets FAKE_GPU_NAME); the next import sees a fresh fake."""
        for name, value in settings.items():
            self.monkeypatch.setenv(f"FAKE_{name.upper()}", str(value))
        gc.collect()
        self.violations += _forget_fake_modules()

    @property
    def trt(self):
        import tensorrt

        assert getattr(tensorrt, "FAKE", False), tensorrt.__file__
        return tensorrt

    @property
    def cuda(self):
        import pycuda.driver

        assert getattr(pycuda.driver, "FAKE", False), pycuda.driver.__file__
        return pycuda.driver

    def builds(self) -> int:
        """Engine builds so far, in this process and its children."""
        return len(self.build_log.read_text().splitlines()) if self.build_log.exists() else 0

    def child_env(self) -> dict[str, str]:
        """Environment for a child process that must see the fakes."""
        path = os.environ.get("PYTHONPATH")
        return {"PYTHONPATH": str(FAKES) + (os.pathsep + path if path else "")}


@pytest.fixture
def fake_trt(monkeypatch, tmp_path):
    """The fake tensorrt and pycuda, importable for this test only, with a private engine cache.

    Fails the test if the fakes recorded a contract violation they could not raise (destructors).
    """
    for name in list(os.environ):
        if name.startswith("FAKE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FAKE_TRT_BUILD_LOG", str(tmp_path / "fake-builds.log"))
    monkeypatch.setenv("SEGNET_ROS_CACHE", str(tmp_path / "cache"))
    for name in list(sys.modules):  # a real tensorrt or pycuda, if loaded, is hidden for the test
        if name.split(".")[0] in FAKE_PACKAGES:
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(FAKES))
    fake = FakeTensorRT(monkeypatch, tmp_path / "fake-builds.log", tmp_path / "cache" / "engines", [])
    yield fake
    gc.collect()
    violations = fake.violations + _forget_fake_modules()
    assert not violations, f"the fakes recorded contract violations: {violations}"


@pytest.fixture
def backends():
    """Creates TensorRT backends (on the fakes, with ``fake_trt``) and closes them, and their graph runners,
    after the test, so the fakes can check the teardown."""
    from segnet_ros.backends import BackendOptions, create_backend

    made = []

    def make(model, **options):
        backend = create_backend("tensorrt", model, BackendOptions(**options))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


# -- segnet_node over real DDS (test_node*.py) -----------------------------------------------
@pytest.fixture(scope="module")
def ros_context():
    """rclpy for one test module, on a private, loopback-only DDS domain."""
    from segnet_ros.demo.harness import private_ros_environment

    private_ros_environment()
    import rclpy

    rclpy.init()
    yield
    rclpy.shutdown()


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory):
    """The reference network at 256x128 (grid 8x4): fast enough for many frames."""
    from segnet_ros.core.refnet import write_reference_model

    return write_reference_model(tmp_path_factory.mktemp("ref256"), 256, 128, 21)


@pytest.fixture
def probe(ros_context):
    from segnet_ros.demo.harness import Probe

    p = Probe()
    yield p
    p.close()


@pytest.fixture
def start_node(tmp_path, small_reference):
    started = []

    from segnet_ros.demo.harness import NodeProcess

    def start(params=None, **kwargs):
        merged = {"model": str(small_reference.onnx), "backend": "onnxruntime", "device": "cpu",
                  "diagnostics_period": 0.5, **(params or {})}
        node = NodeProcess(tmp_path / f"node{len(started)}.log", merged, **kwargs)
        started.append(node)
        node.wait_ready()
        return node

    yield start
    for node in started:
        node.stop()
