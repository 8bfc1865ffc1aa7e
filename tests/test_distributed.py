"""The whole pipeline on a real dask.distributed LocalCluster (two worker processes, one thread each)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import dask
import geopandas as gpd
import numpy as np
import pytest
import shapely
from distributed import Client, LocalCluster

import geosam
from geosam import RemoteSAM
from geosam.cli import main as cli_main
from geosam.distributed import GPU, ModelRef, local_cluster
from geosam.sample_data import naip_paths
from tests.pipeline_fixtures import foreground_threshold, naip_scene

pytestmark = pytest.mark.slow

# workers load this themselves from its name: nothing but the ref travels in the tasks
REF = ModelRef("remotesam-lite", device="cpu", precision="fp32", input_size=128)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with local_cluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster, set_as_default=True) as client:
        yield client


def _scene() -> object:
    return naip_scene(chunks=256).isel(x=slice(0, 384), y=slice(0, 384))


def test_pipeline_on_cluster_equals_local_scheduler(client: Client, tmp_path: Path) -> None:
    with dask.config.set(scheduler="threads"):
        local = geosam.segment(_scene(), "ponds", model=REF).compute()
    threshold = foreground_threshold(local)
    local_gdf = geosam.to_geodataframe(local.chunk({"y": 128, "x": 128}), threshold=threshold)

    prob = geosam.segment(_scene(), "ponds", model=REF)
    geosam.to_zarr(prob, tmp_path / "ponds.zarr", progress=False)  # the workers write the chunks
    stored = geosam.open_result(tmp_path / "ponds.zarr")
    np.testing.assert_allclose(stored.values, local.values, atol=1e-5)
    gdf = geosam.to_geodataframe(stored.chunk({"y": 128, "x": 128}), threshold=threshold)
    assert len(gdf) == len(local_gdf) > 0
    # rounding differences between processes may move the odd boundary pixel across the threshold
    assert gdf["area"].sum() == pytest.approx(local_gdf["area"].sum(), rel=1e-3)
    assert gdf.crs == local_gdf.crs == stored.rio.crs

    # one model per worker process, loaded there; torch is not slowed by the nanny's malloc trimming
    cached = client.run(lambda: len(__import__("geosam.distributed").distributed._cache))
    assert set(cached.values()) <= {0, 1} and sum(cached.values()) >= 1
    trim = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert set(trim.values()) == {None}, trim
    # and a worker's memory can be handed back between jobs
    emptied = client.run(lambda: (__import__("geosam.distributed").distributed.clear_model_cache(),
                                  len(__import__("geosam.distributed").distributed._cache))[1])
    assert set(emptied.values()) == {0}


def test_model_object_sent_once_per_worker(client: Client, fast_model: RemoteSAM) -> None:
    with dask.config.set(scheduler="threads"):
        local = geosam.segment(_scene(), "ponds", model=fast_model).compute()
    prob = geosam.segment(_scene(), "ponds", model=fast_model)  # registers a WorkerPlugin
    plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert all(
        any(name.startswith("geosam-model-") for name in names) for names in plugins.values()
    )
    np.testing.assert_allclose(prob.compute().values, local.values, atol=1e-5)
    assert np.nanstd(local.values) > 0.05


def test_gpu_annotation_reaches_the_scheduler(client: Client) -> None:
    """On workers without a GPU resource, tasks annotated resources={'GPU': 1} must wait (not run)."""
    with pytest.warns(UserWarning, match="fusion"):
        geosam.segment(_scene(), "ponds", model=REF, resources=GPU)  # the trap is named
    # what configure_dask(gpu=True) sets; it must hold until the graph is optimized, which the
    # client does after compute() returns
    with dask.config.set({"optimization.fuse.active": False}):
        prob = geosam.segment(_scene(), "ponds", model=REF, resources=GPU)
        future = client.compute(prob.data)
        try:
            deadline = time.monotonic() + 30
            while True:
                waiting = client.run_on_scheduler(
                    lambda dask_scheduler: [str(ts.key) for ts in dask_scheduler.unrunnable]
                )
                if (
                    any("remotesam-windows" in key for key in waiting)
                    or time.monotonic() > deadline
                ):
                    break
                time.sleep(0.2)
            assert any("remotesam-windows" in key for key in waiting), future.status
            assert not future.done()
        finally:
            future.cancel()


def test_cli_segment_on_a_scheduler(cluster: LocalCluster, tmp_path: Path) -> None:
    out, vectors = tmp_path / "fields.zarr", tmp_path / "fields.parquet"
    code = cli_main(
        ["segment", "--raster", str(naip_paths()[-1]), "--prompt", "agricultural land", "--chunks", "256",
         "--device", "cpu", "--threshold", "0.5",
         "--out", str(out), "--vectors", str(vectors), "--scheduler", cluster.scheduler_address]
    )  # fmt: skip
    assert code == 0
    stored = geosam.open_result(out)
    assert stored.shape == (512, 512) and stored.rio.crs.to_epsg() == 26914
    gdf = gpd.read_parquet(vectors)
    assert gdf.crs.to_epsg() == 26914
    expected = geosam.to_geodataframe(stored.compute(), threshold=0.5)
    assert len(gdf) == len(expected) > 0

    def shapes(frame: gpd.GeoDataFrame) -> list[str]:
        return sorted(shapely.to_wkt(shapely.normalize(shapely.simplify(frame.geometry.values, 0))))

    assert shapes(gdf) == shapes(expected)
