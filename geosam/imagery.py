"""Turn loaded bands into the uint8 RGB images the model takes, with a validity mask: ``to_rgb8``.

Input is what :func:`geosam.open_stac` returns (a Dataset with ``red``/``green``/``blue`` variables),
a Dataset with such variables from anywhere, or a DataArray with a band dimension such as
``rioxarray.open_rasterio(path)`` gives. The result stays lazy when the input is dask-backed and keeps
the input's grid, ``time`` and CRS (``spatial_ref`` coordinate).

How values become 0..255 (``stretch="auto"``), per kind of data:

==================================  ==========================================================
uint8 without scale/offset          as is (aerial imagery such as NAIP)
a ``scale_factor``/``add_offset``   reflectance = value * scale + offset (``raster:bands`` or the
attribute, or float data whose      Sentinel-2 L2A baseline: DN * 1e-4 - 0.1), then reflectance
98th percentile is at most 1.5      0..0.3 -> 0..1, raised to 1/2.2 (gamma 2.2, the display encoding
                                    of linear light, so it looks like aerial photos), x 255
float data above that               as other integers below, with a warning (not reflectance)
other integers (uint16 without      linear percentile stretch: the 2nd..98th percentile of all
scale, e.g. SpaceNet pan)           valid pixels of the three bands together -> 0..255, computed
                                    once over the whole input (every n-th pixel, at most ~1e6)
==================================  ==========================================================

A one-band (panchromatic) input is stretched the same way and repeated into the three channels.
Invalid pixels (all bands equal to nodata, or any band NaN) are 0 in the image and False in the mask.

>>> import geosam
>>> from geosam.imagery import to_rgb8
>>> ds = geosam.open_stac(url, collections=["naip"])          # doctest: +SKIP
>>> rgb = to_rgb8(ds)                                         # doctest: +SKIP
>>> rgb.image.dims, rgb.valid.dims   # ('time', 'y', 'x', 'rgb'), ('time', 'y', 'x')  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal, NamedTuple, TypeAlias

import dask
import dask.array as dsa
import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from geosam.errors import BandError, InputError, MissingCRSError, NoDataError

__all__ = ["RGB8", "RGB_DIM", "Stretch", "to_rgb8"]

#: Name of the channel dimension of the image :func:`to_rgb8` returns (coordinates red, green, blue).
RGB_DIM = "rgb"
Stretch: TypeAlias = Literal["auto", "none", "reflectance", "percentile"] | tuple[float, float]

_RGB = ("red", "green", "blue")
_MAX_STAT_SAMPLES = 1_000_000
#: The percentile stretch of integer imagery without a scale (uint16 ...): scenes (``to_rgb8``) and
#: the images of training and evaluation (:func:`geosam.data.images.read_rgb`) use the same one, so
#: the network sees such imagery at inference as it was trained.
STRETCH_PERCENTILES = (2.0, 98.0)

# Float bands without a declared scale count as reflectance only while their 98th percentile stays
# below this: snow and glint pass 1.0, DN on a 0..255 or 0..10000 scale are far above.
_MAX_REFLECTANCE = 1.5
_NODATA_KEYS = ("nodata", "_FillValue", "missing_value", "fill_value")


class RGB8(NamedTuple):
    """An 8-bit RGB image and where it is valid.

    ``image``: uint8, dims ``(..., y, x, "rgb")`` (``...`` = the input's other dims such as ``time``; y/x are
    the input's spatial dims), one dask chunk along ``rgb``. ``valid``: bool, dims ``(..., y, x)``.
    """

    image: xr.DataArray
    valid: xr.DataArray


def _spatial_dims(arr: xr.DataArray) -> tuple[Hashable, Hashable]:
    dims = None
    with contextlib.suppress(AttributeError, ValueError):
        dims = arr.odc.spatial_dims
    if dims is None:
        for candidate in (("y", "x"), ("latitude", "longitude"), ("lat", "lon")):
            if set(candidate) <= set(arr.dims):
                dims = candidate
                break
    if dims is None:
        raise InputError(f"cannot find the spatial (y, x) dimensions among {tuple(arr.dims)}")
    return dims[0], dims[1]


def _crs(data: xr.DataArray | xr.Dataset) -> Any:
    for get in (lambda: data.rio.crs, lambda: data.odc.crs):
        try:
            crs = get()
        except Exception:
            crs = None
        if crs is not None:
            return crs
    return None


def _nodata(arr: xr.DataArray) -> float | None:
    for source in (arr.attrs, arr.encoding):
        for key in _NODATA_KEYS:
            value = source.get(key)
            if value is not None:
                return float(np.asarray(value).ravel()[0])
    return None


def _lookup(names: Sequence[Hashable], wanted: str) -> Hashable | None:
    for exact in (True, False):
        for name in names:
            if (name == wanted) if exact else (str(name).lower() == wanted.lower()):
                return name
    return None


def _dataset_bands(ds: xr.Dataset, bands: Sequence[str] | None) -> list[xr.DataArray]:
    names = list(ds.data_vars)
    if bands is not None:
        found = {b: _lookup(names, b) for b in bands}
        unknown = [b for b, n in found.items() if n is None]
        if unknown:
            raise BandError(f"no variable(s) {unknown} in the Dataset; variables: {names}")
        return [ds[n] for n in found.values() if n is not None]
    by_name = [_lookup(names, c) for c in _RGB]
    if all(n is not None for n in by_name):
        return [ds[n] for n in by_name if n is not None]
    by_attr = {str(ds[n].attrs.get("common_name", "")).lower(): n for n in names}
    if all(c in by_attr for c in _RGB):
        return [ds[by_attr[c]] for c in _RGB]
    if len(names) == 1:
        return _dataarray_bands(ds[names[0]], None)
    raise BandError(
        f"the Dataset has no red, green and blue variables (by name or 'common_name' attribute); "
        f"variables: {names}. Pass bands=(red, green, blue) names, or one name for a panchromatic band."
    )


def _band_dim(arr: xr.DataArray) -> Hashable | None:
    spatial = set(_spatial_dims(arr))
    extra = [d for d in arr.dims if d not in spatial and d != "time"]
    if not extra:
        return None
    if "band" in extra:
        return "band"
    if len(extra) == 1:
        return extra[0]
    raise BandError(f"cannot tell the band dimension among {extra}: name it 'band'")


def _dataarray_bands(arr: xr.DataArray, bands: Sequence[Any] | None) -> list[xr.DataArray]:
    dim = _band_dim(arr)
    if dim is None:
        if bands is not None and len(bands) != 1:
            raise BandError(
                f"the DataArray has no band dimension (dims {tuple(arr.dims)}) but bands={list(bands)}"
            )
        return [arr]
    labels = arr[dim].values.tolist() if dim in arr.coords else list(range(arr.sizes[dim]))
    # rioxarray keeps GeoTIFF band descriptions as a long_name tuple
    long_names = arr.attrs.get("long_name")
    descriptions = (
        list(long_names)
        if isinstance(long_names, list | tuple) and len(long_names) == len(labels)
        else []
    )
    count = len(labels)

    def position(wanted: Any) -> int | None:
        if wanted in labels:
            return labels.index(wanted)
        if isinstance(wanted, str):
            for names in (labels, descriptions):
                hit = _lookup([str(n) for n in names], wanted)
                if hit is not None:
                    return [str(n) for n in names].index(str(hit))
        return None

    if bands is not None:
        found = {b: position(b) for b in bands}
        unknown = [b for b, p in found.items() if p is None]
        if unknown:
            raise BandError(
                f"unknown band(s) {unknown}; the {dim!r} dimension has {labels}"
                + (f" (descriptions {descriptions})" if descriptions else "")
            )
        picks = [p for p in found.values() if p is not None]
    elif all(position(c) is not None for c in _RGB):
        picks = [p for p in (position(c) for c in _RGB) if p is not None]
    elif count in (3, 4):
        picks = [0, 1, 2]  # band order R, G, B (and NIR 4th, as NAIP): pass bands= for other orders
    elif count == 1:
        picks = [0]
    else:
        raise BandError(
            f"cannot make RGB from {count} bands ({dim!r} = {labels}) without names: pass bands=(r, g, b) "
            "labels, or give 1 (panchromatic), 3 (R, G, B) or 4 (R, G, B, NIR) bands"
        )
    return [arr.isel({dim: p}, drop=True).assign_attrs(arr.attrs) for p in picks]


def _scale_offset(arr: xr.DataArray) -> tuple[float, float]:
    """CF ``scale_factor``/``add_offset`` attributes (rioxarray and geosam.open_stac set them)."""
    return float(arr.attrs.get("scale_factor", 1.0)), float(arr.attrs.get("add_offset", 0.0))


def _physical(arr: xr.DataArray) -> xr.DataArray:
    scale, offset = _scale_offset(arr)
    out = arr.astype(np.float32)
    return out if (scale, offset) == (1.0, 0.0) else out * np.float32(scale) + np.float32(offset)


def _validity(bands: Sequence[xr.DataArray]) -> xr.DataArray:
    fill: xr.DataArray | None = None  # pixels where every band holds its nodata value
    finite: xr.DataArray | None = None  # pixels where no band is NaN/inf
    for band in bands:
        nodata = _nodata(band)
        if nodata is not None and not math.isnan(nodata):
            is_fill = band == nodata
            fill = is_fill if fill is None else fill & is_fill
        if np.issubdtype(band.dtype, np.floating):
            ok = xr.apply_ufunc(np.isfinite, band, dask="allowed")
            finite = ok if finite is None else finite & ok
    valid = xr.ones_like(bands[0], dtype=bool)
    if fill is not None:
        valid = valid & ~fill
    if finite is not None:
        valid = valid & finite
    return valid.rename("valid")


def _stored_dtype(arr: xr.DataArray) -> np.dtype[Any]:
    """The dtype of the values as stored: rioxarray's ``masked=True`` turns integers into float with NaN."""
    stored = arr.encoding.get("dtype")
    if (
        np.issubdtype(arr.dtype, np.floating)
        and stored is not None
        and "scale_factor" not in arr.encoding
    ):
        stored = np.dtype(stored)
        if np.issubdtype(stored, np.integer):
            return stored
    return arr.dtype


def _auto_stretch(bands: Sequence[xr.DataArray]) -> str:
    if any(_scale_offset(b) != (1.0, 0.0) for b in bands):
        return "reflectance"
    dtypes = [_stored_dtype(b) for b in bands]
    if any(np.issubdtype(d, np.floating) for d in dtypes):
        return "float"  # reflectance if the values look like it (to_rgb8 samples them)
    if all(d == np.uint8 for d in dtypes):
        return "none"
    return "percentile"


def _percentile_range(
    physical: Sequence[xr.DataArray],
    valid: xr.DataArray,
    percentiles: tuple[float, float],
    ydim: Hashable,
    xdim: Hashable,
) -> tuple[float, float]:
    pixels = valid.size
    step = max(1, math.ceil(math.sqrt(pixels / _MAX_STAT_SAMPLES)))
    while True:
        # every step-th row and column in the scene's own pixel grid: the same sample whatever the chunking
        window = {ydim: slice(None, None, step), xdim: slice(None, None, step)}
        *values, mask = dask.compute(
            *[p.isel(window).data for p in physical], valid.isel(window).data
        )
        mask = np.asarray(mask)
        if mask.any():
            sample = np.concatenate([np.asarray(v)[mask] for v in values])
            low, high = (float(v) for v in np.percentile(sample, percentiles))
            return low, high if high > low else low + 1.0
        if step == 1:
            raise NoDataError(
                "every pixel of the input is nodata or NaN: there is nothing to stretch or segment"
            )
        step = 1


def _linear(low: float, high: float, gamma: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """``low..high`` -> 0..255, with ``** (1 / gamma)`` applied to the 0..1 ramp."""

    def transfer(values: np.ndarray) -> np.ndarray:
        ramp = np.clip((values - low) / (high - low), 0, 1)
        return (ramp if gamma == 1 else ramp ** (1 / gamma)) * 255

    return transfer


def _encoder(
    band: xr.DataArray, transfer: Callable[[np.ndarray], np.ndarray]
) -> Callable[[np.ndarray], np.ndarray]:
    """A block function: stored values of ``band`` -> scale/offset -> stretch -> rounded uint8 (NaN -> 0).

    8- and 16-bit integers go through a lookup table of all their codes (one gather per pixel instead of
    float arithmetic and a power); other types are computed in float32.
    """
    scale, offset = _scale_offset(band)
    if band.dtype.kind in "ui" and band.dtype.itemsize <= 2:
        info = np.iinfo(band.dtype)
        codes = np.arange(info.min, info.max + 1, dtype=np.float64)
        lut = np.round(transfer(codes * scale + offset)).astype(np.uint8)
        shift = -int(info.min)
        return lambda block: lut[block.astype(np.int32) + shift] if shift else lut[block]

    def encode(block: np.ndarray) -> np.ndarray:
        values = block.astype(np.float32) * np.float32(scale) + np.float32(offset)
        return np.nan_to_num(np.round(transfer(values)), nan=0.0).astype(np.uint8)

    return encode


def _rgb_image(
    bands: Sequence[xr.DataArray], valid: xr.DataArray, transfer: Callable[[np.ndarray], np.ndarray]
) -> xr.DataArray:
    """One fused block function from the band blocks and the mask to a (..., 3) uint8 block."""
    encoders = [_encoder(b, transfer) for b in bands]

    def to_image(*blocks: np.ndarray) -> np.ndarray:
        *band_blocks, ok = blocks
        out = np.empty((*ok.shape, 3), dtype=np.uint8)
        for channel in range(3):
            if channel < len(band_blocks):
                out[..., channel] = encoders[channel](band_blocks[channel])
            else:  # panchromatic: the same grey in red, green and blue
                out[..., channel] = out[..., 0]
        out[~ok] = 0
        return out

    return xr.apply_ufunc(
        to_image,
        *bands,
        valid,
        dask="parallelized",
        output_core_dims=[[RGB_DIM]],
        output_dtypes=[np.uint8],
        dask_gufunc_kwargs={"output_sizes": {RGB_DIM: 3}},
    )


def to_rgb8(
    data: xr.Dataset | xr.DataArray,
    *,
    bands: Sequence[Any] | None = None,
    stretch: Stretch = "auto",
    reflectance_range: tuple[float, float] = (0.0, 0.3),
    gamma: float = 2.2,
    percentiles: tuple[float, float] = STRETCH_PERCENTILES,
    require_crs: bool = True,
    check_valid: bool | None = None,
) -> RGB8:
    """Convert bands to a uint8 RGB image (channels last) and a validity mask.

    - ``bands``: three names/labels (red, green, blue) or one (panchromatic); default: ``red``,
      ``green``, ``blue`` by variable name, ``common_name`` attribute, band label or band description,
      else the band order (3 bands: R,G,B; 4 bands: R,G,B,NIR as NAIP; 1 band: panchromatic).
    - ``stretch``: ``"auto"`` (see the module docs), ``"none"`` (values are 0..255 already: clipped),
      ``"reflectance"`` (``reflectance_range`` -> 0..1, then ``** (1 / gamma)``), ``"percentile"``
      (``percentiles`` of the valid pixels -> 0..255) or ``(low, high)`` in physical units -> 0..255.
    - ``require_crs``: raise :class:`~geosam.errors.MissingCRSError` on input without a CRS.
    - ``check_valid``: raise :class:`~geosam.errors.NoDataError` when no pixel is valid. ``None`` checks
      where it costs nothing (numpy input, or the percentile pass reads the data anyway); ``True`` always
      (computes the mask of a lazy input once).

    >>> import rioxarray
    >>> rgb = to_rgb8(rioxarray.open_rasterio("RGB.byte.tif", chunks=512))   # doctest: +SKIP
    >>> rgb.image.shape, rgb.image.dtype     # (718, 791, 3), uint8            # doctest: +SKIP
    """
    if not isinstance(data, xr.Dataset | xr.DataArray):
        raise InputError(f"to_rgb8 takes an xarray Dataset or DataArray, got {type(data).__name__}")
    if bands is not None and isinstance(bands, str | bytes):
        bands = [bands]
    if bands is not None and len(bands) not in (1, 3):
        raise BandError(
            f"bands must name 3 bands (red, green, blue) or 1 (panchromatic), got {len(bands)}: {list(bands)}"
        )
    crs = _crs(data)
    if require_crs and crs is None:
        raise MissingCRSError(
            "the input has no CRS, so results could not be georeferenced: set one with "
            "data.rio.write_crs('EPSG:...') (or pass require_crs=False)"
        )
    selected = (
        _dataset_bands(data, bands)
        if isinstance(data, xr.Dataset)
        else _dataarray_bands(data, bands)
    )
    if len(selected) not in (1, 3):
        raise BandError(f"need 3 bands (red, green, blue) or 1 (panchromatic), got {len(selected)}")
    ydim, xdim = _spatial_dims(selected[0])
    valid = _validity(selected)
    kind = _auto_stretch(selected) if stretch == "auto" else stretch
    checked = False
    transfer: Callable[[np.ndarray], np.ndarray]
    if kind == "float":
        physical = [_physical(b) for b in selected]
        low, high = _percentile_range(physical, valid, percentiles, ydim, xdim)
        checked = True
        if high <= _MAX_REFLECTANCE:
            kind = "reflectance"
        else:
            warnings.warn(
                f"float bands reach {high:g} ({percentiles[1]:g}th percentile), so they are not reflectance 0..1: "
                f"stretched by percentile instead; pass stretch='none' for values on 0..255, or "
                "stretch=(low, high)",
                UserWarning,
                stacklevel=2,
            )
            kind = (low, high)
    if kind == "none":
        transfer, description = (lambda v: np.clip(v, 0, 255)), "none (values taken as 0..255)"
    elif kind == "reflectance":
        low, high = reflectance_range
        transfer = _linear(low, high, gamma)
        description = f"reflectance {low}..{high} -> 0..255, gamma {gamma}"
    elif kind == "percentile":
        physical = [_physical(b) for b in selected]
        low, high = _percentile_range(physical, valid, percentiles, ydim, xdim)
        checked = True
        transfer = _linear(low, high)
        description = f"percentile {percentiles[0]}..{percentiles[1]} = {low:g}..{high:g} -> 0..255"
    elif isinstance(kind, tuple) and len(kind) == 2:
        low, high = (float(v) for v in kind)
        if not high > low:
            raise InputError(f"stretch range must have high > low, got {kind}")
        transfer, description = _linear(low, high), f"linear {low:g}..{high:g} -> 0..255"
    else:
        raise InputError(
            f"unknown stretch {stretch!r}: use 'auto', 'none', 'reflectance', 'percentile' or (low, high)"
        )

    image = _rgb_image(selected, valid, transfer)
    image = image.assign_coords({RGB_DIM: list(_RGB)}).transpose(..., ydim, xdim, RGB_DIM)
    image = image.rename("rgb8")
    image.attrs = {"stretch": description, "long_name": "8-bit RGB for the model"}
    valid.attrs = {"long_name": "pixel holds data (not nodata or NaN)"}
    if crs is not None and _crs(image) is None:
        image = image.rio.write_crs(crs)
        valid = valid.rio.write_crs(crs)

    lazy = isinstance(valid.data, dsa.Array)
    if (
        (check_valid or (check_valid is None and not lazy))
        and not checked
        and not bool(valid.any())
    ):
        raise NoDataError("every pixel of the input is nodata or NaN: there is nothing to segment")
    return RGB8(image, valid)
