"""``segnet-ros evaluate`` end to end on the oracle model, whose class grid is known exactly: labelled sets
in every format, the Cityscapes layout, a bag, --at both ways, --upsample bilinear, --compare with a
quantised model, the picture, and every bad input as one error line with nothing written.

Expected figures come from test_evaluate.py's independent implementation of mmsegmentation's IoUMetric
formulas, applied to what the oracle must answer (segNet's class mask of the known grid).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_evaluate import (
    CITYSCAPES_21,
    CITYSCAPES_IDS,
    CITYSCAPES_NAMES,
    GH,
    GW,
    H,
    W,
    assert_metrics_match,
    block_image_of,
    grid_mask,
    handmade,
    label_at,
    mmseg_metrics,
    noisy_label,
    torch_bilinear,
    write_image,
    write_label,
)

from segnet_ros.cli.main import main

from conftest import run_cli
from oracle import PALETTE, linear_oracle, normalized


@dataclass
class Cli:
    """``segnet-ros evaluate`` run in this process on a model folder (the oracle unless told)."""

    capsys: pytest.CaptureFixture
    model: Path

    def model_args(self, backend: bool) -> list[str]:
        named = ["--backend", "onnxruntime", "--device", "cpu"] if backend else []
        return ["--model", str(self.model / "fcn_resnet18.onnx"), *named]

    def __call__(self, *args: str, backend: bool = True) -> tuple[int, str, str]:
        """(status, stdout, stderr), on ONNX Runtime unless ``backend`` is False (then --backend auto);
        ``--ignore-class ''`` unless given: the oracle may then answer class 0 (void) too, and its grid
        is exactly the image's."""
        extra = [] if "--ignore-class" in args else ["--ignore-class", ""]
        try:
            code = main(["evaluate", *args, *self.model_args(backend), *extra])
        except SystemExit as exc:  # argparse's errors
            code = exc.code
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *args: str, backend: bool = True) -> list[dict]:
        code, out, err = self(*args, "--json", backend=backend)
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(capsys, oracle_dir) -> Cli:
    return Cli(capsys, oracle_dir)


def make_set(root: Path, rng: np.random.Generator, sizes=((W, H),) * 4, kind: str = "ids", ignored: float = 0.05,
             image_size: tuple[int, int] = (W, H)) -> tuple[Path, Path, list[tuple[np.ndarray, np.ndarray]]]:
    """Block images the oracle classifies as random grids, and noisy labels of those grids at ``sizes``:
    (images folder, labels folder, [(grid, label ids)])."""
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    frames = []
    for i, (width, height) in enumerate(sizes):
        grid = rng.integers(0, 8, (GH, GW))
        write_image(images / f"frame_{i:04d}.png", grid, *image_size)
        label = noisy_label(rng, grid, width, height, ignored=ignored)
        write_label(labels / f"frame_{i:04d}.png", label, kind)
        frames.append((grid, label))
    return images, labels, frames


def expected(frames, at: str, size: tuple[int, int] = (W, H)) -> list[tuple[np.ndarray, np.ndarray]]:
    """(prediction, label) pairs as scored: at the network size (labels resized) or at each label's size."""
    if at == "net":
        return [(grid_mask(grid, *size), label_at(label, *size)) for grid, label in frames]
    return [(grid_mask(grid, label.shape[1], label.shape[0]), label) for grid, label in frames]


def one_error_line(code: int, out: str, err: str, warnings: bool = False) -> str:
    """The error line of a failed run: the only line on stderr (``warnings``: besides warnings)."""
    assert code == 1 and out == "", (code, out, err)
    lines = [line for line in err.splitlines() if not (warnings and line.startswith("segnet-ros: warning: "))]
    assert len(lines) == 1 and lines[0].startswith("segnet-ros: error: "), err
    return lines[0]


# -- exact figures ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, mask_format", [
    ("ids", "auto"), ("ids", "ids"), ("ids16", "auto"), ("palette", "auto"), ("palette", "palette"),
    ("colors", "auto"), ("colors", "colors"), ("colors_palette", "colors")])
