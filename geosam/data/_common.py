"""Helpers shared by the importers: image sizes, label mapping, masks to polygons."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import rasterio.features
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from geosam.data.vocabulary import canonical_class
from geosam.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
_SPLIT_NAMES = {"train": "train", "valid": "valid", "val": "valid", "test": "test", "heldout": "heldout"}

ClassMap = Mapping[str, str | None]


def guess_split(path: str | Path) -> str:
    """``train``/``valid``/``test`` from a folder name on the path, else ``train``."""
    for part in reversed(Path(path).parts):
        if part.lower() in _SPLIT_NAMES:
            return _SPLIT_NAMES[part.lower()]
    return "train"


def to_class(label: str, class_map: ClassMap | None) -> str | None:
    """The canonical class of a source label (``None``: the label is to be skipped)."""
    if class_map is not None and label in class_map:
        mapped = class_map[label]
        return None if mapped is None else canonical_class(mapped)
    return canonical_class(label)


def find_image(directory: Path, stem: str) -> Path:
    """The image file named ``stem`` with any usual suffix in ``directory``."""
    for suffix in IMAGE_SUFFIXES:
        for candidate in (directory / f"{stem}{suffix}", directory / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    raise InputError(f"no image named {stem!r} (.png/.jpg/.tif ...) in {directory}")


def mask_to_geometry(mask: np.ndarray) -> BaseGeometry:
    """The pixel-exact (Multi)Polygon covering the true pixels of a 2-D mask.

    Rasterising it again (pixel centres inside) gives back exactly ``mask``.
    """
    polys = [
        shape(geom)
        for geom, value in rasterio.features.shapes(
            mask.astype(np.uint8), mask=mask.astype(bool), connectivity=8
        )
        if value
    ]
    return _as_multi(polys)


def label_image_to_geometries(labels: np.ndarray) -> dict[int, BaseGeometry]:
    """Pixel-exact geometry of every non-zero value of an integer label image, in one pass."""
    if labels.dtype not in (np.int32, np.uint8, np.uint16, np.int16):
        labels = labels.astype(np.int32)
    parts: dict[int, list[Polygon]] = {}
    for geom, value in rasterio.features.shapes(labels, mask=labels != 0, connectivity=8):
        parts.setdefault(int(value), []).append(shape(geom))
    return {k: _as_multi(v) for k, v in parts.items()}


def _as_multi(polys: list[Polygon]) -> BaseGeometry:
    if len(polys) == 1:
        return polys[0]
    # Regions of one value never overlap, so a MultiPolygon is valid without a costly union.
    out = MultiPolygon(polys)
    return out if out.is_valid else shapely.make_valid(out)
