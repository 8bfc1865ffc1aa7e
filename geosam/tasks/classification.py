"""Image classification from probability maps: multi-label and scene (single-label).

A class scores ``balance * max(p) + (1 - balance) * mean(p)`` over its probability map ``p``
(the paper's rule): multi-label classification uses balance 0.5 and keeps classes scoring above
0.5; scene classification uses balance 1.0 and answers the best class, or None under 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

import numpy as np

from geosam.errors import InputError
from geosam.tasks._probs import CLASS_TEMPLATE, ProbabilityModel, class_probabilities

#: The paper's balance between max and mean for multi-label classification.
MULTI_LABEL_BALANCE = 0.5
#: The paper's balance for scene (single-label) classification: the max alone.
SCENE_BALANCE = 1.0
#: A class is present / a scene label is given when its score exceeds this.
CLASS_THRESHOLD = 0.5


def scores_from_probs(
    probs: np.ndarray, balance: float, mask: np.ndarray | None = None
) -> np.ndarray:
    """``balance * max + (1 - balance) * mean`` of each ``H x W`` map in ``P x H x W`` probabilities,
    over the pixels of ``mask`` only when given (0 for an empty mask).

    >>> scores_from_probs(np.array([[[1.0, 0.0]]]), 0.5).tolist()
    [0.75]
    """
    if not 0.0 <= balance <= 1.0:
        raise InputError(f"balance must lie in [0, 1], got {balance}")
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3:
        raise InputError(f"class probabilities must be P x H x W, got shape {probs.shape}")
    flat = probs.reshape(len(probs), -1)
    if mask is not None:
        flat = flat[:, np.asarray(mask, dtype=bool).ravel()]
        if flat.shape[1] == 0:
            return np.zeros(len(probs))
    return balance * flat.max(axis=1) + (1.0 - balance) * flat.mean(axis=1)


def class_scores(
    model: ProbabilityModel,
    image: np.ndarray,
    classes: str | Sequence[str],
    *,
    balance: float = MULTI_LABEL_BALANCE,
    template: str = CLASS_TEMPLATE,
) -> dict[str, float]:
    """Score of every class in ``[0, 1]``, in the order given.

    >>> class_scores(model, image, ["airport", "harbor"])  # doctest: +SKIP
    {'airport': 0.91, 'harbor': 0.07}
    """
    names, probs = class_probabilities(model, image, classes, template)
    return dict(zip(names, scores_from_probs(probs, balance).tolist(), strict=True))


@overload
def classify(
    model: ProbabilityModel,
    image: np.ndarray,
    classes: str | Sequence[str],
    multi_label: Literal[True] = ...,
    *,
    threshold: float = ...,
    balance: float | None = ...,
    template: str = ...,
) -> dict[str, float]: ...
@overload
def classify(
    model: ProbabilityModel,
    image: np.ndarray,
    classes: str | Sequence[str],
    multi_label: Literal[False],
    *,
    threshold: float = ...,
    balance: float | None = ...,
    template: str = ...,
) -> str | None: ...
@overload
def classify(
    model: ProbabilityModel,
    image: np.ndarray,
    classes: str | Sequence[str],
    multi_label: bool,
    *,
    threshold: float = ...,
    balance: float | None = ...,
    template: str = ...,
) -> dict[str, float] | str | None: ...


def classify(
    model: ProbabilityModel,
    image: np.ndarray,
    classes: str | Sequence[str],
    multi_label: bool = True,
    *,
    threshold: float = CLASS_THRESHOLD,
    balance: float | None = None,
    template: str = CLASS_TEMPLATE,
) -> dict[str, float] | str | None:
    """Which classes the image shows.

    ``multi_label=True``: ``{class: score}`` of the classes scoring above ``threshold``, best first
    (balance 0.5 by default). ``multi_label=False`` (scene classification): the best class, or None
    when its score is not above ``threshold`` (balance 1.0 by default).
    :func:`class_scores` gives the scores of all classes.

    >>> classify(model, image, ["ship", "harbor", "plane"])                 # doctest: +SKIP
    {'ship': 0.84, 'harbor': 0.62}
    >>> classify(model, image, ["airport", "harbor", "farmland"], multi_label=False)  # doctest: +SKIP
    'harbor'
    """
    if balance is None:
        balance = MULTI_LABEL_BALANCE if multi_label else SCENE_BALANCE
    scores = class_scores(model, image, classes, balance=balance, template=template)
    if multi_label:
        positive = {c: s for c, s in scores.items() if s > threshold}
        return dict(sorted(positive.items(), key=lambda kv: -kv[1]))
    best = max(scores, key=scores.__getitem__)
    return best if scores[best] > threshold else None
