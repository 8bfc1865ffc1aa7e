"""DOTA ``labelTxt`` importer: oriented boxes as 8 corner coordinates, a class and a difficulty,
after optional ``imagesource:`` and ``gsd:`` header lines.

Coordinates are pixels of the image as stored (an EXIF rotation is not applied; images that carry
one are named in a warning). Boxes with zero area or entirely outside their image are dropped, with
one warning for the folder."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon

from geosam.data._common import ClassMap, find_image, to_class
from geosam.data.images import read_header, warn_rotated
from geosam.data.instances import DroppedLabels, InstanceTable, image_record
from geosam.data.vocabulary import VOCABULARY
from geosam.errors import InputError

#: The 15 classes that DOTA-v1.0 and iSAID label exhaustively.
DOTA_CLASSES = (
    "plane", "ship", "storage-tank", "baseball-diamond", "tennis-court", "basketball-court",
    "ground-track-field", "harbor", "bridge", "large-vehicle", "small-vehicle", "helicopter",
    "roundabout", "soccer-ball-field", "swimming-pool",
)
assert set(DOTA_CLASSES) <= set(VOCABULARY)


def read_dota(
    root: str | Path,
    *,
    source: str = "dota",
    licence: str = "DOTA: academic use only, non-commercial",
    split: str = "train",
    class_map: ClassMap | None = None,
    labelled: Iterable[str] | None = DOTA_CLASSES,
) -> InstanceTable:
    """Read a DOTA folder with ``images/`` and ``labelTxt/`` (one ``<image>.txt`` per image).

    The header's ``gsd`` (metres per pixel) is kept per image. ``labelled`` are the classes the
    files label exhaustively in every image: DOTA-v1.0's 15, true of DOTA itself; ``None`` for a
    DOTA-format set of your own, whose files label the classes they hold (else absent-class
    samples would name DOTA classes that may well be in its images).

    >>> table = read_dota("dota")                  # doctest: +SKIP
    >>> table.images[["image", "gsd"]]             # doctest: +SKIP
    """
    root = Path(root)
    label_dir, image_dir = root / "labelTxt", root / "images"
    if not label_dir.is_dir() or not image_dir.is_dir():
        raise InputError(f"{root} needs images/ and labelTxt/ folders (DOTA layout)")
    images: list[dict[str, Any]] = []
    instances: list[dict[str, Any]] = []
    rotated: list[tuple[str, int]] = []
    dropped = DroppedLabels(label_dir)
    for label_file in sorted(label_dir.glob("*.txt")):
        image = find_image(image_dir, label_file.stem)
        # Coordinates are pixels of the image as stored, the way geosam reads it.
        header = read_header(image)
        width, height = header.size
        if header.orientation != 1:
            rotated.append((image.name, header.orientation))
        gsd = None
        for number, line in enumerate(label_file.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if ":" in parts[0] and len(parts) == 1:  # header, e.g. 'gsd:0.13' or 'imagesource:GoogleEarth'
                key, _, value = parts[0].partition(":")
                if key == "gsd" and value not in ("", "null", "None"):
                    gsd = float(value)
                continue
            if len(parts) < 9:
                raise InputError(f"{label_file}:{number}: expected 8 coordinates and a class, got {line!r}")
            try:
                xy = np.asarray([float(v) for v in parts[:8]]).reshape(4, 2)
            except ValueError:
                raise InputError(f"{label_file}:{number}: bad coordinates in {line!r}") from None
            class_name = to_class(parts[8], class_map)
            if class_name is None:
                continue
            poly: shapely.Geometry = Polygon(xy)
            if not poly.is_valid:
                poly = shapely.make_valid(poly)
            if not dropped.keep(poly, width, height, f"{label_file.name}:{number} of image {image.name}"):
                continue
            instances.append({
                "image": str(image), "class_name": class_name, "label": parts[8], "kind": "obox",
                "instance": number, "difficult": len(parts) > 9 and parts[9] == "1", "geometry": poly,
            })
        images.append(image_record(image, width, height, source=source, licence=licence, split=split,
                                   labelled=labelled or (), gsd=gsd if gsd is None or math.isfinite(gsd) else None))
    if labelled is None:
        held = tuple(sorted({row["class_name"] for row in instances}))
        for record in images:
            record["labelled"] = held
    warn_rotated(label_dir, rotated)
    dropped.warn()
    return InstanceTable.from_records(images, instances)
