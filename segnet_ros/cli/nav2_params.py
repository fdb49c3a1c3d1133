"""``segnet-ros nav2-params``: a ready-to-edit Nav2 semantic segmentation layer block for this node.

The layer drops (with a "CRITICAL ERROR" log) every class of ``label_info`` it has no group for, and it
matches classes by name, so the block lists every class name of the model exactly once, read from the
model's files the way the node reads them (no backend, no inference).

The parameter format is the one of kiwicampus/semantic_segmentation_layer, identical on its branches
``humble`` (ed010950a26257a511363dd40b49f8af4297dfd4) and ``jazzy`` (274c713b78c80f2cb2fa9ef2700dcc0bd63bcaef):
  - README.md, section "Configuration" (the sample block);
  - src/semantic_segmentation_layer.cpp, ``SemanticSegmentationLayer::onInitialize()``: the layer-level
    parameters, ``observation_sources`` (a whitespace-separated string), the per-source parameters and
    their types (topics: string; distances and times: double; costs, mark_confidence,
    samples_to_max_cost: int; dominant_priority: bool), ``class_types`` and ``<source>.<type>.classes``;
    ``use_approximate_time_sync`` exists from ``jazzy`` on (default true; ``humble`` always pairs exactly);
  - src/segmentation_buffer.cpp, ``SegmentationBuffer::createSegmentationCostMultimap()``: class names
    of LabelInfo that no group lists are ignored.
"""

from __future__ import annotations

import argparse
import re
import sys

from ..core.errors import ModelError
from ..zoo import registry
from .common import add_model_file_arguments, load_from_args

PLUGIN = "semantic_segmentation_layer::SemanticSegmentationLayer"
# layer parameter -> this node's topic (relative to the node's namespace)
LAYER_TOPICS = {
    "segmentation_topic": "class_mask",
    "confidence_topic": "confidence",
    "labels_topic": "label_info",
    "pointcloud_topic": "points",
}
COSTMAPS = ("local_costmap", "global_costmap", "none")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # one ROS name token: also one parameter name segment
# Classes a robot may drive on, by zoo model family: a starting point only, compared case-insensitively.
TRAVERSABLE_GUESS = {
    "cityscapes": ("road", "sidewalk"),
    "deepscene": ("trail", "grass"),
    "sun": ("floor",),
}
# group -> (base_cost, max_cost, mark_confidence, samples_to_max_cost, dominant_priority)
COSTS = {
    "traversable": (0, 0, 0, 0, False),
    "obstacle": (127, 254, 180, 3, False),
    "unsorted": (127, 254, 180, 3, False),
}


def _token(what: str):
    """An argparse type: one ROS name token, because the layer uses it inside parameter names."""

    def parse(text: str) -> str:
        if not _NAME.match(text):
            raise argparse.ArgumentTypeError(f"{what} must be letters, digits and '_' (not first a digit); "
                                             f"got '{text}'")
        return text

    return parse


def _namespace(text: str) -> str:
    """``''``, ``'/'``, ``'front'`` or ``'/robot/front/'`` -> ``''``, ``''``, ``'/front'``, ``'/robot/front'``."""
    tokens = [t for t in text.strip().split("/") if t]
    if not all(_NAME.match(t) for t in tokens) or "//" in text.strip().strip("/"):
        raise argparse.ArgumentTypeError(f"not a ROS namespace: '{text}'")
    return "".join(f"/{t}" for t in tokens)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "nav2-params", help="print a Nav2 semantic segmentation layer parameter block for a model",
        description="Print the parameters of the Nav2 semantic segmentation costmap layer "
                    "(kiwicampus semantic_segmentation_layer) for segnet_node: its topics under --namespace "
                    "and every class name of the model, sorted into groups to edit. Reads only the "
                    "model's files; runs no inference.")
    add_model_file_arguments(parser)
    group = parser.add_argument_group("Nav2")
    group.add_argument("--namespace", type=_namespace, default="",
                       help="the segnet node's namespace (default: none); its topics are resolved under it")
    group.add_argument("--node-name", "--node_name", dest="node_name", type=_token("--node-name"), default="segnet",
                       help="the segnet node's name, for the lifecycle manager hint (default segnet)")
    group.add_argument("--camera", type=_token("--camera"), default="camera",
                       help="observation source name in the layer (default camera)")
    group.add_argument("--layer-name", "--layer_name", dest="layer_name", type=_token("--layer-name"),
                       default="semantic_segmentation_layer",
                       help="the layer's name in the costmap's plugins list (default semantic_segmentation_layer)")
    group.add_argument("--costmap", choices=COSTMAPS, default="local_costmap",
                       help="wrap the block in <costmap>: <costmap>: ros__parameters: (default local_costmap); "
                            "none: print the layer block alone")
    parser.set_defaults(run=run)


