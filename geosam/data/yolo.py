"""YOLO txt importer: ``<split>/images/*.jpg`` with ``<split>/labels/*.txt`` and class names from
``data.yaml``. Lines are ``class cx cy w h`` (boxes) or ``class x1 y1 x2 y2 ...`` (YOLO-seg
polygons), all normalised to the image size (as stored: an EXIF rotation is not applied, and
images that carry one are named in a warning). Labels with zero area or entirely outside their
image are dropped, with one warning per split."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import yaml
from shapely.geometry import Polygon, box

from geosam.data._common import IMAGE_SUFFIXES, ClassMap, guess_split, to_class
from geosam.data.images import read_header, warn_rotated
from geosam.data.instances import DroppedLabels, InstanceTable, image_record
from geosam.errors import InputError


def read_yolo(
    path: str | Path,
    *,
    names: Sequence[str] | None = None,
    source: str = "yolo",
    licence: str = "",
    split: str | None = None,
    class_map: ClassMap | None = None,
    gsd: float | None = None,
) -> InstanceTable:
    """Read a YOLO dataset split folder (with ``images/`` and ``labels/``) or a dataset root whose
    sub-folders are splits.

    Class names come from ``names`` or the ``data.yaml`` in the folder or its parent.

    >>> table = read_yolo("ships_ge/train", source="ships_ge", licence="CC BY 4.0")  # doctest: +SKIP
    >>> table.class_counts()                                                       # doctest: +SKIP
    {'ship': 1557}
    """
    path = Path(path)
    if not (path / "images").is_dir():
        splits = sorted(p for p in path.iterdir() if (p / "images").is_dir()) if path.is_dir() else []
        if not splits:
            raise InputError(f"{path} has no images/ folder (nor split folders with one): not a YOLO dataset")
        return InstanceTable.concat(
            [
                read_yolo(p, names=names, source=source, licence=licence, split=split,
                          class_map=class_map, gsd=gsd)
                for p in splits
            ]
        )
    names = list(names) if names is not None else _yaml_names(path)
    classes = [to_class(n, class_map) for n in names]
    labelled = {c for c in classes if c is not None}
    split = split or guess_split(path)
    label_dir = path / "labels"
    images: list[dict[str, Any]] = []
    instances: list[dict[str, Any]] = []
    rotated: list[tuple[str, int]] = []
    dropped = DroppedLabels(label_dir)
    files = sorted(p for p in (path / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for file in files:
        # Coordinates are fractions of the stored size, the one geosam reads pixels at.
        header = read_header(file)
        width, height = header.size
        images.append(image_record(file, width, height, source=source, licence=licence,
                                   split=split, labelled=labelled, gsd=gsd))
        label_file = label_dir / f"{file.stem}.txt"
        if not label_file.is_file():
            continue  # YOLO convention: no label file = no objects
        if header.orientation != 1:
            rotated.append((file.name, header.orientation))
        for number, line in enumerate(label_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            geometry, kind, cls = _parse_line(line, width, height, label_file, number)
            if not 0 <= cls < len(classes):
                raise InputError(f"{label_file}:{number}: class {cls} but only {len(names)} names (0 to {len(names) - 1})")
            if classes[cls] is None:
                continue
            if not dropped.keep(geometry, width, height, f"{label_file.name}:{number} of image {file.name}"):
                continue
            instances.append({
                "image": str(file), "class_name": classes[cls], "label": names[cls], "kind": kind,
                "instance": number, "difficult": False, "geometry": geometry,
            })
    _warn_orphans(label_dir, {f.stem for f in files})
    warn_rotated(label_dir, rotated)
    dropped.warn()
    return InstanceTable.from_records(images, instances)


def _warn_orphans(label_dir: Path, stems: set[str]) -> None:
    """Warn about label files without an image: their labels cannot be used."""
    # labelImg keeps the class names in labels/classes.txt
    found = label_dir.glob("*.txt") if label_dir.is_dir() else iter(())
    orphans = sorted(f.name for f in found if f.stem not in stems and f.name != "classes.txt")
    if orphans:
        warnings.warn(
            f"{label_dir}: {len(orphans)} label files have no image of the same name in images/ and are "
            f"ignored, e.g. {orphans[0]}",
            UserWarning,
            stacklevel=3,
        )


def _yaml_names(path: Path) -> list[str]:
    for candidate in (path / "data.yaml", path.parent / "data.yaml"):
        if candidate.is_file():
            spec = yaml.safe_load(candidate.read_text()) or {}
            names = spec.get("names")
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names)]
            if isinstance(names, list):
                return [str(n) for n in names]
            raise InputError(f"{candidate} has no 'names' list")
    raise InputError(f"no data.yaml next to {path}: pass names=[...] for the class indices")


def _parse_line(
    line: str, width: int, height: int, file: Path, number: int
) -> tuple[shapely.Geometry, str, int]:
    try:
        values = [float(v) for v in line.split()]
    except ValueError:
        raise InputError(f"{file}:{number}: not a YOLO label line: {line!r}") from None
    if not values[0].is_integer():
        raise InputError(f"{file}:{number}: the class {line.split()[0]!r} is not a whole number")
    cls = int(values[0])
    coords = np.asarray(values[1:])
    if len(coords) == 4:
        cx, cy, w, h = coords * [width, height, width, height]
        if w < 0 or h < 0:
            raise InputError(f"{file}:{number}: negative box width or height in {line!r}")
        return box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), "box", cls
    if len(coords) >= 6 and len(coords) % 2 == 0:
        poly = Polygon(coords.reshape(-1, 2) * [width, height])
        return (poly if poly.is_valid else shapely.make_valid(poly)), "polygon", cls
    raise InputError(f"{file}:{number}: expected 'class cx cy w h' or 'class x1 y1 x2 y2 ...', got {line!r}")
