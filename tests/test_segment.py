"""geosam.segment on real scenes: grid and CRS kept, chunking-independent blending, nodata, bad input."""

from __future__ import annotations

import math
from typing import Any

import cloudpickle
import dask
import dask.array as dsa
import numpy as np
import odc.geo.xr  # noqa: F401  (the .odc accessor)
import pytest
import torch
import xarray as xr

import geosam
from geosam import RemoteSAM
from geosam.distributed import ModelRef, get_model, model_ref
from geosam.errors import BandError, InputError, MissingCRSError, PromptError
from geosam.segment import MASK_NODATA, scene_gsd
from geosam.tiling import WindowGrid, blend_profile
from tests.pipeline_fixtures import landsat_scene, naip_scene, naip_time_series

pytest_plugins = ["tests.stac_fixtures"]


def test_window_grid_covers_scene_and_weights_partition() -> None:
    for size, tile, overlap in ((1000, 512, 64), (100, 128, 16), (512, 128, 0), (700, 128, 100)):
        grid = WindowGrid(size, tile, overlap)
        assert grid.padded_size >= size and grid.starts[0] == 0
        assert grid.count == 1 or grid.starts[-1] < size  # no window lies wholly in the padding
        cover = grid.coverage(0, size)
        assert (cover > 0).all()
        # coverage of a sub-range is the same numbers: blocks can compute it for themselves
        np.testing.assert_allclose(grid.coverage(37, min(size, 300)), cover[37:300])
    profile = blend_profile(128, 32)
    assert profile.min() > 0 and profile.max() == 1 and np.allclose(profile, profile[::-1])
    assert (blend_profile(128, 0) == 1).all()


def test_default_model_keeps_grid_crs_and_time(demo_stac_url: str) -> None:
    """open_stac -> segment with the default model (remotesam-lite, 512 px windows)."""
    ds = geosam.open_stac(demo_stac_url, collections=["naip"], datetime="2020")
    prob = ds.remotesam.segment("ponds")
    assert isinstance(prob.data, dsa.Array)  # lazy
    assert prob.dims == ("time", "y", "x") and prob.dtype == np.float32
    assert prob.attrs["tile"] == 512 and prob.attrs["overlap"] == 64
    assert str(prob["prompt"].item()) == "ponds"
    np.testing.assert_array_equal(prob["x"].values, ds["x"].values)
    np.testing.assert_array_equal(prob["y"].values, ds["y"].values)
    assert (
        prob["spatial_ref"].item() == ds["spatial_ref"].item()
    )  # the input's coordinate, unchanged
    assert prob.encoding["grid_mapping"] == "spatial_ref"
    np.testing.assert_array_equal(prob["time"].values, ds["time"].values)
    assert prob.rio.crs == ds.rio.crs and prob.odc.crs == ds.odc.crs
    assert prob.rio.transform() == ds.rio.transform()
    values = prob.values
    assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
    assert values.std() > 0  # spatially varying output, not a constant


def test_result_does_not_depend_on_chunking(fast_model: RemoteSAM) -> None:
    """One 512 px chunk vs 256 px chunks vs 100 px chunks (smaller than a 128 px window)."""
    one = geosam.segment(naip_scene(chunks=512), "ponds", model=fast_model).values
    assert np.nanstd(one) > 0.05  # the test model's probabilities vary a lot: seams would show
    for chunks in (256, 100):
        many = geosam.segment(naip_scene(chunks=chunks), "ponds", model=fast_model)
        assert many.chunks[-1][0] == chunks  # the output keeps the input's chunks
        diff = np.abs(many.values - one)
        assert diff.max() < 1e-3, f"chunks {chunks}: max difference {diff.max()}"
    zero_one = geosam.segment(naip_scene(chunks=512), "ponds", model=fast_model, overlap=0).values
    zero_many = geosam.segment(naip_scene(chunks=200), "ponds", model=fast_model, overlap=0).values
    assert np.abs(zero_one - zero_many).max() < 1e-3
    assert np.abs(zero_one - one).max() > 1e-3  # overlap does change (blend) the result


