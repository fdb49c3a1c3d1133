import numpy as np
import pytest

from segnet_ros.core.frames import encoding
from segnet_ros.core.render import Renderer

from oracle import assert_truncated, ref_class_mask, ref_colors, ref_overlay

SIZES = [(16, 8), (61, 37), (100, 50), (33, 80)]
GRIDS = [(16, 8), (10, 10), (5, 3)]


def random_case(rng, gw, gh, classes=21):
    grid = rng.integers(0, classes, (gh, gw)).astype(np.uint8)
    rgba = rng.integers(0, 256, (classes, 4)).astype(np.float32)
    return grid, rgba


@pytest.mark.parametrize("gw,gh", GRIDS)
@pytest.mark.parametrize("width,height", SIZES)
def test_class_mask_matches_reference(rng, gw, gh, width, height):
    grid, _ = random_case(rng, gw, gh)
    mask = Renderer(gw, gh).class_mask(grid, width, height)
    assert mask.dtype == np.uint8 and mask.shape == (height, width)
    np.testing.assert_array_equal(mask, ref_class_mask(grid, width, height))


def test_class_mask_at_grid_size_is_the_grid(rng):
    grid, _ = random_case(rng, 16, 8)
    np.testing.assert_array_equal(Renderer(16, 8).class_mask(grid, 16, 8), grid)


@pytest.mark.parametrize("gw,gh", GRIDS)
@pytest.mark.parametrize("width,height", SIZES)
def test_histogram_counts_the_mask_without_rendering_it(rng, gw, gh, width, height):
    grid, _ = random_case(rng, gw, gh)
    counts = Renderer(gw, gh).histogram(grid, 21, width, height)
    expected = np.bincount(ref_class_mask(grid, width, height).ravel(), minlength=21)
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() == width * height


@pytest.mark.parametrize("mode", ["point", "linear"])
@pytest.mark.parametrize("gw,gh", GRIDS)
@pytest.mark.parametrize("width,height", SIZES)
def test_color_mask_matches_reference(rng, mode, gw, gh, width, height):
    grid, rgba = random_case(rng, gw, gh)
    mask = Renderer(gw, gh).color_mask(grid, rgba, width, height, mode)
    assert mask.dtype == np.uint8 and mask.shape == (height, width, 3)
    # the point filter copies palette entries: exact, no float tolerance at all
    assert_truncated(mask, ref_colors(grid, rgba, width, height, mode)[:, :, :3], 1e-3 if mode == "linear" else 0)


