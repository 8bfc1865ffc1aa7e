"""geosam.open_stac against a real STAC API (rustac, or pgstac in CI) and static sources over real COGs."""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dask.array as dsa
import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr

import geosam
from geosam import sample_data
from geosam.errors import (
    BandError,
    CollectionNotFoundError,
    InputError,
    NoItemsError,
    StacServerError,
)
from geosam.stac import DEFAULT_CHUNKS, open_stac, search_items
from geosam.stac_catalog import write_static_catalog
from geosam.stac_server import free_port
from tests.stac_fixtures import DATA, LoopbackServer, StacTestCatalog, naip_items, s2like_item

pytest_plugins = ["tests.stac_fixtures"]

# lon/lat box inside the NAIP test crops (which span about -99.145..-99.128 E, 47.012..47.024 N)
NAIP_BBOX = [-99.142, 47.014, -99.132, 47.022]
NAIP_CRS = "EPSG:26914"


def sample_file(
    path: Path, da: xr.DataArray, band: int, step: int = 7
) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``da`` (y, x) at a lattice of its pixel centres, and the file's values at the same points."""
    xs, ys = da.x.values[3:-3:step], da.y.values[3:-3:step]
    gx, gy = np.meshgrid(xs, ys)
    with rasterio.open(path) as src:
        expected = np.array(
            [v[band - 1] for v in src.sample(list(zip(gx.ravel(), gy.ravel(), strict=True)))]
        )
    return da.sel(x=xs, y=ys).values.ravel(), expected


def test_open_stac_api_search_filters_and_loads_lazily(stac_api_url: str) -> None:
    ds = open_stac(stac_api_url, collections=["naip-test"], bbox=NAIP_BBOX, datetime="2010/2021")
    assert list(ds.data_vars) == ["red", "green", "blue"]
    assert [str(t)[:10] for t in ds.time.values] == ["2014-07-20", "2020-08-31"]
    assert ds.red.dims == ("time", "y", "x")
    assert isinstance(ds.red.data, dsa.Array)
    assert ds.red.dtype == np.uint8
    assert ds.odc.crs == NAIP_CRS
    assert ds.rio.crs.to_epsg() == 26914
    assert "spatial_ref" in ds.coords
    # the bbox crops the grid: about 760 m x 890 m at 5 m, far less than the 1280 m crops
    assert 100 < ds.sizes["x"] < 200 and 130 < ds.sizes["y"] < 220
    got, expected = sample_file(DATA / "naip" / "naip_20200831.tif", ds.red.isel(time=1), band=1)
    np.testing.assert_array_equal(got, expected)


def test_rgbn_bands_by_common_name(stac_api_url: str) -> None:
    ds = open_stac(
        stac_api_url,
        collections="naip-test",
        datetime="2009-08-18",
        bands=["red", "green", "blue", "nir"],
    )
    assert list(ds.data_vars) == ["red", "green", "blue", "nir"]
    assert ds.nir.attrs["common_name"] == "nir"
    assert ds.red.attrs["nodata"] == 0
    for name, band in (("nir", 4), ("blue", 3)):
        got, expected = sample_file(
            DATA / "naip" / "naip_20090818.tif", ds[name].isel(time=0), band=band
        )
        np.testing.assert_array_equal(got, expected)


def test_time_series_keeps_every_date_in_order(stac_api_url: str) -> None:
    ds = open_stac(stac_api_url, collections=["naip-test"])
    assert ds.sizes["time"] == 3
    assert np.all(np.diff(ds.time.values) > np.timedelta64(0))
    assert ds.attrs["stac_items"] == 3
    # each time step is its own date's image, not a copy of one
    means = ds.red.mean(("x", "y")).values
    assert len(set(np.round(means, 3))) == 3


def test_groupby_is_passed_to_odc_stac() -> None:
    items = naip_items()[:1]
    twin = items[0].clone()
    twin.id = "naip_20090818_twin"
    twin.datetime = items[0].datetime + dt.timedelta(hours=1)  # same solar day, different time
    assert open_stac([items[0], twin]).sizes["time"] == 1  # default groupby="solar_day" fuses them
    assert open_stac([items[0], twin], groupby="time").sizes["time"] == 2


def test_chunks_default_and_custom(stac_api_url: str) -> None:
    ds = open_stac(stac_api_url, collections=["naip-test"], datetime="2020")
    assert ds.red.data.chunksize[1:] == (
        min(DEFAULT_CHUNKS["y"], ds.sizes["y"]),
        min(DEFAULT_CHUNKS["x"], ds.sizes["x"]),
    )
    ds = open_stac(
        stac_api_url, collections=["naip-test"], datetime="2020", chunks={"x": 64, "y": 64}
    )
    assert ds.red.data.chunksize == (1, 64, 64)


