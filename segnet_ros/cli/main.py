"""``segnet-ros``: the command-line entry point; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import logging
import sys

from ..threads import reserve_cores_for_inference

reserve_cores_for_inference()

from ..core.errors import SegnetError  # noqa: E402
from . import build_engine, models, segment  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segnet-ros", description="FCN-ResNet18 semantic segmentation (jetson-inference compatible).")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    segment.add_parser(subparsers)
    models.add_parser(subparsers)
    build_engine.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="segnet-ros: %(message)s", stream=sys.stderr)
    try:
        return args.run(args)
    except SegnetError as exc:
        print(f"segnet-ros: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
