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


# -- the one-pass renderer, the one-alpha blend, spans and tiles ----------------------------------
ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]
SIZE_PAIRS = [((61, 37), (61, 37)), ((80, 45), (40, 30)), ((30, 20), (47, 33))]
ALPHAS = {"varying": None, "one": 150, "opaque": 255, "clear": 0, "half": 127.5}


def frame_in(rng, name, width, height):
    """A random frame in encoding ``name`` and the same pixels as (H, W, 3) RGB."""
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    enc = encoding(name)
    if name == "mono8":
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
        return rgb[:, :, :1].copy(), rgb
    frame = rgb[:, :, ::-1] if enc.bgr else rgb
    if enc.channels == 4:
        frame = np.dstack([frame, rng.integers(0, 256, (height, width), dtype=np.uint8)])
    return np.ascontiguousarray(frame), rgb


def table_with(rng, alpha, classes=21):
    rgba = rng.integers(0, 256, (classes, 4)).astype(np.float32)
    if ALPHAS[alpha] is not None:
        rgba[:, 3] = ALPHAS[alpha]
    return rgba


def as_rgb(picture, name):
    return picture[:, :, ::-1] if encoding(name).bgr else picture


@pytest.mark.parametrize("alpha", list(ALPHAS))
@pytest.mark.parametrize("mode", ["point", "linear"])
@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("in_size,out_size", SIZE_PAIRS)
def test_one_pass_draws_exactly_what_the_two_calls_draw(rng, alpha, mode, name, in_size, out_size):
    grid = rng.integers(0, 21, (6, 10)).astype(np.uint8)
    rgba = table_with(rng, alpha)
    frame, _ = frame_in(rng, name, *in_size)
    renderer, enc = Renderer(10, 6), encoding(name)
    color, blended = renderer.color_mask_and_overlay(grid, rgba, frame, enc, *out_size, mode)
    np.testing.assert_array_equal(color, Renderer(10, 6).color_mask(grid, rgba, *out_size, mode))
    np.testing.assert_array_equal(blended, Renderer(10, 6).overlay(grid, rgba, frame, enc, *out_size, mode))
    color_out, overlay_out = np.zeros_like(color), np.zeros_like(blended)
    again = renderer.color_mask_and_overlay(grid, rgba, frame, enc, *out_size, mode, color_out, overlay_out)
    assert again[0] is color_out and again[1] is overlay_out
    np.testing.assert_array_equal(color_out, color)
    np.testing.assert_array_equal(overlay_out, blended)


@pytest.mark.parametrize("alpha", ["one", "opaque", "clear", "half"])
@pytest.mark.parametrize("mode", ["point", "linear"])
@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("in_size,out_size", SIZE_PAIRS)
def test_overlay_with_one_alpha_matches_reference(rng, alpha, mode, name, in_size, out_size):
    grid = rng.integers(0, 21, (6, 10)).astype(np.uint8)
    rgba = table_with(rng, alpha)
    frame, rgb = frame_in(rng, name, *in_size)
    out = Renderer(10, 6).overlay(grid, rgba, frame, encoding(name), *out_size, mode)
    assert_truncated(as_rgb(out, name), ref_overlay(grid, rgba, rgb, *out_size, mode))


@pytest.mark.parametrize("mode", ["point", "linear"])
@pytest.mark.parametrize("name", ENCODINGS)
def test_alpha_255_is_the_colour_mask_and_alpha_0_the_input_exactly(rng, mode, name):
    grid = rng.integers(0, 21, (6, 10)).astype(np.uint8)
    frame, rgb = frame_in(rng, name, 61, 37)
    renderer, enc = Renderer(10, 6), encoding(name)
    rgba = table_with(rng, "opaque")
    np.testing.assert_array_equal(as_rgb(renderer.overlay(grid, rgba, frame, enc, 61, 37, mode), name),
                                  renderer.color_mask(grid, rgba, 61, 37, mode))
    rgba = table_with(rng, "clear")
    np.testing.assert_array_equal(as_rgb(renderer.overlay(grid, rgba, frame, enc, 61, 37, mode), name), rgb)
    # classes of alpha 0 and 255 side by side: wherever all the cells a pixel reads are clear (or
    # opaque), it is exactly the input (or exactly its colour), in either filter mode
    rgba = table_with(rng, "varying")
    rgba[:, 3] = np.where(np.arange(21) % 2 == 0, 0, 255)
    out = as_rgb(renderer.overlay(grid, rgba, frame, enc, 61, 37, mode), name)
    alpha = ref_colors(grid, rgba, 61, 37, mode)[:, :, 3]
    clear, opaque = alpha == 0, alpha == 255
    assert clear.any() and opaque.any()
    np.testing.assert_array_equal(out[clear], rgb[clear])
    np.testing.assert_array_equal(out[opaque], renderer.color_mask(grid, rgba, 61, 37, mode)[opaque])


