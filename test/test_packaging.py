"""The ROS packaging: colcon builds the package and installs what `ros2 run`/`ros2 launch` need."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("colcon")
    result = subprocess.run(
        [str(BIN / "colcon"), "--log-base", str(work / "log"), "build", "--base-paths", str(ROOT),
         "--build-base", str(work / "build"), "--install-base", str(work / "install")],
        capture_output=True, text=True, timeout=300, cwd=work,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return work / "install" / "segnet_ros"


def test_console_scripts_land_where_ros2_run_looks(colcon_install):
    script = colcon_install / "lib" / "segnet_ros" / "segnet-ros"
    assert script.is_file() and os.access(script, os.X_OK)
    site = next(colcon_install.glob("lib/python3*/site-packages"))
    result = subprocess.run([str(script), "segment", "--help"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(site)}, timeout=60)
    assert result.returncode == 0 and "--filter-mode" in result.stdout


def test_launch_and_config_files_are_installed(colcon_install):
    share = colcon_install / "share" / "segnet_ros"
    assert (share / "package.xml").is_file()
    assert (colcon_install / "share" / "ament_index" / "resource_index" / "packages" / "segnet_ros").is_file()
    for folder in ("launch", "config"):
        for source in (ROOT / folder).rglob("*"):
            if source.is_file():
                installed = share / source.relative_to(ROOT)
                assert installed.is_file(), f"{source.relative_to(ROOT)} is not installed"
                assert installed.read_bytes() == source.read_bytes()


def test_package_xml_declares_real_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "segnet_ros"
    depends = {e.text for e in root if e.tag.endswith("depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "python3-numpy", "python3-opencv"} <= depends
    assert root.find("export/build_type").text == "ament_python"


def test_core_never_imports_rclpy():
    """Only the ROS adapter (node/) and the ROS demo (demo/) may use rclpy."""
    for path in (ROOT / "segnet_ros").rglob("*.py"):
        if path.relative_to(ROOT / "segnet_ros").parts[0] in ("node", "demo"):
            continue
        text = path.read_text()
        assert "import rclpy" not in text and "from rclpy" not in text, path
