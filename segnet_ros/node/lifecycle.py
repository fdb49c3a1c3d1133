"""``segnet_lifecycle_node``: the same node as a managed (lifecycle) node, for Nav2's lifecycle manager.

configure loads the model and builds or loads the engine; activate subscribes and starts publishing;
deactivate stops all work but keeps the model; cleanup releases the backend; shutdown works from any
state. Python has no bond library on every distro, so under ``nav2_lifecycle_manager`` set
``bond_timeout: 0.0``.
"""

from __future__ import annotations

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ..core.errors import SegnetError
from .segnet_node import Segmenter


class SegnetLifecycleNode(LifecycleNode):
    """Starts unconfigured; a failed configure leaves it unconfigured with the reason logged."""

    def __init__(self, **kwargs) -> None:
        super().__init__("segnet", **kwargs)
        self.segmenter = Segmenter(self)
        self.get_logger().info("unconfigured: waiting for the configure transition")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.segmenter.configure()
        except SegnetError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self.segmenter.cleanup()
            return TransitionCallbackReturn.FAILURE
        net = self.segmenter.net
        self.get_logger().info(f"configured: {net.model.name} on {net.backend.describe()}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.segmenter.activate()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.segmenter.deactivate()
        self.get_logger().info("inactive: subscriptions closed, model kept")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.segmenter.cleanup()
        self.get_logger().info("cleaned up: backend released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.segmenter.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.segmenter.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self.segmenter.close()
        super().destroy_node()
