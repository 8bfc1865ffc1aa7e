"""Counting: the number of detected objects per class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from geosam.tasks._probs import CLASS_TEMPLATE, ProbabilityModel
from geosam.tasks.boxes import Split
from geosam.tasks.detection import detect


def counts_from_boxes(boxes: Mapping[str, np.ndarray]) -> dict[str, int]:
    """``{class: number of boxes}``."""
    return {name: len(b) for name, b in boxes.items()}


def count(
    model: ProbabilityModel,
    image: np.ndarray,
    classes: str | Sequence[str],
    *,
    threshold: float = 0.5,
    template: str = CLASS_TEMPLATE,
    split: Split = None,
) -> dict[str, int]:
    """Number of objects of each class: the boxes :func:`~geosam.tasks.detection.detect` finds
    (``split="shape"`` counts touching objects apart at the necks of their mask, ``split=0.9`` where
    the network shows their cores).

    >>> count(model, image, ["ship", "plane"])  # doctest: +SKIP
    {'ship': 12, 'plane': 0}
    """
    return counts_from_boxes(detect(model, image, classes, threshold=threshold, template=template, split=split))