def test_every_label_format_scores_as_the_independent_implementation(cli, tmp_path, rng, kind, mask_format):
    ignored = 0.0 if kind.startswith("colors") else 0.05  # a colour-coded label has no ignore colour
    images, labels, frames = make_set(tmp_path, rng, kind=kind, ignored=ignored)
    runs = cli.json(str(images), str(labels), "--mask-format", mask_format)
    assert len(runs) == 1 and runs[0]["frames"] == 4 and runs[0]["available"]
    assert (runs[0]["backend"], runs[0]["precision"], runs[0]["at"]) == ("onnxruntime", "fp32", "net")
    pairs = expected(frames, "net")
    assert_metrics_match(runs[0], mmseg_metrics(pairs, 8))
    assert runs[0]["pixels"] == sum(int((label != 255).sum()) for _, label in pairs)
    np.testing.assert_array_equal(np.array(runs[0]["confusion"]).sum(axis=0),
                                  [c["predicted_pixels"] for c in runs[0]["classes"]])


def test_a_handmade_frame_gives_the_figures_worked_out_by_hand_at_either_size(cli, tmp_path):
    """Labels at twice the network size: --at net samples them down, --at label scores every pixel;
    this frame's figures are the same fractions either way (only the pixel count is 4x)."""
    (tmp_path / "i").mkdir()
    (tmp_path / "l").mkdir()
    prediction, label = handmade()
    write_image(tmp_path / "i" / "a.png", prediction[::32, ::32])
    write_label(tmp_path / "l" / "a.png", cv2.resize(label, (2 * W, 2 * H), interpolation=cv2.INTER_NEAREST), "ids")
    for at, scale in (("net", 1), ("label", 4)):
        (run,) = cli.json(str(tmp_path / "i"), str(tmp_path / "l"), "--at", at)
        assert run["pixel_accuracy"] == 20 / 24 and run["pixels"] == 24 * 32 * 32 * scale
        assert run["mean_iou"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3, rel=1e-15)
        assert run["mean_accuracy"] == pytest.approx((1 + 2 / 3 + 1) / 3, rel=1e-15)
        assert run["left_out"] == ["void", "yellow", "cyan", "magenta", "white"]
        assert [(c["name"], c["iou"]) for c in run["classes"][1:4]] == [("red", 0.5), ("green", 2 / 3), ("blue", 1.0)]
    code, out, err = cli(str(tmp_path / "i"), str(tmp_path / "l"))
    assert code == 0, err
    assert "pixel accuracy   83.33%" in out and "mean IoU         72.22%   over 3 classes" in out
    assert "left out (no pixels in labels or predictions): void, yellow, cyan, magenta, white" in out
    assert "  1  red                    50.00%   100.00%" in out
    assert re.match(r"segnet-ros: evaluated 1 frame with \S+ on onnxruntime fp32 in \d+\.\d\d s \(", err), err


def test_at_net_and_at_label_score_as_the_independent_implementation(cli, tmp_path, rng):
    """Labels of three sizes in one set (the images' aspect): at the network size they are sampled at pixel
    centres; at their own size, the class grid is upsampled to each."""
    images, labels, frames = make_set(tmp_path, rng, sizes=[(512, 256), (384, 192), (W, H), (128, 64), (640, 320)])
    by_at = {at: cli.json(str(images), str(labels), "--at", at)[0] for at in ("net", "label")}
    for at, run in by_at.items():
        assert_metrics_match(run, mmseg_metrics(expected(frames, at), 8))
    assert by_at["net"]["pixels"] < by_at["label"]["pixels"]
    assert by_at["net"]["pixel_accuracy"] != by_at["label"]["pixel_accuracy"]


def test_the_graph_pipeline_scores_as_the_host(cli, tmp_path, rng):
    """--pipeline graph: the class mask at each scoring size comes out of the graph, with the same figures."""
    images, labels, frames = make_set(tmp_path, rng, sizes=[(512, 256), (128, 64), (W, H)])
    for at in ("net", "label"):
        host = cli.json(str(images), str(labels), "--at", at, "--pipeline", "host")[0]
        graph = cli.json(str(images), str(labels), "--at", at, "--pipeline", "graph")[0]
        assert_metrics_match(graph, mmseg_metrics(expected(frames, at), 8))
        assert graph["confusion"] == host["confusion"] and graph["pixels"] == host["pixels"]


