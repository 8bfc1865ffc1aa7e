"""What every task needs from a model (kept free of model imports so the predictor can use it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class ProbabilityModel(Protocol):
    """Anything with RemoteSAM's ``predict_batch``: ``B x H x W x 3`` uint8 images and prompts in,
    ``B x P x H x W`` float32 foreground probabilities out (:class:`geosam.RemoteSAM` is one)."""

    def predict_batch(self, images: np.ndarray, prompts: str | Sequence[str]) -> np.ndarray: ...
