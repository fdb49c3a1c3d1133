"""The CLI's promise, kept by every sub-command: an error is one line, ``segnet-ros: error: ...``, status 1.

Each case is a child process with one bad input: a bad argument (argparse's errors are ours too), a
bad number, a file that is not what it claims to be, or a server that misbehaves.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from segnet_ros.cli.main import build_parser
from segnet_ros.zoo.registry import lookup

from conftest import ROOT, run_cli
from zoo_helpers import make_archive, zoo_folder


def _command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command the parser knows, as the words that name it: (), ('segment',), ('models', 'list'), ..."""
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _command_paths(sub, (*path, name))
    return found


COMMANDS = _command_paths(build_parser())
VOC = lookup("fcn-resnet18-voc")


def _png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height``, with almost no pixels behind it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, oracle_dir):
    """Name -> path of each file a case refers to by name."""
    folder = tmp_path_factory.mktemp("bad")
    ok, encoded = cv2.imencode(".png", np.full((40, 60, 3), 90, np.uint8))
    good = encoded.tobytes()
    files = {
        "IMAGE": good,
        "HUGE.png": _png(100000, 100000),  # OpenCV 5 raises from imread, 4.x returns None
        "CORRUPT.png": good[:60] + b"x" * 20 + good[80:],  # libpng prints its own line
        "TRUNCATED.jpg": cv2.imencode(".jpg", np.zeros((40, 60, 3), np.uint8))[1].tobytes()[:200],
        "CORRUPT.mp4": b"\x00\x00\x00\x18ftypmp42" + bytes(2000),  # FFmpeg: "moov atom not found"
        "PAGE.tar.gz": b"<html>\n<body>not found</body>\n</html>\n",
        "EMPTY.tar.gz": b"",
    }
    names = {name: folder / (f"{name}.png" if name == "IMAGE" else name) for name in files}
    for name, data in files.items():
        names[name].write_bytes(data)
    names["ORACLE"] = oracle_dir / "fcn_resnet18.onnx"
    names["LABELS"] = oracle_dir / "classes.txt"
    names["COLORS"] = oracle_dir / "colors.txt"
    return {name: str(path) for name, path in names.items()}


ORACLE = ("--model", "ORACLE", "--labels", "LABELS", "--colors", "COLORS", "--backend", "onnxruntime",
          "--no-progress")

SECONDS = "argument --timeout: expected a number of seconds above 0"
# (command, arguments, what the one line must say); names in capitals are files from bad_files
CASES = [
    ((), [], "the following arguments are required: COMMAND"),
    ((), ["bogus"], "argument COMMAND: invalid choice: 'bogus'"),
    ((), ["models", "list", "--bogus"], "unrecognized option --bogus (see 'segnet-ros models list --help')"),
    ((), ["segment", "IMAGE", "--netwrok", "reference"],
     "unrecognized option --netwrok; did you mean --network? (see 'segnet-ros segment --help')"),
    ((), ["segment", "IMAGE", "--alpah", "100"], "unrecognized option --alpah; did you mean --alpha?"),
    ((), ["bag", "IN", "OUT", "--wokers", "2"], "unrecognized option --wokers; did you mean --workers?"),
    (("segment",), [], "the following arguments are required: input"),
    (("segment",), ["IMAGE", "--alpha", "300"], "argument --alpha: alpha must be 0..255, got '300'"),
    (("segment",), ["IMAGE", "--alpha", "nan"], "argument --alpha: alpha must be 0..255, got 'nan'"),
    (("segment",), ["IMAGE", "--filter-mode", "bogus"],
     "argument --filter-mode/--filter_mode: invalid choice: 'bogus'"),
    (("segment",), ["IMAGE", "--threads", "100000"], "argument --threads: expected 0 (the runtime decides)"),
    (("quantize",), ["--min-agreement", "101", "x.png"],
     "argument --min-agreement/--min_agreement: expected a percentage 0..100, got '101'"),
    (("segment",), ["IMAGE", "--workspace-mb", "1e3"], "argument --workspace-mb/--workspace_mb: expected a positive"),
    (("segment",), ["IMAGE", "--network"], "argument --network: expected one argument"),
    (("segment",), ["HUGE.png", *ORACLE], "cannot decode image"),
    (("segment",), ["CORRUPT.png", *ORACLE], "cannot decode image"),
    (("segment",), ["TRUNCATED.jpg", *ORACLE], "cannot decode image"),
    (("segment",), ["CORRUPT.mp4", *ORACLE], "cannot open video"),
    (("segment",), ["IMAGE", "/dev/null/out.png", *ORACLE], "cannot create output folder '/dev/null'"),
    (("models",), [], "the following arguments are required: ACTION"),
    (("models", "list"), ["extra"], "unexpected argument extra (see 'segnet-ros models list --help')"),
    (("models", "download"), ["fcn-resnet18-voc", "--timeout", "-1"], SECONDS),
    (("models", "download"), ["fcn-resnet18-voc", "--timeout", "nan"], SECONDS),
    (("models", "download"), ["fcn-resnet18-voc", "--timeout", "inf"], SECONDS),
    (("models", "download"), ["fcn-resnet18-voc", "--timeout", "0"], SECONDS),
    (("models", "download"), ["fcn-resnet18-voc", "--retries", "-1"], "argument --retries: expected 0 or more"),
    (("models", "download"), ["fcn-resnet18-vocc"], "unknown network 'fcn-resnet18-vocc'; did you mean"),
    (("models", "install"), ["PAGE.tar.gz"], "not a tar or tar.gz archive (it starts with b'<html>\\n<body>not')"),
    (("models", "install"), ["EMPTY.tar.gz"], "the file is empty, not a model archive"),
    (("models", "path"), ["fcn-resnet18-voc"], "is not installed; install it with"),
    (("models", "remove"), ["fcn-resnet18-voc"], "is not installed in"),
    (("build-engine",), ["--model", "/nonexistent.onnx"], "/nonexistent.onnx: model file not found"),
    (("build-engine",), ["--dla-core", "-2"], "argument --dla-core/--dla_core: expected -1 (the GPU)"),
]
# and whatever commands exist, now or later: an option none of them has (or a missing argument first)
CASES += [(command, ["--no-such-option"], "") for command in COMMANDS]


