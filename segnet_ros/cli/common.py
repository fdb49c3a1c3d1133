"""Arguments the subcommands share: the model ones spelled as segnet.py spells them, and the number
types that refuse a bad value where it is parsed (argparse then reports it as our one error line)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

from ..backends import BACKENDS, BackendOptions, create_backend
from ..backends.base import DEVICES, PRECISIONS
from ..core.errors import SettingsError
from ..core.model import Model, ModelFiles, load_model
from ..core.preprocess import RESIZE_METHODS
from ..core.render import FILTER_MODES
from ..core.segnet import PIPELINES, SegNetSettings, ignore_class_problem
from ..selection import select_model
from ..zoo import DEFAULT_NETWORK, installed_or_reference
from ..zoo.locations import MODELS_ENV

INT32_MAX = 2**31 - 1  # what the C++ libraries behind our options take


def int_in_range(minimum: int, what: str, maximum: int = INT32_MAX) -> Callable[[str], int]:
    """An argparse type: an integer in ``minimum..maximum``, refused in words that say what is expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
        return value

    return parse


def number_in_range(minimum: float, maximum: float, what: str, open_low: bool = False) -> Callable[[str], float]:
    """An argparse type: a number in ``minimum..maximum`` (above ``minimum`` when ``open_low``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        low_ok = value > minimum if open_low else value >= minimum
        if not (low_ok and value <= maximum):  # also refuses nan
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
        return value

    return parse


def seconds(maximum: float) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds above 0 and at most ``maximum`` (a socket timeout
    of 0 means non-blocking, and -1, nan or inf fail deep in the socket layer)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 < value <= maximum:  # also false for nan
            raise argparse.ArgumentTypeError(f"expected a number of seconds above 0 and at most {maximum:g}, "
                                             f"got '{text}'")
        return value

    return parse


def alpha(text: str) -> int:
    """An argparse type: the overlay alpha, 0..255 (a float is truncated, as segnet.py does)."""
    try:
        value = int(float(text))
    except (ValueError, OverflowError):  # "abc", "inf"
        value = -1
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"alpha must be 0..255, got '{text}'")
    return value


def add_rendering_arguments(parser: argparse.ArgumentParser):
    """How frames are prepared and drawn (the node's parameters of the same names); returns the group."""
    group = parser.add_argument_group("rendering")
    group.add_argument("--filter-mode", "--filter_mode", dest="filter_mode", choices=FILTER_MODES,
                       default="linear", help="colour filtering (default linear)")
    group.add_argument("--ignore-class", "--ignore_class", dest="ignore_class", default="void",
                       help="class never chosen (default void; none: no class)")
    group.add_argument("--alpha", type=alpha, default=150, help="overlay alpha 0..255 (default 150)")
    group.add_argument("--resize", choices=RESIZE_METHODS, default="linear",
                       help="pre-processing resize (default linear; nearest matches jetson-inference exactly)")
    return group


def segnet_settings(args: argparse.Namespace, model: Model | None = None) -> SegNetSettings:
    """The rendering settings; with ``model``, checked against its classes (before a backend is built,
    so a typo costs nothing and is the run's only line)."""
    if model is not None and (reason := ignore_class_problem(model.classes.names, args.ignore_class, model.name)):
        raise SettingsError(reason)
    return SegNetSettings(resize=args.resize, filter_mode=args.filter_mode, overlay_alpha=args.alpha,
                          ignore_class=args.ignore_class)


def add_model_file_arguments(parser: argparse.ArgumentParser, fallback: bool = False) -> None:
    """The arguments that name a model's files (what :func:`model_files` reads). ``fallback``: without
    --network, the default model only where it is installed, else the reference network."""
    group = parser.add_argument_group("model")
    default = (f"{DEFAULT_NETWORK} where it is installed, else the untrained built-in 'reference' (the same "
               "work)") if fallback else f"{DEFAULT_NETWORK}, downloaded once with 'segnet-ros models download "
    default += "" if fallback else f"{DEFAULT_NETWORK}'; 'reference' is the untrained built-in, offline"
    group.add_argument("--network", default=None if fallback else DEFAULT_NETWORK,
                       help=f"model name (default {default}; 'segnet-ros models list' shows them all)")
    group.add_argument("--model", help="path to an FCN-ResNet18 ONNX file (overrides --network)")
    group.add_argument("--model-dir", "--model_dir", dest="model_dir",
                       help=f"folder of installed models (default ${MODELS_ENV}, else the user cache)")
    group.add_argument("--labels", help="classes.txt with one class name per line")
    group.add_argument("--colors", help="colors.txt with 'r g b [a]' per line")
    group.add_argument("--input_blob", "--input-blob", dest="input_blob", default="input_0",
                       help="name of the input tensor (default input_0)")
    group.add_argument("--output_blob", "--output-blob", dest="output_blob", default="output_0",
                       help="name of the output tensor (default output_0)")


def add_model_arguments(parser: argparse.ArgumentParser, backend_choice: bool = True) -> None:
    """Model arguments, then backend ones: ``backend_choice=False`` leaves out --backend/--device/--threads
    (for commands that always use TensorRT)."""
    add_model_file_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say why auto chose its backend and precision, and what each step does")
    if backend_choice:
        group = parser.add_argument_group("backend")
        group.add_argument("--backend", choices=BACKENDS, default="auto",
                           help="inference backend (default auto: TensorRT, else ONNX Runtime on CUDA, else the "
                                "fastest CPU backend for the precision; 'segnet-ros benchmark' compares them)")
        group.add_argument("--device", choices=DEVICES, default="auto",
                           help="device for ONNX Runtime (default auto); OpenVINO runs on the CPU")
        group.add_argument("--threads", default=0,
                           type=int_in_range(0, "0 (the runtime decides) or a thread count up to 1024", 1024),
                           help="CPU threads for ONNX Runtime and OpenVINO (0: their default)")
        group.add_argument("--pipeline", choices=PIPELINES, default="auto",
                           help="where the per-pixel work runs: graph (the whole frame inside the backend's "
                                "engine), host (numpy) or auto (default: graph on GPUs, host on CPUs, where it "
                                "is faster)")
    defaults = BackendOptions()
    group = parser.add_argument_group("precision")
    group.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                       help="inference precision (default auto: TensorRT fp16 where the GPU is fast at it; on the "
                            "CPU int8 where 'segnet-ros quantize' installed a model that passed its check, bf16 "
                            "where the CPU has it natively (OpenVINO), else fp32)")
    group = parser.add_argument_group("TensorRT")
    group.add_argument("--engine-cache", "--engine_cache", dest="engine_cache", metavar="DIR",
                       default=defaults.engine_cache_dir,
                       help="engine cache folder (default: the segnet_ros cache folder's engines/)")
    group.add_argument("--workspace-mb", "--workspace_mb", dest="workspace_mb",
                       type=int_in_range(1, "a positive number of MB"),
                       default=defaults.workspace_mb,
                       help=f"TensorRT builder workspace limit in MB (default {defaults.workspace_mb})")
    group.add_argument("--dla-core", "--dla_core", dest="dla_core",
                       type=int_in_range(-1, "-1 (the GPU) or a DLA core index"), default=defaults.dla_core,
                       help="Jetson: DLA core to run on, with GPU fallback (default -1: the GPU)")
    group.add_argument("--force-rebuild", "--force_rebuild", dest="force_rebuild", action="store_true",
                       help="build the engine anew even if the cache holds one")


