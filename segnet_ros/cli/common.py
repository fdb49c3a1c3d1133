"""Arguments every subcommand that loads a model shares, spelled as segnet.py spells them."""

from __future__ import annotations

import argparse
import sys

from ..backends import BACKENDS, BackendOptions, create_backend
from ..backends.base import DEVICES
from ..core.model import Model, ModelFiles, load_model
from ..selection import select_model
from ..zoo.locations import MODELS_ENV

DEFAULT_NETWORK = "fcn-resnet18-voc"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--network", default=DEFAULT_NETWORK,
                       help=f"model name (default {DEFAULT_NETWORK}; 'segnet-ros models list' shows them all; "
                            "'reference' is the untrained built-in)")
    group.add_argument("--model", help="path to an FCN-ResNet18 ONNX file (overrides --network)")
    group.add_argument("--model-dir", "--model_dir", dest="model_dir",
                       help=f"folder of installed models (default ${MODELS_ENV}, else the user cache)")
    group.add_argument("--labels", help="classes.txt with one class name per line")
    group.add_argument("--colors", help="colors.txt with 'r g b [a]' per line")
    group.add_argument("--input_blob", "--input-blob", dest="input_blob", default="input_0",
                       help="name of the input tensor (default input_0)")
    group.add_argument("--output_blob", "--output-blob", dest="output_blob", default="output_0",
                       help="name of the output tensor (default output_0)")
    group = parser.add_argument_group("backend")
    group.add_argument("--backend", choices=BACKENDS, default="auto", help="inference backend (default auto)")
    group.add_argument("--device", choices=DEVICES, default="auto", help="device for ONNX Runtime (default auto)")
    group.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime (0: its default)")


def model_files(args: argparse.Namespace) -> ModelFiles:
    """The files named by --model (or else --network), with the --labels/--colors/blob overrides."""
    return select_model(args.model or args.network, labels=args.labels or "", colors=args.colors or "",
                        input_blob=args.input_blob, output_blob=args.output_blob, model_dir=args.model_dir or "")


def load_from_args(args: argparse.Namespace) -> Model:
    model = load_model(model_files(args))
    for warning in model.classes.warnings:
        print(f"segnet-ros: warning: {warning}", file=sys.stderr)
    return model


def backend_from_args(args: argparse.Namespace, model: Model):
    return create_backend(args.backend, model, BackendOptions(device=args.device, threads=args.threads))
