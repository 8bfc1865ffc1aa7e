"""``geosam segment`` and ``geosam demo`` end to end: a real STAC API, real COGs, Zarr, GeoParquet, PNG."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import zarr

import geosam
from geosam.cli import main
from geosam.sample_data import naip_paths

pytest_plugins = ["tests.stac_fixtures"]

FAST = ["--device", "cpu", "--input-size", "128"]
NAIP_BBOX = ["-99.142", "47.014", "-99.132", "47.022"]  # inside the NAIP test crops
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_segment_from_stac_api(
    stac_api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, vectors, png = tmp_path / "ponds.zarr", tmp_path / "ponds.parquet", tmp_path / "ponds.png"
    code = main(
        ["segment", "--stac", stac_api_url, "--collection", "naip-test", "--bbox", *NAIP_BBOX,
         "--datetime", "2009/2020", "--prompt", "ponds", "--prompt", "roads", "--chunks", "128",
         *FAST, "--threshold", "0.45", "--out", str(out), "--vectors", str(vectors), "--quicklook", str(png)]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "writing chunks" in captured.err and "100%" in captured.err  # the progress bar
    assert str(vectors) in captured.out and str(out) in captured.out
    stored = geosam.open_result(out)
    assert stored.dims == ("time", "prompt", "y", "x") and stored.sizes["time"] == 3
    assert stored.rio.crs.to_epsg() == 26914
    gdf = gpd.read_parquet(vectors)
    assert gdf.crs.to_epsg() == 26914 and set(gdf.prompt) <= {"ponds", "roads"}
    assert len(gdf) == len(geosam.to_geodataframe(stored, threshold=0.45))
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_segment_raster_resumes_and_refuses_other_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.zarr"
    args = [
        "segment",
        "--raster",
        str(naip_paths()[0]),
        "--prompt",
        "ponds",
        "--chunks",
        "256",
        *FAST,
    ]
    assert main([*args, "--out", str(out)]) == 0
    first = geosam.open_result(out).values
    # a complete store of the same job: nothing to recompute, same result
    assert main([*args, "--out", str(out)]) == 0
    np.testing.assert_array_equal(geosam.open_result(out).values, first)
    capsys.readouterr()
    # another job into the same store is refused with a clear message, unless --overwrite
    other = [
        "segment",
        "--raster",
        str(naip_paths()[0]),
        "--prompt",
        "roads",
        "--chunks",
        "256",
        *FAST,
    ]
    assert main([*other, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "add --overwrite" in err and "overwrite=True" not in err  # CLI advice, not Python's
    assert main([*other, "--out", str(out), "--overwrite"]) == 0
    assert str(geosam.open_result(out)["prompt"].item()) == "roads"


def test_segment_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x.zarr")
    assert main(["segment", "--prompt", "ponds", "--out", out]) == 1
    assert "exactly one of --stac URL or --raster PATH" in capsys.readouterr().err
    assert (
        main(["segment", "--raster", str(tmp_path / "nope.tif"), "--prompt", "p", "--out", out])
        == 1
    )
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["segment", "--raster", "x.tif", "--out", out])  # --prompt is required


RASTER = str(naip_paths()[-1])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bands", "1", "2", "--resolution", "10", "--bbox", "10", "10", "5", "5"],
         "--bbox, --bands, --resolution only apply to --stac"),
        (["--collection", "naip", "--datetime", "2020"], "--collection, --datetime only apply"),
        (["--threshold", "7", "--vectors", "v.parquet"], "--threshold must be a probability"),
        (["--threshold", "nan"], "--threshold must be a probability"),
        (["--split-shape"], "--split-shape divides the objects written to --vectors"),
        (["--input-size", "7"], "input_size must be a multiple of 32 of at least 64, got 7"),
        (["--input-size", "32"], "input_size must be a multiple of 32"),
        (["--device", "gpu"], "unknown device 'gpu'"),
        (["--scales", "0"], "scales must be distinct positive window scales up to 4"),
        (["--tile", "8"], "tile must be an integer >= 16"),
        (["--gsd", "0"], "gsd must be a positive number of metres per pixel"),
        (["--gsd", "1", "--tile", "64"], "give tile (window size in scene pixels) or gsd"),
        (["--gsd", "0.1"], "too coarse to be seen at 0.1 m"),
        (["--tile", "64", "--overlap", "64"], "overlap (64) must be smaller than the window (64 px)"),
        (["--batch-size", "0"], "batch_size must be a positive integer"),
        (["--chunks", "0"], "--chunks must be at least 1"),
        (["--quicklook", "q.nope"], "--quicklook"),
        (["--quicklook", "."], "is a folder"),
    ],
)
def test_segment_refuses_bad_options_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "deep" / "x.zarr"
    code = main(["segment", "--raster", RASTER, "--prompt", "ponds", "--out", str(out), *extra])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("geosam: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "deep").exists()  # refused before a folder was made or a chunk written


def test_segment_never_replaces_a_folder_that_is_not_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "photos").mkdir()
    keep = tmp_path / "photos" / "keep.txt"
    keep.write_text("mine")
    for out in (tmp_path / "photos", keep):
        code = main(["segment", "--raster", RASTER, "--prompt", "ponds", "--out", str(out),
                     "--overwrite", *FAST])  # fmt: skip
        assert code == 1
        assert "is not a Zarr store" in capsys.readouterr().err
    assert keep.read_text() == "mine"


def test_segment_makes_the_folders_of_its_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, vectors, png = (tmp_path / name / f"r.{ext}" for name, ext in
                         (("a/b", "zarr"), ("c", "parquet"), ("d/e", "png")))  # fmt: skip
    code = main(["segment", "--raster", RASTER, "--prompt", "ponds", "--chunks", "512", *FAST,
                 "--out", str(out), "--vectors", str(vectors), "--quicklook", str(png),
                 "--split-shape"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert geosam.open_result(out).rio.crs is not None
    split = gpd.read_parquet(vectors)
    stored = geosam.open_result(out)
    assert split.crs == stored.rio.crs
    assert len(split) == len(geosam.to_geodataframe(stored, split="shape"))
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_segment_sees_the_scene_at_the_gsd_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.zarr"
    code = main(["segment", "--raster", RASTER, "--prompt", "ponds", "--gsd", "20", *FAST,
                 "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    # 5 m NAIP seen at 20 m: windows of 128 * 20 / 5 scene pixels, each resized to the 128 px input
    assert "in windows of 512 px" in capsys.readouterr().out
    stored = geosam.open_result(out)
    assert (stored.attrs["tile"], stored.attrs["gsd"]) == (512, 20.0)
    assert stored.sizes == {"y": 512, "x": 512}


def test_segment_errors_give_command_line_advice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import rasterio

    jpeg = next((Path(__file__).parent / "data" / "eval" / "hrplanes" / "valid").glob("*.jpg"))
    out = str(tmp_path / "x.zarr")
    assert main(["segment", "--raster", str(jpeg), "--prompt", "planes", "--out", out]) == 1
    err = capsys.readouterr().err
    assert "has no CRS" in err and "gdal_translate -a_srs" in err
    assert "write_crs" not in err and "require_crs" not in err
    # two bands of the NAIP scene: no way to tell red, green and blue
    two = tmp_path / "two_bands.tif"
    with rasterio.open(RASTER) as src:
        profile = {**src.profile, "count": 2}
        with rasterio.open(two, "w", **profile) as dst:
            dst.write(src.read([1, 2]))
    assert main(["segment", "--raster", str(two), "--prompt", "ponds", "--out", out, *FAST]) == 1
    err = capsys.readouterr().err
    assert "cannot make RGB from 2 bands" in err and "gdal_translate -b 3 -b 2 -b 1" in err
    assert "bands=" not in err


@pytest.mark.slow
def test_demo_runs_the_main_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``geosam demo`` with the default model: real STAC API over the packaged COGs, all outputs."""
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    printed = capsys.readouterr().out
    assert "STAC API: http://127.0.0.1:" in printed
    for stem in ("naip_agricultural_land", "spacenet-pan_buildings"):
        store, parquet, png = (
            tmp_path / "demo" / f"{stem}.{ext}" for ext in ("zarr", "parquet", "png")
        )
        assert str(store) in printed and str(parquet) in printed and str(png) in printed
        assert zarr.open_group(store, mode="r").attrs["geosam_complete"] is True
        result = geosam.open_result(store)
        assert result.rio.crs is not None and result.attrs["tile"] == 512
        assert gpd.read_parquet(parquet).crs == result.rio.crs
        assert png.read_bytes()[:8] == PNG_MAGIC
    naip = geosam.open_result(tmp_path / "demo" / "naip_agricultural_land.zarr")
    assert naip.sizes["time"] == 4 and np.isfinite(naip.values).mean() > 0.99
    # the packaged weights find the houses of the SpaceNet scene
    houses = gpd.read_parquet(tmp_path / "demo" / "spacenet-pan_buildings.parquet")
    assert len(houses) >= 5
