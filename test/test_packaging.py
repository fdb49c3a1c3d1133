"""The ROS packaging: colcon builds the package and installs what `ros2 run`/`ros2 launch` need."""

import json
import os
import re
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


def test_colcon_builds_only_segnet_ros():
    """msgs/ holds vision_msgs for the pip path only: a ROS workspace uses the real package."""
    assert (ROOT / "msgs" / "COLCON_IGNORE").is_file()


def test_vision_msgs_copy_has_the_upstream_definitions():
    """Field for field ros-perception/vision_msgs 4.1.1 (comments are ours and do not count)."""
    upstream = {
        "VisionClass": ["uint16 class_id", "string class_name"],
        "LabelInfo": ["std_msgs/Header header", "vision_msgs/VisionClass[] class_map", "float32 threshold"],
    }
    folder = ROOT / "msgs" / "vision_msgs"
    assert sorted(p.stem for p in (folder / "msg").glob("*.msg")) == sorted(upstream)
    for name, fields in upstream.items():
        lines = [line.split("#")[0].strip() for line in (folder / "msg" / f"{name}.msg").read_text().splitlines()]
        assert [" ".join(line.split()) for line in lines if line] == fields, name
        assert f"msg/{name}.msg" in (folder / "CMakeLists.txt").read_text()
    package = ET.parse(folder / "package.xml").getroot()
    assert package.findtext("name") == "vision_msgs" and package.findtext("version") == "4.1.1"
    assert {e.text for e in package if e.tag.endswith("depend")} == {
        "ament_cmake", "rosidl_default_generators", "std_msgs", "rosidl_default_runtime"}
    assert package.findtext("member_of_group") == "rosidl_interface_packages"


def test_a_private_domain_is_one_no_other_run_on_this_machine_holds(tmp_path):
    """Runs side by side (make test beside make test-jazzy) each reserve a domain: with all but one
    held by this test, the child takes that one, and holds it while it lives."""
    import fcntl

    def lock(domain: int) -> int:
        fd = os.open(tmp_path / f"segnet_ros_domain_{domain}.lock", os.O_WRONLY | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        return fd

    held = [lock(domain) for domain in range(1, 101) if domain != 37]
    code = ("import sys\n"
            "from segnet_ros.demo.harness import private_ros_environment\n"
            "print(private_ros_environment()['ROS_DOMAIN_ID'], flush=True)\n"
            "sys.stdin.readline()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGNET_PRIVATE")}
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**env, "TMPDIR": str(tmp_path)})
    try:
        assert child.stdout.readline().strip() == "37"
        with pytest.raises(BlockingIOError):
            held.append(lock(37))
    finally:
        child.communicate("\n", timeout=30)
        for fd in held:
            os.close(fd)
    assert child.returncode == 0


@pytest.mark.parametrize("version, expected", [
    ("3.3.11", {"ROS_LOCALHOST_ONLY": "1"}),  # Humble: no discovery range yet
    ("7.1.6", {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}),  # Jazzy: ROS_LOCALHOST_ONLY is deprecated
    ("9.1.2", {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}),  # Kilted
])
def test_private_ros_environment_chooses_loopback_per_distro(tmp_path, version, expected):
    """The distro is read from the rclpy found on the path, which must not be imported."""
    site = tmp_path / "lib" / "python3" / "site-packages"
    (site / "rclpy").mkdir(parents=True)
    (site / "rclpy" / "__init__.py").write_text("raise SystemExit('rclpy was imported')\n")
    (tmp_path / "share" / "rclpy").mkdir(parents=True)
    (tmp_path / "share" / "rclpy" / "package.xml").write_text(
        f'<?xml version="1.0"?>\n<package format="2">\n  <name>rclpy</name>\n'
        f'  <version>{version}</version>\n</package>\n')
    code = ("import json, os, sys\n"
            "from segnet_ros.demo.harness import private_ros_environment\n"
            "env = private_ros_environment()\n"
            "print(json.dumps([env, 'rclpy' in sys.modules, os.environ.get('ROS_LOCALHOST_ONLY')]))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROS_", "AMENT_", "SEGNET_PRIVATE"))}
    env.update(PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), ROS_LOCALHOST_ONLY="1")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    chosen, imported, localhost_only = json.loads(result.stdout)
    assert not imported
    assert {k: v for k, v in chosen.items() if k.startswith("ROS_") and k != "ROS_DOMAIN_ID"} == expected
    assert re.fullmatch(r"\d+", chosen["ROS_DOMAIN_ID"])
    assert localhost_only == expected.get("ROS_LOCALHOST_ONLY")  # a user's ROS_LOCALHOST_ONLY is dropped on Iron+