def _quote(text: str) -> str:
    """A YAML double-quoted scalar: always quoted, so that rcl never reads a class name such as
    'y', 'on' or '12' as a bool or a number (a string array must hold strings only)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _family(args: argparse.Namespace) -> str:
    """The zoo family of --network (no guess for --model files or the reference network)."""
    if args.model:
        return ""
    try:
        return registry.lookup(args.network).family
    except ModelError:  # reference, reference-WxH
        return ""


def _unique(names: tuple[str, ...]) -> tuple[list[tuple[int, str]], list[str]]:
    """(id, name) of each name's first id, and warnings for repeated names: the layer maps a name to one id."""
    first: dict[str, int] = {}
    warnings = []
    for index, name in enumerate(names):
        if name in first:
            warnings.append(f"class name '{name}' is used by ids {first[name]} and {index}; the layer maps "
                            "a name to one id, so give the classes distinct names in classes.txt")
        else:
            first[name] = index
    return [(index, name) for name, index in first.items()], warnings


def groups(names: tuple[str, ...], family: str) -> dict[str, list[tuple[int, str]]]:
    """Every class in exactly one group: the family's guessed traversable classes, then the rest."""
    classes, _ = _unique(names)
    wanted = {n.lower() for n in TRAVERSABLE_GUESS.get(family, ())}
    traversable = [(i, n) for i, n in classes if n.lower() in wanted]
    rest = [(i, n) for i, n in classes if n.lower() not in wanted]
    result = {"traversable": traversable} if traversable else {}
    if rest:
        result["obstacle" if family in TRAVERSABLE_GUESS else "unsorted"] = rest
    return result


_GROUP_NOTES = {
    "traversable": ("GUESSED traversable for {dataset}: free space. Review for your robot.",),
    "obstacle": ("Everything else, GUESSED not traversable: cost 127 at the first sighting, lethal (254) once",
                 "3 sightings average a confidence above 180/255. Move classes your robot may cross to",
                 "'traversable' (or a new group listed in class_types)."),
    "unsorted": ("REVIEW: no guess for this model, so every class starts here, marked as an obstacle",
                 "(127 at the first sighting, 254 once 3 sightings average a confidence above 180/255).",
                 "Move the classes your robot may drive on into a new group, e.g. 'traversable' with every",
                 "cost 0, and add that group's name to class_types."),
}


