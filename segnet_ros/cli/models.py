"""``segnet-ros models``: list, download, install, locate and remove the published models."""

from __future__ import annotations

import argparse
import logging

from ..core.errors import ModelError, SegnetError
from ..zoo.download import DownloadPolicy
from ..zoo.install import download, install_archive, install_command, remove
from ..zoo.locations import MODELS_ENV, Installed, find, model_dir
from ..zoo.registry import MODELS, ZooModel, lookup
from .common import int_in_range, seconds
from .progress import ByteProgress

MAX_TIMEOUT = 86400.0  # a day of silence is not a slow link
log = logging.getLogger(__name__)


def _where(installed: Installed) -> str:
    return str(installed.folder) if installed.ours else f"{installed.folder} ({installed.owner})"


def _installed_message(installed: Installed, force_hint: bool = False) -> str:
    if installed.fresh:
        return f"installed {installed.model.name} in {installed.folder}"
    hint = "; pass --force to replace it" if force_hint else ""
    return f"{installed.model.name} is already installed in {_where(installed)}{hint}"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "models", help="list, download and install the published FCN-ResNet18 models",
        description="The FCN-ResNet18 models jetson-inference publishes: list them, download them, "
                    "install an archive copied onto an offline machine, find or remove an installed one.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model-dir", help=f"the model folder (default ${MODELS_ENV}, else the user cache)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", parents=[common], help="every model, and where it is installed")
    listing.set_defaults(run=run_list)

    fetching = actions.add_parser("download", parents=[common], help="download and install models by name")
    fetching.add_argument("names", nargs="*", metavar="NAME", help="model names or aliases")
    fetching.add_argument("--all", action="store_true", help="every model")
    fetching.add_argument("--retries", type=int_in_range(0, "0 or more retries"), default=DownloadPolicy.retries,
                          help=f"further attempts after a failure (default {DownloadPolicy.retries})")
    fetching.add_argument("--timeout", type=seconds(MAX_TIMEOUT), default=DownloadPolicy.read_timeout,
                          help=f"seconds the server may stay silent (default {DownloadPolicy.read_timeout:g})")
    fetching.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    fetching.set_defaults(run=run_download)

    installing = actions.add_parser("install", parents=[common],
                                    help="install a model archive from a file (offline install)")
    installing.add_argument("archive", help="the model's .tar.gz, as downloaded")
    installing.add_argument("--name", help="which model it is (default: from the archive's folder name)")
    installing.add_argument("--force", action="store_true", help="replace the model if it is installed")
    installing.set_defaults(run=run_install)

    locating = actions.add_parser("path", parents=[common], help="print the folder of an installed model")
    locating.add_argument("name")
    locating.set_defaults(run=run_path)

    removing = actions.add_parser("remove", parents=[common], help="delete a model from the model folder")
    removing.add_argument("name")
    removing.set_defaults(run=run_remove)


def run_list(args: argparse.Namespace) -> int:
    rows = [("NAME", "DATASET", "INPUT", "CLASSES", "INSTALLED")]
    for model in MODELS:
        found = find(model, args.model_dir)
        rows.append((model.name, model.dataset, model.resolution, str(model.classes),
                     _where(found) if found else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4])
    print(f"\nmodel folder: {model_dir(args.model_dir)} (--model-dir, ${MODELS_ENV})")
    return 0


def _dedupe(models: list[ZooModel]) -> list[ZooModel]:
    return list(dict.fromkeys(models))


def run_download(args: argparse.Namespace) -> int:
    if args.all == bool(args.names):
        raise SegnetError("name the models to download, or pass --all")
    models = list(MODELS) if args.all else _dedupe([lookup(name) for name in args.names])  # typos fail first
    policy = DownloadPolicy(connect_timeout=min(args.timeout, DownloadPolicy.connect_timeout),
                            read_timeout=args.timeout, retries=args.retries)
    for model in models:
        found = find(model, args.model_dir)
        if found is None:
            log.info("downloading %s from %s", model.name, model.download_url())
            progress = ByteProgress(0, enabled=None if args.progress else False)
            try:
                found = download(model, args.model_dir, policy=policy, progress=progress)
            finally:
                progress.close()
        print(_installed_message(found))
    return 0


def run_install(args: argparse.Namespace) -> int:
    model = lookup(args.name) if args.name else None
    print(_installed_message(install_archive(args.archive, model, args.model_dir, replace=args.force), True))
    return 0


def run_path(args: argparse.Namespace) -> int:
    model = lookup(args.name)
    found = find(model, args.model_dir)
    if found is None:
        raise ModelError(f"{model.name} is not installed; install it with: {install_command(model, args.model_dir)}")
    print(found.folder)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    model = lookup(args.name)
    found = find(model, args.model_dir)
    if found is not None and not found.ours:
        raise ModelError(f"{model.name} is {found.owner}'s copy in {found.folder}; "
                         f"segnet-ros removes only what it installed in {model_dir(args.model_dir)}")
    print(f"removed {model.name} from {remove(model, args.model_dir)}")
    return 0
