"""``segnet_ros.evaluate`` piece by piece: the metrics against mmsegmentation's IoUMetric formulas written
out here, every label format read back to the ids it was written from, pairing, and the scorer on the
oracle model whose class grid is known exactly.

The helpers at the top (label files in every format, the independent metrics) serve test_evaluate_cli.py too.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from segnet_ros.core.classes import ClassTable
from segnet_ros.core.errors import SegnetError
from segnet_ros.evaluate import ConfusionMatrix, LabelDecoder, Metrics, ScoreSettings, evaluate_backends, open_labelled
from segnet_ros.evaluate.labels import png_header
from segnet_ros.evaluate.pairs import header_stamp, pair_files
from segnet_ros.evaluate.scoring import aspect_matches, bilinear_classes, nearest_centres, resize_label

from oracle import NAMES, PALETTE, block_image

W, H = 256, 128  # the oracle's input; its grid is 8x4
GW, GH = 8, 4

# Cityscapes' labelIds (cityscapesScripts) and the 21-class name each is merged into, from the table in
# shared/reference/evaluation.md, written by name so the product's id table is checked against it
CITYSCAPES_IDS = {
    "unlabeled": 0, "ego vehicle": 1, "rectification border": 2, "out of roi": 3, "static": 4, "dynamic": 5,
    "ground": 6, "road": 7, "sidewalk": 8, "parking": 9, "rail track": 10, "building": 11, "wall": 12, "fence": 13,
    "guard rail": 14, "bridge": 15, "tunnel": 16, "pole": 17, "polegroup": 18, "traffic light": 19,
    "traffic sign": 20, "vegetation": 21, "terrain": 22, "sky": 23, "person": 24, "rider": 25, "car": 26,
    "truck": 27, "bus": 28, "caravan": 29, "trailer": 30, "train": 31, "motorcycle": 32, "bicycle": 33}
CITYSCAPES_21 = {
    "void": ["unlabeled", "rectification border", "out of roi"], "ego_vehicle": ["ego vehicle"],
    "ground": ["static", "dynamic", "ground"], "road": ["road", "parking", "rail track", "bridge", "tunnel"],
    "sidewalk": ["sidewalk"], "building": ["building"], "wall": ["wall"], "fence": ["fence", "guard rail"],
    "pole": ["pole", "polegroup"], "traffic_light": ["traffic light"], "traffic_sign": ["traffic sign"],
    "vegetation": ["vegetation"], "terrain": ["terrain"], "sky": ["sky"], "person": ["person", "rider"],
    "car": ["car"], "truck": ["truck", "caravan", "trailer"], "bus": ["bus"], "train": ["train"],
    "motorcycle": ["motorcycle"], "bicycle": ["bicycle"]}
CITYSCAPES_NAMES = list(CITYSCAPES_21)


# -- the independent implementation: mmsegmentation IoUMetric's formulas ------------------------------------
def histc(values: np.ndarray, classes: int) -> np.ndarray:
    """torch.histc(values, bins=classes, min=0, max=classes - 1), as IoUMetric calls it."""
    return np.histogram(values, bins=classes, range=(0, classes - 1))[0].astype(np.float64)


def mmseg_metrics(pairs: list[tuple[np.ndarray, np.ndarray]], classes: int, ignore_index: int | None = 255) -> dict:
    """IoUMetric: per image, areas of intersection, union, prediction and label over the pixels whose label
    is not ignore_index; summed over the set; aAcc = sum(I) / sum(label); IoU = I / U and Acc = I / label,
    NaN (0/0) classes dropped from the means (nanmean)."""
    total = {k: np.zeros(classes) for k in ("intersect", "union", "pred", "label")}
    for pred, label in pairs:
        pred, label = pred.reshape(-1).astype(np.int64), label.reshape(-1).astype(np.int64)
        if ignore_index is not None:
            mask = label != ignore_index
            pred, label = pred[mask], label[mask]
        intersect = pred[pred == label]
        area_intersect, area_pred, area_label = histc(intersect, classes), histc(pred, classes), histc(label, classes)
        total["intersect"] += area_intersect
        total["pred"] += area_pred
        total["label"] += area_label
        total["union"] += area_pred + area_label - area_intersect
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = total["intersect"] / total["union"]
        acc = total["intersect"] / total["label"]
    return {"aAcc": total["intersect"].sum() / total["label"].sum(), "IoU": iou, "Acc": acc,
            "mIoU": np.nanmean(iou), "mAcc": np.nanmean(acc), "label": total["label"], "pred": total["pred"]}


def assert_metrics_match(product: dict, reference: dict) -> None:
    """A run of ``--json`` (or Metrics.as_dict()) against :func:`mmseg_metrics`."""
    assert product["pixel_accuracy"] == pytest.approx(reference["aAcc"], rel=1e-12)
    assert product["mean_iou"] == pytest.approx(reference["mIoU"], rel=1e-12)
    assert product["mean_accuracy"] == pytest.approx(reference["mAcc"], rel=1e-12)
    for entry, iou, acc, label, pred in zip(product["classes"], reference["IoU"], reference["Acc"],
                                            reference["label"], reference["pred"], strict=True):
        assert (entry["iou"] is None) == bool(np.isnan(iou)) and (entry["accuracy"] is None) == bool(np.isnan(acc))
        if entry["iou"] is not None:
            assert entry["iou"] == pytest.approx(iou, rel=1e-12)
        if entry["accuracy"] is not None:
            assert entry["accuracy"] == pytest.approx(acc, rel=1e-12)
        assert (entry["label_pixels"], entry["predicted_pixels"]) == (label, pred)


# -- what the oracle answers, and labels resized, written independently of the product -------------------------
def grid_mask(grid: np.ndarray, width: int, height: int) -> np.ndarray:
    """segNet's class mask: pixel (x, y) takes grid[int(y * gh / H)][int(x * gw / W)]."""
    gh, gw = grid.shape
    return grid[(np.arange(height) * gh // height)[:, None], (np.arange(width) * gw // width)[None, :]]


def label_at(label: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest resize sampling pixel centres: source index int((i + 0.5) * src / dst)."""
    rows = [int((y + 0.5) * label.shape[0] / height) for y in range(height)]
    columns = [int((x + 0.5) * label.shape[1] / width) for x in range(width)]
    return label[np.ix_(rows, columns)]


def noisy_label(rng: np.random.Generator, grid: np.ndarray, width: int, height: int, classes: int = 8,
                wrong: float = 0.2, ignored: float = 0.05, ignore_value: int = 255) -> np.ndarray:
    """The grid's class mask at (width, height), with a share of pixels relabelled at random and some ignored."""
    label = grid_mask(grid, width, height).astype(np.uint8)
    draw = rng.random(label.shape)
    label[draw < wrong] = rng.integers(0, classes, int((draw < wrong).sum()))
    if ignored:
        label[draw > 1 - ignored] = ignore_value
    return label


# -- label files in every format --------------------------------------------------------------------------------
def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def write_palette_png(path: Path, indices: np.ndarray, palette: np.ndarray, bit_depth: int = 8,
                      transparency: bytes | None = None) -> Path:
    """A palette PNG (colour type 3) written byte by byte, as Pascal VOC's SegmentationClass files are."""
    height, width = indices.shape
    per_byte = 8 // bit_depth
    rows = []
    for row in indices.astype(np.uint8):
        if per_byte > 1:
            padded = np.zeros(-(-width // per_byte) * per_byte, np.uint8)
            padded[:width] = row
            groups = padded.reshape(-1, per_byte)
            row = np.zeros(len(groups), np.uint8)
            for k in range(per_byte):
                row |= groups[:, k] << (8 - bit_depth * (k + 1))
        rows.append(b"\x00" + row.tobytes())
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, 3, 0, 0, 0))
    data += png_chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if transparency is not None:
        data += png_chunk(b"tRNS", transparency)
    data += png_chunk(b"IDAT", zlib.compress(b"".join(rows))) + png_chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def voc_palette(count: int = 256) -> np.ndarray:
    """Pascal VOC's colour map (bit-interleaved), which its palette PNGs carry."""
    palette = np.zeros((count, 3), np.uint8)
    for index in range(count):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def write_label(path: Path, ids: np.ndarray, kind: str, colours: np.ndarray = PALETTE) -> Path:
    """One label file of class ids in a format: ids (grey 8-bit), ids16, palette, colors (RGB PNG of
    ``colours[id]``), colors_palette (a palette PNG whose palette holds the class colours)."""
    if kind == "ids":
        cv2.imwrite(str(path), ids.astype(np.uint8))
    elif kind == "ids16":
        cv2.imwrite(str(path), ids.astype(np.uint16))
    elif kind == "palette":
        write_palette_png(path, ids, voc_palette(), transparency=bytes([255] * 255 + [0]))
    elif kind == "colors":
        cv2.imwrite(str(path), np.ascontiguousarray(colours[ids][:, :, ::-1]))
    elif kind == "colors_palette":
        write_palette_png(path, ids, colours)
    else:
        raise ValueError(kind)
    assert path.stat().st_size
    return path


def write_image(path: Path, grid: np.ndarray, width: int = W, height: int = H, palette: np.ndarray = PALETTE) -> Path:
    """A block image the oracle classifies as ``grid`` (written BGR, as files are)."""
    cv2.imwrite(str(path), np.ascontiguousarray(block_image_of(grid, width, height, palette)[:, :, ::-1]))
    return path


def block_image_of(grid: np.ndarray, width: int, height: int, palette: np.ndarray = PALETTE) -> np.ndarray:
    if palette is PALETTE:
        return block_image(grid, width, height).astype(np.uint8)
    gh, gw = grid.shape
    return palette[grid[(np.arange(height) * gh // height)[:, None], (np.arange(width) * gw // width)[None, :]]]


# -- metrics --------------------------------------------------------------------------------------------------
def handmade() -> tuple[np.ndarray, np.ndarray]:
    """A 4x8-cell frame (cells of 32x32 at 256x128): rows 0 red, 1 green, 2-3 blue predicted; labelled
    with row 0's left half green and row 3 ignored."""
    grid = np.array([[1] * 8, [2] * 8, [3] * 8, [3] * 8])
    label_grid = grid.copy()
    label_grid[0, :4] = 2
    label_grid[3] = 255
    return grid_mask(grid, W, H).astype(np.uint8), grid_mask(label_grid, W, H).astype(np.uint8)


def test_a_handmade_frame_gives_exactly_the_figures_worked_out_by_hand():
    prediction, label = handmade()
    matrix = ConfusionMatrix(8)
    matrix.add(label, prediction, 255)
    metrics = Metrics.of(matrix, NAMES, 1)
    cell = 32 * 32
    expected = np.zeros((8, 8), np.int64)
    expected[1, 1], expected[2, 1], expected[2, 2], expected[3, 3] = 4 * cell, 4 * cell, 8 * cell, 8 * cell
    np.testing.assert_array_equal(metrics.confusion, expected)
    # correct 20 of 24 cells; IoU red 4/8, green 8/12, blue 8/8; accuracy red 4/4, green 8/12, blue 8/8
    assert metrics.pixel_accuracy == 20 / 24
    assert metrics.mean_iou == pytest.approx((1 / 2 + 2 / 3 + 1) / 3, rel=1e-15)
    assert metrics.mean_accuracy == pytest.approx((1 + 2 / 3 + 1) / 3, rel=1e-15)
    assert metrics.left_out == ("void", "yellow", "cyan", "magenta", "white")
    assert (metrics.iou_classes, metrics.accuracy_classes, metrics.pixels) == (3, 3, 24 * cell)
    scores = {c.name: c for c in metrics.classes()}
    assert (scores["red"].iou, scores["red"].accuracy, scores["red"].predicted_pixels) == (0.5, 1.0, 8 * cell)
    assert scores["void"].iou is None and scores["void"].accuracy is None and scores["void"].label_pixels == 0


@pytest.mark.parametrize("ignore_index", [255, 0, 5, None])
def test_metrics_match_the_mmsegmentation_formulas(rng, ignore_index):
    """Random sets with absent classes, classes only predicted, and the ignore index inside or outside
    the class range."""
    classes = 9
    pairs = []
    for _ in range(5):
        size = tuple(rng.integers(5, 40, 2))
        # every label value is a class or the ignore index (the scorer refuses others before they get here)
        label = rng.choice([0, 1, 2, 3, 5, 4 if ignore_index is None else ignore_index], size).astype(np.uint8)
        prediction = rng.choice([0, 1, 2, 3, 6], size).astype(np.uint8)  # 6: predicted, never labelled
        pairs.append((prediction, label))
    matrix = ConfusionMatrix(classes)
    for prediction, label in pairs:
        matrix.add(label, prediction, ignore_index)
    product = Metrics.of(matrix, [f"c{i}" for i in range(classes)], len(pairs)).as_dict()
    reference = mmseg_metrics(pairs, classes, ignore_index)
    assert_metrics_match(product, reference)
    assert set(product["left_out"]) == {f"c{i}" for i in range(classes) if np.isnan(reference["IoU"][i])}


def test_a_set_without_pixels_has_no_figures():
    metrics = Metrics.of(ConfusionMatrix(3), ["a", "b", "c"], 1)
    assert (metrics.pixel_accuracy, metrics.mean_iou, metrics.mean_accuracy) == (None, None, None)
    assert metrics.left_out == ("a", "b", "c")


# -- label formats ---------------------------------------------------------------------------------------------
@pytest.fixture
def oracle_classes(oracle_dir) -> ClassTable:
    return ClassTable.build(8, oracle_dir / "classes.txt", oracle_dir / "colors.txt")


@pytest.mark.parametrize("kind, mask_format", [
    ("ids", "ids"), ("ids", "auto"), ("ids16", "ids"), ("ids16", "auto"), ("palette", "palette"),
    ("palette", "auto"), ("palette", "ids"), ("colors", "colors"), ("colors", "auto"),
    ("colors_palette", "colors")])
def test_every_label_format_reads_back_the_ids_it_was_written_from(tmp_path, rng, oracle_classes, kind, mask_format):
    ids = rng.integers(0, 8, (37, 53)).astype(np.uint8)
    if kind.startswith(("ids", "palette")):
        ids[rng.random(ids.shape) < 0.1] = 255  # the ignore index survives every id format
    path = write_label(tmp_path / "label.png", ids, kind)
    read = LabelDecoder(mask_format, oracle_classes).read(path)
    np.testing.assert_array_equal(read, ids)
    assert read.shape == ids.shape


@pytest.mark.parametrize("bit_depth", [1, 2, 4])
def test_palette_pngs_of_every_bit_depth_give_their_indices(tmp_path, rng, oracle_classes, bit_depth):
    ids = rng.integers(0, 1 << bit_depth, (9, 13)).astype(np.uint8)  # odd width: rows end mid-byte
    palette = np.zeros((1 << bit_depth, 3), np.uint8)  # every entry the same colour: only the index tells them apart
    path = write_palette_png(tmp_path / "p.png", ids, palette, bit_depth)
    assert png_header(path.read_bytes()) == (bit_depth, 3)
    np.testing.assert_array_equal(LabelDecoder("auto", oracle_classes).read(path), ids)


def test_cityscapes_label_ids_become_the_21_classes_of_the_reference_table(tmp_path):
    classes = ClassTable.build(21)
    ids = np.array([list(CITYSCAPES_IDS.values()) + [255]], np.uint8)
    path = write_label(tmp_path / "a_000000_000019_gtFine_labelIds.png", ids, "ids")
    read = LabelDecoder("cityscapes", classes).read(path)[0]
    expected = {CITYSCAPES_IDS[old]: CITYSCAPES_NAMES.index(new) for new, olds in CITYSCAPES_21.items() for old in olds}
    assert read.tolist() == [expected[v] for v in CITYSCAPES_IDS.values()] + [255]
    np.testing.assert_array_equal(LabelDecoder("auto", classes, layout="cityscapes").read(path)[0], read)
    np.testing.assert_array_equal(LabelDecoder("ids", classes, layout="cityscapes").read(path)[0], ids[0])
    with pytest.raises(SegnetError, match="21 classes of jetson-inference's Cityscapes models, but m has 8"):
        LabelDecoder("cityscapes", ClassTable.build(8), model_name="m")


def test_colour_labels_refuse_unknown_and_shared_colours_with_counts(tmp_path, rng, oracle_classes):
    ids = rng.integers(0, 8, (10, 10)).astype(np.uint8)
    image = PALETTE[ids].copy()
    image[0, :7] = (1, 2, 3)
    image[1, :2] = (9, 9, 9)
    path = tmp_path / "c.png"
    cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1]))
    with pytest.raises(SegnetError, match=r"9 pixels in 2 colours that are no class's colour of the model "
                                          r"\(\(1,2,3\) 7 px, \(9,9,9\) 2 px\)"):
        LabelDecoder("colors", oracle_classes).read(path)
    rgb = np.array([[1, 1, 1], [5, 5, 5], [1, 1, 1]], np.uint8)
    shared = ClassTable(("a", "b", "c"), rgb, np.full(3, -1, np.int16))
    cv2.imwrite(str(path), np.full((4, 4, 3), 5, np.uint8))
    np.testing.assert_array_equal(LabelDecoder("colors", shared).read(path), np.ones((4, 4)))
    cv2.imwrite(str(path), np.full((4, 4, 3), 1, np.uint8))
    with pytest.raises(SegnetError, match=r"colour \(1,1,1\), which a and c share"):
        LabelDecoder("colors", shared).read(path)


def test_labels_that_are_not_what_the_format_says_are_refused(tmp_path, oracle_classes):
    colour = tmp_path / "colour.png"
    cv2.imwrite(str(colour), np.dstack([np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8),
                                        np.full((4, 4), 2, np.uint8)]))
    with pytest.raises(SegnetError, match="is a colour image, not class ids"):
        LabelDecoder("ids", oracle_classes).read(colour)
    with pytest.raises(SegnetError, match="is not a palette PNG"):
        LabelDecoder("palette", oracle_classes).read(colour)
    grey_as_rgb = tmp_path / "grey.png"
    cv2.imwrite(str(grey_as_rgb), np.full((4, 4, 3), 3, np.uint8))
    np.testing.assert_array_equal(LabelDecoder("ids", oracle_classes).read(grey_as_rgb), np.full((4, 4), 3))
    jpeg = tmp_path / "l.jpg"
    cv2.imwrite(str(jpeg), np.zeros((4, 4), np.uint8))
    with pytest.raises(SegnetError, match="is a JPEG: its lossy compression"):
        LabelDecoder("auto", oracle_classes).read(jpeg)
    broken = tmp_path / "broken.png"
    broken.write_bytes(colour.read_bytes()[:40])
    with pytest.raises(SegnetError, match="cannot decode label"):
        LabelDecoder("auto", oracle_classes).read(broken)


# -- pairing --------------------------------------------------------------------------------------------------
def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_files_pair_by_stem_or_by_the_cityscapes_layout(tmp_path):
    images = [touch(tmp_path / "i" / f"frame_{i:04d}.jpg") for i in range(3)]
    labels = [touch(tmp_path / "l" / f"frame_{i:04d}.png") for i in (1, 2, 5)]
    pairs, layout, unpaired = pair_files(images, labels)
    assert layout == "stem" and [(p.image.name, p.label.name) for p in pairs] == \
        [("frame_0001.jpg", "frame_0001.png"), ("frame_0002.jpg", "frame_0002.png")]
    assert (unpaired.images, unpaired.labels) == (("frame_0000.jpg",), ("frame_0005.png",))

    root = tmp_path / "cityscapes"
    for city, frame in (("aachen", "aachen_000000_000019"), ("bonn", "bonn_000001_000019")):
        touch(root / "leftImg8bit" / "val" / city / f"{frame}_leftImg8bit.png")
        for kind in ("labelIds", "color", "instanceIds"):  # the other two are not labels: never unpaired
            touch(root / "gtFine" / "val" / city / f"{frame}_gtFine_{kind}.png")
    source = open_labelled([str(root / "leftImg8bit" / "val"), str(root / "gtFine" / "val")])
    assert source.layout == "cityscapes" and source.count == 2 and not source.unpaired.count
    assert [p.label.name for p in source.pairs] == ["aachen_000000_000019_gtFine_labelIds.png",
                                                    "bonn_000001_000019_gtFine_labelIds.png"]
    globbed = open_labelled([str(root / "leftImg8bit" / "**" / "*.png"), str(root / "gtFine" / "val" / "*" / "*")])
    assert [p.key for p in globbed.pairs] == [p.key for p in source.pairs]


def test_pairing_refuses_what_it_cannot_pair(tmp_path):
    for i in range(5):
        touch(tmp_path / "i" / f"f{i}.png")
    for i in (0, 1, 7, 8):
        touch(tmp_path / "l" / f"f{i}.png")
    with pytest.raises(SegnetError, match=r"^3 images without a label \(f2.png, f3.png, f4.png\) and 2 labels "
                                          r"without an image \(f7.png, f8.png\) \(paired by file stem\); pass "
                                          r"--skip-unpaired to score the 2 pairs only$"):
        open_labelled([str(tmp_path / "i"), str(tmp_path / "l")])
    assert open_labelled([str(tmp_path / "i"), str(tmp_path / "l")], skip_unpaired=True).count == 2
    touch(tmp_path / "other" / "x.png")
    with pytest.raises(SegnetError, match="^empty set: no image has a label"):
        open_labelled([str(tmp_path / "i"), str(tmp_path / "other")], skip_unpaired=True)
    touch(tmp_path / "i" / "f1.jpg")
    with pytest.raises(SegnetError, match="two image files pair as 'f1'"):
        open_labelled([str(tmp_path / "i"), str(tmp_path / "l")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SegnetError, match="folder '.*empty' holds no label files"):
        open_labelled([str(tmp_path / "i"), str(tmp_path / "empty")])
    with pytest.raises(SegnetError, match="no image files match"):
        open_labelled([str(tmp_path / "nothing" / "*.png"), str(tmp_path / "l")])
    with pytest.raises(SegnetError, match="expected IMAGES and MASKS"):
        open_labelled([str(tmp_path / "i")])
    single = open_labelled([str(tmp_path / "i" / "f2.png"), str(tmp_path / "l" / "f7.png")])
    assert [(p.image.name, p.label.name) for p in single.pairs] == [("f2.png", "f7.png")]  # named: paired as given


def test_header_stamps_are_read_from_the_cdr_bytes():
    from bag_helpers import image_bytes, store

    raw = image_bytes(store(), 1_700_000_000_123_456_789, "cam", np.zeros((2, 3), np.uint8), "mono8")
    assert header_stamp(raw) == 1_700_000_000_123_456_789
    assert header_stamp(b"\x00\x03" + bytes(20)) is None  # not plain CDR: the message is deserialised instead


# -- scoring --------------------------------------------------------------------------------------------------
def test_nearest_resize_samples_pixel_centres(rng):
    for src, dst in ((512, 256), (384, 128), (100, 256), (7, 3), (256, 256)):
        assert nearest_centres(src, dst).tolist() == [int((i + 0.5) * src / dst) for i in range(dst)]
    label = rng.integers(0, 8, (192, 384)).astype(np.uint8)
    np.testing.assert_array_equal(resize_label(label, (W, H)), label_at(label, W, H))
    assert aspect_matches((512, 256), (256, 128)) and aspect_matches((2048, 1023), (1024, 512))
    assert not aspect_matches((256, 200), (256, 128))


def torch_bilinear(logits: np.ndarray, width: int, height: int) -> np.ndarray:
    """F.interpolate(mode='bilinear', align_corners=False), in float64: src = (dst + 0.5) * in / out - 0.5,
    clamped at 0, the upper neighbour clamped at the last index."""
    def axis(out: int, size: int):
        src = np.maximum((np.arange(out) + 0.5) * size / out - 0.5, 0)
        low = np.floor(src).astype(int)
        high = np.minimum(low + 1, size - 1)
        return low, high, src - low

    y0, y1, fy = axis(height, logits.shape[1])
    x0, x1, fx = axis(width, logits.shape[2])
    top = logits[:, y0][:, :, x0] * (1 - fx) + logits[:, y0][:, :, x1] * fx
    bottom = logits[:, y1][:, :, x0] * (1 - fx) + logits[:, y1][:, :, x1] * fx
    return top * (1 - fy[:, None]) + bottom * fy[:, None]


@pytest.mark.parametrize("classes", [5, 21, 130])
def test_bilinear_upsampling_of_logits_is_pytorchs(rng, classes):
    logits = rng.normal(size=(classes, 4, 8)).astype(np.float32)
    upsampled = torch_bilinear(logits.astype(np.float64), 200, 96)
    expected = np.argmax(upsampled, axis=0)
    top2 = np.sort(upsampled, axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 1e-4  # float32 may settle a near-tie either way
    got = bilinear_classes(logits, (200, 96), None)
    assert got.shape == (96, 200) and clear.mean() > 0.99
    np.testing.assert_array_equal(got[clear], expected[clear])
    never = bilinear_classes(logits, (200, 96), int(expected[0, 0]))
    assert not (never == expected[0, 0]).any()


def test_evaluate_backends_scores_labelled_frames_for_other_commands(oracle_model, tmp_path, rng):
    """What quantize --eval will call: the same backend twice agrees with itself on every scored pixel."""
    from segnet_ros.backends import BackendOptions, create_backend
    from segnet_ros.core.segnet import SegNetSettings

    pairs = []
    (tmp_path / "i").mkdir()
    (tmp_path / "l").mkdir()
    for i in range(3):
        grid = rng.integers(0, 8, (GH, GW))
        write_image(tmp_path / "i" / f"{i}.png", grid)
        label = noisy_label(rng, grid, 512, 256)
        write_label(tmp_path / "l" / f"{i}.png", label, "ids")
        pairs.append((grid_mask(grid, 512, 256), label))
    source = open_labelled([str(tmp_path / "i"), str(tmp_path / "l")])
    backends = [create_backend("onnxruntime", oracle_model, BackendOptions(device="cpu", precision="fp32"))
                for _ in range(2)]
    first, second = evaluate_backends(oracle_model, backends, source, "ids", ScoreSettings(at="label"),
                                      SegNetSettings(ignore_class=""))
    assert_metrics_match(first.metrics.as_dict(), mmseg_metrics(pairs, 8))
    assert first.agreeing is None and second.agreeing == second.metrics.pixels and second.agreement == 1.0
    assert first.metrics.frames == 3
