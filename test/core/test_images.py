"""core.images: the one OpenCV path for camera pixels (dataset builder, perception, replay)."""

import cv2
import numpy as np
import pytest

from vidplan_ros.core.images import (ImageError, decode_compressed, encode_compressed,
                                     square_resize, to_rgb8)


def test_same_size_is_exact_and_crop_is_centred():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(square_resize(img, 64), img)
    wide = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(square_resize(wide, 64), wide[:, 8:72])
    tall = rng.integers(0, 256, (70, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(square_resize(tall, 64), tall[3:67])


def test_downscale_averages_areas_as_inter_area():
    """Integer factors give exact block means (INTER_AREA); a constant image stays constant."""
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, (16, 16, 3))
    img = np.kron(blocks, np.ones((4, 4, 1))).astype(np.uint8)
    np.testing.assert_array_equal(square_resize(img, 16), blocks)
    # a one-pixel checkerboard averages to grey instead of aliasing to black or white
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = square_resize(np.repeat(checker[..., None], 3, axis=2), 16)
    assert np.abs(out.astype(int) - 128).max() <= 1
    flat = np.full((480, 640, 3), 77, np.uint8)
    for size in (64, 50, 700):
        out = square_resize(flat, size)
        assert out.shape == (size, size, 3) and (out == 77).all()
    one = square_resize(np.full((10, 12, 1), 9, np.uint8), 4)
    assert one.shape == (4, 4, 1) and (one == 9).all()


def test_bad_resize_input_is_refused():
    with pytest.raises(ValueError, match='H, W, C'):
        square_resize(np.zeros((8, 8), np.uint8), 4)
    with pytest.raises(ValueError, match='size >= 1'):
        square_resize(np.zeros((8, 8, 3), np.uint8), 0)


def test_encodings_convert_to_rgb():
    rgb = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb8(rgb, 'rgb8'), rgb)
    np.testing.assert_array_equal(to_rgb8(rgb[..., ::-1], 'bgr8'), rgb)
    alpha = np.full((5, 7, 1), 255, np.uint8)
    np.testing.assert_array_equal(to_rgb8(np.concatenate([rgb, alpha], 2), 'rgba8'), rgb)
    np.testing.assert_array_equal(to_rgb8(np.concatenate([rgb[..., ::-1], alpha], 2),
                                          'bgra8'), rgb)
    mono = rgb[..., 0]
    np.testing.assert_array_equal(to_rgb8(mono[..., None], 'mono8'),
                                  np.repeat(mono[..., None], 3, 2))
    np.testing.assert_array_equal(to_rgb8(mono.astype(np.uint16) * 257, 'mono16'),
                                  np.repeat(mono[..., None], 3, 2))
    for depth in ('16UC1', '32FC1', 'yuv422'):
        with pytest.raises(ImageError, match='cannot be used as colour'):
            to_rgb8(mono, depth)


def test_png_round_trips_and_jpeg_keeps_colours():
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, :16] = (200, 30, 60)
    rgb[:, 16:] = (20, 180, 90)
    np.testing.assert_array_equal(decode_compressed(encode_compressed(rgb, 'png')), rgb)
    out = decode_compressed(encode_compressed(rgb, 'jpeg', 95))
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() < 4
    # OpenCV's own BGR picture of the same colours decodes to the same RGB
    ok, bgr_png = cv2.imencode('.png', rgb[..., ::-1].copy())
    np.testing.assert_array_equal(decode_compressed(bgr_png.tobytes()), rgb)
    with pytest.raises(ValueError, match='jpeg or png'):
        encode_compressed(rgb, 'gif')


def test_broken_pictures_are_named():
    jpeg = encode_compressed(np.zeros((16, 16, 3), np.uint8), 'jpeg')
    with pytest.raises(ImageError, match='truncated'):
        decode_compressed(jpeg[: len(jpeg) // 2])
    with pytest.raises(ImageError, match='neither JPEG nor PNG'):
        decode_compressed(b'GIF89a not ours')
    with pytest.raises(ImageError, match='no data'):
        decode_compressed(b'')
    ok, depth = cv2.imencode('.png', np.zeros((4, 4), np.uint16))
    with pytest.raises(ImageError, match='cannot be used as colour'):
        decode_compressed(depth.tobytes())
    corrupt = bytearray(jpeg)
    corrupt[3:-2] = bytes(len(corrupt) - 5)       # header marker kept, body zeroed
    with pytest.raises(ImageError, match='does not decode'):
        decode_compressed(bytes(corrupt))
