"""The table of labelled instances that every importer produces.

An :class:`InstanceTable` holds two frames:

* ``instances`` (a GeoDataFrame, one row per labelled object or land-cover region): ``image``,
  ``class_name`` (canonical, see :mod:`geosam.data.vocabulary`), ``label`` (as the source spells
  it), ``geometry`` (shapely, in **pixel coordinates** of the image: x right, y down, pixel
  ``(row, col)`` covers ``[col, col+1] x [row, row+1]``), ``kind`` (how it was labelled: ``box``,
  ``obox`` (oriented box), ``polygon`` or ``mask``; boxes give coarse masks), ``instance`` (id within
  the image), ``difficult`` (DOTA difficulty or COCO ``iscrowd``).
* ``images`` (a DataFrame, one row per image, including images with no instances): ``image``
  (path), ``width``, ``height``, ``source``, ``licence``, ``split``, ``gsd`` (metres per pixel, NaN
  if unknown) and ``labelled`` (the canonical classes the source labels exhaustively in it, so an
  absent one is truly absent).

>>> table = read_yolo("ships_ge/train")                      # doctest: +SKIP
>>> table.instances.class_name.value_counts()                  # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry import box

from geosam.errors import InputError

IMAGE_COLUMNS = ("image", "width", "height", "source", "licence", "split", "gsd", "labelled")
INSTANCE_COLUMNS = ("image", "class_name", "label", "kind", "instance", "difficult", "geometry")
KINDS = ("box", "obox", "polygon", "mask")

#: Why a label is dropped on import, as the warning words it.
ZERO_AREA = "with zero area"
OUTSIDE = "entirely outside their image"


@dataclass(frozen=True)
class InstanceTable:
    """Labelled instances of a set of images (see the module docstring for the columns)."""

    images: pd.DataFrame
    instances: gpd.GeoDataFrame

    def __post_init__(self) -> None:
        missing = [c for c in IMAGE_COLUMNS if c not in self.images.columns]
        missing += [c for c in INSTANCE_COLUMNS if c not in self.instances.columns]
        if missing:
            raise InputError(f"an InstanceTable needs the columns {missing}")
        unknown = set(self.instances["image"]) - set(self.images["image"])
        if unknown:
            raise InputError(f"instances refer to images that are not in the table: {sorted(unknown)[:3]}")

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_records(
        cls, images: Iterable[dict[str, Any]], instances: Iterable[dict[str, Any]]
    ) -> InstanceTable:
        """Build a table from dicts with the image and instance columns."""
        img = pd.DataFrame(list(images), columns=list(IMAGE_COLUMNS))
        img["gsd"] = img["gsd"].astype(float)
        img["labelled"] = [tuple(sorted(v)) for v in img["labelled"]]
        rows = list(instances)
        inst = gpd.GeoDataFrame(rows, columns=list(INSTANCE_COLUMNS), geometry="geometry", crs=None)
        inst["instance"] = inst["instance"].astype("int64")
        inst["difficult"] = inst["difficult"].astype(bool)
        return cls(img.reset_index(drop=True), inst.reset_index(drop=True))

    @classmethod
    def concat(cls, tables: Sequence[InstanceTable]) -> InstanceTable:
        """One table holding the images and instances of all ``tables``."""
        if not tables:
            return cls.from_records([], [])
        images = pd.concat([t.images for t in tables], ignore_index=True)
        dup = images["image"][images["image"].duplicated()]
        if len(dup):
            raise InputError(f"image {dup.iloc[0]!r} appears in more than one table")
        inst = pd.concat([t.instances for t in tables], ignore_index=True)
        return cls(images, gpd.GeoDataFrame(inst, geometry="geometry", crs=None))

    # -- queries --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.instances)

    def __repr__(self) -> str:
        return (
            f"InstanceTable({len(self.images)} images, {len(self.instances)} instances, "
            f"classes={self.class_counts()})"
        )

    def class_counts(self) -> dict[str, int]:
        """Number of instances per canonical class."""
        return {str(k): int(v) for k, v in self.instances["class_name"].value_counts().sort_index().items()}

    def select(self, **equal: Any) -> InstanceTable:
        """The images (and their instances) whose columns equal the given values.

        >>> table.select(split="valid", source="hrplanes")   # doctest: +SKIP
        """
        keep = pd.Series(True, index=self.images.index)
        for column, value in equal.items():
            keep &= self.images[column] == value
        images = self.images[keep].reset_index(drop=True)
        inst = self.instances[self.instances["image"].isin(set(images["image"]))]
        return InstanceTable(images, inst.reset_index(drop=True))

    def instances_of(self, image: str | Path) -> gpd.GeoDataFrame:
        """The instances of one image."""
        return self.instances[self.instances["image"] == str(image)]


def image_record(
    image: str | Path,
    width: int,
    height: int,
    *,
    source: str,
    licence: str,
    split: str,
    labelled: Iterable[str],
    gsd: float | None = None,
) -> dict[str, Any]:
    """An ``images`` row."""
    return {
        "image": str(image),
        "width": int(width),
        "height": int(height),
        "source": source,
        "licence": licence,
        "split": split,
        "gsd": math.nan if gsd is None else float(gsd),
        "labelled": tuple(sorted(set(labelled))),
    }


def drop_reason(geometry: shapely.Geometry, width: float, height: float) -> str | None:
    """Why a label in image pixels cannot become an instance (``None``: it can).

    A label partly outside the image is kept whole: building chips clips it to each window and
    records the fraction that is visible (:func:`geosam.data.chips.clip_instances`), which a label
    clipped here would lose.
    """
    if geometry.is_empty or not geometry.area > 0:  # also NaN coordinates
        return ZERO_AREA
    x0, y0, x1, y1 = geometry.bounds
    if x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height:
        return None  # the common case, without a costly intersection
    if not geometry.intersection(box(0, 0, width, height)).area > 0:
        return OUTSIDE
    return None


@dataclass
class DroppedLabels:
    """Labels of one label file dropped by :func:`drop_reason`, reported in a single warning.

    >>> dropped = DroppedLabels("ann.json")                      # doctest: +SKIP
    >>> if dropped.keep(geometry, width, height, "image a.png, annotation 3"): ...  # doctest: +SKIP
    >>> dropped.warn()                                                             # doctest: +SKIP
    """

    file: str | Path
    checked: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    def keep(self, geometry: shapely.Geometry, width: float, height: float, where: str) -> bool:
        """Whether the label can be kept; counts it (``where`` names it in the warning) if not."""
        self.checked += 1
        reason = drop_reason(geometry, width, height)
        if reason is None:
            return True
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.examples.setdefault(reason, where)
        return False

    def warn(self, *, stacklevel: int = 3) -> None:
        """One UserWarning with the counts per reason, if any label was dropped."""
        if not self.counts:
            return
        parts = "; ".join(f"{n} {reason} (e.g. {self.examples[reason]})" for reason, n in self.counts.items())
        warnings.warn(
            f"{self.file}: dropped {sum(self.counts.values())} of {self.checked} labels that cannot give "
            f"a mask: {parts}",
            UserWarning,
            stacklevel=stacklevel,
        )
