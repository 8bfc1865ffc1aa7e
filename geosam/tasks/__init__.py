"""Every perception task from one referring-segmentation model.

Each task is a plain function of a model (anything with ``predict_batch``, such as
:class:`geosam.RemoteSAM`) and an ``H x W x 3`` uint8 image, also available as a method of the
predictor:

=====================  ===============================================================
semantic_segment       label map, one prompt per class ("{class} in the image")
detect                 boxes per class from the class masks (mask-to-box, NMS)
refer                  the mask of what an expression refers to ("the largest ship", "the
                       ship next to the harbor": by geometry)
ground                 the union box of what a free-text expression refers to
classify               multi-label scores or the scene class (lambda * max + (1 - lambda) * mean)
count                  objects per class (the number of detected boxes)
caption                rule-based caption: existence, counts, where on a grid
classify_region        the class of one box / polygon / mask region
detect_changes         objects that appeared / disappeared between two dates
=====================  ===============================================================

>>> from geosam.tasks import detect
>>> boxes = detect(model, image, ["plane", "ship"])   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names resolve lazily: geosam.model.predictor imports geosam.tasks.mixin, and the task modules
# import the predictor, so nothing heavy may run when this package is first imported.
_EXPORTS = {
    "semantic_segment": "semantic",
    "labels_from_probs": "semantic",
    "detect": "detection",
    "boxes_from_probs": "detection",
    "ground": "grounding",
    "refer": "referring",
    "parse_attribute": "referring",
    "parse_relation": "referring",
    "select_component": "referring",
    "select_related": "referring",
    "box_from_prob": "grounding",
    "classify": "classification",
    "class_scores": "classification",
    "scores_from_probs": "classification",
    "count": "counting",
    "caption": "captioning",
    "caption_from_boxes": "captioning",
    "classify_region": "region",
    "region_scores": "region",
    "detect_changes": "change",
    "changes_from_probs": "change",
    "Changes": "change",
    "mask_to_boxes": "boxes",
    "oriented_corners": "boxes",
    "nms": "boxes",
    "ProbabilityModel": "_protocol",
    "CLASS_TEMPLATE": "_probs",
}

__all__ = [
    "CLASS_TEMPLATE",
    "Changes",
    "ProbabilityModel",
    "box_from_prob",
    "boxes_from_probs",
    "caption",
    "caption_from_boxes",
    "changes_from_probs",
    "class_scores",
    "classify",
    "classify_region",
    "count",
    "detect",
    "detect_changes",
    "ground",
    "labels_from_probs",
    "mask_to_boxes",
    "nms",
    "oriented_corners",
    "parse_attribute",
    "parse_relation",
    "refer",
    "region_scores",
    "scores_from_probs",
    "select_component",
    "select_related",
    "semantic_segment",
]

if TYPE_CHECKING:
    from geosam.tasks._probs import CLASS_TEMPLATE
    from geosam.tasks._protocol import ProbabilityModel
    from geosam.tasks.boxes import mask_to_boxes, nms, oriented_corners
    from geosam.tasks.captioning import caption, caption_from_boxes
    from geosam.tasks.change import Changes, changes_from_probs, detect_changes
    from geosam.tasks.classification import class_scores, classify, scores_from_probs
    from geosam.tasks.counting import count
    from geosam.tasks.detection import boxes_from_probs, detect
    from geosam.tasks.grounding import box_from_prob, ground
    from geosam.tasks.referring import (
        parse_attribute,
        parse_relation,
        refer,
        select_component,
        select_related,
    )
    from geosam.tasks.region import classify_region, region_scores
    from geosam.tasks.semantic import labels_from_probs, semantic_segment


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'geosam.tasks' has no attribute {name!r}")
    return getattr(importlib.import_module(f"geosam.tasks.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
