"""The labelled sources of the shared data folder, with their licences, how to chip them and which
classes are known to be absent from their scenes (for hard one-to-zero expressions).

>>> table = read_shared_data("/work/shared/data")   # doctest: +SKIP
>>> sorted(table.images.source.unique())           # doctest: +SKIP
['dota', 'hrplanes', 'isaid', 'loveda', 'neon', 'ships_ge', 'spacenet', 'vaihingen']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geosam.data.coco import read_coco
from geosam.data.dota import read_dota
from geosam.data.instances import InstanceTable
from geosam.data.masks import LOVEDA_CLASSES, VAIHINGEN_CLASSES, read_isaid, read_semantic_masks
from geosam.data.vector import read_box_csv, read_vector_labels
from geosam.data.yolo import read_yolo
from geosam.errors import InputError

_SPORTS = ("tennis-court", "basketball-court", "baseball-diamond", "soccer-ball-field",
           "ground-track-field", "swimming-pool")


@dataclass(frozen=True)
class Source:
    """A labelled source: how to read it and how to turn it into training chips.

    ``known_absent``: classes the source does not label but that do not occur in its scenes
    (checked by looking at them), so asking for them must give an empty mask. ``chip``: cut the
    images into chips (large scenes); ``heldout``: keep the last quarter of each train image out of
    training as the ``heldout`` split.
    """

    name: str
    licence: str
    read: Callable[[Path], InstanceTable]
    chip: bool = False
    heldout: bool = False
    known_absent: tuple[str, ...] = ()
    commercial_use: bool = True


SHARED_SOURCES: tuple[Source, ...] = (
    Source(
        "ships_ge", "CC BY 4.0",
        lambda root: read_yolo(root / "ships_ge", source="ships_ge", licence="CC BY 4.0"),
        # Open water and marinas: no aircraft, sports grounds or tanks (vehicles and buildings do
        # occur on the quays, unlabelled, so they are not used as negatives).
        known_absent=("plane", "helicopter", "storage-tank", "roundabout", "agriculture", *_SPORTS),
    ),
    Source(
        "hrplanes", "CC BY 4.0",
        lambda root: InstanceTable.concat([
            read_coco(root / "hrplanes" / s / "_annotations.coco.json", source="hrplanes")
            for s in ("train", "valid")
        ]),
        # Airport aprons: no ships, harbours, helicopters (HRPlanes has none), sports grounds.
        known_absent=("ship", "harbor", "helicopter", "bridge", "roundabout", "storage-tank", *_SPORTS),
    ),
    Source(
        "dota", "DOTA-v1.0: academic use only, non-commercial",
        lambda root: read_dota(root / "dota"),
        chip=True, heldout=True, commercial_use=False,
    ),
    Source(
        "isaid", "iSAID: academic use only, non-commercial",
        lambda root: InstanceTable.concat([read_isaid(root / "isaid" / s) for s in ("train", "val")]),
        chip=True, heldout=True, commercial_use=False,
    ),
    Source(
        "loveda", "CC BY-NC-SA 4.0",
        lambda root: read_semantic_masks(root / "loveda" / "img", root / "loveda" / "ann", LOVEDA_CLASSES,
                                         source="loveda", licence="CC BY-NC-SA 4.0", split="train",
                                         gsd=0.3, min_pixels=16),
        chip=True, heldout=True, commercial_use=False,
    ),
    Source(
        "vaihingen", "ISPRS benchmark terms: research use",
        lambda root: read_semantic_masks(root / "vaihingen" / "img", root / "vaihingen" / "ann",
                                         VAIHINGEN_CLASSES, source="vaihingen",
                                         licence="ISPRS benchmark terms: research use", split="train",
                                         gsd=0.09, min_pixels=16),
        chip=True, commercial_use=False,
    ),
    Source(
        "spacenet", "CC BY-SA 4.0",
        lambda root: InstanceTable.concat([
            read_vector_labels(root / "spacenet" / "geotiff_labels.geojson", root / "spacenet" / "sample_geotiff.tif",
                               class_name="building", source="spacenet", licence="CC BY-SA 4.0", split="train"),
            read_semantic_masks(root / "spacenet" / "road_mask_input.tif",
                                root / "spacenet" / "sample_road_raster_mask.tif", {0: None, 255: "road"},
                                source="spacenet", licence="CC BY-SA 4.0", split="train", gsd=0.3),
        ]),
        chip=True,
    ),
    Source(
        "neon", "NEON open data (CC0) / DeepForest MIT",
        lambda root: read_box_csv(root / "neon" / "OSBS_029.csv", source="neon",
                                  licence="NEON open data (CC0) / DeepForest MIT", split="train", gsd=0.1),
        chip=True,
    ),
)


#: What a shared data root (``geosam prepare --data-root``) holds: one folder per source.
SHARED_LAYOUT = """\
  ships_ge/   YOLO: data.yaml, and train/ valid/ each with images/ and labels/
  hrplanes/   COCO: train/ and valid/, each with _annotations.coco.json beside its images
  dota/       DOTA: images/ and labelTxt/
  isaid/      iSAID: train/ and val/, each with P*.png, P*_instance_color_RGB.png, P*_instance_id_RGB.png
  loveda/     img/ and ann/ (LoveDA class masks, paired by file name)
  vaihingen/  img/ and ann/ (ISPRS Vaihingen class masks, paired by file name)
  spacenet/   sample_geotiff.tif + geotiff_labels.geojson, road_mask_input.tif + sample_road_raster_mask.tif
  neon/       OSBS_029.csv and the images it names
