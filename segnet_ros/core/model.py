"""Loading an FCN-ResNet18 style ONNX model with its class files, validated up front.

Every problem becomes one :class:`ModelError` that names the file and what is wrong,
so a robot fails at start-up with a fixable message instead of on the first frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .classes import ClassTable
from .errors import ModelError

MAX_CLASSES = 256  # class ids travel as uint8 (mono8 masks)


@dataclass(frozen=True)
class ModelFiles:
    """Where a model lives: the ONNX file, its class files and its blob names."""

    onnx: Path
    labels: Path | None = None
    colors: Path | None = None
    input_blob: str = "input_0"
    output_blob: str = "output_0"
    name: str = ""

    @classmethod
    def in_folder(cls, folder: Path, name: str = "") -> ModelFiles:
        """The jetson-inference layout: fcn_resnet18.onnx, classes.txt, colors.txt."""
        labels, colors = folder / "classes.txt", folder / "colors.txt"
        return cls(
            onnx=folder / "fcn_resnet18.onnx",
            labels=labels if labels.exists() else None,
            colors=colors if colors.exists() else None,
            name=name or folder.name,
        )


@dataclass(frozen=True)
class Model:
    """A validated model: its files, tensor geometry and classes."""

    files: ModelFiles
    input_width: int
    input_height: int
    grid_width: int
    grid_height: int
    classes: ClassTable

    @property
    def name(self) -> str:
        return self.files.name or self.files.onnx.stem

    @property
    def num_classes(self) -> int:
        return self.classes.count

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.input_height, self.input_width)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (1, self.num_classes, self.grid_height, self.grid_width)


def _dims(value_info) -> list[int | str | None]:
    shape = value_info.type.tensor_type.shape
    dims: list[int | str | None] = []
    for dim in shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


def _find(values, name: str, what: str, path: Path):
    for value in values:
        if value.name == name:
            return value
    names = ", ".join(v.name for v in values) or "none"
    raise ModelError(f"{path}: no {what} named '{name}' (the model has: {names}); set the blob name")


def load_model(files: ModelFiles) -> Model:
    """Read and validate ``files``; raise :class:`ModelError` on any problem."""
    import onnx  # imported here: only model loading needs it

    path = files.onnx
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types
        raise ModelError(
            f"{path}: not a valid ONNX model ({type(exc).__name__}); re-export or re-download it") from None
    graph = proto.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    input_dims = _dims(_find(inputs, files.input_blob, "input", path))
    batch_ok = len(input_dims) == 4 and (input_dims[0] == 1 or not isinstance(input_dims[0], int))
    if not batch_ok or input_dims[1] != 3 or not all(isinstance(d, int) and d > 0 for d in input_dims[2:]):
        raise ModelError(
            f"{path}: input '{files.input_blob}' has shape {input_dims}; expected [1, 3, H, W] with static H and W"
        )
    output = _find(graph.output, files.output_blob, "output", path)
    output_dims = _dims(output)
    if len(output_dims) != 4 or not all(isinstance(d, int) for d in output_dims[1:]):
        try:
            inferred = onnx.shape_inference.infer_shapes(proto)
            output_dims = _dims(_find(inferred.graph.output, files.output_blob, "output", path))
        except ModelError:
            raise
        except Exception:
            pass
    if len(output_dims) != 4 or not all(isinstance(d, int) and d > 0 for d in output_dims[1:]):
        raise ModelError(
            f"{path}: output '{files.output_blob}' has shape {output_dims}; expected [1, classes, grid_h, grid_w]"
        )
    num_classes = int(output_dims[1])
    if num_classes > MAX_CLASSES:
        raise ModelError(f"{path}: {num_classes} classes; at most {MAX_CLASSES} are supported")
    classes = ClassTable.build(num_classes, files.labels, files.colors)
    return Model(
        files=files,
        input_width=int(input_dims[3]),
        input_height=int(input_dims[2]),
        grid_width=int(output_dims[3]),
        grid_height=int(output_dims[2]),
        classes=classes,
    )
