"""Camera frames to model input: centre crop to a square, then resize. ROS-free, numpy.

The dataset builder and the perception node must prepare pixels identically, so this is the one
place that does it. `square_resize` is exact when the frame already has the model's size.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ['resize_weights', 'square_resize']


@lru_cache(maxsize=32)
def resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 resampling rows, each summing to 1; identity when equal.

    Downscaling averages areas (each output pixel is the overlap-weighted mean of the input
    pixels it covers, as OpenCV's INTER_AREA: no aliasing, exact block means for integer
    factors); upscaling interpolates linearly between pixel centres.
    """
    if n_out <= n_in:
        edges = np.arange(n_out + 1) * (n_in / n_out)           # output spans, input pixels
        lo, hi = edges[:-1, None], edges[1:, None]
        px = np.arange(n_in)[None, :]
        w = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None)
    else:
        centres = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        w = np.clip(1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]), 0.0, None)
    w = (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
    w.setflags(write=False)
    return w


@lru_cache(maxsize=32)
def _band(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """`resize_weights` as (indices (n_out, K), weights (n_out, K, 1)): each row's non-zero
    band, so resizing gathers K input lines per output line instead of a dense matmul."""
    w = resize_weights(n_in, n_out)
    nz = w > 0
    first = nz.argmax(axis=1)
    k = int((n_in - nz[:, ::-1].argmax(axis=1) - first).max())
    idx = np.minimum(first[:, None] + np.arange(k)[None, :], n_in - 1)
    band = np.take_along_axis(w, idx, axis=1)
    band[first[:, None] + np.arange(k)[None, :] > n_in - 1] = 0.0  # clamped duplicates
    return idx, band[:, :, None]


def _resize_axis0(x: np.ndarray, n_out: int) -> np.ndarray:
    """Resample axis 0 of float32 `x` (N, M) to `n_out` rows."""
    idx, band = _band(x.shape[0], n_out)
    return (x[idx] * band).sum(axis=1)


def square_resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) uint8 -> (size, size, C) uint8: centre crop to min(H, W) square, then resize.

    Raises ValueError for a frame that is not (H, W, C) or a size < 1.
    """
    if pixels.ndim != 3 or size < 1:
        raise ValueError(f'square_resize wants (H, W, C) pixels and size >= 1, got '
                         f'{pixels.shape} and {size}')
    h, w = pixels.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = pixels[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    c = square.shape[2]
    rows = _resize_axis0(square.reshape(side, side * c).astype(np.float32), size)
    cols = _resize_axis0(rows.reshape(size, side, c).transpose(1, 0, 2).reshape(side, -1), size)
    out = cols.reshape(size, size, c).transpose(1, 0, 2)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
