"""geosam.imagery.to_rgb8 on real rasters: uint8 aerial, uint16 reflectance, float, panchromatic, bad input."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr

from geosam.errors import BandError, InputError, MissingCRSError, NoDataError
from geosam.imagery import RGB_DIM, to_rgb8
from geosam.stac import open_stac
from tests.stac_fixtures import DATA, naip_items, s2like_item

pytest_plugins = ["tests.stac_fixtures"]

LANDSAT = DATA / "landsat" / "rgb_byte.tif"
PAN = DATA / "spacenet" / "pan.tif"


def read(path: object) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def s2_dataset(**scale: float) -> xr.Dataset:
    """The S2-like uint16 bands as a Dataset with red/green/blue variables (read with rioxarray)."""
    bands = {
        common: rioxarray.open_rasterio(DATA / "s2like" / f"{name}.tif", chunks=128).squeeze(
            "band", drop=True
        )
        for common, name in (("red", "B04"), ("green", "B03"), ("blue", "B02"))
    }
    for band in bands.values():
        band.attrs.update(scale)
    return xr.Dataset(bands)


def test_uint8_stac_time_series_passes_through(stac_api_url: str) -> None:
    ds = open_stac(stac_api_url, collections=["naip-test"], chunks={"x": 128, "y": 128})
    rgb = to_rgb8(ds)
    assert rgb.image.dims == ("time", "y", "x", RGB_DIM)
    assert rgb.valid.dims == ("time", "y", "x")
    assert list(rgb.image[RGB_DIM].values) == ["red", "green", "blue"]
    assert rgb.image.dtype == np.uint8
    assert isinstance(rgb.image.data, dsa.Array) and isinstance(rgb.valid.data, dsa.Array)
    assert rgb.image.data.chunksize == (1, 128, 128, 3)
    assert rgb.image.rio.crs.to_epsg() == 26914 and rgb.image.odc.crs == "EPSG:26914"
    assert rgb.valid.rio.crs.to_epsg() == 26914
    np.testing.assert_array_equal(rgb.image.time.values, ds.time.values)
    expected = (
        ds[["red", "green", "blue"]].to_array(RGB_DIM).transpose("time", "y", "x", RGB_DIM).values
    )
    valid = rgb.valid.values
    np.testing.assert_array_equal(rgb.image.values[valid], expected[valid])
    assert (rgb.image.values[~valid] == 0).all()


def test_rioxarray_rgb_with_nodata_collar() -> None:
    raster = rioxarray.open_rasterio(LANDSAT, chunks=100)
    rgb = to_rgb8(raster)
    assert rgb.image.dims == ("y", "x", RGB_DIM)
    data = read(LANDSAT)
    np.testing.assert_array_equal(rgb.valid.values, ~(data == 0).all(axis=0))
    assert 0.05 < 1 - rgb.valid.values.mean() < 0.2  # the crop includes part of the scene's collar
    np.testing.assert_array_equal(
        rgb.image.values, np.moveaxis(data, 0, -1) * rgb.valid.values[..., None]
    )


def test_rioxarray_masked_float_is_treated_as_its_stored_uint8() -> None:
    masked = rioxarray.open_rasterio(LANDSAT, masked=True)
    assert masked.dtype == np.float32
    rgb = to_rgb8(masked)
    assert rgb.image.attrs["stretch"].startswith("none")
    plain = to_rgb8(rioxarray.open_rasterio(LANDSAT))
    both = rgb.valid.values & plain.valid.values
    np.testing.assert_array_equal(rgb.image.values[both], plain.image.values[both])
    # masked=True masks per band: a pixel with one NaN band is invalid
    assert rgb.valid.values.sum() <= plain.valid.values.sum()


def test_float_dn_are_not_taken_for_reflectance() -> None:
    # float bands on a 0..255 scale (a common .astype("float32")) used to saturate to white
    raster = rioxarray.open_rasterio(LANDSAT).astype("float32")
    with pytest.warns(UserWarning, match="not reflectance"):
        rgb = to_rgb8(raster)
    image, valid = rgb.image.values, rgb.valid.values
    assert image[valid].std() > 40 and (image[valid] < 255).mean() > 0.9
    plain = to_rgb8(rioxarray.open_rasterio(LANDSAT)).image.values.astype(float)
    assert np.corrcoef(image[valid].ravel(), plain[valid].ravel())[0, 1] > 0.95


def test_four_band_rgbn_raster_uses_the_first_three() -> None:
    path = DATA / "naip" / "naip_20140720.tif"
    rgb = to_rgb8(rioxarray.open_rasterio(path))
    np.testing.assert_array_equal(rgb.image.values, np.moveaxis(read(path)[:3], 0, -1))


def test_bands_chosen_by_label_and_description() -> None:
    raster = rioxarray.open_rasterio(LANDSAT)
    swapped = to_rgb8(raster, bands=[3, 2, 1])
    np.testing.assert_array_equal(
        swapped.image.values[..., 0], read(LANDSAT)[2] * swapped.valid.values
    )
    named = raster.assign_coords(band=["red", "green", "blue"])
    np.testing.assert_array_equal(to_rgb8(named).image.values, to_rgb8(raster).image.values)


def test_s2_reflectance_scale_offset_round_trips_the_real_bytes() -> None:
    # s2like was made from the Landsat bytes as DN = byte / 255 * 0.3 * 1e4 + 1000; with gamma 1 the
    # documented 0..0.3 reflectance stretch must give those bytes back
    rgb = to_rgb8(s2_dataset(scale_factor=1e-4, add_offset=-0.1), gamma=1.0)
    assert rgb.image.attrs["stretch"] == "reflectance 0.0..0.3 -> 0..255, gamma 1.0"
    expected = np.moveaxis(read(LANDSAT), 0, -1)
    valid = rgb.valid.values
    diff = np.abs(rgb.image.values.astype(int) - expected.astype(int))[valid]
    assert diff.max() <= 1


def test_s2_default_gamma_brightens_midtones() -> None:
    linear = to_rgb8(s2_dataset(scale_factor=1e-4, add_offset=-0.1), gamma=1.0).image.values.astype(
        float
    )
    gamma = to_rgb8(s2_dataset(scale_factor=1e-4, add_offset=-0.1)).image.values.astype(float)
    mid = (linear > 20) & (linear < 235)
    expected = 255 * (linear[mid] / 255) ** (1 / 2.2)
    assert np.abs(gamma[mid] - expected).max() <= 1.5
    assert gamma[mid].mean() > linear[mid].mean() + 20


def test_s2_through_stac_scales_like_the_attributes(stac_api_url: str) -> None:
    via_stac = to_rgb8(open_stac(stac_api_url, collections=["s2like-test"]), gamma=1.0)
    via_attrs = to_rgb8(s2_dataset(scale_factor=1e-4, add_offset=-0.1), gamma=1.0)
    np.testing.assert_array_equal(via_stac.image.isel(time=0).values, via_attrs.image.values)


def test_float_reflectance_with_nan_matches_the_integer_path() -> None:
    ints = s2_dataset(scale_factor=1e-4, add_offset=-0.1)
    fill = (ints.to_array() == 0).all(
        "variable"
    )  # integer nodata: a pixel is fill when all bands are
    floats = xr.Dataset(
        {
            k: (v.where(~fill).astype("float32") * 1e-4 - 0.1).drop_attrs().rio.write_crs(v.rio.crs)
            for k, v in ints.items()
        }
    )
    floats = floats.rio.write_crs(ints.rio.crs)
    a, b = to_rgb8(ints), to_rgb8(floats)
    np.testing.assert_array_equal(a.valid.values, b.valid.values)
    assert np.abs(a.image.values.astype(int) - b.image.values.astype(int)).max() <= 1


def test_uint16_without_scale_gets_a_percentile_stretch() -> None:
    rgb = to_rgb8(
        s2_dataset()
    )  # rioxarray's default scale_factor 1.0 / add_offset 0.0 mean "no scale"
    dn = np.stack(
        [read(DATA / "s2like" / f"{b}.tif")[0] for b in ("B04", "B03", "B02")], axis=-1
    ).astype(float)
    valid = ~(dn == 0).all(axis=-1)
    np.testing.assert_array_equal(rgb.valid.values, valid)
    low, high = np.percentile(dn[valid], [2, 98])  # one stretch for the three bands together
    assert rgb.image.attrs["stretch"] == f"percentile 2.0..98.0 = {low:g}..{high:g} -> 0..255"
    expected = np.round(np.clip((dn - low) / (high - low), 0, 1) * 255)
    np.testing.assert_array_equal(rgb.image.values[valid], expected[valid])


def test_panchromatic_is_stretched_and_replicated_independent_of_chunks() -> None:
    one_chunk = to_rgb8(rioxarray.open_rasterio(PAN, chunks=-1))
    small_chunks = to_rgb8(rioxarray.open_rasterio(PAN, chunks=48))
    image = one_chunk.image.values
    assert image.shape == (256, 256, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    np.testing.assert_array_equal(small_chunks.image.values, image)
    pan = read(PAN)[0]
    low, high = np.percentile(pan, [2, 98])
    assert one_chunk.image.attrs["stretch"] == f"percentile 2.0..98.0 = {low:g}..{high:g} -> 0..255"
    np.testing.assert_array_equal(
        image[..., 0], np.round(np.clip((pan - low) / (high - low), 0, 1) * 255)
    )
    # a training or evaluation image of the same file gets the same pixels as the scene
    from geosam.data.images import read_rgb

    np.testing.assert_array_equal(read_rgb(PAN), image)


def test_panchromatic_stac_item_becomes_grey_rgb(stac_api_url: str) -> None:
    rgb = to_rgb8(open_stac(stac_api_url, collections=["spacenet-test"]))
    assert rgb.image.dims == ("time", "y", "x", RGB_DIM)
    image = rgb.image.values
    assert image.std() > 20  # a real stretch, not a flat image
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_explicit_linear_stretch() -> None:
    rgb = to_rgb8(rioxarray.open_rasterio(PAN), stretch=(100.0, 1100.0))
    pan = read(PAN)[0].astype(float)
    np.testing.assert_array_equal(
        rgb.image.values[..., 0], np.round(np.clip((pan - 100) / 1000, 0, 1) * 255)
    )


def test_nan_in_one_band_invalidates_but_nodata_in_one_band_does_not() -> None:
    raster = rioxarray.open_rasterio(LANDSAT).astype("float32") / 255 * 0.3
    raster = raster.rio.write_crs(rioxarray.open_rasterio(LANDSAT).rio.crs)
    raster[0, 10, 10] = np.nan
    assert not to_rgb8(raster).valid.values[10, 10]
    ints = rioxarray.open_rasterio(LANDSAT)
    ints[0, 200, 200] = 0  # nodata value in the red band only: a dark red pixel, still data
    ints[:, 201, 201] = 0  # nodata in every band: fill
    valid = to_rgb8(ints).valid.values
    assert valid[200, 200] and not valid[201, 201]


# ---------------------------------------------------------------- bad input


def test_no_crs_is_refused() -> None:
    raster = rioxarray.open_rasterio(LANDSAT).drop_vars("spatial_ref")
    raster.attrs.pop("grid_mapping", None)
    with pytest.raises(MissingCRSError, match="no CRS"):
        to_rgb8(raster)
    assert to_rgb8(raster, require_crs=False).image.shape == (256, 256, 3)


def test_unknown_band_names_list_what_exists() -> None:
    ds = s2_dataset()
    with pytest.raises(BandError, match=r"\['nir'\].*\['red', 'green', 'blue'\]"):
        to_rgb8(ds, bands=["red", "green", "nir"])
    with pytest.raises(BandError, match=r"unknown band\(s\) \[7\].*\[1, 2, 3\]"):
        to_rgb8(rioxarray.open_rasterio(LANDSAT), bands=[1, 2, 7])
    with pytest.raises(BandError, match="no red, green and blue variables"):
        to_rgb8(ds.rename({"red": "B04"}).drop_vars("blue"))


def test_wrong_band_counts() -> None:
    raster = rioxarray.open_rasterio(LANDSAT)
    with pytest.raises(BandError, match=r"3 bands .* or 1 .*got 2"):
        to_rgb8(raster, bands=[1, 2])
    five = xr.concat([raster, raster.isel(band=[0, 1])], dim="band").assign_coords(
        band=[1, 2, 3, 4, 5]
    )
    with pytest.raises(BandError, match="from 5 bands"):
        to_rgb8(five)


def test_all_nodata_input() -> None:
    raster = rioxarray.open_rasterio(LANDSAT)
    empty = xr.zeros_like(raster)
    with pytest.raises(NoDataError, match="every pixel"):
        to_rgb8(empty)  # numpy input: checked at once
    lazy = empty.chunk(64)
    rgb = to_rgb8(lazy)  # lazy input: not read here; the mask says so
    assert not bool(rgb.valid.any())
    with pytest.raises(NoDataError):
        to_rgb8(lazy, check_valid=True)
    with pytest.raises(NoDataError):
        to_rgb8(
            xr.zeros_like(rioxarray.open_rasterio(PAN)).chunk(64)
        )  # the percentile pass reads it anyway


def test_bad_arguments() -> None:
    raster = rioxarray.open_rasterio(LANDSAT)
    with pytest.raises(InputError, match="unknown stretch"):
        to_rgb8(raster, stretch="sqrt")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="high > low"):
        to_rgb8(raster, stretch=(5.0, 5.0))
    with pytest.raises(InputError, match="Dataset or DataArray"):
        to_rgb8(read(LANDSAT))  # type: ignore[arg-type]


def test_list_of_items_to_rgb_keeps_time() -> None:
    rgb = to_rgb8(open_stac(naip_items()[:2]))
    assert rgb.image.sizes["time"] == 2


def test_s2_baseline_items_to_rgb(tmp_path: object) -> None:
    rgb = to_rgb8(open_stac([s2like_item(with_scale=False, baseline="05.09")]), gamma=1.0)
    expected = np.moveaxis(read(LANDSAT), 0, -1)
    valid = rgb.valid.values[0]
    assert np.abs(rgb.image.values[0].astype(int) - expected.astype(int))[valid].max() <= 1
