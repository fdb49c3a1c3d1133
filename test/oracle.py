"""Test-side ground truth: an ONNX model whose class grid is known exactly, and the
reference formulas of segnet-semantics.md written out literally, pixel by pixel.

Nothing here calls the product's rendering code, so the product is checked against
an independent reading of the specification.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
CELL = 32  # the oracle pools 32x32 blocks, like FCN-ResNet18's output stride

# Well-separated colours; the oracle assigns each cell the nearest one.
PALETTE = np.array(
    [
        [0, 0, 0],  # 0 void
        [255, 0, 0],  # 1 red
        [0, 255, 0],  # 2 green
        [0, 0, 255],  # 3 blue
        [255, 255, 0],  # 4 yellow
        [0, 255, 255],  # 5 cyan
        [255, 0, 255],  # 6 magenta
        [255, 255, 255],  # 7 white
    ],
    dtype=np.uint8,
)
NAMES = ["void", "red", "green", "blue", "yellow", "cyan", "magenta", "white"]


def normalized(rgb: np.ndarray) -> np.ndarray:
    return (np.asarray(rgb, dtype=np.float64) / 255.0 - MEAN) / STD


def linear_oracle(path: Path, width: int, height: int, weights: np.ndarray, bias: np.ndarray,
                  input_name: str = "input_0", output_name: str = "output_0") -> Path:
    """logits[k] = weights[k] . mean(normalized RGB over each 32x32 cell) + bias[k]."""
    classes = weights.shape[0]
    pooled = helper.make_node("AveragePool", [input_name], ["pooled"], kernel_shape=[CELL, CELL],
                              strides=[CELL, CELL])
    conv = helper.make_node("Conv", ["pooled", "w", "b"], [output_name], kernel_shape=[1, 1])
    graph = helper.make_graph(
        [pooled, conv],
        "oracle",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT,
                                       [1, classes, height // CELL, width // CELL])],
        [
            numpy_helper.from_array(weights.reshape(classes, 3, 1, 1).astype(np.float32), "w"),
            numpy_helper.from_array(bias.astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def palette_oracle(folder: Path, width: int = 256, height: int = 128, colors_text: str | None = None) -> Path:
    """The nearest-palette-colour classifier plus classes.txt / colors.txt; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    centers = normalized(PALETTE)
    linear_oracle(folder / "fcn_resnet18.onnx", width, height, 2 * centers, -(centers**2).sum(axis=1))
    (folder / "classes.txt").write_text("\n".join(NAMES) + "\n")
    if colors_text is None:
        colors_text = "".join(f"{r} {g} {b}\n" for r, g, b in PALETTE.tolist())
    (folder / "colors.txt").write_text(colors_text)
    return folder


def block_image(grid: np.ndarray, width: int, height: int) -> np.ndarray:
    """An RGB image whose cell (j, i) is painted PALETTE[grid[j, i]] (cells split evenly)."""
    gh, gw = grid.shape
    ys = (np.arange(height) * gh) // height
    xs = (np.arange(width) * gw) // width
    return PALETTE[grid[ys[:, None], xs[None, :]]]


# -- the reference formulas, literally ------------------------------------------------------
def noisy_blocks(rng: np.random.Generator, count: int, width: int = 256, height: int = 128) -> list[np.ndarray]:
    """RGB frames of palette blocks (an 8x4 grid) with pixel noise: the oracle's answer is grid_of, cell by cell."""
    frames = []
    for _ in range(count):
        image = block_image(rng.integers(0, 8, (4, 8)), width, height).astype(np.int16)
        image += rng.integers(-25, 26, image.shape, dtype=np.int16)
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    return frames


def f32(value) -> np.float32:
    return np.float32(value)


def ref_class_mask(grid: np.ndarray, width: int, height: int) -> np.ndarray:
    gh, gw = grid.shape
    out = np.zeros((height, width), dtype=np.uint8)
    for y in range(height):
        for x in range(width):
            out[y, x] = grid[int(y * gh / height), int(x * gw / width)]
    return out


def ref_colors(grid: np.ndarray, rgba: np.ndarray, width: int, height: int, mode: str) -> np.ndarray:
    """(H, W, 4) float64 interpolated colours, coordinates in float32 like the CUDA kernel."""
    gh, gw = grid.shape
    out = np.zeros((height, width, 4))
    for y in range(height):
        py = f32(y) / f32(height)
        for x in range(width):
            px = f32(x) / f32(width)
            if mode == "point":
                out[y, x] = rgba[grid[int(py * f32(gh)), int(px * f32(gw))]]
                continue
            bx = max(px * f32(gw) - f32(0.5), f32(0.0))
            by = max(py * f32(gh) - f32(0.5), f32(0.0))
            x1, y1 = int(bx), int(by)
            x2 = x1 if x1 >= gw - 1 else x1 + 1
            y2 = y1 if y1 >= gh - 1 else y1 + 1
            fx, fy = float(bx - f32(x1)), float(by - f32(y1))
            out[y, x] = (
                rgba[grid[y1, x1]] * (1 - fx) * (1 - fy)
                + rgba[grid[y1, x2]] * fx * (1 - fy)
                + rgba[grid[y2, x2]] * fx * fy
                + rgba[grid[y2, x1]] * (1 - fx) * fy
            )
    return out


def ref_overlay(grid: np.ndarray, rgba: np.ndarray, image_rgb: np.ndarray, width: int, height: int,
                mode: str) -> np.ndarray:
    """(H, W, 3) float64 blend before truncation."""
    colors = ref_colors(grid, rgba, width, height, mode)
    in_h, in_w = image_rgb.shape[:2]
    out = np.zeros((height, width, 3))
    for y in range(height):
        sy = y * in_h // height  # int(y / H * inH), exactly
        for x in range(width):
            sx = x * in_w // width
            a = colors[y, x, 3] / 255.0
            out[y, x] = a * colors[y, x, :3] + (1 - a) * image_rgb[sy, sx]
    return out


def assert_truncated(actual: np.ndarray, exact: np.ndarray, near: float = 1e-3) -> None:
    """``actual`` is floor(exact), except within ``near`` of an integer, where float32
    rounding in any implementation (the reference's included) may land either side.
    ``near=0`` demands exact equality everywhere."""
    floor = np.floor(exact)
    diff = actual.astype(np.int64) - floor.astype(np.int64)
    ambiguous = np.abs(exact - np.rint(exact)) < near if near else np.zeros(exact.shape, bool)
    bad = (diff != 0) & ~(ambiguous & (np.abs(diff) <= 1))
    assert not bad.any(), (
        f"{int(bad.sum())} values differ from floor(exact); first at {np.argwhere(bad)[0]}: "
        f"actual {actual[tuple(np.argwhere(bad)[0])]}, exact {exact[tuple(np.argwhere(bad)[0])]}")


def grid_of(image_rgb: np.ndarray, gw: int, gh: int) -> np.ndarray:
    """Nearest palette colour of each cell's mean colour (what the oracle must answer)."""
    h, w = image_rgb.shape[:2]
    grid = np.zeros((gh, gw), dtype=np.uint8)
    for j in range(gh):
        for i in range(gw):
            block = image_rgb[math.floor(j * h / gh):math.floor((j + 1) * h / gh),
                              math.floor(i * w / gw):math.floor((i + 1) * w / gw)]
            mean = normalized(block.reshape(-1, 3).mean(axis=0))
            grid[j, i] = np.argmin(((normalized(PALETTE) - mean) ** 2).sum(axis=1))
    return grid
