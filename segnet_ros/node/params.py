"""Every parameter of ``segnet_node``: name, default, description, constraint, and whether
it may change while the node runs. The node, the YAML file and the tests all read this table."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, fields

from ..backends import BACKENDS
from ..backends.base import DEVICES, PRECISIONS, BackendOptions
from ..core.outputs import MASK_SIZES, parse_mask_size
from ..core.preprocess import RESIZE_METHODS
from ..core.render import FILTER_MODES
from ..core.segnet import PIPELINES
from ..zoo import DEFAULT_NETWORK

TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")
INPUT_RELIABILITIES = ("auto", *RELIABILITIES)
BATCHING = ("auto", "always", "never")  # not on/off: YAML reads those as booleans
# a camera name is a relative topic namespace: "front", "left_stereo", "arm/wrist"
CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*")
DYNAMIC = ("filter_mode", "overlay_alpha", "ignore_class", "mask_size")


@dataclass(frozen=True)
class Param:
    name: str
    default: bool | int | float | str | tuple[str, ...]  # a tuple: a string array parameter
    description: str
    choices: tuple[str, ...] = ()
    int_range: tuple[int, int] | None = None

    @property
    def dynamic(self) -> bool:
        return self.name in DYNAMIC


PARAMS: tuple[Param, ...] = (
    Param("cameras", (), "camera names: each subscribes <name>/image (...) and publishes <name>/class_mask (...), "
          "all on one shared model; empty: one camera on image, class_mask, ..."),
    Param("batching", "auto", "frames of several cameras in one backend call; auto: where it pays (GPUs, OpenVINO)",
          BATCHING),
    Param("model", DEFAULT_NETWORK, "model name (see 'segnet-ros models list') or path to an .onnx"),
    Param("labels", "", "classes.txt; empty: the one beside the model"),
    Param("colors", "", "colors.txt; empty: the one beside the model"),
    Param("input_blob", "input_0", "name of the network's input tensor"),
    Param("output_blob", "output_0", "name of the network's output tensor"),
    Param("model_dir", "", "folder searched first for named models; empty: $SEGNET_ROS_MODELS or the user cache"),
    Param("auto_download", False, "download a named model that is not installed at start-up"),
    Param("backend", "auto", "inference backend; auto: TensorRT, else ONNX Runtime CUDA, else the fastest CPU backend "
          "for the precision (OpenVINO or ONNX Runtime; 'segnet-ros benchmark' compares them)", BACKENDS),
    Param("device", "auto", "ONNX Runtime device", DEVICES),
    Param("threads", 0, "CPU threads for ONNX Runtime and OpenVINO; 0: their default", int_range=(0, 256)),
    Param("precision", "auto", "auto: TensorRT fp16 where the GPU is fast at it; on the CPU int8 where 'segnet-ros "
          "quantize' installed a model of this ONNX file that passed its check, "
          "bf16 where the CPU has it natively (OpenVINO), else fp32",
          PRECISIONS),
    Param("pipeline", "auto", "where the per-pixel work runs: graph (the whole frame inside the backend's engine: "
          "the CPU touches no pixel), host (numpy) or auto (graph on GPUs, host on CPUs, where it is faster)",
          PIPELINES),
    Param("engine_cache_dir", "", "TensorRT engine cache folder; empty: the user cache"),
    Param("workspace_mb", 1024, "TensorRT builder workspace limit (MiB)", int_range=(16, 65536)),
    Param("dla_core", -1, "Jetson DLA core for TensorRT; -1: the GPU", int_range=(-1, 7)),
    Param("force_rebuild", False, "rebuild the TensorRT engine even when a cached one matches"),
    Param("resize", "linear", "pre-processing resize; nearest matches jetson-inference exactly", RESIZE_METHODS),
    Param("filter_mode", "linear", "colour filtering of masks and overlays", FILTER_MODES),
    Param("overlay_alpha", 150, "overlay alpha for classes without an explicit alpha", int_range=(0, 255)),
    Param("ignore_class", "void", "class name never chosen (case-insensitive); empty or none: none"),
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
    Param("input_reliability", "auto", "input QoS reliability; auto: what the publishers offer (reliable when "
          "every publisher is, else best_effort), followed while the node runs", INPUT_RELIABILITIES),
    Param("input_depth", 1, "input QoS queue depth", int_range=(1, 100)),
    Param("output_reliability", "reliable", "output QoS reliability (reliable reaches both kinds of subscriber)",
          RELIABILITIES),
    Param("jpeg_quality", 80, "JPEG quality of overlay/compressed and color_mask/compressed",
          int_range=(1, 100)),
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
    if name == "cameras":
        bad = [camera for camera in value if not CAMERA_NAME.fullmatch(camera)]
        if bad:
            return (f"cameras must be relative topic names (letters, digits, '_', '/'; starting with a letter); "
                    f"got {', '.join(repr(b) for b in bad)}")
        if len(set(value)) != len(value):
            return f"cameras must not repeat a name; got {list(value)}"
    if name == "mask_size" and parse_mask_size(value) is None:
        return f"mask_size must be one of {', '.join(MASK_SIZES)} or WxH (e.g. 640x480); got '{value}'"
    return None


def backend_options(values: dict) -> BackendOptions:
    """The backend settings among the parameter values (their names are BackendOptions' fields)."""
    names = {f.name for f in fields(BackendOptions)}
    return BackendOptions(**{k: v for k, v in values.items() if k in names})


def unknown_parameters(overrides) -> list[tuple[str, str | None]]:
    """(name, closest declared name or None) for each given parameter the node does not have."""
    known = [p.name for p in PARAMS] + ["use_sim_time", "class_names"]
    names = [name for name in overrides if name not in known and not name.startswith("qos_overrides.")]
    return [(name, next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.6)), None)) for name in names]
