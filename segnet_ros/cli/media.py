"""Where the CLI's frames come from and go to: images, folders, globs and videos."""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import SegnetError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}
_FOURCC = {".avi": "MJPG", ".mkv": "MJPG"}


def _is_glob(spec: str) -> bool:
    return any(ch in spec for ch in "*?[")


@dataclass
class Source:
    """Frames to segment, in BGR order, each with a name for the output file."""

    paths: list[Path]
    video: Path | None = None
    fps: float = 30.0
    count: int = 0

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        if self.video is not None:
            yield from self._video_frames()
            return
        for path in self.paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise SegnetError(f"cannot decode image '{path}'; is it a valid image file?")
            yield path.name, image

    def _video_frames(self) -> Iterator[tuple[str, np.ndarray]]:
        capture = cv2.VideoCapture(str(self.video))
        try:
            index = 0
            while True:
                ok, image = capture.read()
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
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise SegnetError(f"cannot open video '{spec}'")
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        capture.release()
        return Source([], video=path, fps=fps, count=max(count, 0))
    if suffix in IMAGE_EXTENSIONS:
        return Source([path], count=1)
    raise SegnetError(f"input '{spec}' is neither an image, a folder, a glob nor a video")


class Sink:
    """Writes composed pictures: one image file, a folder, a %i pattern, or a video."""

    def __init__(self, spec: str, source: Source) -> None:
        self.spec = spec
        self.path = Path(spec).expanduser()
        suffix = self.path.suffix.lower()
        self._writer: cv2.VideoWriter | None = None
        self._fps = source.fps
        self._index = 0
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
        else:
            self.kind = "folder"
        parent = self.path if self.kind == "folder" else self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SegnetError(f"cannot create output folder '{parent}': {exc.strerror}") from None

    def write(self, name: str, image: np.ndarray) -> Path:
        if self.kind == "video":
            return self._write_video(image)
        if self.kind == "image":
            target = self.path
        elif self.kind == "pattern":
            target = self.path.with_name(self.path.name % self._index)
        else:
            target = self.path / name
        self._index += 1
        if not cv2.imwrite(str(target), image):
            raise SegnetError(f"cannot write '{target}'; check the folder and the file extension")
        return target

    def _write_video(self, image: np.ndarray) -> Path:
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC.get(self.path.suffix.lower(), "mp4v"))
            height, width = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self._fps, (width, height))
            if not self._writer.isOpened():
                raise SegnetError(f"cannot open video '{self.path}' for writing")
        self._writer.write(image)
        return self.path

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
