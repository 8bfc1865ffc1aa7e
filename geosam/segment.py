"""``geosam.segment``: lazy, georeferenced text-prompted segmentation of whole scenes.

>>> import geosam
>>> ds = geosam.open_stac(url, collections=["naip"], bbox=bbox)          # doctest: +SKIP
>>> prob = geosam.segment(ds, "water")            # lazy (time, y, x) float32 # doctest: +SKIP
>>> mask = ds.remotesam.segment(["water", "roads"], threshold=0.5)      # doctest: +SKIP

The scene is cut into windows of the model's input size that overlap and are blended with cosine
weights (see :mod:`geosam.tiling` and :mod:`geosam._sliding`), so the result does not depend on the
dask chunking; the model runs once per window, in device batches, in the worker that holds the data.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Hashable, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import pyproj
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from geosam._sliding import sliding_segment
from geosam.distributed import (
    ModelLike,
    ModelRef,
    current_client,
    get_model,
    model_ref,
    send_model_to_workers,
)
from geosam.errors import InputError, MissingCRSError, PromptError
from geosam.imagery import RGB_DIM, Stretch, to_rgb8
from geosam.model.predictor import check_batch_size
from geosam.model.text import normalize_prompts
from geosam.tiling import DEFAULT_CHUNK, MIN_TILE, Blend, default_overlap

__all__ = ["MASK_NODATA", "PROMPT_DIM", "scene_gsd", "segment"]

#: Name of the dimension of a multi-prompt result.
PROMPT_DIM = "prompt"
#: Value of nodata pixels in a thresholded (uint8) mask; 0 is background, 1 foreground.
MASK_NODATA = 255


def _input_size(ref: ModelRef) -> int:
    return ref.input_size if ref.input_size is not None else get_model(ref).input_size


def _check_options(
    threshold: float | None,
    tile: int | None,
    gsd: float | None,
    overlap: int | None,
    batch_size: int | None,
) -> None:
    if threshold is not None and not (
        isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0
    ):
        raise InputError(f"threshold must be a probability between 0 and 1, got {threshold!r}")
    for name, value, low in (("tile", tile, MIN_TILE), ("overlap", overlap, 0)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low
        ):
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    if gsd is not None:
        if isinstance(gsd, bool) or not isinstance(gsd, numbers.Real) or not 0 < gsd < math.inf:
            raise InputError(f"gsd must be a positive number of metres per pixel, got {gsd!r}")
        if tile is not None:
            raise InputError(
                "give tile (window size in scene pixels) or gsd (metres per pixel the network "
                "sees), not both"
            )
    check_batch_size(batch_size)


def scene_gsd(image: xr.DataArray | xr.Dataset) -> float:
    """Metres on the ground per pixel at the centre of a georeferenced scene (the geometric mean of
    the x and y pixel sizes), in any CRS: projected (UTM, web mercator, whose scale grows away from
    the equator), geographic (degrees), or a local survey grid without a datum (its own units).

    >>> scene_gsd(rioxarray.open_rasterio("spacenet_pan.tif"))    # 0.5  # doctest: +SKIP
    >>> ds.remotesam.gsd                                          # the same, as a property  # doctest: +SKIP
    """
    crs = image.rio.crs
    if crs is None:
        raise MissingCRSError("the scene has no CRS, so its pixel size on the ground is unknown")
    transform = image.rio.transform(recalc=True)
    crs = pyproj.CRS.from_user_input(crs)
    if crs.geodetic_crs is None:  # a local (engineering) CRS, as of a site survey: no ellipsoid
        factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else None
        if not factor:
            raise InputError(
                f"cannot tell the scene's pixel size on the ground: its CRS {crs.name!r} has "
                "neither a datum nor linear units; give tile (scene pixels) instead of gsd"
            )
        return math.sqrt(abs(transform.determinant)) * factor
    col, row = image.rio.width / 2, image.rio.height / 2
    xs, ys = zip(*(transform * p for p in ((col, row), (col + 1, row), (col, row + 1))), strict=True)
    lon, lat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True).transform(xs, ys)
    geod = crs.get_geod() or pyproj.Geod(ellps="WGS84")
    dx = geod.inv(lon[0], lat[0], lon[1], lat[1])[2]
    dy = geod.inv(lon[0], lat[0], lon[2], lat[2])[2]
    return math.sqrt(dx * dy)


def _tile_for_gsd(image: xr.DataArray, gsd: float, input_size: int) -> int:
    """Scene pixels per window so that the window, resized to the network's input, has ``gsd``."""
    scene = scene_gsd(image)
    tile = round(input_size * float(gsd) / scene)
    if tile < MIN_TILE:
        raise InputError(
            f"gsd={gsd} m on this {scene:.3g} m scene gives windows of {tile} scene pixels, fewer "
            f"than {MIN_TILE}: the scene is too coarse to be seen at {gsd} m"
        )
    return tile


