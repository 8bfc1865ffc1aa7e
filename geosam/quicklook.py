"""A PNG quicklook of a segmentation: the scene in RGB with the probability drawn over it.

>>> from geosam.quicklook import quicklook
>>> quicklook(ds, prob, "water.png")                      # doctest: +SKIP
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
    fig = _figure(scene, result, time=time, max_pixels=max_pixels, title=title, vectors=vectors)
    import matplotlib.pyplot as plt  # after _figure chose the Agg backend

    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _figure(
    scene: xr.Dataset | xr.DataArray,
    result: xr.DataArray,
    *,
    time: int,
    max_pixels: int,
    title: str | None,
    vectors: Any,
) -> Any:
    """The quicklook as a matplotlib Figure (two panels sharing map axes, one colour bar)."""
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
    x, y = image[xdim].values.astype(float), image[ydim].values.astype(float)
    # pixel edges, not centres, so that vectors in map coordinates line up with the pixels
    hx = (x[-1] - x[0]) / (len(x) - 1) / 2 if len(x) > 1 else 0.5
    hy = (y[-1] - y[0]) / (len(y) - 1) / 2 if len(y) > 1 else -0.5
    extent = (x[0] - hx, x[-1] + hx, y[-1] + hy, y[0] - hy)

    fig, axes = plt.subplots(1, 2, figsize=(12, 6), sharex=True, sharey=True, layout="constrained")
    axes[0].imshow(rgb, extent=extent)
    axes[0].set_title("scene (RGB)")
    axes[1].imshow(rgb, extent=extent)
    shown = axes[1].imshow(
        np.ma.masked_invalid(values), extent=extent, cmap="magma", vmin=0, vmax=1, alpha=0.55
    )
    # one colour bar beside both panels keeps them the same size
    fig.colorbar(shown, ax=list(axes), fraction=0.025, label=str(overlay.attrs.get("long_name", "")))
    prompt = overlay.coords["prompt"].item() if "prompt" in overlay.coords else ""
    axes[1].set_title(f"{prompt!s}" if prompt else "segmentation")
    if vectors is not None and len(vectors):
        vectors.boundary.plot(ax=axes[1], color="cyan", linewidth=0.8)
        axes[1].set_xlim(extent[0], extent[1])  # the outlines must not widen the view past the scene
        axes[1].set_ylim(extent[2], extent[3])
        # geopandas names the CRS axes on the panel it drew on; the shared y axis belongs on the left
        size = axes[1].xaxis.label.get_size()
        axes[0].set_ylabel(axes[1].get_ylabel(), fontsize=size)
        axes[0].set_xlabel(axes[1].get_xlabel(), fontsize=size)
        axes[1].set_ylabel("")
    for ax in axes:
        ax.ticklabel_format(useOffset=False, style="plain")  # full map coordinates, no "1e6" offset
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", labelrotation=30)
    if "time" in image.coords:
        fig.suptitle(title or f"{np.datetime_as_string(image['time'].values, unit='D')}")
    elif title:
        fig.suptitle(title)
    return fig
