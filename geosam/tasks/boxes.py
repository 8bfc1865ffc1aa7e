"""Mask to boxes (M2B): objects as boxes from a probability map, as RemoteSAM derives detection.

The foreground (probability above a threshold) is split into 8-connected components; each component
becomes one box whose confidence is the mean probability inside it. Components under a confidence
floor are dropped, then boxes lying inside another box, then overlapping boxes by non-maximum
suppression. Everything here is numpy, scipy.ndimage and shapely.

Two optional steps go beyond the paper: a semantic mask paints a row of parked aircraft or moored
boats as one blob, and one box for ten objects is ten misses. ``split`` divides such a component:

* ``split="shape"``: at its necks. The distance of each mask pixel to the background is smoothed
  (:data:`NECK_SMOOTH`) and every maximum that stands at least :data:`NECK_DEPTH` pixels above the
  saddle to its neighbour seeds one object, grown down the distance map (a watershed). Two aircraft
  whose wings overlap, or two hulls touching at their bows, come apart; two boxes side by side with
  no neck between them do not. It needs nothing from the network but the mask.
* ``split=P`` (a probability): at its cores, where the network shows a dip of confidence between
  objects: a component holding several cores (probability above ``P``) is divided between them, each
  pixel to its nearest core. It helps rows of small objects and breaks large irregular ones (a
  harbour falls into pieces).

Both are off by default; docs/model-card.md has what each does to AP50 and counting.

Box layouts (pixel coordinates, origin at the top-left corner of the top-left pixel):

* axis-aligned: ``[x1, y1, x2, y2, score]`` with exclusive ends, so a one-pixel object at column 3,
  row 5 is ``[3, 5, 4, 6, score]`` (as OpenCV's connected-component statistics give it);
* oriented: ``[cx, cy, w, h, angle, score]``: the centre, the side lengths and the rotation in
  degrees in ``[0, 90)``, counter-clockwise in image coordinates (x right, y down) from the x axis
  to the side of length ``w``. :func:`oriented_corners` turns them into 4 corner points, the
  layout DOTA labels use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import shapely
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from geosam.errors import InputError

#: 8-connectivity, as the official code's ``cv2.connectedComponentsWithStats(..., connectivity=8)``.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)

#: Boxes whose mean probability is under this are dropped (the official value).
MIN_SCORE = 0.01
#: Non-maximum suppression overlap (the official value).
NMS_IOU = 0.5

#: ``split="shape"``: how many pixels narrower than both objects a neck must be to part them (the
#: dynamic of the distance map's maxima). Smaller depths split the stride-4 steps of the network's
#: mask outline; chosen on ships_ge/valid and hrplanes/valid (docs/decisions/0005-splitting-touching-objects.md).
NECK_DEPTH = 3.0
#: ``split="shape"``: the Gaussian (sigma, pixels) that smooths the distance map first.
NECK_SMOOTH = 2.0

#: How touching objects are told apart: None (connected components), ``"shape"`` (at the mask's
#: necks) or a probability ``P`` (at the network's cores above ``P``); see the module docstring.
Split = float | Literal["shape"] | None


@dataclass(frozen=True)
class Components:
    """Connected components of a binary mask.

    ``labels`` is the ``H x W`` int32 component image (0 = background, ``i + 1`` = component ``i``),
    ``slices`` the bounding slices of each component, ``areas`` their pixel counts and ``scores``
    the mean probability inside each.
    """

    labels: np.ndarray
    slices: list[tuple[slice, slice]]
    areas: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.slices)

    def boxes(self) -> np.ndarray:
        """Axis-aligned ``N x 5`` boxes ``[x1, y1, x2, y2, score]`` (exclusive ends)."""
        out = np.empty((len(self), 5), dtype=np.float64)
        for i, (rows, cols) in enumerate(self.slices):
            out[i, :4] = (cols.start, rows.start, cols.stop, rows.stop)
        out[:, 4] = self.scores
        return out

    def oriented_boxes(self) -> np.ndarray:
        """Minimum-area rectangles ``N x 6`` ``[cx, cy, w, h, angle, score]`` around each component."""
        out = np.empty((len(self), 6), dtype=np.float64)
        for i, sl in enumerate(self.slices):
            out[i, :5] = _min_area_rect(self.labels[sl] == i + 1, sl[1].start, sl[0].start)
        out[:, 5] = self.scores
        return out


def check_probability_map(prob: np.ndarray, name: str = "prob") -> np.ndarray:
    """Validate an ``H x W`` probability (or boolean) map and return it as a float array."""
    if not isinstance(prob, np.ndarray):
        raise InputError(f"{name} must be a numpy array (H x W), got {type(prob).__name__}")
    if prob.ndim != 2:
        raise InputError(f"{name} must be a 2-D H x W map, got shape {prob.shape}")
    if prob.dtype == bool:
        return prob.astype(np.float32)
    if not np.issubdtype(prob.dtype, np.number):
        raise InputError(f"{name} must hold numbers, got dtype {prob.dtype}")
    return prob


def components(prob: np.ndarray, threshold: float = 0.5, *, split: Split = None) -> Components:
    """8-connected components of ``prob > threshold`` with their areas and mean probabilities.

    ``split`` divides components that hold several objects: ``"shape"`` at their necks, a
    probability ``P`` between their cores above ``P`` (see the module docstring).

    >>> c = components(np.array([[0.9, 0, 0], [0, 0, 0.7]]))
    >>> c.boxes().tolist()
    [[0.0, 0.0, 1.0, 1.0, 0.9], [2.0, 1.0, 3.0, 2.0, 0.7]]
    >>> len(components(np.array([[0.95, 0.6, 0.95]]), split=0.9))
    2
    >>> yy, xx = np.mgrid[:41, :71]  # a dumbbell: two discs joined by a thin bar
    >>> bell = (np.hypot(yy - 20, xx - 15) < 14) | (np.hypot(yy - 20, xx - 55) < 14)
    >>> bell |= (abs(yy - 20) <= 2) & (xx > 15) & (xx < 55)
    >>> len(components(bell.astype(float))), len(components(bell.astype(float), split="shape"))
    (1, 2)
    """
    prob = check_probability_map(prob)
    check_split(split, threshold)
    labels, n = ndimage.label(prob > threshold, structure=EIGHT_CONNECTED)
    if split == "shape" and n:
        labels, n = _split_at_necks(labels, n)
    elif split is not None and n:
        labels, n = _split_at_cores(prob, labels, n, float(split))
    labels = labels.astype(np.int32, copy=False)
    if n == 0:
        empty = np.zeros(0, dtype=np.float64)
        return Components(labels, [], empty.astype(np.int64), empty)
    index = np.arange(1, n + 1)
    slices = [s for s in ndimage.find_objects(labels) if s is not None]
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.int64)
    scores = np.asarray(ndimage.mean(prob, labels, index), dtype=np.float64)
    return Components(labels, slices, areas, scores)


def check_split(split: Split, threshold: float) -> None:
    """Refuse a split that is neither ``"shape"`` nor a core probability in ``[threshold, 1)``."""
    if split is None or split == "shape":
        return
    if not isinstance(split, int | float) or not threshold <= split < 1:
        raise InputError(
            f"split must be 'shape' or a core probability in [threshold, 1), got {split!r} for threshold {threshold}"
        )


def _crowded(labels: np.ndarray, seeds: np.ndarray, n: int, n_seeds: int) -> np.ndarray:
    """The components (of ``n`` in ``labels``) that hold two or more of the ``n_seeds`` seed regions."""
    if n_seeds < 2:
        return np.zeros(0, dtype=np.int64)
    home = np.asarray(ndimage.maximum(labels, seeds, np.arange(1, n_seeds + 1)), dtype=np.int64)
    return np.flatnonzero(np.bincount(home, minlength=n + 1) > 1)


def _renumber(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """``labels`` with its values made consecutive (0 stays background)."""
    used, inverse = np.unique(labels, return_inverse=True)
    relabelled = inverse.reshape(labels.shape).astype(np.int32) + int(used[0] != 0)
    return relabelled, int(np.count_nonzero(used))


def _split_at_cores(prob: np.ndarray, labels: np.ndarray, n: int, split: float) -> tuple[np.ndarray, int]:
    cores, n_cores = ndimage.label(prob > split, structure=EIGHT_CONNECTED)  # split >= threshold
    crowded = _crowded(labels, cores, n, n_cores)
    if not len(crowded):
        return labels, n
    labels = labels.copy()
    slices = ndimage.find_objects(labels)
    for c in crowded:
        # each pixel of the component goes to its nearest core (in the component)
        sl = slices[c - 1]
        inside = labels[sl] == c
        local = np.where(inside, cores[sl], 0)
        _, (rows, cols) = ndimage.distance_transform_edt(local == 0, return_indices=True)
        nearest = local[rows, cols]
        labels[sl][inside] = nearest[inside] + n
    return _renumber(labels)


def split_at_necks(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The objects of a boolean mask, touching ones divided at their necks (``split="shape"``):
    an ``H x W`` int32 label image (0 = background) and the number of objects.

    >>> labels, n = split_at_necks(np.ones((5, 5), dtype=bool))
    >>> n, int(labels.max())
    (1, 1)
    """
    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=EIGHT_CONNECTED)
    labels, n = _split_at_necks(labels, n) if n else (labels, n)
    return labels.astype(np.int32, copy=False), n


