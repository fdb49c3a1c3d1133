"""The reference network: FCN-ResNet18 with deterministic, UNTRAINED weights.

It has the exact topology of jetson-inference's models (ResNet-18 at output
stride 32, then the FCN head: 3x3 conv 512->128 without bias, batch norm,
ReLU, 1x1 conv 128->C; dropout is absent from an inference graph), the same
blob names and the same coarse output grid, so it exercises every code path
offline. Its class predictions mean nothing: use it for tests, benchmarks and
demos, never for perception.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import write_atomic
from .classes import ClassTable
from .model import ModelFiles

OPSET = 13
IR_VERSION = 8  # readable by TensorRT 8.6's parser and older ONNX Runtimes
SEED = 20190515


def grid_size(width: int, height: int) -> tuple[int, int]:
    """The output grid: five stride-2 stages, each giving ceil(n / 2)."""
    for _ in range(5):
        width, height = (width + 1) // 2, (height + 1) // 2
    return width, height


class _Graph:
    """Collects nodes and deterministic initializers while the network is described."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"{kind}_{self._count}"

    def weight(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(self, x: str, cin: int, cout: int, kernel: int, stride: int, bias: bool = False) -> str:
        from onnx import helper

        name = self._name("conv")
        std = np.sqrt(2.0 / (cin * kernel * kernel))
        inputs = [x, self.weight(f"{name}.weight", self.rng.standard_normal((cout, cin, kernel, kernel)) * std)]
        if bias:
            inputs.append(self.weight(f"{name}.bias", self.rng.standard_normal(cout) * 0.1))
        pad = kernel // 2
        self.nodes.append(helper.make_node(
            "Conv", inputs, [name], name=name, kernel_shape=[kernel, kernel],
            strides=[stride, stride], pads=[pad, pad, pad, pad]))
        return name

    def bn(self, x: str, channels: int) -> str:
        from onnx import helper

        name = self._name("bn")
        params = [
            self.weight(f"{name}.weight", 1.0 + 0.1 * self.rng.standard_normal(channels)),
            self.weight(f"{name}.bias", 0.1 * self.rng.standard_normal(channels)),
            self.weight(f"{name}.running_mean", 0.1 * self.rng.standard_normal(channels)),
            self.weight(f"{name}.running_var", 1.0 + 0.1 * np.abs(self.rng.standard_normal(channels))),
        ]
        self.nodes.append(helper.make_node("BatchNormalization", [x, *params], [name], name=name, epsilon=1e-5))
        return name

    def op(self, kind: str, inputs: list[str], **attributes) -> str:
        from onnx import helper

        name = self._name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [name], name=name, **attributes))
        return name

    def block(self, x: str, cin: int, cout: int, stride: int) -> str:
        """A ResNet BasicBlock, with a 1x1 projection when the shape changes."""
        out = self.op("Relu", [self.bn(self.conv(x, cin, cout, 3, stride), cout)])
        out = self.bn(self.conv(out, cout, cout, 3, 1), cout)
        shortcut = x if stride == 1 and cin == cout else self.bn(self.conv(x, cin, cout, 1, stride), cout)
        return self.op("Relu", [self.op("Add", [out, shortcut])])


def build_reference_onnx(width: int, height: int, num_classes: int, seed: int = SEED) -> bytes:
    """Serialized ONNX of FCN-ResNet18 for a ``width`` x ``height`` input and ``num_classes``."""
    from onnx import TensorProto, checker, helper

    g = _Graph(seed)
    x = g.op("Relu", [g.bn(g.conv("input_0", 3, 64, 7, 2), 64)])
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    channels = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        x = g.block(x, channels, cout, stride)
        x = g.block(x, cout, cout, 1)
        channels = cout
    x = g.op("Relu", [g.bn(g.conv(x, 512, 128, 3, 1), 128)])
    logits = g.conv(x, 128, num_classes, 1, 1, bias=True)
    g.nodes.append(helper.make_node("Identity", [logits], ["output_0"], name="output"))
    grid_w, grid_h = grid_size(width, height)
    graph = helper.make_graph(
        g.nodes,
        "fcn_resnet18_reference",
        [helper.make_tensor_value_info("input_0", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("output_0", TensorProto.FLOAT, [1, num_classes, grid_h, grid_w])],
        g.initializers,
    )
    model = helper.make_model(
        graph, producer_name="segnet_ros", opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model.doc_string = "FCN-ResNet18 reference network with UNTRAINED deterministic weights"
    checker.check_model(model)
    return model.SerializeToString()


def write_reference_model(folder: Path, width: int = 512, height: int = 256, num_classes: int = 21) -> ModelFiles:
    """Write ``fcn_resnet18.onnx``, ``classes.txt`` and ``colors.txt`` into ``folder`` (atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    labels, colors = ClassTable.build(num_classes).texts()
    write_atomic(folder / "classes.txt", labels.encode())
    write_atomic(folder / "colors.txt", colors.encode())
    write_atomic(folder / "fcn_resnet18.onnx", build_reference_onnx(width, height, num_classes))
    return ModelFiles.in_folder(folder, name=f"reference-{width}x{height}")
