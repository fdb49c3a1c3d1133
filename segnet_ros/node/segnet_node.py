"""``segnet``: camera images in; class masks, colour masks, overlays, confidence, histograms out.

A thin adapter over :class:`segnet_ros.core.SegNet`. The subscription callback only
stores the newest frame. Two worker threads form a pipeline: one segments the
newest frame, the other renders and publishes just the outputs that have
subscribers, so frame N is published while frame N+1 is inferred. Each stage
hands over through a newest-item slot: a slow model drops frames (counted in
/diagnostics) instead of queueing them.
"""

from __future__ import annotations

import threading
import time

import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import MultiArrayDimension, String, UInt32MultiArray

from ..backends import create_backend
from ..core.errors import FrameError, SegnetError
from ..core.model import load_model
from ..core.segnet import Segmentation, SegNet, SegNetSettings
from ..selection import select_model
from .conversions import ImageBuffers, compressed_to_array, image_to_array, scale_camera_info
from .params import DYNAMIC, PARAMS, backend_options, check
from .pipeline import LatestSlot, PipelineStats

INPUT_TOPICS = ("image", "image/compressed", "camera_info")
IMAGE_OUTPUTS = ("class_mask", "color_mask", "overlay", "confidence")
OUTPUTS = IMAGE_OUTPUTS + ("class_histogram", "class_labels", "camera_info_mask")
_RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
_THROTTLE_S = 5.0


def _qos(reliability: str, depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=_RELIABILITY[reliability],
                      durability=DurabilityPolicy.VOLATILE)


