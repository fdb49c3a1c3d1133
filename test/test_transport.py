"""The Fast DDS profile the launch files and the demo give the node (ROS-free parts)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from segnet_ros import transport

ROOT = Path(__file__).resolve().parents[1]


def test_the_profile_only_enlarges_the_shared_memory_segment():
    path = transport.profile_path()
    assert path is not None and path.name == transport.PROFILE_NAME
    ns = {"d": "http://www.eprosima.com"}
    tree = ET.parse(ROOT / "config" / transport.PROFILE_NAME)
    kinds = {d.find("d:transport_id", ns).text: d.find("d:type", ns).text
             for d in tree.getroot().iterfind(".//d:transport_descriptor", ns)}
    assert sorted(kinds.values()) == ["SHM", "UDPv4"]  # Fast DDS's own two: discovery and the wire unchanged
    assert int(tree.getroot().find(".//d:segment_size", ns).text) >= 16 << 20  # a 1080p frame's outputs fit
    participant = tree.getroot().find(".//d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    assert [t.text for t in participant.iterfind(".//d:userTransports/d:transport_id", ns)] == list(kinds)
    assert "LARGE_DATA" not in (ROOT / "config" / transport.PROFILE_NAME).read_text().split("-->")[-1]


def test_one_variable_for_this_fast_dds_and_none_over_the_users_choice(monkeypatch):
    for major, name in ((3, "FASTDDS_DEFAULT_PROFILES_FILE"), (2, "FASTRTPS_DEFAULT_PROFILES_FILE")):
        monkeypatch.setattr(transport, "fast_dds_major", lambda major=major: major)
        assert transport.profile_environment("/p.xml", environ={}) == {name: "/p.xml"}
    for variable in transport.PROFILE_VARIABLES:  # the user's own profile wins, whichever variable names it
        assert transport.profile_environment("/p.xml", environ={variable: "/mine.xml"}) == {}


def test_fast_dds_major_reads_the_installed_library(tmp_path, monkeypatch):
    (tmp_path / "lib").mkdir()
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    monkeypatch.setattr(transport.sys, "prefix", str(tmp_path))
    assert transport.fast_dds_major() == 2
    (tmp_path / "lib" / "libfastdds.so.3.2").write_bytes(b"")
    assert transport.fast_dds_major() == 3


def test_launch_files_give_the_profile_to_the_node_only(monkeypatch):
    for variable in transport.PROFILE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    choose = transport.launch_environment
    assert choose("", "/share") == {}
    [(variable, path)] = choose("default", "/opt/ros/share/segnet_ros").items()
    assert variable in transport.PROFILE_VARIABLES
    assert path == f"/opt/ros/share/segnet_ros/config/{transport.PROFILE_NAME}"
    assert list(choose("/mine.xml", "/share").values()) == ["/mine.xml"]
    monkeypatch.setenv(transport.PROFILE_VARIABLES[0], "/users.xml")
    assert choose("default", "/share") == {}  # the user's own profile wins
    for name in ("segnet.launch.py", "segnet_nav2.launch.py"):
        source = (ROOT / "launch" / name).read_text()
        assert "additional_env=launch_environment(" in source and "SetEnvironmentVariable" not in source
        assert "LARGE_DATA" not in source
