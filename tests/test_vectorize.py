"""to_geodataframe: chunk-by-chunk polygons with no seams, scores, boxes, GeoParquet round trips."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio.features
import shapely
import xarray as xr

import geosam
from geosam import RemoteSAM
from geosam.errors import InputError, MissingCRSError
from tests.pipeline_fixtures import foreground_threshold, naip_scene, naip_time_series


@pytest.fixture(scope="module")
def probability() -> xr.DataArray:
    """The fast model's probability of one real NAIP date, computed once (numpy-backed)."""
    from tests.pipeline_fixtures import fast_model

    return geosam.segment(naip_scene(chunks=512), "ponds", model=fast_model()).compute()


def _whole_scene_polygons(prob: np.ndarray, threshold: float) -> list[shapely.Geometry]:
    """Reference: rasterio's shapes over the whole array at once (4-connected, pixel coordinates)."""
    fg = prob >= threshold
    return [
        shapely.geometry.shape(g) for g, _ in rasterio.features.shapes(fg.astype(np.uint8), mask=fg)
    ]


def _shapes(gdf: gpd.GeoDataFrame) -> list[str]:
    """The geometries as sorted normalized WKT: equal lists mean the same set of shapes."""
    # simplify(0) drops collinear vertices, which merged pieces may keep where they were joined
    return sorted(shapely.to_wkt(shapely.normalize(shapely.simplify(gdf.geometry.values, 0))))


def test_no_polygon_is_split_at_chunk_seams(probability: xr.DataArray) -> None:
    threshold = foreground_threshold(probability)
    reference = _whole_scene_polygons(probability.values, threshold)
    one = geosam.to_geodataframe(probability.chunk({"y": 512, "x": 512}), threshold=threshold)
    assert len(one) == len(reference) > 20
    pixel_area = abs(probability.rio.resolution()[0] * probability.rio.resolution()[1])
    assert one["area"].sum() == pytest.approx(sum(p.area for p in reference) * pixel_area)
    for chunks in (128, 100, 37):
        many = geosam.to_geodataframe(
            probability.chunk({"y": chunks, "x": chunks}), threshold=threshold
        )
        assert len(many) == len(one), (
            f"{chunks} px chunks: {len(many)} polygons, one chunk: {len(one)}"
        )
        assert many["area"].sum() == pytest.approx(one["area"].sum())
        assert (many.geom_type == "Polygon").all()
        assert _shapes(many) == _shapes(one)  # the very same objects
        np.testing.assert_allclose(np.sort(many.score.values), np.sort(one.score.values), rtol=1e-5)
    # most large objects do cross a 37 px seam, so the merge was exercised
    assert (one.pixels > 37 * 37).sum() > 3


def test_columns_scores_and_crs(probability: xr.DataArray) -> None:
    threshold = foreground_threshold(probability)
    gdf = probability.remotesam.to_geodataframe(threshold=threshold)
    assert list(gdf.columns) == ["prompt", "score", "pixels", "area", "geometry"]
    assert (gdf.prompt == "ponds").all()
    assert gdf.crs == probability.rio.crs
    assert (gdf.score >= threshold).all() and (gdf.score <= 1).all()
    assert (gdf.pixels >= 1).all()
    # the score is the mean probability under the polygon
    biggest = gdf.loc[gdf.pixels.idxmax()]
    inside = rasterio.features.geometry_mask(
        [biggest.geometry],
        out_shape=probability.shape,
        transform=probability.rio.transform(),
        invert=True,
    )
    assert inside.sum() == biggest.pixels
    assert biggest.score == pytest.approx(float(probability.values[inside].mean()), rel=1e-5)
    # min_pixels drops the small ones
    assert (
        len(geosam.to_geodataframe(probability, threshold=threshold, min_pixels=50))
        == (gdf.pixels >= 50).sum()
    )


