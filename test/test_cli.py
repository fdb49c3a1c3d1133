"""``segnet-ros segment`` end to end: child processes, real files, the oracle model."""

import cv2
import numpy as np
import pytest

from conftest import run_cli
from oracle import NAMES, assert_truncated, block_image, grid_of, ref_colors, ref_overlay

WIDTH, HEIGHT = 200, 120  # not the network's 256x128: the stretch resize is exercised


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """An image painted with known classes, its expected grid, and its file."""
    folder = tmp_path_factory.mktemp("scene")
    grid = np.random.default_rng(7).integers(1, 8, (4, 8)).astype(np.uint8)
    grid[0, 0] = 0  # one void cell
    rgb = block_image(grid, WIDTH, HEIGHT)
    path = folder / "scene.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    assert np.array_equal(grid_of(rgb, 8, 4), grid)
    return path, rgb, grid


def model_args(oracle_dir, *extra):
    return ("--model", str(oracle_dir / "fcn_resnet18.onnx"), "--labels", str(oracle_dir / "classes.txt"),
            "--colors", str(oracle_dir / "colors.txt"), "--no-progress", "--ignore-class", "none", *extra)


def rgba_table(oracle_dir, alpha=150):
    from segnet_ros.core.classes import ClassTable

    return ClassTable.build(8, oracle_dir / "classes.txt", oracle_dir / "colors.txt").rgba(alpha).astype(np.float64)


