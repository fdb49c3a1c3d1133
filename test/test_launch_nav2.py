"""launch/segnet_nav2.launch.py names real topics, parameters and executables, and uses every argument.

``launch``/``launch_ros`` are not pip-installable here, so the file is checked as source: its constants
against the node's real parameters and topics, and its uses of every argument."""

from __future__ import annotations

import ast
from pathlib import Path

from segnet_ros.node.params import BY_NAME, check
from segnet_ros.node.segnet_node import INPUT_TOPICS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "segnet_nav2.launch.py"


def _constants() -> dict:
    tree = ast.parse(LAUNCH.read_text())
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.isupper()}


def _console_scripts() -> set[str]:
    """The names of setup.py's console_scripts entry points."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return {entry.split("=")[0].strip() for entry in ast.literal_eval(value)}
    raise AssertionError("setup.py declares no console_scripts")


def test_remapped_topics_are_inputs_of_the_node():
    constants = _constants()
    assert set(constants["TOPIC_ARGUMENTS"].values()) == {"image", "camera_info", "depth/image",
                                                          "depth/camera_info"}
    missing = set(constants["TOPIC_ARGUMENTS"].values()) - set(INPUT_TOPICS)
    assert not missing, f"the node does not subscribe to {missing}"


def test_parameters_are_node_parameters_with_valid_values():
    constants = _constants()
    assert set(constants["PARAMETER_ARGUMENTS"]) <= set(BY_NAME)
    assert constants["NAV2_PARAMETERS"] == {"use_depth": True, "mask_size": "depth"}
    for name, value in constants["NAV2_PARAMETERS"].items():
        assert name in BY_NAME, f"the node has no parameter {name}"
        assert type(value) is type(BY_NAME[name].default), name
        assert check(name, value) is None, check(name, value)


def test_executables_are_console_scripts():
    scripts = _console_scripts()
    missing = set(_constants()["EXECUTABLES"].values()) - scripts
    assert not missing, f"setup.py has no console_scripts {missing}"


def test_lifecycle_manager_settings():
    constants = _constants()
    assert constants["NODE_NAME"] == "segnet"
    assert constants["LIFECYCLE_MANAGER_PARAMETERS"] == {"autostart": True, "bond_timeout": 0.0}


def test_every_declared_argument_is_used():
    """Each launch argument is read somewhere in the file (an unused one would silently do nothing)."""
    source = LAUNCH.read_text()
    constants = _constants()
    names = [name for name, _, _ in constants["ARGUMENTS"]]
    assert {"image", "camera_info", "depth_image", "depth_camera_info", "namespace", "params_file", "model",
            "backend", "lifecycle", "use_lifecycle_manager"} <= set(names)
    mapped = set(constants["TOPIC_ARGUMENTS"]) | set(constants["PARAMETER_ARGUMENTS"])
    for name in set(names) - mapped:
        assert f'value("{name}")' in source, f"launch argument {name} is declared but never used"
