"""Rule-based captions from detections: what is there, how many, and where.

As in the paper, a caption is built from the boxes of each class: one sentence on existence and
counts, then one per class on how its objects spread over a 2 x 2 or 3 x 3 grid of the image
(by box centre). Sentences are deterministic, so the same detections always read the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from geosam.data.vocabulary import plural_of
from geosam.errors import InputError
from geosam.tasks._probs import CLASS_TEMPLATE, ProbabilityModel
from geosam.tasks.detection import detect

_REGIONS = {
    2: (("upper left", "upper right"), ("lower left", "lower right")),
    3: (
        ("upper left", "upper center", "upper right"),
        ("middle left", "center", "middle right"),
        ("lower left", "lower center", "lower right"),
    ),
}


def _amount(n: int, name: str) -> str:
    return f"{n} {name if n == 1 else plural_of(name)}"


def _join(items: Sequence[str], word: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def grid_regions(boxes: np.ndarray, height: int, width: int, grid: int = 2) -> list[str]:
    """Grid region name ("upper left", "center", ...) of each box's centre."""
    if grid not in _REGIONS:
        raise InputError(f"grid must be 2 (2 x 2 regions) or 3 (3 x 3), got {grid}")
    if len(boxes) == 0:
        return []
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    col = np.clip((cx * grid // width).astype(int), 0, grid - 1)
    row = np.clip((cy * grid // height).astype(int), 0, grid - 1)
    return [_REGIONS[grid][r][c] for r, c in zip(row, col, strict=True)]


def caption_from_boxes(
    boxes: Mapping[str, np.ndarray], height: int, width: int, grid: int = 2
) -> str:
    """A caption of detections ``{class: N x 5 boxes}`` in an image of ``height x width``.

    >>> b = {"ship": np.array([[10, 10, 20, 20, 0.9], [80, 90, 90, 99, 0.8]]), "plane": np.zeros((0, 5))}
    >>> caption_from_boxes(b, 100, 100)
    'The image contains 2 ships and no planes. There is 1 ship in the upper left and 1 in the lower right.'
    """
    found = {c: np.asarray(b) for c, b in boxes.items() if len(b)}
    missing = [c for c, b in boxes.items() if not len(b)]
    if not found:
        if not missing:
            return "Nothing was looked for in the image."
        return f"The image contains no {_join([plural_of(c) for c in missing], 'or')}."
    parts = [_amount(len(b), c) for c, b in found.items()]
    if missing:
        parts.append(f"no {_join([plural_of(c) for c in missing], 'or')}")
    sentences = [f"The image contains {_join(parts)}."]
    order = [r for row in _REGIONS[grid] for r in row]  # reading order
    for name, b in found.items():
        regions = grid_regions(b[:, :4], height, width, grid)
        counts = [(r, regions.count(r)) for r in order if r in regions]
        first_region, first_n = counts[0]
        parts = [f"{_amount(first_n, name)} in the {first_region}"]
        parts += [f"{n} in the {r}" for r, n in counts[1:]]
        sentences.append(f"There {'is' if first_n == 1 else 'are'} {_join(parts)}.")
    return " ".join(sentences)


def caption(
    model: ProbabilityModel,
    image: np.ndarray,
    classes: str | Sequence[str],
    *,
    grid: int = 2,
    threshold: float = 0.5,
    template: str = CLASS_TEMPLATE,
) -> str:
    """Describe which of ``classes`` the image shows, how many of each, and where (rule-based).

    ``grid`` 2 or 3 splits the image into 2 x 2 or 3 x 3 regions for the "where" sentences.

    >>> caption(model, image, ["ship", "harbor"])  # doctest: +SKIP
    'The image contains 3 ships and 1 harbor. There are 2 ships in the upper left and 1 in ...'
    """
    if grid not in _REGIONS:
        raise InputError(f"grid must be 2 (2 x 2 regions) or 3 (3 x 3), got {grid}")
    boxes = detect(model, image, classes, threshold=threshold, template=template)
    return caption_from_boxes(boxes, image.shape[0], image.shape[1], grid)
