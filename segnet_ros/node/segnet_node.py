"""``segnet``: camera images in; class masks, colour masks, overlays, confidence, histograms,
labelled point clouds and LabelInfo out, for one camera or several sharing one model.

:class:`Segmenter` is the node's whole behaviour, in the four steps of a managed node:
configure (parameters checked, model loaded, backend built, publishers made), activate
(subscriptions and workers started), deactivate, cleanup. :class:`SegnetNode` runs the first two
at construction; :class:`segnet_ros.node.lifecycle.SegnetLifecycleNode` leaves them to a
lifecycle manager. The per-camera work lives in :mod:`segnet_ros.node.camera`, the one inference
thread that serves every camera in :mod:`segnet_ros.node.scheduler`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from ..backends import create_backend
from ..core.errors import SegnetError
from ..core.model import load_model
from ..core.outputs import OUTPUTS, class_labels_text
from ..core.segnet import SegNet, SegNetSettings, ignore_class_problem
from ..selection import select_model
from .camera import INPUT_TOPICS, CameraPipeline, CameraSettings
from .log import RosLogHandler
from .params import DYNAMIC, PARAMS, backend_options, check, parse_mask_size, unknown_parameters
from .qos import GRAPH_CHECK_S, qos
from .scheduler import InferenceScheduler

__all__ = ["INPUT_TOPICS", "OUTPUTS", "Segmenter", "SegnetNode"]
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
VISION_MSGS_MISSING = ("vision_msgs is not installed, so label_info (needed by Nav2's semantic segmentation layer) "
                       "is not published: install ros-$ROS_DISTRO-vision-msgs (in this project's virtual "
                       "environment: msgs/build.sh \"$VIRTUAL_ENV\")")


def _label_info_type():
    try:
        from vision_msgs.msg import LabelInfo, VisionClass
    except ImportError:
        return None
    return LabelInfo, VisionClass


class Segmenter:
    """Everything ``segnet`` does, driven by :class:`SegnetNode` or the lifecycle node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.net: SegNet | None = None
        self.cameras: list[CameraPipeline] = []
        self.scheduler: InferenceScheduler | None = None
        self._model_pubs: dict = {}
        self._timers: list = []
        self._values, self._problems = self._declare_parameters()
        for name, closest in unknown_parameters(getattr(node, "_parameter_overrides", {})):
            # rclpy drops a parameter the node does not declare without a word: a typo would go unseen
            node.get_logger().warn(f"unknown parameter '{name}' ignored"
                                   + (f"; did you mean '{closest}'?" if closest else ""))
        self._mask_size = parse_mask_size(self._values.get("mask_size", "input")) or "input"
        self._log_handler = RosLogHandler(node.get_logger())  # the core's warnings reach /rosout, namespaced
        logging.getLogger("segnet_ros").addHandler(self._log_handler)
        logging.getLogger("segnet_ros").setLevel(logging.INFO)
        node.add_on_set_parameters_callback(self._on_set_parameters)

    # -- configure ------------------------------------------------------------------------------
    def _declare_parameters(self) -> tuple[dict, list[str]]:
        values, problems = {}, []
        for param in PARAMS:
            descriptor = ParameterDescriptor(description=param.description, read_only=not param.dynamic)
            if param.choices:
                descriptor.additional_constraints = "one of: " + ", ".join(param.choices)
            if param.int_range is not None:
                descriptor.integer_range = [IntegerRange(from_value=param.int_range[0], to_value=param.int_range[1],
                                                         step=1)]
            # a string array's default is empty, which has no ROS type: declare the type instead
            default = Parameter.Type.STRING_ARRAY if isinstance(param.default, tuple) else param.default
            try:
                values[param.name] = self._value(param, self.node.declare_parameter(param.name, default, descriptor))
            except ParameterException as exc:
                problems.append(f"{param.name}: {exc}")
        return values, problems

    @staticmethod
    def _value(param, parameter):
        """The parameter's value; an unset string array is the empty tuple."""
        value = parameter.value
        if isinstance(param.default, tuple):
            return tuple(value or ())
        return value

    def _check(self) -> dict:
        """The parameter values, or :class:`SegnetError` naming every problem."""
        # get_parameter_or: an unset string array is declared but uninitialised, which get_parameter refuses
        values = {p.name: self._value(p, self.node.get_parameter_or(p.name)) for p in PARAMS if p.name in self._values}
        problems = list(self._problems)
        problems += [reason for name, value in values.items() if (reason := check(name, value))]
        if values.get("mask_size") == "depth" and not values.get("use_depth"):
            problems.append("mask_size depth needs use_depth:=true")
        if problems:
            raise SegnetError("invalid parameters: " + "; ".join(problems))
        return values

    def configure(self) -> None:
        """Load the model and build the backend; raises :class:`SegnetError` when either is unusable."""
        values = self._check()
        self._mask_size = parse_mask_size(values["mask_size"])
        files = select_model(values["model"], labels=values["labels"], colors=values["colors"],
                             input_blob=values["input_blob"], output_blob=values["output_blob"],
                             model_dir=values["model_dir"], auto_download=values["auto_download"])
        model = load_model(files)
        for warning in model.classes.warnings:
            self.node.get_logger().warn(warning)
        reason = ignore_class_problem(model.classes.names, values["ignore_class"], model.name)
        if reason:  # before the backend exists (SegNet would refuse it too, with the backend built)
            raise SegnetError(reason)
        try:
            settings = SegNetSettings(resize=values["resize"], filter_mode=values["filter_mode"],
                                      overlay_alpha=values["overlay_alpha"], ignore_class=values["ignore_class"])
        except ValueError as exc:
            raise SegnetError(str(exc)) from None
        names = values["cameras"] or ("",)  # "": the single camera of today's topic names
        batches = len(names) > 1 and values["batching"] != "never"
        # several cameras and no batch forced: one concurrent call per camera, each on its share of the
        # cores (taken up only where the backend takes concurrent calls; see scheduler.py). With more
        # cameras than cores the spare calls keep the cores busy while a thread waits for the GIL:
        # three cameras on 2 cores ran 17.5 fps so, 15.7 with two calls (benchmarks/multicamera_benchmark.py)
        callers = len(names) if values["batching"] != "always" else 1
        options = dataclasses.replace(backend_options(values), max_batch=len(names) if batches else 1,
                                      callers=callers)
        backend = create_backend(values["backend"], model, options)
        try:
            self.net = SegNet(model, backend, settings, values["pipeline"])
        except SegnetError:
            backend.close()
            raise
        if not self.node.has_parameter("class_names"):
            self.node.declare_parameter("class_names", list(self.net.class_names), ParameterDescriptor(
                description="class names of the loaded model, by id", read_only=True))
        self._label_threshold = float(values["label_threshold"])
        node = self.node
        self._model_pubs = {"class_labels": node.create_publisher(String, "class_labels", LATCHED),
                            "diagnostics": node.create_publisher(DiagnosticArray, "/diagnostics", 10)}
        self._label_info = _label_info_type()
        if self._label_info is None:
            node.get_logger().warn(VISION_MSGS_MISSING)
        else:
            self._model_pubs["label_info"] = node.create_publisher(self._label_info[0], "label_info", LATCHED)
        self._diagnostics_period = values["diagnostics_period"]
        # auto: where one call on N frames is cheaper than N calls; elsewhere a batch only adds latency
        batch = batches and (values["batching"] == "always" or self.net.backend.batching_pays)
        self.scheduler = InferenceScheduler(self.net, batch, workers=callers)
        settings = CameraSettings(
            input_reliability=values["input_reliability"], input_depth=values["input_depth"],
            output_qos=qos(values["output_reliability"], values["output_depth"]),
            compressed=values["input_transport"] == "compressed", use_camera_info=values["use_camera_info"],
            use_depth=values["use_depth"], depth_slop_s=values["depth_slop"],
            depth_timeout_s=values["depth_timeout"], max_input_pixels=values["max_input_pixels"],
            jpeg_quality=values["jpeg_quality"])
        self.cameras = [CameraPipeline(node, self.net, settings, mask_size=lambda: self._mask_size, prefix=name,
                                       condition=self.scheduler.condition) for name in names]
        self.scheduler.set_cameras(self.cameras)

    # -- activate / deactivate ----------------------------------------------------------------------
    def activate(self) -> None:
        self._publish_labels()
        for camera in self.cameras:
            camera.start()
        self.scheduler.start()
        self._timers = [self.node.create_timer(self._diagnostics_period, self._publish_diagnostics),
                        self.node.create_timer(GRAPH_CHECK_S, self._refresh_inputs)]
        net, node = self.net, self.node
        topics = ", ".join(node.resolve_topic_name(camera.image_topic) for camera in self.cameras)
        scheduler = self.scheduler
        how = (f", batches of up to {scheduler.batch_limit}" if scheduler.batch_limit > 1
               else f", {scheduler.workers} inference threads" if scheduler.workers > 1 else "")
        node.get_logger().info(
            f"segmenting {topics} with {net.model.name} "
            f"({net.model.input_width}x{net.model.input_height}, {net.num_classes} classes) "
            f"on {net.backend.describe()}, pipeline {net.pipeline}{how}; "
            f"input QoS {self.cameras[0].settings.input_reliability}")

    def _refresh_inputs(self) -> None:
        for camera in self.cameras:
            camera.refresh_inputs()

    def deactivate(self) -> None:
        for timer in self._timers:
            self.node.destroy_timer(timer)
        self._timers = []
        if self.scheduler is not None:
            self.scheduler.stop()
        for camera in self.cameras:
            camera.stop()

    @property
    def active(self) -> bool:
        return self.scheduler is not None and self.scheduler.running

    @property
    def threads(self) -> list[threading.Thread]:
        """The node's working threads: the inference threads, then each camera's."""
        threads = self.scheduler.threads if self.scheduler is not None else []
        return threads + [thread for camera in self.cameras for thread in camera.workers]

    def cleanup(self) -> None:
        """Release the backend (GPU memory, CUDA context) and the publishers; configure works again."""
        self.deactivate()
        for camera in self.cameras:
            camera.destroy()
        self.cameras, self.scheduler = [], None
        for publisher in self._model_pubs.values():
            self.node.destroy_publisher(publisher)
        self._model_pubs = {}
        if self.net is not None:
            self.net.close()
            self.net = None

    def close(self) -> None:
        """Cleanup, and stop sending the core's log records to this node's logger."""
        self.cleanup()
        logging.getLogger("segnet_ros").removeHandler(self._log_handler)

    # -- model-wide outputs -------------------------------------------------------------------------
    def _publish_labels(self) -> None:
        net = self.net
        text = class_labels_text(net.model.name, net.class_names, net.model.classes.rgba(net.settings.overlay_alpha))
        self._model_pubs["class_labels"].publish(String(data=text))
        if "label_info" in self._model_pubs:
            label_info, vision_class = self._label_info
            msg = label_info(threshold=self._label_threshold, class_map=[
                vision_class(class_id=i, class_name=name) for i, name in enumerate(net.class_names)])
            msg.header.stamp = self.node.get_clock().now().to_msg()
            self._model_pubs["label_info"].publish(msg)

    def _publish_diagnostics(self) -> None:
        """One status per camera (named after it; the single camera's is "<node>: segmentation"), then
        the shared model's: backend, calls, batch sizes."""
        net, node = self.net, self.node
        fqn, hardware = node.get_fully_qualified_name(), net.backend.describe()
        model = {"backend": net.backend.name, "device": net.backend.device, "model": net.model.name,
                 "pipeline": net.pipeline}
        statuses = [camera.diagnostics(f"{fqn}: {camera.prefix or 'segmentation'}", hardware,
                                       {"camera": camera.prefix, **model} if camera.prefix else model)
                    for camera in self.cameras]
        inference = DiagnosticStatus(name=f"{fqn}: inference", hardware_id=hardware, level=DiagnosticStatus.OK,
                                     message=f"{net.model.name} on {hardware} for {len(self.cameras)} camera(s)")
        inference.values = [KeyValue(key=k, value=v) for k, v in {
            **model, "precision": getattr(net.backend, "precision", ""), "cameras": str(len(self.cameras)),
            **self.scheduler.summary()}.items()]
        array_msg = DiagnosticArray(status=[*statuses, inference])
        array_msg.header.stamp = node.get_clock().now().to_msg()
        self._model_pubs["diagnostics"].publish(array_msg)

    # -- parameters ----------------------------------------------------------------------------------
    def _on_set_parameters(self, params) -> SetParametersResult:
        changes = {}
        for param in params:
            if param.name not in DYNAMIC:
                continue
            reason = check(param.name, param.value)
            if reason is None and param.name == "ignore_class" and self.net is not None:
                reason = ignore_class_problem(self.net.class_names, param.value, self.net.model.name)
            if reason is None and param.name == "mask_size" and param.value == "depth" and (
                    self.cameras and not self.cameras[0].settings.use_depth):
                reason = "mask_size depth needs use_depth:=true"
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            changes[param.name] = param.value
        mask_size = changes.pop("mask_size", None)
        if changes and self.net is not None:
            try:
                self.net.update_settings(**changes)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        if mask_size is not None:
            self._mask_size = parse_mask_size(mask_size)
        if "overlay_alpha" in changes and self.active:
            self._publish_labels()
        return SetParametersResult(successful=True)


class SegnetNode(Node):
    """The plain node: configured and active from construction.

    Raises :class:`SegnetError` from the constructor when the model or a parameter is unusable."""

    def __init__(self, **kwargs) -> None:
        super().__init__("segnet", **kwargs)
        self.segmenter = Segmenter(self)
        try:
            self.segmenter.configure()
            self.segmenter.activate()
        except BaseException:
            self.segmenter.close()
            raise

    def destroy_node(self) -> None:
        """Stop the workers, then release the backend and the node."""
        self.segmenter.close()
        super().destroy_node()