def test_the_default_ignore_class_is_never_predicted(cli, tmp_path, rng):
    images, labels, frames = make_set(tmp_path, rng, sizes=[(W, H)] * 2)
    (run,) = cli.json(str(images), str(labels), "--ignore-class", "void")
    assert run["classes"][0]["predicted_pixels"] == 0
    assert run["classes"][0]["label_pixels"] == sum(int((label == 0).sum()) for _, label in frames)


def test_bilinear_upsampling_scores_the_argmax_of_upsampled_logits(cli, tmp_path, rng, oracle_dir):
    import onnxruntime

    images, labels, frames = make_set(tmp_path, rng, sizes=[(512, 256), (512, 256)])
    session = onnxruntime.InferenceSession(str(oracle_dir / "fcn_resnet18.onnx"), providers=["CPUExecutionProvider"])
    pairs = []
    for grid, label in frames:
        tensor = normalized(block_image_of(grid, W, H)).transpose(2, 0, 1)[None].astype(np.float32)
        upsampled = torch_bilinear(session.run(None, {"input_0": tensor})[0][0].astype(np.float64), 512, 256)
        top2 = np.sort(upsampled, axis=0)[-2:]
        assert (top2[1] - top2[0]).min() > 1e-3  # no near-tie that float32 could settle the other way
        pairs.append((np.argmax(upsampled, axis=0), label))
    (run,) = cli.json(str(images), str(labels), "--at", "label", "--upsample", "bilinear")
    assert_metrics_match(run, mmseg_metrics(pairs, 8))
    assert run["upsample"] == "bilinear"
    (nearest,) = cli.json(str(images), str(labels), "--at", "label")
    assert nearest["confusion"] != run["confusion"]


# -- the Cityscapes layout ---------------------------------------------------------------------------------------
CITY_COLOURS = np.array([*PALETTE.tolist(), (128, 0, 0), (0, 128, 0), (0, 0, 128), (128, 128, 0), (128, 0, 128),
                         (0, 128, 128), (128, 128, 128), (64, 0, 0), (0, 64, 0), (0, 0, 64), (192, 0, 0), (0, 192, 0),
                         (0, 0, 192)], np.uint8)


def test_cityscapes_label_ids_in_their_layout_are_remapped_and_scored(capsys, tmp_path, rng):
    """A 21-class oracle named as jetson-inference's Cityscapes models; labels hold raw labelIds, each class
    drawn from every Cityscapes label merged into it (rider for person, parking for road...)."""
    model = tmp_path / "city"
    model.mkdir()
    centres = normalized(CITY_COLOURS)
    linear_oracle(model / "fcn_resnet18.onnx", W, H, 2 * centres, -(centres**2).sum(axis=1))
    (model / "classes.txt").write_text("\n".join(CITYSCAPES_NAMES) + "\n")
    (model / "colors.txt").write_text("".join(f"{r} {g} {b}\n" for r, g, b in CITY_COLOURS.tolist()))
    sources = {CITYSCAPES_NAMES.index(new): [CITYSCAPES_IDS[old] for old in olds]
               for new, olds in CITYSCAPES_21.items()}
    frames = []
    for city, frame in (("aachen", "aachen_000000_000019"), ("bochum", "bochum_000000_000313")):
        (tmp_path / "leftImg8bit" / "val" / city).mkdir(parents=True)
        (tmp_path / "gtFine" / "val" / city).mkdir(parents=True)
        grid = rng.integers(0, 21, (GH, GW))
        write_image(tmp_path / "leftImg8bit" / "val" / city / f"{frame}_leftImg8bit.png", grid, 1024, 512, CITY_COLOURS)
        label = noisy_label(rng, grid, 1024, 512, classes=21)
        raw = label.copy()
        for new, olds in sources.items():
            where = label == new
            raw[where] = rng.choice(olds, int(where.sum()))
        write_label(tmp_path / "gtFine" / "val" / city / f"{frame}_gtFine_labelIds.png", raw, "ids")
        write_label(tmp_path / "gtFine" / "val" / city / f"{frame}_gtFine_color.png", label % 21, "colors",
                    CITY_COLOURS)  # the layout's other files are not labels
        frames.append((grid, label))
    runs = Cli(capsys, model).json(str(tmp_path / "leftImg8bit" / "val"), str(tmp_path / "gtFine" / "val"))
    assert_metrics_match(runs[0], mmseg_metrics(expected(frames, "net"), 21))
    code, out, err = Cli(capsys, model)(str(tmp_path / "leftImg8bit" / "val"), str(tmp_path / "gtFine" / "val"))
    assert code == 0 and "2 labelled images (paired by Cityscapes layout)" in out


