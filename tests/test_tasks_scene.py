"""Scene tasks (geosam.tasks.scene and the .remotesam accessor) on georeferenced rasters.

Constructed probability rasters (chunked so that objects cross chunk borders) make every result
exactly known; the real pipeline (segment on real NAIP imagery with the fast test network) checks
that the accessor methods run lazily end to end and agree with each other.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
import xarray as xr

from geosam.errors import InputError
from geosam.model import RemoteSAM
from geosam.segment import segment
from geosam.tasks import scene
from geosam.tasks.boxes import mask_to_boxes

RES = 0.5
X0, Y0 = 500_000.0, 4_000_000.0  # top-left corner, EPSG:32616
CRS = "EPSG:32616"


def _raster(data: np.ndarray, dims: tuple[str, ...], **coords: object) -> xr.DataArray:
    h, w = data.shape[-2:]
    all_coords = {
        "y": Y0 - (np.arange(h) + 0.5) * RES,
        "x": X0 + (np.arange(w) + 0.5) * RES,
        **coords,
    }
    arr = xr.DataArray(data.astype(np.float32), dims=dims, coords=all_coords)
    return arr.rio.write_crs(CRS).chunk({"y": 16, "x": 16})


def _box(c0: int, r0: int, c1: int, r1: int) -> shapely.Polygon:
    """The CRS box of pixel columns c0:c1, rows r0:r1."""
    return shapely.box(X0 + c0 * RES, Y0 - r1 * RES, X0 + c1 * RES, Y0 - r0 * RES)


@pytest.fixture
def probs() -> xr.DataArray:
    ship = np.zeros((40, 40))
    ship[10:20, 12:22] = 0.9  # crosses the chunk borders at row 16 and column 16
    ship[30:34, 2:6] = 0.6
    ship[0:4, 36:40] = 0.005  # above threshold 0.001 only, mean under 0.01: dropped by detect
    harbor = np.zeros((40, 40))
    harbor[5:39, 25:39] = 0.7
    harbor[8:30, 28:36] = 0.0  # a ring ...
    harbor[15:20, 30:33] = 0.8  # ... with an object in its hole: nested, dropped
    data = np.stack([ship, harbor])
    data[:, 39, 0] = np.nan  # one nodata pixel
    return _raster(
        data, ("prompt", "y", "x"), prompt=["ship in the image", "harbor in the image"]
    ).assign_coords({"class": ("prompt", np.array(["ship", "harbor"], dtype=object))})


def test_label_raster_is_lazy_argmax_with_nodata(probs: xr.DataArray) -> None:
    labels = scene.labels_from_scene_probs(probs, 0.5)
    assert labels.chunks is not None  # lazy
    assert labels.dtype == np.uint8 and labels.dims == ("y", "x")
    assert labels.rio.crs == probs.rio.crs
    values = probs.values
    expected = np.where(
        np.nanmax(values, axis=0) > 0.5, np.nanargmax(np.nan_to_num(values, nan=-1), axis=0) + 1, 0
    )
    expected[39, 0] = scene.LABEL_NODATA
    np.testing.assert_array_equal(labels.values, expected)
    assert labels.attrs["flag_meanings"] == "none ship harbor"


def test_detections_cross_chunk_borders_once(probs: xr.DataArray) -> None:
    gdf = scene.detections_from_scene_probs(probs, threshold=0.001)
    assert gdf.crs == CRS
    ships = gdf[gdf["class"] == "ship"]
    # The 10 x 10 ship spans four chunks but is one object; the faint one is dropped (score < 0.01).
    assert len(ships) == 2
    assert ships.geometry.iloc[0].equals(_box(12, 10, 22, 20))
    assert ships["score"].iloc[0] == pytest.approx(0.9)
    assert ships["pixels"].tolist() == [100, 16]
    assert ships["area"].iloc[0] == pytest.approx(100 * RES * RES)
    harbors = gdf[gdf["class"] == "harbor"]
    assert len(harbors) == 1 and harbors.geometry.iloc[0].equals(
        _box(25, 5, 39, 39)
    )  # inner one nested
    oriented = scene.detections_from_scene_probs(probs, threshold=0.5, oriented=True)
    assert oriented.geometry.iloc[0].area == pytest.approx(100 * RES * RES)


def test_split_at_necks_agrees_with_images_across_chunk_borders() -> None:
    # two aircraft whose wing tips overlap, one region spread over several 16-px chunks
    mask = np.zeros((64, 100), dtype=bool)
    for cx in (25, 62):
        mask[10:51, cx - 4 : cx + 5] = True
        mask[26:35, cx - 20 : cx + 21] = True
    prob = np.where(mask, 0.8, 0.0)
    plane = _raster(prob[None], ("prompt", "y", "x"), prompt=["plane in the image"])
    plane = plane.assign_coords({"class": ("prompt", np.array(["plane"], dtype=object))})
    assert len(scene.detections_from_scene_probs(plane)) == 1
    gdf = scene.detections_from_scene_probs(plane, split="shape")
    image_boxes = mask_to_boxes(prob.astype(np.float32), split="shape")
    assert len(gdf) == len(image_boxes) == 2
    expected = sorted(_box(*(int(v) for v in b[:4])).bounds for b in image_boxes)
    assert sorted(g.bounds for g in gdf.geometry) == expected  # the same cut as on the image
    assert gdf["pixels"].sum() == mask.sum() and gdf["score"].tolist() == pytest.approx([0.8, 0.8])
    assert scene.counts_from_scene_probs(plane, split="shape").to_dict("records") == [{"plane": 2}]
    with pytest.raises(InputError, match=r"split must be None or 'shape' for a scene, got 0\.9"):
        scene.detections_from_scene_probs(plane, split=0.9)  # type: ignore[arg-type]


def test_counts_and_scores_per_scene_and_region(probs: xr.DataArray) -> None:
    counts = scene.counts_from_scene_probs(probs, threshold=0.5)
    assert counts.to_dict("records") == [{"ship": 2, "harbor": 1}]
    west = _box(0, 0, 20, 40)
    east = _box(20, 0, 40, 40)
    regions = gpd.GeoDataFrame({"name": ["west", "east"]}, geometry=[west, east], crs=CRS).to_crs(
        4326
    )
    by_region = scene.counts_from_scene_probs(probs, threshold=0.5, regions=regions)
    # The big ship's representative point lies in the west half (columns 12-21, centre 17).
    assert by_region.loc[0].to_dict() == {"ship": 2, "harbor": 0}
    assert by_region.loc[1].to_dict() == {"ship": 0, "harbor": 1}

    scores = scene.scores_from_scene_probs(probs)
    values = probs.values
    expected = 0.5 * np.nanmax(values, axis=(1, 2)) + 0.5 * np.nanmean(values, axis=(1, 2))
    assert scores.iloc[0].tolist() == pytest.approx(expected.tolist(), rel=1e-6)
    regional = scene.scores_from_scene_probs(probs, balance=1.0, regions=regions)
    assert regional.loc[0, "ship"] == pytest.approx(0.9) and regional.loc[0, "harbor"] == 0.0
    assert regional.loc[1, "harbor"] == pytest.approx(0.8)


def test_ground_is_the_union_box(probs: xr.DataArray) -> None:
    out = scene.ground_from_scene_prob(probs.isel(prompt=0), threshold=0.5)
    assert len(out) == 1 and out.crs == CRS
    assert out.geometry.iloc[0].equals(_box(2, 10, 22, 34))
    assert out["score"].iloc[0] == pytest.approx((100 * 0.9 + 16 * 0.6) / 116)
    assert scene.ground_from_scene_prob(probs.isel(prompt=0), threshold=0.95).empty


def test_ground_with_a_relation_keeps_the_object_nearest_the_anchor_as_on_images(
    probs: xr.DataArray,
) -> None:
    from geosam.tasks.referring import select_related

    ship = probs.isel(prompt=0)
    beside = np.zeros((40, 40))
    beside[30:34, 8:10] = 0.9  # by the small ship, 10 rows below the large one
    for anchor, expected in (
        (probs.isel(prompt=1), _box(12, 10, 22, 20)),
        (beside, _box(2, 30, 6, 34)),
    ):
        if isinstance(anchor, np.ndarray):
            anchor = _raster(anchor, ("y", "x"))
        found = scene.ground_from_scene_prob(ship, threshold=0.5, anchor=anchor)
        assert found["objects"].tolist() == [1] and found.geometry.iloc[0].equals(expected)
        kept = select_related(np.nan_to_num(ship.values), np.nan_to_num(anchor.values)) > 0.5
        rows, cols = np.nonzero(kept)
        assert expected.equals(_box(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
    assert scene.ground_from_scene_prob(ship, threshold=0.5, anchor=ship * 0).empty


def test_ground_with_an_attribute_keeps_one_object_as_on_images(probs: xr.DataArray) -> None:
    ship = probs.isel(prompt=0)
    largest = scene.ground_from_scene_prob(ship, threshold=0.5, attribute="largest")
    assert largest["objects"].tolist() == [1] and largest.geometry.iloc[0].equals(
        _box(12, 10, 22, 20)
    )
    corner = scene.ground_from_scene_prob(ship, threshold=0.5, attribute="bottom left")
    assert corner.geometry.iloc[0].equals(_box(2, 30, 6, 34))
    # the same choice as refer() makes on the pixels of that map
    from geosam.tasks.referring import select_component

    for attribute, found in (("largest", largest), ("bottom left", corner)):
        kept = select_component(np.nan_to_num(ship.values), attribute) > 0.5
        rows, cols = np.nonzero(kept)
        assert found.geometry.iloc[0].equals(
            _box(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        )


def test_changes_between_two_dates() -> None:
    before = np.zeros((40, 40))
    before[2:8, 2:8] = 0.9  # disappears
    before[20:30, 20:30] = 0.9  # stays (moved by 2 px)
    after = np.zeros((40, 40))
    after[22:32, 20:30] = 0.9
    after[10:14, 30:38] = 0.7  # appears
    times = np.array(["2019-01-01", "2023-01-01"], dtype="datetime64[ns]")
    prob = _raster(np.stack([before, after]), ("time", "y", "x"), time=times)
    ch = scene.changes_from_scene_prob(prob, threshold=0.5)
    assert ch.crs == CRS
    rows = {c: g for c, g in ch.groupby("change")}
    assert rows["appeared"].geometry.iloc[0].equals(_box(30, 10, 38, 14))
    assert rows["appeared"]["area"].iloc[0] == pytest.approx(32 * RES * RES)
    assert rows["disappeared"].geometry.iloc[0].equals(_box(2, 2, 8, 8))
    assert rows["persisted"]["overlap"].iloc[0] == pytest.approx(0.8)
    assert (rows["appeared"]["time"] == times[1]).all() and (
        rows["disappeared"]["time"] == times[0]
    ).all()
    with pytest.raises(InputError, match="2 steps"):
        scene.changes_from_scene_prob(prob.isel(time=[0]))


# -- the real pipeline --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_dates() -> xr.DataArray:
    """Two real NAIP dates (2009, 2020) of the same place, 192 x 192 pixels, on one grid."""
    import rioxarray

    from geosam.sample_data import naip_paths

    paths = naip_paths()
    first = rioxarray.open_rasterio(paths[0], chunks={"band": -1, "y": 96, "x": 96}, lock=False)
    last = rioxarray.open_rasterio(paths[-1], chunks={"band": -1, "y": 96, "x": 96}, lock=False)
    last = last.assign_coords(x=first.x, y=first.y)  # same quarter-quad, resampled to one grid
    both = xr.concat([first, last], dim="time").assign_coords(
        time=np.array(["2009-08-18", "2020-08-31"], dtype="datetime64[ns]")
    )
    return both.isel(y=slice(0, 192), x=slice(0, 192))


def test_accessor_tasks_on_a_real_scene(fast_model: RemoteSAM, two_dates: xr.DataArray) -> None:
    classes = ["pond", "field"]
    probs = segment(two_dates, [f"{c} in the image" for c in classes], model=fast_model).compute()
    t = float(np.nanquantile(probs.values, 0.8))

    labels = two_dates.remotesam.semantic_segment(classes, model=fast_model, threshold=t)
    assert labels.chunks is not None and labels.dims == ("time", "y", "x")
    assert labels.rio.crs == two_dates.rio.crs
    expected = scene.labels_from_scene_probs(probs.assign_coords({"class": ("prompt", classes)}), t)
    np.testing.assert_array_equal(labels.values, expected.values)

    boxes = two_dates.remotesam.detect(classes, model=fast_model, threshold=t)
    counts = two_dates.remotesam.count(classes, model=fast_model, threshold=t)
    assert len(boxes) > 0 and boxes.crs == two_dates.rio.crs
    assert counts.to_numpy().sum() == len(boxes)
    per_time = (
        boxes.groupby(["time", "class"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=classes, fill_value=0)
    )
    np.testing.assert_array_equal(per_time.to_numpy(), counts.to_numpy())
    bounds = shapely.box(*two_dates.rio.bounds())
    assert all(bounds.buffer(1e-6).covers(g) for g in boxes.geometry)

    scores = two_dates.remotesam.class_scores(classes, model=fast_model)
    assert scores.shape == (2, 2) and ((scores >= 0) & (scores <= 1)).all().all()
    half = gpd.GeoDataFrame(
        geometry=[shapely.box(*two_dates.rio.bounds()).buffer(-100)], crs=two_dates.rio.crs
    )
    regions = two_dates.remotesam.classify_regions(half, classes, model=fast_model, threshold=0.0)
    assert len(regions) == 2 and set(regions["class"]) <= set(classes)

    ground = two_dates.remotesam.ground("the pond", model=fast_model, threshold=t)
    assert set(ground.columns) >= {"prompt", "time", "score", "objects", "geometry"}
    largest = two_dates.remotesam.ground("the largest pond", model=fast_model, threshold=t)
    assert len(largest) == 2 and (largest["objects"] == 1).all()
    assert (largest["prompt"] == "the largest pond").all()
    related = two_dates.remotesam.ground("the pond next to the road", model=fast_model, threshold=t)
    assert len(related) <= 2 and (related["objects"] == 1).all()
    assert (related["prompt"] == "the pond next to the road").all()
    changes = two_dates.remotesam.detect_changes("pond in the image", model=fast_model, threshold=t)
    assert set(changes["change"]) <= {"appeared", "disappeared", "persisted"}
    assert changes.crs == two_dates.rio.crs
    with pytest.raises(InputError, match="time dimension"):
        two_dates.isel(time=0).remotesam.detect_changes("ponds", model=fast_model)


def test_regions_off_the_scene_and_dates_by_year(
    fast_model: RemoteSAM, two_dates: xr.DataArray
) -> None:
    left, bottom, right, top = two_dates.rio.bounds()
    regions = gpd.GeoDataFrame(
        geometry=[shapely.box(right + 1000, top + 1000, right + 2000, top + 2000),  # off the scene
                  shapely.box(left, bottom, right, top).buffer(-100)],
        crs=two_dates.rio.crs,
    )  # fmt: skip
    out = two_dates.remotesam.classify_regions(regions, ["pond", "field"], model=fast_model)
    assert out.loc[out.region == 0, ["pond", "score"]].isna().all().all()  # used to raise
    assert out.loc[out.region == 1, "score"].notna().all()
    by_year = two_dates.remotesam.detect_changes(
        "pond", before="2009", after="2020", model=fast_model
    )
    full = two_dates.remotesam.detect_changes("pond", model=fast_model)
    assert by_year.geometry.equals(full.geometry)
    with pytest.raises(InputError, match=r"selects 0 time steps.*2009-08-18, 2020-08-31"):
        two_dates.remotesam.detect_changes("pond", before="2013", model=fast_model)


def test_unknown_keywords_name_the_task_options(
    fast_model: RemoteSAM, two_dates: xr.DataArray
) -> None:
    # they used to fail inside segment() with "segment() got an unexpected keyword argument"
    with pytest.raises(TypeError, match=r"'nms'.*geosam\.segment \(model, threshold, tile"):
        two_dates.remotesam.detect(["pond"], model=fast_model, nms=0.3)
    with pytest.raises(TypeError, match="'device'"):
        two_dates.remotesam.ground("the pond", model=fast_model, device="cpu")
