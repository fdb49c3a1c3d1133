"""Which image goes with which label: files paired by stem or by the Cityscapes layout, and a bag's
image and label messages paired by exact header stamp.

Everything that can be refused without a model is refused here, before one is loaded: inputs that
are not there, an empty set, unpaired files (unless skipped), a bag without the topics named.
"""

from __future__ import annotations

import glob
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import FrameError, SegnetError
from .labels import LabelDecoder, read_image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"})
BAG_SUFFIXES = (".mcap", ".db3")
CITYSCAPES_IMAGE = re.compile(r"_leftImg8bit$")
CITYSCAPES_LABEL = re.compile(r"_gt(?:Fine|Coarse)_labelIds$")
NAMED = 3  # unpaired files named in a message


@dataclass(frozen=True)
class LabelledFrame:
    """One frame to score: the image (in ``encoding``), its label's class ids, and names for messages."""

    name: str
    image: np.ndarray
    encoding: str
    label: np.ndarray  # (H, W) uint8 or uint16 class ids, not yet checked against the model
    where: str  # "label 'path'" or "bag 'b' label at stamp s"


@dataclass(frozen=True)
class Unpaired:
    """What found no partner: image and label names (or stamps)."""

    images: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.images) + len(self.labels)

    def describe(self, image_word: str = "image", label_word: str = "label") -> str:
        parts = []
        if self.images:
            shown = ", ".join(self.images[:NAMED]) + (", ..." if len(self.images) > NAMED else "")
            parts.append(f"{len(self.images)} {image_word}{'s' if len(self.images) != 1 else ''} without a "
                         f"{label_word} ({shown})")
        if self.labels:
            shown = ", ".join(self.labels[:NAMED]) + (", ..." if len(self.labels) > NAMED else "")
            parts.append(f"{len(self.labels)} {label_word}{'s' if len(self.labels) != 1 else ''} without an "
                         f"{image_word} ({shown})")
        return " and ".join(parts)


def is_bag(spec: str) -> bool:
    path = Path(spec).expanduser()
    return path.suffix.lower() in BAG_SUFFIXES or (path.is_dir() and (path / "metadata.yaml").is_file())


