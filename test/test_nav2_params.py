"""``segnet-ros nav2-params``: a layer block that YAML and rcl both read, with this node's topics
and every class name of the model exactly once (the layer ignores a class that no group lists)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from segnet_ros.cli import nav2_params
from segnet_ros.core.errors import ModelError
from segnet_ros.core.refnet import write_reference_model

CITYSCAPES = ["void", "ego_vehicle", "ground", "road", "sidewalk", "building", "wall", "fence", "pole",
              "traffic_light", "traffic_sign", "vegetation", "terrain", "sky", "person", "car", "truck", "bus",
              "train", "motorcycle", "bicycle"]  # jetson-inference's Cityscapes classes.txt
DEEPSCENE = ["trail", "grass", "vegetation", "obstacle", "sky"]
# names YAML or rcl would misread unquoted, or that need escapes
AWKWARD = ["hat/helmet/headwear", "traffic light", "y", "on", "123", "null", 'say "hi"', "back\\slash", "#hash",
           "- dash", "colon: x", "[bracket", "ünïcödé", "zero\u200bwidth", "  "]
TOPICS = {"segmentation_topic": "class_mask", "confidence_topic": "confidence", "labels_topic": "label_info",
          "pointcloud_topic": "points"}
# parameter types as the layer declares them (src/semantic_segmentation_layer.cpp, onInitialize)
LAYER_TYPES = {"plugin": str, "enabled": bool, "observation_sources": str, "combination_method": int,
               "publish_debug_topics": bool, "use_approximate_time_sync": bool}
SOURCE_TYPES = {**dict.fromkeys(TOPICS, str), "observation_persistence": float, "expected_update_rate": float,
                "class_types": list, "max_obstacle_distance": float, "min_obstacle_distance": float,
                "tile_map_decay_time": float, "visualize_tile_map": bool, "use_cost_selection": bool}
GROUP_TYPES = {"classes": list, "base_cost": int, "max_cost": int, "mark_confidence": int,
               "samples_to_max_cost": int, "dominant_priority": bool}


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory) -> dict[int, Path]:
    """Reference networks with the class counts of the zoo models used here."""
    base = tmp_path_factory.mktemp("nav2_onnx")
    return {count: write_reference_model(base / str(count), 320, 160, count).onnx for count in (5, 21)}


def _install(zoo_dirs, onnx_files, folder: str, names: list[str]) -> None:
    """A zoo model as 'segnet-ros models download' leaves it: the ONNX and its classes.txt."""
    target = zoo_dirs.models / folder
    target.mkdir(parents=True)
    (target / "fcn_resnet18.onnx").symlink_to(onnx_files[21 if len(names) > 5 else 5])
    (target / "classes.txt").write_text("".join(f"{n}\n" for n in names))


def _run(capsys, *argv: str) -> tuple[str, str]:
    parser = argparse.ArgumentParser(prog="segnet-ros")
    nav2_params.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["nav2-params", *argv])
    assert args.run(args) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def _layer(text: str, costmap: str = "local_costmap", layer: str = "semantic_segmentation_layer") -> dict:
    data = yaml.safe_load(text)
    params = data if costmap == "none" else data[costmap][costmap]["ros__parameters"]
    assert list(params) == [layer]
    return params[layer]


def _check_format(layer: dict, source: str) -> dict[str, list[str]]:
    """Types as the layer declares them; returns group -> class names."""
    assert layer["plugin"] == "semantic_segmentation_layer::SemanticSegmentationLayer"
    assert layer["observation_sources"].split() == [source]
    for name, kind in LAYER_TYPES.items():
        assert type(layer[name]) is kind, name
    params = layer[source]
    for name, kind in SOURCE_TYPES.items():
        assert type(params[name]) is kind, name
    groups = {}
    for group in params["class_types"]:
        for name, kind in GROUP_TYPES.items():
            assert type(params[group][name]) is kind, f"{group}.{name}"
        assert params[group]["classes"] and all(type(n) is str for n in params[group]["classes"])
        assert 0 <= params[group]["base_cost"] <= 254 and 0 <= params[group]["max_cost"] <= 254
        groups[group] = params[group]["classes"]
    assert set(params) == set(SOURCE_TYPES) | set(groups)
    return groups


def _every_class_once(groups: dict[str, list[str]], names: list[str]) -> None:
    listed = [name for members in groups.values() for name in members]
    assert sorted(listed) == sorted(set(names)) and len(listed) == len(set(listed))


def test_cityscapes_block_has_the_node_topics_and_every_class_once(capsys, zoo_dirs, onnx_files):
    _install(zoo_dirs, onnx_files, "FCN-ResNet18-Cityscapes-512x256", CITYSCAPES)
    out, err = _run(capsys, "--network", "fcn-resnet18-cityscapes")
    assert err == ""
    layer = _layer(out)
    groups = _check_format(layer, "camera")
    assert {layer["camera"][key] for key in TOPICS} == {f"/{topic}" for topic in TOPICS.values()}
    assert all(layer["camera"][key] == f"/{topic}" for key, topic in TOPICS.items())
    _every_class_once(groups, CITYSCAPES)
    assert groups["traversable"] == ["road", "sidewalk"] and "person" in groups["obstacle"]
    assert layer["camera"]["traversable"]["max_cost"] == 0 and layer["camera"]["obstacle"]["max_cost"] == 254
    assert layer["use_approximate_time_sync"] is False  # our three topics share one stamp
    assert "kiwicampus/semantic_segmentation_layer" in out and "bond_timeout: 0.0" in out


def test_deepscene_guess_and_every_name_option(capsys, zoo_dirs, onnx_files):
    _install(zoo_dirs, onnx_files, "FCN-ResNet18-DeepScene-576x320", DEEPSCENE)
    out, _ = _run(capsys, "--network", "fcn-resnet18-deepscene", "--namespace", "/robot/front/", "--camera",
                  "front_rgbd", "--layer-name", "semseg", "--node-name", "seg", "--costmap", "none")
    layer = _layer(out, "none", "semseg")
    groups = _check_format(layer, "front_rgbd")
    assert all(layer["front_rgbd"][key] == f"/robot/front/{topic}" for key, topic in TOPICS.items())
    assert groups == {"traversable": ["trail", "grass"], "obstacle": ["vegetation", "obstacle", "sky"]}
    assert "'robot/front/seg'" in out  # the lifecycle manager hint names the node under its namespace


@pytest.mark.parametrize("namespace, prefix", [("", ""), ("/", ""), ("front", "/front"), ("/a/b", "/a/b")])
def test_topics_are_resolved_under_the_namespace(capsys, zoo_dirs, onnx_files, namespace, prefix):
    _install(zoo_dirs, onnx_files, "FCN-ResNet18-DeepScene-576x320", DEEPSCENE)
    out, _ = _run(capsys, "--network", "fcn-resnet18-deepscene", "--namespace", namespace,
                  "--costmap", "global_costmap")
    layer = _layer(out, "global_costmap")
    assert all(layer["camera"][key] == f"{prefix}/{topic}" for key, topic in TOPICS.items())


def test_awkward_class_names_of_a_model_file_come_out_verbatim(capsys, tmp_path, onnx_files):
    names = AWKWARD + [f"class{i}" for i in range(21 - len(AWKWARD) - 1)] + ["y"]  # 'y' twice
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{n}\n" for n in names[:-1]) + "y\n")
    out, err = _run(capsys, "--model", str(onnx_files[21]), "--labels", str(labels))
    groups = _check_format(_layer(out), "camera")
    stripped = [n.strip() for n in names if n.strip()]  # classes.txt trims names and skips blank lines
    expected = stripped + [f"class #{i}" for i in range(len(stripped), 21)]  # placeholders fill up to 21
    assert list(groups) == ["unsorted"]  # no guess for a model file
    _every_class_once(groups, expected)
    assert groups["unsorted"].count("y") == 1 and "'y' is used by ids" in err
    assert "hat/helmet/headwear" in groups["unsorted"] and 'say "hi"' in groups["unsorted"]


def test_mhp_names_with_slashes(capsys, zoo_dirs, onnx_files):
    names = ["background", "hat/helmet/headwear", "face", "hair"] + [f"part{i}" for i in range(17)]
    _install(zoo_dirs, onnx_files, "FCN-ResNet18-MHP-512x320", names)
    out, _ = _run(capsys, "--network", "fcn-resnet18-mhp")
    groups = _check_format(_layer(out), "camera")
    assert list(groups) == ["unsorted"]
    _every_class_once(groups, names)


def test_rcl_reads_the_block_with_the_types_the_layer_declares(capsys, tmp_path, zoo_dirs, onnx_files):
    """The real ROS parameter parser, in a child process: quoted names stay strings, costs ints, distances
    doubles (a type mismatch would make the layer's declare_parameter throw)."""
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{n}\n" for n in AWKWARD + ["road"]))
    out, _ = _run(capsys, "--model", str(onnx_files[21]), "--labels", str(labels), "--namespace", "ns")
    params_file = tmp_path / "nav2.yaml"
    params_file.write_text(out)
    script = (
        "import json, sys, rclpy\n"
        "from rclpy.context import Context\n"
        "from rclpy.node import Node\n"
        "context = Context()\n"
        "rclpy.init(context=context, args=['--ros-args', '--params-file', sys.argv[1]])\n"
        "node = Node('local_costmap', namespace='local_costmap', context=context,\n"
        "            automatically_declare_parameters_from_overrides=True)\n"
        "print(json.dumps({n: [p.type_.name, p.value] for n, p in node.get_parameters_by_prefix('').items()\n"
        "                  if n.startswith('semantic_segmentation_layer.')}))\n"
        "node.destroy_node()\n"
        "rclpy.shutdown(context=context)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(params_file)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    prefix = "semantic_segmentation_layer.camera."
    assert seen[prefix + "unsorted.classes"][0] == "STRING_ARRAY"
    stripped = [n.strip() for n in AWKWARD if n.strip()] + ["road"]
    assert seen[prefix + "unsorted.classes"][1][:len(stripped)] == stripped
    assert seen[prefix + "labels_topic"] == ["STRING", "/ns/label_info"]
    assert seen[prefix + "max_obstacle_distance"][0] == "DOUBLE" and seen[prefix + "class_types"][0] == "STRING_ARRAY"
    assert seen[prefix + "unsorted.base_cost"][0] == "INTEGER"
    assert seen[prefix + "unsorted.dominant_priority"][0] == "BOOL"
    assert seen["semantic_segmentation_layer.combination_method"][0] == "INTEGER"


@pytest.mark.parametrize("argv", [["--namespace", "a b"], ["--namespace", "a//b"], ["--namespace", "1a"],
                                  ["--camera", "front camera"], ["--layer-name", "semantic-layer"],
                                  ["--node-name", "9"], ["--costmap", "costmap"]])
def test_names_that_cannot_be_parameter_names_are_refused(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        _run(capsys, *argv)
    assert exc.value.code == 2
    assert "nav2-params" in capsys.readouterr().err


def test_a_model_that_is_not_installed_says_how_to_install_it(capsys):
    with pytest.raises(ModelError, match="install it with"):
        _run(capsys, "--network", "fcn-resnet18-sun")


def test_the_layer_topics_are_outputs_of_the_node():
    from segnet_ros.node.segnet_node import OUTPUTS

    assert nav2_params.LAYER_TOPICS == TOPICS
    assert set(TOPICS.values()) <= set(OUTPUTS)
