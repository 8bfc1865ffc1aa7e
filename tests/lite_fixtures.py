"""A small real image shared by the model tests."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"


@functools.cache
def sample_rgb() -> np.ndarray:
    """A real 256 x 256 aerial RGB crop (see tests/data/README.md)."""
    from PIL import Image

    return np.asarray(Image.open(DATA / "ships_ge" / "ships_crop.png").convert("RGB"))