def test_boxes_axis_aligned_and_oriented(probability: xr.DataArray) -> None:
    threshold = foreground_threshold(probability)
    chunked = probability.chunk({"y": 128, "x": 128})
    polygons = geosam.to_geodataframe(chunked, threshold=threshold)
    boxes = geosam.to_geodataframe(chunked, threshold=threshold, geometry="box")
    oriented = geosam.to_geodataframe(chunked, threshold=threshold, geometry="oriented_box")
    # the same rows in the same order, whatever the geometry; area is the object's, not the box's
    np.testing.assert_allclose(boxes["area"].values, polygons["area"].values)
    np.testing.assert_allclose(oriented["area"].values, polygons["area"].values)
    assert shapely.equals(boxes.geometry.values, shapely.envelope(polygons.geometry.values)).all()
    assert boxes.geometry.covers(polygons.geometry).all()
    box_areas, oriented_areas = boxes.geometry.area.values, oriented.geometry.area.values
    assert (oriented_areas <= box_areas + 1e-6).all() and (oriented_areas < box_areas - 1).any()
    assert (
        oriented.geometry.buffer(1e-6).covers(polygons.geometry).all()
    )  # mm: float error at 5e6 m
    # boxes() on CRS coordinates gives the same minimum rectangles; where two rectangles tie for the
    # minimum (an L-shaped region can have an axis-aligned and a tilted one of equal area), float
    # error may pick the other, so compare what defines them: the area, and covering the region
    again = geosam.boxes(polygons, oriented=True)
    np.testing.assert_allclose(again.geometry.area.values, oriented_areas, rtol=1e-9, atol=1e-6)
    assert again.geometry.buffer(1e-6).covers(polygons.geometry).all()
    same = shapely.hausdorff_distance(again.geometry.values, oriented.geometry.values) < 1e-6
    assert same.mean() > 0.95
    assert shapely.equals(geosam.boxes(polygons).geometry.values, boxes.geometry.values).all()


def test_geoparquet_round_trip_keeps_crs(probability: xr.DataArray, tmp_path) -> None:
    gdf = geosam.to_geodataframe(probability, threshold=foreground_threshold(probability))
    path = tmp_path / "ponds.parquet"
    gdf.to_parquet(path)
    back = gpd.read_parquet(path)
    assert back.crs == gdf.crs and back.crs.to_epsg() == 26914
    assert len(back) == len(gdf) and shapely.equals(back.geometry.values, gdf.geometry.values).all()
    np.testing.assert_allclose(back["area"].values, gdf["area"].values)


def test_masks_time_and_prompts_and_nodata(fast_model: RemoteSAM) -> None:
    ds = naip_time_series(chunks=128).isel(x=slice(0, 256), y=slice(0, 256))
    prob = geosam.segment(ds, ["ponds", "roads"], model=fast_model).compute()
    threshold = foreground_threshold(prob)
    gdf = geosam.to_geodataframe(prob.chunk({"y": 100, "x": 100}), threshold=threshold)
    assert list(gdf.columns) == ["prompt", "time", "score", "pixels", "area", "geometry"]
    assert set(gdf.prompt) == {"ponds", "roads"} and gdf.time.nunique() == 2
    for (t, p), group in gdf.groupby(["time", "prompt"]):
        one = prob.sel(time=t, prompt=p)
        assert len(group) == len(_whole_scene_polygons(one.values, threshold))
    mask = (prob >= threshold).astype(np.uint8).where(prob.notnull(), 255).astype(np.uint8)
    mask = mask.rio.write_crs(prob.rio.crs)
    from_mask = geosam.to_geodataframe(mask)
    assert len(from_mask) == len(gdf) and from_mask.score.isna().all()
    # NaN (nodata) is never an object, even at threshold 0
    holes = prob.isel(time=0, prompt=0).copy()
    holes[:, 100:140] = np.nan
    everything = geosam.to_geodataframe(holes, threshold=0.0)
    assert len(everything) == 2 and everything.pixels.sum() == 256 * (256 - 40)


def test_bad_input(probability: xr.DataArray) -> None:
    with pytest.raises(MissingCRSError):
        geosam.to_geodataframe(probability.drop_vars("spatial_ref"))
    with pytest.raises(InputError, match="geometry"):
        geosam.to_geodataframe(probability, geometry="circle")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="threshold"):
        geosam.to_geodataframe(probability, threshold=2)
    with pytest.raises(InputError, match="DataArray"):
        geosam.to_geodataframe(probability.to_dataset())  # type: ignore[arg-type]


def test_imagery_and_class_maps_are_not_taken_for_results(probability: xr.DataArray) -> None:
    image = naip_scene(chunks=256)
    with pytest.raises(InputError, match="'band' dimension"):
        geosam.to_geodataframe(image)
    with pytest.raises(InputError, match=r"\[0, 1\]"):  # one band of uint8 imagery, as floats
        geosam.to_geodataframe(image.isel(band=0).astype("float32"))
    classes = (probability * 5).astype("uint8")  # a class map, values 0..4
    with pytest.raises(InputError, match="select one class"):
        geosam.to_geodataframe(classes)
    assert len(geosam.to_geodataframe((classes == 4).astype("uint8"))) > 0
