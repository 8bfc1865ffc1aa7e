"""Importers on real label files: counts and geometry checked against the files themselves."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
from PIL import Image

from geosam.data import (
    LOVEDA_CLASSES,
    VAIHINGEN_CLASSES,
    canonical_class,
    rasterize,
    read_box_csv,
    read_coco,
    read_dota,
    read_isaid,
    read_semantic_masks,
    read_vector_labels,
    read_yolo,
)
from geosam.errors import InputError
from tests.data_fixtures import DATA


def test_yolo_counts_boxes_and_names() -> None:
    table = read_yolo(DATA / "ships_ge" / "yolo", source="ships_ge", licence="CC BY 4.0")
    files = sorted((DATA / "ships_ge" / "yolo" / "train" / "labels").glob("*.txt"))
    lines = sum(len([x for x in f.read_text().splitlines() if x.strip()]) for f in files)
    assert len(table) == lines and len(table.images) == len(files)
    assert set(table.instances.class_name) == {"ship"} and set(table.instances.label) == {"boat"}
    assert set(table.images.split) == {"train"} and set(table.images.licence) == {"CC BY 4.0"}
    # The first box of the first file, from its normalised cx cy w h.
    first = files[0].read_text().split()
    img = table.images.iloc[0]
    cx, cy, w, h = (float(v) for v in first[1:5])
    got = table.instances_of(img.image).geometry.iloc[0].bounds
    expect = ((cx - w / 2) * img.width, (cy - h / 2) * img.height, (cx + w / 2) * img.width, (cy + h / 2) * img.height)
    assert np.allclose(got, expect)


def test_yolo_polygon_lines_and_errors(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (100, 50)).save(tmp_path / "images" / "a.png")
    (tmp_path / "labels" / "a.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.9\n")
    table = read_yolo(tmp_path, names=["plane"])
    assert table.instances.kind.tolist() == ["polygon"]
    assert table.instances.geometry.iloc[0].area == pytest.approx(0.5 * 40 * 40)
    (tmp_path / "labels" / "a.txt").write_text("0 0.1 0.1\n")
    with pytest.raises(InputError, match=r"a\.txt:1"):
        read_yolo(tmp_path, names=["plane"])
    with pytest.raises(InputError, match=r"data\.yaml"):
        read_yolo(tmp_path)


def test_coco_roboflow_quirks() -> None:
    path = DATA / "hrplanes" / "valid" / "_annotations.coco.json"
    raw = json.loads(path.read_text())
    table = read_coco(path, source="hrplanes")
    # Category 0 ("Aircrafts", the project name) is a parent only; class "0" is named by its parent.
    assert len(table) == len(raw["annotations"]) and len(table.images) == len(raw["images"])
    assert set(table.instances.class_name) == {"plane"} and set(table.instances.label) == {"Aircrafts"}
    assert set(table.images.licence) == {"CC BY 4.0"} and set(table.images.split) == {"valid"}
    ann = raw["annotations"][0]
    x, y, w, h = ann["bbox"]
    assert table.instances.geometry.iloc[0].bounds == (x, y, x + w, y + h)


def test_coco_polygon_rle_crowd_and_folders(tmp_path) -> None:
    from pycocotools import mask as mask_utils

    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(tmp_path / "imgs" / "sub" / "a.png")
    m = np.zeros((30, 40), np.uint8)
    m[5:15, 10:30] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode()
    coco = {
        "images": [{"id": 7, "file_name": "sub/a.png", "width": 40, "height": 30}],
        "categories": [{"id": 1, "name": "small-vehicle"}, {"id": 2, "name": "ship"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 4, 4], "iscrowd": 1, "segmentation": rle},
            {"id": 2, "image_id": 7, "category_id": 2, "bbox": [0, 0, 10, 10], "iscrowd": 0,
             "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    table = read_coco(tmp_path / "ann.json", tmp_path / "imgs", source="x")
    rows = table.instances.set_index("instance")
    assert rows.loc[1, "kind"] == "mask" and bool(rows.loc[1, "difficult"])
    assert np.array_equal(rasterize([rows.loc[1, "geometry"]], (30, 40)), m.astype(bool))
    assert rows.loc[2, "kind"] == "polygon" and rows.loc[2, "geometry"].area == 100
    coco["annotations"][0]["category_id"] = 9
    (tmp_path / "bad.json").write_text(json.dumps(coco))
    with pytest.raises(InputError, match="category_id 9"):
        read_coco(tmp_path / "bad.json", tmp_path / "imgs")


def test_dota_oriented_boxes_gsd_difficulty() -> None:
    table = read_dota(DATA / "dota")
    text = (DATA / "dota" / "labelTxt" / "P1088_crop.txt").read_text().splitlines()
    objects = [line.split() for line in text if len(line.split()) >= 9]
    assert len(table) == len(objects)
    assert table.class_counts() == {
        canonical_class(c): sum(o[8] == c for o in objects) for c in {o[8] for o in objects}
    }
    assert table.images.gsd.iloc[0] == pytest.approx(float(text[1].split(":")[1]))
    assert (table.instances.kind == "obox").all()
    assert table.instances.difficult.sum() == sum(o[9] == "1" for o in objects)
    first = np.asarray([float(v) for v in objects[0][:8]]).reshape(4, 2)
    assert np.allclose(np.asarray(table.instances.geometry.iloc[0].exterior.coords)[:4], first)


def test_isaid_instances_match_id_and_color_images() -> None:
    table = read_isaid(DATA / "isaid")
    ids = np.asarray(Image.open(DATA / "isaid" / "P0005_crop_instance_id_RGB.png"))
    colors = np.asarray(Image.open(DATA / "isaid" / "P0005_crop_instance_color_RGB.png"))
    key = ids.astype(np.int64) @ [1 << 16, 1 << 8, 1]
    n_ids = len(np.unique(key[key != 0]))
    assert len(table) >= n_ids  # one per id colour (more if an id is split in disjoint parts)
    assert set(table.class_counts()) == {"large-vehicle", "small-vehicle"}
    # Rasterised instances give back the labelled pixels of each class exactly.
    masks = rasterize(table.instances, ids.shape[:2], by="class")
    assert np.array_equal(masks["small-vehicle"], (colors == [0, 0, 127]).all(-1))
    assert np.array_equal(masks["large-vehicle"], (colors == [0, 127, 127]).all(-1))


def test_semantic_masks_components_and_class_table() -> None:
    table = read_semantic_masks(DATA / "loveda" / "img", DATA / "loveda" / "ann", LOVEDA_CLASSES, source="loveda")
    ann = np.asarray(Image.open(DATA / "loveda" / "ann" / "crop.png"))
    masks = rasterize(table.instances, ann.shape, by="class")
    for value, name in LOVEDA_CLASSES.items():
        if name is not None and (ann == value).any():
            assert np.array_equal(masks[name], ann == value), name
    vaihingen = read_semantic_masks(DATA / "vaihingen" / "img", DATA / "vaihingen" / "ann", VAIHINGEN_CLASSES)
    assert "small-vehicle" in vaihingen.class_counts() and "impervious" in vaihingen.class_counts()
    with pytest.raises(InputError, match="class table lacks"):
        read_semantic_masks(DATA / "loveda" / "img", DATA / "loveda" / "ann", {2: "building"})


def test_vector_labels_rasterize_like_rasterio() -> None:
    geojson, tif = DATA / "spacenet" / "buildings.geojson", DATA / "spacenet" / "buildings.tif"
    table = read_vector_labels(geojson, tif, class_name="building", source="spacenet")
    gdf = gpd.read_file(geojson)
    with rasterio.open(tif) as src:
        expect = rasterio.features.rasterize(
            [(g, 1) for g in gdf.to_crs(src.crs).geometry], out_shape=(src.height, src.width), transform=src.transform
        ).astype(bool)
    assert len(table) == len(gdf)
    assert table.images.gsd.iloc[0] == pytest.approx(0.5)
    got = rasterize(table.instances, expect.shape)
    assert (got != expect).mean() < 0.002  # equal up to boundary pixels of polygons cut by the frame
    # Georeferenced rasterisation through the raster's transform gives the same pixels.
    with rasterio.open(tif) as src:
        assert np.array_equal(rasterize(gdf.to_crs(src.crs).geometry, expect.shape, transform=src.transform), expect)


def test_box_csv() -> None:
    table = read_box_csv(DATA / "neon" / "OSBS_029_crop.csv", source="neon", gsd=0.1)
    rows = (DATA / "neon" / "OSBS_029_crop.csv").read_text().splitlines()[1:]
    assert len(table) == len(rows) and table.class_counts() == {"tree": len(rows)}
    assert table.images.width.iloc[0] == 200


def test_vocabulary_maps_dataset_labels() -> None:
    assert canonical_class("Small_Vehicle") == "small-vehicle"
    assert canonical_class("ground-track-field") == "ground-track-field"
    assert canonical_class("Aircrafts") == "plane" and canonical_class("Tree") == "tree"
    with pytest.raises(InputError, match="not in the geosam vocabulary"):
        canonical_class("unicorn")