class SegnetNode(Node):
    """Raises :class:`SegnetError` from the constructor when the model or a parameter is unusable."""

    def __init__(self, **kwargs) -> None:
        super().__init__("segnet", **kwargs)
        self.stats = PipelineStats()
        self.slot = LatestSlot()  # camera -> inference
        self._results = LatestSlot()  # inference -> rendering and publishing
        self._buffers = ImageBuffers()  # used by the publishing thread only
        values = self._declare_parameters()
        self.net = self._open_model(values)
        self._mask_size = values["mask_size"]
        self.declare_parameter("class_names", list(self.net.class_names), ParameterDescriptor(
            description="class names of the loaded model, by id", read_only=True))

        output_qos = _qos(values["output_reliability"], values["output_depth"])
        self._image_pubs = {name: self.create_publisher(Image, name, output_qos) for name in IMAGE_OUTPUTS}
        self._histogram_pub = self.create_publisher(UInt32MultiArray, "class_histogram", output_qos)
        self._labels_pub = self.create_publisher(String, "class_labels", QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._camera_info_pub = None
        self._camera_info: CameraInfo | None = None
        self._publish_labels()

        self._last_bad = 0
        self._workers = [
            threading.Thread(target=self._work, args=(self.slot, self._infer), name="segnet-infer", daemon=True),
            threading.Thread(target=self._work, args=(self._results, self._publish), name="segnet-publish",
                             daemon=True),
        ]
        for worker in self._workers:
            worker.start()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        # Subscribe last: the model is ready before the first frame can arrive.
        input_qos = _qos(values["input_reliability"], values["input_depth"])
        if values["use_camera_info"]:
            self._camera_info_pub = self.create_publisher(CameraInfo, "camera_info_mask", output_qos)
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, input_qos)
        compressed = values["input_transport"] == "compressed"
        self._decode = compressed_to_array if compressed else image_to_array
        topic = "image/compressed" if compressed else "image"
        self.create_subscription(CompressedImage if compressed else Image, topic, self._on_frame, input_qos)
        self.create_timer(values["diagnostics_period"], self._publish_diagnostics)
        self.get_logger().info(
            f"segmenting {self.resolve_topic_name(topic)} with {self.net.model.name} "
            f"({self.net.model.input_width}x{self.net.model.input_height}, {self.net.num_classes} classes) "
            f"on {self.net.backend.describe()}")

    # -- start-up -------------------------------------------------------------------------
    def _declare_parameters(self) -> dict:
        values, problems = {}, []
        for param in PARAMS:
            descriptor = ParameterDescriptor(description=param.description, read_only=not param.dynamic)
            if param.choices:
                descriptor.additional_constraints = "one of: " + ", ".join(param.choices)
            if param.int_range is not None:
                descriptor.integer_range = [IntegerRange(from_value=param.int_range[0], to_value=param.int_range[1],
                                                         step=1)]
            try:
                values[param.name] = self.declare_parameter(param.name, param.default, descriptor).value
            except ParameterException as exc:
                problems.append(f"{param.name}: {exc}")
                continue
            reason = check(param.name, values[param.name])
            if reason:
                problems.append(reason)
        if problems:
            raise SegnetError("invalid parameters: " + "; ".join(problems))
        return values

    def _open_model(self, values: dict) -> SegNet:
        files = select_model(values["model"], labels=values["labels"], colors=values["colors"],
                             input_blob=values["input_blob"], output_blob=values["output_blob"],
                             model_dir=values["model_dir"], auto_download=values["auto_download"])
        model = load_model(files)
        for warning in model.classes.warnings:
            self.get_logger().warn(warning)
        try:
            settings = SegNetSettings(resize=values["resize"], filter_mode=values["filter_mode"],
                                      overlay_alpha=values["overlay_alpha"], ignore_class=values["ignore_class"])
        except ValueError as exc:
            raise SegnetError(str(exc)) from None
        return SegNet(model, create_backend(values["backend"], model, backend_options(values)), settings)

    def _publish_labels(self) -> None:
        rgba = self.net.model.classes.rgba(self.net.settings.overlay_alpha).astype(int).tolist()
        classes = [{"id": i, "name": name, "rgba": rgba[i]} for i, name in enumerate(self.net.class_names)]
        text = yaml.safe_dump({"model": self.net.model.name, "classes": classes}, sort_keys=False)
        self._labels_pub.publish(String(data=text))

    # -- parameters -------------------------------------------------------------------------
    def _on_set_parameters(self, params) -> SetParametersResult:
        changes = {}
        for param in params:
            if param.name not in DYNAMIC:
                continue
            reason = check(param.name, param.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            changes[param.name] = param.value
        mask_size = changes.pop("mask_size", None)
        if changes:
            try:
                self.net.update_settings(**changes)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        if mask_size is not None:
            self._mask_size = mask_size
        if "overlay_alpha" in changes:
            self._publish_labels()
        return SetParametersResult(successful=True)

    # -- callbacks (executor thread): cheap, never block -------------------------------------
    def _on_frame(self, msg) -> None:
        self.stats.arrived()
        self.slot.put((msg, time.monotonic()))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    # -- the pipeline -------------------------------------------------------------------------
    def _work(self, slot: LatestSlot, stage) -> None:
        while not slot.closed and self.context.ok():
            item = slot.take(timeout=0.5)
            if item is None:
                continue
            try:
                stage(*item)
            except FrameError as exc:
                self.stats.rejected()
                self.get_logger().warn(f"bad frame skipped: {exc}", throttle_duration_sec=_THROTTLE_S)
            except Exception as exc:  # keep serving: one broken frame must not stop the robot's perception
                self.stats.rejected()
                self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=_THROTTLE_S)

    def _wanted(self) -> dict[str, bool]:
        wanted = {name: pub.get_subscription_count() > 0 for name, pub in self._image_pubs.items()}
        wanted["class_histogram"] = self._histogram_pub.get_subscription_count() > 0
        wanted["camera_info_mask"] = (self._camera_info_pub is not None and self._camera_info is not None
                                      and self._camera_info_pub.get_subscription_count() > 0)
        return wanted

    def _infer(self, msg, received_at: float) -> None:
        wanted = self._wanted()
        if not any(wanted.values()):
            self.stats.idle()  # nobody listens: no inference at all
            return
        frame, encoding = self._decode(msg)
        segmentation = self.net.process(frame, encoding)
        self._results.put((msg.header, segmentation, wanted, received_at, self.net.timings.inference))

    def _publish(self, header, seg: Segmentation, wanted: dict[str, bool], received_at: float,
                 inference_ms: float) -> None:
        mask_size = seg.input_size if self._mask_size == "input" else seg.grid_size
        mask_shape = (mask_size[1], mask_size[0])
        image_shape = (seg.input_size[1], seg.input_size[0], 3)
        draw = self._buffers.image
        if wanted["class_mask"]:
            self._image_pubs["class_mask"].publish(draw(
                "class_mask", header, mask_shape, "mono8", lambda out: seg.class_mask(mask_size, out)))
        if wanted["confidence"]:
            self._image_pubs["confidence"].publish(draw(
                "confidence", header, mask_shape, "mono8", lambda out: seg.confidence(mask_size, out)))
        if wanted["class_histogram"]:
            counts = seg.histogram(mask_size)
            msg = UInt32MultiArray()
            msg.layout.dim = [MultiArrayDimension(label="class", size=len(counts), stride=len(counts))]
            msg.data = counts.astype("uint32").tolist()
            self._histogram_pub.publish(msg)
        if wanted["color_mask"]:
            self._image_pubs["color_mask"].publish(draw(
                "color_mask", header, image_shape, "rgb8", lambda out: seg.color_mask(None, out)))
        if wanted["overlay"]:
            self._image_pubs["overlay"].publish(draw(
                "overlay", header, image_shape, "bgr8" if seg.encoding.bgr else "rgb8",
                lambda out: seg.overlay(None, out)))
        if wanted["camera_info_mask"]:
            self._camera_info_pub.publish(scale_camera_info(self._camera_info, header, *mask_size))
        self.stats.finished(received_at, inference_ms)

    # -- diagnostics ------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        snap = self.stats.snapshot(self.slot.dropped + self._results.dropped)
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: segmentation",
                                  hardware_id=self.net.backend.describe())
        status.level = DiagnosticStatus.WARN if snap.bad > self._last_bad else DiagnosticStatus.OK
        status.message = (f"{snap.processed_hz:.1f} fps processed of {snap.input_hz:.1f} fps input; "
                          f"{snap.dropped} dropped, {snap.bad} bad")
        if snap.bad > self._last_bad:
            status.message += f" ({snap.bad - self._last_bad} bad since last report)"
        self._last_bad = snap.bad
        values = {
            "input_rate_hz": f"{snap.input_hz:.2f}", "processed_rate_hz": f"{snap.processed_hz:.2f}",
            "frames_received": snap.received, "frames_processed": snap.processed,
            "frames_dropped": snap.dropped, "frames_bad": snap.bad,
            "frames_skipped_no_subscribers": snap.skipped,
            "latency_ms": f"{snap.latency_ms:.1f}", "latency_max_ms": f"{snap.latency_max_ms:.1f}",
            "inference_ms": f"{snap.inference_ms:.1f}",
            "backend": self.net.backend.name, "device": self.net.backend.device, "model": self.net.model.name,
        }
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array_msg = DiagnosticArray(status=[status])
        array_msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array_msg)

    def destroy_node(self) -> None:
        """Stop the workers, then release the backend (GPU memory, CUDA context) and the node."""
        self.slot.close()
        self._results.close()
        for worker in getattr(self, "_workers", ()):
            worker.join(timeout=10.0)
        if getattr(self, "net", None) is not None:
            self.net.backend.close()
        super().destroy_node()
