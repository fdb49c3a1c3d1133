"""Writing the output bag: a rosbag2 (MCAP storage), or a single ``.mcap`` file.

The bag is written into a private folder beside OUTPUT and moved into place only when complete,
so a failed or interrupted run leaves no half bag and never harms an existing one (which is
replaced only with ``--overwrite``, at the very end). The content depends only on what is written:
rosbags' MCAP writer puts no wall-clock time, host or random id in the file, chunks by size, and
metadata.yaml holds message times and counts only, so the same messages give the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..memory import keep_large_blocks_in_heap
from .typestore import IMAGE, LABEL_INFO, STRING, UINT32_ARRAY, BagError, typestore

ROSBAG2_VERSION = 9  # the newest rosbags writes (Jazzy's); it carries the RIHS01 type hashes
COMPRESSIONS = ("none", "zstd")
SINGLE_FILE_SUFFIX = ".mcap"


def _qos(latched: bool):
    """The node's output QoS: reliable, depth 10; label_info/class_labels reliable + transient local,
    depth 1, so ``ros2 bag play`` offers them to late subscribers as the node does."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    unspecified = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 1 if latched else 10, QosReliability.RELIABLE,
               QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE, unspecified, unspecified,
               QosLiveliness.AUTOMATIC, unspecified, False)


