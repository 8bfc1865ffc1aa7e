"""Small real labelled crops (tests/data, see its README) and a triplet dataset built from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geosam.data import (
    LOVEDA_CLASSES,
    VAIHINGEN_CLASSES,
    InstanceTable,
    build_dataset,
    read_box_csv,
    read_coco,
    read_dota,
    read_isaid,
    read_semantic_masks,
    read_yolo,
)

DATA = Path(__file__).parent / "data"
CHIP_SOURCES = ("dota", "isaid", "loveda", "vaihingen", "neon")


def crops_table() -> InstanceTable:
    """Every importer's test crop in one table."""
    return InstanceTable.concat([
        read_yolo(DATA / "ships_ge" / "yolo", source="ships_ge", licence="CC BY 4.0"),
        read_coco(DATA / "hrplanes" / "valid" / "_annotations.coco.json", source="hrplanes"),
        read_dota(DATA / "dota"),
        read_isaid(DATA / "isaid"),
        read_semantic_masks(DATA / "loveda" / "img", DATA / "loveda" / "ann", LOVEDA_CLASSES, source="loveda",
                            licence="CC BY-NC-SA 4.0", split="train", gsd=0.3, min_pixels=16),
        read_semantic_masks(DATA / "vaihingen" / "img", DATA / "vaihingen" / "ann", VAIHINGEN_CLASSES,
                            source="vaihingen", licence="ISPRS", split="train", gsd=0.09, min_pixels=16),
        read_box_csv(DATA / "neon" / "OSBS_029_crop.csv", source="neon", licence="CC0", split="train", gsd=0.1),
    ])


def build_crops(out: Path, *, seed: int = 0, **options: Any) -> dict[str, Any]:
    """The triplet dataset of the crops, chips stored at 256 pixels."""
    return build_dataset(
        crops_table(), out, seed=seed, out_size=256, chip_sources=CHIP_SOURCES,
        heldout_sources=("dota", "isaid", "loveda"), progress=False,
        known_absent={"ships_ge": ("plane", "helicopter", "storage-tank"), "hrplanes": ("ship", "helicopter")},
        **options,
    )
