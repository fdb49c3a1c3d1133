"""From what a user typed (a model path or a model name) to the model's files.

The CLI and the node both call :func:`select_model`, so a model is chosen the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path

from .core.model import ModelFiles
from .zoo import resolve_network


def looks_like_path(spec: str) -> bool:
    return spec.lower().endswith(".onnx") or "/" in spec or "\\" in spec


def select_model(
    spec: str,
    labels: str = "",
    colors: str = "",
    input_blob: str = "input_0",
    output_blob: str = "output_0",
    model_dir: str = "",
    auto_download: bool = False,
    is_path: bool | None = None,
) -> ModelFiles:
    """``spec`` is a path to an ONNX file (its classes.txt/colors.txt beside it are used when
    present) or a model name; explicit ``labels``/``colors`` override either. ``is_path`` says
    which, where the caller knows (``--model``); otherwise an existing file or a path-like
    spelling is a path."""
    if is_path is None:
        is_path = looks_like_path(spec) or Path(spec).expanduser().is_file()
    if is_path:
        onnx = Path(spec).expanduser()
        base = ModelFiles.in_folder(onnx.parent, name=onnx.stem)
        base = ModelFiles(onnx=onnx, labels=base.labels, colors=base.colors, name=onnx.parent.name or onnx.stem)
    else:
        base = resolve_network(spec, model_dir=model_dir or None, auto_download=auto_download)
    return ModelFiles(
        onnx=base.onnx,
        labels=Path(labels).expanduser() if labels else base.labels,
        colors=Path(colors).expanduser() if colors else base.colors,
        input_blob=input_blob,
        output_blob=output_blob,
        name=base.name,
    )
