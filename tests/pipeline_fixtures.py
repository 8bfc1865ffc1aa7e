"""Real scenes and a fast real network for the pipeline tests (segment, vectorize, zarr, distributed, CLI).

``fast_model()`` is remotesam-lite at 128 px windows: its EfficientNet-Lite0 and MiniLM parts are the
real pretrained ones, its head is untrained (seeded). The head's last 1x1 convolution is scaled up so
that probabilities spread over (0, 1) with real spatial structure from the image: blending, seams and
polygons are then tested on values that vary, not on a near-constant field. It is built the same way in
every process (the kill-and-resume subprocess uses it too).
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import rioxarray
import torch
import xarray as xr

from geosam.model import RemoteSAM, create
from geosam.sample_data import naip_paths

DATA = Path(__file__).parent / "data"
FAST_INPUT = 128
_HEAD_GAIN = 300.0


def build_fast_model() -> RemoteSAM:
    """A new fast model (deterministic: same weights in every process)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.manual_seed(0)
        net = create("remotesam-lite", input_size=FAST_INPUT)
    with torch.no_grad():
        net.decoder.classifier.weight.mul_(_HEAD_GAIN)
        net.decoder.classifier.bias.zero_()
    return RemoteSAM(net, device="cpu", precision="fp32", batch_size=4, name="remotesam-lite-test")


@functools.cache
def fast_model() -> RemoteSAM:
    """The fast model, one per process."""
    return build_fast_model()


def naip_scene(date_index: int = -1, chunks: int | dict[str, int] = 512) -> xr.DataArray:
    """One real NAIP date (512 x 512, 4 bands RGBN, 5 m, EPSG:26914, nodata 0) as a lazy DataArray."""
    spec = {"band": -1, "y": chunks, "x": chunks} if isinstance(chunks, int) else chunks
    return rioxarray.open_rasterio(naip_paths()[date_index], chunks=spec, lock=False)


def landsat_scene(chunks: int = 256) -> xr.DataArray:
    """Real Landsat RGB crop, 256 x 256 with a 12 % nodata collar (tests/data/landsat)."""
    return rioxarray.open_rasterio(
        DATA / "landsat" / "rgb_byte.tif", chunks={"band": -1, "y": chunks, "x": chunks}, lock=False
    )


def naip_time_series(chunks: int = 256) -> xr.Dataset:
    """Two NAIP dates as a Dataset with red/green/blue variables and a time dimension."""
    arrays = [naip_scene(i, chunks) for i in (0, -1)]
    # the dates' grids differ by a metre or two: put the first date on the last one's grid
    stacked = xr.concat(arrays[::-1], dim="time", join="override")[::-1].assign_coords(
        time=np.array(["2009-08-18", "2020-08-31"], dtype="datetime64[ns]")
    )
    ds = xr.Dataset(
        {
            name: stacked.sel(band=b, drop=True)
            for name, b in (("red", 1), ("green", 2), ("blue", 3))
        }
    )
    for name in ds.data_vars:
        ds[name].attrs["nodata"] = 0
    return ds.rio.write_crs(arrays[0].rio.crs)


def foreground_threshold(prob: xr.DataArray, quantile: float = 0.7) -> float:
    """A threshold leaving about 30 % of the valid pixels as foreground (the untrained head has no 0.5)."""
    return float(np.nanquantile(np.asarray(prob.values), quantile))
