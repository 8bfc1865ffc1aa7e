"""Object detection: semantic segmentation, then mask-to-box per class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geosam.tasks._probs import CLASS_TEMPLATE, ProbabilityModel, class_probabilities
from geosam.tasks.boxes import Split, mask_to_boxes


def boxes_from_probs(
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    oriented: bool = False,
    threshold: float = 0.5,
    split: Split = None,
) -> dict[str, np.ndarray]:
    """Boxes of each class from its own probability map (classes may overlap, as in the paper)."""
    return {
        name: mask_to_boxes(prob, threshold, oriented=oriented, split=split)
        for name, prob in zip(classes, probs, strict=True)
    }


def detect(
    model: ProbabilityModel,
    image: np.ndarray,
    classes: str | Sequence[str],
    oriented: bool = False,
    *,
    threshold: float = 0.5,
    template: str = CLASS_TEMPLATE,
    split: Split = None,
) -> dict[str, np.ndarray]:
    """Boxes of every class, best first: ``{class: N x 5 [x1, y1, x2, y2, score]}``.

    With ``oriented=True`` the boxes are minimum-area rectangles ``N x 6
    [cx, cy, w, h, angle_deg, score]`` (angle in [0, 90), counter-clockwise on screen;
    :func:`geosam.tasks.boxes.oriented_corners` gives their 4 corners). Pixel coordinates, exclusive
    ends; a class with no object maps to an empty ``0 x 5`` (``0 x 6``) array. ``split``
    separates touching objects (rows of parked aircraft): ``"shape"`` at the necks of their mask,
    ``0.9`` at their confident cores (:func:`geosam.tasks.boxes.mask_to_boxes`).

    >>> boxes = detect(model, image, ["plane", "vehicle"])     # doctest: +SKIP
    >>> boxes["plane"][:, 4]                                   # scores  # doctest: +SKIP
    """
    names, probs = class_probabilities(model, image, classes, template)
    return boxes_from_probs(probs, names, oriented=oriented, threshold=threshold, split=split)
