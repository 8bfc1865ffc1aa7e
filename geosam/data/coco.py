"""COCO json importer, with the quirks of common exports.

* Roboflow puts the project name at category id 0 (``supercategory: "none"``) as the parent of the
  real classes, and sometimes names a real class ``"0"``: a category that is only a parent is dropped,
  and a purely numeric name is replaced by its supercategory.
* ``file_name`` may contain folders; an image is looked up under ``image_dir`` with its full
  relative path, then by its base name.
* ``segmentation`` may be empty (box only), polygons, or RLE (compressed or not); ``iscrowd``
  regions are kept with ``difficult=True``.
* ``width``/``height`` are checked against the image file: resized or EXIF-rotated exports would
  otherwise put every label on the wrong pixels.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from geosam.data._common import ClassMap, guess_split, mask_to_geometry, to_class
from geosam.data.images import SWAPS_AXES, ImageHeader, read_header, warn_rotated
from geosam.data.instances import DroppedLabels, InstanceTable, image_record
from geosam.errors import InputError


def _labelled_of(
    path: Path, info: dict[str, Any], categories: dict[Any, str | None], default: set[str]
) -> set[str]:
    """The classes an image is labelled for: those of its ``labelled_category_ids`` (written by
    geosam's own exports, where one source may merge files of different classes), else every
    category of the file."""
    ids = info.get("labelled_category_ids")
    if ids is None:
        return default
    unknown = [i for i in ids if i not in categories]
    if unknown:
        raise InputError(
            f"{path}: image {info.get('file_name')!r} lists labelled_category_ids {unknown} that are "
            f"not among its categories ({sorted(categories)})"
        )
    return {c for i in ids if (c := categories[i]) is not None}


def read_coco(
    path: str | Path,
    image_dir: str | Path | None = None,
    *,
    source: str = "coco",
    licence: str | None = None,
    split: str | None = None,
    class_map: ClassMap | None = None,
    gsd: float | None = None,
) -> InstanceTable:
    """Read a COCO annotation file.

    ``image_dir`` defaults to the json's folder; ``split`` to the folder name (train/valid/test);
    ``licence`` to the file's ``licenses`` entry. Labels are mapped to canonical classes (see
    :func:`geosam.data.canonical_class`); ``class_map`` maps or drops (``None``) others.

    Each image's ``width``/``height`` must be its stored size (read from its header; geosam does
    not apply EXIF rotations, see :mod:`geosam.data.images`), else its labels would land on the wrong
    pixels: a mismatch is an :class:`~geosam.errors.InputError`. Labels with zero area or entirely
    outside their image are dropped with one warning.

    >>> table = read_coco("hrplanes/train/_annotations.coco.json", source="hrplanes")  # doctest: +SKIP
    >>> table.class_counts()                                                          # doctest: +SKIP
    {'plane': 5985}
    """
    path = Path(path)
    data = _load(path)
    image_dir = Path(image_dir) if image_dir is not None else path.parent
    split = split or guess_split(path.parent)
    categories = _categories(data["categories"], data["annotations"], class_map)
    names = _names(data["categories"])
    licences = {lic.get("id"): lic.get("name") or lic.get("url", "") for lic in data.get("licenses", [])}
    labelled = {c for c in categories.values() if c is not None}

    images: list[dict[str, Any]] = []
    by_id: dict[Any, dict[str, Any]] = {}
    mismatched: list[str] = []
    rotated: list[tuple[str, int]] = []
    for info in data["images"]:
        if info["id"] in by_id:
            raise InputError(f"{path}: image id {info['id']!r} is listed twice (second: {info['file_name']!r})")
        file = _locate(image_dir, info["file_name"])
        header = read_header(file)
        problem = _size_problem(path, info, header)
        if problem:
            mismatched.append(problem)
        elif _rotation_unconfirmed(header, declared=_declares_size(info)):
            rotated.append((str(info["file_name"]), header.orientation))
        rec = image_record(
            file,
            header.width,
            header.height,
            source=source,
            licence=licence or licences.get(info.get("license"), "") or "",
            split=split,
            labelled=_labelled_of(path, info, categories, labelled),
            gsd=gsd,
        )
        images.append(rec)
        by_id[info["id"]] = rec
    if mismatched:
        others = f" ({len(mismatched) - 1} more images differ too)" if len(mismatched) > 1 else ""
        raise InputError(f"{path}: {mismatched[0]}{others}")
    warn_rotated(path, rotated)

    dropped = DroppedLabels(path)
    instances: list[dict[str, Any]] = []
    for ann in data["annotations"]:
        img = by_id.get(ann["image_id"])
        if img is None:
            raise InputError(
                f"{path}: annotation {ann.get('id')} refers to image_id {ann['image_id']!r}, which is not "
                f"in its images list ({len(by_id)} images, ids {_some(by_id)})"
            )
        where = f"annotation {ann.get('id')} of image {Path(img['image']).name!r}"
        cat = ann["category_id"]
        if cat not in categories:
            raise InputError(
                f"{path}: {where} has unknown category_id {cat!r}; its categories list the ids "
                f"{_some(categories)}"
            )
        class_name = categories[cat]
        if class_name is None:
            continue
        geometry, kind = _geometry(ann, img["height"], img["width"], f"{path}: {where}")
        if not dropped.keep(geometry, img["width"], img["height"], where):
            continue
        instances.append(
            {
                "image": img["image"],
                "class_name": class_name,
                "label": names[cat],
                "kind": kind,
                "instance": int(ann.get("id", len(instances))),
                "difficult": bool(ann.get("iscrowd", 0)),
                "geometry": geometry,
            }
        )
    dropped.warn()
    return InstanceTable.from_records(images, instances)


def _load(path: Path) -> dict[str, Any]:
    """The parsed json, checked for the lists and keys the reader relies on."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read COCO json {path}: {err}") from err
    if not isinstance(data, dict):
        raise InputError(f"{path} is not a COCO annotation file: it holds a json {type(data).__name__}")
    required = {"images": ("id", "file_name"), "annotations": ("image_id", "category_id"),
                "categories": ("id", "name")}
    for key, fields in required.items():
        if not isinstance(data.get(key), list):
            raise InputError(f"{path} is not a COCO annotation file: it has no {key!r} list")
        for number, entry in enumerate(data[key], 1):
            missing = [f for f in fields if not isinstance(entry, dict) or f not in entry]
            if missing:
                raise InputError(f"{path}: entry {number} of {key!r} has no {missing[0]!r}: {str(entry)[:120]}")
    if not data["images"]:
        also = f" for its {len(data['annotations'])} annotations" if data["annotations"] else ""
        raise InputError(f"{path} lists no images{also}: nothing to import")
    if not data["annotations"]:
        warnings.warn(
            f"{path} lists {len(data['images'])} images but no annotations: all are imported as images "
            "without objects",
            UserWarning,
            stacklevel=3,
        )
    return data


