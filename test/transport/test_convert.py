"""Message <-> array conversion: names matched, encodings handled, bad messages named."""

import numpy as np
import pytest

from vidplan_ros.transport import convert as cv
from vidplan_ros.transport.dds_msgs import dds_type

RNG = np.random.default_rng(0)


def test_joint_state_matched_by_name():
    msg = cv.joint_state_msg(dds_type, 5, ['b', 'a', 'c'], [2.0, 1.0, 3.0], [0.2, 0.1, 0.3])
    q, dq = cv.joint_state_arrays(msg, ['a', 'b'])
    assert q.tolist() == [1.0, 2.0] and dq.tolist() == [0.1, 0.2]
    with pytest.raises(cv.MessageError, match=r"lacks joints \['z'\]"):
        cv.joint_state_arrays(msg, ['a', 'z'])
    msg.position = [1.0]
    with pytest.raises(cv.MessageError, match='3 names but 1 positions'):
        cv.joint_state_arrays(msg, ['a'])


def test_trajectory_round_trip_and_rejections():
    t = np.array([0.1, 0.2, 0.35])
    q = RNG.normal(size=(3, 2))
    msg = cv.joint_trajectory_msg(dds_type, 10**9, ['j1', 'j2'], t, q, velocities=q * 0)
    assert cv.time_to_ns(msg.header.stamp) == 10**9
    times, pos, vel = cv.joint_trajectory_arrays(msg, ['j2', 'j1'])
    np.testing.assert_allclose(times, t, atol=1e-9)
    np.testing.assert_array_equal(pos, q[:, ::-1])
    assert vel is not None and not vel.any()
    msg.points[1].positions[0] = float('nan')
    with pytest.raises(cv.MessageError, match='non-finite'):
        cv.joint_trajectory_arrays(msg, ['j1', 'j2'])
    back = cv.joint_trajectory_msg(dds_type, 0, ['j1', 'j2'], t[::-1], q)
    with pytest.raises(cv.MessageError, match='must increase'):
        cv.joint_trajectory_arrays(back, ['j1', 'j2'])


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'mono8', 'rgba8'])
def test_image_encodings_decode_to_rgb(encoding):
    rgb = RNG.integers(0, 255, size=(4, 5, 3), dtype=np.uint8)
    stored = {'rgb8': rgb, 'bgr8': rgb[..., ::-1], 'mono8': rgb[..., 0],
              'rgba8': np.concatenate([rgb, np.zeros((4, 5, 1), np.uint8)], axis=2)}[encoding]
    msg = cv.image_msg(dds_type, 0, 'cam', stored, encoding)
    expect = np.repeat(rgb[..., :1], 3, axis=2) if encoding == 'mono8' else rgb
    np.testing.assert_array_equal(cv.image_array(msg), expect)


def test_image_with_row_padding_and_float_depth():
    rgb = RNG.integers(0, 255, size=(3, 4, 3), dtype=np.uint8)
    padded = np.zeros((3, 16), np.uint8)
    padded[:, :12] = rgb.reshape(3, 12)
    msg = dds_type('sensor_msgs/msg/Image')(height=3, width=4, encoding='rgb8', step=16,
                                            data=padded.tobytes())
    np.testing.assert_array_equal(cv.image_array(msg), rgb)
    depth = RNG.random((2, 3)).astype(np.float32)
    dmsg = cv.image_msg(dds_type, 0, 'cam', depth, '32FC1')
    np.testing.assert_array_equal(cv.image_array(dmsg, want=None), depth)
    with pytest.raises(cv.MessageError, match='cannot be used as colour'):
        cv.image_array(dmsg)


def test_bad_images_are_named():
    msg = cv.image_msg(dds_type, 0, 'cam', np.zeros((4, 4, 3), np.uint8))
    msg.data = msg.data[:-1]
    with pytest.raises(cv.MessageError, match='do not hold it'):
        cv.image_array(msg)
    msg.encoding = 'yuv422'
    with pytest.raises(cv.MessageError, match="'yuv422' is not supported"):
        cv.image_array(msg)


