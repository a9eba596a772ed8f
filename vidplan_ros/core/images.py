"""Camera pixels through OpenCV, as ROS's cv_bridge does: one place for every image operation.

The dataset builder, the perception node, `vidplan replay` and the sim's recorder must turn
camera frames into model input identically, so they all call these functions:

- `to_rgb8(pixels, encoding)`: a sensor_msgs/Image encoding (rgb8, bgr8, rgba8, bgra8, mono8,
  mono16) to (H, W, 3) uint8 RGB (`cv2.cvtColor`, as cv_bridge's `cvtColor` for rgb8 output);
- `decode_compressed(data)` / `encode_compressed(rgb, fmt)`: JPEG / PNG bytes of a
  sensor_msgs/CompressedImage (`cv2.imdecode` / `cv2.imencode`, as image_transport's
  compressed plugin; OpenCV's own pictures are BGR, the arrays here are RGB);
- `square_resize(pixels, size)`: centre crop to a square, then `cv2.resize` with `INTER_AREA`
  when shrinking (area averaging, no aliasing) and `INTER_LINEAR` when enlarging.

ROS-free: numpy and opencv-python-headless only.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ['COLOUR_ENCODINGS', 'ImageError', 'decode_compressed', 'encode_compressed',
           'square_resize', 'to_rgb8']

# Encodings that make a colour picture, with the cvtColor code to RGB (None: already RGB).
COLOUR_ENCODINGS: dict[str, int | None] = {
    'rgb8': None, 'bgr8': cv2.COLOR_BGR2RGB, 'rgba8': cv2.COLOR_RGBA2RGB,
    'bgra8': cv2.COLOR_BGRA2RGB, 'mono8': cv2.COLOR_GRAY2RGB, 'mono16': cv2.COLOR_GRAY2RGB,
}
_JPEG, _PNG = b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n'


class ImageError(ValueError):
    """Pixels or picture bytes that cannot be used as a colour camera frame."""


def to_rgb8(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, C) or (H, W) pixels stored as `encoding` -> (H, W, 3) uint8 RGB.

    mono16 is scaled to 8 bits (value / 257), as cv_bridge does; depth encodings (16UC1,
    32FC1) are refused: they are not colour.
    """
    if encoding not in COLOUR_ENCODINGS:
        raise ImageError(f'image encoding {encoding!r} cannot be used as colour; publish one '
                         f'of {sorted(COLOUR_ENCODINGS)}')
    arr = np.asarray(pixels)
    if encoding == 'mono16':
        arr = np.rint(arr.astype(np.float32) / 257.0).astype(np.uint8)
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    code = COLOUR_ENCODINGS[encoding]
    return np.ascontiguousarray(arr if code is None else cv2.cvtColor(arr, code))


def decode_compressed(data: bytes) -> np.ndarray:
    """JPEG or PNG bytes -> (H, W, 3) uint8 RGB. The picture's own header decides the format.

    Raises `ImageError` for empty, truncated or foreign data and for pictures that are not
    colour or mono (16-bit depth PNGs).
    """
    if not data:
        raise ImageError('the picture has no data')
    kind = 'JPEG' if data.startswith(_JPEG) else 'PNG' if data.startswith(_PNG) else None
    if kind is None:
        raise ImageError(f'the picture ({len(data)} bytes) does not decode: it is neither JPEG '
                         'nor PNG; publish through image_transport compressed (jpeg or png)')
    # libjpeg fills a cut-off JPEG with grey and only warns: refuse it before decoding.
    complete = data.rstrip(b'\0').endswith(b'\xff\xd9') if kind == 'JPEG' \
        else b'IEND' in data[-16:]
    if not complete:
        raise ImageError(f'the {kind} picture ({len(data)} bytes) does not decode: it is '
                         'truncated (no end marker)')
    pic = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pic is None or pic.size == 0:
        raise ImageError(f'the {kind} picture ({len(data)} bytes) does not decode')
    if pic.dtype != np.uint8:
        raise ImageError(f'the {kind} picture is {pic.dtype} (depth?), which cannot be used as '
                         'colour; publish rgb8, bgr8 or mono8 pictures')
    if pic.ndim == 2:
        return to_rgb8(pic, 'mono8')
    return to_rgb8(pic, 'bgra8' if pic.shape[2] == 4 else 'bgr8')


def encode_compressed(pixels: np.ndarray, fmt: str = 'jpeg', quality: int = 90) -> bytes:
    """(H, W, 3) RGB or (H, W) mono uint8 -> JPEG (`quality` 1-100) or PNG bytes."""
    if fmt not in ('jpeg', 'png'):
        raise ValueError(f'compressed format {fmt!r}: use jpeg or png')
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == 'jpeg' else []
    ok, buf = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', arr, params)
    if not ok:
        raise ImageError(f'OpenCV could not encode a {arr.shape} picture as {fmt}')
    return buf.tobytes()


def square_resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) uint8 -> (size, size, C) uint8: centre crop to min(H, W) square, then resize.

    Exact when the frame already has the model's size. Raises ValueError for a frame that is
    not (H, W, C) or a size < 1.
    """
    if pixels.ndim != 3 or size < 1:
        raise ValueError(f'square_resize wants (H, W, C) pixels and size >= 1, got '
                         f'{pixels.shape} and {size}')
    h, w = pixels.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(pixels[top:top + side, left:left + side])
    if side == size:
        return square
    interp = cv2.INTER_AREA if size < side else cv2.INTER_LINEAR
    out = cv2.resize(square, (size, size), interpolation=interp)
    return out.reshape(size, size, square.shape[2])