@pytest.mark.parametrize(
    ("views", "prompt", "members"),
    [
        ({}, "ponds", ["ponds"]),
        ({"tta": True}, "ponds", ["ponds"]),
        ({"scales": (0.75, 1.25)}, "ponds", ["ponds"]),
        ({}, "vehicles", ["cars", "large vehicles"]),
    ],
    ids=["one-pass", "tta", "scales", "group"],
)
def test_blending_matches_direct_window_average(
    fast_model: RemoteSAM, views: dict[str, Any], prompt: str, members: list[str]
) -> None:
    """The lazy result equals blending the model's own predict() outputs by hand (linear weights),
    also with test-time mirroring or scales and for a group class (the union of its members'
    windows), which scenes and single images share."""
    if views:
        fast_model = RemoteSAM(fast_model.network, device="cpu", precision="fp32", batch_size=4, **views)
    scene = naip_scene(chunks=160)
    tile, overlap = 128, 48
    prob = geosam.segment(
        scene, prompt, model=fast_model, tile=tile, overlap=overlap, blend="linear"
    )
    image = np.ascontiguousarray(scene.values[:3].transpose(1, 2, 0)[:300, :300])
    grid = WindowGrid(300, tile, overlap, "linear")
    weights = np.outer(grid.profile(), grid.profile())
    num = np.zeros((grid.padded_size, grid.padded_size))
    padded = np.zeros((grid.padded_size, grid.padded_size, 3), np.uint8)
    padded[:300, :300] = image
    for y in grid.starts:
        for x in grid.starts:
            window = padded[y : y + tile, x : x + tile]
            num[y : y + tile, x : x + tile] += weights * fast_model.predict(window, members).max(axis=0)
    expected = num[:300, :300] / np.outer(grid.coverage(0, 300), grid.coverage(0, 300))
    # the lazy result covers the whole 512 px scene: compare the part whose windows are the same
    inner = grid.starts[-1]  # rows/cols only covered by windows that lie inside the 300 px crop
    got = prob.values[:inner, :inner]
    assert np.abs(got - expected[:inner, :inner]).max() < 1e-4


def test_prompt_list_and_time_dims(fast_model: RemoteSAM) -> None:
    ds = naip_time_series(chunks=128).isel(x=slice(0, 256), y=slice(0, 256))
    both = geosam.segment(ds, ["ponds", "roads"], model=fast_model)
    assert both.dims == ("time", "prompt", "y", "x")
    assert list(both["prompt"].values) == ["ponds", "roads"]
    assert both.chunks[1] == (2,)
    roads = geosam.segment(ds.isel(time=[1]), "roads", model=fast_model)
    assert roads.dims == ("time", "y", "x")
    values = both.values
    np.testing.assert_allclose(values[1, 1], roads.values[0], atol=1e-5)
    assert not np.allclose(values[0], values[1])  # each date is segmented on its own
    assert not np.allclose(values[:, 0], values[:, 1])  # and each prompt


