"""Writing (image chip, text, mask) triplets to a dataset folder.

Layout of a dataset folder::

    dataset.json        what built it (seed, sizes, sources with licences, counts) and the
                        classes of your own it uses (``vocabulary``, declared again when opened)
    chips/<source>/...  chip images (PNG; JPEG sources copied as they are)
    masks/<source>/...  one 1-bit PNG mask per sample (white = referred pixels)
    chips.parquet       one row per chip: path, size, source, licence, split, gsd, origin, window
    instances.parquet   the instances of every chip, in chip pixels (WKB), with their visible fraction
    samples.parquet     one row per triplet: chip, text, kind, class, attribute, target instance ids,
                        mask path, source, licence, split
    <split>-<source>.coco.json   the valid and heldout chips of each source with their instances as COCO
                        (RLE masks), for ``geosam evaluate --format coco`` (per-category scores)

Everything is deterministic given the seed: each chip draws its expressions from its own random
stream, so adding a source does not change the samples of the others.

>>> build_dataset(read_shared_data(root), "triplets", **shared_build_options())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from PIL import Image
from tqdm import tqdm

from geosam.data.chips import Window, chip_size_for_gsd, clip_instances, plan_windows, stored_size
from geosam.data.expressions import Expression, Obj, sample_expressions
from geosam.data.images import read_rgb
from geosam.data.instances import InstanceTable
from geosam.data.rasterize import rasterize
from geosam.data.vocabulary import VOCABULARY, canonical_class, class_to_json, own_classes
from geosam.errors import InputError

FORMAT = "geosam-triplets"
VERSION = 1
#: Whole-image chips with a side above this (or twice ``out_size``) draw a warning: training
#: shrinks a chip to the network's input size (384-512 px), and small objects vanish.
LARGE_WHOLE_CHIP = 1024
#: A source with fewer samples may lack one-to-zero samples by chance: no warning then, unless it
#: cannot have any (one labelled class and no known-absent ones).
MIN_SAMPLES_TO_WARN = 20


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def build_dataset(
    table: InstanceTable,
    out: str | Path,
    *,
    seed: int = 0,
    out_size: int = 512,
    target_gsd: float = 0.3,
    overlap: float = 0.25,
    chip_sources: Iterable[str] = (),
    heldout_sources: Iterable[str] = (),
    heldout_fraction: float = 0.25,
    known_absent: Mapping[str, Iterable[str]] | None = None,
    licences: Mapping[str, Mapping[str, Any]] | None = None,
    zero_fraction: float = 0.25,
    attributes_per_class: int = 2,
    chip_rounds: int = 3,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the triplet dataset of ``table`` to ``out`` and return its summary (``dataset.json``).

    Images of ``chip_sources`` are cut into chips of about ``target_gsd`` stored at ``out_size``
    (see :mod:`geosam.data.chips`); other images become one chip each (a warning names sources
    whose images are too large for that). Train images of ``heldout_sources`` lose their last
    ``heldout_fraction`` to the ``heldout`` split.

    ``known_absent`` maps a source to classes that never occur in its scenes besides the ones it
    labels: one-to-zero samples (an absent class, an empty mask) can only name a class the source
    labels or knows absent, so a source labelling one class needs it to get any (a warning says
    when a source gets far fewer than ``zero_fraction``). Chips cut from large scenes (few, with
    many classes) get ``chip_rounds`` draws of expressions, duplicates removed, so that their
    classes, attributes and negatives are seen in more phrasings.

    Classes of your own (:func:`geosam.data.register_class`) are written to ``dataset.json``
    (``vocabulary``) and declared again whenever the dataset is opened. Nothing is written when
    the table has no images or no labelled objects, and a build that fails midway removes what it
    wrote.

    >>> build_dataset(read_coco("mine/_annotations.coco.json", source="mine"), "triplets",
    ...               known_absent={"mine": ["ship", "plane"]})   # doctest: +SKIP
    """
    out = Path(out)
    chip_sources, heldout_sources = set(chip_sources), set(heldout_sources)
    absent_of = _check_table(table, known_absent)
    _warn_of_large_whole_images(table, chip_sources, out_size)
    used = _named_classes(table) | {c for v in absent_of.values() for c in v}
    meta = {
        "format": FORMAT, "version": VERSION, "seed": seed, "out_size": out_size, "target_gsd": target_gsd,
        "overlap": overlap, "heldout_fraction": heldout_fraction, "zero_fraction": zero_fraction,
        "chip_rounds": chip_rounds,
        # Declared again by TripletDataset, so a training process needs no vocabulary of its own.
        "vocabulary": [class_to_json(c) for c in own_classes(used)],
    }
    had_folder = _clear_out(out, overwrite)
    try:
        chips, inst_rows, samples = _write_triplets(
            table, out, seed=seed, out_size=out_size, target_gsd=target_gsd, overlap=overlap,
            chip_sources=chip_sources, heldout_sources=heldout_sources, heldout_fraction=heldout_fraction,
            absent_of=absent_of, zero_fraction=zero_fraction, attributes_per_class=attributes_per_class,
            chip_rounds=chip_rounds, progress=progress,
        )
        summary = _finish(out, chips, inst_rows, samples, licences or {}, meta)
    except BaseException:
        # A half-written folder would only make the next attempt need overwrite=True.
        shutil.rmtree(out, ignore_errors=True)
        if had_folder:
            out.mkdir(parents=True, exist_ok=True)
        raise
    _warn_of_few_absent_samples(samples, table, absent_of, zero_fraction)
    return summary


