"""Where detection (AP50) and pixel overlap (oIoU) are lost against box labels.

Each labelled box is found (a predicted box with IoU >= 0.5), merged (inside a predicted box that
also spans other labelled boxes), loose (covered by a predicted box that fits badly) or missed;
printed as shares, with the median side of found and missed objects, AP50 and counting accuracy.

oIoU is printed twice: of the mask as predicted, and of the same mask with the predicted pixels
inside each labelled box filled out to their own bounding box (``oIoU_filled``). The second uses the
labels to group pixels, so it is a diagnostic, not a score: it says how much of the oIoU a
hull-shaped mask loses only because the label of a diagonal ship or aircraft is an axis-aligned box.
``oIoU_boxed`` needs no labels: the mask replaced by its own predicted boxes (those AP50 scores),
the answer a box-shaped output would give; merged neighbours make it overfill.

``--labels`` boxes the rasterized labels instead of the model's masks: the AP50 that mask-to-box
reaches with a perfect mask (touching labelled objects merge there too); ``--labels separated``
leaves the background seam between touching objects that training masks have
(geosam.data.rasterize.rasterize_separated). ``--split-shape`` and ``--split-cores P`` are geosam.tasks.boxes' splits.

    python benchmarks/ap_breakdown.py --data ../shared/data/hrplanes/valid --format coco --prompt airplanes --limit 120
    python benchmarks/ap_breakdown.py --data ../shared/data/ships_ge/valid --format yolo --prompt ships
    python benchmarks/ap_breakdown.py --data ../shared/data/ships_ge/valid --format yolo --labels separated
    python benchmarks/ap_breakdown.py --data ../shared/data/hrplanes/valid --format coco --labels --split-shape
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import shapely

import geosam
from geosam.data.images import read_rgb
from geosam.data.rasterize import rasterize
from geosam.evaluation import image_probabilities, load_dataset
from geosam.metrics import counting_accuracy, detection_ap
from geosam.tasks.boxes import box_intersection, box_iou, mask_to_boxes


def classify(truth: np.ndarray, pred: np.ndarray) -> list[str]:
    """``found``/``merged``/``loose``/``missed`` for each labelled box (``N x 4``, x1 y1 x2 y2)."""
    iou = box_iou(truth, pred)
    # covers[i, j]: predicted box j holds more than half of labelled box i
    area = (truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1])
    covers = box_intersection(truth, pred) > 0.5 * area[:, None]
    spans = covers.sum(axis=0)  # labelled boxes each predicted box holds
    out = []
    for i in range(len(truth)):
        if pred.shape[0] and iou[i].max() >= 0.5:
            out.append("found")
        elif (covers[i] & (spans >= 2)).any():
            out.append("merged")
        else:
            out.append("loose" if covers[i].any() else "missed")
    return out


def fill_within(mask: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``mask`` with its pixels inside each labelled box (``N x 4``) filled to their bounding box."""
    out = mask.copy()
    for x1, y1, x2, y2 in np.round(truth).astype(int):
        ys, xs = np.nonzero(mask[y1:y2, x1:x2])
        if len(ys):
            out[y1 + ys.min() : y1 + ys.max() + 1, x1 + xs.min() : x1 + xs.max() + 1] = True
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--format", required=True, choices=["coco", "yolo", "dota", "mask"])
    parser.add_argument("--prompt", help="the model's prompt (not with --labels)")
    parser.add_argument("--labels", nargs="?", const="union", choices=["union", "separated"],
                        help="box the rasterized labels instead of the model's masks")
    parser.add_argument("--model", default="remotesam-lite")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--tile", type=int, default=1024, help="as geosam evaluate --tile (0 = whole)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--split-shape", action="store_true", help="as geosam evaluate --split-shape")
    split.add_argument("--split-cores", type=float, help="as geosam evaluate --split-cores")
    args = parser.parse_args()
    if (args.prompt is None) == (args.labels is None):
        parser.error("give either --prompt (score the model) or --labels (score the labels)")
    model = None if args.labels else geosam.load_model(args.model, device="cpu")
    table = load_dataset(args.data, args.format)
    images = table.images if args.limit is None else table.images.head(args.limit)
    kinds: list[str] = []
    found_sides: list[float] = []
    missed_sides: list[float] = []
    predicted: list[dict[str, np.ndarray]] = []
    true: list[dict[str, np.ndarray]] = []
    overlap = np.zeros((3, 2), dtype=np.int64)  # [as predicted, filled, boxed] x [intersection, union]
    for image, height, width in images[["image", "height", "width"]].itertuples(index=False):
        geoms = list(table.instances_of(image).geometry)
        truth = np.array([g.bounds for g in geoms]).reshape(-1, 4)
        if model is None:
            prob = rasterize(geoms, (height, width), separate=args.labels == "separated").astype(np.float32)
        else:
            prob = image_probabilities(model, read_rgb(image), [args.prompt], tile=args.tile or None)[0]
        boxes = mask_to_boxes(prob, 0.5, split="shape" if args.split_shape else args.split_cores)
        target = rasterize(geoms, (height, width))
        boxed = rasterize([shapely.box(*b[:4]) for b in boxes], (height, width))
        for row, mask in enumerate((prob >= 0.5, fill_within(prob >= 0.5, truth), boxed)):
            overlap[row] += (mask & target).sum(), (mask | target).sum()
        predicted.append({"object": boxes})
        true.append({"object": truth})
        labels = classify(truth, boxes[:, :4])
        kinds += labels
        sides = np.sqrt((truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1]))
        found_sides += [s for s, k in zip(sides, labels, strict=True) if k == "found"]
        missed_sides += [s for s, k in zip(sides, labels, strict=True) if k == "missed"]
    n = len(kinds)
    print(json.dumps({
        "objects": n, **{k: round(kinds.count(k) / max(n, 1), 3) for k in ("found", "merged", "loose", "missed")},
        "median_side_found_px": round(float(np.median(found_sides)), 1) if found_sides else None,
        "median_side_missed_px": round(float(np.median(missed_sides)), 1) if missed_sides else None,
        "oIoU": round(overlap[0, 0] / max(overlap[0, 1], 1), 3),
        "oIoU_filled": round(overlap[1, 0] / max(overlap[1, 1], 1), 3),
        "oIoU_boxed": round(overlap[2, 0] / max(overlap[2, 1], 1), 3),
        "AP50": round(detection_ap(predicted, true)["AP50"], 3),
        "count_acc": round(counting_accuracy([len(p["object"]) for p in predicted], [len(t["object"]) for t in true]), 3),
    }))


if __name__ == "__main__":
    main()