def test_crs_and_resolution_reproject(stac_api_url: str) -> None:
    ds = open_stac(
        stac_api_url, collections=["naip-test"], datetime="2020", crs="EPSG:3857", resolution=10
    )
    assert ds.odc.crs == "EPSG:3857"
    assert ds.odc.geobox.resolution.x == pytest.approx(10)
    assert float(ds.red.isel(time=0).mean()) > 30  # real pixels, not all fill


def test_static_catalog_itemcollection_ndjson_and_list_agree(
    stac_api_url: str, stac_test_catalog: StacTestCatalog, tmp_path: Path
) -> None:
    items = naip_items(collection="naip-test")
    by_url = open_stac(
        stac_api_url, collections=["naip-test"], bbox=NAIP_BBOX, datetime="2014/2020"
    ).compute()
    static = write_static_catalog(items, tmp_path / "static", collection_id="naip-test")
    sources = {
        "static collection.json": static,
        "ndjson file": stac_test_catalog.files["naip-test"].items,
        "ItemCollection": pystac.ItemCollection(stac_test_catalog.items["naip-test"]),
        "list of items": items,
    }
    for what, source in sources.items():
        ds = open_stac(
            source, collections=["naip-test"], bbox=NAIP_BBOX, datetime="2014/2020"
        ).compute()
        try:
            xr.testing.assert_identical(ds.drop_attrs(), by_url.drop_attrs())
        except AssertionError as err:
            raise AssertionError(f"{what} differs from the API result: {err}") from err


def test_static_catalog_on_a_web_server(tmp_path: Path) -> None:
    static = write_static_catalog(naip_items(), tmp_path / "web", collection_id="naip-test")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(static.parent))
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/collection.json"
        ds = open_stac(url, collections=["naip-test"], datetime="2014/2020")
        assert ds.sizes["time"] == 2 and ds.odc.crs == NAIP_CRS
        with pytest.raises(NoItemsError, match=r"collection\.json with datetime=1999"):
            open_stac(url, datetime="1999")
    finally:
        server.shutdown()
        server.server_close()


def test_visual_asset_without_band_metadata_is_read_from_the_file(stac_api_url: str) -> None:
    # odc-stac alone would load only band 1 as float32: geosam probes the COG header for 3 x uint8
    ds = open_stac(stac_api_url, collections=["landsat-test"])
    assert list(ds.data_vars) == ["red", "green", "blue"]
    assert ds.red.dtype == ds.blue.dtype == np.uint8
    with rasterio.open(DATA / "landsat" / "rgb_byte.tif") as src:
        expected = src.read()
    np.testing.assert_array_equal(ds.to_array("band").isel(time=0).values, expected)


def test_s2_scale_offset_recorded_from_raster_bands(stac_api_url: str) -> None:
    ds = open_stac(stac_api_url, collections=["s2like-test"])
    assert ds.red.dtype == np.uint16
    assert ds.red.attrs["scale_factor"] == pytest.approx(1e-4)
    assert ds.red.attrs["add_offset"] == pytest.approx(-0.1)


def test_s2_processing_baseline_gives_scale_offset_without_raster_scale() -> None:
    new = open_stac([s2like_item(with_scale=False, baseline="04.00")])
    assert (new.red.attrs["scale_factor"], new.red.attrs["add_offset"]) == pytest.approx(
        (1e-4, -0.1)
    )
    old = open_stac([s2like_item(with_scale=False, baseline="02.14")])
    assert (old.red.attrs["scale_factor"], old.red.attrs["add_offset"]) == pytest.approx(
        (1e-4, 0.0)
    )
    plain = open_stac(
        [s2like_item(with_scale=False)]
    )  # no baseline, no raster scale: stored values as is
    assert "scale_factor" not in plain.red.attrs


