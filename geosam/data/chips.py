"""Cutting large images into chips at the scale the network sees, with instances clipped to them.

A chip covers ``chip_px`` source pixels and is stored at ``out_size`` pixels, so imagery of known
ground sample distance is brought near a common ``target_gsd``; instances cut by the chip border
keep their visible part and record the fraction of them that is visible.

>>> windows = plan_windows(1600, 1200, chip_px=512)
>>> windows[0]
Window(x0=0, y0=0, x1=512, y1=512, split='train')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
from shapely.affinity import affine_transform
from shapely.geometry import box


@dataclass(frozen=True)
class Window:
    """A chip window in source pixels (``x1``/``y1`` exclusive) and the split it belongs to."""

    x0: int
    y0: int
    x1: int
    y1: int
    split: str = "train"

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def chip_size_for_gsd(gsd: float | None, out_size: int, target_gsd: float = 0.3, max_zoom_out: float = 2.5) -> int:
    """Source pixels per chip side so that a chip stored at ``out_size`` has about ``target_gsd``.

    Imagery coarser than the target is not upsampled; very fine imagery is reduced at most
    ``max_zoom_out`` times. Unknown gsd keeps the native resolution.

    >>> chip_size_for_gsd(0.138, 512), chip_size_for_gsd(0.5, 512), chip_size_for_gsd(None, 512)
    (1113, 512, 512)
    """
    if gsd is None or not math.isfinite(gsd) or gsd <= 0:
        return out_size
    return round(out_size * min(max(target_gsd / gsd, 1.0), max_zoom_out))


def _starts(length: int, size: int, stride: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def plan_windows(
    width: int,
    height: int,
    chip_px: int,
    *,
    overlap: float = 0.25,
    heldout_fraction: float = 0.0,
    split: str = "train",
) -> list[Window]:
    """Chip windows tiling an image, overlapping by ``overlap`` of a chip.

    With ``heldout_fraction > 0`` the last part of the image along its longer axis (right or
    bottom) is tiled separately as split ``"heldout"``, so no training chip sees it.
    """
    stride = max(1, int(chip_px * (1 - overlap)))
    regions: list[tuple[int, int, int, int, str]] = []
    if heldout_fraction > 0:
        if width >= height:
            cut = round(width * (1 - heldout_fraction))
            regions = [(0, 0, cut, height, split), (cut, 0, width, height, "heldout")]
        else:
            cut = round(height * (1 - heldout_fraction))
            regions = [(0, 0, width, cut, split), (0, cut, width, height, "heldout")]
    else:
        regions = [(0, 0, width, height, split)]
    out: list[Window] = []
    for rx0, ry0, rx1, ry1, rsplit in regions:
        rw, rh = rx1 - rx0, ry1 - ry0
        cw, ch = min(chip_px, rw), min(chip_px, rh)
        for y in _starts(rh, ch, stride):
            for x in _starts(rw, cw, stride):
                out.append(Window(rx0 + x, ry0 + y, rx0 + x + cw, ry0 + y + ch, rsplit))
    return out


def stored_size(window: Window, chip_px: int, out_size: int) -> tuple[int, int]:
    """``(width, height)`` a window is stored at (scaled by ``out_size / chip_px``, never up)."""
    scale = min(1.0, out_size / chip_px)
    return max(1, round(window.width * scale)), max(1, round(window.height * scale))


def clip_instances(
    instances: gpd.GeoDataFrame, window: Window, size: tuple[int, int]
) -> gpd.GeoDataFrame:
    """The instances inside ``window``, clipped and mapped to chip pixels of ``size`` (w, h).

    Adds ``visible``: the fraction of each instance's area inside the window.
    """
    frame = box(window.x0, window.y0, window.x1, window.y1)
    if instances.empty:
        out = instances.copy()
        out["visible"] = np.zeros(0)
        return out
    hit = instances[instances.geometry.intersects(frame)]
    clipped = hit.geometry.intersection(frame)
    area = hit.geometry.area.to_numpy()
    visible = np.where(area > 0, clipped.area.to_numpy() / np.maximum(area, 1e-9), 0.0)
    sx, sy = size[0] / window.width, size[1] / window.height
    matrix = [sx, 0.0, 0.0, sy, -window.x0 * sx, -window.y0 * sy]
    out = hit.copy()
    out["geometry"] = [affine_transform(g, matrix) for g in clipped]
    out["visible"] = np.clip(visible, 0.0, 1.0)
    keep = out.geometry.area.to_numpy() > 0
    return out[keep].reset_index(drop=True)
