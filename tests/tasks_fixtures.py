"""Models for the task and evaluation tests: fixed probability maps and a ground-truth oracle.

The real network (untrained head) gives arbitrary maps, so the tests check mechanics with it; these
stand-ins make the expected output of a task or metric exactly known. Both implement
``predict_batch`` (geosam.tasks.ProbabilityModel), the only thing tasks ask of a model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

EVAL_DATA = Path(__file__).parent / "data" / "eval"


class FixedMaps:
    """Returns the same ``H x W`` map per prompt for every image (zeros for unknown prompts).

    Maps given for one image size are only valid for images of that size.
    """

    def __init__(self, maps: Mapping[str, np.ndarray]) -> None:
        self.maps = {k: np.asarray(v, dtype=np.float32) for k, v in maps.items()}
        self.calls: list[tuple[int, tuple[str, ...]]] = []

    def predict_batch(self, images: np.ndarray, prompts: str | Sequence[str]) -> np.ndarray:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        self.calls.append((len(images), tuple(prompts)))
        b, h, w = images.shape[:3]
        out = np.zeros((b, len(prompts), h, w), dtype=np.float32)
        for j, p in enumerate(prompts):
            if p in self.maps:
                out[:, j] = self.maps[p]
        return out


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class Oracle:
    """Answers each (image, prompt) with a registered mask: the ground truth, for exact scores.

    A window of a registered image (evaluation predicts elongated and large images in windows) is
    answered with the same window of the mask."""

    def __init__(self) -> None:
        self.masks: dict[tuple[str, str], np.ndarray] = {}
        self.images: dict[str, np.ndarray] = {}

    def add(self, image: np.ndarray, prompt: str, mask: np.ndarray) -> None:
        self.masks[(_key(image), prompt)] = mask.astype(np.float32)
        self.images[_key(image)] = image

    def _locate(self, window: np.ndarray) -> tuple[str, int, int] | None:
        h, w = window.shape[:2]
        for key, image in self.images.items():
            big_h, big_w = image.shape[:2]
            if big_h < h or big_w < w:
                continue
            corner = (image[: big_h - h + 1, : big_w - w + 1] == window[0, 0]).all(axis=-1)
            for y, x in np.argwhere(corner):
                if np.array_equal(image[y : y + h, x : x + w], window):
                    return key, int(y), int(x)
        return None

    def predict_batch(self, images: np.ndarray, prompts: str | Sequence[str]) -> np.ndarray:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        b, h, w = images.shape[:3]
        out = np.zeros((b, len(prompts), h, w), dtype=np.float32)
        for i, image in enumerate(images):
            found = self._locate(image)
            if found is None:
                continue
            key, y, x = found
            for j, p in enumerate(prompts):
                mask = self.masks.get((key, p))
                if mask is not None:
                    out[i, j] = mask[y : y + h, x : x + w]
        return out


class PixelModel:
    """Probability = red channel / 255: a per-pixel function, so tiling must not change it."""

    def predict_batch(self, images: np.ndarray, prompts: str | Sequence[str]) -> np.ndarray:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        red = images[..., 0].astype(np.float32) / 255.0
        return np.repeat(red[:, None], len(prompts), axis=1)