def test_each_prompt_encoded_once_and_windows_batched(
    fast_model: RemoteSAM, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geosam.model.lite.network import RemoteSAMLite

    network = fast_model.network
    encoded: list[int] = []
    batches: list[int] = []
    original_encode, original_segment = RemoteSAMLite.encode_text, RemoteSAMLite.segment

    def encode(self, ids, mask):
        encoded.append(ids.shape[0])
        return original_encode(self, ids, mask)

    def segment(self, pixels, text):
        batches.append(pixels.shape[0])
        return original_segment(self, pixels, text)

    monkeypatch.setattr(RemoteSAMLite, "encode_text", encode)
    monkeypatch.setattr(RemoteSAMLite, "segment", segment)
    fast_model._text_cache.clear()
    prob = geosam.segment(
        naip_scene(chunks=128), ["a pond", "a road"], model=fast_model, overlap=0, batch_size=4
    )
    with dask.config.set(scheduler="threads", num_workers=2):
        prob.compute()
    assert sum(encoded) == 2  # both prompts encoded once, across 16 chunks and two threads
    assert sum(batches) == 16 * 2 and max(batches) == 4  # 16 windows x 2 prompts, 4 pairs per pass
    assert network is fast_model.network


def test_model_is_not_shipped_in_tasks(fast_model: RemoteSAM) -> None:
    prob = geosam.segment(naip_scene(chunks=256), "ponds", model=fast_model)
    graph = dict(prob.__dask_graph__())
    size = len(cloudpickle.dumps(graph))
    assert size < 200_000, f"the task graph pickles to {size} bytes: a model is inside"
    ref = model_ref(fast_model)
    assert ref.instance is not None and get_model(ref) is fast_model
    assert ModelRef("remotesam-lite", input_size=96).load().input_size == 96


def test_threshold_gives_uint8_mask_with_nodata(fast_model: RemoteSAM) -> None:
    scene = landsat_scene()
    prob = geosam.segment(scene, "water", model=fast_model)
    mask = geosam.segment(scene, "water", model=fast_model, threshold=0.5)
    assert mask.dtype == np.uint8 and mask.attrs["nodata"] == MASK_NODATA
    p, m = prob.values, mask.values
    assert set(np.unique(m)) <= {0, 1, MASK_NODATA}
    np.testing.assert_array_equal(m == MASK_NODATA, np.isnan(p))
    clear = ~np.isnan(p) & (np.abs(p - 0.5) > 1e-5)  # away from rounding at the threshold
    np.testing.assert_array_equal(m[clear] == 1, p[clear] >= 0.5)
    via_accessor = scene.remotesam.segment("water", model=fast_model, threshold=0.5)
    np.testing.assert_array_equal(via_accessor.values[clear], m[clear])


def test_nodata_stays_nodata(fast_model: RemoteSAM) -> None:
    scene = landsat_scene(chunks=64)
    nodata = (scene.values == 0).all(axis=0)
    assert 0.05 < nodata.mean() < 0.5  # the real collar
    prob = geosam.segment(scene, "water", model=fast_model, tile=64, overlap=16).values
    np.testing.assert_array_equal(np.isnan(prob), nodata)


def test_all_nodata_chunk_is_not_predicted(
    fast_model: RemoteSAM, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = naip_scene(chunks=256)
    keep = np.ones((512, 512), bool)
    keep[256:, 256:] = False  # one whole 256 px chunk of nodata
    blanked = scene.where(xr.DataArray(keep, dims=("y", "x")), 0)
    blanked = blanked.rio.write_nodata(0).rio.write_crs(scene.rio.crs)
    calls: list[int] = []
    original = fast_model.predict_logits

    def counting(pixels: torch.Tensor, text) -> torch.Tensor:
        calls.append(pixels.shape[0])
        return original(pixels, text)

    monkeypatch.setattr(fast_model, "predict_logits", counting)
    prob = geosam.segment(blanked, "ponds", model=fast_model, overlap=0).values
    assert np.isnan(prob[256:, 256:]).all() and np.isfinite(prob[:256]).all()
    assert sum(calls) == 16 - 4  # the four 128 px windows of the blank chunk never ran


def test_scene_smaller_than_window_is_padded(fast_model: RemoteSAM) -> None:
    small = naip_scene(chunks=256).isel(x=slice(0, 90), y=slice(0, 70)).compute()  # numpy-backed
    out = geosam.segment(small, "ponds", model=fast_model)
    assert isinstance(out.data, dsa.Array) and out.shape == (70, 90)
    assert np.isfinite(out.values).all()


def test_scene_of_a_few_pixels_stays_a_small_graph(fast_model: RemoteSAM) -> None:
    # a tiny bbox gives a 2 x 2 scene; padding it to one window used to cut the padding into
    # 1-pixel chunks: 260,000 tasks and minutes of scheduling for four pixels
    tiny = naip_scene(chunks=256).isel(x=slice(0, 2), y=slice(0, 2))
    out = geosam.segment(tiny, "ponds", model=fast_model)
    assert len(out.data.__dask_graph__()) < 100
    assert out.shape == (2, 2) and np.isfinite(out.values).all()


def test_windows_past_the_scene_see_its_mirror_not_black() -> None:
    from geosam._sliding import _pad_end

    x = dsa.from_array(np.arange(2 * 7 * 5).reshape(2, 7, 5), chunks=(2, 3, 2))
    for axis, amount in ((-2, 4), (-2, 20), (-1, 3), (-1, 12)):  # shorter and longer than the scene
        widths = [(0, 0)] * 3
        widths[axis] = (0, amount)
        padded = _pad_end(x, axis, amount)
        np.testing.assert_array_equal(padded.compute(), np.pad(x.compute(), widths, mode="symmetric"))
        assert padded.chunks[axis][-1] == amount  # the padding is one chunk


def test_a_scene_smaller_than_the_window_keeps_its_answer() -> None:
    # packaged weights: a 400-pixel crop in a 512-pixel window, padded black, lost every field of
    # the full scene's answer (mean difference 0.32); mirrored, it stays close
    model = geosam.load_model(device="cpu")
    full = naip_scene(chunks=256)
    whole = geosam.segment(full, "agricultural land", model=model).values[:400, :400]
    crop = geosam.segment(full.isel(x=slice(0, 400), y=slice(0, 400)), "agricultural land", model=model)
    assert (whole > 0.5).mean() > 0.2
    assert np.abs(crop.values - whole).mean() < 0.15


def test_nan_input_becomes_nan_output(fast_model: RemoteSAM) -> None:
    scene = naip_scene(chunks=256).astype("float32")
    holes = (scene.x > scene.x[300]) & (scene.x < scene.x[340]) & (scene.y > scene.y[100])
    scene = scene.where(~holes)
    prob = geosam.segment(scene, "ponds", model=fast_model, stretch="none").values
    expected = holes.transpose("y", "x").values | (scene == 0).all("band").values
    assert expected.mean() > 0.01
    np.testing.assert_array_equal(np.isnan(prob), expected)


def test_scene_gsd_is_metres_on_the_ground_in_any_crs() -> None:
    utm = naip_scene().load()  # 5 m pixels in UTM zone 14
    assert scene_gsd(utm) == pytest.approx(5.0, rel=2e-3)  # UTM's scale is 0.9996 near its meridian
    assert utm.to_dataset("band").remotesam.gsd == scene_gsd(utm)  # the accessor, on a Dataset too
    # square pixels in degrees are narrower than tall on the ground: 1e-4 deg is 11.1 m of
    # latitude and 11.1 * cos(47 N) = 7.6 m of longitude
    lonlat = utm.rio.reproject("EPSG:4326", resolution=1e-4)
    expected = 1e-4 * 111_200 * math.sqrt(math.cos(math.radians(47.02)))
    assert scene_gsd(lonlat) == pytest.approx(expected, rel=0.01)
    # web mercator's metres grow away from the equator: at 47 N a "5 m" pixel is 3.4 m on the ground
    mercator = utm.rio.reproject("EPSG:3857", resolution=5.0)
    assert scene_gsd(mercator) == pytest.approx(5.0 * math.cos(math.radians(47.02)), rel=0.01)
    with pytest.raises(MissingCRSError, match="no CRS"):
        scene_gsd(utm.drop_vars("spatial_ref"))
    # a local survey grid has no datum: its own units are the ground's
    for unit, metres in (('"metre",1', 0.2), ('"US survey foot",0.304800609601219', 0.2 * 0.3048006)):
        local = f'LOCAL_CS["site",UNIT[{unit}],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
        grid = xr.DataArray(np.zeros((3, 4, 4), np.uint8), dims=("band", "y", "x"),
                            coords={"y": 0.2 * np.arange(4)[::-1], "x": 0.2 * np.arange(4)})
        assert scene_gsd(grid.rio.write_crs(local)) == pytest.approx(metres)
    unknown = ('ENGCRS["site",EDATUM["x"],CS[Cartesian,2],AXIS["x",east,LENGTHUNIT["unknown",0]],'
               'AXIS["y",north,LENGTHUNIT["unknown",0]]]')
    with pytest.raises(InputError, match="neither a datum nor linear units"):
        scene_gsd(grid.rio.write_crs(unknown))


def test_gsd_sizes_the_windows_on_the_scene_grid(fast_model: RemoteSAM) -> None:
    scene = naip_scene(chunks=256)
    seen = geosam.segment(scene, "ponds", model=fast_model, gsd=10)
    # 5 m pixels seen as 10 m: windows of twice the input in scene pixels, resized to the input
    assert (seen.attrs["tile"], seen.attrs["gsd"]) == (2 * fast_model.input_size, 10.0)
    assert seen.sizes == {"y": 512, "x": 512} and seen.rio.crs == scene.rio.crs
    assert seen.chunks == ((256, 256), (256, 256))
    same = geosam.segment(scene, "ponds", model=fast_model, tile=2 * fast_model.input_size)
    np.testing.assert_array_equal(seen.values, same.values)
    native = geosam.segment(scene, "ponds", model=fast_model).values
    assert np.nanmax(np.abs(seen.values - native)) > 0.05  # the network did see another scale


def test_bad_input_has_clear_errors(fast_model: RemoteSAM) -> None:
    scene = naip_scene()
    with pytest.raises(MissingCRSError, match="no CRS"):
        geosam.segment(scene.drop_vars("spatial_ref"), "ponds", model=fast_model)
    with pytest.raises(BandError, match="bands"):
        geosam.segment(scene.isel(band=[0, 1]), "ponds", model=fast_model)
    with pytest.raises(PromptError):
        geosam.segment(scene, "", model=fast_model)
    with pytest.raises(PromptError, match="distinct"):
        geosam.segment(scene, ["ponds", "ponds"], model=fast_model)
    with pytest.raises(InputError, match="overlap"):
        geosam.segment(scene, "ponds", model=fast_model, tile=64, overlap=64)
    with pytest.raises(InputError, match="threshold"):
        geosam.segment(scene, "ponds", model=fast_model, threshold=1.5)
    with pytest.raises(InputError, match="not both"):
        geosam.segment(scene, "ponds", model=fast_model, tile=256, gsd=10)
    for gsd in (0, -1, float("nan"), True, "0.5"):
        with pytest.raises(InputError, match="gsd must be a positive number"):
            geosam.segment(scene, "ponds", model=fast_model, gsd=gsd)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"windows of 6 scene pixels.*too coarse"):
        geosam.segment(scene, "ponds", model=fast_model, gsd=0.25)
    with pytest.raises(InputError, match="model"):
        geosam.segment(scene, "ponds", model=3.5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="Dataset or DataArray"):
        geosam.segment(np.zeros((3, 64, 64), np.uint8), "ponds", model=fast_model)  # type: ignore[arg-type]
