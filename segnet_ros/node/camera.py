"""One camera's pipeline: its subscriptions, its publishers and its two worker threads.

The subscription callbacks only store the newest frame. The node's one inference thread
(:mod:`segnet_ros.node.scheduler`, shared by every camera) decodes and segments it; this camera's
publishing worker renders and publishes just the outputs that have subscribers, so frame N is
published while frame N+1 is inferred; its encoding worker compresses the pictures whose
``/compressed`` topics have subscribers, after the raw outputs are out, so JPEG/PNG encoding never
delays ``class_mask``. Each stage hands over through a newest-item slot: a slow model drops frames
(counted in /diagnostics) instead of queueing them. With depth on, the publishing worker pairs the
frame with the depth frame of the same stamp and publishes ``points`` with the mask's size and the
mask's header stamp, as Nav2's semantic layer requires.

Topics are relative to the node (``prefix/...`` for a named camera), so namespaces and remaps work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header, MultiArrayDimension, UInt32MultiArray

from ..core.decode import compressed_to_array, depth_to_array, image_to_array
from ..core.errors import FrameError
from ..core.outputs import COMPRESSED_OUTPUTS, IMAGE_OUTPUTS, products_for
from ..core.pointcloud import CloudBuilder, Intrinsics
from ..core.segnet import ALL_PRODUCTS, GraphSegmentation, Products, Segmentation, SegNet
from .conversions import ImageBuffers, array_to_compressed, scale_camera_info
from .depth import DepthPairer
from .pipeline import LatestSlot, LossCounter, PipelineStats, Stages
from .qos import InputSubscription

INPUT_TOPICS = ("image", "image/compressed", "camera_info", "depth/image", "depth/camera_info")
THROTTLE_S = 5.0
# Iron and later hand a callback that takes two arguments the message's info (its sequence number)
MESSAGE_INFO = hasattr(Subscription, "CallbackType")
LOSS_WARN = 0.05  # transport losses above this share of the frames sent since the last report: WARN


@dataclass(frozen=True)
class CameraSettings:
    """What one camera subscribes to and how (from the node's parameters)."""

    input_reliability: str  # auto (follow the publishers), reliable or best_effort
    input_depth: int
    output_qos: QoSProfile
    compressed: bool = False
    use_camera_info: bool = False
    use_depth: bool = False
    depth_slop_s: float = 0.0
    depth_timeout_s: float = 0.1
    max_input_pixels: int = 1 << 62
    jpeg_quality: int = 80  # overlay/compressed and color_mask/compressed


@dataclass(frozen=True)
class Job:
    """A decoded frame on its way through the shared inference thread."""

    header: Header
    frame: np.ndarray
    encoding: str
    wanted: dict[str, bool]
    received_at: float
    cpu_decode_ms: float
    mask_setting: str | tuple[int, int] = "input"  # read once: a parameter change never splits a frame
    products: Products = ALL_PRODUCTS  # what the graph computes for it (pipeline graph)


class DepthFrame(NamedTuple):
    """A depth message checked on arrival, with the view of its values that check made."""

    msg: Image
    values: np.ndarray  # (H, W) uint16 or float32, in the message's byte order
    metres_per_unit: float


def stamp_ns(header: Header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class CameraPipeline:
    """Publishers exist from construction (a configured node); :meth:`start` subscribes and starts the
    workers (an active node); :meth:`stop` undoes that, :meth:`destroy` also removes the publishers."""

    def __init__(self, node: Node, net: SegNet, settings: CameraSettings,
                 mask_size: Callable[[], str | tuple[int, int]], prefix: str = "",
                 condition: threading.Condition | None = None) -> None:
        self.node, self.net, self.settings, self.prefix = node, net, settings, prefix
        self._mask_size = mask_size
        self._condition = condition  # the inference thread's: it waits on every camera's slot
        self.stats = PipelineStats()
        self._buffers = ImageBuffers()  # used by the publishing thread only
        self._encode_buffers = ImageBuffers()  # used by the encoding thread only
        self._cloud = CloudBuilder()
        self._losses = LossCounter()
        self._lost = 0  # missing frames a best-effort input lost (in transport, or in its queue: DDS cannot say)
        self._overwritten = 0  # missing frames a reliable input's queue overwrote while the node was busy
        self._reported = (0, 0, 0, 0)  # (received, processed, bad, lost) at the last diagnostics
        self._subscriptions: list[InputSubscription] = []
        self._workers: list[threading.Thread] = []
        self.slot, self._results, self._encodes = LatestSlot(condition), LatestSlot(), LatestSlot()
        self._depth: DepthPairer | None = None
        self._camera_info: CameraInfo | None = None
        self._depth_info: CameraInfo | None = None
        self._depth_size: tuple[int, int] | None = None
        self._decode = partial(compressed_to_array if settings.compressed else image_to_array,
                               max_pixels=settings.max_input_pixels)
        qos = settings.output_qos
        self._pubs = {name: node.create_publisher(Image, self.topic(name), qos) for name in IMAGE_OUTPUTS}
        self._pubs.update({name: node.create_publisher(CompressedImage, self.topic(name), qos)
                           for name in COMPRESSED_OUTPUTS})
        self._pubs["class_histogram"] = node.create_publisher(UInt32MultiArray, self.topic("class_histogram"), qos)
        if settings.use_camera_info:
            self._pubs["camera_info_mask"] = node.create_publisher(CameraInfo, self.topic("camera_info_mask"), qos)
        if settings.use_depth:
            self._pubs["points"] = node.create_publisher(PointCloud2, self.topic("points"), qos)

    def topic(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    @property
    def image_topic(self) -> str:
        return self.topic("image/compressed" if self.settings.compressed else "image")

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.slot, self._results, self._encodes = LatestSlot(self._condition), LatestSlot(), LatestSlot()

        def subscribe(msg_type, topic: str, callback) -> InputSubscription:
            return InputSubscription(self.node, msg_type, topic, callback, self.settings.input_reliability,
                                     self.settings.input_depth)

        on_frame = self._on_frame_with_info if MESSAGE_INFO else self._on_frame
        self._subscriptions = [subscribe(CompressedImage if self.settings.compressed else Image, self.image_topic,
                                         on_frame)]
        if self.settings.use_camera_info:
            self._subscriptions.append(subscribe(CameraInfo, self.topic("camera_info"), self._on_camera_info))
        if self.settings.use_depth:
            self._depth = DepthPairer(round(self.settings.depth_slop_s * 1e9))
            self._subscriptions += [subscribe(Image, self.topic("depth/image"), self._on_depth),
                                    subscribe(CameraInfo, self.topic("depth/camera_info"), self._on_depth_info)]
        name = self.prefix or "camera"
        self._workers = [
            threading.Thread(target=self._work, args=(self._results, self._publish), name=f"segnet-publish-{name}",
                             daemon=True),
            threading.Thread(target=self._work, args=(self._encodes, self._encode), name=f"segnet-encode-{name}",
                             daemon=True),
        ]
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        """No more callbacks; a frame in flight is finished (while the context is still valid)."""
        for subscription in self._subscriptions:
            subscription.destroy()
        self._subscriptions = []
        self.slot.close()
        self._results.close()
        self._encodes.close()
        if self._depth is not None:
            self._depth.close()
        for worker in self._workers:
            worker.join(timeout=10.0)
        self._workers = []

    def destroy(self) -> None:
        self.stop()
        for publisher in self._pubs.values():
            self.node.destroy_publisher(publisher)
        self._pubs = {}

    @property
    def workers(self) -> list[threading.Thread]:
        return list(self._workers)

    def refresh_inputs(self) -> None:
        """Follow the publishers' reliability (``input_reliability: auto``); say so when it changes."""
        for subscription in self._subscriptions:
            if subscription.refresh():
                topic = self.node.resolve_topic_name(subscription.topic)
                self.node.get_logger().info(
                    f"{topic}: subscribed {subscription.reliability} to match its publishers"
                    if self.node.count_publishers(topic) else f"{topic}: no publisher left; subscribed "
                    f"{subscription.reliability}, ready for whichever kind comes next")

    @property
    def input_reliability(self) -> str:
        return self._subscriptions[0].reliability if self._subscriptions else self.settings.input_reliability

    # -- callbacks (executor thread): cheap, never block -------------------------------------------
    def _on_frame(self, msg) -> None:
        self._arrived(msg, self._losses.stamp(stamp_ns(msg.header)))

    def _on_frame_with_info(self, msg, info) -> None:
        number = info.get("publication_sequence_number") if isinstance(info, dict) else None
        if number:  # 0 or None: this rmw does not number what it sends
            gid = info.get("publisher_gid") or {}
            missing = self._losses.sequence(bytes(gid.get("data", b"")) if isinstance(gid, dict) else b"", number)
        else:
            missing = self._losses.stamp(stamp_ns(msg.header))
        self._arrived(msg, missing)

    def _arrived(self, msg, missing: int) -> None:
        if missing:
            # reliable DDS resends what transport loses, so a reliable input's gap is its queue (input_depth)
            # overwritten while the executor was busy: a drop, like the newest-frame slot's
            if self.input_reliability == "reliable":
                self._overwritten += missing
            else:
                self._lost += missing
        self.stats.arrived()
        self.slot.put((msg, time.monotonic()))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_depth(self, msg: Image) -> None:
        try:  # checked (a zero-copy view) here, so a bad one is counted when it comes
            values, metres_per_unit = depth_to_array(msg, self.settings.max_input_pixels)
        except FrameError as exc:
            self._bad(f"bad depth frame skipped: {exc}")
            return
        self._depth.add(stamp_ns(msg.header), DepthFrame(msg, values, metres_per_unit))

    def _on_depth_info(self, msg: CameraInfo) -> None:
        self._depth_info = msg

    # -- the pipeline ----------------------------------------------------------------------------
    def _bad(self, text: str) -> None:
        self.stats.rejected()
        self.node.get_logger().warn(text, throttle_duration_sec=THROTTLE_S)

    def failed(self, exc: Exception) -> None:
        """A stage (or the shared inference call) failed on this camera's frame: counted, logged, survived."""
        if isinstance(exc, FrameError):
            self._bad(f"bad frame skipped: {exc}")
            return
        if not self.node.context.ok():
            return  # shutting down: nothing to report
        self.stats.rejected()
        self.node.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}", throttle_duration_sec=THROTTLE_S)

    def _work(self, slot: LatestSlot, stage) -> None:
        while not slot.closed:
            item = slot.take(timeout=0.5)
            if item is None:
                continue
            try:
                stage(*item)
            except Exception as exc:  # keep serving: one broken frame must not stop the robot's perception
                self.failed(exc)

    def _wanted(self) -> dict[str, bool]:
        wanted = {name: pub.get_subscription_count() > 0 for name, pub in self._pubs.items()}
        if "camera_info_mask" in wanted:
            wanted["camera_info_mask"] &= self._camera_info is not None
        return wanted

    # -- called by the shared inference thread (segnet_ros.node.scheduler) ---------------------------
    def job(self, item: tuple) -> Job | None:
        """The waiting frame decoded for inference; None when nobody listens (it costs nothing then)
        or it is bad (counted and logged)."""
        msg, received_at = item
        wanted = self._wanted()
        if not any(wanted.values()):
            self.stats.idle()
            return None
        started = time.thread_time()
        try:
            frame, encoding = self._decode(msg)
        except FrameError as exc:
            self.failed(exc)
            return None
        setting = self._mask_size()
        products = Products(products_for(name for name, on in wanted.items() if on),
                            self._size(setting, (frame.shape[1], frame.shape[0])))
        return Job(msg.header, frame, encoding, wanted, received_at, (time.thread_time() - started) * 1e3,
                   setting, products)

    def deliver(self, job: Job, segmentation: Segmentation, started: float, finished: float) -> None:
        """The result of ``job``, from a segmentation call (its batch's) that ran from ``started`` to
        ``finished`` (monotonic seconds)."""
        self._results.put((job, segmentation, started, finished))

    def _paired_depth(self, header: Header) -> DepthFrame | None:
        if self._depth is None:
            return None
        depth = self._depth.take(stamp_ns(header), self.settings.depth_timeout_s)
        if depth is None:
            self.stats.missed_depth()
        else:
            self._depth_size = (depth.msg.width, depth.msg.height)
        return depth

    def _size(self, setting: str | tuple[int, int], input_size: tuple[int, int]) -> tuple[int, int]:
        """The mask's (width, height) for the mask_size setting and a frame of ``input_size``."""
        if setting == "input":
            return input_size
        if setting == "grid":
            return self.net.grid_size
        if setting == "depth":
            return self._depth_size or input_size  # no depth frame yet: the input's size
        return setting

    def _publish(self, job: Job, seg: Segmentation, inference_started: float, inference_finished: float) -> None:
        cpu_started = time.thread_time()
        header, wanted, setting = job.header, job.wanted, job.mask_setting
        depth = self._paired_depth(header) if wanted.get("points") or setting == "depth" else None
        # the graph computed the masks at the size known when the frame went in; the host renders any size (with
        # mask_size depth, that of the depth frame just paired)
        width, height = job.products.mask_size if isinstance(seg, GraphSegmentation) \
            else self._size(setting, seg.input_size)
        mask_shape, image_shape = (height, width), (seg.input_size[1], seg.input_size[0], 3)
        buffers = self._buffers
        cloud = bool(wanted.get("points")) and depth is not None
        labels = confidence = points = None
        if wanted["class_mask"] or cloud:
            labels = seg.class_mask((width, height), buffers.pixels("class_mask", mask_shape))
        if wanted["confidence"] or cloud:
            confidence = seg.confidence((width, height), buffers.pixels("confidence", mask_shape))
        if cloud:
            points = self._points(header, depth, labels, confidence)
        # the aligned outputs go out back to back, so a synchronizer sees them together
        if wanted["class_mask"]:
            self._pubs["class_mask"].publish(buffers.image("class_mask", header, mask_shape, "mono8"))
        if wanted["confidence"]:
            self._pubs["confidence"].publish(buffers.image("confidence", header, mask_shape, "mono8"))
        if points is not None:
            self._pubs["points"].publish(points)
        if wanted["class_histogram"]:
            counts = seg.histogram((width, height))
            msg = UInt32MultiArray()
            msg.layout.dim = [MultiArrayDimension(label="class", size=len(counts), stride=len(counts))]
            msg.data = counts.astype("uint32").tolist()
            self._pubs["class_histogram"].publish(msg)
        if wanted["color_mask"] or wanted["overlay"]:
            seg.pictures(buffers.pixels("color_mask", image_shape) if wanted["color_mask"] else None,
                         buffers.pixels("overlay", image_shape) if wanted["overlay"] else None,
                         wanted["color_mask"], wanted["overlay"])
        if wanted["color_mask"]:
            self._pubs["color_mask"].publish(buffers.image("color_mask", header, image_shape, "rgb8"))
        if wanted["overlay"]:
            self._pubs["overlay"].publish(buffers.image("overlay", header, image_shape, seg.overlay_encoding))
        if wanted.get("camera_info_mask"):
            self._pubs["camera_info_mask"].publish(scale_camera_info(self._camera_info, header, width, height))
        timings = seg.timings
        stages = Stages(
            wait=(inference_started - job.received_at) * 1e3, inference=timings.inference,
            render_publish=(time.monotonic() - inference_finished) * 1e3,
            cpu_decode=job.cpu_decode_ms,
            cpu_preprocess=(timings.preprocess_cpu + timings.classify_cpu) / timings.frames,
            cpu_render_publish=(time.thread_time() - cpu_started) * 1e3)
        self.stats.finished(job.received_at, stages)
        compressed = {name: wanted[name] for name in COMPRESSED_OUTPUTS if wanted.get(name)}
        if compressed:
            self._encodes.put((header, seg, compressed, (width, height)))

    def _encode(self, header: Header, seg: Segmentation, wanted: dict[str, bool], mask_size: tuple[int, int]) -> None:
        """The compressed pictures (their own buffers: the publishing thread is on the next frame)."""
        buffers, quality = self._encode_buffers, self.settings.jpeg_quality
        width, height = mask_size
        image_shape = (seg.input_size[1], seg.input_size[0], 3)
        if wanted.get("class_mask/compressed"):
            mask = seg.class_mask(mask_size, buffers.pixels("class_mask", (height, width)))
            self._pubs["class_mask/compressed"].publish(array_to_compressed(header, mask, "mono8", None))
        color, overlay = wanted.get("color_mask/compressed", False), wanted.get("overlay/compressed", False)
        colors, blended = seg.pictures(buffers.pixels("color_mask", image_shape) if color else None,
                                       buffers.pixels("overlay", image_shape) if overlay else None, color, overlay)
        if color:
            self._pubs["color_mask/compressed"].publish(array_to_compressed(header, colors, "rgb8", quality))
        if overlay:
            self._pubs["overlay/compressed"].publish(array_to_compressed(header, blended, seg.overlay_encoding,
                                                                         quality))
        self.stats.compressed()

    def _points(self, header: Header, depth: DepthFrame, labels, confidence) -> PointCloud2 | None:
        info = self._depth_info
        if info is None:
            self.stats.missed_depth()
            self.node.get_logger().warn(f"no {self.node.resolve_topic_name(self.topic('depth/camera_info'))} yet: "
                                        "points are not published", throttle_duration_sec=THROTTLE_S)
            return None
        msg = depth.msg
        intrinsics = Intrinsics.from_k(info.k, info.width or msg.width, info.height or msg.height)
        cloud_header = Header(stamp=header.stamp, frame_id=msg.header.frame_id or header.frame_id)
        self.stats.cloud()
        return self._buffers.cloud("points", cloud_header, *labels.shape, lambda out: self._cloud.build(
            depth.values, depth.metres_per_unit, intrinsics, labels, confidence, out))

    # -- diagnostics -------------------------------------------------------------------------------
    def diagnostics(self, name: str, hardware_id: str, extra: dict[str, str]) -> DiagnosticStatus:
        snap = self.stats.snapshot(self.slot.dropped + self._results.dropped + self._overwritten)
        lost = self._lost
        status = DiagnosticStatus(name=name, hardware_id=hardware_id)
        status.level, problem = health(snap.received, snap.processed, snap.bad, lost, self._reported)
        self._reported = (snap.received, snap.processed, snap.bad, lost)
        status.message = (f"{snap.processed_hz:.1f} fps processed of {snap.input_hz:.1f} fps input; "
                          f"{lost} lost in transport, {snap.dropped} dropped, {snap.bad} bad"
                          + (f" ({problem})" if problem else ""))
        values = {
            "input_topic": self.node.resolve_topic_name(self.image_topic),
            "input_reliability": self.input_reliability
            + (" (auto: follows the publishers)" if self.settings.input_reliability == "auto" else ""),
            "frames_lost": lost, "frames_dropped_input_queue": self._overwritten,
            "input_rate_hz": f"{snap.input_hz:.2f}", "processed_rate_hz": f"{snap.processed_hz:.2f}",
            "frames_received": snap.received, "frames_processed": snap.processed,
            "frames_dropped": snap.dropped, "frames_bad": snap.bad,
            "frames_skipped_no_subscribers": snap.skipped, "frames_compressed": snap.compressed,
            "latency_ms": f"{snap.latency_ms:.1f}", "latency_max_ms": f"{snap.latency_max_ms:.1f}",
            "inference_ms": f"{snap.inference_ms:.1f}",
        }
        stages = snap.stages
        for key, value in (("stage_wait_ms", stages.wait), ("stage_inference_ms", stages.inference),
                           ("stage_render_publish_ms", stages.render_publish), ("cpu_decode_ms", stages.cpu_decode),
                           ("cpu_preprocess_ms", stages.cpu_preprocess),
                           ("cpu_render_publish_ms", stages.cpu_render_publish)):
            values[key] = f"{value:.2f}"
        if self.settings.use_depth:
            values.update(clouds_published=snap.clouds, clouds_skipped_no_depth=snap.missed_depth)
        values.update(extra)
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        return status


def health(received: int, processed: int, bad: int, lost: int, before: tuple[int, int, int, int]) -> tuple[int, str]:
    """The status level and what is wrong, from the counts now and at the last report: WARN when bad
    frames came, or transport lost more than LOSS_WARN of what the camera sent, since then."""
    new_received, new_processed, new_bad, new_lost = (now - then for now, then in
                                                      zip((received, processed, bad, lost), before, strict=True))
    problems = []
    if new_bad > 0:
        problems.append(f"{new_bad} bad since last report" + (", none processed" if new_processed == 0 else ""))
    if new_lost > LOSS_WARN * (new_received + new_lost):
        problems.append(f"{new_lost} of {new_received + new_lost} frames lost in transport since last report")
    return (DiagnosticStatus.WARN if problems else DiagnosticStatus.OK), "; ".join(problems)