def _assert_one_error_line(result, message: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("segnet-ros: error: ") and message in lines[0], lines[0]
    assert "Traceback" not in result.stderr and "usage:" not in result.stderr


def test_the_cases_name_real_commands():
    assert {command for command, _, _ in CASES} == set(COMMANDS)


@pytest.mark.parametrize("command,args,message", CASES,
                         ids=[" ".join([*c, *a])[:60] or "(nothing)" for c, a, _ in CASES])
def test_any_error_is_one_line_and_status_1(bad_files, command, args, message):
    result = run_cli(*command, *(bad_files.get(arg, arg) for arg in args))
    _assert_one_error_line(result, message)


def test_hostile_servers_are_one_line_too(tmp_path, model_server, zoo_dirs):
    """A redirect loop (urllib's message has newlines) and a body declared at 50 GB: after our note that
    the download starts, one error line; nothing is kept."""
    env = {"SEGNET_ROS_MODEL_URL_BASE": model_server.url_base}
    url = f"{model_server.url_base}/{VOC.archive}"
    model_server.redirect_loop = True
    result = run_cli("models", "download", VOC.name, "--retries", "0", env=env)
    assert result.returncode == 1 and result.stderr.splitlines() == [
        f"segnet-ros: downloading {VOC.name} from {url}",
        f"segnet-ros: error: cannot download {url}: the server's redirects go round in a loop or are too many "
        f"(HTTP 302). Without internet access, copy {VOC.archive} (from {url}) onto this machine and run: "
        f"segnet-ros models install {VOC.archive}"], result.stderr
    model_server.publish(make_archive(tmp_path / VOC.archive, zoo_folder(tmp_path, VOC)), VOC.archive)
    model_server.redirect_loop, model_server.declared_length = False, 50 * 10**9
    result = run_cli("models", "download", VOC.name, "--no-progress", env=env)
    assert result.returncode == 1 and result.stderr.splitlines()[1:] == [
        f"segnet-ros: error: {url} is 50000000000 bytes, over the 2147483648-byte limit for a model archive. "
        f"Without internet access, copy {VOC.archive} (from {url}) onto this machine and run: "
        f"segnet-ros models install {VOC.archive}"], result.stderr
    assert [p.name for p in zoo_dirs.models.iterdir() if not p.name.endswith(".lock")] == []  # no .part


def test_libraries_log_nothing_of_their_own(bad_files):
    """OpenCV's and FFmpeg's logging is quiet in any process that imports segnet_ros before cv2."""
    code = ("import segnet_ros, cv2\n"
            f"assert not cv2.VideoCapture({bad_files['CORRUPT.mp4']!r}).isOpened()\n"
            "assert cv2.imread('/nonexistent.png') is None\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL"))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                            cwd=ROOT)
    assert result.returncode == 0 and result.stderr == "", result.stderr