@pytest.mark.parametrize("mode", ["point", "linear"])
@pytest.mark.parametrize("name", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
@pytest.mark.parametrize("in_size,out_size", [((61, 37), (61, 37)), ((80, 45), (40, 30)), ((30, 20), (47, 33))])
def test_overlay_matches_reference(rng, mode, name, in_size, out_size):
    grid, rgba = random_case(rng, 10, 6)
    rgb = rng.integers(0, 256, (in_size[1], in_size[0], 3), dtype=np.uint8)
    enc = encoding(name)
    if name == "mono8":
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
        frame = rgb[:, :, :1].copy()
    else:
        frame = rgb[:, :, ::-1] if enc.bgr else rgb
        if enc.channels == 4:
            frame = np.dstack([frame, np.full(frame.shape[:2], 9, np.uint8)])
        frame = np.ascontiguousarray(frame)
    out = Renderer(10, 6).overlay(grid, rgba, frame, enc, *out_size, mode)
    exact = ref_overlay(grid, rgba, rgb, *out_size, mode)
    assert_truncated(out[:, :, ::-1] if enc.bgr else out, exact)


def test_truncates_instead_of_rounding():
    # one cell, colour 100.6 is impossible, so blend: 0.5*101 + 0.5*100 = 100.5 -> 100
    grid = np.zeros((1, 1), np.uint8)
    rgba = np.array([[101, 101, 101, 127.5]], np.float32)
    frame = np.full((4, 4, 3), 100, np.uint8)
    out = Renderer(1, 1).overlay(grid, rgba, frame, encoding("rgb8"), 4, 4, "linear")
    assert (out == 100).all()
    rgba[0, 3] = 255 * 0.9  # 0.9*101 + 0.1*100 = 100.9 -> 100
    out = Renderer(1, 1).overlay(grid, rgba, frame, encoding("rgb8"), 4, 4, "point")
    assert (out == 100).all()


def test_alpha_extremes():
    grid = np.array([[0, 1]], np.uint8)
    rgba = np.array([[10, 20, 30, 255], [200, 100, 50, 0]], np.float32)
    frame = np.full((2, 2, 3), 77, np.uint8)
    out = Renderer(2, 1).overlay(grid, rgba, frame, encoding("rgb8"), 2, 2, "point")
    assert out[:, 0].tolist() == [[10, 20, 30]] * 2 and out[:, 1].tolist() == [[77, 77, 77]] * 2


def test_colours_are_recomputed_for_a_new_grid_of_the_same_size(rng):
    renderer = Renderer(4, 4)
    grid_a, rgba = random_case(rng, 4, 4)
    grid_b = (grid_a + 1) % 21
    a = renderer.color_mask(grid_a, rgba, 20, 20, "linear")
    b = renderer.color_mask(grid_b, rgba, 20, 20, "linear")
    again = renderer.color_mask(grid_a, rgba, 20, 20, "linear")
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, again)
    np.testing.assert_array_equal(renderer.color_mask(grid_a, rgba, 20, 20, "point"),
                                  Renderer(4, 4).color_mask(grid_a, rgba, 20, 20, "point"))


def test_index_maps_are_cached_per_size():
    renderer = Renderer(16, 8)
    assert renderer.axes(640, 480)[0] is renderer.axes(640, 480)[0]
    assert renderer.axes(640, 480)[0] is not renderer.axes(320, 480)[0]


def test_rendering_into_caller_buffers(rng):
    grid, rgba = random_case(rng, 16, 8)
    frame = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    renderer = Renderer(16, 8)
    for name, make in (
        ("class_mask", lambda out: renderer.class_mask(grid, 60, 40, out)),
        ("color_mask", lambda out: renderer.color_mask(grid, rgba, 60, 40, "linear", out)),
        ("overlay rgb", lambda out: renderer.overlay(grid, rgba, frame, encoding("rgb8"), 60, 40, "linear", out)),
        ("overlay bgr", lambda out: renderer.overlay(grid, rgba, frame, encoding("bgr8"), 60, 40, "point", out)),
    ):
        fresh = make(None)
        out = np.full(fresh.shape, 7, np.uint8)
        assert make(out) is out, name
        np.testing.assert_array_equal(out, fresh, err_msg=name)
    with pytest.raises(ValueError, match=r"out must be a contiguous uint8 \(40, 60, 3\)"):
        renderer.color_mask(grid, rgba, 60, 40, "linear", np.zeros((40, 60), np.uint8))
    with pytest.raises(ValueError, match="out must be a contiguous uint8"):
        renderer.class_mask(grid, 60, 40, np.zeros((40, 60), np.float32))


def test_rendering_from_two_threads_gives_the_same_pictures(rng):
    import threading

    renderer = Renderer(16, 8)
    cases = []
    for seed in range(2):
        grid, rgba = random_case(np.random.default_rng(seed), 16, 8)
        frame = np.random.default_rng(seed).integers(0, 256, (90, 160, 3), dtype=np.uint8)
        cases.append((grid, rgba, frame, Renderer(16, 8).overlay(grid, rgba, frame, encoding("bgr8"), 160, 90,
                                                                 "linear")))
    wrong = []

    def render(case):
        grid, rgba, frame, expected = case
        for _ in range(60):
            if not np.array_equal(renderer.overlay(grid, rgba, frame, encoding("bgr8"), 160, 90, "linear"),
                                  expected):
                wrong.append(1)

    threads = [threading.Thread(target=render, args=(case,)) for case in cases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong, f"{len(wrong)} of 120 overlays rendered from two threads were wrong"
