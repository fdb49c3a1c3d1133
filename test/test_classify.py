import numpy as np

from segnet_ros.core.classify import classify


def test_argmax_lowest_index_on_ties():
    logits = np.zeros((1, 4, 1, 3), np.float32)
    logits[0, 2, 0, 1] = 1.0
    logits[0, [1, 3], 0, 2] = 5.0
    grid, _ = classify(logits)
    assert grid.tolist() == [[0, 2, 1]] and grid.dtype == np.uint8


def test_ignore_class_is_never_chosen():
    logits = np.array([[[9.0]], [[1.0]], [[2.0]]], np.float32)
    assert classify(logits)[0].tolist() == [[0]]
    grid, confidence = classify(logits, ignore_id=0)
    assert grid.tolist() == [[2]]
    # confidence is the softmax probability of the chosen class over all classes
    expected = np.exp(2.0) / np.exp([9.0, 1.0, 2.0]).sum()
    np.testing.assert_allclose(confidence, [[expected]], rtol=1e-5)


def test_confidence_is_softmax_maximum(rng):
    logits = rng.normal(size=(1, 5, 3, 4)).astype(np.float32) * 4
    grid, confidence = classify(logits)
    probs = np.exp(logits[0]) / np.exp(logits[0]).sum(axis=0)
    np.testing.assert_array_equal(grid, probs.argmax(axis=0))
    np.testing.assert_allclose(confidence, probs.max(axis=0), rtol=1e-5)


def test_raw_logits_not_softmaxed_before_argmax():
    logits = np.array([[[1000.0]], [[999.0]]], np.float32)  # softmax would overflow naive code
    grid, confidence = classify(logits)
    assert grid.tolist() == [[0]] and np.isfinite(confidence).all()
