"""Prompts of class names and their probabilities for one image, in one batched call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geosam.errors import PromptError
from geosam.model.predictor import check_images
from geosam.tasks._protocol import ProbabilityModel

__all__ = [
    "CLASS_TEMPLATE",
    "ProbabilityModel",
    "check_classes",
    "class_probabilities",
    "class_prompts",
    "prompt_probabilities",
]

#: The paper's prompt for a class name in semantic segmentation, detection and classification.
CLASS_TEMPLATE = "{} in the image"


def check_classes(classes: str | Sequence[str]) -> list[str]:
    """Class names as a list: a single string is one class; names must be unique and non-empty."""
    items = [classes] if isinstance(classes, str) else list(classes)
    if not items:
        raise PromptError("no classes given: pass a list of class names such as ['ship', 'harbor']")
    for c in items:
        if not isinstance(c, str) or not c.strip():
            raise PromptError(f"class names must be non-empty strings, got {c!r}")
    dupes = sorted({c for c in items if items.count(c) > 1})
    if dupes:
        raise PromptError(f"class names must be unique; repeated: {', '.join(dupes)}")
    return items


def class_prompts(classes: Sequence[str], template: str = CLASS_TEMPLATE) -> list[str]:
    """The prompt of each class: ``template.format(name)`` (the paper's "{class} in the image")."""
    if "{}" not in template:
        raise PromptError(
            f"a class template needs a '{{}}' placeholder for the name, got {template!r}"
        )
    return [template.format(c) for c in classes]


def prompt_probabilities(
    model: ProbabilityModel, image: np.ndarray, prompts: Sequence[str]
) -> np.ndarray:
    """``P x H x W`` probabilities of all prompts for one image, in one batched call."""
    check_images(image, batched=False)
    return np.asarray(model.predict_batch(image[None], list(prompts))[0])


def class_probabilities(
    model: ProbabilityModel,
    image: np.ndarray,
    classes: str | Sequence[str],
    template: str = CLASS_TEMPLATE,
) -> tuple[list[str], np.ndarray]:
    """Checked class names and their ``P x H x W`` probabilities (one batched forward per class)."""
    names = check_classes(classes)
    return names, prompt_probabilities(model, image, class_prompts(names, template))
