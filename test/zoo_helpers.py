"""Test-side tools for the model zoo: tiny models with a registry model's geometry,
archives (good and hostile) made from them, and a real HTTP server on 127.0.0.1
whose misbehaviour each test chooses.
"""

from __future__ import annotations

import io
import re
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from oracle import NAMES, PALETTE, linear_oracle, normalized


def oracle_model(folder: Path, width: int, height: int, classes: int, labels: int | None = None,
                 colors: bool = True) -> Path:
    """A model folder in jetson-inference's layout whose network is the nearest-palette-colour classifier.

    Classes beyond the palette's eight never win, so the class grid of a painted image is known exactly.
    """
    folder.mkdir(parents=True, exist_ok=True)
    centers = normalized(PALETTE)
    known = min(classes, len(PALETTE))
    weights = np.zeros((classes, 3))
    bias = np.full(classes, -1e6)
    weights[:known] = 2 * centers[:known]
    bias[:known] = -(centers[:known] ** 2).sum(axis=1)
    linear_oracle(folder / "fcn_resnet18.onnx", width, height, weights, bias)
    count = classes if labels is None else labels
    names = [*NAMES, *(f"extra_{i}" for i in range(len(NAMES), count))][:count]
    (folder / "classes.txt").write_text("".join(f"{name}\n" for name in names))
    if colors:
        rgb = [PALETTE[i % len(PALETTE)] for i in range(count)]
        (folder / "colors.txt").write_text("".join(f"{r} {g} {b}\n" for r, g, b in rgb))
    return folder


def zoo_folder(parent: Path, model, **changes) -> Path:
    """An oracle model folder named and shaped like registry ``model`` (``changes`` break it on purpose)."""
    shape = {"width": model.width, "height": model.height, "classes": model.classes, **changes}
    return oracle_model(parent / model.dir, **shape)


def make_archive(path: Path, folder: Path, arcname: str | None = None) -> Path:
    """``folder`` as a .tar.gz whose top folder is ``arcname`` (default: the folder's name)."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        tar.add(folder, arcname=folder.name if arcname is None else arcname)
    return path


def hostile_archive(path: Path, *members: tuple[str, str, bytes | str]) -> Path:
    """A .tar.gz of (name, kind, data) members: kind is file, dir, symlink, hardlink, chr, blk or fifo."""
    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kinds[kind]
            info.mode = 0o755 if kind == "dir" else 0o644
            if kind in ("symlink", "hardlink"):
                info.linkname = data
                tar.addfile(info)
            elif kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


class ModelServer:
    """Serves ``files`` under ``/models/``; each attribute below is a misbehaviour a test can turn on."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.honour_range = True
        self.cuts = 0  # the next `cuts` responses stop after `cut_after` bytes of the body
        self.cut_after = 0
        self.failures = 0  # the next `failures` requests get 500
        self.content_type = "application/gzip"
        self.stall = 0.0  # seconds to wait before answering
        self.declared_length: int | None = None  # the size to claim (Content-Length, Content-Range) if not the true one
        self.send_length = True  # False: no Content-Length, the body ends when the connection closes
        self.redirect_loop = False  # every request is redirected to itself
        self.requests: list[tuple[str, str | None]] = []  # (request target, Range header)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.handle_error = lambda request, address: None  # clients that hang up are part of the tests
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def url_base(self) -> str:
        return f"http://{self.address}/models"

    def publish(self, archive: Path | bytes, name: str) -> None:
        self.files[f"/models/{name}"] = archive if isinstance(archive, bytes) else archive.read_bytes()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            server.requests.append((self.path, self.headers.get("Range")))
            if server.stall:
                time.sleep(server.stall)
            if server.failures > 0:
                server.failures -= 1
                self.send_error(500, "Internal Server Error")
                return
            if server.redirect_loop:
                self.send_response(302)
                self.send_header("Location", self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = server.files.get(urlparse(self.path).path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if wanted and server.honour_range:
                start = int(wanted.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                total = server.declared_length or len(body)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{total}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", server.content_type)
            if server.send_length:
                self.send_header("Content-Length", str((server.declared_length or len(body)) - start))
            self.end_headers()
            payload = body[start:]
            if server.cuts > 0:
                server.cuts -= 1
                payload = payload[: server.cut_after]
            self.wfile.write(payload)

    return Handler
