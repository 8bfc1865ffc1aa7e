"""to_zarr / open_result: real Zarr round trips with the CRS, and a killed job resumed to completion."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import odc.geo.xr  # noqa: F401  (the .odc accessor)
import pytest
import xarray as xr
import zarr

import geosam
from geosam import RemoteSAM
from geosam.errors import IncompleteResultError, InputError, JobMismatchError
from geosam.zarr_store import COMPLETE_ATTR, DONE_VAR
from tests.pipeline_fixtures import naip_scene, naip_time_series

ROOT = Path(__file__).resolve().parents[1]

# The batch job of the kill test: segment a real scene into Zarr, SIGKILL itself after KILL_AFTER chunks.
JOB = textwrap.dedent(
    """
    import os, signal, sys, warnings
    warnings.simplefilter("ignore")
    import geosam
    from tests.pipeline_fixtures import fast_model, naip_scene

    store, kill_after = sys.argv[1], int(sys.argv[2])
    prob = geosam.segment(naip_scene(chunks=128).isel(x=slice(0, 384), y=slice(0, 384)), ["ponds", "roads"], model=fast_model())
    written = []

    def on_chunk(index):
        written.append(index)
        if len(written) >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind, as a killed batch job

    geosam.to_zarr(prob, store, on_chunk=on_chunk, progress=False)
    """
)


def test_round_trip_keeps_crs_grid_and_values(fast_model: RemoteSAM, tmp_path: Path) -> None:
    prob = geosam.segment(naip_scene(chunks=256), "ponds", model=fast_model)
    store = tmp_path / "ponds.zarr"
    returned = prob.remotesam.to_zarr(store, progress=False)
    assert returned == store
    back = geosam.open_result(store)
    assert back.name == "probability" and back.dims == ("y", "x") and back.dtype == np.float32
    assert back.rio.crs == prob.rio.crs and back.odc.crs == prob.odc.crs
    assert back.rio.transform() == prob.rio.transform()
    assert back.chunks == prob.chunks  # Zarr chunks are the dask chunks
    assert str(back["prompt"].item()) == "ponds" and back.attrs["tile"] == 128
    # float32 kernels may reorder sums between two runs on some CPUs: equal up to rounding
    np.testing.assert_allclose(back.values, prob.values, atol=1e-5)
    group = zarr.open_group(store, mode="r")
    assert group.attrs[COMPLETE_ATTR] is True and DONE_VAR not in group  # no bookkeeping left
    # plain xarray sees the same, CRS included
    plain = xr.open_zarr(store, decode_coords="all")["probability"]
    assert plain.rio.crs == prob.rio.crs


def test_mask_with_time_and_prompts_round_trip(fast_model: RemoteSAM, tmp_path: Path) -> None:
    ds = naip_time_series(chunks=128).isel(x=slice(0, 256), y=slice(0, 256))
    landsat_like = ds.where(ds.x < ds.x[200], 0)  # a nodata strip: 255 in the mask
    for name in landsat_like.data_vars:
        landsat_like[name].attrs["nodata"] = 0
    mask = geosam.segment(landsat_like, ["ponds", "roads"], model=fast_model, threshold=0.5)
    geosam.to_zarr(mask, tmp_path / "m.zarr", progress=False)
    back = geosam.open_result(tmp_path / "m.zarr")
    assert back.dims == ("time", "prompt", "y", "x") and back.dtype == np.uint8
    assert list(back["prompt"].values) == ["ponds", "roads"]
    np.testing.assert_array_equal(back["time"].values, ds["time"].values)
    values = back.values
    # a recomputed mask may flip the rare pixel whose probability rounds across 0.5
    assert np.mean(values != mask.values) < 1e-3
    assert (values[..., 200:] == 255).all() and set(np.unique(values[..., :200])) <= {0, 1}
    assert back.rio.crs == ds.rio.crs


def test_killed_job_resumes_to_the_uninterrupted_result(
    fast_model: RemoteSAM, tmp_path: Path
) -> None:
    store = tmp_path / "job.zarr"
    killed = subprocess.run(
        [sys.executable, "-c", JOB, str(store), "3"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    group = zarr.open_group(store, mode="r")
    done = int(np.count_nonzero(np.asarray(group[DONE_VAR][:])))
    assert 3 <= done < 9 and group.attrs[COMPLETE_ATTR] is False
    with pytest.raises(IncompleteResultError, match="incomplete"):
        geosam.open_result(store)

    # the same job again, in this process: only the missing chunks are computed
    scene = naip_scene(chunks=128).isel(x=slice(0, 384), y=slice(0, 384))
    prob = geosam.segment(scene, ["ponds", "roads"], model=fast_model)
    resumed: list[int] = []
    geosam.to_zarr(prob, store, on_chunk=resumed.append, progress=False)
    assert len(resumed) == 9 - done
    # equal to the same job computed in one go, without any store
    np.testing.assert_allclose(geosam.open_result(store).values, prob.values, atol=1e-5)
    again: list[int] = []
    geosam.to_zarr(prob, store, on_chunk=again.append, progress=False)  # complete: nothing to do
    assert again == []


def test_other_job_in_store_is_refused_unless_overwrite(
    fast_model: RemoteSAM, tmp_path: Path
) -> None:
    store = tmp_path / "s.zarr"
    scene = naip_scene(chunks=256).isel(x=slice(0, 256), y=slice(0, 256))
    geosam.to_zarr(geosam.segment(scene, "ponds", model=fast_model), store, progress=False)
    roads = geosam.segment(scene, "roads", model=fast_model)
    with pytest.raises(JobMismatchError, match="overwrite"):
        geosam.to_zarr(roads, store, progress=False)
    geosam.to_zarr(roads, store, overwrite=True, progress=False)
    assert str(geosam.open_result(store)["prompt"].item()) == "roads"


def test_a_folder_or_file_that_is_no_store_is_never_replaced(
    fast_model: RemoteSAM, tmp_path: Path
) -> None:
    keep = tmp_path / "photos" / "keep.txt"
    keep.parent.mkdir()
    keep.write_text("mine")
    scene = naip_scene(chunks=256).isel(x=slice(0, 64), y=slice(0, 64))
    prob = geosam.segment(scene, "water", model=fast_model)
    for target in (keep.parent, keep):
        for overwrite in (False, True):  # both used to delete the folder's files
            with pytest.raises(InputError, match="not a Zarr store"):
                geosam.to_zarr(prob, target, overwrite=overwrite, progress=False)
    assert keep.read_text() == "mine"


def test_open_result_refuses_foreign_stores(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no Zarr store"):
        geosam.open_result(tmp_path / "missing.zarr")
    xr.Dataset({"a": ("x", np.arange(3))}).to_zarr(tmp_path / "plain.zarr")
    with pytest.raises(InputError, match="not written by geosam"):
        geosam.open_result(tmp_path / "plain.zarr")
    with pytest.raises(InputError, match="DataArray"):
        geosam.to_zarr(xr.Dataset(), tmp_path / "x.zarr")  # type: ignore[arg-type]
