"""The one place that turns an error into what the CLI prints.

The CLI promises that any error is one line, ``segnet-ros: error: ...``, and exit status 1. Messages
come from many places (our checks, argparse, urllib, tarfile, OpenCV) and some carry newlines, so
every error goes through :func:`fail`, which prints it on one line whatever it holds.
"""

from __future__ import annotations

import argparse
import difflib
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
    """argparse, but a bad argument is our one error line and status 1, not a usage block and status 2;
    an unknown option is reported by the sub-command it was given to, with the closest option it has."""

    def error(self, message: str) -> NoReturn:
        sys.exit(fail(f"{message} (see '{self.prog} --help')"))

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self._chosen(parsed)
            parser.error(parser.unrecognized(extras))
        return parsed

    def _chosen(self, parsed: argparse.Namespace) -> ArgumentParser:
        """The (sub-)sub-command parser the arguments went to."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(parsed, action.dest, None) or "")
                if isinstance(chosen, ArgumentParser):
                    return chosen._chosen(parsed)
        return self

    def unrecognized(self, extras: list[str]) -> str:
        """What is wrong with the arguments left over: the first unknown option, and what was meant."""
        options = [extra.partition("=")[0] for extra in extras if extra.startswith("-") and extra != "-"]
        if not options:
            paths = any("/" in extra or "." in extra for extra in extras)
            return (f"unexpected argument{'s' if len(extras) > 1 else ''} {' '.join(extras)}"
                    + (" (a glob the shell expanded? quote it: 'dir/*.png')" if paths else ""))
        known = [name for name in self._option_string_actions if name.startswith("--")]
        close = difflib.get_close_matches(options[0], known, n=1, cutoff=0.6)
        return f"unrecognized option {options[0]}" + (f"; did you mean {close[0]}?" if close else "")
