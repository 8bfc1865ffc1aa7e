"""Importers on real label files: counts and geometry checked against the files themselves."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

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
    read_rgb,
    read_semantic_masks,
    read_vector_labels,
    read_yolo,
)
from geosam.data.chips import Window, clip_instances
from geosam.data.dota import DOTA_CLASSES
from geosam.data.images import read_header
from geosam.errors import InputError
from tests.data_fixtures import DATA

SCENE = DATA / "dota" / "images" / "P1088_crop.png"  # a real 450 x 450 aerial crop


def _image(path: Path, width: int, height: int, *, orientation: int = 1) -> Path:
    """A ``width x height`` crop of a real scene saved at ``path``, with an EXIF orientation if not 1."""
    with Image.open(SCENE) as im:
        crop = im.convert("RGB").crop((0, 0, width, height))
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    crop.save(path, exif=exif)
    return path


def _coco(path: Path, images: list[dict[str, Any]], annotations: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({
        "images": images, "annotations": annotations, "categories": [{"id": 1, "name": "ship"}],
    }))
    return path


def _user_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


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


def test_sample_sets_import_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        read_coco(DATA / "hrplanes" / "valid" / "_annotations.coco.json")
        read_yolo(DATA / "ships_ge" / "yolo")
        read_dota(DATA / "dota")


def test_coco_declared_size_must_be_the_stored_size(tmp_path) -> None:
    # The review's case: a 256 x 256 PNG declared 512 x 512, with a box only the declared size holds.
    _image(tmp_path / "a.png", 256, 256)
    ann = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [300, 300, 100, 100]}]
    path = _coco(tmp_path / "ann.json", [{"id": 1, "file_name": "a.png", "width": 512, "height": 512}], ann)
    with pytest.raises(InputError, match=r"ann\.json: image 'a\.png' is 512x512 .* but 256x256 .*scaled by 0\.5"):
        read_coco(path)
    # Stored 40 x 30 but shown 30 x 40 (EXIF orientation 6): geosam reads it as stored.
    rotated = _image(tmp_path / "r.jpg", 40, 30, orientation=6)
    header = read_header(rotated)
    assert (header.size, header.displayed_size, header.orientation) == ((40, 30), (30, 40), 6)
    assert read_rgb(rotated).shape == (30, 40, 3)
    ann = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}]
    path = _coco(tmp_path / "rot.json", [{"id": 1, "file_name": "r.jpg", "width": 30, "height": 40}], ann)
    with pytest.raises(InputError, match=r"'r\.jpg' is 30x40 .* but 40x30 .*EXIF orientation 6.*exif_transpose"):
        read_coco(path)
    _image(tmp_path / "s.png", 40, 30)
    path = _coco(tmp_path / "swap.json", [{"id": 1, "file_name": "s.png", "width": 30, "height": 40}], ann)
    with pytest.raises(InputError, match="width and height are swapped"):
        read_coco(path)
    # No declared size: the file's is used.
    table = read_coco(_coco(tmp_path / "nosize.json", [{"id": 1, "file_name": "s.png"}], ann))
    assert (table.images.width.iloc[0], table.images.height.iloc[0]) == (40, 30)
    # An RLE mask of another size than its image.
    rle = {"size": [40, 30], "counts": [0, 1200]}
    ann = [{"id": 5, "image_id": 1, "category_id": 1, "segmentation": rle}]
    path = _coco(tmp_path / "rle.json", [{"id": 1, "file_name": "s.png", "width": 40, "height": 30}], ann)
    with pytest.raises(InputError, match=r"annotation 5 of image 's\.png': its RLE mask has size \[40, 30\]"):
        read_coco(path)


def test_coco_exif_rotation_warned_unless_the_size_settles_it(tmp_path) -> None:
    _image(tmp_path / "half.jpg", 40, 30, orientation=3)  # 180 degrees: same size either way
    _image(tmp_path / "quarter.jpg", 40, 30, orientation=6)  # declared as stored: labels are on it
    images = [{"id": 1, "file_name": "half.jpg", "width": 40, "height": 30},
              {"id": 2, "file_name": "quarter.jpg", "width": 40, "height": 30}]
    ann = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        read_coco(_coco(tmp_path / "ann.json", images, ann))
    messages = _user_warnings(record)
    assert len(messages) == 1 and "1 image(s) carry an EXIF orientation" in messages[0]
    assert "half.jpg (orientation 3)" in messages[0]


def test_coco_drops_zero_area_and_outside_labels_with_one_warning(tmp_path) -> None:
    _image(tmp_path / "a.png", 256, 256)
    boxes = {1: [10, 10, 20, 20], 2: [10, 10, 0, 0], 3: [300, 300, 100, 100], 4: [-30, 0, 30, 20],
             5: [200, 200, 100, 100]}
    ann = [{"id": k, "image_id": 1, "category_id": 1, "bbox": b} for k, b in boxes.items()]
    ann.append({"id": 6, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20],
                "segmentation": [[0, 0, 10, 10, 20, 20]]})  # collinear corners
    path = _coco(tmp_path / "ann.json", [{"id": 1, "file_name": "a.png", "width": 256, "height": 256}], ann)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        table = read_coco(path)
    messages = _user_warnings(record)
    assert len(messages) == 1, messages
    assert "ann.json: dropped 4 of 6 labels" in messages[0]
    assert "2 with zero area (e.g. annotation 2 of image 'a.png')" in messages[0]
    assert "2 entirely outside their image (e.g. annotation 3 of image 'a.png')" in messages[0]
    assert sorted(table.instances.instance) == [1, 5]
    # A label partly outside is kept whole; chips clip it to the image and record how much is visible.
    partial = table.instances[table.instances.instance == 5]
    assert partial.geometry.iloc[0].bounds == (200, 200, 300, 300)
    clipped = clip_instances(partial, Window(0, 0, 256, 256), (256, 256))
    assert clipped.geometry.iloc[0].bounds == (200, 200, 256, 256)
    assert clipped.visible.iloc[0] == pytest.approx(56 * 56 / 100**2)


def test_coco_structure_problems_are_named(tmp_path) -> None:
    _image(tmp_path / "a.png", 32, 32)
    image = {"id": 1, "file_name": "a.png", "width": 32, "height": 32}
    box_ann = {"id": 3, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}
    with pytest.raises(InputError, match=r"lists no images for its 1 annotations"):
        read_coco(_coco(tmp_path / "a.json", [], [box_ann]))
    with pytest.raises(InputError, match=r"lists no images: nothing to import"):
        read_coco(_coco(tmp_path / "b.json", [], []))
    with pytest.warns(UserWarning, match=r"c\.json lists 1 images but no annotations"):
        table = read_coco(_coco(tmp_path / "c.json", [image], []))
    assert len(table.images) == 1 and len(table) == 0
    with pytest.raises(InputError, match=r"annotation 3 refers to image_id 99, which is not in its images list \(1 images, ids \[1\]\)"):
        read_coco(_coco(tmp_path / "d.json", [image], [{**box_ann, "image_id": 99}]))
    with pytest.raises(InputError, match=r"annotation 3 of image 'a\.png' has unknown category_id '1'; .* ids \[1\]"):
        read_coco(_coco(tmp_path / "e.json", [image], [{**box_ann, "category_id": "1"}]))
    with pytest.raises(InputError, match=r"entry 1 of 'annotations' has no 'category_id'"):
        read_coco(_coco(tmp_path / "f.json", [image], [{"id": 3, "image_id": 1, "bbox": [1, 1, 5, 5]}]))
    with pytest.raises(InputError, match=r"image id 1 is listed twice"):
        read_coco(_coco(tmp_path / "g.json", [image, image], [box_ann]))
    with pytest.raises(InputError, match=r"bbox \[1, 1, 5\] is not \[x, y, width, height\]"):
        read_coco(_coco(tmp_path / "h.json", [image], [{**box_ann, "bbox": [1, 1, 5]}]))
    (tmp_path / "i.json").write_text("[]")
    with pytest.raises(InputError, match="holds a json list"):
        read_coco(tmp_path / "i.json")


def test_yolo_drops_zero_area_and_outside_labels_with_one_warning(tmp_path) -> None:
    _image(tmp_path / "images" / "a.png", 100, 50)
    _image(tmp_path / "images" / "r.jpg", 40, 30, orientation=6)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0 0.2\n0 1.5 1.5 0.2 0.2\n0 0.95 0.5 0.2 0.2\n"
    )
    (tmp_path / "labels" / "r.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "labels" / "gone.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        table = read_yolo(tmp_path, names=["ship"])
    messages = _user_warnings(record)
    assert len(messages) == 3, messages
    assert any("1 label files have no image" in m and "gone.txt" in m for m in messages)
    assert any("1 image(s) carry an EXIF orientation" in m and "r.jpg (orientation 6)" in m for m in messages)
    dropped = next(m for m in messages if "dropped" in m)
    assert "dropped 2 of 5 labels" in dropped
    assert "1 with zero area (e.g. a.txt:2 of image a.png)" in dropped
    assert "1 entirely outside their image (e.g. a.txt:3 of image a.png)" in dropped
    a = table.instances[table.instances.image.str.endswith("a.png")]
    assert a.instance.tolist() == [1, 4]
    assert a.geometry.iloc[1].bounds == pytest.approx((85, 20, 105, 30))  # partly outside: kept whole
    (tmp_path / "labels" / "a.txt").write_text("-1 0.5 0.5 0.2 0.2\n")
    with pytest.raises(InputError, match=r"a\.txt:1: class -1 but only 1 names"):
        read_yolo(tmp_path, names=["ship"])
    (tmp_path / "labels" / "a.txt").write_text("0.5 0.5 0.5 0.2 0.2\n")
    with pytest.raises(InputError, match=r"a\.txt:1: the class '0\.5' is not a whole number"):
        read_yolo(tmp_path, names=["ship"])


def test_dota_drops_zero_area_and_outside_boxes_with_one_warning(tmp_path) -> None:
    _image(tmp_path / "images" / "a.png", 100, 100)
    (tmp_path / "labelTxt").mkdir()
    (tmp_path / "labelTxt" / "a.txt").write_text(
        "imagesource:GoogleEarth\ngsd:0.5\n"
        "10 10 30 10 30 20 10 20 ship 0\n"
        "0 0 10 10 20 20 30 30 ship 0\n"  # corners on a line
        "200 200 210 200 210 210 200 210 plane 1\n"
        "90 90 120 90 120 120 90 120 plane 0\n"
    )
    with pytest.warns(UserWarning, match=r"dropped 2 of 4 labels") as record:
        table = read_dota(tmp_path)
    messages = _user_warnings(record.list)
    assert len(messages) == 1
    assert "1 with zero area (e.g. a.txt:4 of image a.png)" in messages[0]
    assert "1 entirely outside their image (e.g. a.txt:5 of image a.png)" in messages[0]
    assert table.instances.instance.tolist() == [3, 6]


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
    # DOTA itself labels its 15 classes everywhere; a DOTA-format set of your own, what it holds
    assert set(table.images.labelled.iloc[0]) == set(DOTA_CLASSES)
    own = read_dota(DATA / "dota", labelled=None)
    assert set(own.images.labelled.iloc[0]) == set(table.class_counts())


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


def test_semantic_masks_must_sit_on_their_image_and_take_json_tables(tmp_path) -> None:
    for part in ("img", "ann"):
        (tmp_path / "valid" / part).mkdir(parents=True)
    image = np.asarray(Image.open(DATA / "loveda" / "img" / "crop.png"))
    ann = np.asarray(Image.open(DATA / "loveda" / "ann" / "crop.png"))
    Image.fromarray(image).save(tmp_path / "valid" / "img" / "a.png")
    Image.fromarray(ann[::2, ::2]).save(tmp_path / "valid" / "ann" / "a.png")  # half the size
    classes = {str(k): v for k, v in LOVEDA_CLASSES.items()}  # as read from a JSON file
    with pytest.raises(InputError, match=r"128 x 128 px but its image .* is 256 x 256"):
        read_semantic_masks(tmp_path / "valid" / "img", tmp_path / "valid" / "ann", classes)
    Image.fromarray(ann).save(tmp_path / "valid" / "ann" / "a.png")
    table = read_semantic_masks(tmp_path / "valid" / "img", tmp_path / "valid" / "ann", classes)
    assert table.images.split.tolist() == ["valid"]  # the split folder above the mask folder
    # one mask file with the folder of its image
    one = read_semantic_masks(tmp_path / "valid" / "img", tmp_path / "valid" / "ann" / "a.png", LOVEDA_CLASSES)
    assert one.images.image.tolist() == [str(tmp_path / "valid" / "img" / "a.png")]
    assert one.class_counts() == table.class_counts()


def test_vector_labels_partly_outside_missing_or_undeclared(tmp_path) -> None:
    geojson, tif = DATA / "spacenet" / "buildings.geojson", DATA / "spacenet" / "buildings.tif"
    gdf = gpd.read_file(geojson)
    with rasterio.open(tif) as src:
        crs, width = src.crs, src.bounds.right - src.bounds.left
    inside = read_vector_labels(gdf, tif, class_name="building")
    # A building cut by the raster's edge is kept whole, so a chip knows it is not fully in view.
    cut = inside.instances[inside.instances.geometry.apply(lambda g: g.bounds[0] < 0 or g.bounds[1] < 0
                                                           or g.bounds[2] > 400 or g.bounds[3] > 400)]
    assert len(cut) and (clip_instances(cut, Window(0, 0, 400, 400), (400, 400))["visible"] < 1).all()
    # Labels off the raster: dropped with one warning; all of them off: an error.
    far = gdf.to_crs(crs).translate(xoff=10 * width)
    with pytest.warns(UserWarning, match=r"dropped 3 of 13 labels .* outside"):
        read_vector_labels(gpd.GeoDataFrame(geometry=[*gdf.to_crs(crs).geometry, *far[:3]], crs=crs), tif,
                           class_name="building")
    with pytest.raises(InputError, match="none of the 10 labels falls on"):
        read_vector_labels(gpd.GeoDataFrame(geometry=far, crs=crs), tif, class_name="building")
    # Metres in a file read as degrees (GeoJSON without a crs member)
    metres = gdf.to_crs(crs).set_crs("EPSG:4326", allow_override=True)
    with pytest.raises(InputError, match="probably metres of a projected CRS"):
        read_vector_labels(metres, tif, class_name="building")
    # Numeric class codes (floats after a NaN-holding read) map like their integers; nulls are named.
    coded = gdf.assign(code=[1.0] * len(gdf))
    table = read_vector_labels(coded, tif, class_column="code", class_map={1: "building"})
    assert table.class_counts() == {"building": len(gdf)}
    with pytest.raises(InputError, match="1 of 10 features have no value in column 'code'"):
        read_vector_labels(coded.assign(code=[None, *coded.code[1:]]), tif, class_column="code",
                           class_map={1: "building"})


def test_lines_are_widened_in_true_metres_whatever_the_crs() -> None:
    import shapely

    tif = DATA / "spacenet" / "buildings.tif"  # 0.5 m pixels, EPSG:32616
    with rasterio.open(tif) as src:
        crs, (left, bottom, right, top) = src.crs, src.bounds
    y = (bottom + top) / 2
    road = gpd.GeoDataFrame(geometry=[shapely.LineString([(left + 20, y), (right - 20, y)])], crs=crs)
    masks = []
    for labels in (road, road.to_crs("EPSG:4326"), road.to_crs("EPSG:3857")):
        table = read_vector_labels(labels, tif, class_name="road", buffer_m=2.0)
        masks.append(rasterize(table.instances, (400, 400)))
    rows = masks[0].any(axis=1).sum()
    assert 7 <= rows <= 9  # 2 m either side of the centre line at 0.5 m per pixel
    for other in masks[1:]:
        assert (other != masks[0]).sum() <= 0.01 * masks[0].sum()
    with pytest.raises(InputError, match=r"feature 1 \(Point\) has lines or points: pass buffer_m"):
        read_vector_labels(gpd.GeoDataFrame(geometry=[shapely.Point(left + 5, y)], crs=crs), tif, class_name="car")
    # a line inside a GeometryCollection is widened as well, its polygon kept
    square = shapely.box(left + 10, bottom + 10, left + 30, bottom + 30)
    mixed = gpd.GeoDataFrame(geometry=[shapely.GeometryCollection([road.geometry[0], square])], crs=crs)
    table = read_vector_labels(mixed, tif, class_name="road", buffer_m=2.0)
    assert rasterize(table.instances, (400, 400)).sum() == pytest.approx(masks[0].sum() + 40 * 40, rel=0.02)


def test_read_rgb_follows_declared_colour_bands(tmp_path) -> None:
    from rasterio.enums import ColorInterp

    rgb = np.asarray(Image.open(DATA / "loveda" / "img" / "crop.png").convert("RGB"))
    nir = np.full(rgb.shape[:2], 7, np.uint8)
    bgrn = np.stack([rgb[..., 2], rgb[..., 1], rgb[..., 0], nir])  # band order of Planet's 4-band products
    profile = dict(driver="GTiff", width=rgb.shape[1], height=rgb.shape[0], count=4, dtype="uint8")
    with rasterio.open(tmp_path / "bgrn.tif", "w", **profile) as dst:
        dst.write(bgrn)
        dst.colorinterp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined]
    assert np.array_equal(read_rgb(tmp_path / "bgrn.tif"), rgb)
    with rasterio.open(tmp_path / "two.tif", "w", **{**profile, "count": 2}) as dst:
        dst.write(bgrn[:2])
    with pytest.raises(InputError, match="has 2 bands"):
        read_rgb(tmp_path / "two.tif")


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
