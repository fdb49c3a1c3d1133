"""config/<family>.yaml: one ROS 2 parameter file per dataset family, naming a registry model."""

from __future__ import annotations

import pytest
import yaml

from segnet_ros.core.render import FILTER_MODES
from segnet_ros.zoo.registry import MODELS, lookup

from conftest import ROOT

PARAMETERS = {"model", "ignore_class", "overlay_alpha", "filter_mode"}
FAMILIES = sorted({m.family for m in MODELS})


def test_one_file_per_family():
    """Beside segnet.yaml (every parameter with its default) and the robot examples, one file per dataset family."""
    examples = {"segnet", "three_cameras"}
    assert sorted(p.stem for p in (ROOT / "config").glob("*.yaml") if p.stem not in examples) == FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_parameter_file(family):
    path = ROOT / "config" / f"{family}.yaml"
    document = yaml.safe_load(path.read_text())
    assert list(document) == ["/**"] and list(document["/**"]) == ["ros__parameters"]
    parameters = document["/**"]["ros__parameters"]
    assert set(parameters) == PARAMETERS
    model = lookup(parameters["model"])
    assert model.family == family and parameters["model"] == model.name
    assert parameters["ignore_class"] == ("void" if family == "cityscapes" else "")
    assert isinstance(parameters["overlay_alpha"], int) and 0 <= parameters["overlay_alpha"] <= 255
    assert parameters["filter_mode"] in FILTER_MODES
    for line in path.read_text().splitlines():  # every parameter says why it has its value
        if line.strip().split(":")[0] in PARAMETERS:
            assert "#" in line.split(":", 1)[1], line
