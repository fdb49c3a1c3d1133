"""The one place that turns an error into what the CLI prints.

The CLI promises that any error is one line, ``segnet-ros: error: ...``, and exit status 1. Messages
come from many places (our checks, argparse, urllib, tarfile, OpenCV) and some carry newlines, so
every error goes through :func:`fail`, which prints it on one line whatever it holds.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

PROG = "segnet-ros"


def error_line(message: object) -> str:
    """``segnet-ros: error: <message>`` with every run of whitespace, newlines included, made one space."""
    return f"{PROG}: error: {' '.join(str(message).split())}"


def fail(message: object) -> int:
    """Print ``message`` as the CLI's one error line; the exit status to return."""
    print(error_line(message), file=sys.stderr, flush=True)
    return 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument is our one error line and status 1, not a usage block and status 2."""

    def error(self, message: str) -> NoReturn:
        sys.exit(fail(f"{message} (see '{self.prog} --help')"))
