import numpy as np
import pytest

from segnet_ros.backends import create_backend
from segnet_ros.core.errors import FrameError, SettingsError
from segnet_ros.core.model import ModelFiles, load_model
from segnet_ros.core.preprocess import Preprocessor
from segnet_ros.core.segnet import SegNet

from oracle import NAMES, PALETTE, block_image


@pytest.fixture
def net(oracle_dir):
    model = load_model(ModelFiles.in_folder(oracle_dir))
    return SegNet(model, create_backend("onnxruntime", model))


def test_known_grid_end_to_end(net, rng):
    grid = rng.integers(1, 8, (4, 8)).astype(np.uint8)
    rgb = block_image(grid, 256, 128)
    result = net.process(rgb, "rgb8")
    np.testing.assert_array_equal(result.grid, grid)
    np.testing.assert_array_equal(net.process(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8").grid, grid)
    assert result.grid_size == (8, 4) and result.input_size == (256, 128)
    assert result.class_mask().shape == (128, 256)
    assert result.histogram().sum() == 256 * 128


def test_wrong_channel_order_would_be_caught(net, rng):
    grid = np.array([[1, 3] * 4] * 4, np.uint8)  # red and blue swap under BGR/RGB mixups
    rgb = block_image(grid, 256, 128)
    assert net.process(rgb, "bgr8").grid.tolist() == np.where(grid == 1, 3, 1).tolist()


def test_ignore_class_setting(net):
    black = np.zeros((128, 256, 3), np.uint8)
    assert net.settings.ignore_class == "void"  # the reference's default
    assert (net.process(black).grid != 0).all()
    net.update_settings(ignore_class="")
    assert (net.process(black).grid == 0).all()  # nothing ignored: void wins
    net.update_settings(ignore_class="VOID")
    assert (net.process(black).grid != 0).all()


def test_settings_validation_changes_nothing(net):
    before = net.settings
    for bad in ({"overlay_alpha": 256}, {"overlay_alpha": -1}, {"filter_mode": "cubic"},
                {"resize": "area"}, {"overlay_alpha": 1.5}, {"overlay_alpha": True}):
        with pytest.raises(ValueError):
            net.update_settings(**bad)
    assert net.settings is before


def test_alpha_change_applies_to_next_frame(net):
    frame = np.zeros((128, 256, 3), np.uint8)
    frame[:, :, 0] = 160  # dark red: still the red class
    first = net.process(frame)
    assert (first.grid == 1).all()
    assert (first.overlay() == [int(150 / 255 * 255 + 105 / 255 * 160), 0, 0]).all()
    net.update_settings(overlay_alpha=255)
    assert (net.process(frame).overlay() == PALETTE[1]).all()
    assert (first.overlay()[:, :, 0] == 215).all()  # the older result keeps its own alpha


def test_class_names_and_bad_frame(net):
    assert net.class_names == tuple(NAMES) and net.num_classes == 8 and net.grid_size == (8, 4)
    with pytest.raises(FrameError):
        net.process(np.zeros((10, 10), np.uint16))


def test_results_of_an_older_frame_stay_correct(net):
    a = net.process(block_image(np.full((4, 8), 2, np.uint8), 256, 128))
    b = net.process(block_image(np.full((4, 8), 3, np.uint8), 256, 128))
    assert (b.color_mask() == PALETTE[3]).all()
    assert (a.color_mask() == PALETTE[2]).all()
    assert (b.color_mask() == PALETTE[3]).all()


def test_confidence_is_the_softmax_of_the_networks_logits(net, rng):
    frame = block_image(rng.integers(1, 8, (4, 8)).astype(np.uint8), 256, 128)
    result = net.process(frame)
    tensor = Preprocessor(net.model.input_width, net.model.input_height)(frame, "rgb8")
    logits = net.backend.run(tensor)[0].astype(np.float64)
    probabilities = np.exp(logits - logits.max(axis=0)) / np.exp(logits - logits.max(axis=0)).sum(axis=0)
    chosen = np.take_along_axis(probabilities, result.grid[None].astype(np.intp), axis=0)[0]
    confidence = result.confidence((16, 8))
    assert confidence.shape == (8, 16) and confidence.dtype == np.uint8
    np.testing.assert_allclose(confidence[::2, ::2], np.floor(chosen * 255), atol=1)
    assert (confidence[::2, ::2] == confidence[1::2, 1::2]).all()  # nearest: each cell covers 2x2 pixels


def test_a_misspelt_ignore_class_is_refused_and_changes_nothing(net):
    with pytest.raises(SettingsError, match="ignore_class 'viod' names no class of .*; its classes: void, red"):
        net.update_settings(ignore_class="viod")
    assert net.settings.ignore_class == "void"
    for name in ("red", "", "none", "NONE"):  # a class, or nothing ignored
        assert net.update_settings(ignore_class=name).ignore_class == name


@pytest.mark.parametrize("max_batch", [1, 2, 3])
def test_a_batch_of_frames_of_different_sizes_gives_each_frame_its_own_result(oracle_dir, rng, max_batch):
    """Cameras of different resolutions and encodings in one call: result i is frame i's, exactly as
    alone, whether the backend takes them in one call, in chunks or one by one."""
    from segnet_ros.backends import BackendOptions

    model = load_model(ModelFiles.in_folder(oracle_dir))
    net = SegNet(model, create_backend("onnxruntime", model, BackendOptions(max_batch=max_batch)))
    grids = [rng.integers(1, 8, (4, 8)).astype(np.uint8) for _ in range(3)]
    frames = [(block_image(grids[0], 256, 128), "rgb8"),
              (np.ascontiguousarray(block_image(grids[1], 512, 256)[:, :, ::-1]), "bgr8"),
              (block_image(grids[2], 320, 160), "rgb8")]
    results = net.process_batch(frames)
    assert net.timings.frames == 3 and results[0].timings is results[2].timings
    assert [r.input_size for r in results] == [(256, 128), (512, 256), (320, 160)]
    for result, grid, (image, encoding) in zip(results, grids, frames, strict=True):
        np.testing.assert_array_equal(result.grid, grid)
        np.testing.assert_array_equal(result.class_mask(), net.process(image, encoding).class_mask())
    assert net.process_batch([]) == []
