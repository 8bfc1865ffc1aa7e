"""Visual grounding: the box of the object a free-text expression refers to."""

from __future__ import annotations

import numpy as np

from geosam.errors import PromptError
from geosam.model.text import normalize_prompts
from geosam.tasks._probs import ProbabilityModel
from geosam.tasks.boxes import MIN_SCORE, components, union_box
from geosam.tasks.referring import refer


def box_from_prob(
    prob: np.ndarray, threshold: float = 0.5, min_score: float = MIN_SCORE
) -> np.ndarray | None:
    """The union box ``[x1, y1, x2, y2, score]`` of all objects in a probability map, or None.

    Objects are the 8-connected components of ``prob > threshold`` whose mean probability reaches
    ``min_score``; the score is the mean probability over all their pixels.
    """
    comps = components(prob, threshold)
    keep = np.flatnonzero(comps.scores >= min_score)
    if keep.size == 0:
        return None
    areas = comps.areas[keep]
    score = float(np.sum(comps.scores[keep] * areas) / areas.sum())
    box = union_box(comps.boxes()[keep])
    assert box is not None  # keep is not empty
    return np.append(box, score)


def ground(
    model: ProbabilityModel, image: np.ndarray, expression: str, *, threshold: float = 0.5
) -> np.ndarray | None:
    """Box ``[x1, y1, x2, y2, score]`` of what ``expression`` describes, or None if nothing is found.

    The expression is segmented by :func:`geosam.tasks.referring.refer` (size and position
    expressions pick one object of their class by geometry, anything else is segmented as is); the
    box encloses every object of the mask, as the paper's grounding does. Pixel coordinates with
    exclusive ends.

    >>> ground(model, image, "the plane nearest the hangar")  # doctest: +SKIP
    array([412., 96., 470., 150., 0.83])
    """
    if not isinstance(expression, str):
        raise PromptError(f"expression must be one string, got {type(expression).__name__}")
    prompts, _ = normalize_prompts(expression)
    return box_from_prob(refer(model, image, prompts[0], threshold=threshold), threshold)
