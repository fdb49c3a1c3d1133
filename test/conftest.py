from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from oracle import palette_oracle

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets the session's own cache folder, never the user's."""
    monkeypatch.setenv("SEGNET_ROS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


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


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``segnet-ros`` as users do, in a child process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "segnet_ros.cli.main", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT,
    )
