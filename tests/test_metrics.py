"""geosam.metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geosam.errors import InputError
from geosam.metrics import (
    confusion_matrix,
    counting_accuracy,
    counting_scores,
    detection_ap,
    mask_iou,
    multilabel_scores,
    res_scores,
    res_scores_from_counts,
    semantic_scores,
)


def _mask(shape: tuple[int, int], *pixels: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    for r, c in pixels:
        m[r, c] = True
    return m


def test_res_scores_hand_computed() -> None:
    # sample 1: pred 4 px, target 2 px inside it        -> I 2, U 4, IoU 0.5
    p1 = _mask((3, 3), (0, 0), (0, 1), (1, 0), (1, 1))
    t1 = _mask((3, 3), (0, 0), (0, 1))
    # sample 2: pred 3 px, target 4 px covering them     -> I 3, U 4, IoU 0.75
    p2 = _mask((2, 4), (0, 0), (0, 1), (0, 2))
    t2 = _mask((2, 4), (0, 0), (0, 1), (0, 2), (0, 3))
    # sample 3: nothing to find, nothing found           -> IoU 1 (counted as a hit)
    p3 = t3 = np.zeros((2, 2), dtype=bool)
    s = res_scores([p1, p2, p3], [t1, t2, t3])
    assert s["oIoU"] == pytest.approx(5 / 8)
    assert s["mIoU"] == pytest.approx((0.5 + 0.75 + 1.0) / 3)
    assert s["P@0.5"] == pytest.approx(3 / 3)  # IoU 0.5 counts: at least 0.5, as LAVT and the training meter
    assert s["P@0.6"] == pytest.approx(2 / 3)
    assert s["P@0.7"] == pytest.approx(2 / 3)
    assert s["P@0.8"] == pytest.approx(1 / 3)
    assert s["P@0.9"] == pytest.approx(1 / 3)
    assert set(s) == {"oIoU", "mIoU", "P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9"}


def test_res_scores_false_positive_on_empty_target_scores_zero() -> None:
    s = res_scores([_mask((2, 2), (0, 0))], [np.zeros((2, 2), bool)])
    assert s["oIoU"] == 0.0 and s["mIoU"] == 0.0 and s["P@0.5"] == 0.0


def test_res_scores_all_empty_has_undefined_oiou() -> None:
    s = res_scores([np.zeros((2, 2), bool)], [np.zeros((2, 2), bool)])
    assert math.isnan(s["oIoU"]) and s["mIoU"] == 1.0


def test_res_scores_from_counts_matches_masks() -> None:
    rng = np.random.default_rng(0)
    preds = [rng.random((8, 8)) > 0.5 for _ in range(5)]
    targets = [rng.random((8, 8)) > 0.6 for _ in range(5)]
    inter = [int((p & t).sum()) for p, t in zip(preds, targets, strict=True)]
    union = [int((p | t).sum()) for p, t in zip(preds, targets, strict=True)]
    assert res_scores_from_counts(inter, union) == res_scores(preds, targets)
    assert mask_iou(preds[0], targets[0]) == pytest.approx(inter[0] / union[0])


def test_res_scores_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="differs"):
        res_scores([np.zeros((2, 2), bool)], [np.zeros((3, 2), bool)])
    with pytest.raises(InputError, match="1 predictions but 2 targets"):
        res_scores([np.zeros((2, 2), bool)], [np.zeros((2, 2), bool)] * 2)
    with pytest.raises(InputError, match="between 0 and its union"):
        res_scores_from_counts([3], [2])


def test_detection_ap_perfect_and_missing() -> None:
    gt = [{"ship": np.array([[0, 0, 10, 10], [20, 20, 30, 30]])}]
    perfect = [{"ship": np.array([[0, 0, 10, 10, 0.9], [20, 20, 30, 30, 0.8]])}]
    assert detection_ap(perfect, gt)["AP50"] == 1.0
    assert detection_ap(perfect, gt)["AP"] == 1.0
    nothing = [{"ship": np.zeros((0, 5))}]
    assert detection_ap(nothing, gt)["AP50"] == 0.0


def test_detection_ap_hand_computed_pr_curve() -> None:
    # COCO AP = mean of the interpolated precision at 101 recall points 0, 0.01, ..., 1.
    gt = [{"ship": np.array([[0, 0, 10, 10], [20, 20, 30, 30]])}]
    # One hit (0.9) and one false positive (0.8), one object missed: precision 1 up to recall
    # 0.5 (51 of the 101 points), nothing beyond.
    tp_first = [{"ship": np.array([[0, 0, 10, 10, 0.9], [50, 50, 60, 60, 0.8]])}]
    assert detection_ap(tp_first, gt)["AP50"] == pytest.approx(51 / 101)
    # The false positive ranked first: precision 1/2 at recall 0.5.
    fp_first = [{"ship": np.array([[0, 0, 10, 10, 0.8], [50, 50, 60, 60, 0.9]])}]
    assert detection_ap(fp_first, gt)["AP50"] == pytest.approx(0.5 * 51 / 101)


def test_detection_ap_iou_thresholds_and_categories() -> None:
    # A box of IoU 0.6 with its object: a hit at 0.5, a miss at 0.75.
    gt = [{"plane": np.array([[0, 0, 10, 10]]), "ship": np.array([[40, 40, 50, 50]])}]
    pred = [
        {
            "plane": np.array([[0, 0, 10, 6, 0.9]]),
            "ship": np.zeros((0, 5)),
            "car": np.array([[0, 0, 1, 1, 1.0]]),
        }
    ]
    out = detection_ap(pred, gt)
    assert out["per_category"]["plane"]["AP50"] == 1.0
    assert out["per_category"]["plane"]["AP75"] == 0.0
    assert out["per_category"]["ship"]["AP50"] == 0.0
    assert "car" not in out["per_category"]  # no ground truth: not scored
    assert out["AP50"] == pytest.approx(0.5)  # mean over plane and ship


def test_detection_ap_counts_more_than_100_objects_per_image() -> None:
    boxes = np.array([[i * 3, 0, i * 3 + 2, 2] for i in range(150)], dtype=float)
    gt = [{"ship": boxes}]
    pred = [{"ship": np.column_stack([boxes, np.linspace(1, 0.5, 150)])}]
    assert detection_ap(pred, gt)["AP50"] == 1.0
    assert detection_ap(pred, gt, max_detections=75)["AP50"] == pytest.approx(51 / 101)


def test_counting() -> None:
    assert counting_accuracy([3, 0, 5, 2], [3, 1, 5, 0]) == 0.5
    s = counting_scores([3, 0, 5, 2], [3, 1, 5, 0])
    assert s["MAE"] == pytest.approx(3 / 4)
    assert s["RMSE"] == pytest.approx(math.sqrt(5 / 4))
    with pytest.raises(InputError):
        counting_accuracy([1, 2], [1])


def test_multilabel_scores_hand_computed() -> None:
    pred = np.array([[1, 0, 1], [0, 1, 0]], bool)
    true = np.array([[1, 1, 0], [0, 1, 0]], bool)
    s = multilabel_scores(pred, true)
    # decisions: 4 of 6 right; image 2 wholly right; tp 2, fp 1, fn 1
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["exact_match"] == pytest.approx(1 / 2)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["F1"] == pytest.approx(2 / 3)
    # per class F1: class 0 = 1, class 1 = 2/3 (tp 1, fn 1), class 2 = 0 (fp 1)
    assert s["F1_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_semantic_scores_hand_computed() -> None:
    target = np.array([[0, 0, 1, 1], [2, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 0]])
    cm = confusion_matrix(pred, target, 3, ignore_index=255)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    s = semantic_scores(cm)
    # IoU: class 0 = 1 / (2 + 2 - 1) , class 1 = 2 / (2 + 3 - 2), class 2 = 2 / (3 + 2 - 2)
    assert s["IoU"] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert s["mIoU"] == pytest.approx(5 / 9)
    assert s["OA"] == pytest.approx(5 / 7)
    # Summing matrices of images is how a data set is scored.
    assert (confusion_matrix(pred, target, 3, ignore_index=255) * 2).sum() == 14


def test_semantic_scores_absent_class_is_nan_and_skipped() -> None:
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([0, 0, 1]), 3)
    s = semantic_scores(cm)
    assert math.isnan(s["IoU"][2]) and s["mIoU"] == 1.0
    with pytest.raises(InputError, match="predicted labels"):
        confusion_matrix(np.array([5]), np.array([0]), 3)