# -- a bag ---------------------------------------------------------------------------------------------------
def write_labelled_bag(path: Path, rng, label_encoding: str = "mono8"):
    """Images (rgb8, 256x128) and mono8 labels (512x256) on /cam/image_raw and /cam/labels: frames 0-3
    paired (frame 2's label logged before its image), frame 4 an image alone, one label alone."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from bag_helpers import image_bytes, store

    ts = store()
    start, period = 1_700_000_000_000_000_000, 100_000_000
    messages, frames = [], []
    for i in range(5):
        stamp = start + i * period
        grid = rng.integers(0, 8, (GH, GW))
        messages.append((stamp + 5_000_000, "image", image_bytes(ts, stamp, "cam", block_image_of(grid, W, H), "rgb8")))
        if i < 4:
            label = noisy_label(rng, grid, 512, 256)
            pixels = np.dstack([label] * 3) if label_encoding == "rgb8" else label
            messages.append((stamp + (1_000_000 if i == 2 else 9_000_000), "label",
                             image_bytes(ts, stamp, "cam", pixels, label_encoding)))
            frames.append((grid, label))
    lonely = noisy_label(rng, np.zeros((GH, GW), int), 512, 256)
    messages.append((start + 7 * period, "label", image_bytes(ts, start + 7 * period, "cam", lonely, "mono8")))
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {"image": writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=ts),
                       "label": writer.add_connection("/cam/labels", "sensor_msgs/msg/Image", typestore=ts)}
        for log, key, data in sorted(messages, key=lambda m: m[0]):
            writer.write(connections[key], log, data)
    return frames


def test_a_bag_pairs_images_and_labels_by_header_stamp(cli, tmp_path, rng):
    frames = write_labelled_bag(tmp_path / "bag", rng)
    code, out, err = cli(str(tmp_path / "bag"), "--label-topic", "/cam/labels")
    line = one_error_line(code, out, err)
    assert "1 image without a label (1700000000.400000000) and 1 label without an image (1700000000.700000000)" \
        in line and "--skip-unpaired to score the 4 pairs only" in line
    for at in ("net", "label"):
        (run,) = cli.json(str(tmp_path / "bag"), "--label-topic", "/cam/labels", "--topic", "/cam/image_raw",
                          "--skip-unpaired", "--at", at)
        assert run["frames"] == 4
        assert_metrics_match(run, mmseg_metrics(expected(frames, at), 8))
    code, out, err = cli(str(tmp_path / "bag"), "--label-topic", "/cam/labels", "--skip-unpaired")
    assert code == 0 and "4 labelled frames of bag" in out
    assert "warning: --skip-unpaired: skipped 1 image without a label" in err


# -- --compare --------------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("private_cache")
def test_compare_scores_a_quantised_model_beside_fp32_on_the_same_frames(cli, tmp_path, rng, oracle_model):
    from segnet_ros.quantize import QuantizeSettings, prepare_frames, quantize_model

    from oracle import noisy_blocks

    quantize_model(oracle_model, prepare_frames([(f, "rgb8") for f in noisy_blocks(rng, 6)], W, H),
                   QuantizeSettings(reduce_range="off"))
    images, labels, frames = make_set(tmp_path, rng, sizes=[(512, 256)] * 3)
    plot = tmp_path / "confusion.png"
    args = (str(images), str(labels), "--compare", "fp32,int8,bf16,onnxruntime:int8", "--plot", str(plot))
    code, out, err = cli(*args, backend=False)
    assert code == 0, err
    runs = cli.json(*args, backend=False)
    assert [r["precision"] for r in runs] == ["fp32", "int8", "bf16", "int8"]
    reference = mmseg_metrics(expected(frames, "net"), 8)
    for run in (runs[0], runs[1], runs[3]):  # the oracle's INT8 model reproduces its exact grid
        assert run["available"] and run["frames"] == 3
        assert_metrics_match(run, reference)
    assert runs[0]["agreement"] is None and runs[0]["delta"] is None
    assert runs[1]["agreement"] == 1.0 and runs[1]["agreeing_pixels"] == runs[1]["pixels"]
    assert runs[1]["delta"] == {"pixel_accuracy": 0.0, "mean_iou": 0.0, "mean_accuracy": 0.0}
    assert runs[3]["backend"] == "onnxruntime"
    bf16 = runs[2]
    assert bf16["available"] or bf16["reason"]  # native BF16 only on some CPUs; where not, the reason
    lines = out.splitlines()
    assert lines[3].split()[:2] == ["run", "pixel"] and lines[4].endswith("(reference)")
    assert "100.00% of" in lines[5] and " +0.00 " in lines[5]
    if not bf16["available"]:
        assert any(line.startswith("auto bf16") and "cannot run: " in line for line in lines)
    picture = cv2.imread(str(plot))
    assert picture is not None and picture.shape[1] > 3 * picture.shape[0] // 2  # three panels side by side
    assert "wrote" in err and str(plot) in err


def test_the_plot_is_the_row_normalised_matrix(cli, tmp_path, rng):
    images, labels, _ = make_set(tmp_path, rng, sizes=[(W, H)] * 2)
    plot = tmp_path / "confusion.png"
    code, out, err = cli(str(images), str(labels), "--plot", str(plot))
    assert code == 0, err
    picture = cv2.imread(str(plot))
    assert picture.ndim == 3 and min(picture.shape[:2]) > 8 * 40  # 8 classes of 40-pixel cells, and the names
    assert (picture == 255).all(axis=2).mean() > 0.3 and ((picture[:, :, 0] > picture[:, :, 2] + 60).mean() > 0.01)


# -- bad input: one line, status 1, nothing written ----------------------------------------------------------------
def _bad_set(tmp_path: Path, rng, case: str) -> list[str]:
    images, labels, frames = make_set(tmp_path, rng, sizes=[(W, H)] * 3)
    inputs = [str(images), str(labels)]
    if case == "unpaired":
        (labels / "frame_0001.png").rename(labels / "other.png")
    elif case == "aspect":
        write_label(labels / "frame_0002.png", np.zeros((200, W), np.uint8), "ids")
    elif case == "values":
        label = frames[2][1].copy()
        label[:3, :5] = 9
        label[5, :2] = 200
        write_label(labels / "frame_0002.png", label, "ids")
    elif case == "empty":
        (tmp_path / "none").mkdir()
        inputs = [str(tmp_path / "none"), str(labels)]
    elif case == "no pairs":
        for path in labels.iterdir():
            path.rename(path.with_name("x" + path.name))
        inputs.append("--skip-unpaired")
    elif case == "colours":
        write_label(labels / "frame_0001.png", frames[1][1] % 8, "colors", PALETTE // 2)
    elif case == "jpeg":
        (labels / "frame_0001.png").unlink()
        cv2.imwrite(str(labels / "frame_0001.jpg"), frames[1][1])
    elif case == "corrupt":
        path = labels / "frame_0002.png"
        path.write_bytes(path.read_bytes()[:60])
    elif case == "cityscapes":
        inputs += ["--mask-format", "cityscapes"]
    elif case == "compare":
        inputs += ["--compare", "fp32,fp64"]
    elif case == "compare none runs":
        inputs += ["--compare", "fp16,onnxruntime:fp16"]
    elif case == "plot folder":
        inputs += ["--plot", str(tmp_path / "missing" / "c.png")]
    elif case == "plot format":
        inputs += ["--plot", str(tmp_path / "c.xyz")]
    elif case == "three inputs":
        inputs.append(str(labels))
    return inputs


BAD = {
    "unpaired": r"1 image without a label \(frame_0001.png\) and 1 label without an image \(other.png\) \(paired by "
                r"file stem\); pass --skip-unpaired to score the 2 pairs only$",
    "aspect": r"label '.*frame_0002.png' is 256x200 but its image 'frame_0002.png' is 256x128: not the same aspect",
    "values": r"label '.*frame_0002.png' has 17 pixels whose values are no class of the model \(0..7\) and not the "
              r"ignore index 255: 9 \(15 px\), 200 \(2 px\); check --mask-format",
    "empty": r"folder '.*none' holds no image files",
    "no pairs": r"empty set: no image has a label \(paired by file stem\): 3 images without a label",
    "colours": r"label '.*frame_0001.png' has \d+ pixels in \d colours that are no class's colour of \S+ \(",
    "jpeg": r"label '.*frame_0001.jpg' is a JPEG",
    "corrupt": r"cannot decode label '.*frame_0002.png'",
    "cityscapes": r"Cityscapes labelIds are remapped to the 21 classes .* but \S+ has 8 classes",
    "compare": r"argument --compare: 'fp64' is neither a precision",
    "compare none runs": r"none of --compare can run here: onnxruntime fp16: .*; onnxruntime fp16: ",
    "plot folder": r"--plot '.*c.png': folder '.*missing' does not exist",
    "plot format": r"--plot '.*c.xyz': OpenCV cannot write '.xyz' pictures",
    "three inputs": r"expected IMAGES and MASKS .* got 3 inputs",
}


@pytest.mark.parametrize("case", list(BAD))
def test_every_bad_input_is_one_line_and_writes_nothing(cli, tmp_path, rng, case):
    plot = tmp_path / "out.png"
    inputs = _bad_set(tmp_path, rng, case)
    if "--plot" not in inputs:
        inputs += ["--plot", str(plot)]
    line = one_error_line(*cli(*inputs))
    assert re.search(BAD[case], line), line
    assert not plot.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.png")]


def test_bad_bags_are_one_line(cli, tmp_path, rng):
    write_labelled_bag(tmp_path / "bag", rng)
    bag = str(tmp_path / "bag")
    for args, wanted in (
            ((bag,), "is a bag: name its label topic"),
            ((bag, "--label-topic", "/nope"), "has no topic '/nope' (--label-topic; its image topics: /cam/image_raw, "
                                               "/cam/labels)"),
            ((bag, "--label-topic", "/cam/labels", "--topic", "/front"), "has no image topic '/front'"),
            ((str(tmp_path / "images"), "--label-topic", "/cam/labels"), "expected IMAGES and MASKS"),
            ((str(tmp_path / "missing.mcap"), "--label-topic", "/l"), "not found")):
        line = one_error_line(*cli(*args))
        assert wanted in line, line
    line = one_error_line(*cli(bag, "--label-topic", "/cam/labels", "--mask-format", "colors", "--skip-unpaired"),
                          warnings=True)
    assert "reads label files; a bag's label topic holds mono8 class ids" in line
    write_labelled_bag(tmp_path / "rgb", rng, label_encoding="rgb8")
    line = one_error_line(*cli(str(tmp_path / "rgb"), "--label-topic", "/cam/labels", "--skip-unpaired"),
                          warnings=True)
    assert "the label of /cam/labels at stamp 1700000000.000000000 is rgb8; labels are mono8 class ids" in line


def test_errors_are_one_line_in_a_real_process_too(oracle_dir, tmp_path, rng):
    """Where libpng would have its own say: its words are in our one line, not beside it."""
    images, labels, _ = make_set(tmp_path, rng, sizes=[(W, H)] * 2)
    path = labels / "frame_0001.png"
    data = bytearray(path.read_bytes())
    data[-20:-12] = b"\x00" * 8  # the IDAT's last bytes and CRC: libpng complains
    path.write_bytes(bytes(data))
    result = run_cli("evaluate", str(images), str(labels), "--model", str(oracle_dir / "fcn_resnet18.onnx"),
                     "--backend", "onnxruntime", "--no-progress")
    assert result.returncode == 1 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if "backend" not in line]  # the backend choice is logged
    assert len(lines) == 1 and lines[0].startswith("segnet-ros: error: cannot decode label"), result.stderr
