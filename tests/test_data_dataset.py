"""Triplet datasets built from the real crops: files, provenance, splits, determinism, and the
augmenting PyTorch dataset."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import ndimage

from geosam.data import Augment, TripletDataset
from geosam.data.chips import chip_size_for_gsd, plan_windows
from geosam.data.dataset import IGNORE_INDEX, look_alike_classes
from geosam.errors import InputError
from geosam.model.text import tokenize
from geosam.tiling import is_elongated
from tests.data_fixtures import build_crops


@pytest.fixture(scope="module")
def triplets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triplets")
    build_crops(out)
    return out


def test_dataset_files_and_provenance(triplets: Path) -> None:
    meta = json.loads((triplets / "dataset.json").read_text())
    samples = pd.read_parquet(triplets / "samples.parquet")
    chips = pd.read_parquet(triplets / "chips.parquet")
    assert meta["total"] == len(samples) and set(meta["sources"]) == set(samples.source)
    assert set(samples.split) == {"train", "valid", "heldout"}
    assert set(samples[samples.source == "hrplanes"].split) == {"valid"}
    assert {"class", "zero", "size", "position", "count"} <= set(samples.kind)
    assert 0.15 < (samples.kind == "zero").mean() < 0.35
    # Each mask file is the rasterised referent: empty exactly for absent classes.
    for row in samples.sample(40, random_state=0).itertuples():
        mask = np.asarray(Image.open(triplets / row.mask))
        chip = chips.set_index("chip").loc[row.chip]
        assert mask.shape == (chip.height, chip.width)
        assert mask.any() == (row.kind != "zero") == (not row.empty)
    assert samples.licence.str.len().min() > 0
    # The heldout part of a scene never reaches a train chip.
    dota = chips[chips.source == "dota"]
    held = dota[dota.split == "heldout"]
    train = dota[dota.split == "train"]
    assert len(held) and len(train)
    assert max(w[2] for w in train.window) <= min(w[0] for w in held.window)


def test_build_is_deterministic(triplets: Path, tmp_path: Path) -> None:
    build_crops(tmp_path / "again")
    a = pd.read_parquet(triplets / "samples.parquet")
    b = pd.read_parquet(tmp_path / "again" / "samples.parquet")
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(InputError, match="not empty"):
        build_crops(tmp_path / "again")


def test_chip_planning_keeps_ground_resolution() -> None:
    assert chip_size_for_gsd(0.15, 512) == 1024  # 0.15 m imagery: 1024 px chips stored at 512 -> 0.3 m
    assert chip_size_for_gsd(0.5, 512) == 512  # coarser than the target: never upsampled
    windows = plan_windows(1000, 600, 512, overlap=0.25, heldout_fraction=0.25)
    assert {w.split for w in windows} == {"train", "heldout"}
    assert all(w.x1 <= 750 for w in windows if w.split == "train")
    assert all(w.x0 >= 750 for w in windows if w.split == "heldout")


def test_items_are_normalised_and_tokenised(triplets: Path) -> None:
    ds = TripletDataset(triplets, "valid", input_size=64, pixel_mean=(0.5, 0.5, 0.5), pixel_std=(0.25, 0.25, 0.25))
    item = ds[0]
    assert item["pixels"].shape == (3, 64, 64) and item["pixels"].dtype == torch.float32
    assert item["mask"].shape == (64, 64) and item["mask"].dtype == torch.int64
    ids, _ = tokenize([ds.samples.text[0]])
    assert torch.equal(item["input_ids"], ids[0])
    # No augmentation: the stored chip, resized, and the stored mask, resized.
    chip = ds.chips.loc[ds.samples.chip[0]]
    expect = np.asarray(Image.open(triplets / chip.path).convert("RGB").resize((64, 64), Image.Resampling.BILINEAR))
    got = (item["pixels"].numpy().transpose(1, 2, 0) * 0.25 + 0.5) * 255
    assert np.abs(got - expect).max() < 0.01
    stored = np.asarray(Image.open(triplets / ds.samples["mask"][0]).resize((64, 64), Image.Resampling.NEAREST))
    assert (stored != item["mask"].numpy().astype(bool)).mean() < 0.05


def test_augmentation_is_reproducible_and_per_epoch(triplets: Path) -> None:
    ds = TripletDataset(triplets, "train", input_size=96, augment=True, seed=3)
    a, b = ds[5], ds[5]
    assert torch.equal(a["pixels"], b["pixels"]) and torch.equal(a["mask"], b["mask"])
    ds.set_epoch(1)
    assert not torch.equal(ds[5]["pixels"], a["pixels"])


def test_horizontal_flip_updates_position_words(triplets: Path) -> None:
    flip = Augment(full_view=1.0, hflip=1.0, vflip=0.0, rot90=False, brightness=0, contrast=0, saturation=0,
                   grayscale=0)
    ds = TripletDataset(triplets, ["train", "valid", "heldout"], input_size=128, augment=flip, kinds=["position"])
    words = {"left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost",
             "top left": "top right", "bottom left": "bottom right", "top right": "top left",
             "bottom right": "bottom left"}
    checked = 0
    for i in range(len(ds)):
        chip = ds.chips.loc[ds.samples.chip[i]]
        if ds.samples.attr[i] not in words or is_elongated(chip.height, chip.width):  # those are cropped
            continue
        base, flipped = ds.view(i), ds.view(i, np.random.default_rng(0))
        assert np.array_equal(flipped.image, base.image[:, ::-1])
        assert flipped.expression.targets == base.expression.targets
        assert flipped.expression.attr == words[base.expression.attr], (base.text, flipped.text)
        # The same object, mirrored (up to pixel centres that fall exactly on its outline).
        mirrored = base.mask[:, ::-1]
        outline = ndimage.binary_dilation(mirrored) & ~ndimage.binary_erosion(mirrored)
        assert not ((flipped.mask != mirrored) & ~outline).any()
        assert (flipped.mask & mirrored).sum() > 0.5 * mirrored.sum()
        checked += 1
    assert checked >= 2


def test_full_view_of_an_elongated_chip_is_a_square_of_its_short_side(triplets: Path, tmp_path: Path) -> None:
    whole = Augment(full_view=1.0, hflip=0, vflip=0, rot90=False, brightness=0, contrast=0, saturation=0, grayscale=0)
    root = tmp_path / "triplets"
    shutil.copytree(triplets, root)
    ds = TripletDataset(root, "valid", input_size=128, augment=whole)
    chip = ds.chips.loc[ds.samples.chip.iloc[0]]
    width, height = int(chip.width), int(chip.height)
    assert (width, height) == (640, 360)
    # red = column, green = row, each spanning 0-255 over the whole chip
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    Image.fromarray(np.stack([x, y, np.zeros_like(x)], -1).round().astype(np.uint8)).save(root / chip.path)
    for seed in range(3):
        view = ds.view(0, np.random.default_rng(seed)).image.astype(float)
        red, green = view[..., 0], view[..., 1]
        assert np.ptp(green) == pytest.approx(255, abs=3)  # every row of the chip ...
        assert np.ptp(red) == pytest.approx(255 * height / width, abs=8)  # ... and a square of columns
    assert np.ptp(ds.view(0).image[..., 0].astype(float)) == pytest.approx(255, abs=3)  # unaugmented: whole


def test_zoom_out_shrinks_the_chip_onto_a_canvas_and_its_mask_follows(triplets: Path) -> None:
    zoom = Augment(full_view=0.0, zoom_out=1.0, max_zoom_out=2.0, hflip=0, vflip=0, rot90=False, brightness=0,
                   contrast=0, saturation=0, grayscale=0)
    S = 192
    ds = TripletDataset(triplets, "train", input_size=S, augment=zoom, kinds=["class"])
    checked = 0
    for i in range(len(ds)):
        base = ds.view(i)
        if not base.mask.any():
            continue
        zoomed = ds.view(i, np.random.default_rng(i))
        # the referred pixels shrink with the picture, and the canvas around the chip is one colour
        assert 0 < zoomed.mask.sum() < base.mask.sum()
        rows = np.flatnonzero((zoomed.image != zoomed.image[0, 0]).any(axis=(1, 2)))
        cols = np.flatnonzero((zoomed.image != zoomed.image[0, 0]).any(axis=(0, 2)))
        ys, xs = np.nonzero(zoomed.mask)
        assert rows[0] <= ys.min() and ys.max() <= rows[-1] and cols[0] <= xs.min() and xs.max() <= cols[-1]
        # undo the zoom: mapped back through the chip's place on the canvas, the referred pixels
        # cover the same area around the same centre
        h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert min(h, w) >= S / 2 - 2 and max(h, w) < S
        assert zoomed.mask.sum() * (S / h) * (S / w) == pytest.approx(base.mask.sum(), rel=0.3)
        by, bx = np.argwhere(base.mask).mean(axis=0)
        assert (ys.mean() - rows[0]) * S / h == pytest.approx(by, abs=3)
        assert (xs.mean() - cols[0]) * S / w == pytest.approx(bx, abs=3)
        checked += 1
        if checked == 4:
            break
    assert checked == 4
    with pytest.raises(InputError, match="max_zoom_out must be >= 1"):
        Augment(max_zoom_out=0.5)


def test_sensor_shift_changes_the_radiometry_only(triplets: Path) -> None:
    still = {"full_view": 1.0, "hflip": 0, "vflip": 0, "rot90": False, "brightness": 0, "contrast": 0,
             "saturation": 0, "grayscale": 0}
    plain = TripletDataset(triplets, "train", input_size=128, augment=Augment(**still), kinds=["class"])
    shifted = TripletDataset(triplets, "train", input_size=128, augment=Augment(**still, sensor_shift=1.0),
                             kinds=["class"])
    top = []
    for i in range(24):
        a, b = plain.view(i, np.random.default_rng(i)), shifted.view(i, np.random.default_rng(i))
        # the same pixels of the same place, seen through another sensor: the labels do not move
        assert np.array_equal(a.mask, b.mask) and a.text == b.text
        assert b.image.dtype == np.uint8 and b.image.shape == a.image.shape
        assert not np.array_equal(a.image, b.image)
        assert np.corrcoef(a.image.mean(axis=2).ravel(), b.image.mean(axis=2).ravel())[0, 1] > 0.5
        top.append(np.percentile(b.image, 98))
    # levels are drawn from dark to fully stretched
    assert min(top) < 150 and max(top) > 220
    # reproducible, and off by default (no draw from the generator, so older runs repeat)
    assert np.array_equal(shifted.view(3, np.random.default_rng(7)).image,
                          shifted.view(3, np.random.default_rng(7)).image)
    assert Augment().sensor_shift == 0
    with pytest.raises(InputError, match="sensor_shift must be a probability"):
        Augment(sensor_shift=1.5)


def test_source_balance_weights(triplets: Path) -> None:
    ds = TripletDataset(triplets, "train", input_size=64)
    w = ds.sample_weights(0.0)
    share = pd.Series(w).groupby(ds.samples.source).sum()
    assert np.allclose(share, 1 / len(share))
    assert np.allclose(ds.sample_weights(1.0), 1 / len(ds))


def test_heldout_chips_export_to_coco(triplets: Path) -> None:
    from geosam.data import rasterize, read_coco

    table = read_coco(triplets / "heldout-dota.coco.json", source="heldout")
    chips = pd.read_parquet(triplets / "chips.parquet")
    held = chips[(chips.split == "heldout") & (chips.source == "dota")]
    assert len(table.images) == len(held) and len(table) > 0
    assert set(table.images.licence) == set(held.licence)
    # Every class DOTA labels is a category, so absent ones are scored as absent; each image keeps
    # exactly the classes its chip is labelled for (labelled_category_ids)
    assert {"helicopter", "storage-tank", "tennis-court"} <= set(table.images.labelled.iloc[0])
    assert [set(c) for c in table.images.labelled] == [set(c) for c in held.labelled]
    # The exported instances give back each sample's stored mask.
    samples = pd.read_parquet(triplets / "samples.parquet")
    row = samples[(samples.split == "heldout") & (samples.kind == "class") & (samples.source == "dota")].iloc[0]
    chip = held.set_index("chip").loc[row.chip]
    inst = table.instances_of(str(triplets / chip.path))
    leaves = {"vehicle": {"small-vehicle", "large-vehicle"}}.get(row.class_name, {row.class_name})
    mask = rasterize(inst[inst.class_name.isin(leaves)], (chip.height, chip.width))
    assert np.array_equal(mask, np.asarray(Image.open(triplets / row["mask"])))


def test_separated_masks_keep_touching_instances_apart() -> None:
    from scipy import ndimage
    from shapely.geometry import box

    from geosam.data.rasterize import rasterize, rasterize_separated

    # Side by side, overlapping, and corner to corner: five boxes in two touching groups.
    boxes = [box(2, 2, 10, 10), box(10, 2, 18, 10), box(20, 20, 30, 30), box(28, 25, 40, 35), box(40, 35, 45, 40)]
    eight = np.ones((3, 3))
    assert ndimage.label(rasterize(boxes, (48, 48)), structure=eight)[1] == 2
    separated = rasterize(boxes, (48, 48), separate=True)
    assert ndimage.label(separated, structure=eight)[1] == 5
    # Only interface pixels are lost: each object keeps most of its area.
    union = rasterize(boxes, (48, 48))
    assert separated.sum() > 0.8 * union.sum()
    assert not (separated & ~union).any()
    # The seams are exactly the pixels taken out, and lie between groups' objects only.
    mask, seams, contact = rasterize_separated(boxes, (48, 48))
    assert np.array_equal(mask, separated) and np.array_equal(seams, union & ~separated)
    assert np.array_equal(contact, seams)  # no gap: contact is the interface only
    # With a gap, contact is a band across the touching line, inside the objects too.
    mask2, seams2, contact2 = rasterize_separated(boxes, (48, 48), gap=2)
    assert np.array_equal(mask2, mask) and not (seams2 & ~contact2).any() and (contact2 & mask2).any()
    assert contact2[4, 8:12].all() and not contact2[:, :8].any()
    assert seams[2:10, 9:11].all() and not seams[:, :9].any()
    # Georeferenced: the same boxes in map coordinates (0.5 m pixels, north up) give the same mask,
    # also where a box reaches past the raster's edge.
    from rasterio import Affine
    from shapely.affinity import affine_transform

    transform = Affine(0.5, 0, 500_000.0, 0, -0.5, 4_000_000.0)
    params = [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f]
    edge = [*boxes, box(44, 44, 52, 52)]
    in_map = [affine_transform(b, params) for b in edge]
    assert np.array_equal(rasterize(in_map, (48, 48), separate=True, transform=transform),
                          rasterize(edge, (48, 48), separate=True))


def test_negative_regions_say_not_this_on_the_objects_and_nothing_elsewhere(triplets: Path) -> None:
    ds = TripletDataset(triplets, "train", input_size=96, augment=True, seed=0, kinds=["class"],
                        negative_regions=1.0)
    plain = TripletDataset(triplets, "train", input_size=96, augment=True, seed=0, kinds=["class"])
    turned = 0
    for i in range(min(len(ds), 12)):
        item, view = ds[i], plain.view(i, np.random.default_rng([0, 0, i]))
        mask = item["mask"].numpy()
        if not view.mask.any() or not look_alike_classes(view.expression.class_name):
            np.testing.assert_array_equal(mask, view.mask)  # nothing to contrast: unchanged
            continue
        turned += 1
        # the labelled objects are "not this" (0), everything else is unknown (ignored)
        np.testing.assert_array_equal(mask == 0, view.mask)
        assert set(np.unique(mask)) == {0, IGNORE_INDEX}
        assert not item["seams"].any()  # no instance boundaries to weight in a "not this" target
        assert not torch.equal(item["input_ids"], tokenize([view.text])[0][0])  # another prompt
    assert turned > 0
    with pytest.raises(InputError, match="negative_regions"):
        TripletDataset(triplets, "train", input_size=96, negative_regions=1.5)


def test_items_mark_the_seams_between_touching_referred_objects(triplets: Path) -> None:
    ds = TripletDataset(triplets, "train", input_size=128, kinds=["class"])
    with_seams = 0
    for i in range(len(ds)):
        item = ds[i]
        seams, mask = item["seams"].numpy(), item["mask"].numpy()
        assert seams.dtype == bool and seams.shape == mask.shape
        assert not (seams & (mask == 1)).any()  # a seam is background between objects
        with_seams += bool(seams.any())
    assert with_seams > 0  # the crops hold touching ships and planes
    off = TripletDataset(triplets, "train", input_size=128, kinds=["class"], separate_instances=False)
    assert not any(off[i]["seams"].any() for i in range(len(off)))


def test_look_alikes_never_cover_the_class_itself() -> None:
    assert "vehicle" in look_alike_classes("ship") and "plane" in look_alike_classes("ship")
    assert "vehicle" not in look_alike_classes("small-vehicle")  # a car *is* a vehicle
    assert look_alike_classes("no-such-class") == []


def test_colour_jitter_matches_the_step_by_step_definition() -> None:
    """The folded colour matrix equals brightness, contrast about the mean, then saturation about
    the luma, applied one after the other in floating point (to one grey level of rounding)."""
    from geosam.data.dataset import _jitter

    chip = next((Path(__file__).parent / "data" / "hrplanes" / "valid").glob("*.jpg"))
    image = np.asarray(Image.open(chip).convert("RGB"))[:96, :128]
    aug = Augment(brightness=0.3, contrast=0.3, saturation=0.4, grayscale=0.5)
    luma = np.array([0.299, 0.587, 0.114])
    for seed in range(20):
        rng = np.random.default_rng(seed)
        x = image.astype(np.float64) * (1 + rng.uniform(-0.3, 0.3))
        x = (x - x.mean()) * (1 + rng.uniform(-0.3, 0.3)) + x.mean()
        gray = (x @ luma)[..., None]
        x = np.repeat(gray, 3, -1) if rng.random() < 0.5 else (x - gray) * (1 + rng.uniform(-0.4, 0.4)) + gray
        expected = np.clip(np.round(x), 0, 255)
        got = _jitter(image, aug, np.random.default_rng(seed))
        assert got.dtype == np.uint8 and got.shape == image.shape
        assert np.abs(got.astype(float) - expected).max() <= 1
    still = Augment(brightness=0, contrast=0, saturation=0, grayscale=0)
    assert _jitter(image, still, np.random.default_rng(0)) is image


# -- what build_dataset refuses and warns of --------------------------------------------------------
DATA = Path(__file__).parent / "data"


def _coco(path: Path, images: list[dict[str, object]], annotations: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "ship", "supercategory": "none"}]}))
    return path


def test_nothing_to_learn_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from geosam.data import InstanceTable, build_dataset, read_coco

    with pytest.raises(InputError, match="no images to build a dataset from"):
        build_dataset(InstanceTable.concat([]), tmp_path / "out")
    image = {"id": 1, "file_name": str(DATA / "ships_ge" / "ships_crop.png"), "width": 256, "height": 256}
    with pytest.warns(UserWarning, match="no annotations"):
        unlabelled = read_coco(_coco(tmp_path / "unlabelled.json", [image], []), source="mine")
    with pytest.raises(InputError, match=r"the 1 image\(s\) have no labelled objects"):
        build_dataset(unlabelled, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # so the next attempt needs no overwrite


def test_a_build_that_fails_midway_leaves_no_half_written_folder(tmp_path: Path) -> None:
    from geosam.data import build_dataset, read_yolo

    copy = shutil.copytree(DATA / "ships_ge" / "yolo", tmp_path / "ships")
    table = read_yolo(copy, source="ships_ge")
    last = sorted((copy / "train" / "images").iterdir())[-1]
    saved = last.read_bytes()
    last.unlink()  # gone between reading the labels and writing the chips
    absent = {"ships_ge": ["plane", "storage-tank"]}
    with pytest.raises(FileNotFoundError):
        build_dataset(table, tmp_path / "out", progress=False, known_absent=absent)
    assert not (tmp_path / "out").exists()
    last.write_bytes(saved)
    assert build_dataset(table, tmp_path / "out", progress=False, known_absent=absent)["total"] > 0


def test_a_one_class_source_without_known_absent_classes_is_warned_of(tmp_path: Path) -> None:
    from geosam.data import build_dataset, read_yolo

    ships = read_yolo(DATA / "ships_ge" / "yolo", source="ships_ge")
    with pytest.warns(UserWarning, match=r"source 'ships_ge' has 0% one-to-zero samples .* label only ship and no known_absent .*"
                                         r"known_absent=\{'ships_ge'"):
        build_dataset(ships, tmp_path / "a", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        summary = build_dataset(ships, tmp_path / "b", progress=False,
                                known_absent={"ships_ge": ["planes", "storage tank", "helicopter"]})
    assert summary["kinds"]["zero"] > 0
    with pytest.raises(InputError, match="known_absent of source 'ships_ge': label 'unicorn'"):
        build_dataset(ships, tmp_path / "c", known_absent={"ships_ge": ["unicorn"]})
    # both were accepted silently: a typo in the source, and a class its labels show
    with pytest.raises(InputError, match="source 'ship_ge', which the table does not have; its sources: ships_ge"):
        build_dataset(ships, tmp_path / "d", known_absent={"ship_ge": ["plane"]})
    with pytest.raises(InputError, match="names ship, which its labels show present"):
        build_dataset(ships, tmp_path / "e", known_absent={"ships_ge": ["plane", "boats"]})
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


def test_large_images_kept_whole_are_warned_of(tmp_path: Path) -> None:
    from geosam.data import build_dataset, read_coco

    big = tmp_path / "scene.png"  # a real crop enlarged to a scene-sized image
    Image.open(DATA / "ships_ge" / "ships_crop.png").convert("RGB").resize((1300, 1100)).save(big)
    image = {"id": 1, "file_name": str(big), "width": 1300, "height": 1100}
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [500, 400, 60, 30]}
    table = read_coco(_coco(tmp_path / "scene.json", [image], [ann]), source="scenes")
    with pytest.warns(UserWarning, match=r"1 image\(s\) of source 'scenes' are larger than 1024 px \(up to "
                                         r"1300 x 1100\) .* chip_sources=\['scenes'\]"):
        build_dataset(table, tmp_path / "whole", progress=False, known_absent={"scenes": ["plane"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        summary = build_dataset(table, tmp_path / "chipped", progress=False, chip_sources=["scenes"],
                                known_absent={"scenes": ["plane", "storage-tank"]}, zero_fraction=0.5)
    chips = pd.read_parquet(tmp_path / "chipped" / "chips.parquet")
    assert len(chips) > 1 and chips[["width", "height"]].max().max() <= 512 and summary["total"] > 0


def test_prepare_explains_its_data_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from geosam.cli import main

    out = str(tmp_path / "out")
    assert main(["prepare", "--data-root", str(tmp_path / "nonexistent"), "--out", out]) == 1
    assert f"--data-root {tmp_path / 'nonexistent'} is not a folder" in capsys.readouterr().err
    ships = DATA / "eval" / "ships_ge"
    assert main(["prepare", "--data-root", str(ships), "--out", out]) == 1
    err = capsys.readouterr().err
    assert "has none of the folders of the shared layout (ships_ge/, hrplanes/" in err
    assert f"pass it as --yolo {ships}" in err
    assert main(["prepare", "--out", out]) == 1
    assert "--coco JSON, --yolo FOLDER, --dota FOLDER or --vector LABELS RASTER" in capsys.readouterr().err
    assert not Path(out).exists()
    # Its own-labels route: the eval ships, one class, told what is absent, and a DOTA-format folder
    # whose labelled classes are the ones it holds.
    assert main(["prepare", "--out", out, "--yolo", str(ships), "--dota", str(DATA / "eval" / "dota"),
                 "--known-absent", "planes", "--quiet"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kinds"]["zero"] > 0 and set(shown["samples"]) <= {"own/train", "own/valid"}
    chips = pd.read_parquet(Path(out) / "chips.parquet")
    assert not {"helicopter", "tennis-court"} & {c for v in chips["labelled"] for c in v}
    # without --known-absent a one-class source gets no absent samples: said as it happens, as one
    # line in the command's terms
    assert main(["prepare", "--out", str(tmp_path / "plain"), "--yolo", str(ships), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "geosam prepare: warning: source 'own' has 0% one-to-zero samples" in err
    assert "--known-absent" in err and ".py:" not in err
    help_text = subprocess_help()
    assert "ships_ge/   YOLO" in help_text and "--coco JSON" in help_text


def test_prepare_takes_georeferenced_vectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--vector LABELS RASTER``: real SpaceNet buildings (in EPSG:4326 here, the raster in UTM)."""
    import geopandas as gpd
    import rasterio
    import shapely

    from geosam.cli import main

    labels = tmp_path / "buildings.geojson"
    gpd.read_file(DATA / "spacenet" / "buildings.geojson").to_crs("EPSG:4326").to_file(labels)
    tif = str(DATA / "spacenet" / "buildings.tif")
    out = tmp_path / "out"
    base = ["prepare", "--out", str(out), "--vector", str(labels), tif, "--source", "city", "--quiet"]
    assert main(base) == 1
    assert "--vector needs exactly one of --class-name CLASS" in capsys.readouterr().err
    assert main(["prepare", "--out", str(out), "--yolo", str(DATA / "eval" / "ships_ge"), "--buffer", "2"]) == 1
    assert "--buffer applies to --vector labels" in capsys.readouterr().err
    lines = tmp_path / "roads.geojson"
    with rasterio.open(tif) as src:
        left, bottom, right, top = src.bounds
        gpd.GeoDataFrame(geometry=[shapely.LineString([(left, bottom), (right, top)])], crs=src.crs).to_file(lines)
    assert main(["prepare", "--out", str(out), "--vector", str(lines), tif, "--class-name", "road"]) == 1
    assert "pass --buffer METRES to give them a width" in capsys.readouterr().err
    assert main([*base, "--class-name", "building", "--known-absent", "ship", "--chip-size", "256"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"]["building"] > 0 and summary["kinds"]["zero"] > 0
    chips = pd.read_parquet(out / "chips.parquet")
    assert len(chips) > 1 and (chips["source"] == "city").all()  # the scene was cut into chips


def subprocess_help() -> str:
    """``geosam prepare --help`` as a user sees it."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "geosam", "prepare", "--help"], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent.parent)
    return run.stdout
