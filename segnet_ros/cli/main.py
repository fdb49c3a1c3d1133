"""``segnet-ros``: the command-line entry point; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import logging
import sys

from ..threads import reserve_cores_for_inference

reserve_cores_for_inference()

from ..core.errors import SegnetError  # noqa: E402
from . import bag, benchmark, build_engine, evaluate, models, nav2_params, quantize, segment  # noqa: E402
from .errors import PROG, ArgumentParser, fail  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="FCN-ResNet18 semantic segmentation (jetson-inference compatible).")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser)
    segment.add_parser(subparsers)
    bag.add_parser(subparsers)
    models.add_parser(subparsers)
    build_engine.add_parser(subparsers)
    nav2_params.add_parser(subparsers)
    quantize.add_parser(subparsers)
    benchmark.add_parser(subparsers)
    evaluate.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; every error, whatever raised it, ends as :func:`fail`'s one line and status 1."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"{PROG}: %(message)s", stream=sys.stderr)
    if getattr(args, "verbose", False):
        logging.getLogger("segnet_ros").setLevel(logging.DEBUG)
    try:
        return args.run(args)
    except SegnetError as exc:
        return fail(exc)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line, and it says so
        return fail(f"unexpected {type(exc).__name__}: {exc} (a bug in segnet-ros; please report it "
                    "with the command that caused it)")


if __name__ == "__main__":
    sys.exit(main())
