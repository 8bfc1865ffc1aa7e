"""Change detection: the same prompt over two dates, objects matched by overlap.

Both images are segmented with the prompt in one batched call. Each object (an 8-connected
component of ``prob > threshold``) of the later image that barely overlaps the earlier mask has
*appeared*; each object of the earlier image that barely overlaps the later mask has
*disappeared*; the rest persisted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from geosam.errors import InputError, PromptError
from geosam.model.predictor import check_images
from geosam.model.text import normalize_prompts
from geosam.tasks._probs import ProbabilityModel
from geosam.tasks.boxes import MIN_SCORE, Components, components

#: Columns of the object tables of :class:`Changes`.
OBJECT_COLUMNS = ("x1", "y1", "x2", "y2", "area", "score", "overlap")


@dataclass(frozen=True)
class Changes:
    """Objects that appeared and disappeared between two dates.

    ``appeared`` / ``disappeared`` / ``persisted`` are ``N x 7`` tables
    ``[x1, y1, x2, y2, area, score, overlap]``: the box (pixels, exclusive ends), the area in
    pixels, the mean probability and the share of the object's pixels that the other date's mask
    covers. ``appeared``/``persisted`` hold objects of the later image, ``disappeared`` objects of
    the earlier one. ``appeared_mask`` / ``disappeared_mask`` are their pixels.
    """

    prompt: str
    appeared: np.ndarray
    disappeared: np.ndarray
    persisted: np.ndarray
    appeared_mask: np.ndarray
    disappeared_mask: np.ndarray

    @property
    def appeared_area(self) -> int:
        """Pixels covered by objects that appeared."""
        return int(self.appeared[:, 4].sum())

    @property
    def disappeared_area(self) -> int:
        """Pixels covered by objects that disappeared."""
        return int(self.disappeared[:, 4].sum())

    def __repr__(self) -> str:
        return (
            f"Changes(prompt={self.prompt!r}, appeared={len(self.appeared)} ({self.appeared_area} px), "
            f"disappeared={len(self.disappeared)} ({self.disappeared_area} px), "
            f"persisted={len(self.persisted)})"
        )


def _object_table(
    comps: Components, other_mask: np.ndarray, min_score: float
) -> tuple[np.ndarray, np.ndarray]:
    """The object table of ``comps`` and the label id (1-based) of each row."""
    n = len(comps)
    ids = np.arange(1, n + 1)
    table = np.zeros((n, len(OBJECT_COLUMNS)))
    if n:
        table[:, :4] = comps.boxes()[:, :4]
        table[:, 4] = comps.areas
        table[:, 5] = comps.scores
        table[:, 6] = ndimage.mean(other_mask, comps.labels, ids)
    keep = table[:, 5] >= min_score
    return table[keep], ids[keep]


def changes_from_probs(
    before: np.ndarray,
    after: np.ndarray,
    prompt: str = "",
    *,
    threshold: float = 0.5,
    min_overlap: float = 0.1,
    min_score: float = MIN_SCORE,
) -> Changes:
    """:class:`Changes` between two ``H x W`` probability maps of the same prompt."""
    if before.shape != after.shape:
        raise InputError(
            f"the two probability maps differ in shape: {before.shape} vs {after.shape}"
        )
    comps_before = components(before, threshold)
    comps_after = components(after, threshold)
    old, old_ids = _object_table(comps_before, comps_after.labels > 0, min_score)
    new, new_ids = _object_table(comps_after, comps_before.labels > 0, min_score)
    gone = old[:, 6] < min_overlap
    came = new[:, 6] < min_overlap
    return Changes(
        prompt=prompt,
        appeared=new[came],
        disappeared=old[gone],
        persisted=new[~came],
        appeared_mask=np.isin(comps_after.labels, new_ids[came]),
        disappeared_mask=np.isin(comps_before.labels, old_ids[gone]),
    )


def detect_changes(
    model: ProbabilityModel,
    image_before: np.ndarray,
    image_after: np.ndarray,
    prompt: str,
    *,
    threshold: float = 0.5,
    min_overlap: float = 0.1,
) -> Changes:
    """Objects matching ``prompt`` that appeared or disappeared between two co-registered images.

    An object whose pixels are covered by the other date's mask for less than ``min_overlap``
    (a fraction) has changed. The images must have the same shape.

    >>> ch = detect_changes(model, image_2019, image_2023, "buildings")  # doctest: +SKIP
    >>> ch.appeared[:, 4].sum()          # pixels of new buildings       # doctest: +SKIP
    """
    if not isinstance(prompt, str):
        raise PromptError(f"prompt must be one string, got {type(prompt).__name__}")
    normalize_prompts(prompt)
    check_images(image_before, batched=False)
    check_images(image_after, batched=False)
    if image_before.shape != image_after.shape:
        raise InputError(
            f"the two images differ in shape: {image_before.shape} vs {image_after.shape}; "
            "co-register them on one grid first"
        )
    if not 0.0 <= min_overlap <= 1.0:
        raise InputError(f"min_overlap must lie in [0, 1], got {min_overlap}")
    probs = model.predict_batch(np.stack([image_before, image_after]), [prompt])
    return changes_from_probs(
        probs[0, 0], probs[1, 0], prompt, threshold=threshold, min_overlap=min_overlap
    )
