"""Frame preprocessing shared by the dataset builder and perception: crop to square, resize."""

import numpy as np
import pytest

from vidplan_ros.data.preprocess import resize_weights, square_resize


def test_same_size_is_exact_and_crop_is_centred():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(square_resize(img, 64), img)
    wide = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(square_resize(wide, 64), wide[:, 8:72])
    tall = rng.integers(0, 256, (70, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(square_resize(tall, 64), tall[3:67])


def test_downscale_averages_areas():
    """Integer factors give exact block means; a constant image stays constant at any size."""
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, (16, 16, 3))
    img = np.kron(blocks, np.ones((4, 4, 1))).astype(np.uint8)
    np.testing.assert_array_equal(square_resize(img, 16), blocks)
    flat = np.full((480, 640, 3), 77, np.uint8)
    for size in (64, 50, 700):
        out = square_resize(flat, size)
        assert out.shape == (size, size, 3) and (out == 77).all()


@pytest.mark.parametrize('n_in,n_out', [(480, 64), (97, 13), (64, 64), (30, 64), (5, 3)])
def test_weights_match_a_dense_resample(n_in, n_out):
    """The banded implementation equals the dense weight matrix applied on both axes."""
    w = resize_weights(n_in, n_out)
    assert w.shape == (n_out, n_in) and np.allclose(w.sum(axis=1), 1.0) and (w >= 0).all()
    img = np.random.default_rng(2).integers(0, 256, (n_in, n_in + 6, 3), dtype=np.uint8)
    sq = img[:, 3:3 + n_in].astype(np.float32)
    dense = np.clip(np.rint(np.einsum('oh,hwc,pw->opc', w, sq, w, optimize=True)), 0, 255)
    assert np.abs(square_resize(img, n_out).astype(int) - dense.astype(int)).max() <= 1


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match='H, W, C'):
        square_resize(np.zeros((8, 8), np.uint8), 4)
