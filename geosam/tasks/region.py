"""Region classification: which class one region of an image (a box, polygon or mask) belongs to.

Each class is scored like image classification, ``balance * max + (1 - balance) * mean`` of its
probability map, but over the region's pixels only. By default the image is cropped around the
region (with some context) first, so a small region is seen at the model's full resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geosam.errors import InputError
from geosam.model.predictor import check_images
from geosam.tasks._probs import CLASS_TEMPLATE, ProbabilityModel, class_probabilities
from geosam.tasks.classification import CLASS_THRESHOLD, MULTI_LABEL_BALANCE, scores_from_probs

Region: TypeAlias = Sequence[float] | np.ndarray | BaseGeometry


def region_mask(region: Region, height: int, width: int) -> np.ndarray:
    """Boolean ``height x width`` mask of a region: a box ``[x1, y1, x2, y2]`` (pixel edges,
    exclusive ends), a shapely polygon in pixel coordinates (pixels whose centre lies inside), or
    a boolean mask of the image's size.

    >>> region_mask([1, 0, 3, 1], 2, 4).astype(int).tolist()
    [[0, 1, 1, 0], [0, 0, 0, 0]]
    """
    if isinstance(region, BaseGeometry):
        if region.is_empty or region.area <= 0:
            raise InputError("the region polygon is empty or has no area")
        x1, y1, x2, y2 = region.bounds
        c0, r0 = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
        c1, r1 = min(int(np.ceil(x2)), width), min(int(np.ceil(y2)), height)
        mask = np.zeros((height, width), dtype=bool)
        if c1 > c0 and r1 > r0:
            ys, xs = np.mgrid[r0:r1, c0:c1]
            mask[r0:r1, c0:c1] = shapely.contains_xy(region, xs + 0.5, ys + 0.5)
        return mask
    arr: np.ndarray = np.asarray(region)
    if arr.dtype == bool and arr.ndim == 2:
        if arr.shape != (height, width):
            raise InputError(f"the region mask is {arr.shape}, the image {(height, width)}")
        return arr
    if arr.shape != (4,):
        raise InputError(
            "a region is a box [x1, y1, x2, y2], a shapely polygon or a boolean H x W mask; "
            f"got an array of shape {arr.shape}"
        )
    x1, y1, x2, y2 = (float(v) for v in arr)
    if not (x2 > x1 and y2 > y1):
        raise InputError(f"the region box {arr.tolist()} has no area (need x2 > x1 and y2 > y1)")
    mask = np.zeros((height, width), dtype=bool)
    # Pixels whose centre lies inside the box.
    c0, c1 = max(int(np.ceil(x1 - 0.5)), 0), min(int(np.ceil(x2 - 0.5)), width)
    r0, r1 = max(int(np.ceil(y1 - 0.5)), 0), min(int(np.ceil(y2 - 0.5)), height)
    mask[r0:r1, c0:c1] = True
    return mask


def _crop_window(mask: np.ndarray, context: float) -> tuple[slice, slice]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    pad_r = int(np.ceil((r1 - r0) * context))
    pad_c = int(np.ceil((c1 - c0) * context))
    h, w = mask.shape
    return slice(max(r0 - pad_r, 0), min(r1 + pad_r, h)), slice(
        max(c0 - pad_c, 0), min(c1 + pad_c, w)
    )


def region_scores(
    model: ProbabilityModel,
    image: np.ndarray,
    region: Region,
    classes: str | Sequence[str],
    *,
    balance: float = MULTI_LABEL_BALANCE,
    context: float | None = 0.25,
    template: str = CLASS_TEMPLATE,
) -> dict[str, float]:
    """Score of every class over the pixels of ``region``.

    ``context`` crops the image to the region's bounding box grown by that fraction of its size
    on each side before prediction; ``None`` predicts on the whole image.
    """
    check_images(image, batched=False)
    mask = region_mask(region, image.shape[0], image.shape[1])
    if not mask.any():
        raise InputError("the region covers no pixel of the image")
    if context is not None:
        if context < 0:
            raise InputError(
                f"context must be >= 0 (a fraction of the region's size), got {context}"
            )
        window = _crop_window(mask, context)
        image, mask = np.ascontiguousarray(image[window]), mask[window]
    names, probs = class_probabilities(model, image, classes, template)
    return dict(zip(names, scores_from_probs(probs, balance, mask).tolist(), strict=True))


def classify_region(
    model: ProbabilityModel,
    image: np.ndarray,
    region: Region,
    classes: str | Sequence[str],
    *,
    threshold: float = CLASS_THRESHOLD,
    balance: float = MULTI_LABEL_BALANCE,
    context: float | None = 0.25,
    template: str = CLASS_TEMPLATE,
) -> str | None:
    """The class of one region: the best-scoring class, or None if no score exceeds ``threshold``.

    ``region`` is a box ``[x1, y1, x2, y2]`` in pixels, a shapely polygon in pixel coordinates or
    a boolean mask; scores as in :func:`region_scores`.

    >>> classify_region(model, image, [120, 40, 260, 180], ["farmland", "forest", "water"])  # doctest: +SKIP
    'forest'
    """
    scores = region_scores(
        model, image, region, classes, balance=balance, context=context, template=template
    )
    best = max(scores, key=scores.__getitem__)
    return best if scores[best] > threshold else None
