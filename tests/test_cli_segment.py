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
    assert "overwrite" in capsys.readouterr().err
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
