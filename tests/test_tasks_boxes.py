"""Mask to boxes (geosam.tasks.boxes) on constructed masks."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geosam.errors import InputError
from geosam.tasks.boxes import (
    box_iou,
    box_polygons,
    components,
    filter_boxes,
    mask_to_boxes,
    nested_mask,
    nms,
    oriented_corners,
    union_box,
)


def test_components_are_8_connected_with_mean_probability() -> None:
    prob = np.zeros((10, 10), dtype=np.float32)
    prob[1, 1] = 0.9
    prob[2, 2] = 0.7  # touches (1, 1) only diagonally: same component
    prob[6:8, 5:9] = 0.6  # a separate 2 x 4 block
    comps = components(prob)
    assert len(comps) == 2
    boxes = comps.boxes()
    assert boxes[0].tolist() == pytest.approx([1, 1, 3, 3, 0.8])  # exclusive ends, mean of 0.9, 0.7
    assert boxes[1].tolist() == pytest.approx([5, 6, 9, 8, 0.6])
    assert comps.areas.tolist() == [2, 8]


def test_threshold_is_strict_and_empty_map_gives_no_box() -> None:
    prob = np.full((4, 4), 0.5, dtype=np.float32)
    assert mask_to_boxes(prob).shape == (0, 5)
    assert mask_to_boxes(prob, oriented=True).shape == (0, 6)
    assert len(mask_to_boxes(prob, threshold=0.49)) == 1


def test_split_divides_touching_objects_at_their_cores_only() -> None:
    # two parked aircraft painted as one blob, with a shallow dip of confidence between them
    prob = np.zeros((12, 24), dtype=np.float32)
    prob[3:9, 2:22] = 0.7
    prob[4:8, 3:10] = 0.97
    prob[4:8, 14:21] = 0.95
    assert len(mask_to_boxes(prob)) == 1  # the paper's M2B: one box
    boxes = mask_to_boxes(prob, split=0.9)
    assert len(boxes) == 2
    left, right = sorted(boxes.tolist())
    assert left[0] == 2 and right[2] == 22 and left[2] == right[0]  # the blob, cut once, nothing lost
    comps = components(prob, split=0.9)
    assert comps.areas.sum() == np.count_nonzero(prob > 0.5)
    # one core, or a core per separate component: nothing changes
    single = prob.copy()
    single[4:8, 14:21] = 0.7
    assert len(mask_to_boxes(single, split=0.9)) == 1
    apart = np.zeros((12, 24), dtype=np.float32)
    apart[2:5, 2:5] = apart[2:5, 18:22] = 0.95
    np.testing.assert_array_equal(mask_to_boxes(apart, split=0.9), mask_to_boxes(apart))
    with pytest.raises(InputError, match="split must be 'shape' or a core probability"):
        mask_to_boxes(prob, split=0.3)


def _aircraft(mask: np.ndarray, cy: int, cx: int) -> None:
    """A plus-shaped aircraft of 41 px span: fuselage and wings 9 px wide."""
    mask[cy - 20 : cy + 21, cx - 4 : cx + 5] = True
    mask[cy - 4 : cy + 5, cx - 20 : cx + 21] = True


def test_shape_split_parts_objects_at_the_neck_between_them() -> None:
    # two aircraft whose wing tips overlap: one component, joined by a 9-px-wide neck
    mask = np.zeros((60, 100), dtype=bool)
    _aircraft(mask, 30, 25)
    _aircraft(mask, 30, 62)
    prob = np.where(mask, 0.8, 0.0).astype(np.float32)
    assert len(mask_to_boxes(prob)) == 1
    comps = components(prob, split="shape")
    assert len(comps) == 2
    assert comps.areas.sum() == mask.sum()  # every pixel kept, in one of the two
    left, right = sorted(comps.boxes().tolist())
    assert left[0] == 5 and right[2] == 83  # the outer wing tips stay with their aircraft
    assert 42 <= left[2] <= 46 and right[0] == left[2]  # cut within the overlap of the wings
    # one aircraft alone (four arms, each a local bulge of the distance map) stays one object
    one = np.zeros((60, 60), dtype=bool)
    _aircraft(one, 30, 30)
    assert len(components(one.astype(np.float32), split="shape")) == 1
    # thin objects (no maximum deep enough) and separate objects are left as they are
    specks = np.zeros((20, 20), dtype=np.float32)
    specks[2, 2:9] = specks[10:12, 10:12] = 0.9
    np.testing.assert_array_equal(mask_to_boxes(specks, split="shape"), mask_to_boxes(specks))
    with pytest.raises(InputError, match="split must be 'shape' or a core probability"):
        mask_to_boxes(prob, split="necks")  # type: ignore[arg-type]


def test_low_confidence_components_are_dropped() -> None:
    prob = np.zeros((6, 6), dtype=np.float32)
    prob[0:2, 0:2] = 0.005  # mean under the 0.01 floor
    prob[4:6, 4:6] = 0.02
    boxes = mask_to_boxes(prob, threshold=0.001)
    assert boxes[:, :4].tolist() == [[4, 4, 6, 6]]


def test_box_inside_another_box_is_dropped() -> None:
    prob = np.zeros((20, 20), dtype=np.float32)
    prob[2:18, 2:18] = 0.9
    prob[4:16, 4:16] = 0.0  # a ring ...
    prob[8:11, 8:11] = 0.95  # ... with a blob in its hole: its box lies inside the ring's
    prob[0, 19] = 0.8  # an unrelated pixel
    kept = mask_to_boxes(prob, nms_iou=None)
    assert sorted(kept[:, :4].tolist()) == [[2, 2, 18, 18], [19, 0, 20, 1]]
    everything = mask_to_boxes(prob, remove_nested=False, nms_iou=None)
    assert len(everything) == 3


def test_nested_mask_keeps_one_of_identical_boxes() -> None:
    boxes = np.array([[0, 0, 4, 4, 0.5], [0, 0, 4, 4, 0.6], [1, 1, 2, 2, 0.9], [5, 5, 6, 6, 0.1]])
    assert nested_mask(boxes).tolist() == [False, True, True, False]


def test_nms_suppresses_overlap_above_half() -> None:
    boxes = np.array(
        [
            [0, 0, 10, 10, 0.8],
            [0, 0, 10, 9, 0.9],  # IoU 0.9 with the first: suppresses it (higher score)
            [0, 5, 10, 15, 0.7],  # IoU 4/14 with the second: kept
            [30, 30, 40, 40, 0.1],
        ]
    )
    assert nms(boxes).tolist() == [1, 2, 3]
    assert nms(boxes, 0.2).tolist() == [1, 3]
    out = filter_boxes(boxes, remove_nested=False)
    assert out[:, 4].tolist() == [0.9, 0.7, 0.1]  # best first


def test_box_iou_hand_computed() -> None:
    a = np.array([[0, 0, 2, 2]])
    b = np.array([[1, 1, 3, 3], [2, 2, 4, 4], [0, 0, 2, 2]])
    assert box_iou(a, b).tolist() == [[pytest.approx(1 / 7), 0.0, 1.0]]


def test_oriented_box_of_a_rotated_rectangle() -> None:
    # Rasterize a 40 x 10 rectangle rotated by 30 degrees counter-clockwise on screen.
    rect = shapely.affinity.rotate(shapely.box(-20, -5, 20, 5), -30, origin=(0, 0))  # y down
    rect = shapely.affinity.translate(rect, 50, 50)
    ys, xs = np.mgrid[0:100, 0:100]
    prob = shapely.contains_xy(rect, xs + 0.5, ys + 0.5).astype(np.float32)
    (cx, cy, w, h, angle, score), *_ = mask_to_boxes(prob, oriented=True)
    assert (cx, cy) == pytest.approx((50, 50), abs=1.0)
    assert score == 1.0
    long_side, short_side = max(w, h), min(w, h)
    assert long_side == pytest.approx(40, abs=2.5) and short_side == pytest.approx(10, abs=2.5)
    long_angle = angle if w >= h else angle + 90
    assert long_angle % 180 == pytest.approx(30, abs=3)
    # The rectangle covers every pixel (unit squares) of the component and not much more.
    poly = box_polygons(mask_to_boxes(prob, oriented=True))[0]
    pixels = shapely.union_all(
        [shapely.box(x, y, x + 1, y + 1) for y, x in zip(*np.nonzero(prob), strict=True)]
    )
    assert shapely.buffer(poly, 1e-6).covers(pixels)
    assert poly.area < 1.25 * prob.sum()


def test_oriented_box_of_axis_aligned_block_is_exact() -> None:
    prob = np.zeros((10, 10), dtype=np.float32)
    prob[2:5, 1:8] = 1.0
    cx, cy, w, h, angle, _ = mask_to_boxes(prob, oriented=True)[0]
    assert (cx, cy, w, h, angle) == pytest.approx((4.5, 3.5, 7, 3, 0), abs=1e-9)
    corners = oriented_corners(mask_to_boxes(prob, oriented=True))[0]
    assert corners.min(axis=0).tolist() == pytest.approx([1, 2])
    assert corners.max(axis=0).tolist() == pytest.approx([8, 5])


def test_oriented_nms_and_nesting_use_polygons() -> None:
    boxes = np.array([[10, 10, 8, 4, 45, 0.9], [10, 10, 8, 4, 40, 0.8], [10, 10, 2, 1, 45, 0.95]])
    assert nested_mask(boxes).tolist() == [False, False, True]
    assert nms(boxes).tolist() == [2, 0]  # the 40-degree box overlaps the 45-degree one


def test_union_box() -> None:
    assert union_box(np.zeros((0, 5))) is None
    boxes = np.array([[1, 2, 3, 4, 0.5], [0, 3, 2, 9, 0.1]])
    assert union_box(boxes).tolist() == [0, 2, 3, 9]


def test_bad_maps_and_boxes_are_rejected() -> None:
    with pytest.raises(InputError, match="2-D"):
        mask_to_boxes(np.zeros((2, 3, 3)))
    with pytest.raises(InputError, match="N x 5"):
        nms(np.zeros((3, 4)))
    # A boolean mask works as a map of probability 1.
    assert mask_to_boxes(np.eye(3, dtype=bool))[:, :4].tolist() == [[0, 0, 3, 3]]
