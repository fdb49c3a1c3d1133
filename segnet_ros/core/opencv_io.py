"""OpenCV on a user's files, with what the C libraries under it say captured instead of printed.

libpng, libjpeg, FFmpeg and OpenCV's own log explain on file descriptor 2 why a file cannot be read; the CLI
and ``segnet-ros evaluate`` promise one error line, so :func:`quietly` keeps those words for the line.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable
from typing import TypeVar

import cv2

T = TypeVar("T")

# OpenCV's log ("[ERROR:0@0.7] global cap_ffmpeg_impl.hpp:3568 open ", 4.x: "global /path/x.cpp (239) open ")
# and FFmpeg's ("[mov,mp4 @ 0x55e3] ") put this before what they say
_LOG_PREFIX = re.compile(r"^\[\s*[A-Z]+:\d+@[\d.]+\]\s+global\s+\S+(?:\s+\(\d+\))?\s+\S+\s+"
                         r"|^\[[^\]]* @ 0x[0-9a-f]+\]\s*")


def quietly(call: Callable[[], T]) -> tuple[T | None, list[str]]:
    """Run ``call``, OpenCV on a user's file, and capture what the C libraries under it (libpng,
    libjpeg, FFmpeg, OpenCV's own log) print on file descriptor 2 meanwhile, so that our one-line
    message gives it as the reason instead of it appearing beside ours.

    Returns the call's result, or None where OpenCV raised (5.x raises where 4.x returns None, e.g. for
    an image whose header declares an absurd size), and the lines the libraries said, tidied.
    """
    said: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            result = call()
        except cv2.error as exc:
            result = None
            said.append(f"OpenCV's check '{exc.err}' failed in {exc.func}" if exc.code == cv2.Error.StsAssert
                        else f"OpenCV: {exc.err}")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        lines = (_LOG_PREFIX.sub("", line).strip() for line in sink.read().decode(errors="replace").splitlines())
    return result, [*dict.fromkeys(line for line in lines if line), *said]


def because(reasons: list[str]) -> str:
    """`` (reason; reason)`` from what the libraries said, or nothing; at most three reasons."""
    return f" ({'; '.join(reasons[:3])})" if reasons else ""