def test_items_with_different_offsets_become_reflectance(tmp_path: Path) -> None:
    # the same real scene stored the pre-2022 way (DN = reflectance * 1e4, no +1000) on another date
    old_paths = {}
    for name in ("B04", "B03", "B02"):
        with rasterio.open(DATA / "s2like" / f"{name}.tif") as src:
            dn, profile = src.read(1), src.profile
        old = np.where(dn > 0, dn.astype(np.int32) - 1000, 0).astype(np.uint16)
        old_paths[name] = tmp_path / f"{name}.tif"
        with rasterio.open(old_paths[name], "w", **profile) as dst:
            dst.write(old, 1)
    new_item = s2like_item(with_scale=False, baseline="04.00", item_id="s2_new")
    old_item = s2like_item(with_scale=False, baseline="03.01", item_id="s2_old")
    old_item.datetime = dt.datetime(2021, 7, 1, tzinfo=dt.UTC)
    for name, path in old_paths.items():
        old_item.assets[name].href = path.as_uri()
    ds = open_stac([new_item, old_item]).compute()
    assert ds.red.dtype == np.float32 and np.isnan(ds.red.attrs["nodata"])
    assert "scale_factor" not in ds.red.attrs
    older, newer = ds.red.isel(time=0).values, ds.red.isel(time=1).values
    np.testing.assert_array_equal(np.isnan(older), np.isnan(newer))
    assert np.isnan(older).mean() > 0.05  # the nodata collar became NaN
    np.testing.assert_allclose(older, newer, atol=1e-6, equal_nan=True)
    assert np.nanmin(newer) >= 0.0 and np.nanmax(newer) <= 0.3 + 1e-6


def test_panchromatic_item_loads_its_single_band(stac_api_url: str) -> None:
    ds = open_stac(stac_api_url, collections=["spacenet-test"])
    assert list(ds.data_vars) == ["pan"]
    assert ds.pan.dtype == np.uint16
    assert ds.odc.crs == "EPSG:32616"


@pytest.mark.parametrize("index", [0, 1, 2])
def test_native_grid_is_read_pixel_for_pixel(index: int) -> None:
    item = naip_items()[index]
    ds = open_stac([item], bands=["red", "nir"])
    with rasterio.open(item.assets["image"].get_absolute_href()) as src:
        assert (ds.sizes["y"], ds.sizes["x"]) == src.shape
        assert ds.odc.geobox.transform.almost_equals(src.transform)
        np.testing.assert_array_equal(ds.red.isel(time=0).values, src.read(1))
        np.testing.assert_array_equal(ds.nir.isel(time=0).values, src.read(4))


def test_open_stac_is_exported() -> None:
    assert geosam.open_stac is open_stac
    assert "open_stac" in geosam.__all__


# ---------------------------------------------------------------- bad input


def test_unknown_collection_names_what_exists(stac_api_url: str) -> None:
    with pytest.raises(
        CollectionNotFoundError, match=r"no collection\(s\) \['sentinel-9'\].*naip-test"
    ):
        open_stac(stac_api_url, collections=["sentinel-9"])
    with pytest.raises(CollectionNotFoundError, match="naip-test"):
        open_stac(naip_items(collection="naip-test"), collections=["sentinel-9"])


def test_bbox_outside_collection_says_what_was_searched(stac_api_url: str) -> None:
    with pytest.raises(
        NoItemsError, match=r"bbox=\[10\.0, 10\.0, 11\.0, 11\.0\].*'naip-test' covers bbox \[-99\.1"
    ):
        open_stac(stac_api_url, collections=["naip-test"], bbox=[10, 10, 11, 11])
    with pytest.raises(
        NoItemsError, match=r"bbox=\[10\.0, 10\.0, 11\.0, 11\.0\].*cover bbox \[-99\.1"
    ):
        open_stac(naip_items(), bbox=[10, 10, 11, 11])


def test_no_items_in_time_range(stac_api_url: str) -> None:
    with pytest.raises(NoItemsError, match="datetime=1999-01-01"):
        open_stac(stac_api_url, collections=["naip-test"], datetime="1999")
    with pytest.raises(NoItemsError, match="2009-08-18/2020-08-31"):
        open_stac(naip_items(), datetime="1999")


def test_unknown_band_lists_available_bands(stac_api_url: str) -> None:
    with pytest.raises(BandError, match=r"\['swir16'\].*image\.1 \(red\).*image\.4 \(nir\)"):
        open_stac(stac_api_url, collections=["naip-test"], bands=["red", "swir16"])


def test_bad_search_arguments() -> None:
    with pytest.raises(InputError, match=r"4 numbers|west, south, east, north"):
        open_stac(naip_items(), bbox=[1, 2, 3])
    with pytest.raises(InputError, match="datetime"):
        open_stac(naip_items(), datetime="last tuesday")
    with pytest.raises(InputError, match="does not exist"):
        open_stac("/nonexistent/catalog.json")
    with pytest.raises(InputError, match="STAC API URL"):
        open_stac(42)  # type: ignore[arg-type]