def _images_in(folder: Path) -> list[Path]:
    """The folder's image files; a folder with none but with subfolders is searched all the way down
    (Cityscapes keeps ``leftImg8bit/val/<city>/*.png``)."""
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if found or not any(p.is_dir() for p in folder.iterdir()):
        return found
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def list_files(spec: str, what: str) -> list[Path]:
    """The image files a folder, a quoted glob (``**`` included) or a single file names."""
    try:
        path = Path(spec).expanduser()
        if any(ch in spec for ch in "*?["):
            files = sorted(Path(p) for p in glob.glob(str(path), recursive=True)
                           if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file())
            if not files:
                raise SegnetError(f"no {what} files match '{spec}'")
            return files
        if path.is_dir():
            files = _images_in(path)
            if not files:
                raise SegnetError(f"folder '{spec}' holds no {what} files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            return files
        if not path.exists():
            raise SegnetError(f"{what} input '{spec}' not found")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise SegnetError(f"{what} input '{spec}' is neither a folder, a quoted glob nor an image file")
        return [path]
    except OSError as exc:  # a folder we may not list, a name too long
        raise SegnetError(f"cannot read {what} input '{spec}': {exc.strerror or exc}") from None


def _keyed(files: list[Path], pattern: re.Pattern | None, what: str) -> dict[str, Path]:
    """Files by pairing key (the stem, less the Cityscapes suffix); two files with one key are refused."""
    keyed: dict[str, Path] = {}
    for path in files:
        key = pattern.sub("", path.stem) if pattern is not None else path.stem
        if key in keyed:
            raise SegnetError(f"two {what} files pair as '{key}': '{keyed[key]}' and '{path}'; give each {what} "
                              "input its own folder, or quoted globs such as 'data/*.jpg' 'data/*.png'")
        keyed[key] = path
    return keyed


@dataclass(frozen=True)
class Pair:
    key: str
    image: Path
    label: Path


def pair_files(images: list[Path], labels: list[Path]) -> tuple[list[Pair], str, Unpaired]:
    """(pairs, layout, unpaired): by the Cityscapes layout where the images are ``*_leftImg8bit`` and
    the labels include ``*_gtFine_labelIds`` (its other files, colour and instance masks, are not
    labels and are left alone), else by file stem."""
    cityscapes = (any(CITYSCAPES_IMAGE.search(p.stem) for p in images)
                  and any(CITYSCAPES_LABEL.search(p.stem) for p in labels))
    if cityscapes:
        images = [p for p in images if CITYSCAPES_IMAGE.search(p.stem)]
        labels = [p for p in labels if CITYSCAPES_LABEL.search(p.stem)]
    by_image = _keyed(images, CITYSCAPES_IMAGE if cityscapes else None, "image")
    by_label = _keyed(labels, CITYSCAPES_LABEL if cityscapes else None, "label")
    pairs = [Pair(key, by_image[key], by_label[key]) for key in sorted(by_image) if key in by_label]
    unpaired = Unpaired(tuple(str(by_image[k].name) for k in sorted(by_image) if k not in by_label),
                        tuple(str(by_label[k].name) for k in sorted(by_label) if k not in by_image))
    return pairs, "cityscapes" if cityscapes else "stem", unpaired


def _refuse_unpaired(unpaired: Unpaired, pairs: int, how: str, skip: bool, words: tuple[str, str]) -> None:
    if not pairs:
        raise SegnetError(f"empty set: no {words[0]} has a {words[1]} ({how}): {unpaired.describe(*words)}"
                          if unpaired.count else f"empty set: no {words[0]}s to evaluate")
    if unpaired.count and not skip:
        raise SegnetError(f"{unpaired.describe(*words)} ({how}); pass --skip-unpaired to score the {pairs} "
                          f"pair{'s' if pairs != 1 else ''} only")


@dataclass
class FileSet:
    """Image files and their label files."""

    pairs: list[Pair]
    layout: str  # "stem" or "cityscapes"
    unpaired: Unpaired = field(default_factory=Unpaired)

    @property
    def count(self) -> int:
        return len(self.pairs)

    def describe(self) -> str:
        how = "Cityscapes layout" if self.layout == "cityscapes" else "file stem"
        return f"{self.count} labelled image{'s' if self.count != 1 else ''} (paired by {how})"

    def frames(self, decoder: LabelDecoder) -> Iterator[LabelledFrame]:
        for pair in self.pairs:
            label = decoder.read(pair.label)
            yield LabelledFrame(pair.image.name, read_image(pair.image), "bgr8", label, f"label '{pair.label}'")


def _one_file(spec: str) -> bool:
    return not any(ch in spec for ch in "*?[") and Path(spec).expanduser().is_file()


def open_files(images: str, masks: str, skip_unpaired: bool = False) -> FileSet:
    image_files, label_files = list_files(images, "image"), list_files(masks, "label")
    pairs, layout, unpaired = pair_files(image_files, label_files)
    if not pairs and _one_file(images) and _one_file(masks):  # one image and its label: a pair, whatever the names
        pairs, unpaired = [Pair(image_files[0].stem, image_files[0], label_files[0])], Unpaired()
    how = "Cityscapes layout" if layout == "cityscapes" else "paired by file stem"
    _refuse_unpaired(unpaired, len(pairs), how, skip_unpaired, ("image", "label"))
    return FileSet(pairs, layout, unpaired)


# -- a bag: image and label messages with the same header stamp --------------------------------------
def header_stamp(raw) -> int | None:
    """A message's header stamp in ns, read from its CDR bytes (every Image and CompressedImage starts
    with its header); None where the encapsulation is not plain CDR."""
    kind = bytes(raw[:2])
    if len(raw) < 12 or kind not in (b"\x00\x00", b"\x00\x01"):
        return None
    sec, nanosec = struct.unpack_from("<iI" if kind == b"\x00\x01" else ">iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


def _stamp_text(stamp: int) -> str:
    return f"{stamp // 1_000_000_000}.{stamp % 1_000_000_000:09d}"


@dataclass
class BagSet:
    """A bag's image topic and its label topic (mono8 class ids), paired by exact header stamp."""

    path: str
    topic: str
    label_topic: str
    stamps: frozenset[int]  # the paired ones
    unpaired: Unpaired = field(default_factory=Unpaired)
    layout: str = "bag"

    @property
    def count(self) -> int:
        return len(self.stamps)

    def describe(self) -> str:
        return (f"{self.count} labelled frame{'s' if self.count != 1 else ''} of bag '{self.path}' ({self.topic} "
                f"with {self.label_topic}, paired by header stamp)")

    def frames(self, decoder: LabelDecoder) -> Iterator[LabelledFrame]:
        """The pairs in the order their second half was logged; each message is decoded once."""
        from ..bag.reader import BagReader

        pending: dict[str, dict[int, tuple[str, object]]] = {self.topic: {}, self.label_topic: {}}
        seen: dict[str, set[int]] = {self.topic: set(), self.label_topic: set()}
        with BagReader(self.path) as bag:
            for connection, _, raw in bag.messages([self.topic, self.label_topic]):
                topic = connection.topic
                stamp = _stamp_of(bag, connection.msgtype, raw)
                if stamp not in self.stamps or stamp in seen[topic]:  # unpaired, or a later duplicate
                    continue
                seen[topic].add(stamp)
                other = self.label_topic if topic == self.topic else self.topic
                if stamp not in pending[other]:
                    pending[topic][stamp] = (connection.msgtype, bytes(raw))
                    continue
                mine = (connection.msgtype, raw)
                image_msg, label_msg = (mine, pending[other].pop(stamp)) if topic == self.topic else \
                    (pending[other].pop(stamp), mine)
                yield self._frame(bag, stamp, image_msg, label_msg, decoder)

    def _frame(self, bag, stamp: int, image_msg, label_msg, decoder: LabelDecoder) -> LabelledFrame:
        when = _stamp_text(stamp)
        try:
            _, image, encoding = bag.frame(*image_msg)
        except FrameError as exc:
            raise SegnetError(f"bag '{self.path}': the image of {self.topic} at stamp {when} cannot be read: "
                              f"{exc}") from None
        try:
            _, label, label_encoding = bag.frame(*label_msg)
        except FrameError as exc:
            raise SegnetError(f"bag '{self.path}': the label of {self.label_topic} at stamp {when} cannot be read: "
                              f"{exc}; labels are mono8 class ids") from None
        if label_encoding != "mono8":
            raise SegnetError(f"bag '{self.path}': the label of {self.label_topic} at stamp {when} is "
                              f"{label_encoding}; labels are mono8 class ids")
        where = f"bag '{self.path}' label of {self.label_topic} at stamp {when}"
        return LabelledFrame(f"{self.topic}@{when}", image, encoding, decoder.ids(label), where)


def _stamp_of(bag, msgtype: str, raw) -> int:
    stamp = header_stamp(raw)
    if stamp is None:
        try:
            stamp = _message_stamp(bag.deserialize(msgtype, raw))
        except FrameError as exc:
            raise SegnetError(f"bag '{bag.path}': a message cannot be read: {exc}") from None
    return stamp


def _message_stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def open_bag(spec: str, topic: str | None, label_topic: str, skip_unpaired: bool = False) -> BagSet:
    """Check the topics and pair the stamps (one pass over the two topics, nothing decoded)."""
    from ..bag.reader import BagReader
    from ..bag.typestore import IMAGE

    with BagReader(spec) as bag:
        images = [t.name for t in bag.image_topics if t.name != label_topic]
        listed = ", ".join(images) or "none"
        label = bag.topics.get(label_topic)
        if label is None:
            raise SegnetError(f"bag '{spec}' has no topic '{label_topic}' (--label-topic; its image topics: "
                              f"{', '.join(t.name for t in bag.image_topics) or 'none'})")
        if label.msgtype != IMAGE:
            raise SegnetError(f"bag '{spec}': label topic '{label_topic}' is {label.msgtype}; labels are "
                              "sensor_msgs/msg/Image mono8 class ids")
        if topic is None:
            if len(images) != 1:
                raise SegnetError(f"bag '{spec}' has {len(images)} image topics besides the labels ({listed}); "
                                  "choose one with --topic")
            topic = images[0]
        elif topic not in bag.topics or not bag.topics[topic].is_image:
            raise SegnetError(f"bag '{spec}' has no image topic '{topic}' (its image topics: {listed})")
        if topic == label_topic:
            raise SegnetError(f"--topic and --label-topic both name '{topic}'")
        stamps: dict[str, list[int]] = {topic: [], label_topic: []}
        for connection, _, raw in bag.messages([topic, label_topic]):
            stamps[connection.topic].append(_stamp_of(bag, connection.msgtype, raw))
    image_stamps, label_stamps = set(stamps[topic]), set(stamps[label_topic])
    paired = image_stamps & label_stamps
    duplicates = (len(stamps[topic]) - len(image_stamps)) + (len(stamps[label_topic]) - len(label_stamps))
    unpaired = Unpaired(tuple(_stamp_text(s) for s in sorted(image_stamps - paired)),
                        tuple(_stamp_text(s) for s in sorted(label_stamps - paired)))
    how = f"header stamps of {topic} and {label_topic} in bag '{spec}'"
    _refuse_unpaired(unpaired, len(paired), how, skip_unpaired, ("image", "label"))
    if duplicates and not skip_unpaired:
        raise SegnetError(f"{duplicates} message{'s' if duplicates != 1 else ''} of {how} repeat a stamp; each "
                          "stamp pairs once: pass --skip-unpaired to use the first of each")
    return BagSet(spec, topic, label_topic, frozenset(paired), unpaired)


def open_labelled(inputs: Sequence[str], topic: str | None = None, label_topic: str | None = None,
                  skip_unpaired: bool = False) -> FileSet | BagSet:
    """IMAGES MASKS (folders, quoted globs or files), or one rosbag2 with ``label_topic``."""
    if len(inputs) == 1 and is_bag(inputs[0]):
        if not label_topic:
            raise SegnetError(f"'{inputs[0]}' is a bag: name its label topic (mono8 class ids) with --label-topic")
        return open_bag(inputs[0], topic, label_topic, skip_unpaired)
    if len(inputs) != 2:
        raise SegnetError(f"expected IMAGES and MASKS (folders or quoted globs), or one rosbag2 with --label-topic; "
                          f"got {len(inputs)} input{'s' if len(inputs) != 1 else ''}")
    if any(is_bag(spec) for spec in inputs):
        raise SegnetError("a bag is evaluated alone: give the bag and its --topic and --label-topic")
    if label_topic or topic:
        raise SegnetError("--topic and --label-topic are for a bag; IMAGES and MASKS are files")
    return open_files(inputs[0], inputs[1], skip_unpaired)
