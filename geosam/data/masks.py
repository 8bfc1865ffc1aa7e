"""Importers of raster labels: iSAID instance masks and semantic (class-index) mask images.

Each labelled region becomes a pixel-exact polygon (``kind="mask"``): rasterising it again gives
the original pixels back.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from geosam.data._common import (
    ClassMap,
    find_image,
    guess_split,
    label_image_to_geometries,
    to_class,
)
from geosam.data.dota import DOTA_CLASSES
from geosam.data.images import read_header, read_label_raster
from geosam.data.instances import InstanceTable, image_record
from geosam.errors import InputError

#: iSAID class palette of ``*_instance_color_RGB.png`` (RGB), from the iSAID devkit.
ISAID_PALETTE: dict[tuple[int, int, int], str] = {
    (0, 0, 63): "ship",
    (0, 63, 63): "storage-tank",
    (0, 63, 0): "baseball-diamond",
    (0, 63, 127): "tennis-court",
    (0, 63, 191): "basketball-court",
    (0, 63, 255): "ground-track-field",
    (0, 127, 63): "bridge",
    (0, 127, 127): "large-vehicle",
    (0, 0, 127): "small-vehicle",
    (0, 0, 191): "helicopter",
    (0, 0, 255): "swimming-pool",
    (0, 191, 127): "roundabout",
    (0, 127, 191): "soccer-ball-field",
    (0, 127, 255): "plane",
    (0, 100, 155): "harbor",
}

#: Class tables of the semantic datasets in the shared data (``None``: not a class).
LOVEDA_CLASSES: dict[int, str | None] = {
    0: None, 1: None, 2: "building", 3: "road", 4: "water", 5: "barren", 6: "forest", 7: "agriculture",
}
VAIHINGEN_CLASSES: dict[int, str | None] = {
    0: None, 1: "impervious", 2: "building", 3: "low-vegetation", 4: "tree", 5: "car",
}


def _check_grid(mask_file: Path, image: Path, width: int, height: int) -> None:
    """Refuse a mask that is not on its image's pixel grid: chips are cut from the image in mask
    coordinates, so any other size would misplace every label."""
    header = read_header(image)
    if (header.width, header.height) != (width, height):
        raise InputError(f"{mask_file} is {width} x {height} px but its image {image} is {header.width} x "
                         f"{header.height}: a mask must be on the image's pixel grid")


def _rgb_key(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def read_isaid(
    folder: str | Path,
    *,
    source: str = "isaid",
    licence: str = "iSAID: academic use only, non-commercial",
    split: str | None = None,
) -> InstanceTable:
    """Read iSAID images ``<name>.png`` with ``<name>_instance_color_RGB.png`` (class palette)
    and ``<name>_instance_id_RGB.png`` (one colour per instance) from ``folder``.

    An instance is a connected set of pixels sharing one id colour and one class colour.

    >>> read_isaid("isaid/train").class_counts()   # doctest: +SKIP
    {'large-vehicle': 80, 'small-vehicle': 51}
    """
    folder = Path(folder)
    color_files = sorted(folder.glob("*_instance_color_RGB.png"))
    if not color_files:
        raise InputError(f"no *_instance_color_RGB.png files in {folder}: not an iSAID folder")
    palette = {(r << 16) | (g << 8) | b: name for (r, g, b), name in ISAID_PALETTE.items()}
    images: list[dict[str, Any]] = []
    instances: list[dict[str, Any]] = []
    for color_file in color_files:
        stem = color_file.name.removesuffix("_instance_color_RGB.png")
        id_file = folder / f"{stem}_instance_id_RGB.png"
        if not id_file.is_file():
            raise InputError(f"{color_file} has no matching {id_file.name}")
        image = find_image(folder, stem)
        color = _rgb_key(read_label_raster(color_file))
        ids = _rgb_key(read_label_raster(id_file))
        if color.shape != ids.shape:
            raise InputError(f"{color_file.name} and {id_file.name} differ in size")
        unknown = set(np.unique(color).tolist()) - set(palette) - {0}
        if unknown:
            raise InputError(f"{color_file}: colours not in the iSAID palette: {sorted(unknown)[:5]}")
        # One label per (instance colour, class colour) pair.
        pairs, inverse = np.unique(
            np.stack([ids.ravel(), color.ravel()], 1), axis=0, return_inverse=True
        )
        labels = inverse.reshape(ids.shape).astype(np.int32) + 1
        labels[(ids == 0) | (color == 0)] = 0
        geoms = label_image_to_geometries(labels)
        height, width = ids.shape
        _check_grid(color_file, image, width, height)
        images.append(image_record(image, width, height, source=source, licence=licence,
                                   split=split or guess_split(folder), labelled=DOTA_CLASSES))
        for value, geom in sorted(geoms.items()):
            class_name = palette[int(pairs[value - 1][1])]
            instances.append({
                "image": str(image), "class_name": class_name, "label": class_name, "kind": "mask",
                "instance": int(pairs[value - 1][0]), "difficult": False, "geometry": geom,
            })
    return InstanceTable.from_records(images, instances)


def read_semantic_masks(
    images: str | Path,
    masks: str | Path,
    classes: Mapping[int, str | None],
    *,
    source: str = "semantic",
    licence: str = "",
    split: str | None = None,
    gsd: float | None = None,
    min_pixels: int = 1,
    class_map: ClassMap | None = None,
) -> InstanceTable:
    """Read class-index mask images (one value per class) paired by file stem with images.

    ``images``/``masks`` are folders (or single files). Every connected region (8-connected) of a
    class becomes one instance; regions under ``min_pixels`` are dropped. ``classes`` maps mask
    values to class labels (``None``: background, clutter or no-data).

    >>> read_semantic_masks("loveda/img", "loveda/ann", LOVEDA_CLASSES, source="loveda")  # doctest: +SKIP
    """
    images, masks = Path(images), Path(masks)
    if masks.is_file():
        pairs = [(find_image(images, masks.stem) if images.is_dir() else images, masks)]
    elif masks.is_dir():
        pairs = [(find_image(images, m.stem), m) for m in sorted(masks.iterdir())
                 if m.suffix.lower() in (".png", ".tif", ".tiff")]
    else:
        raise InputError(f"mask file or folder not found: {masks}")
    if not pairs:
        raise InputError(f"no mask images in {masks}")
    # Keys as int whether the table came from Python or from a JSON file ("2": "building").
    labels = {int(k): v for k, v in classes.items()}
    table = {k: (None if v is None else to_class(v, class_map)) for k, v in labels.items()}
    labelled = {c for c in table.values() if c is not None}
    out_images: list[dict[str, Any]] = []
    instances: list[dict[str, Any]] = []
    for image, mask_file in pairs:
        mask = read_label_raster(mask_file)
        if mask.ndim != 2:
            raise InputError(f"{mask_file} is not a single-band class-index mask (shape {mask.shape})")
        unknown = set(np.unique(mask).tolist()) - set(table)
        if unknown:
            raise InputError(f"{mask_file} has values {sorted(unknown)} that the class table lacks")
        height, width = mask.shape
        _check_grid(mask_file, image, width, height)
        out_images.append(image_record(image, width, height, source=source, licence=licence,
                                       split=split or guess_split(mask_file.parent), labelled=labelled, gsd=gsd))
        number = 0
        for value, class_name in sorted(table.items()):
            if class_name is None:
                continue
            components, count = ndimage.label(mask == value, structure=np.ones((3, 3)))
            if count == 0:
                continue
            sizes = np.bincount(components.ravel(), minlength=count + 1)
            keep = sizes >= min_pixels
            keep[0] = False
            components[~keep[components]] = 0
            for _, geom in sorted(label_image_to_geometries(components.astype(np.int32)).items()):
                number += 1
                instances.append({
                    "image": str(image), "class_name": class_name, "label": str(labels[value]),
                    "kind": "mask", "instance": number, "difficult": False, "geometry": geom,
                })
    return InstanceTable.from_records(out_images, instances)