def _split_at_necks(labels: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    mask = labels > 0
    distance = ndimage.gaussian_filter(ndimage.distance_transform_edt(mask), NECK_SMOOTH)
    # A component too thin for any maximum of NECK_DEPTH has no peak: it is not crowded, so it stays whole.
    peaks, n_peaks = ndimage.label(h_maxima(distance, NECK_DEPTH).astype(bool) & mask, structure=EIGHT_CONNECTED)
    crowded = _crowded(labels, peaks, n, n_peaks)
    if not len(crowded):
        return labels, n
    region = np.isin(labels, crowded)
    parts = watershed(-distance, np.where(region, peaks, 0), mask=region, connectivity=2)
    labels = np.where(region, parts + n, labels)
    return _renumber(labels)


def mask_to_boxes(
    prob: np.ndarray,
    threshold: float = 0.5,
    *,
    oriented: bool = False,
    min_score: float = MIN_SCORE,
    remove_nested: bool = True,
    nms_iou: float | None = NMS_IOU,
    split: Split = None,
) -> np.ndarray:
    """Boxes of the objects in a probability map, best first (the paper's M2B; ``split`` also
    divides components that hold several objects: see the module docstring).

    Returns ``N x 5`` ``[x1, y1, x2, y2, score]``, or with ``oriented=True`` ``N x 6``
    ``[cx, cy, w, h, angle_deg, score]`` (see the module docstring for the conventions).
    ``nms_iou=None`` skips non-maximum suppression.

    >>> prob = np.zeros((8, 8)); prob[1:3, 1:4] = 0.9
    >>> mask_to_boxes(prob).tolist()
    [[1.0, 1.0, 4.0, 3.0, 0.9]]
    """
    comps = components(prob, threshold, split=split)
    boxes = comps.oriented_boxes() if oriented else comps.boxes()
    return filter_boxes(boxes, min_score=min_score, remove_nested=remove_nested, nms_iou=nms_iou)


def filter_boxes(
    boxes: np.ndarray,
    *,
    min_score: float = MIN_SCORE,
    remove_nested: bool = True,
    nms_iou: float | None = NMS_IOU,
) -> np.ndarray:
    """Drop low-score boxes, boxes inside other boxes, then apply NMS; sort best first.

    ``boxes`` is ``N x 5`` (axis-aligned) or ``N x 6`` (oriented), score last.
    """
    boxes = check_boxes(boxes)
    boxes = boxes[boxes[:, -1] >= min_score]
    if remove_nested and len(boxes) > 1:
        boxes = boxes[~nested_mask(boxes)]
    boxes = boxes[np.argsort(-boxes[:, -1], kind="stable")]
    if nms_iou is not None and len(boxes) > 1:
        boxes = boxes[nms(boxes, nms_iou)]
    return boxes


def check_boxes(boxes: np.ndarray) -> np.ndarray:
    """Validate an ``N x 5`` or ``N x 6`` box array (score last) and return it as float64."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 1 and boxes.size == 0:
        boxes = boxes.reshape(0, 5)
    if boxes.ndim != 2 or boxes.shape[1] not in (5, 6):
        raise InputError(
            "boxes must be N x 5 [x1, y1, x2, y2, score] or N x 6 [cx, cy, w, h, angle, score], "
            f"got shape {boxes.shape}"
        )
    return boxes


def box_polygons(boxes: np.ndarray) -> np.ndarray:
    """Shapely polygons of ``N x 5`` or ``N x 6`` boxes."""
    boxes = check_boxes(boxes)
    if boxes.shape[1] == 5:
        return shapely.box(boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3])
    return shapely.polygons(oriented_corners(boxes))


def oriented_corners(boxes: np.ndarray) -> np.ndarray:
    """``N x 4 x 2`` corner points of oriented boxes ``[cx, cy, w, h, angle_deg, ...]``.

    >>> oriented_corners(np.array([[2.0, 1.0, 4.0, 2.0, 0.0, 1.0]])).tolist()
    [[[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [0.0, 2.0]]]
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    cx, cy, w, h, angle = (boxes[:, i] for i in range(5))
    theta = np.deg2rad(angle)
    # Counter-clockwise on screen with y down means the w side points to (cos, -sin).
    ux, uy = np.cos(theta), -np.sin(theta)  # along w
    vx, vy = np.sin(theta), np.cos(theta)  # along h
    signs = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    dx = signs[None, :, 0] * (w / 2)[:, None]
    dy = signs[None, :, 1] * (h / 2)[:, None]
    xs = cx[:, None] + dx * ux[:, None] + dy * vx[:, None]
    ys = cy[:, None] + dx * uy[:, None] + dy * vy[:, None]
    return np.stack([xs, ys], axis=-1)


def box_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas ``len(a) x len(b)`` of axis-aligned boxes ``[x1, y1, x2, y2, ...]``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(iw, 0, None) * np.clip(ih, 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``len(a) x len(b)`` of axis-aligned boxes ``[x1, y1, x2, y2, ...]``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    inter = box_intersection(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _pairwise_polygon_iou(polys: np.ndarray) -> np.ndarray:
    inter = shapely.area(shapely.intersection(polys[:, None], polys[None, :]))
    area = shapely.area(polys)
    union = area[:, None] + area[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms(boxes: np.ndarray, iou_threshold: float = NMS_IOU) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, highest score first.

    A box is suppressed when its IoU with a higher-scoring kept box exceeds ``iou_threshold``
    (torchvision's rule). Works on axis-aligned (``N x 5``) and oriented (``N x 6``) boxes.

    >>> nms(np.array([[0, 0, 10, 10, 0.9], [1, 1, 10, 10, 0.8], [20, 20, 30, 30, 0.5]])).tolist()
    [0, 2]
    """
    boxes = check_boxes(boxes)
    if boxes.shape[1] == 6:
        return polygon_nms(box_polygons(boxes), boxes[:, -1], iou_threshold)
    order = np.argsort(-boxes[:, -1], kind="stable")
    return _greedy(order, box_iou(boxes[order], boxes[order]), iou_threshold)


def polygon_nms(
    polygons: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU
) -> np.ndarray:
    """:func:`nms` for shapely polygons of any shape (oriented boxes, boxes in a scene's CRS)."""
    polygons = np.asarray(polygons, dtype=object)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return _greedy(order, _pairwise_polygon_iou(polygons[order]), iou_threshold)


def _greedy(order: np.ndarray, iou: np.ndarray, iou_threshold: float) -> np.ndarray:
    suppressed = np.zeros(len(order), dtype=bool)
    keep: list[int] = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(int(order[i]))
        suppressed |= iou[i] > iou_threshold
    return np.asarray(keep, dtype=np.int64)


def nested_mask(boxes: np.ndarray) -> np.ndarray:
    """Which boxes lie entirely inside another box (of two identical boxes, the later one).

    >>> nested_mask(np.array([[0, 0, 10, 10, 0.5], [2, 2, 4, 4, 0.9]])).tolist()
    [False, True]
    """
    boxes = check_boxes(boxes)
    if boxes.shape[1] == 6:
        return nested_polygons(box_polygons(boxes))
    b = boxes
    inside = (
        (b[:, None, 0] >= b[None, :, 0])
        & (b[:, None, 1] >= b[None, :, 1])
        & (b[:, None, 2] <= b[None, :, 2])
        & (b[:, None, 3] <= b[None, :, 3])
    )
    return _first_of_equals(inside)


def nested_polygons(polygons: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """Which polygons lie inside another (within ``tolerance``; of two equal ones, the later)."""
    polygons = np.asarray(polygons, dtype=object)
    if len(polygons) < 2:
        return np.zeros(len(polygons), dtype=bool)
    # The tolerance absorbs rounding: corners computed with sin/cos are not exact.
    inside = shapely.covers(shapely.buffer(polygons[None, :], tolerance), polygons[:, None])
    return _first_of_equals(inside)


def _first_of_equals(inside: np.ndarray) -> np.ndarray:
    """Rows inside any other column, keeping the first of mutually containing (equal) items."""
    n = len(inside)
    inside = inside.copy()
    np.fill_diagonal(inside, False)
    mutual = inside & inside.T
    inside &= ~(mutual & (np.arange(n)[:, None] < np.arange(n)[None, :]))
    return np.asarray(inside.any(axis=1))


def union_box(boxes: np.ndarray) -> np.ndarray | None:
    """The axis-aligned box ``[x1, y1, x2, y2]`` enclosing all boxes, or None for no boxes."""
    boxes = check_boxes(boxes)
    if len(boxes) == 0:
        return None
    if boxes.shape[1] == 6:
        pts = oriented_corners(boxes).reshape(-1, 2)
        return np.array([*pts.min(axis=0), *pts.max(axis=0)])
    return np.array([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()])


def _min_area_rect(mask: np.ndarray, x0: int, y0: int) -> tuple[float, float, float, float, float]:
    """Minimum-area rectangle ``(cx, cy, w, h, angle)`` around the pixels of a component.

    Pixels are unit squares, so the hull is built from the outer corners of the leftmost and
    rightmost pixel of each row: enough points for the exact convex hull, and few of them.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    first = mask[rows].argmax(axis=1)
    last = mask.shape[1] - 1 - mask[rows, ::-1].argmax(axis=1)
    xs = np.concatenate([first, first, last + 1, last + 1]) + x0
    ys = np.concatenate([rows, rows + 1, rows, rows + 1]) + y0
    rect = shapely.minimum_rotated_rectangle(shapely.multipoints(np.stack([xs, ys], axis=1)))
    corners = np.asarray(rect.exterior.coords)[:4]
    return _rect_params(corners)


def _rect_params(corners: np.ndarray) -> tuple[float, float, float, float, float]:
    """``(cx, cy, w, h, angle in [0, 90))`` of a rectangle given by 4 consecutive corners."""
    cx, cy = corners.mean(axis=0)
    e1 = corners[1] - corners[0]
    e2 = corners[2] - corners[1]
    # Choose the side whose direction angle falls in [0, 90) as the w side (angle measured
    # counter-clockwise on screen, i.e. with y flipped).
    for w_side, h_side in ((e1, e2), (e2, e1)):
        angle = np.degrees(np.arctan2(-w_side[1], w_side[0])) % 180.0
        if angle < 90.0 - 1e-9 or np.isclose(angle, 180.0):
            angle = 0.0 if np.isclose(angle, 180.0) else angle
            return (
                float(cx),
                float(cy),
                float(np.hypot(*w_side)),
                float(np.hypot(*h_side)),
                float(angle),
            )
    # Unreachable for a rectangle: the two side directions are 90 degrees apart.
    raise AssertionError("degenerate rectangle")
