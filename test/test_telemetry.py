"""No traffic we did not ask for: ONNX Runtime's telemetry is off in every process of ours, and
OpenVINO's is never started.

ONNX Runtime's official builds send usage events over HTTPS (seen as connection attempts during long
runs) and keep a device id and an event database in the user's cache; ``ORT_DISABLE_TELEMETRY=1``,
set before ONNX Runtime starts, prevents all of it. ``segnet_ros/__init__.py`` sets it.

OpenVINO's runtime sends nothing. Its model converter does (``openvino.convert_model`` and the ``ovc``
tool start ``openvino_telemetry``, which sends usage events to Google Analytics unless
``~/intel/openvino_telemetry`` holds "0", and has no environment switch), so we never call it: the
backend reads ONNX files with ``Core.read_model``.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from conftest import ROOT

OPT_OUT = "ORT_DISABLE_TELEMETRY"


class RecordingListener:
    """A TCP port on 127.0.0.1 that records every connection made to it (a proxy nobody should use)."""

    def __init__(self) -> None:
        self.connections: list[bytes] = []
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:  # the accept timeout: look at the stop flag again
                continue
            with connection:
                connection.settimeout(1)
                try:
                    self.connections.append(connection.recv(200))
                except OSError:
                    self.connections.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def proxy():
    listener = RecordingListener()
    yield listener
    listener.close()


def _env_without_opt_out(**changes: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != OPT_OUT}
    env.update(changes)
    return env


def test_a_segment_run_phones_nobody_and_keeps_no_device_id(tmp_path, proxy):
    """Every proxy variable points at the recording listener; HOME and the cache folder are fresh and empty."""
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((64, 96, 3), 80, np.uint8))
    home, cache = tmp_path / "home", tmp_path / "xdg-cache"
    home.mkdir()
    cache.mkdir()
    proxies = {name: proxy.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                            "all_proxy")}
    env = _env_without_opt_out(HOME=str(home), XDG_CACHE_HOME=str(cache), NO_PROXY="", no_proxy="", **proxies)
    result = subprocess.run(
        [sys.executable, "-m", "segnet_ros.cli.main", "segment", str(image), "--network", "reference-64x32",
         "--backend", "onnxruntime", "--no-progress"], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert proxy.connections == []
    # ONNX Runtime with telemetry on writes Microsoft/DeveloperTools/.onnxruntime/{deviceid,onnxruntime.db} here
    assert [str(p) for p in (*home.rglob("*"), *cache.rglob("*"))] == []


def test_the_opt_out_is_in_place_before_onnxruntime_is_imported():
    code = f"""
import os, sys
assert {OPT_OUT!r} not in os.environ
import segnet_ros
assert os.environ[{OPT_OUT!r}] == "1", "segnet_ros did not opt out"
assert "onnxruntime" not in sys.modules, "onnxruntime was imported before the opt-out"
from segnet_ros.backends.onnxruntime_backend import cuda_available
cuda_available()
assert "onnxruntime" in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=_env_without_opt_out(), cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_a_users_own_setting_is_kept():
    code = f"import os, segnet_ros; print(os.environ[{OPT_OUT!r}])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=_env_without_opt_out(**{OPT_OUT: "0"}), cwd=ROOT)
    assert result.stdout == "0\n", result.stderr


