"""Where the CLI's frames come from and go to: images, folders, globs and videos."""

from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import SegnetError
from ..core.opencv_io import because, quietly


def _is_glob(spec: str) -> bool:
    return any(ch in spec for ch in "*?[")

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}
_FOURCC = {".avi": "MJPG", ".mkv": "MJPG", ".webm": "VP80"}
DEFAULT_FPS = 30.0
def _read_image(path: Path) -> np.ndarray:
    image, said = quietly(lambda: cv2.imread(str(path), cv2.IMREAD_COLOR))
    if image is None:
        raise SegnetError(f"cannot decode image '{path}'{because(said)}; is it a valid image file?")
    return image


def _open_video(path: Path) -> cv2.VideoCapture:
    capture, said = quietly(lambda: cv2.VideoCapture(str(path)))
    if capture is None or not capture.isOpened():
        raise SegnetError(f"cannot open video '{path}'{because(said)}")
    return capture


def _number(value: float, fallback: float) -> float:
    """A property a video file declares (fps, frame count), or ``fallback`` where it is nonsense."""
    return value if math.isfinite(value) and value > 0 else fallback


@dataclass
class Source:
    """Frames to segment, in BGR order, each with a name for the output file."""

    paths: list[Path]
    video: Path | None = None
    fps: float = DEFAULT_FPS
    count: int = 0

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        if self.video is not None:
            yield from self._video_frames()
            return
        for path in self.paths:
            yield path.name, _read_image(path)

    def _video_frames(self) -> Iterator[tuple[str, np.ndarray]]:
        capture = _open_video(self.video)
        try:
            index = 0
            while True:
                try:
                    ok, image = capture.read()
                except cv2.error:
                    ok = False
                if not ok:
                    break
                yield f"{self.video.stem}_{index:06d}.jpg", image
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise SegnetError(f"cannot decode any frame of video '{self.video}'")


def open_source(spec: str) -> Source:
    """An image, a folder of images, a glob, or a video file."""
    try:
        return _open_source(spec)
    except OSError as exc:  # a name too long, a folder we may not list
        raise SegnetError(f"cannot read input '{spec}': {exc.strerror or exc}") from None


def _open_source(spec: str) -> Source:
    path = Path(spec).expanduser()
    if _is_glob(spec):
        paths = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).suffix.lower() in IMAGE_EXTENSIONS)
        if not paths:
            raise SegnetError(f"no images match '{spec}'")
        return Source(paths, count=len(paths))
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not paths:
            raise SegnetError(f"folder '{spec}' holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return Source(paths, count=len(paths))
    if not path.exists():
        raise SegnetError(f"input '{spec}' not found")
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        capture = _open_video(path)
        fps = _number(capture.get(cv2.CAP_PROP_FPS), DEFAULT_FPS)
        count = int(_number(capture.get(cv2.CAP_PROP_FRAME_COUNT), 0))
        capture.release()
        return Source([], video=path, fps=fps, count=count)
    if suffix in IMAGE_EXTENSIONS:
        return Source([path], count=1)
    raise SegnetError(f"input '{spec}' is neither an image, a folder, a glob nor a video")


def _identity(path: Path) -> tuple[int, int] | Path:
    """What tells two names of one file apart from two files: (device, inode), or the resolved path."""
    try:
        info = path.stat()
        return (info.st_dev, info.st_ino)
    except OSError:
        return path.resolve()


class Sink:
    """Writes composed pictures: one image file, a folder, a %i pattern, or a video. It never writes over
    one of the inputs, and over another existing file only with ``overwrite``."""

    def __init__(self, spec: str, source: Source, overwrite: bool = False) -> None:
        self.spec = spec
        self.path = Path(spec).expanduser()
        suffix = self.path.suffix.lower()
        self._writer: cv2.VideoWriter | None = None
        self._fps = source.fps
        self._index = 0
        self._overwrite = overwrite
        self._inputs = {_identity(p) for p in [*source.paths, *([source.video] if source.video else [])]}
        if suffix in VIDEO_EXTENSIONS:
            self.kind = "video"
        elif suffix in IMAGE_EXTENSIONS and re.search(r"%0?\d*[id]", self.path.name):
            self.kind = "pattern"
            try:
                self.path.name % 0
            except (TypeError, ValueError):
                raise SegnetError(f"output pattern '{spec}' must hold exactly one number field such as %i "
                                  "or %04d (write a literal % as %%)") from None
        elif suffix in IMAGE_EXTENSIONS:
            if source.video is not None or source.count > 1:
                raise SegnetError(
                    f"output '{spec}' is one image but the input has several frames; "
                    "give a folder, a pattern such as out_%i.jpg, or a video file")
            self.kind = "image"
        elif not suffix or self.path.is_dir() or spec.endswith(("/", os.sep)):
            self.kind = "folder"
        else:
            raise SegnetError(
                f"output '{spec}' has an unknown extension '{self.path.suffix}'; give an image "
                f"({', '.join(sorted(IMAGE_EXTENSIONS))}), a video ({', '.join(sorted(VIDEO_EXTENSIONS))}), "
                "a pattern such as out_%i.jpg, or a folder (a name without an extension, or ending in '/')")
        if source.video is None:  # every target is known: refuse before anything is written
            for index, path in enumerate(source.paths):
                self._check(self._target(path.name, index))
        elif self.kind in ("video", "image"):
            self._check(self.path)
        parent = self.path if self.kind == "folder" else self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SegnetError(f"cannot create output folder '{parent}': {exc.strerror}") from None

    def _target(self, name: str, index: int) -> Path:
        if self.kind in ("image", "video"):
            return self.path
        if self.kind == "pattern":
            return self.path.with_name(self.path.name % index)
        return self.path / name

    def _check(self, target: Path) -> None:
        """Refuse to write ``target`` over an input, or over an existing file without ``overwrite``."""
        if not (target.exists() or target.is_symlink()):
            return
        if _identity(target) in self._inputs:
            raise SegnetError(f"output '{target}' is one of the inputs; choose another output")
        if not self._overwrite:
            if self.kind == "image":  # 'segment dir/*.png' unquoted: the shell made the second image the output
                raise SegnetError(f"output '{target}' exists. If the shell expanded a glob into input and output, "
                                  "quote the glob ('dir/*.png') and give an output folder; to replace the file, "
                                  "pass --overwrite")
            raise SegnetError(f"output '{target}' exists; pass --overwrite to replace it, or choose another output")

    def write(self, name: str, image: np.ndarray) -> Path:
        if self.kind == "video":
            return self._write_video(image)
        target = self._target(name, self._index)
        if self._index == 0 or self.kind != "image":
            self._check(target)
        self._index += 1
        written, said = quietly(lambda: cv2.imwrite(str(target), image))
        if not written:
            raise SegnetError(f"cannot write '{target}'; check the folder and the file extension{because(said)}")
        return target

    def _write_video(self, image: np.ndarray) -> Path:
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC.get(self.path.suffix.lower(), "mp4v"))
            height, width = image.shape[:2]
            writer, said = quietly(lambda: cv2.VideoWriter(str(self.path), fourcc, self._fps, (width, height)))
            if writer is None or not writer.isOpened():
                raise SegnetError(f"cannot open video '{self.path}' for writing{because(said)}")
            self._writer = writer
        self._writer.write(image)
        return self.path

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
