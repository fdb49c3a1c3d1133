"""What segnet_ros publishes, by name: one vocabulary for the node, the bag tool and the launch files.

The names are relative topic names (``<camera>/class_mask``); the node and ``segnet-ros bag``
publish/write the same products under the same names with the same contents.
"""

from __future__ import annotations

import yaml

IMAGE_OUTPUTS = ("class_mask", "color_mask", "overlay", "confidence")
# image_transport's "compressed" topics of the pictures worth viewing remotely: PNG for the class ids
# (lossless), JPEG for the colour pictures
COMPRESSED_OUTPUTS = ("class_mask/compressed", "color_mask/compressed", "overlay/compressed")
# per camera: the images, the histogram, the mask's camera_info and (with depth) the labelled cloud
CAMERA_OUTPUTS = IMAGE_OUTPUTS + COMPRESSED_OUTPUTS + ("class_histogram", "camera_info_mask", "points")
# once per model (per node): the class table, as YAML text and as vision_msgs/LabelInfo
MODEL_OUTPUTS = ("class_labels", "label_info")
OUTPUTS = CAMERA_OUTPUTS + MODEL_OUTPUTS
MASK_SIZES = ("input", "grid", "depth")  # or an explicit WxH
# the per-pixel products of a frame: what the whole-frame graph computes (pipeline graph) or the host renders
PRODUCTS = ("class_mask", "confidence", "color_mask", "overlay", "histogram")
_NEEDS = {"class_histogram": ("histogram",), "points": ("class_mask", "confidence")}


def products_for(outputs) -> frozenset[str]:
    """The products that these outputs are made of (``overlay/compressed`` needs ``overlay``, ``points``
    the class mask and the confidence); names that are no product of a frame need none."""
    needed: set[str] = set()
    for name in outputs:
        base = name.split("/")[0]
        needed.update(_NEEDS.get(name, (base,) if base in PRODUCTS else ()))
    return frozenset(needed)


def class_labels_text(model_name: str, class_names, rgba) -> str:
    """The ``class_labels`` message's YAML: the model's name and each class's id, name and RGBA."""
    rows = [{"id": i, "name": name, "rgba": [int(v) for v in rgba[i]]} for i, name in enumerate(class_names)]
    return yaml.safe_dump({"model": model_name, "classes": rows}, sort_keys=False)


def parse_mask_size(value: str) -> str | tuple[int, int] | None:
    """The size of class_mask/confidence: ``input``/``grid``/``depth``, or (width, height) for ``WxH``;
    None when it is neither."""
    if value in MASK_SIZES:
        return value
    width, x, height = str(value).lower().partition("x")
    if x and width.isdigit() and height.isdigit() and 0 < int(width) <= 16384 and 0 < int(height) <= 16384:
        return int(width), int(height)
    return None
