"""Windows over a scene and the weights that blend their predictions.

A scene axis of ``size`` pixels is covered by windows of ``tile`` pixels starting every
``stride = tile - overlap`` pixels from 0 (a global grid: it depends on the scene only, never on dask
chunks, which is what makes results independent of chunking). The last window may run past the
scene; that part is the scene mirrored at its edge (black padding would be read as a scene of its
own), and it is cropped away.

Blending: each window's probabilities are weighted by a separable profile ``w(y) * w(x)`` that is
1 in the window's middle and ramps down over the ``overlap`` pixels at each edge with a raised-cosine
(Hann) shape, then divided by the sum of the weights of all windows covering the pixel. CNN
predictions are least reliable near window edges (padding, missing context), so the cosine ramp gives
those pixels the least say, and its smooth shape leaves no visible seam. The ramp never reaches 0
(it is sampled at pixel centres), so at the scene edges, where only one window covers a pixel, that
window's prediction is used unchanged. With ``overlap=0`` every pixel is covered by exactly one
window and the weights are all 1.

>>> grid = WindowGrid(size=900, tile=512, overlap=64)
>>> grid.stride, grid.count, grid.starts
(448, 2, (0, 448))
>>> blend_profile(8, 4).round(2).tolist()
[0.04, 0.31, 0.69, 0.96, 0.96, 0.69, 0.31, 0.04]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from geosam.errors import InputError

__all__ = ["DEFAULT_CHUNK", "MAX_STRETCH", "MIN_TILE", "Blend", "WindowGrid", "blend_profile", "default_overlap", "is_elongated"]

Blend = Literal["cosine", "linear"]


#: Aspect ratio above which an image is seen in square windows of its short side (evaluation,
#: training views) instead of stretched whole to the network's square input.
MAX_STRETCH = 1.25
#: The smallest window, in scene or image pixels, that segment and evaluate accept.
MIN_TILE = 16
#: Spatial dask chunk side (pixels) wherever none is given: STAC loads, numpy input to segment,
#: vectorizing a numpy result, and ``geosam segment --chunks``. 2048 x 2048 holds 16 windows of 512.
DEFAULT_CHUNK = 2048


def is_elongated(height: int, width: int) -> bool:
    """Whether stretching a ``height x width`` image to a square would distort it noticeably.

    >>> is_elongated(360, 640), is_elongated(500, 512)
    (True, False)
    """
    return max(height, width) > MAX_STRETCH * min(height, width)


def default_overlap(tile: int) -> int:
    """The overlap used when none is given: an eighth of the window (64 px for 512 px windows)."""
    return tile // 8


@lru_cache(maxsize=32)
def _profile(tile: int, overlap: int, blend: Blend) -> np.ndarray:
    weights = np.ones(tile, dtype=np.float64)
    if overlap > 0:
        # Sampled at pixel centres so no weight is 0 (a lone window at a scene edge still counts).
        ramp = (np.arange(overlap) + 0.5) / overlap
        if blend == "cosine":
            ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)
        elif blend != "linear":
            raise InputError(f"blend must be 'cosine' or 'linear', got {blend!r}")
        n = min(overlap, tile // 2)
        weights[:n] = np.minimum(weights[:n], ramp[:n])
        weights[tile - n :] = np.minimum(weights[tile - n :], ramp[:n][::-1])
    weights.setflags(write=False)
    return weights


def blend_profile(tile: int, overlap: int, blend: Blend = "cosine") -> np.ndarray:
    """The 1-D weight of each pixel of a window (read-only float64 array of length ``tile``)."""
    return _profile(tile, overlap, blend)


@dataclass(frozen=True)
class WindowGrid:
    """Windows of ``tile`` pixels every ``tile - overlap`` pixels along one scene axis of ``size`` pixels."""

    size: int
    tile: int
    overlap: int
    blend: Blend = "cosine"

    def __post_init__(self) -> None:
        if self.tile < 1:
            raise InputError(f"tile must be a positive number of pixels, got {self.tile}")
        if not 0 <= self.overlap < self.tile:
            raise InputError(
                f"overlap must be at least 0 and smaller than the window ({self.tile} px), got {self.overlap}"
            )
        if self.size < 1:
            raise InputError(f"the scene has no pixels along an axis (size {self.size})")

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @property
    def count(self) -> int:
        """Number of windows: enough to cover the scene (at least one, even for a smaller scene)."""
        return max(1, math.ceil((self.size - self.overlap) / self.stride))

    @property
    def starts(self) -> tuple[int, ...]:
        return tuple(i * self.stride for i in range(self.count))

    @property
    def padded_size(self) -> int:
        """End of the last window: the scene is extended with its mirror image up to here."""
        return (self.count - 1) * self.stride + self.tile

    def profile(self) -> np.ndarray:
        return blend_profile(self.tile, self.overlap, self.blend)

    def coverage(self, start: int, stop: int) -> np.ndarray:
        """Sum of the weights of all windows covering each pixel in ``[start, stop)`` (float64).

        Pixels past the last window (only possible beyond the scene) get 0.
        """
        out = np.zeros(stop - start, dtype=np.float64)
        weights = self.profile()
        first = max(0, (start - self.tile) // self.stride)
        for i in range(first, self.count):
            w0 = i * self.stride
            if w0 >= stop:
                break
            lo, hi = max(w0, start), min(w0 + self.tile, stop)
            if lo < hi:
                out[lo - start : hi - start] += weights[lo - w0 : hi - w0]
        return out
