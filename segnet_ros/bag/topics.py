"""Which image topics are segmented, and under which namespace each one's outputs go.

The node, started in a camera's namespace, subscribes to ``image`` (or ``image/compressed``) and
publishes ``class_mask`` etc. beside it. The bag tool names outputs the same way: ``/front/image_raw``
and ``/front/image_raw/compressed`` both write ``/front/class_mask``; ``--topic T:=NS`` chooses
another namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.decode import SUPPORTED_ENCODINGS, is_supported
from ..core.outputs import OUTPUTS
from .reader import BagReader, Topic
from .typestore import BagError

TRANSPORT_SUFFIXES = ("compressed",)  # image_transport's name for CompressedImage topics


@dataclass(frozen=True)
class TopicPlan:
    """One input topic to segment and where its outputs go."""

    topic: Topic
    namespace: str  # "" (the root) or "/front"

    def output(self, name: str) -> str:
        return f"{self.namespace}/{name}"


def namespace_of(topic: str, compressed: bool) -> str:
    """The node's namespace for an image topic: the topic without its image name (and transport)."""
    parts = [p for p in topic.split("/") if p]
    if compressed and len(parts) > 1 and parts[-1] in TRANSPORT_SUFFIXES:
        parts = parts[:-1]
    return "".join(f"/{p}" for p in parts[:-1])


def parse_topic(text: str) -> tuple[str, str | None]:
    """``--topic`` as (topic, namespace or None): ``/cam/image_raw`` or ``/cam/image_raw:=/cam/seg``."""
    topic, sep, namespace = text.partition(":=")
    topic = topic.strip()
    if not topic.startswith("/"):
        topic = "/" + topic
    if not sep:
        return topic, None
    namespace = "/" + namespace.strip().strip("/") if namespace.strip().strip("/") else ""
    return topic, namespace


def _skip_reason(reader: BagReader, topic: Topic) -> str | None:
    """Why ``topic`` is not a colour camera worth segmenting by default (depth, compressedDepth)."""
    if topic.count == 0:
        return "it holds no messages"
    if topic.name.rsplit("/", 1)[-1] in OUTPUTS:
        return "it is a segnet_ros output"
    if topic.name.rstrip("/").endswith("compressedDepth"):
        return "it is a compressed depth image"
    if topic.compressed:
        return None
    first = reader.first(topic.name)
    if first is not None and not is_supported(first.encoding):
        return f"its encoding {first.encoding} is not supported (supported: {', '.join(SUPPORTED_ENCODINGS)})"
    return None


def _raw_twin(topic: str) -> str:
    """The raw topic whose image_transport twin ``topic`` would be: ``/cam/image_raw/compressed`` ->
    ``/cam/image_raw`` ("" for a topic not named ``.../compressed``)."""
    head, _, tail = topic.rstrip("/").rpartition("/")
    return head if tail in TRANSPORT_SUFFIXES and head else ""


def _separate(plans: list[TopicPlan], notes: list[str]) -> list[TopicPlan]:
    """Topics the automatic choice put in one namespace (``/image`` and ``/compressed_image`` both in
    the root) each get a namespace of their own, their topic's name, saying so; the first keeps its."""
    seen: set[str] = set()
    separated = []
    for plan in sorted(plans, key=lambda p: p.topic.compressed):  # a raw topic keeps its namespace first
        if plan.namespace in seen:
            moved = TopicPlan(plan.topic, plan.topic.name.rstrip("/"))
            notes.append(f"{plan.topic.name} shares {plan.namespace or '/'} with another image topic: its outputs "
                         f"go to {moved.namespace}/* (choose with --topic {plan.topic.name}:=NAMESPACE)")
            plan = moved
        seen.add(plan.namespace)
        separated.append(plan)
    return separated


def plan_topics(reader: BagReader, requested: list[tuple[str, str | None]]) -> tuple[list[TopicPlan], list[str]]:
    """The topics to segment, and notes on what was left out (automatic choice only).

    Named topics must exist and be images. With none named, every image topic is taken, except depth
    images and ``<raw>/compressed``, image_transport's twin of a raw topic taken; topics that would still
    share a namespace get their own (a note says where). Named topics that would write the same
    outputs are an error that says how to separate them.
    """
    notes: list[str] = []
    plans: list[TopicPlan] = []
    if requested:
        for name, namespace in requested:
            topic = reader.topics.get(name)
            if topic is None:
                images = ", ".join(t.name for t in reader.image_topics) or "none"
                raise BagError(f"topic '{name}' is not in bag '{reader.path}'; its image topics: {images}")
            if not topic.is_image:
                raise BagError(f"topic '{name}' is a {topic.msgtype}, not a sensor_msgs/Image or CompressedImage")
            if any(p.topic.name == name for p in plans):
                continue
            plans.append(TopicPlan(topic, namespace_of(name, topic.compressed) if namespace is None else namespace))
    else:
        for topic in reader.image_topics:
            reason = _skip_reason(reader, topic)
            if reason is not None:
                notes.append(f"not segmenting {topic.name}: {reason} (name it with --topic to segment it anyway)")
                continue
            plans.append(TopicPlan(topic, namespace_of(topic.name, topic.compressed)))
        raw_names = {p.topic.name for p in plans if not p.topic.compressed}
        for plan in [p for p in plans if p.topic.compressed and _raw_twin(p.topic.name) in raw_names]:
            plans.remove(plan)  # image_transport's <raw>/compressed: the same camera twice
            notes.append(f"not segmenting {plan.topic.name}: the raw images of {_raw_twin(plan.topic.name)} are "
                         "segmented instead (name it with --topic to choose it)")
        plans = _separate(plans, notes)
        if not plans:
            raise BagError(f"bag '{reader.path}' has no image topic segnet_ros can segment"
                           + (f": {'; '.join(notes)}" if notes else " (no sensor_msgs/Image or CompressedImage)"))
    by_namespace: dict[str, list[str]] = {}
    for plan in plans:
        by_namespace.setdefault(plan.namespace, []).append(plan.topic.name)
    for plan in plans:
        if plan.topic.name in {other.output(name) for other in plans for name in OUTPUTS}:
            raise BagError(f"segmenting {plan.topic.name} would write its own outputs over it; give it another "
                           f"namespace: --topic {plan.topic.name}:=/another/namespace")
    for namespace, names in by_namespace.items():
        if len(names) > 1:
            raise BagError(f"{' and '.join(names)} would both write {namespace or ''}/class_mask; segment one of "
                           f"them, or give each its own namespace: --topic {names[1]}:=/another/namespace")
    return plans, notes