def _check_table(
    table: InstanceTable, known_absent: Mapping[str, Iterable[str]] | None
) -> dict[str, tuple[str, ...]]:
    """Refuse a table with nothing to learn or with undeclared classes, before anything is
    written; return ``known_absent`` with canonical class names."""
    if table.images.empty:
        raise InputError(
            "no images to build a dataset from: the importers found none (a COCO json with an empty "
            "'images' list, an empty images/ folder ...); check the paths given to them"
        )
    if table.instances.empty:
        raise InputError(
            f"the {len(table.images)} image(s) have no labelled objects, so there is nothing to learn: "
            "check the label files (and any class_map that drops labels)"
        )
    absent_of: dict[str, tuple[str, ...]] = {}
    sources = sorted(set(table.images["source"]))
    for source, classes in (known_absent or {}).items():
        if source not in sources:
            raise InputError(
                f"known_absent names source {source!r}, which the table does not have; its sources: "
                f"{', '.join(sources)}"
            )
        names = [classes] if isinstance(classes, str) else list(classes)  # "plane", not p-l-a-n-e
        try:
            absent_of[source] = tuple(canonical_class(c) for c in names)
        except InputError as err:
            raise InputError(f"known_absent of source {source!r}: {err}") from None
        # a class it labels cannot also be absent from every image: the samples would contradict
        images = set(table.images.loc[table.images["source"] == source, "image"])
        shown = set(table.instances.loc[table.instances["image"].isin(images), "class_name"])
        both = sorted(shown & set(absent_of[source]))
        if both:
            raise InputError(
                f"known_absent of source {source!r} names {', '.join(both)}, which its labels show "
                "present; known_absent is for classes that occur in none of its images"
            )
    unknown = sorted(c for c in _named_classes(table) if c not in VOCABULARY)
    if unknown:
        raise InputError(
            f"the table names classes that are not declared in this process: {', '.join(unknown)}; "
            "declare them with register_class(NAME, ...) or load_vocabulary(PATH) before build_dataset"
        )
    return absent_of


def _named_classes(table: InstanceTable) -> set[str]:
    """The classes ``table`` names: those of its objects and those its images are labelled for."""
    return set(table.instances["class_name"]) | {c for v in table.images["labelled"] for c in v}


def _clear_out(out: Path, overwrite: bool) -> bool:
    """Make ``out`` an empty folder; return whether it existed before."""
    existed = out.exists()
    if existed and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder; choose another dataset folder")
    if existed and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return existed


