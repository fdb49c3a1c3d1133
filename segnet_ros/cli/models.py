"""``segnet-ros models``: list, download, install, locate and remove the published models."""

from __future__ import annotations

import argparse
import contextlib
import logging

from ..backends.qdq import default_qdq_dir, installed_qdq_models, remove_qdq_models
from ..core.errors import ModelError, SegnetError
from ..zoo import REFERENCE_CLASSES, REFERENCE_DEFAULT, REFERENCE_NAME, resolve_network
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

    removing = actions.add_parser("remove", parents=[common],
                                  help="delete a model from the model folder, or (--int8) its INT8 models")
    removing.add_argument("name")
    removing.add_argument("--int8", action="store_true",
                          help="remove the INT8 models 'segnet-ros quantize' made of NAME (the model stays)")
    removing.set_defaults(run=run_remove)


def run_list(args: argparse.Namespace) -> int:
    reference = "reference"
    rows = [("NAME", "DATASET", "INPUT", "CLASSES", "INSTALLED"),
            (reference, "none (untrained, for tests and demos)", "x".join(map(str, REFERENCE_DEFAULT)),
             str(REFERENCE_CLASSES), "built in")]
    for model in MODELS:
        found = find(model, args.model_dir)
        rows.append((model.name, model.dataset, model.resolution, str(model.classes),
                     _where(found) if found else "-"))
    _table(rows)
    print(f"\nmodel folder: {model_dir(args.model_dir)} (--model-dir, ${MODELS_ENV})")
    int8 = installed_qdq_models()
    if int8:
        print("\nINT8 models made by 'segnet-ros quantize' (remove with 'segnet-ros models remove NAME --int8'):")
        _table([("MODEL", "TARGET", "AGREEMENT", "AUTO PICKS IT", "FILE")] + [
            (m.model, m.target, f"{m.agreement:.2f}%" if m.agreement is not None else "?",
             "no (--force)" if m.forced else "yes", str(m.path)) for m in int8])
        print(f"\nINT8 folder: {default_qdq_dir()} ($SEGNET_ROS_CACHE)")
    return 0


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


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
    if REFERENCE_NAME.match(args.name.strip().lower()):
        print(resolve_network(args.name).onnx.parent)  # built in: written on first use
        return 0
    model = lookup(args.name)
    found = find(model, args.model_dir)
    if found is None:
        raise ModelError(f"{model.name} is not installed; install it with: {install_command(model, args.model_dir)}")
    print(found.folder)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    if args.int8:
        name = args.name  # as 'models list' shows it (models of one's own ONNX files too), or a zoo name
        if name not in {m.model for m in installed_qdq_models()}:
            with contextlib.suppress(ModelError):  # not a model's name either: "none installed" below
                name = resolve_network(name).name if REFERENCE_NAME.match(name.strip().lower()) else lookup(name).name
        removed = remove_qdq_models(name)
        if not removed:
            raise ModelError(f"no INT8 model of {name} is installed ('segnet-ros models list' shows them)")
        print(f"removed the INT8 models of {name} from {', '.join(map(str, removed))}")
        return 0
    if REFERENCE_NAME.match(args.name.strip().lower()):
        raise ModelError("the reference network is built in and cannot be removed")
    model = lookup(args.name)
    found = find(model, args.model_dir)
    if found is not None and not found.ours:
        raise ModelError(f"{model.name} is {found.owner}'s copy in {found.folder}; "
                         f"segnet-ros removes only what it installed in {model_dir(args.model_dir)}")
    print(f"removed {model.name} from {remove(model, args.model_dir)}")
    return 0