def model_files(args: argparse.Namespace) -> ModelFiles:
    """The files named by --model (or else --network), with the --labels/--colors/blob overrides."""
    if not args.model and args.network is None:  # a command that falls back (add_model_file_arguments)
        args.network = installed_or_reference(DEFAULT_NETWORK, args.model_dir or None)
        if args.network != DEFAULT_NETWORK:
            print(f"segnet-ros: {DEFAULT_NETWORK} is not installed; using the untrained reference network "
                  "(the same work)", file=sys.stderr)
    return select_model(args.model or args.network, labels=args.labels or "", colors=args.colors or "",
                        input_blob=args.input_blob, output_blob=args.output_blob, model_dir=args.model_dir or "",
                        is_path=bool(args.model))


def load_from_args(args: argparse.Namespace) -> Model:
    model = load_model(model_files(args))
    for warning in model.classes.warnings:
        print(f"segnet-ros: warning: {warning}", file=sys.stderr)
    return model


def backend_options(args: argparse.Namespace) -> BackendOptions:
    """The BackendOptions the arguments describe (commands without --device/--threads get the defaults)."""
    defaults = BackendOptions()
    return BackendOptions(
        device=getattr(args, "device", defaults.device),
        threads=getattr(args, "threads", defaults.threads),
        precision=args.precision,
        engine_cache_dir=str(Path(args.engine_cache).expanduser()) if args.engine_cache else "",
        workspace_mb=args.workspace_mb,
        dla_core=args.dla_core,
        force_rebuild=args.force_rebuild,
    )


def backend_from_args(args: argparse.Namespace, model: Model):
    return create_backend(args.backend, model, backend_options(args))
