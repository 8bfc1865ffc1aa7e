"""The task methods of :class:`geosam.RemoteSAM`: thin wrappers over the functions of geosam.tasks.

Imports happen inside the methods so that geosam.model.predictor can inherit from this class
without importing the task modules (which import the predictor).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from geosam.tasks._protocol import ProbabilityModel

if TYPE_CHECKING:
    from geosam.tasks.boxes import Split
    from geosam.tasks.change import Changes
    from geosam.tasks.region import Region

_TEMPLATE = "{} in the image"  # geosam.tasks._probs.CLASS_TEMPLATE, repeated to avoid the import


class TaskMixin:
    """Every perception task derived from referring segmentation, as methods of the predictor."""

    def semantic_segment(
        self: ProbabilityModel,
        image: np.ndarray,
        classes: str | Sequence[str],
        *,
        threshold: float = 0.5,
        template: str = _TEMPLATE,
    ) -> np.ndarray:
        """``H x W`` label map, 0 = none, ``i + 1`` = ``classes[i]``
        (:func:`geosam.tasks.semantic_segment`).

        >>> labels = model.semantic_segment(image, ["building", "road"])  # doctest: +SKIP
        """
        from geosam.tasks.semantic import semantic_segment

        return semantic_segment(self, image, classes, threshold=threshold, template=template)

    def detect(
        self: ProbabilityModel,
        image: np.ndarray,
        classes: str | Sequence[str],
        oriented: bool = False,
        *,
        threshold: float = 0.5,
        template: str = _TEMPLATE,
        split: Split = None,
    ) -> dict[str, np.ndarray]:
        """``{class: N x 5 [x1, y1, x2, y2, score]}`` (oriented: ``N x 6 [cx, cy, w, h, angle,
        score]``) (:func:`geosam.tasks.detect`; ``split="shape"`` or ``0.9`` separates touching objects).

        >>> model.detect(image, ["plane"])["plane"].shape  # doctest: +SKIP
        (7, 5)
        """
        from geosam.tasks.detection import detect

        return detect(self, image, classes, oriented, threshold=threshold, template=template, split=split)

    def refer(
        self: ProbabilityModel, image: np.ndarray, expression: str, *, threshold: float = 0.5
    ) -> np.ndarray:
        """``H x W`` probability of what ``expression`` refers to; size and position expressions pick
        one object by geometry (:func:`geosam.tasks.refer`).

        >>> prob = model.refer(image, "the largest ship")  # doctest: +SKIP
        """
        from geosam.tasks.referring import refer

        return refer(self, image, expression, threshold=threshold)

    def ground(
        self: ProbabilityModel, image: np.ndarray, expression: str, *, threshold: float = 0.5
    ) -> np.ndarray | None:
        """One box ``[x1, y1, x2, y2, score]`` for ``expression``, or None (:func:`geosam.tasks.ground`).

        >>> model.ground(image, "the plane nearest the hangar")  # doctest: +SKIP
        """
        from geosam.tasks.grounding import ground

        return ground(self, image, expression, threshold=threshold)

    def classify(
        self: ProbabilityModel,
        image: np.ndarray,
        classes: str | Sequence[str],
        multi_label: bool = True,
        *,
        threshold: float = 0.5,
        balance: float | None = None,
        template: str = _TEMPLATE,
    ) -> dict[str, float] | str | None:
        """Multi-label ``{class: score}`` above the threshold, or with ``multi_label=False`` the
        scene class or None (:func:`geosam.tasks.classify`).

        >>> model.classify(image, ["airport", "harbor"], multi_label=False)  # doctest: +SKIP
        'airport'
        """
        from geosam.tasks.classification import classify

        return classify(
            self,
            image,
            classes,
            multi_label,
            threshold=threshold,
            balance=balance,
            template=template,
        )

    def count(
        self: ProbabilityModel,
        image: np.ndarray,
        classes: str | Sequence[str],
        *,
        threshold: float = 0.5,
        template: str = _TEMPLATE,
        split: Split = None,
    ) -> dict[str, int]:
        """``{class: number of objects}`` (:func:`geosam.tasks.count`).

        >>> model.count(image, ["ship"])  # doctest: +SKIP
        {'ship': 12}
        """
        from geosam.tasks.counting import count

        return count(self, image, classes, threshold=threshold, template=template, split=split)

    def caption(
        self: ProbabilityModel,
        image: np.ndarray,
        classes: str | Sequence[str],
        *,
        grid: int = 2,
        threshold: float = 0.5,
        template: str = _TEMPLATE,
    ) -> str:
        """A rule-based caption: which classes, how many, where (:func:`geosam.tasks.caption`).

        >>> model.caption(image, ["ship", "harbor"])  # doctest: +SKIP
        """
        from geosam.tasks.captioning import caption

        return caption(self, image, classes, grid=grid, threshold=threshold, template=template)

    def classify_region(
        self: ProbabilityModel,
        image: np.ndarray,
        region: Region,
        classes: str | Sequence[str],
        *,
        threshold: float = 0.5,
        balance: float = 0.5,
        context: float | None = 0.25,
        template: str = _TEMPLATE,
    ) -> str | None:
        """The class of one region (box, polygon or mask), or None
        (:func:`geosam.tasks.classify_region`).

        >>> model.classify_region(image, [10, 10, 90, 60], ["forest", "water"])  # doctest: +SKIP
        """
        from geosam.tasks.region import classify_region

        return classify_region(
            self,
            image,
            region,
            classes,
            threshold=threshold,
            balance=balance,
            context=context,
            template=template,
        )

    def detect_changes(
        self: ProbabilityModel,
        image_before: np.ndarray,
        image_after: np.ndarray,
        prompt: str,
        *,
        threshold: float = 0.5,
        min_overlap: float = 0.1,
    ) -> Changes:
        """Objects of ``prompt`` that appeared / disappeared between two images
        (:func:`geosam.tasks.detect_changes`).

        >>> model.detect_changes(img_2019, img_2023, "buildings").appeared_area  # doctest: +SKIP
        """
        from geosam.tasks.change import detect_changes

        return detect_changes(
            self, image_before, image_after, prompt, threshold=threshold, min_overlap=min_overlap
        )