@pytest.mark.parametrize("mode", ["point", "linear"])
@pytest.mark.parametrize("width,height", [(61, 37), (16, 8), (100, 7)])
def test_a_grid_of_one_class_renders_its_colour_exactly(mode, width, height):
    # every pixel reads cells of one colour: exactly that colour, never one level below it
    grid = np.full((8, 16), 3, np.uint8)
    rgba = np.zeros((5, 4), np.float32)
    rgba[3] = [255, 37, 1, 200]
    mask = Renderer(16, 8).color_mask(grid, rgba, width, height, mode)
    assert (mask == [255, 37, 1]).all()


def test_the_ignored_class_is_never_drawn(rng):
    from segnet_ros.core.classify import classify

    logits = rng.normal(size=(1, 21, 8, 16)).astype(np.float32)
    logits[0, 0] += 3.0  # class 0 would win most cells
    grid, _ = classify(logits, ignore_id=0)
    rgba = table_with(rng, "one")
    frame, rgb = frame_in(rng, "bgr8", 70, 40)
    renderer = Renderer(16, 8)
    assert not (renderer.class_mask(grid, 70, 40) == 0).any()
    assert renderer.histogram(grid, 21, 70, 40)[0] == 0
    color, blended = renderer.color_mask_and_overlay(grid, rgba, frame, encoding("bgr8"), 70, 40, "linear")
    assert_truncated(color, ref_colors(grid, rgba, 70, 40, "linear")[:, :, :3])
    assert_truncated(blended[:, :, ::-1], ref_overlay(grid, rgba, rgb, 70, 40, "linear"))


@pytest.mark.parametrize("n,g", [(720, 8), (1280, 16), (37, 10), (5, 3), (3, 5), (16, 16), (1, 4)])
def test_spans_cover_every_pixel_once_with_its_cells(n, g):
    from segnet_ros.core.render import Axis

    axis = Axis.build(n, g)
    for spans, first, second in ((axis.nearest_spans, axis.nearest, axis.nearest),
                                 (axis.point_spans, axis.cell, axis.cell),
                                 (axis.linear_spans, axis.first, axis.second)):
        assert spans[0].start == 0 and spans[-1].stop == n
        assert all(a.stop == b.start for a, b in zip(spans[:-1], spans[1:], strict=True))
        for span in spans:
            assert (first[span.start:span.stop] == span.first).all()
            assert (second[span.start:span.stop] == span.second).all()
    assert ((axis.second == axis.first) | (axis.second == axis.first + 1)).all()
    assert (axis.frac[axis.first == axis.second] == 0).all()


@pytest.mark.parametrize("mode", ["point", "linear"])
@pytest.mark.parametrize("alpha", ["varying", "one"])
def test_tiles_of_a_few_rows_draw_the_same_pictures(rng, monkeypatch, mode, alpha):
    import segnet_ros.core.render as render

    grid = rng.integers(0, 21, (6, 10)).astype(np.uint8)
    rgba = table_with(rng, alpha)
    frame, rgb = frame_in(rng, "bgr8", 83, 57)
    whole = Renderer(10, 6).color_mask_and_overlay(grid, rgba, frame, encoding("bgr8"), 83, 57, mode)
    monkeypatch.setattr(render, "_TILE_BYTES", 83 * 12 * 3)  # 4-row tiles (the smallest): spans cut in many
    renderer = Renderer(10, 6)
    tiled = renderer.color_mask_and_overlay(grid, rgba, frame, encoding("bgr8"), 83, 57, mode)
    assert renderer._lru(renderer._tiles, 83, None).rows == 4
    for a, b in zip(whole, tiled, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(renderer.color_mask(grid, rgba, 83, 57, mode), whole[0])
    assert_truncated(tiled[1][:, :, ::-1], ref_overlay(grid, rgba, rgb, 83, 57, mode))


def test_overlay_of_a_strided_frame(rng):
    grid, rgba = random_case(rng, 10, 6)
    frame = rng.integers(0, 256, (37, 122, 3), dtype=np.uint8)[:, ::2]  # a view, not contiguous
    renderer = Renderer(10, 6)
    for size in ((61, 37), (40, 30)):
        np.testing.assert_array_equal(renderer.overlay(grid, rgba, frame, encoding("rgb8"), *size, "linear"),
                                      renderer.overlay(grid, rgba, frame.copy(), encoding("rgb8"), *size, "linear"))