def _write_triplets(
    table: InstanceTable,
    out: Path,
    *,
    seed: int,
    out_size: int,
    target_gsd: float,
    overlap: float,
    chip_sources: set[str],
    heldout_sources: set[str],
    heldout_fraction: float,
    absent_of: Mapping[str, tuple[str, ...]],
    zero_fraction: float,
    attributes_per_class: int,
    chip_rounds: int,
    progress: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The chip, instance and sample rows of every image, with their files written to ``out``."""
    # How many images each class occurs in: negatives favour classes that are common elsewhere.
    frequency = Counter(
        c for _, group in table.instances.groupby("image") for c in set(group["class_name"])
    )
    chips: list[dict[str, Any]] = []
    inst_rows: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    by_image = dict(tuple(table.instances.groupby("image", sort=False)))
    images = table.images.sort_values(["source", "image"]).reset_index(drop=True)
    stems: dict[str, set[str]] = {}
    for info in tqdm(images.to_dict("records"), desc="building triplets", unit="image", disable=not progress):
        inst = by_image.get(info["image"], table.instances.iloc[:0])
        source, split = str(info["source"]), str(info["split"])
        stem = _unique_stem(Path(info["image"]).stem, stems.setdefault(source, set()))
        (out / "chips" / source).mkdir(parents=True, exist_ok=True)
        (out / "masks" / source).mkdir(parents=True, exist_ok=True)
        width, height = int(info["width"]), int(info["height"])
        gsd = float(info["gsd"])
        if source in chip_sources:
            chip_px = chip_size_for_gsd(gsd, out_size, target_gsd)
            held = heldout_fraction if source in heldout_sources and split == "train" else 0.0
            windows = plan_windows(width, height, chip_px, overlap=overlap, heldout_fraction=held, split=split)
            pixels: np.ndarray | None = read_rgb(info["image"])
        else:
            chip_px, windows, pixels = max(width, height), [Window(0, 0, width, height, split)], None
        for window in windows:
            chip_id = f"{source}/{stem}" if pixels is None else f"{source}/{stem}_{window.x0}_{window.y0}_{chip_px}"
            size = stored_size(window, chip_px, out_size) if pixels is not None else (width, height)
            rel = _write_chip(info["image"], pixels, window, size, out, chip_id)
            clipped = clip_instances(inst, window, size)
            scale = size[0] / window.width
            chips.append({
                "chip": chip_id, "path": rel, "width": size[0], "height": size[1], "source": source,
                "licence": info["licence"], "split": window.split,
                "gsd": gsd / scale if np.isfinite(gsd) else np.nan,
                "origin": str(info["image"]), "window": [window.x0, window.y0, window.x1, window.y1],
                "labelled": sorted(info["labelled"]),
            })
            objs = []
            for k, row in enumerate(clipped.itertuples(index=False)):
                objs.append(Obj(k, str(row.class_name), row.geometry, float(row.visible)))
                inst_rows.append({
                    "chip": chip_id, "id": k, "class_name": row.class_name, "kind": row.kind,
                    "visible": float(row.visible), "difficult": bool(row.difficult),
                    "geometry": shapely.to_wkb(row.geometry),
                })
            labelled = list(info["labelled"])
            rng = _rng(seed, chip_id)
            exprs: list[Expression] = []
            for _ in range(chip_rounds if pixels is not None else 1):
                drawn = sample_expressions(
                    objs, size[0], size[1], labelled=labelled,
                    known_absent=sorted(set(labelled) | set(absent_of.get(source, ()))),
                    rng=rng, zero_fraction=zero_fraction,
                    attributes_per_class=attributes_per_class, frequency=frequency,
                )
                seen = {e.text for e in exprs}
                exprs += [e for e in drawn if e.text not in seen]
            for k, expr in enumerate(exprs):
                samples.append(_write_sample(expr, k, objs, size, chip_id, chips[-1], out))
    return chips, inst_rows, samples


def _unique_stem(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3`` ... if a file of the same source already has it (two
    ``crop.png`` in different folders), so that chips and masks never overwrite each other.

    >>> taken = set(); _unique_stem("crop", taken), _unique_stem("crop", taken)
    ('crop', 'crop-2')
    """
    out, n = stem, 1
    while out in taken:
        n += 1
        out = f"{stem}-{n}"
    taken.add(out)
    return out


def _warn_of_large_whole_images(table: InstanceTable, chip_sources: set[str], out_size: int) -> None:
    """Warn of sources whose images are stored whole although they are far larger than a chip."""
    limit = max(LARGE_WHOLE_CHIP, 2 * out_size)
    whole = table.images[~table.images["source"].isin(chip_sources)]
    large = whole[whole[["width", "height"]].max(axis=1) > limit]
    for source, group in large.groupby("source"):
        biggest = group.iloc[int(np.argmax((group["width"] * group["height"]).to_numpy()))]
        warnings.warn(
            f"{len(group)} image(s) of source {source!r} are larger than {limit} px (up to "
            f"{biggest['width']} x {biggest['height']}) and each becomes one chip, which training "
            f"shrinks to the network's input size (384-512 px), so small objects vanish: pass "
            f"chip_sources=[{source!r}] to cut them into chips near target_gsd",
            UserWarning, stacklevel=3,
        )


def _warn_of_few_absent_samples(
    samples: list[dict[str, Any]],
    table: InstanceTable,
    absent_of: Mapping[str, tuple[str, ...]],
    zero_fraction: float,
) -> None:
    """Warn of sources with far fewer one-to-zero samples than ``zero_fraction``, saying why."""
    if zero_fraction <= 0:
        return
    frame = pd.DataFrame(samples, columns=["source", "kind"])
    for source, group in frame.groupby("source"):
        share = float((group["kind"] == "zero").mean())
        if share >= zero_fraction / 2:
            continue
        rows = table.images[table.images["source"] == source]
        labelled = sorted({c for v in rows["labelled"] for c in v})
        absent = absent_of.get(str(source), ())
        if len(labelled) <= 1 and not absent:  # the usual case of one's own labels: always said
            only = labelled[0] if labelled else "no class"
            why = (f"its images label only {only} and no known_absent was given for it, so only its "
                   f"images without any {only} can be asked for something absent")
        elif len(group) < MIN_SAMPLES_TO_WARN:
            continue  # a handful of samples may draw no absent class by chance
        else:
            why = (f"few of the classes it labels or knows absent ({', '.join(sorted({*labelled, *absent}))}) "
                   "are missing from its images")
        warnings.warn(
            f"source {source!r} has {share:.0%} one-to-zero samples (an absent class, an empty mask) "
            f"against zero_fraction={zero_fraction}, so the network is not taught to answer nothing "
            f"where a class is absent: {why}. Pass known_absent={{{str(source)!r}: [classes never in its scenes]}} "
            "(geosam prepare --known-absent), or add sources that label several classes "
            "(docs/training.md, 'Absent classes')",
            UserWarning, stacklevel=3,
        )


def _write_chip(
    image: str, pixels: np.ndarray | None, window: Window, size: tuple[int, int], out: Path, chip_id: str
) -> str:
    src = Path(image)
    if pixels is None and src.suffix.lower() in (".jpg", ".jpeg", ".png"):
        with Image.open(src) as im:
            plain = im.mode == "RGB"
        if plain:  # already an 8-bit RGB file of the right size: keep its bytes
            rel = f"chips/{chip_id}{src.suffix.lower()}"
            shutil.copyfile(src, out / rel)
            return rel
    if pixels is None:
        pixels = read_rgb(image)
    crop = Image.fromarray(pixels[window.y0 : window.y1, window.x0 : window.x1])
    if crop.size != size:
        crop = crop.resize(size, Image.Resampling.BILINEAR)
    rel = f"chips/{chip_id}.png"
    crop.save(out / rel, optimize=False, compress_level=3)
    return rel


def _write_sample(
    expr: Expression, k: int, objs: list[Obj], size: tuple[int, int], chip_id: str, chip: dict[str, Any], out: Path
) -> dict[str, Any]:
    targets = set(expr.targets)
    mask = rasterize([o.geometry for o in objs if o.id in targets], (size[1], size[0]))
    rel = f"masks/{chip_id}_{k:02d}.png"
    Image.fromarray(mask).save(out / rel)
    return {
        "sample": f"{chip_id}#{k}", "chip": chip_id, "text": expr.text, "kind": expr.kind,
        "class_name": expr.class_name, "attr": expr.attr, "anchor": expr.anchor,
        "targets": sorted(targets), "mask": rel, "empty": not bool(mask.any()),
        "source": chip["source"], "licence": chip["licence"], "split": chip["split"],
    }


def _finish(
    out: Path,
    chips: list[dict[str, Any]],
    inst_rows: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    licences: Mapping[str, Mapping[str, Any]],
    meta: dict[str, Any],
) -> dict[str, Any]:
    chip_frame = pd.DataFrame(chips)
    sample_frame = pd.DataFrame(samples)
    inst_frame = pd.DataFrame(
        inst_rows, columns=["chip", "id", "class_name", "kind", "visible", "difficult", "geometry"]
    )
    chip_frame.to_parquet(out / "chips.parquet", index=False)
    inst_frame.to_parquet(out / "instances.parquet", index=False)
    sample_frame.to_parquet(out / "samples.parquet", index=False)
    summary = dict(meta)
    summary["sources"] = {
        str(s): {"licence": str(group["licence"].iloc[0]), **dict(licences.get(str(s), {})),
                 "chips": len(group)}
        for s, group in chip_frame.groupby("source")
    }
    sizes = sample_frame.groupby(["source", "split"]).size()
    summary["samples"] = {f"{key[0]}/{key[1]}": int(n) for key, n in sizes.items()}  # type: ignore[index]
    summary["kinds"] = {str(k): int(n) for k, n in sample_frame["kind"].value_counts().sort_index().items()}
    summary["classes"] = {
        str(k): int(n) for k, n in sample_frame[sample_frame.kind != "zero"]["class_name"].value_counts().sort_index().items()
    }
    summary["total"] = len(sample_frame)
    summary["coco"] = {}
    for (split, source), group in chip_frame.groupby(["split", "source"]):
        if split in ("valid", "heldout"):
            name = f"{split}-{source}.coco.json"
            export_coco(group, inst_frame, out / name)
            summary["coco"][f"{split}/{source}"] = name
    (out / "dataset.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def export_coco(chips: pd.DataFrame, instances: pd.DataFrame, path: Path) -> None:
    """The chips and their instances as a COCO file (RLE masks, paths relative to ``path``'s folder),
    so that ``geosam evaluate --format coco`` scores a model per category on them."""
    from pycocotools import mask as mask_utils

    licences = sorted(set(chips["licence"]))
    # Every class the source labels is a category, so a model is also scored where it is absent.
    categories = sorted({c for labelled in chips["labelled"] for c in labelled}
                        | set(instances[instances["chip"].isin(set(chips["chip"]))]["class_name"]))
    cat_id = {c: i + 1 for i, c in enumerate(categories)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    by_chip = dict(tuple(instances.groupby("chip")))
    for image_id, chip in enumerate(chips.to_dict("records"), 1):
        height, width = int(chip["height"]), int(chip["width"])
        # which categories this chip is labelled for (a geosam extension, read by read_coco): one
        # source may merge files of different classes, and a class is absent only where it was looked for
        images.append({"id": image_id, "file_name": chip["path"], "width": width, "height": height,
                       "license": licences.index(chip["licence"]) + 1, "source": chip["source"],
                       "labelled_category_ids": [cat_id[c] for c in sorted(chip["labelled"])]})
        rows = by_chip.get(chip["chip"])
        if rows is None:
            continue
        for row in rows.to_dict("records"):
            geom = shapely.from_wkb(row["geometry"])
            mask = rasterize([geom], (height, width))
            if not mask.any():
                continue
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            x0, y0, x1, y1 = geom.bounds
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": cat_id[row["class_name"]],
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float(mask.sum()), "iscrowd": 0,
            })
    coco = {
        "info": {"description": "geosam triplet dataset chips", "split": path.stem.split(".")[0]},
        "licenses": [{"id": i + 1, "name": name} for i, name in enumerate(licences)],
        "categories": [{"id": cat_id[c], "name": c, "supercategory": "none"} for c in categories],
        "images": images,
        "annotations": annotations,
    }
    path.write_text(json.dumps(coco))

