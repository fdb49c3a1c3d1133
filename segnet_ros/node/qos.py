"""Input subscriptions whose reliability follows the publishers: reliable when every camera publishing
on the topic is reliable, best effort otherwise.

Best effort everywhere loses large frames on a loaded machine: one lost UDP fragment drops the whole
image, and a reliable camera never gets the chance to resend it. Reliable everywhere never matches a
best-effort camera. ``BEST_AVAILABLE`` (Iron and later) chooses once, when the subscription is made,
and picks reliable while no publisher is known, so a best-effort camera started after the node would
never be heard; Humble does not have it at all. So, as rosbag2's recorder does, the node reads the
publishers' QoS from the graph, and looks again every half second while it runs: a subscription is
made anew only when the answer changes.
"""

from __future__ import annotations

from collections.abc import Callable

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
GRAPH_CHECK_S = 0.5


def qos(reliability: str, depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=RELIABILITY[reliability],
                      durability=DurabilityPolicy.VOLATILE)


def follow_publishers(reliabilities: list) -> str:
    """The reliability that hears every publisher and loses nothing it could resend."""
    if reliabilities and all(r == ReliabilityPolicy.RELIABLE for r in reliabilities):
        return "reliable"
    return "best_effort"


class InputSubscription:
    """One input topic. ``setting`` is ``auto`` (follow the publishers), ``reliable`` or ``best_effort``."""

    def __init__(self, node: Node, msg_type, topic: str, callback: Callable, setting: str, depth: int) -> None:
        self.node, self.msg_type, self.topic, self.callback = node, msg_type, topic, callback
        self.setting, self.depth = setting, depth
        self.reliability = setting if setting != "auto" else self._wanted()
        self._subscription = node.create_subscription(msg_type, topic, callback, qos(self.reliability, depth))

    def _wanted(self) -> str:
        infos = self.node.get_publishers_info_by_topic(self.node.resolve_topic_name(self.topic))
        return follow_publishers([info.qos_profile.reliability for info in infos])

    def refresh(self) -> bool:
        """Under ``auto``, subscribe anew when the publishers call for the other reliability; True if so."""
        if self.setting != "auto" or self._subscription is None:
            return False
        wanted = self._wanted()
        if wanted == self.reliability:
            return False
        self.node.destroy_subscription(self._subscription)
        self.reliability = wanted
        self._subscription = self.node.create_subscription(self.msg_type, self.topic, self.callback,
                                                           qos(wanted, self.depth))
        return True

    def destroy(self) -> None:
        if self._subscription is not None:
            self.node.destroy_subscription(self._subscription)
            self._subscription = None