def test_camera_info_and_clock():
    k = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])
    info = cv.camera_info_msg(dds_type, 7, 'cam', 64, 48, k)
    assert info.k == k.reshape(-1).tolist() and info.p[3] == 0.0 and info.width == 64
    assert cv.time_to_ns(cv.clock_msg(dds_type, 3_000_000_001).clock) == 3_000_000_001
    assert cv.duration_to_s(cv.duration_from_s(dds_type, 1.25)) == 1.25


@pytest.mark.parametrize('shape', [(2, 8, 8, 8), (8, 2, 8, 8, 8), (3, 5)])
def test_latent_round_trip_as_32fc1_image(shape):
    z = RNG.normal(size=shape).astype(np.float32)
    msg = cv.latent_msg(dds_type, 42, z, 'latent')
    assert msg.encoding == '32FC1' and msg.width == shape[-1]
    assert msg.height == int(np.prod(shape[:-1])) and msg.header.frame_id == 'latent'
    assert cv.time_to_ns(msg.header.stamp) == 42
    np.testing.assert_array_equal(cv.latent_array(msg, shape), z)


def test_latent_of_another_shape_encoding_or_with_nan_is_named():
    msg = cv.latent_msg(dds_type, 0, np.zeros((2, 8, 8, 8), np.float32))
    with pytest.raises(cv.MessageError, match='needs 64 x 8'):
        cv.latent_array(msg, (1, 8, 8, 8))
    nan = cv.latent_msg(dds_type, 0, np.full((2, 3), np.nan, np.float32))
    with pytest.raises(cv.MessageError, match='6 non-finite'):
        cv.latent_array(nan, (2, 3))
    rgb = cv.image_msg(dds_type, 0, 'cam', np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(cv.MessageError, match="32FC1 Image, got encoding 'rgb8'"):
        cv.latent_array(rgb, (2, 3))


def test_compressed_png_is_lossless_and_jpeg_close():
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, :16] = (200, 30, 60)                 # flat blocks: JPEG keeps them close
    rgb[:, 16:] = (20, 180, 90)
    png = cv.compressed_image_msg(dds_type, 7, 'cam', rgb, 'png')
    assert png.format == 'rgb8; png compressed bgr8' and cv.time_to_ns(png.header.stamp) == 7
    np.testing.assert_array_equal(cv.compressed_image_array(png), rgb)
    jpeg = cv.compressed_image_msg(dds_type, 7, 'cam', rgb, 'jpeg', quality=95)
    out = cv.compressed_image_array(jpeg)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() < 4      # colours are not swapped
    mono = cv.compressed_image_msg(dds_type, 0, 'cam', rgb[..., 0], 'png')
    np.testing.assert_array_equal(cv.compressed_image_array(mono),
                                  np.repeat(rgb[..., :1], 3, axis=2))


def test_corrupt_or_foreign_compressed_images_are_named():
    jpeg = cv.compressed_image_msg(dds_type, 0, 'cam', np.zeros((16, 16, 3), np.uint8))
    jpeg.data = bytes(jpeg.data)[:40]
    with pytest.raises(cv.MessageError, match='does not decode'):
        cv.compressed_image_array(jpeg)
    jpeg.data = b'not a picture at all'
    with pytest.raises(cv.MessageError, match='does not decode'):
        cv.compressed_image_array(jpeg)
    jpeg.data = b''
    with pytest.raises(cv.MessageError, match='no data'):
        cv.compressed_image_array(jpeg)
    import cv2
    ok, depth = cv2.imencode('.png', np.zeros((4, 4), np.uint16))   # 16-bit depth
    jpeg.data = depth.tobytes()
    with pytest.raises(cv.MessageError, match='cannot be used as colour'):
        cv.compressed_image_array(jpeg)