def test_server_down_is_retried_then_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(
        StacServerError, match=rf"{url}.*could not be reached after 2 retries"
    ) as info:
        open_stac(url, collections=["naip-test"], retries=2, backoff=0.1)
    assert isinstance(info.value, ConnectionError)
    assert (
        time.monotonic() - start >= 0.2
    )  # urllib3 slept between the retries (0.2 s backoff on the 2nd)


def test_server_error_500_is_retried_then_named(failing_stac_server: LoopbackServer) -> None:
    with pytest.raises(
        StacServerError, match=rf"{failing_stac_server.url}.*HTTP 500.*database unavailable"
    ):
        open_stac(failing_stac_server.url, collections=["naip-test"], retries=2, backoff=0.01)
    assert failing_stac_server.hits == 3  # the first try and two retries


def test_transient_503_is_retried_and_succeeds(flaky_stac_proxy: LoopbackServer) -> None:
    items = search_items(flaky_stac_proxy.url, collections=["naip-test"], retries=3, backoff=0.01)
    assert len(items) == 3
    assert flaky_stac_proxy.hits >= 3  # two 503s, then answered


class _StatusServer(ThreadingHTTPServer):
    """A loopback server answering every request with one HTTP status and a STAC API error body."""

    daemon_threads = True

    def __init__(self, status: int, description: str) -> None:
        super().__init__(("127.0.0.1", 0), _StatusHandler)
        self.status, self.description, self.hits = status, description, 0
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _StatusHandler(BaseHTTPRequestHandler):
    server: _StatusServer

    def _answer(self) -> None:
        self.server.hits += 1
        body = json.dumps({"code": "Error", "description": self.server.description}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def status_server(request: pytest.FixtureRequest) -> Iterator[_StatusServer]:
    server = _StatusServer(*request.param)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status_server", [(400, "malformed request")], indirect=True)
def test_client_error_is_input_sent_once(status_server: _StatusServer) -> None:
    # a 4xx rejects the request: the caller's input, not a server failure, and nothing is retried
    with pytest.raises(InputError, match=r"rejected .*\(HTTP 400\).*malformed request") as info:
        open_stac(status_server.url, collections=["naip-test"], retries=3, backoff=0.01)
    assert not isinstance(info.value, StacServerError)
    assert "retries" not in str(info.value)
    assert status_server.hits == 1


@pytest.mark.parametrize("status_server", [(501, "search not implemented")], indirect=True)
def test_server_error_not_retried_does_not_claim_retries(status_server: _StatusServer) -> None:
    with pytest.raises(StacServerError, match=r"HTTP 501.*search not implemented") as info:
        open_stac(status_server.url, collections=["naip-test"], retries=3, backoff=0.01)
    assert "retries" not in str(info.value)
    assert status_server.hits == 1


def test_search_rejected_by_the_api_names_the_search(rustac_url: str) -> None:
    # rustac refuses west > east (pgstac reads it as crossing the antimeridian, so rustac only);
    # geosam sends it: STAC allows such a bbox, and the server's own message is kept
    bbox = [-99.13, 47.00, -99.16, 47.03]
    with pytest.raises(
        InputError, match=r"rejected the search with bbox=.*HTTP 400.*invalid bbox"
    ) as info:
        open_stac(rustac_url, collections=["naip-test"], bbox=bbox)
    assert not isinstance(info.value, StacServerError)
    assert "swap west and east" in str(info.value) and "retries" not in str(info.value)


def test_reversed_datetime_interval_is_refused_locally(
    failing_stac_server: LoopbackServer,
) -> None:
    reversed_pair = (dt.datetime(2020, 1, 1), dt.datetime(2010, 1, 1))
    for datetime in ("2020/2010", reversed_pair):
        with pytest.raises(InputError, match=r"start \(2020-01-01T00:00:00\) is after its end"):
            open_stac(naip_items(), datetime=datetime)
    with pytest.raises(InputError, match=r"datetime='2020/2010'"):
        open_stac(failing_stac_server.url, collections=["naip-test"], datetime="2020/2010")
    assert failing_stac_server.hits == 0  # refused before any request
    assert open_stac(naip_items(), datetime="2010/2020").sizes["time"] == 2


@pytest.mark.parametrize("resolution", [0, -5, float("nan"), "10", True])
def test_resolution_must_be_a_positive_number(resolution: object) -> None:
    with pytest.raises(
        InputError, match=rf"resolution must be a positive number.*got {resolution!r}"
    ):
        open_stac(naip_items(), resolution=resolution)  # type: ignore[arg-type]


def test_numpy_resolution_is_accepted() -> None:
    ds = open_stac(naip_items()[:1], resolution=np.float32(10))  # type: ignore[arg-type]
    assert ds.odc.geobox.resolution.x == pytest.approx(10)


def test_misspelt_keyword_is_refused_with_a_suggestion(
    failing_stac_server: LoopbackServer,
) -> None:
    # odc.stac.load ignores keywords it does not know: collection= would load every collection
    with pytest.raises(TypeError, match=r"'collection' \(did you mean 'collections'\?\)"):
        open_stac(failing_stac_server.url, collection=["naip-test"])
    assert failing_stac_server.hits == 0  # refused before any request
    with pytest.raises(TypeError, match=r"'measurements' \(open_stac calls it 'bands'\)"):
        open_stac(naip_items(), measurements=["red"])
    with pytest.raises(TypeError, match=r"'zzz'; besides its own arguments .* resampling"):
        open_stac(naip_items(), zzz=1)
    # odc.stac.load's own keywords, in its signature or read from its **kw, still pass
    ds = open_stac(naip_items()[:1], resampling="bilinear", nodata=0, use_overviews=False)
    assert ds.red.attrs["nodata"] == 0


def test_api_load_collection_file_points_to_its_items(tmp_path: Path) -> None:
    files = sample_data.demo_catalog(tmp_path).collections["naip"]
    # collection.json of the API load pair links no items: say so and name items.ndjson
    message = r"Collection 'naip'\) links no items.*naip/items\.ndjson"
    with pytest.raises(NoItemsError, match=message):
        open_stac(files.collection, collections=["naip"])
    with pytest.raises(NoItemsError, match=message):
        open_stac(files.collection)
    ds = open_stac(files.items, collections=["naip"])
    # the four 512 x 512 crops' origins differ by up to 2 m: one grid of 514 x 513 pixels holds them
    assert dict(ds.sizes) == {"time": 4, "y": 513, "x": 514}
    assert ds.odc.geobox.resolution.x == 5.0
    with pytest.raises(NoItemsError, match="holds no STAC items"):
        open_stac(pystac.ItemCollection([]))


# ---------------------------------------------------------------- built-in sample data


def test_demo_catalog_serves_the_sample_data(demo_stac_url: str) -> None:
    naip = open_stac(demo_stac_url, collections=["naip"])
    assert naip.sizes["time"] == len(sample_data.NAIP_DATES)
    assert naip.odc.crs == NAIP_CRS and naip.sizes["x"] >= 512 and naip.sizes["y"] >= 512
    got, expected = sample_file(sample_data.naip_paths()[-1], naip.green.isel(time=-1), band=2)
    np.testing.assert_array_equal(got, expected)
    pan = open_stac(demo_stac_url, collections=["spacenet-pan"])
    assert list(pan.data_vars) == ["pan"] and pan.pan.shape == (1, 900, 900)


def test_sample_data_is_small_and_documented() -> None:
    rasters = sorted(sample_data.DATA_DIR.glob("*.tif"))
    assert rasters == sorted([*sample_data.naip_paths(), sample_data.spacenet_pan_path()])
    assert sum(p.stat().st_size for p in rasters) <= 8e6
    source = (sample_data.DATA_DIR / "SOURCE.md").read_text()
    for path in rasters:
        assert path.name in source
    assert "public domain" in source and "CC BY-SA 4.0" in source


def test_probed_asset_keeps_its_scale_offset() -> None:
    # raster:bands with scale/offset but no data type: geosam reads the type from the file, keeps the scale
    item = s2like_item()
    for asset in item.assets.values():
        for band in asset.extra_fields["raster:bands"]:
            del band["data_type"]
    ds = open_stac([item])
    assert ds.red.dtype == np.uint16
    assert (ds.red.attrs["scale_factor"], ds.red.attrs["add_offset"]) == pytest.approx((1e-4, -0.1))


def test_stac_1_1_bands_are_understood() -> None:
    # the same NAIP items written the STAC 1.1 way: one "bands" list with eo:common_name and data_type
    items = naip_items()
    for item in items:
        asset = item.assets["image"]
        eo, raster = asset.extra_fields.pop("eo:bands"), asset.extra_fields.pop("raster:bands")
        asset.extra_fields["bands"] = [
            {
                "name": e["name"],
                "eo:common_name": e["common_name"],
                "data_type": r["data_type"],
                "nodata": 0,
            }
            for e, r in zip(eo, raster, strict=True)
        ]
    stac11 = open_stac(items, bands=["red", "green", "blue", "nir"]).compute()
    stac10 = open_stac(naip_items(), bands=["red", "green", "blue", "nir"]).compute()
    xr.testing.assert_identical(stac11.drop_attrs(), stac10.drop_attrs())
