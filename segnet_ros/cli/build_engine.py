"""``segnet-ros build-engine``: build (or check) a model's cached TensorRT engine ahead of time.

A Jetson needs minutes for a build; doing it here, once, keeps the robot's start-up short.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..core.errors import BackendError
from .common import add_model_arguments, backend_options, load_from_args


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "build-engine", help="build or check the cached TensorRT engine of a model",
        description="Build the TensorRT engine of a model into the engine cache (or check the cached one: "
                    "it loads, its tensors match the model, it runs), then exit. The node and "
                    "'segnet-ros segment --backend tensorrt' find it there with the same model and options.")
    add_model_arguments(parser, backend_choice=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..backends.tensorrt_backend import TensorRTBackend

    model = load_from_args(args)
    options = backend_options(args)
    started = time.perf_counter()
    backend = TensorRTBackend(model, options)
    try:
        logits = backend.run(np.zeros(model.input_shape, np.float32))  # the engine runs, not only loads
        info = backend.engine_info
    finally:
        backend.close()
    seconds = time.perf_counter() - started
    if not np.isfinite(logits).all():
        raise BackendError(f"the TensorRT engine for {model.name} produces non-finite logits; "
                           "rebuild it with --precision fp32")
    if info.path is None:
        raise BackendError(f"the TensorRT engine for {model.name} was built but could not be stored "
                           "(see the warning above); pass --engine-cache with a writable folder")
    what = f"{model.name} ({info.precision}, {info.gpu.name}, compute capability {info.gpu.capability}, " \
           f"TensorRT {info.tensorrt_version})"
    if info.built:
        print(f"built the TensorRT engine for {what} in {info.build_seconds:.1f} s")
    else:
        print(f"the cached TensorRT engine for {what} is valid (checked in {seconds:.1f} s)")
    print(f"engine: {info.path}")
    return 0
