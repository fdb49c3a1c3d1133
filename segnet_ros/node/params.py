"""Every parameter of ``segnet_node``: name, default, description, constraint, and whether
it may change while the node runs. The node, the YAML file and the tests all read this table."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..backends import BACKENDS
from ..backends.base import DEVICES, PRECISIONS, BackendOptions
from ..core.preprocess import RESIZE_METHODS
from ..core.render import FILTER_MODES

MASK_SIZES = ("input", "grid", "depth")  # or an explicit WxH
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")
DYNAMIC = ("filter_mode", "overlay_alpha", "ignore_class", "mask_size")


@dataclass(frozen=True)
class Param:
    name: str
    default: bool | int | float | str
    description: str
    choices: tuple[str, ...] = ()
    int_range: tuple[int, int] | None = None

    @property
    def dynamic(self) -> bool:
        return self.name in DYNAMIC


PARAMS: tuple[Param, ...] = (
    Param("model", "fcn-resnet18-cityscapes", "model name (see 'segnet-ros models list') or path to an .onnx"),
    Param("labels", "", "classes.txt; empty: the one beside the model"),
    Param("colors", "", "colors.txt; empty: the one beside the model"),
    Param("input_blob", "input_0", "name of the network's input tensor"),
    Param("output_blob", "output_0", "name of the network's output tensor"),
    Param("model_dir", "", "folder searched first for named models; empty: $SEGNET_ROS_MODELS or the user cache"),
    Param("auto_download", False, "download a named model that is not installed at start-up"),
    Param("backend", "auto", "inference backend; auto: TensorRT, else ONNX Runtime CUDA, else CPU", BACKENDS),
    Param("device", "auto", "ONNX Runtime device", DEVICES),
    Param("threads", 0, "ONNX Runtime CPU threads; 0: its default", int_range=(0, 256)),
    Param("precision", "auto", "TensorRT precision; auto: fp16 where the GPU is fast at it", PRECISIONS),
    Param("engine_cache_dir", "", "TensorRT engine cache folder; empty: the user cache"),
    Param("workspace_mb", 1024, "TensorRT builder workspace limit (MiB)", int_range=(16, 65536)),
    Param("dla_core", -1, "Jetson DLA core for TensorRT; -1: the GPU", int_range=(-1, 7)),
    Param("force_rebuild", False, "rebuild the TensorRT engine even when a cached one matches"),
    Param("resize", "linear", "pre-processing resize; nearest matches jetson-inference exactly", RESIZE_METHODS),
    Param("filter_mode", "linear", "colour filtering of masks and overlays", FILTER_MODES),
    Param("overlay_alpha", 150, "overlay alpha for classes without an explicit alpha", int_range=(0, 255)),
    Param("ignore_class", "void", "class name never chosen (case-insensitive); empty: none"),
    Param("mask_size", "input", "class_mask/confidence/points size: input (pixel for pixel), grid (raw network "
          "grid), depth (the paired depth image's size) or WxH, e.g. 640x480"),
    Param("input_transport", "raw", "raw: subscribe to image; compressed: to image/compressed", TRANSPORTS),
    Param("use_camera_info", False, "subscribe to camera_info and republish it as camera_info_mask"),
    Param("use_depth", False, "subscribe to depth/image and depth/camera_info (registered to the colour camera) "
          "and publish points, a labelled organised cloud aligned with class_mask"),
    Param("depth_slop", 0.0, "seconds a depth stamp may differ from the colour stamp; 0: identical stamps only"),
    Param("depth_timeout", 0.1, "seconds to wait for the matching depth frame (only while depth is arriving)"),
    Param("label_threshold", 0.5, "threshold published in label_info (vision_msgs/LabelInfo), 0..1"),
    Param("max_input_pixels", 33_554_432, "largest input or depth frame accepted (width x height, raw or "
          "compressed, checked before decoding)", int_range=(1, 1 << 31)),
    Param("input_reliability", "best_effort", "input QoS reliability (best_effort accepts both kinds of publisher)",
          RELIABILITIES),
    Param("input_depth", 1, "input QoS queue depth", int_range=(1, 100)),
    Param("output_reliability", "reliable", "output QoS reliability (reliable reaches both kinds of subscriber)",
          RELIABILITIES),
    Param("output_depth", 10, "output QoS queue depth (history kept for reliable subscribers)", int_range=(1, 100)),
    Param("diagnostics_period", 1.0, "seconds between /diagnostics messages"),
)
BY_NAME = {p.name: p for p in PARAMS}


def check(name: str, value) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name``, or None."""
    param = BY_NAME[name]
    if param.choices and value not in param.choices:
        return f"{name} must be one of {', '.join(param.choices)}; got '{value}'"
    if param.int_range is not None and not param.int_range[0] <= value <= param.int_range[1]:
        return f"{name} must be in {param.int_range[0]}..{param.int_range[1]}; got {value}"
    if name == "diagnostics_period" and not value > 0:
        return f"diagnostics_period must be > 0; got {value}"
    if name in ("depth_slop", "depth_timeout") and not 0 <= value <= 10:
        return f"{name} must be in 0..10 seconds; got {value}"
    if name == "label_threshold" and not 0 <= value <= 1:
        return f"label_threshold must be in 0..1; got {value}"
    if name == "mask_size" and parse_mask_size(value) is None:
        return f"mask_size must be one of {', '.join(MASK_SIZES)} or WxH (e.g. 640x480); got '{value}'"
    return None


def parse_mask_size(value: str) -> str | tuple[int, int] | None:
    """``input``/``grid``/``depth``, or (width, height) for ``WxH``; None when it is neither."""
    if value in MASK_SIZES:
        return value
    width, x, height = str(value).lower().partition("x")
    if x and width.isdigit() and height.isdigit() and 0 < int(width) <= 16384 and 0 < int(height) <= 16384:
        return int(width), int(height)
    return None


def backend_options(values: dict) -> BackendOptions:
    """The backend settings among the parameter values (their names are BackendOptions' fields)."""
    names = {f.name for f in fields(BackendOptions)}
    return BackendOptions(**{k: v for k, v in values.items() if k in names})