def test_composite_layout_and_pixels(oracle_dir, scene, tmp_path):
    path, rgb, grid = scene
    out = tmp_path / "out.png"
    result = run_cli("segment", str(path), str(out), *model_args(oracle_dir))
    assert result.returncode == 0, result.stderr
    picture = cv2.imread(str(out))[:, :, ::-1]
    assert picture.shape == (HEIGHT, WIDTH + WIDTH // 2, 3)
    rgba = rgba_table(oracle_dir)
    assert_truncated(picture[:, :WIDTH], ref_overlay(grid, rgba, rgb, WIDTH, HEIGHT, "linear"))
    mask = ref_colors(grid, rgba, WIDTH // 2, HEIGHT // 2, "linear")[:, :, :3]
    assert_truncated(picture[: HEIGHT // 2, WIDTH:], mask)
    assert (picture[HEIGHT // 2:, WIDTH:] == 0).all()
    assert "segmented 1 frame" in result.stderr


def test_stats_table(oracle_dir, scene):
    path, _, grid = scene
    result = run_cli("segment", str(path), *model_args(oracle_dir, "--stats"))
    assert result.returncode == 0, result.stderr
    counts = np.bincount(grid.ravel(), minlength=8)
    expected = ["grid size:   8x4", "num classes: 8", "-" * 41, " ID  class name        count     %", "-" * 41]
    expected += [f" {i:>2d}  {NAMES[i]:<18s} {counts[i]:>3d}   {counts[i] / 32:f}" for i in range(8)]
    assert result.stdout.splitlines() == expected


def test_ignore_class_default_is_void(oracle_dir, scene):
    path, _, grid = scene
    args = [a for a in model_args(oracle_dir, "--stats") if a not in ("--ignore-class", "none")]
    result = run_cli("segment", str(path), *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[5].split()[:3] == ["0", "void", "0"]


@pytest.mark.parametrize("mode", ["point", "linear"])
def test_mask_only_and_overlay_only(oracle_dir, scene, tmp_path, mode):
    path, rgb, grid = scene
    rgba = rgba_table(oracle_dir, 90)
    for visualize in ("mask", "overlay"):
        out = tmp_path / f"{visualize}.png"
        result = run_cli("segment", str(path), str(out), *model_args(
            oracle_dir, "--visualize", visualize, "--filter-mode", mode, "--alpha", "90"))
        assert result.returncode == 0, result.stderr
        picture = cv2.imread(str(out))[:, :, ::-1]
        assert picture.shape == (HEIGHT, WIDTH, 3)
        if visualize == "mask":
            exact = ref_colors(grid, rgba, WIDTH, HEIGHT, mode)[:, :, :3]
        else:
            exact = ref_overlay(grid, rgba, rgb, WIDTH, HEIGHT, mode)
        strict = mode == "point" and visualize == "mask"  # palette copies: no float rounding at all
        assert_truncated(picture, exact, 0 if strict else 1e-3)


def test_explicit_alpha_in_colors_file(oracle_dir, scene, tmp_path):
    path, rgb, grid = scene
    colors = tmp_path / "colors.txt"
    colors.write_text((oracle_dir / "colors.txt").read_text().replace("255 0 0\n", "255,0,0,40\n"))
    out = tmp_path / "o.png"
    args = list(model_args(oracle_dir, "--visualize", "overlay", "--alpha", "200"))
    args[args.index("--colors") + 1] = str(colors)
    result = run_cli("segment", str(path), str(out), *args)
    assert result.returncode == 0, result.stderr
    rgba = rgba_table(oracle_dir, 200)
    rgba[1, 3] = 40
    assert_truncated(cv2.imread(str(out))[:, :, ::-1], ref_overlay(grid, rgba, rgb, WIDTH, HEIGHT, "linear"))


def test_folder_glob_and_video(oracle_dir, scene, tmp_path):
    path, rgb, _ = scene
    inputs = tmp_path / "in"
    inputs.mkdir()
    for index in range(3):
        cv2.imwrite(str(inputs / f"f{index}.png"), np.roll(rgb, 25 * index, axis=1)[:, :, ::-1])
    out = tmp_path / "out"
    result = run_cli("segment", str(inputs), str(out), *model_args(oracle_dir))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["f0.png", "f1.png", "f2.png"]

    result = run_cli("segment", str(inputs / "f[12].png"), str(tmp_path / "g_%i.png"), *model_args(oracle_dir))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "g_0.png").exists() and (tmp_path / "g_1.png").exists()
    assert not (tmp_path / "g_2.png").exists()

    video = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (WIDTH, HEIGHT))
    for _ in range(4):
        writer.write(rgb[:, :, ::-1].copy())
    writer.release()
    result = run_cli("segment", str(video), str(tmp_path / "out.avi"), *model_args(oracle_dir, "--stats"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("grid size:") == 4
    capture = cv2.VideoCapture(str(tmp_path / "out.avi"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 4


def test_reference_network_by_name(scene, tmp_path):
    path, _, _ = scene
    result = run_cli("segment", "--network", "reference-128x64", "--no-progress", "--stats", str(path),
                     str(tmp_path / "r.jpg"))
    assert result.returncode == 0, result.stderr
    assert "grid size:   4x2" in result.stdout and "num classes: 21" in result.stdout
    picture = cv2.imread(str(tmp_path / "r.jpg"))
    assert picture.shape == (HEIGHT, WIDTH + WIDTH // 2, 3)  # overlay plus half-size mask
    assert (picture[HEIGHT // 2 + 2:, WIDTH + 2:] < 8).all()  # black under the mask (JPEG noise aside)


@pytest.mark.parametrize("args,message", [
    (["missing.png", "o.png"], "input 'missing.png' not found"),
    (["--network", "fcn-resnet18-nope", "IMAGE", "o.png"], "unknown network 'fcn-resnet18-nope'"),
    (["--model", "BROKEN", "IMAGE", "o.png"], "not a valid ONNX model"),
    (["--model", "ORACLE", "--colors", "BADCOLORS", "IMAGE", "o.png"], "line 1: expected 'r g b [a]'"),
    (["EMPTYDIR", "o"], "holds no images"),
    (["--model", "ORACLE", "NOTANIMAGE", "o.png"], "cannot decode image"),
    (["--model", "ORACLE", "EMPTYDIR/*.png", "o.png"], "no images match"),
])
def test_errors_are_one_clear_line(oracle_dir, scene, tmp_path, args, message):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx at all")
    bad_colors = tmp_path / "colors.txt"
    bad_colors.write_text("red green blue\n")
    (tmp_path / "empty").mkdir()
    not_image = tmp_path / "fake.png"
    not_image.write_text("text")
    names = {"IMAGE": str(scene[0]), "BROKEN": str(broken), "ORACLE": str(oracle_dir / "fcn_resnet18.onnx"),
             "BADCOLORS": str(bad_colors), "EMPTYDIR": str(tmp_path / "empty"), "NOTANIMAGE": str(not_image)}
    args = [names.get(a, a).replace("EMPTYDIR", str(tmp_path / "empty")) for a in args]
    result = run_cli("segment", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("segnet-ros: error: ")]
    assert len(errors) == 1 and message in errors[0] and lines[-1] == errors[0], result.stderr
    assert all(line.startswith("segnet-ros: ") for line in lines), result.stderr  # log lines, no traceback


def test_invalid_arguments_are_refused_in_one_line(scene):
    for args in (["--alpha", "300"], ["--alpha", "inf"], ["--alpha", "nan"], ["--filter-mode", "cubic"],
                 ["--visualize", "both"], ["--threads", "-1"], ["--resize", "area"]):
        result = run_cli("segment", str(scene[0]), *args)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.startswith(f"segnet-ros: error: argument {args[0]}"), result.stderr
        assert result.stderr.endswith(" (see 'segnet-ros segment --help')\n") and result.stderr.count("\n") == 1


@pytest.fixture
def two_images(scene, tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(scene[0].read_bytes())
    return folder


def test_bad_output_pattern_and_literal_percent(oracle_dir, scene, two_images, tmp_path):
    result = run_cli("segment", str(two_images), str(tmp_path / "x_%d_%d.png"), *model_args(oracle_dir))
    assert result.returncode == 1 and "must hold exactly one number field" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("segment", str(scene[0]), str(tmp_path / "50%off.png"), *model_args(oracle_dir))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "50%off.png").is_file()  # a literal %, not a pattern


def test_model_path_without_onnx_suffix(oracle_dir, scene, tmp_path):
    model = tmp_path / "mymodel"
    model.write_bytes((oracle_dir / "fcn_resnet18.onnx").read_bytes())
    args = list(model_args(oracle_dir, "--stats"))
    args[args.index("--model") + 1] = str(model.name)
    result = run_cli("segment", str(scene[0]), *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "num classes: 8" in result.stdout


def test_single_image_output_for_many_frames_is_refused(oracle_dir, two_images, tmp_path):
    result = run_cli("segment", str(two_images), str(tmp_path / "one.png"), *model_args(oracle_dir))
    assert result.returncode == 1 and "give a folder, a pattern" in result.stderr


def test_progress_bar_rendering():
    import io

    from segnet_ros.cli.progress import Progress

    stream = io.StringIO()
    progress = Progress(4, stream=stream, enabled=True, width=8)
    progress.update()
    progress.update()
    progress.close()
    text = stream.getvalue()
    assert "\r[##......] 1/4 frames" in text and "\r[####....] 2/4 frames" in text and text.endswith("\n")
    quiet = io.StringIO()
    Progress(4, stream=quiet, enabled=False).update()
    assert quiet.getvalue() == ""


def test_an_unquoted_glob_never_overwrites_an_image(oracle_dir, two_images, tmp_path):
    """'segment two/*.png' unquoted is 'segment two/a.png two/b.png': b.png must survive."""
    a, b = two_images / "a.png", two_images / "b.png"
    before = b.read_bytes()
    result = run_cli("segment", str(a), str(b), *model_args(oracle_dir))
    assert result.returncode == 1 and b.read_bytes() == before
    assert result.stderr.strip().splitlines()[-1] == (
        f"segnet-ros: error: output '{b}' exists. If the shell expanded a glob into input and output, quote the "
        "glob ('dir/*.png') and give an output folder; to replace the file, pass --overwrite")
    three = run_cli("segment", str(a), str(b), str(two_images / "c.png"), *model_args(oracle_dir))
    assert three.stderr.strip().splitlines()[-1].startswith(
        f"segnet-ros: error: unexpected argument {two_images / 'c.png'} (a glob the shell expanded? quote it")
    assert run_cli("segment", str(a), str(b), "--overwrite", *model_args(oracle_dir)).returncode == 0
    assert b.read_bytes() != before  # --overwrite replaces another file...
    before = a.read_bytes()
    for args in ([str(a), str(a)], [str(two_images), str(two_images)]):  # ...but never an input
        result = run_cli("segment", *args, "--overwrite", *model_args(oracle_dir))
        assert result.returncode == 1 and "is one of the inputs" in result.stderr and a.read_bytes() == before


def test_an_existing_output_folder_file_is_refused_before_anything_is_written(oracle_dir, two_images, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png").write_bytes(b"mine")
    result = run_cli("segment", str(two_images), str(out), *model_args(oracle_dir))
    assert result.returncode == 1 and f"output '{out / 'b.png'}' exists; pass --overwrite" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["b.png"]  # a.png was not written first


def test_an_unknown_output_extension_is_refused(oracle_dir, scene, tmp_path):
    result = run_cli("segment", str(scene[0]), str(tmp_path / "out.xyz"), *model_args(oracle_dir))
    assert result.returncode == 1 and "output '" in result.stderr and "has an unknown extension '.xyz'" in result.stderr
    assert not (tmp_path / "out.xyz").exists()
    result = run_cli("segment", str(scene[0]), str(tmp_path / "out.v2") + "/", *model_args(oracle_dir))
    assert result.returncode == 0 and (tmp_path / "out.v2" / scene[0].name).is_file()  # a folder, said so by '/'


def test_a_precision_the_cpu_cannot_run_is_exactly_one_line(oracle_dir, scene):
    result = run_cli("segment", str(scene[0]), *model_args(oracle_dir), "--device", "cpu", "--precision", "fp16")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("segnet-ros: error: ONNX Runtime runs precision fp32 or int8, not fp16")


def test_an_ignore_class_that_names_no_class_is_refused_in_the_nodes_words(oracle_dir, scene):
    args = [a if a != "none" else "viod" for a in model_args(oracle_dir)]
    result = run_cli("segment", str(scene[0]), *args)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("segnet-ros: error: ignore_class 'viod' names no class of oracle")


def test_every_run_names_what_ran_and_the_default_model_is_the_nodes(oracle_dir, scene):
    from segnet_ros.node.params import BY_NAME

    result = run_cli("segment", str(scene[0]), *model_args(oracle_dir))
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "segnet-ros: backend auto chose onnxruntime (cpu, fp32)" and len(lines[0]) < 80
    assert " on onnxruntime (cpu, fp32), pipeline host, in " in lines[-1]
    for command in ("segment", "bag", "quantize", "nav2-params"):
        text = " ".join(run_cli(command, "--help").stdout.split())
        assert f"--network NETWORK model name (default {BY_NAME['model'].default}," in text, command