def _imports_onnxruntime(path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(name.split(".")[0] == "onnxruntime" for name in names):
            return True
    return False


def _shipped_python_files() -> list:
    """Our Python files outside the tests: not in hidden folders (virtual environments) or colcon's outputs."""
    skipped = {"test", "build", "install", "log"}
    return [path for path in ROOT.rglob("*.py")
            if not any(part.startswith(".") or part in skipped for part in path.relative_to(ROOT).parts[:-1])]


def test_only_our_package_imports_onnxruntime():
    """An import of onnxruntime inside segnet_ros runs after segnet_ros/__init__.py has opted out; one in a
    script outside it (a benchmark, a tool) would not, so there must be none (the tests are not shipped)."""
    importers = {p.relative_to(ROOT).as_posix() for p in _shipped_python_files() if _imports_onnxruntime(p)}
    assert importers and all(name.startswith("segnet_ros/") for name in importers), importers
    assert not _imports_onnxruntime(ROOT / "segnet_ros" / "__init__.py")


OPENVINO_CONVERTER = ("openvino.tools", "openvino_telemetry")


def _uses_openvinos_converter(path) -> list[str]:
    """Imports of OpenVINO's converter or telemetry, and calls of ``convert_model``, in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        found += [name for name in names if name.startswith(OPENVINO_CONVERTER)]
        if isinstance(node, ast.Attribute) and node.attr == "convert_model" or \
                isinstance(node, ast.Name) and node.id == "convert_model":
            found.append(f"convert_model (line {node.lineno})")
    return found


def test_nothing_of_ours_starts_openvinos_converter_or_its_telemetry():
    users = {p.relative_to(ROOT).as_posix(): found for p in _shipped_python_files()
             if (found := _uses_openvinos_converter(p))}
    assert users == {}
    assert "read_model" in (ROOT / "segnet_ros" / "backends" / "openvino_backend.py").read_text()


def _openvino_child(tmp_path, proxy, code: str, consent: str | None = None):
    """Run ``code`` with a fresh HOME (holding OpenVINO's consent file if given) and every proxy variable
    pointing at the recording listener; CI markers removed (openvino_telemetry stays silent under CI)."""
    pytest.importorskip("openvino")  # FLOOR_SKIP for these tests: the floor has no openvino
    home, cache = tmp_path / "home", tmp_path / "xdg-cache"
    home.mkdir()
    cache.mkdir()
    if consent is not None:
        (home / "intel").mkdir()
        (home / "intel" / "openvino_telemetry").write_text(consent)
    proxies = {name: proxy.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                            "all_proxy")}
    env = _env_without_opt_out(HOME=str(home), XDG_CACHE_HOME=str(cache), NO_PROXY="", no_proxy="",
                               SEGNET_ROS_CACHE=str(tmp_path / "segnet-cache"), **proxies)
    for name in ("CI", "TF_BUILD", "JENKINS_URL"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                            cwd=ROOT)
    assert result.returncode == 0 and result.stdout.endswith("ran\n"), result.stderr
    return home, cache


def test_an_openvino_run_phones_nobody_and_writes_nothing_home(tmp_path, proxy):
    """The OpenVINO backend, every precision this CPU runs: no connection, no file under HOME (a plain
    ``import openvino`` sends an event to Google Analytics and leaves ~/intel/openvino_ga_cid and
    ~/intel/stats), and OpenVINO's telemetry never started."""
    code = """
import sys
import numpy as np
from segnet_ros.backends import BackendOptions, create_backend
from segnet_ros.backends.cpu import cpu_info
from segnet_ros.core.model import load_model
from segnet_ros.zoo import resolve_network
model = load_model(resolve_network("reference-64x32"))
for precision in ["fp32"] + (["bf16"] if cpu_info().has_native_bf16 else []):
    backend = create_backend("openvino", model, BackendOptions(precision=precision))
    assert backend.run(np.zeros(model.input_shape, np.float32)).shape == model.output_shape
    backend.close()
telemetry = sys.modules.get("openvino_telemetry")
assert telemetry is None or telemetry.Telemetry._SingletonMetaClass__single_instance is None, "telemetry started"
print("ran")
"""
    home, cache = _openvino_child(tmp_path, proxy, code)
    assert proxy.connections == []
    assert [str(p) for p in (*home.rglob("*"), *cache.rglob("*"))] == []


def test_a_user_who_opted_in_with_openvinos_tool_is_left_alone(tmp_path, proxy):
    """Their choice stands (as a user's own ORT_DISABLE_TELEMETRY does), and it shows that the listener
    sees OpenVINO's telemetry whenever it is not held back."""
    code = """
import sys
from segnet_ros.backends.openvino_backend import version
version()
print("telemetry loaded" if sys.modules.get("openvino_telemetry") else "telemetry hidden")
print("ran")
"""
    _openvino_child(tmp_path, proxy, code, consent="1")
    deadline = time.monotonic() + 10  # the event is sent from a worker thread; the child waits for it at exit
    while not proxy.connections and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(b"google-analytics" in c for c in proxy.connections), proxy.connections


def _imports(path, package: str) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(name.split(".")[0] == package for name in names):
            return True
    return False


def test_only_the_openvino_backend_imports_openvino():
    """It hides OpenVINO's telemetry before the import; any other importer of ours would not."""
    importers = {p.relative_to(ROOT).as_posix() for p in _shipped_python_files() if _imports(p, "openvino")}
    assert importers == {"segnet_ros/backends/openvino_backend.py"}