"""


def get_source(name: str) -> Source:
    """The :class:`Source` called ``name``."""
    for src in SHARED_SOURCES:
        if src.name == name:
            return src
    raise InputError(f"unknown source {name!r}; known: {', '.join(s.name for s in SHARED_SOURCES)}")


def _chosen(sources: Sequence[str] | None) -> list[Source]:
    """The named shared sources, or all of them."""
    return [get_source(n) for n in sources] if sources else list(SHARED_SOURCES)


def _guess_format(folder: Path) -> str:
    """The reader call that a folder of labels of one's own looks made for, or ``""``.

    >>> _guess_format(Path("tests/data/eval/ships_ge"))
    "read_yolo('tests/data/eval/ships_ge')"
    """
    if (folder / "images").is_dir() and (folder / "labelTxt").is_dir():
        return f"read_dota({str(folder)!r})"
    children = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]
    if (folder / "data.yaml").is_file() or any((p / "images").is_dir() for p in children):
        return f"read_yolo({str(folder)!r})"
    jsons = [j for p in children for j in sorted(p.glob("*.json"))]
    return f"read_coco({str(jsons[0])!r})" if jsons else ""


def _check_root(root: Path, chosen: Sequence[Source]) -> None:
    """Refuse a data root that is not a folder of the shared layout, saying what it looks like."""
    if not root.is_dir():
        raise InputError(f"data root {root} is not a folder")
    missing = [s.name for s in chosen if not (root / s.name).is_dir()]
    if not missing:
        return
    found = [s.name for s in chosen if s.name not in missing]
    folders = ", ".join(f"{m}/" for m in missing)
    what = (f"lacks the {folders} folder(s) of the shared layout (SHARED_LAYOUT in geosam.data.sources); "
            f"pass sources=[...] naming the ones it has ({', '.join(found)})" if found else
            f"has none of the folders of the shared layout ({folders}: SHARED_LAYOUT in geosam.data.sources)")
    guess = _guess_format(root)
    how = (f"it looks like labels of your own: read it with {guess} and build_dataset" if guess else
           "labels of your own are read with read_coco/read_yolo/read_dota and build_dataset")
    raise InputError(f"data root {root} {what}; {how} (docs/training.md section 1)")


def read_shared_data(root: str | Path, sources: Sequence[str] | None = None) -> InstanceTable:
    """Every labelled source of the shared data folder (or the named ``sources``) in one table.

    ``root`` holds one folder per source (:data:`SHARED_LAYOUT`); a missing one is refused.
    """
    root = Path(root)
    chosen = _chosen(sources)
    _check_root(root, chosen)
    return InstanceTable.concat([s.read(root) for s in chosen])


def shared_build_options(sources: Sequence[str] | None = None) -> dict[str, Any]:
    """The :func:`geosam.data.build_dataset` options of the shared sources (all or the named
    ones): which to chip and hold out, their known-absent classes and licence terms.

    >>> shared_build_options(["ships_ge"])["chip_sources"]
    []
    """
    chosen = _chosen(sources)
    return {
        "chip_sources": [s.name for s in chosen if s.chip],
        "heldout_sources": [s.name for s in chosen if s.heldout],
        "known_absent": {s.name: s.known_absent for s in chosen},
        "licences": {s.name: {"commercial_use": s.commercial_use} for s in chosen},
    }


def build_shared_dataset(
    root: str | Path,
    out: str | Path,
    *,
    sources: Sequence[str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Build the triplet dataset of the shared data folder (see :func:`geosam.data.build_dataset`
    for ``options``: seed, out_size, target_gsd, overlap, heldout_fraction ...).

    >>> build_shared_dataset("/work/shared/data", "triplets", seed=0)   # doctest: +SKIP
    """
    from geosam.data.builder import build_dataset

    table = read_shared_data(root, sources)
    return build_dataset(table, out, **shared_build_options(sources), **options)
