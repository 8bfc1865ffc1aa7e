"""Standard scores for every task geosam derives from referring segmentation.

* :func:`res_scores`: referring segmentation (oIoU, mIoU, P@0.5 ... P@0.9) over boolean masks
  (:func:`res_scores_from_counts` from per-sample intersection and union counts);
* :func:`detection_ap`: COCO AP50 / AP75 / mAP@[.5:.95] of boxes, computed by pycocotools;
* :func:`counting_accuracy`, :func:`counting_scores`: exact-count accuracy and count errors;
* :func:`multilabel_scores`: multi-label accuracy, precision, recall and F1;
* :func:`confusion_matrix`, :func:`semantic_scores`: semantic segmentation IoU per class and mIoU.

All functions take plain numpy arrays and return plain floats (``nan`` where a score is undefined).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from geosam.errors import InputError

#: IoU thresholds of the precision scores P@t.
PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _as_bool_mask(mask: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise InputError(f"{what} must be a 2-D boolean mask, got shape {arr.shape}")
    return arr.astype(bool, copy=False)


def mask_iou(pred: np.ndarray, target: np.ndarray) -> float:
    """IoU of two boolean masks; 1.0 when both are empty (nothing to find, nothing found)."""
    p, t = _as_bool_mask(pred, "pred"), _as_bool_mask(target, "target")
    if p.shape != t.shape:
        raise InputError(f"pred and target masks differ in shape: {p.shape} vs {t.shape}")
    union = int(np.count_nonzero(p | t))
    return 1.0 if union == 0 else int(np.count_nonzero(p & t)) / union


def res_scores(preds: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> dict[str, float]:
    """Referring-segmentation scores over samples (one boolean mask pair per image-expression).

    * ``oIoU``: overall IoU, the sum of intersections over the sum of unions of all samples;
    * ``mIoU``: the mean of the per-sample IoUs;
    * ``P@t``: the share of samples whose IoU is at least ``t`` (t = 0.5 ... 0.9), as LAVT-style
      code and the training meter (:class:`geosam.train.metrics.SegmentationMeter`) count it.

    A sample whose prediction and target are both empty (a correctly rejected expression) has
    IoU 1.0: it adds nothing to oIoU but counts as a hit for mIoU and P@t (LAVT-style code scores
    it 0; the two agree on every sample with a non-empty target). ``oIoU`` is ``nan`` when all
    unions are empty.

    >>> a = np.array([[1, 1], [0, 0]], bool); b = np.array([[1, 0], [0, 0]], bool)
    >>> res_scores([a], [b])["oIoU"]
    0.5
    """
    if len(preds) != len(targets):
        raise InputError(f"{len(preds)} predictions but {len(targets)} targets")
    inter = np.empty(len(preds), dtype=np.int64)
    union = np.empty(len(preds), dtype=np.int64)
    for i, (pred, target) in enumerate(zip(preds, targets, strict=True)):
        p, t = _as_bool_mask(pred, "pred"), _as_bool_mask(target, "target")
        if p.shape != t.shape:
            raise InputError(f"sample {i}: pred shape {p.shape} differs from target {t.shape}")
        inter[i] = np.count_nonzero(p & t)
        union[i] = np.count_nonzero(p | t)
    return res_scores_from_counts(inter, union)


def res_scores_from_counts(
    intersections: Sequence[int] | np.ndarray, unions: Sequence[int] | np.ndarray
) -> dict[str, float]:
    """:func:`res_scores` from each sample's intersection and union pixel counts.

    Lets an evaluation loop keep two numbers per sample instead of its masks.

    >>> res_scores_from_counts([1, 0], [2, 0])["mIoU"]
    0.75
    """
    inter = np.asarray(intersections, dtype=np.float64).ravel()
    union = np.asarray(unions, dtype=np.float64).ravel()
    if inter.shape != union.shape:
        raise InputError(f"{inter.size} intersections but {union.size} unions")
    if inter.size == 0:
        raise InputError("res_scores needs at least one sample")
    if np.any(inter > union) or np.any(inter < 0):
        raise InputError("each intersection must lie between 0 and its union")
    with np.errstate(invalid="ignore", divide="ignore"):
        ious = np.where(union > 0, inter / union, 1.0)
    out: dict[str, float] = {
        "oIoU": float(inter.sum() / union.sum()) if union.sum() else math.nan,
        "mIoU": float(ious.mean()),
    }
    for thr in PRECISION_THRESHOLDS:
        out[f"P@{thr}"] = float(np.mean(ious >= thr))
    return out


# -- detection -----------------------------------------------------------------------------------


def _box_array(boxes: np.ndarray | Sequence[Sequence[float]], width: int, what: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, width))
    if arr.ndim != 2 or arr.shape[1] < width:
        raise InputError(
            f"{what} must be N x {width} [x1, y1, x2, y2{', score' if width == 5 else ''}], got shape {arr.shape}"
        )
    return arr[:, :width]


def detection_ap(
    predictions: Sequence[Mapping[str, np.ndarray]],
    ground_truth: Sequence[Mapping[str, np.ndarray]],
    *,
    max_detections: int | None = None,
) -> dict[str, Any]:
    """COCO average precision of axis-aligned boxes, computed by pycocotools' ``COCOeval``.

    ``predictions[i]`` maps each category to the ``N x 5`` boxes ``[x1, y1, x2, y2, score]``
    found in image ``i``; ``ground_truth[i]`` maps categories to ``M x 4`` boxes. Categories are
    those with at least one ground-truth box; predictions of other categories are ignored.
    ``max_detections`` caps the boxes per image and category (default: all of them, at least
    COCO's 100, since remote-sensing scenes often hold hundreds of objects).

    Returns ``{"AP50", "AP75", "AP"}`` (``AP`` = mean over IoU 0.50:0.95, all object sizes) and
    ``"per_category": {name: {"AP50", "AP75", "AP"}}``; ``nan`` when there is no ground truth.

    >>> gt = [{"ship": np.array([[0, 0, 10, 10]])}]
    >>> detection_ap([{"ship": np.array([[0, 0, 10, 10, 0.9]])}], gt)["AP50"]
    1.0
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(predictions) != len(ground_truth):
        raise InputError(
            f"{len(predictions)} prediction images but {len(ground_truth)} ground-truth images"
        )
    names = sorted({c for g in ground_truth for c, b in g.items() if len(b)})
    cat_ids = {c: i + 1 for i, c in enumerate(names)}
    images = [{"id": i + 1} for i in range(len(ground_truth))]
    categories = [{"id": i, "name": c} for c, i in cat_ids.items()]
    gt_anns: list[dict[str, object]] = []
    dt_anns: list[dict[str, object]] = []
    most = 0
    for img, (pred, gt) in enumerate(zip(predictions, ground_truth, strict=True), start=1):
        for cat, boxes in gt.items():
            if cat not in cat_ids:
                continue
            for x1, y1, x2, y2 in _box_array(boxes, 4, f"ground-truth boxes of {cat!r}"):
                w, h = x2 - x1, y2 - y1
                gt_anns.append(
                    {
                        "id": len(gt_anns) + 1,
                        "image_id": img,
                        "category_id": cat_ids[cat],
                        "bbox": [x1, y1, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
        for cat, boxes in pred.items():
            if cat not in cat_ids:
                continue
            arr = _box_array(boxes, 5, f"predicted boxes of {cat!r}")
            most = max(most, len(arr))
            for x1, y1, x2, y2, score in arr:
                w, h = x2 - x1, y2 - y1
                dt_anns.append(
                    {
                        "id": len(dt_anns) + 1,
                        "image_id": img,
                        "category_id": cat_ids[cat],
                        "bbox": [x1, y1, w, h],
                        "area": w * h,
                        "score": score,
                        "iscrowd": 0,
                    }
                )
    nan_scores = {"AP50": math.nan, "AP75": math.nan, "AP": math.nan}
    if not names:
        return {**nan_scores, "per_category": {}}
    if not dt_anns:  # nothing predicted: every category with ground truth scores 0
        zero = {"AP50": 0.0, "AP75": 0.0, "AP": 0.0}
        return {**zero, "per_category": {c: dict(zero) for c in names}}

    limit = max_detections if max_detections is not None else max(100, most)
    # pycocotools prints progress on stdout; keep the caller's output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt, coco_dt = COCO(), COCO()
        coco_gt.dataset = {"images": images, "categories": categories, "annotations": gt_anns}
        coco_dt.dataset = {"images": images, "categories": categories, "annotations": dt_anns}
        coco_gt.createIndex()
        coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.params.maxDets = [1, 10, limit]
        ev.evaluate()
        ev.accumulate()
    # precision: [iou thresholds, recall thresholds, categories, area ranges, max dets]; -1 = no GT
    precision = ev.eval["precision"][:, :, :, 0, -1]
    iou_thrs = ev.params.iouThrs

    def ap(p: np.ndarray) -> float:
        valid = p[p > -1]
        # COCOeval divides by (tp + fp + eps): round the eps away so a perfect detector gets 1.0.
        return round(float(valid.mean()), 12) if valid.size else math.nan

    t50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
    t75 = int(np.argmin(np.abs(iou_thrs - 0.75)))
    per_cat = {
        c: {
            "AP50": ap(precision[t50, :, k]),
            "AP75": ap(precision[t75, :, k]),
            "AP": ap(precision[:, :, k]),
        }
        for k, c in enumerate(names)  # COCOeval orders categories by id, as cat_ids does
    }
    return {
        "AP50": ap(precision[t50]),
        "AP75": ap(precision[t75]),
        "AP": ap(precision),
        "per_category": per_cat,
    }


# -- counting ------------------------------------------------------------------------------------


def _counts(
    pred: Sequence[int] | np.ndarray, target: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(target, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise InputError(f"{p.size} predicted counts but {t.size} true counts")
    if p.size == 0:
        raise InputError("no counts given")
    return p, t


def counting_accuracy(
    pred: Sequence[int] | np.ndarray, target: Sequence[int] | np.ndarray
) -> float:
    """Share of samples whose predicted count equals the true count (the paper's counting score).

    >>> counting_accuracy([3, 0, 5], [3, 1, 5])
    0.6666666666666666
    """
    p, t = _counts(pred, target)
    return float(np.mean(p == t))


def counting_scores(
    pred: Sequence[int] | np.ndarray, target: Sequence[int] | np.ndarray
) -> dict[str, float]:
    """``{"accuracy", "MAE", "RMSE"}`` of predicted against true counts.

    >>> counting_scores([3, 0], [1, 0])["MAE"]
    1.0
    """
    p, t = _counts(pred, target)
    err = p - t
    return {
        "accuracy": float(np.mean(err == 0)),
        "MAE": float(np.mean(np.abs(err))),
        "RMSE": float(np.sqrt(np.mean(err**2))),
    }


# -- classification ------------------------------------------------------------------------------


def multilabel_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Multi-label scores of ``N x C`` boolean decisions against ``N x C`` boolean labels.

    * ``accuracy``: share of correct (image, class) decisions (the official code's accuracy);
    * ``exact_match``: share of images whose whole label set is right;
    * ``precision``, ``recall``, ``F1``: micro-averaged over all decisions;
    * ``F1_macro``: the mean of the per-class F1 (classes never predicted nor present count 0).

    >>> multilabel_scores(np.array([[1, 0]], bool), np.array([[1, 1]], bool))["recall"]
    0.5
    """
    p = np.asarray(pred).astype(bool)
    t = np.asarray(target).astype(bool)
    if p.shape != t.shape or p.ndim != 2:
        raise InputError(f"pred and target must both be N x C, got {p.shape} and {t.shape}")
    tp = (p & t).sum(axis=0).astype(np.float64)
    fp = (p & ~t).sum(axis=0).astype(np.float64)
    fn = (~p & t).sum(axis=0).astype(np.float64)

    def ratio(num: float, den: float) -> float:
        return float(num / den) if den else 0.0

    precision = ratio(tp.sum(), tp.sum() + fp.sum())
    recall = ratio(tp.sum(), tp.sum() + fn.sum())
    per_class_f1 = [ratio(2 * a, 2 * a + b + c) for a, b, c in zip(tp, fp, fn, strict=True)]
    return {
        "accuracy": float(np.mean(p == t)),
        "exact_match": float(np.mean((p == t).all(axis=1))),
        "precision": precision,
        "recall": recall,
        "F1": ratio(2 * precision * recall, precision + recall),
        "F1_macro": float(np.mean(per_class_f1)),
    }


# -- semantic segmentation -----------------------------------------------------------------------


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, *, ignore_index: int | None = None
) -> np.ndarray:
    """``num_classes x num_classes`` pixel counts, rows = true class, columns = predicted class.

    Pixels whose target is ``ignore_index`` (or outside ``0 .. num_classes - 1``) are skipped.
    Sum matrices of several images to score a data set.
    """
    p = np.asarray(pred).ravel()
    t = np.asarray(target).ravel()
    if p.shape != t.shape:
        raise InputError(
            f"pred and target label maps differ in size: {np.shape(pred)} vs {np.shape(target)}"
        )
    keep = (t >= 0) & (t < num_classes)
    if ignore_index is not None:
        keep &= t != ignore_index
    p, t = p[keep].astype(np.int64), t[keep].astype(np.int64)
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise InputError(
            f"predicted labels must lie in 0 .. {num_classes - 1}, got {p.min()} .. {p.max()}"
        )
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def semantic_scores(conf: np.ndarray) -> dict[str, object]:
    """Scores of a confusion matrix from :func:`confusion_matrix`.

    Returns ``IoU`` (per class, ``nan`` for a class neither present nor predicted), ``mIoU`` (the
    nan-mean of those), ``OA`` (overall pixel accuracy) and ``mAcc`` (mean per-class recall over
    classes present).

    >>> semantic_scores(confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2))["mIoU"]
    0.5
    """
    cm = np.asarray(conf, dtype=np.float64)
    tp = np.diag(cm)
    true_total = cm.sum(axis=1)
    pred_total = cm.sum(axis=0)
    union = true_total + pred_total - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(true_total > 0, tp / true_total, np.nan)
    total = cm.sum()
    valid_iou = iou[~np.isnan(iou)]
    valid_acc = acc[~np.isnan(acc)]
    return {
        "IoU": iou.tolist(),
        "mIoU": float(valid_iou.mean()) if valid_iou.size else math.nan,
        "OA": float(tp.sum() / total) if total else math.nan,
        "mAcc": float(valid_acc.mean()) if valid_acc.size else math.nan,
    }
