"""COCO json importer, with the quirks of common exports.

* Roboflow puts the project name at category id 0 (``supercategory: "none"``) as the parent of the
  real classes, and sometimes names a real class ``"0"``: a category that is only a parent is dropped,
  and a purely numeric name is replaced by its supercategory.
* ``file_name`` may contain folders; an image is looked up under ``image_dir`` with its full
  relative path, then by its base name.
* ``segmentation`` may be empty (box only), polygons, or RLE (compressed or not); ``iscrowd``
  regions are kept with ``difficult=True``.
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
from geosam.data.instances import InstanceTable, image_record
from geosam.errors import InputError


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

    >>> table = read_coco("hrplanes/train/_annotations.coco.json", source="hrplanes")  # doctest: +SKIP
    >>> table.class_counts()                                                          # doctest: +SKIP
    {'plane': 5985}
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read COCO json {path}: {err}") from err
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise InputError(f"{path} is not a COCO annotation file: it has no {key!r} list")
    image_dir = Path(image_dir) if image_dir is not None else path.parent
    split = split or guess_split(path.parent)
    categories = _categories(data["categories"], data["annotations"], class_map)
    names = _names(data["categories"])
    licences = {lic.get("id"): lic.get("name") or lic.get("url", "") for lic in data.get("licenses", [])}

    images: list[dict[str, Any]] = []
    by_id: dict[Any, dict[str, Any]] = {}
    for info in data["images"]:
        file = _locate(image_dir, info["file_name"])
        rec = image_record(
            file,
            info["width"],
            info["height"],
            source=source,
            licence=licence or licences.get(info.get("license"), "") or "",
            split=split,
            labelled={c for c in categories.values() if c is not None},
            gsd=gsd,
        )
        images.append(rec)
        by_id[info["id"]] = rec

    instances: list[dict[str, Any]] = []
    for ann in data["annotations"]:
        cat = ann["category_id"]
        if cat not in categories:
            raise InputError(f"{path}: annotation {ann.get('id')} has unknown category_id {cat}")
        class_name = categories[cat]
        if class_name is None:
            continue
        img = by_id.get(ann["image_id"])
        if img is None:
            raise InputError(f"{path}: annotation {ann.get('id')} refers to missing image {ann['image_id']}")
        geometry, kind = _geometry(ann, img["height"], img["width"])
        if geometry.is_empty:
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
    return InstanceTable.from_records(images, instances)


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


def _geometry(ann: Mapping[str, Any], height: int, width: int) -> tuple[shapely.Geometry, str]:
    seg = ann.get("segmentation")
    if isinstance(seg, dict):  # RLE
        from pycocotools import mask as mask_utils

        rle = seg
        if isinstance(rle.get("counts"), list):
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword deprecation notice
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = np.asarray(mask_utils.decode(rle), dtype=bool)
        return mask_to_geometry(decoded), "mask"
    if isinstance(seg, list) and seg and isinstance(seg[0], list):
        polys = [Polygon(np.asarray(p, float).reshape(-1, 2)) for p in seg if len(p) >= 6]
        if polys:
            geom: shapely.Geometry = polys[0] if len(polys) == 1 else MultiPolygon(polys)
            return (geom if geom.is_valid else shapely.make_valid(geom)), "polygon"
    if "bbox" not in ann:
        raise InputError(f"COCO annotation {ann.get('id')} has neither a segmentation nor a bbox")
    x, y, w, h = (float(v) for v in ann["bbox"])
    return box(x, y, x + w, y + h), "box"
