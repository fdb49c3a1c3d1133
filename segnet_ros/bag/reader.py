"""Reading a rosbag2: its topics and types, its messages in log-time order, and its images as frames.

A bag is a rosbag2 folder (metadata.yaml plus MCAP or SQLite 3 files) or a single ``.mcap`` or
``.db3`` file. Every failure of the library or the file (missing, not a bag, truncated, damaged)
becomes one :class:`BagError` that names the bag and says why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.decode import MAX_INPUT_PIXELS, compressed_to_array, image_to_array
from ..core.errors import FrameError
from .typestore import COMPRESSED_IMAGE, IMAGE, BagError, typestore

IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
REPAIR_HINT = ("truncated or damaged? a recording that was cut short can be repaired with 'ros2 bag reindex' "
               "(a bag folder) or 'mcap recover' (an .mcap file)")


@dataclass(frozen=True)
class Topic:
    """One topic of the input bag, as its own type information describes it."""

    name: str
    msgtype: str
    count: int
    connections: tuple  # rosbags Connection objects

    @property
    def is_image(self) -> bool:
        return self.msgtype in IMAGE_TYPES

    @property
    def compressed(self) -> bool:
        return self.msgtype == COMPRESSED_IMAGE


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.rstrip(".")


class BagReader:
    """An open input bag; use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.store = typestore()
        self._reader = None
        self.topics: dict[str, Topic] = {}

    # -- opening ----------------------------------------------------------------------------------
    def open(self) -> BagReader:
        from rosbags.rosbag2 import Reader

        path = self.path
        if not path.exists():
            raise BagError(f"bag '{path}' not found")
        if path.is_dir() and not (path / "metadata.yaml").is_file():
            raise BagError(f"'{path}' is a folder without metadata.yaml, so not a rosbag2 folder; give the bag's "
                           "folder, or one of its .mcap/.db3 files")
        if path.is_file() and path.suffix not in (".mcap", ".db3"):
            raise BagError(f"'{path}' is not a rosbag2: give a bag folder (with metadata.yaml) or an .mcap or "
                           ".db3 file")
        with self._errors():
            reader = Reader(path)
            reader.open()
        self._reader = reader
        with self._errors():
            grouped: dict[str, list] = {}
            for connection in reader.connections:
                grouped.setdefault(connection.topic, []).append(connection)
        for name in sorted(grouped):
            connections = grouped[name]
            types = {c.msgtype for c in connections}
            if len(types) > 1:
                raise BagError(f"topic '{name}' of bag '{path}' has several types ({', '.join(sorted(types))}); "
                               "it cannot be read as one stream")
            self.topics[name] = Topic(name, types.pop(), sum(c.msgcount for c in connections), tuple(connections))
        return self

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._reader.close()
            self._reader = None

    def __enter__(self) -> BagReader:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The library's and the file system's failures as one BagError naming the bag."""
        try:
            yield
        except BagError:
            raise
        except PermissionError as exc:
            raise BagError(f"cannot read bag '{self.path}': {exc.strerror or exc}") from None
        except Exception as exc:  # rosbags' ReaderError, apsw's SQLite errors, struct/zstd/lz4 on damaged data
            raise BagError(f"cannot read bag '{self.path}': {_reason(exc)} ({REPAIR_HINT})") from None

    # -- reading ----------------------------------------------------------------------------------
    @property
    def image_topics(self) -> list[Topic]:
        return [t for t in self.topics.values() if t.is_image]

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[object, int, bytes]]:
        """(connection, log time in ns, CDR bytes) of ``topics`` (None: every topic), in log-time order."""
        wanted = self.topics if topics is None else {name: self.topics[name] for name in topics}
        connections = [c for topic in wanted.values() for c in topic.connections]
        if not connections:
            return
        with self._errors():
            yield from self._reader.messages(connections=connections)

    def first(self, topic: str):
        """The first message of ``topic``, deserialized, or None when it has none (or it is unreadable)."""
        for connection, _, raw in self.messages([topic]):
            try:
                return self.deserialize(connection.msgtype, raw)
            except FrameError:
                return None
        return None

    def deserialize(self, msgtype: str, raw: bytes):
        try:
            return self.store.deserialize_cdr(raw, msgtype)
        except Exception as exc:  # a damaged message is one bad frame, not the end of the run
            raise FrameError(f"cannot deserialize {msgtype} ({len(raw)} bytes): {_reason(exc)}") from None

    def frame(self, msgtype: str, raw: bytes, max_pixels: int = MAX_INPUT_PIXELS) -> tuple[object, np.ndarray, str]:
        """(message, (H, W, C) uint8 frame, core encoding) of an Image or CompressedImage; FrameError if bad."""
        msg = self.deserialize(msgtype, raw)
        if msgtype == COMPRESSED_IMAGE:
            frame, encoding = compressed_to_array(msg, max_pixels)
        else:
            frame, encoding = image_to_array(msg, max_pixels)
        return msg, frame, encoding
