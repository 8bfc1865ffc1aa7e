"""A PNG quicklook of a segmentation: the scene in RGB with the probability drawn over it.

>>> from geosam.quicklook import quicklook
>>> quicklook(ds, prob, "ponds.png")                      # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from geosam.imagery import to_rgb8

__all__ = ["quicklook"]


def _first_of_others(arr: xr.DataArray, spatial: tuple[Any, ...], time: int) -> xr.DataArray:
    for dim in [d for d in arr.dims if d not in spatial]:
        arr = arr.isel({dim: time if dim == "time" else 0})
    return arr


def quicklook(
    scene: xr.Dataset | xr.DataArray,
    result: xr.DataArray,
    path: str | os.PathLike[str],
    *,
    time: int = -1,
    max_pixels: int = 1024,
    title: str | None = None,
    vectors: Any = None,
) -> Path:
    """Write ``path`` (PNG): ``scene`` as RGB with ``result`` (probability or mask) as a coloured overlay.

    One time step (``time``, default the last) and the first prompt are drawn, decimated to at most
    ``max_pixels`` on the long side so large scenes stay cheap. Optional ``vectors`` (a GeoDataFrame in the
    scene's CRS) are outlined.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    image = to_rgb8(scene).image
    ydim, xdim = image.dims[-3], image.dims[-2]
    image = _first_of_others(image, (ydim, xdim, image.dims[-1]), time)
    overlay = _first_of_others(result, (ydim, xdim), time)
    step = max(1, int(np.ceil(max(image.sizes[ydim], image.sizes[xdim]) / max_pixels)))
    window = {ydim: slice(None, None, step), xdim: slice(None, None, step)}
    rgb = np.asarray(image.isel(window).values)
    values = np.asarray(overlay.isel(window).values, dtype=np.float32)
    if np.issubdtype(overlay.dtype, np.integer):
        values = np.where(values == overlay.attrs.get("nodata", 255), np.nan, values)
    x, y = image[xdim].values, image[ydim].values
    extent = (float(x[0]), float(x[-1]), float(y[-1]), float(y[0]))

    fig, axes = plt.subplots(1, 2, figsize=(12, 6), sharex=True, sharey=True)
    axes[0].imshow(rgb, extent=extent)
    axes[0].set_title("scene (RGB)")
    axes[1].imshow(rgb, extent=extent)
    shown = axes[1].imshow(
        np.ma.masked_invalid(values), extent=extent, cmap="magma", vmin=0, vmax=1, alpha=0.55
    )
    fig.colorbar(shown, ax=axes[1], fraction=0.046, label=str(overlay.attrs.get("long_name", "")))
    prompt = overlay.coords["prompt"].item() if "prompt" in overlay.coords else ""
    axes[1].set_title(f"{prompt!s}" if prompt else "segmentation")
    if vectors is not None and len(vectors):
        vectors.boundary.plot(ax=axes[1], color="cyan", linewidth=0.8)
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", labelrotation=30)
    if "time" in image.coords:
        fig.suptitle(title or f"{np.datetime_as_string(image['time'].values, unit='D')}")
    elif title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
