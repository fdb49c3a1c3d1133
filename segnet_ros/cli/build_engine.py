"""``segnet-ros build-engine``: build (or check) a model's cached TensorRT engine ahead of time.

A Jetson needs minutes for a build; doing it here, once, keeps the robot's start-up short.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time

import numpy as np

from ..core.errors import BackendError
from .common import add_model_arguments, backend_options, int_in_range, load_from_args

MAX_BATCH_LIMIT = 64  # cameras per engine; the profile's buffers are allocated for all of them


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "build-engine", help="build or check the cached TensorRT engine of a model",
        description="Build the TensorRT engine of a model into the engine cache (or check the cached one: "
                    "it loads, its tensors match the model, it runs), then exit. The node and "
                    "'segnet-ros segment --backend tensorrt' find it there with the same model and options.")
    add_model_arguments(parser, backend_choice=False)
    with contextlib.suppress(argparse.ArgumentError):  # the shared model arguments may offer it one day
        parser.add_argument("--max-batch", "--max_batch", dest="max_batch", default=1,
                            type=int_in_range(1, f"a number of frames from 1 to {MAX_BATCH_LIMIT}", MAX_BATCH_LIMIT),
                            help="the most frames (one per camera) one inference may carry: the engine takes "
                                 "1..N (default 1; part of the engine's key, so use the node's value)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..backends.tensorrt_backend import TensorRTBackend

    model = load_from_args(args)
    options = dataclasses.replace(backend_options(args), max_batch=args.max_batch)
    started = time.perf_counter()
    backend = TensorRTBackend(model, options)
    try:
        sizes = sorted({1, options.max_batch})  # the engine runs, not only loads, at both ends of its batch range
        logits = [backend.run(np.zeros((n, *model.input_shape[1:]), np.float32)) for n in sizes]
        info = backend.engine_info
    finally:
        backend.close()
    seconds = time.perf_counter() - started
    if not all(np.isfinite(out).all() for out in logits):
        raise BackendError(f"the TensorRT engine for {model.name} produces non-finite logits; "
                           "rebuild it with --precision fp32")
    if info.path is None:
        raise BackendError(f"the TensorRT engine for {model.name} was built but could not be stored "
                           "(see the warning above); pass --engine-cache with a writable folder")
    batch = f", batch 1..{info.max_batch}" if info.max_batch > 1 else ""
    what = f"{model.name} ({info.precision}{batch}, {info.gpu.name}, compute capability {info.gpu.capability}, " \
           f"TensorRT {info.tensorrt_version})"
    if info.built:
        print(f"built the TensorRT engine for {what} in {info.build_seconds:.1f} s")
    else:
        print(f"the cached TensorRT engine for {what} is valid (checked in {seconds:.1f} s)")
    print(f"engine: {info.path}")
    return 0