def segment(
    obj: xr.Dataset | xr.DataArray,
    prompts: str | Sequence[str],
    *,
    model: ModelLike | ModelRef = None,
    threshold: float | None = None,
    tile: int | None = None,
    gsd: float | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    bands: Sequence[Any] | None = None,
    stretch: Stretch = "auto",
    blend: Blend = "cosine",
    resources: dict[str, float] | None = None,
) -> xr.DataArray:
    """Foreground probability of each text prompt over a georeferenced scene, lazily.

    ``obj`` is what :func:`geosam.open_stac` returns, a Dataset with red/green/blue variables, or a
    DataArray with a band dimension (``rioxarray.open_rasterio``); it is converted to 8-bit RGB by
    :func:`geosam.imagery.to_rgb8` (``bands``, ``stretch``). It must have a CRS.

    Returns a dask-backed DataArray on the input's grid (same ``y``/``x`` coordinates and chunks, the
    CRS as a CF ``spatial_ref`` coordinate: ``.rio.crs`` and ``.odc.crs`` work) with the input's other
    dimensions (``time``) first; a list of prompts adds a ``prompt`` dimension, a single string gives a
    scalar ``prompt`` coordinate. Values are float32 probabilities in [0, 1] and NaN where the input is
    nodata or NaN; with ``threshold`` a uint8 mask: 1 where probability >= threshold, 0 elsewhere and
    255 (:data:`MASK_NODATA`, the ``nodata`` attribute) on nodata.

    - ``model``: a name or checkpoint path (loaded once per process, see :mod:`geosam.distributed`), a
      :class:`~geosam.distributed.ModelRef`, or a loaded :class:`~geosam.RemoteSAM`; default remotesam-lite.
    - ``tile``: window size in scene pixels (default: the model's input size; other sizes are resized to
      it). ``overlap``: pixels shared by neighbouring windows (default ``tile // 8``; 0 allowed).
      Scenes smaller than a window are extended with their mirror image, not refused; answers on
      scenes much smaller than a window have less context and are less reliable. ``blend``: ``"cosine"`` or ``"linear"`` ramps.
    - ``gsd``: metres per pixel at which the network sees the scene, instead of ``tile``: windows of
      ``input_size * gsd / scene_gsd`` scene pixels (:func:`scene_gsd`), each resized to the input;
      the output stays on the scene's grid. The network knows objects at the sizes in pixels it
      was trained on: remotesam-lite finds ships and aircraft best at about 50 px long, so
      ``gsd`` = their length / 50 (0.8 m for 40 m airliners) keeps finer and coarser sensors
      working (docs/model-card.md, "Other ground resolutions"). A ``gsd`` finer
      than the scene costs ``(scene_gsd / gsd)**2`` times the windows.
    - ``batch_size``: image-prompt pairs per forward pass (default: the model's, 8 on GPU, 1 on CPU).
    - ``resources``: dask resource annotation for the model tasks, e.g. ``{"GPU": 1}`` on a cluster with
      GPU workers (see docs/distributed.md).

    >>> prob = segment(ds, "ships")                                   # doctest: +SKIP
    >>> prob.rio.crs == ds.rio.crs, prob.dims                         # (True, ('time', 'y', 'x'))  # doctest: +SKIP
    >>> masks = segment(ds, ["ships", "harbor"], threshold=0.5)       # (time, prompt, y, x) uint8  # doctest: +SKIP
    >>> prob = segment(drone_ortho, "airplanes", gsd=0.8)   # 5 cm pixels seen as 0.8 m  # doctest: +SKIP
    """
    items, single = normalize_prompts(prompts)
    duplicates = sorted({p for p in items if items.count(p) > 1})
    if duplicates:
        raise PromptError(f"prompts must be distinct; repeated: {duplicates}")
    _check_options(threshold, tile, gsd, overlap, batch_size)
    if resources and dask.config.get("optimization.fuse.active", None) is not False:
        warnings.warn(
            "dask's low-level task fusion drops resource annotations such as resources={'GPU': 1} "
            "(dask issue 7036), so the model tasks could run on any worker: call "
            "geosam.distributed.configure_dask(gpu=True) or "
            "dask.config.set({'optimization.fuse.active': False}) before computing",
            UserWarning,
            stacklevel=2,
        )
    ref = model_ref(model)
    client = current_client()
    if ref.instance is not None and client is not None:
        send_model_to_workers(client, ref)  # the model object goes to each worker once, not into tasks

    rgb = to_rgb8(obj, bands=bands, stretch=stretch)
    image, valid = rgb.image, rgb.valid
    *lead_dims, ydim, xdim, _ = image.dims
    if not isinstance(image.data, da.Array):
        chunks = {**{d: 1 for d in lead_dims}, ydim: DEFAULT_CHUNK, xdim: DEFAULT_CHUNK}
        image, valid = image.chunk({**chunks, RGB_DIM: -1}), valid.chunk(chunks)
    valid = valid.chunk(dict(zip(valid.dims, image.data.chunks[:-1], strict=True)))

    if gsd is not None:
        tile = _tile_for_gsd(image, gsd, _input_size(ref))
    tile = int(tile) if tile is not None else _input_size(ref)
    overlap = int(overlap) if overlap is not None else default_overlap(tile)
    if overlap >= tile:
        raise InputError(f"overlap ({overlap}) must be smaller than the window ({tile} px)")

    channels_first = da.moveaxis(image.data, -1, -3)
    rgbv = da.concatenate([channels_first, valid.data.astype(np.uint8)[..., None, :, :]], axis=-3)
    probs = sliding_segment(
        rgbv,
        items,
        ref,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        blend=blend,
        resources=resources,
    )

    coords: dict[Hashable, Any] = {
        name: coord for name, coord in image.coords.items() if RGB_DIM not in coord.dims
    }
    coords[PROMPT_DIM] = (PROMPT_DIM, np.array(items, dtype=object))
    result = xr.DataArray(probs, dims=(*lead_dims, PROMPT_DIM, ydim, xdim), coords=coords)
    result.attrs.update(
        long_name="foreground probability",
        units="1",
        model=ref.name,
        tile=tile,
        overlap=overlap,
        blend=blend,
        **({"gsd": float(gsd)} if gsd is not None else {}),
    )
    if threshold is not None:
        result = _threshold(result, float(threshold))
    result = result.rename("mask" if threshold is not None else "probability")
    if single:
        result = result.isel({PROMPT_DIM: 0})
    if result.rio.crs is not None:
        # keep the input's spatial_ref coordinate as it is (odc-geo and rioxarray give it different
        # values, which clash when results are combined), only record it as the grid mapping
        return result.rio.write_grid_mapping(image.rio.grid_mapping)
    crs = image.rio.crs
    return result.rio.write_crs(crs) if crs is not None else result


def _threshold(prob: xr.DataArray, threshold: float) -> xr.DataArray:
    def cut(block: np.ndarray) -> np.ndarray:
        out = (block >= threshold).astype(np.uint8)
        out[np.isnan(block)] = MASK_NODATA
        return out

    mask = prob.copy(data=prob.data.map_blocks(cut, dtype=np.uint8))
    mask.attrs = {
        **prob.attrs,
        "long_name": "foreground mask",
        "threshold": threshold,
        "nodata": MASK_NODATA,
        "flag_values": [0, 1],
        "flag_meanings": "background foreground",
    }
    del mask.attrs["units"]
    return mask