def _some(ids: Mapping[Any, Any]) -> str:
    shown = [repr(k) for k in list(ids)[:8]]
    return "[" + ", ".join(shown) + (", ...]" if len(ids) > len(shown) else "]")


def _declares_size(info: Mapping[str, Any]) -> bool:
    return info.get("width") is not None or info.get("height") is not None


def _size_problem(path: Path, info: Mapping[str, Any], header: ImageHeader) -> str | None:
    """Why the json's width/height of an image do not fit its file (``None``: they do, or are absent)."""
    name = info["file_name"]
    if not _declares_size(info):
        return None  # not given: the file's size is used
    try:
        declared = (int(info["width"]), int(info["height"]))
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"{path}: image {name!r} has width {info.get('width')!r} and height {info.get('height')!r}: "
            "expected two whole numbers"
        ) from None
    if declared == header.size:
        return None
    sizes = (
        f"image {name!r} is {declared[0]}x{declared[1]} (width x height) in the json but "
        f"{header.width}x{header.height} in its file, so its labels would land on the wrong pixels"
    )
    if declared == (header.height, header.width):
        if header.orientation in SWAPS_AXES:
            return (
                f"{sizes}: its EXIF orientation {header.orientation} turns it by 90 degrees for display "
                "and the json describes the displayed image, while geosam reads pixels as stored. "
                "Re-save the images with the rotation applied (PIL.ImageOps.exif_transpose) and keep the json"
            )
        return (
            f"{sizes}: width and height are swapped, as when an image is rotated after labelling (e.g. "
            f"an EXIF rotation applied and the tag removed). {_SIZE_ADVICE}"
        )
    if declared[0] > 0 and declared[1] > 0:
        sx, sy = header.width / declared[0], header.height / declared[1]
        if abs(sx - sy) < 0.01:
            return f"{sizes}: it was scaled by {sx:.3g} after labelling. {_SIZE_ADVICE}"
    return f"{sizes}. {_SIZE_ADVICE}"


