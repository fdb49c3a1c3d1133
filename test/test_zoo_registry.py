"""The registry against the reference table (segnet-semantics.md section 1), copied here independently."""

from __future__ import annotations

import pytest

from segnet_ros.core.errors import ModelError
from segnet_ros.core.refnet import grid_size
from segnet_ros.zoo.registry import MODELS, URL_BASE_ENV, lookup

BOX = "https://nvidia.box.com/shared/static/"
# name, aliases, input, grid, classes, folder, url id
TABLE = [
    ("fcn-resnet18-cityscapes-512x256", ["fcn-resnet18-cityscapes"], (512, 256), (16, 8), 21,
     "FCN-ResNet18-Cityscapes-512x256", "k7s7gdgi098309fndm2xbssj553vf71s"),
    ("fcn-resnet18-cityscapes-1024x512", [], (1024, 512), (32, 16), 21,
     "FCN-ResNet18-Cityscapes-1024x512", "9aqg4gpjmk7ipz4z0raa5mvs35om6emy"),
    ("fcn-resnet18-cityscapes-2048x1024", [], (2048, 1024), (64, 32), 21,
     "FCN-ResNet18-Cityscapes-2048x1024", "ylh3d2qk8qvitalq8sy803o7avrb6w0h"),
    ("fcn-resnet18-deepscene-576x320", ["fcn-resnet18-deepscene"], (576, 320), (18, 10), 5,
     "FCN-ResNet18-DeepScene-576x320", "jm0zlezvweiimpzluohg6453s0u0nvcv"),
    ("fcn-resnet18-deepscene-864x480", [], (864, 480), (27, 15), 5,
     "FCN-ResNet18-DeepScene-864x480", "gooux9b5nknk8wlk60ou9s2unpo760iq"),
    ("fcn-resnet18-mhp-512x320", ["fcn-resnet18-mhp"], (512, 320), (16, 10), 21,
     "FCN-ResNet18-MHP-512x320", "dgaw0ave3bdws1t5ed333ftx5dbpt9zv"),
    ("fcn-resnet18-mhp-640x360", [], (640, 360), (20, 12), 21,
     "FCN-ResNet18-MHP-640x360", "50mvlrjwbq9ugkmnnqp1sm99g2j21sfn"),
    ("fcn-resnet18-voc-320x320", ["fcn-resnet18-voc", "fcn-resnet18-pascal-voc", "fcn-resnet18-pascal-voc-320x320"],
     (320, 320), (10, 10), 21, "FCN-ResNet18-Pascal-VOC-320x320", "p63pgrr6tm33tn23913gq6qvaiarydaj"),
    ("fcn-resnet18-voc-512x320", ["fcn-resnet18-pascal-voc-512x320"], (512, 320), (16, 10), 21,
     "FCN-ResNet18-Pascal-VOC-512x320", "njup7f3vu4mgju89kfre98olwljws5pk"),
    ("fcn-resnet18-sun-512x400", ["fcn-resnet18-sun", "fcn-resnet18-sun-rgbd", "fcn-resnet18-sun-rgbd-512x400"],
     (512, 400), (16, 13), 21, "FCN-ResNet18-SUN-RGBD-512x400", "5vs9t2wah5axav11k8o3l9skb7yy3xgd"),
    ("fcn-resnet18-sun-640x512", ["fcn-resnet18-sun-rgbd-640x512"], (640, 512), (20, 16), 21,
     "FCN-ResNet18-SUN-RGBD-640x512", "z5llxysbcqd8zzzsm7vjqeihs7ihdw20"),
]


def test_eleven_models_in_table_order():
    assert [model.name for model in MODELS] == [row[0] for row in TABLE]


@pytest.mark.parametrize("name,aliases,size,grid,classes,folder,box", TABLE, ids=[row[0] for row in TABLE])
def test_every_name_and_alias_resolves_to_its_model(name, aliases, size, grid, classes, folder, box):
    model = lookup(name)
    assert model.name == name
    assert (model.width, model.height) == size and model.resolution == f"{size[0]}x{size[1]}"
    assert (model.grid_width, model.grid_height) == grid == grid_size(*size)
    assert model.classes == classes and model.dir == folder and model.archive == f"{folder}.tar.gz"
    assert model.url == f"{BOX}{box}.gz" and model.download_url() == model.url
    assert set(model.aliases) == set(aliases)
    for spelling in (name, *aliases, folder):
        for variant in (spelling, spelling.replace("-", "_"), spelling.upper(), f"  {spelling.title()} "):
            assert lookup(variant) is model, variant


def test_no_spelling_names_two_models():
    owner: dict[str, str] = {}
    for model in MODELS:
        for spelling in (model.name, *model.aliases, model.dir):
            assert owner.setdefault(spelling.replace("_", "-").lower(), model.name) == model.name, spelling
    assert len(owner) >= sum(1 + len(row[1]) for row in TABLE)


def test_families_match_the_config_files():
    assert {m.family for m in MODELS} == {"cityscapes", "deepscene", "mhp", "voc", "sun"}
    assert all(m.family in m.name for m in MODELS)


@pytest.mark.parametrize("typo,suggested", [
    ("fcn-resnet18-citiscapes", "fcn-resnet18-cityscapes"),
    ("fcn_resnet18_deepscene_576x32", "fcn-resnet18-deepscene-576x320"),
    ("voc", "fcn-resnet18-voc-320x320"),
])
def test_unknown_names_suggest_the_closest(typo, suggested):
    with pytest.raises(ModelError) as caught:
        lookup(typo)
    message = str(caught.value)
    assert message.startswith(f"unknown network '{typo}'; did you mean ") and suggested in message
    assert "segnet-ros models list" in message


def test_unknown_name_without_a_close_match_suggests_nothing():
    with pytest.raises(ModelError) as caught:
        lookup("mobilenet")
    assert "did you mean" not in str(caught.value) and "segnet-ros models list" in str(caught.value)


def test_url_base_override(monkeypatch):
    model = lookup("fcn-resnet18-mhp")
    monkeypatch.setenv(URL_BASE_ENV, "http://mirror.local/zoo/")
    assert model.download_url() == "http://mirror.local/zoo/FCN-ResNet18-MHP-512x320.tar.gz"
    assert model.download_url("http://10.0.0.2:8000") == "http://10.0.0.2:8000/FCN-ResNet18-MHP-512x320.tar.gz"