def check_output(output: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """The cheap refusals, before any model is loaded."""
    for path in inputs:
        out, given = output.resolve(), path.resolve()
        if out == given or given in out.parents or out in given.parents:
            raise BagError(f"output '{output}' is the input '{path}', inside it or holds it; choose another output")
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise BagError(f"output '{output}' exists; pass --overwrite to replace it (or choose another name)")


class BagWriter:
    """The output bag while it is written; :meth:`finish` moves it into place, :meth:`abort` discards it."""

    def __init__(self, output: str | Path, overwrite: bool = False, compression: str = "none") -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got '{compression}'")
        self.output = Path(output).expanduser()
        self.overwrite = overwrite
        self.compression = compression
        self.store = typestore()
        self.single_file = self.output.suffix == SINGLE_FILE_SUFFIX
        self._writer = None
        self._private: Path | None = None
        self._copies: dict[tuple, object] = {}

    def open(self) -> BagWriter:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

        check_output(self.output, self.overwrite)
        keep_large_blocks_in_heap()  # the bag tool is a batch process: see segnet_ros/memory.py
        parent = self.output.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._private = Path(tempfile.mkdtemp(dir=parent, prefix=f".{self.output.name}.partial-"))
        except OSError as exc:
            raise BagError(f"cannot create output '{self.output}': {exc.strerror or exc}") from None
        # the bag's own name is OUTPUT's (its .mcap file is named after it), never the private folder's
        name = self.output.stem if self.single_file else self.output.name
        writer = Writer(self._private / name, version=ROSBAG2_VERSION, storage_plugin=StoragePlugin.MCAP)
        if self.compression == "zstd":  # MCAP chunk compression
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        try:
            writer.open()
        except Exception as exc:
            self.abort()
            raise BagError(f"cannot create output '{self.output}': {exc}") from None
        self._writer = writer
        return self

    # -- connections --------------------------------------------------------------------------------
    def connection(self, topic: str, msgtype: str, latched: bool = False):
        """A connection for one of our outputs, with the type's definition and hash from the store."""
        return self._writer.add_connection(topic, msgtype, typestore=self.store,
                                           offered_qos_profiles=[_qos(latched)])

    def copy_connection(self, source) -> tuple[object | None, str | None]:
        """(connection, None) for copying ``source``'s messages as they are, with its own definition,
        hash and QoS; (None, why not) when the definition is in neither the bag nor the store."""
        key = (source.topic, source.msgtype, source.ext.serialization_format, repr(source.ext.offered_qos_profiles))
        if key in self._copies:
            return self._copies[key], None
        msgdef, digest = self._definition(source)
        if msgdef is None:
            return None, (f"{source.topic} is not copied: the bag does not define its type {source.msgtype} and "
                          "rosbags does not know it")
        connection = self._writer.add_connection(
            source.topic, source.msgtype, msgdef=msgdef, rihs01=digest,
            serialization_format=source.ext.serialization_format,
            offered_qos_profiles=list(source.ext.offered_qos_profiles))
        self._copies[key] = connection
        return connection, None

    def _definition(self, source) -> tuple[str | None, str | None]:
        from rosbags.interfaces import MessageDefinitionFormat
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        text = source.msgdef.data if source.msgdef.format != MessageDefinitionFormat.NONE else ""
        if text and source.digest:
            return text, source.digest
        if text and source.msgdef.format == MessageDefinitionFormat.MSG:  # an older bag: no hash recorded
            with contextlib.suppress(Exception):
                own = get_typestore(Stores.EMPTY)
                own.register(get_types_from_msg(text, source.msgtype))
                return text, own.hash_rihs01(source.msgtype)
        if source.msgtype in self.store.fielddefs:
            return self.store.generate_msgdef(source.msgtype, ros_version=2)[0], self.store.hash_rihs01(source.msgtype)
        return None, None

    # -- writing ---------------------------------------------------------------------------------------
    def write(self, connection, timestamp: int, data) -> None:
        try:
            self._writer.write(connection, timestamp, data)
        except OSError as exc:
            raise BagError(f"cannot write output '{self.output}': {exc.strerror or exc}") from None

    def finish(self) -> Path:
        """Close the bag and move it to OUTPUT (replacing what is there only now)."""
        try:
            self._writer.close()
            self._writer = None
            name = self.output.stem if self.single_file else self.output.name
            made = self._private / name
            if self.single_file:
                made = made / f"{name}.mcap"
            if self.output.exists() or self.output.is_symlink():
                os.rename(self.output, self._private / "replaced")  # aside first: a folder cannot be os.replace'd
            os.rename(made, self.output)
        except OSError as exc:
            self.abort()
            raise BagError(f"cannot write output '{self.output}': {exc.strerror or exc}") from None
        shutil.rmtree(self._private, ignore_errors=True)
        self._private = None
        return self.output

    def abort(self) -> None:
        """Discard what was written; OUTPUT is left as it was."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.abort()
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None


class Messages:
    """Our outputs as CDR bytes, field for field what the node publishes."""

    def __init__(self, store=None) -> None:
        self.store = store or typestore()
        types = self.store.types
        self._image, self._header, self._time = (types[IMAGE], types["std_msgs/msg/Header"],
                                                 types["builtin_interfaces/msg/Time"])
        self._array, self._layout, self._dim = (types[UINT32_ARRAY], types["std_msgs/msg/MultiArrayLayout"],
                                                types["std_msgs/msg/MultiArrayDimension"])
        self._string = types[STRING]

    def header(self, stamp_ns: int, frame_id: str = ""):
        return self._header(stamp=self._time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                            frame_id=frame_id)

    def image(self, header, pixels: np.ndarray, encoding: str) -> memoryview:
        """sensor_msgs/Image of (H, W) or (H, W, C) uint8 ``pixels``, rows unpadded."""
        height, width = pixels.shape[:2]
        channels = pixels.shape[2] if pixels.ndim == 3 else 1
        msg = self._image(header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
                          step=width * channels, data=np.ascontiguousarray(pixels).reshape(-1))
        return self.store.serialize_cdr(msg, IMAGE)

    def histogram(self, counts: np.ndarray) -> memoryview:
        """std_msgs/UInt32MultiArray: one dimension labelled ``class``, size and stride C."""
        size = len(counts)
        layout = self._layout(dim=[self._dim(label="class", size=size, stride=size)], data_offset=0)
        return self.store.serialize_cdr(self._array(layout=layout, data=counts.astype(np.uint32)), UINT32_ARRAY)

    def string(self, text: str) -> memoryview:
        return self.store.serialize_cdr(self._string(data=text), STRING)

    def label_info(self, stamp_ns: int, class_names, threshold: float) -> memoryview:
        """vision_msgs/LabelInfo: one VisionClass per class id, as the node fills it."""
        types = self.store.types
        vision_class = types["vision_msgs/msg/VisionClass"]
        msg = types[LABEL_INFO](header=self.header(stamp_ns),
                                class_map=[vision_class(class_id=i, class_name=n) for i, n in enumerate(class_names)],
                                threshold=float(threshold))
        return self.store.serialize_cdr(msg, LABEL_INFO)