_SIZE_ADVICE = (
    "Use the images the json was made with, or correct its width and height if the json is what is wrong"
)


def _rotation_unconfirmed(header: ImageHeader, *, declared: bool) -> bool:
    """Whether an image's EXIF rotation leaves it open on which orientation its labels were drawn.

    A ``declared`` json size equal to the stored size settles it only when the rotation swaps a
    non-square image's axes; without one nothing does.
    """
    if header.orientation == 1:
        return False
    return not (declared and header.orientation in SWAPS_AXES and header.width != header.height)


def _names(categories: list[dict[str, Any]]) -> dict[Any, str]:
    names = {c["id"]: str(c["name"]) for c in categories}
    for c in categories:
        # Roboflow may call a class "0" and keep the meaningful name as its supercategory.
        sup = str(c.get("supercategory") or "")
        if names[c["id"]].strip().isdigit() and sup and sup.lower() != "none":
            names[c["id"]] = sup
    return names


def _categories(
    categories: list[dict[str, Any]], annotations: list[dict[str, Any]], class_map: ClassMap | None
) -> dict[Any, str | None]:
    used = {a["category_id"] for a in annotations}
    parents = {str(c.get("supercategory")) for c in categories}
    out: dict[Any, str | None] = {}
    for cid, name in _names(categories).items():
        raw = next(str(c["name"]) for c in categories if c["id"] == cid)
        if cid not in used and raw in parents:
            out[cid] = None  # Roboflow's project-name category: a parent, never a label
            continue
        out[cid] = to_class(name, class_map)
    return out


def _locate(image_dir: Path, file_name: str) -> str:
    for candidate in (image_dir / file_name, image_dir / Path(file_name).name):
        if candidate.is_file():
            return str(candidate)
    raise InputError(f"image {file_name!r} of the COCO file is not under {image_dir}")


def _geometry(ann: Mapping[str, Any], height: int, width: int, where: str) -> tuple[shapely.Geometry, str]:
    seg = ann.get("segmentation")
    if isinstance(seg, dict):  # RLE
        from pycocotools import mask as mask_utils

        if "counts" not in seg:
            raise InputError(f"{where}: its RLE segmentation has no 'counts'")
        if seg.get("size") != [height, width]:  # decoded at another size, the mask would be misplaced
            raise InputError(
                f"{where}: its RLE mask has size {seg.get('size')!r} (height, width) but the image is "
                f"{[height, width]}"
            )
        rle = seg
        if isinstance(rle.get("counts"), list):
            rle = mask_utils.frPyObjects(rle, height, width)
        with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword deprecation notice
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = np.asarray(mask_utils.decode(rle), dtype=bool)
        return mask_to_geometry(decoded), "mask"
    if isinstance(seg, list) and seg and isinstance(seg[0], list):
        if any(len(p) % 2 for p in seg):
            raise InputError(f"{where}: a segmentation polygon has an odd number of coordinates")
        polys = [Polygon(np.asarray(p, float).reshape(-1, 2)) for p in seg if len(p) >= 6]
        if polys:
            geom: shapely.Geometry = polys[0] if len(polys) == 1 else MultiPolygon(polys)
            return (geom if geom.is_valid else shapely.make_valid(geom)), "polygon"
    if "bbox" not in ann:
        raise InputError(f"{where} has neither a segmentation nor a bbox")
    try:
        x, y, w, h = (float(v) for v in ann["bbox"])
    except (TypeError, ValueError):
        raise InputError(f"{where}: bbox {ann['bbox']!r} is not [x, y, width, height]") from None
    if w < 0 or h < 0:
        raise InputError(f"{where}: bbox {ann['bbox']!r} has a negative width or height")
    return box(x, y, x + w, y + h), "box"
