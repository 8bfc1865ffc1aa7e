"""Semantic segmentation: one prompt per class, merged into a label map."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geosam.errors import InputError
from geosam.tasks._probs import CLASS_TEMPLATE, ProbabilityModel, class_probabilities


def labels_from_probs(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Label map of ``P x H x W`` class probabilities: ``i + 1`` where class ``i`` is the most
    probable and above ``threshold``, 0 (none) where no class is.

    The dtype is uint8 for up to 255 classes, else uint16.

    >>> labels_from_probs(np.array([[[0.9, 0.2]], [[0.6, 0.4]]])).tolist()
    [[1, 0]]
    """
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise InputError(f"class probabilities must be P x H x W, got shape {probs.shape}")
    dtype = np.uint8 if probs.shape[0] < 256 else np.uint16
    best = probs.argmax(axis=0)
    confident = np.take_along_axis(probs, best[None], axis=0)[0] > threshold
    return np.where(confident, best + 1, 0).astype(dtype)


def semantic_segment(
    model: ProbabilityModel,
    image: np.ndarray,
    classes: str | Sequence[str],
    *,
    threshold: float = 0.5,
    template: str = CLASS_TEMPLATE,
) -> np.ndarray:
    """``H x W`` label map: 0 = no class confident, ``i + 1`` = ``classes[i]``.

    Each class is prompted as "{class} in the image" (the paper's phrasing); a pixel takes the
    class of highest probability if that probability exceeds ``threshold``.

    >>> labels = semantic_segment(model, image, ["building", "road", "water"])  # doctest: +SKIP
    >>> (labels == 2).mean()  # share of road pixels                               # doctest: +SKIP
    """
    _, probs = class_probabilities(model, image, classes, template)
    return labels_from_probs(probs, threshold)