def render(names: tuple[str, ...], model_name: str, dataset: str, family: str, namespace: str = "",
           camera: str = "camera", layer_name: str = "semantic_segmentation_layer", node_name: str = "segnet",
           costmap: str = "local_costmap") -> str:
    """The YAML text: topics resolved under ``namespace``, every class name once."""
    sorted_groups = groups(names, family)
    node_path = f"{namespace.lstrip('/')}/{node_name}" if namespace else node_name
    lines = [
        f"# Nav2 semantic segmentation costmap layer for segnet_node: model {model_name} ({len(names)} classes).",
        "# Made by 'segnet-ros nav2-params'. Format: github.com/kiwicampus/semantic_segmentation_layer",
        "# (branches humble and jazzy), README.md 'Configuration' and src/semantic_segmentation_layer.cpp.",
        f"# Add '{layer_name}' to the costmap's plugins, e.g.",
        f'#   plugins: ["voxel_layer", "{layer_name}", "inflation_layer"]',
        "# Run segnet_node with use_depth:=true mask_size:=depth (launch/segnet_nav2.launch.py does), so that",
        "# points is pixel-aligned with class_mask and carries the same stamp.",
        f"# Lifecycle: add '{node_path}' to a nav2_lifecycle_manager's node_names with bond_timeout: 0.0",
        "# (segnet_lifecycle_node has no bond).",
        "# The layer ignores a class of label_info that no group lists: keep every class in some group.",
    ]
    indent = ""
    if costmap != "none":
        lines += [f"{costmap}:", f"  {costmap}:", "    ros__parameters:"]
        indent = " " * 6
    source = {key: _quote(f"{namespace}/{topic}") for key, topic in LAYER_TOPICS.items()}
    body = [
        f"{layer_name}:",
        f"  plugin: {_quote(PLUGIN)}",
        "  enabled: true",
        f"  observation_sources: {_quote(camera)}  # space-separated names of sources like '{camera}' below",
        "  combination_method: 1  # 1: max with the layers below, 0: overwrite",
        "  publish_debug_topics: false",
        "  use_approximate_time_sync: false  # jazzy and later; segnet stamps class_mask, confidence and points"
        " alike",
        f"  {camera}:",
        f"    segmentation_topic: {source['segmentation_topic']}  # mono8 class ids",
        f"    confidence_topic: {source['confidence_topic']}  # mono8 0..255",
        f"    labels_topic: {source['labels_topic']}  # vision_msgs/LabelInfo, reliable + transient local",
        f"    pointcloud_topic: {source['pointcloud_topic']}  # organised, pixel-aligned with class_mask",
        "    observation_persistence: 0.0",
        "    expected_update_rate: 0.0",
        "    visualize_tile_map: false",
        "    use_cost_selection: true  # several pixels on one tile: keep the highest max_cost (false: confidence)",
        "    max_obstacle_distance: 5.0  # metres; beyond it depth is too coarse to mark",
        "    min_obstacle_distance: 0.3",
        "    tile_map_decay_time: 5.0  # seconds an observation stays on its tile",
        f"    class_types: [{', '.join(_quote(name) for name in sorted_groups)}]",
    ]
    for group, members in sorted_groups.items():
        base, top, confidence, samples, dominant = COSTS[group]
        body.append(f"    {group}:")
        body += [f"      # {note.format(dataset=dataset)}" for note in _GROUP_NOTES[group]]
        body.append("      classes:")
        body += [f"        - {_quote(name)}  # id {index}" for index, name in members]
        body += [
            f"      base_cost: {base}  # at the first observation (0 free .. 254 lethal)",
            f"      max_cost: {top}  # once samples_to_max_cost observations average above mark_confidence",
            f"      mark_confidence: {confidence}  # 0..255, like the confidence topic",
            f"      samples_to_max_cost: {samples}",
            f"      dominant_priority: {'true' if dominant else 'false'}  # true: clears other classes off the tile",
        ]
    lines += [indent + line for line in body]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    model = load_from_args(args)
    _, warnings = _unique(model.classes.names)
    for warning in warnings:
        print(f"segnet-ros: warning: {warning}", file=sys.stderr)
    family = _family(args)
    dataset = registry.lookup(args.network).dataset if family else ""
    sys.stdout.write(render(model.classes.names, model.name, dataset, family,
                            namespace=args.namespace, camera=args.camera, layer_name=args.layer_name,
                            node_name=args.node_name, costmap=args.costmap))
    return 0
