"""Open STAC scenes as lazy, georeferenced xarray Datasets: ``geosam.open_stac``.

A source is a STAC API URL (searched with pystac-client, retried with backoff), a static catalog,
collection, ItemCollection or ``.ndjson`` file (read with pystac and filtered the same way), a
:class:`pystac.ItemCollection` or a list of :class:`pystac.Item`. odc-stac loads the pixels as dask
arrays on one grid, with a ``time`` dimension and the CRS as a CF ``spatial_ref`` coordinate.

>>> import geosam
>>> ds = geosam.open_stac("http://127.0.0.1:7822", collections=["naip"],
...                       bbox=[-99.16, 47.00, -99.13, 47.03], datetime="2010/2020")  # doctest: +SKIP
>>> ds.red.dims, ds.odc.crs         # (('time', 'y', 'x'), CRS('EPSG:26914'))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from datetime import datetime as Datetime
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlparse

import numpy as np
import odc.geo.xr  # registers the .odc accessor
import odc.stac
import pystac
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from pystac_client import Client, ItemSearch
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from shapely.geometry import box, shape
from urllib3.util.retry import Retry

from geosam._stac_bands import BandPlan, plan_bands, scale_offset
from geosam.errors import CollectionNotFoundError, InputError, NoItemsError, StacServerError

__all__ = ["DEFAULT_CHUNKS", "StacSource", "open_stac", "search_items"]

StacSource: TypeAlias = (
    str | os.PathLike[str] | pystac.ItemCollection | pystac.Catalog | Sequence[pystac.Item]
)

#: Spatial chunking when ``chunks`` is not given: one time step and 2048 x 2048 pixels per dask chunk.
DEFAULT_CHUNKS: dict[str, int] = {"time": 1, "x": 2048, "y": 2048}

# Statuses worth retrying: rate limiting and server-side failures (not 4xx client errors).
_RETRY_STATUSES = (429, 500, 502, 503, 504)


def _is_url(source: object) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def _search_parameters(
    collections: Sequence[str] | str | None,
    bbox: Sequence[float] | None,
    datetime: Any,
    ids: Sequence[str] | None,
) -> dict[str, Any]:
    """Check and normalise search arguments the way pystac-client sends them to an API."""
    if bbox is not None:
        bbox = [float(v) for v in bbox]
        if len(bbox) != 4:
            raise InputError(
                f"bbox must be [west, south, east, north] in degrees, got {len(bbox)} numbers: {bbox}"
            )
        west, south, east, north = bbox
        if not (-90 <= south <= north <= 90 and -180 <= west <= 180 and -180 <= east <= 180):
            raise InputError(
                f"bbox {bbox} is not [west, south, east, north] in longitude/latitude degrees"
            )
    try:
        # ItemSearch only formats parameters here; nothing is sent to this placeholder URL
        params = ItemSearch(
            "http://localhost/search",
            collections=list(collections) if collections is not None else None,
            bbox=bbox,
            datetime=datetime,
            ids=list(ids) if ids is not None else None,
        ).get_parameters()
    except Exception as err:  # pystac-client raises bare Exception for bad datetimes
        raise InputError(f"invalid search arguments (datetime={datetime!r}): {err}") from err
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def _source_name(source: object) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, pystac.ItemCollection):
        return f"an ItemCollection of {len(source.items)} items"
    if isinstance(source, pystac.Catalog):
        return f"{type(source).__name__} {source.id!r}"
    if isinstance(source, Sequence):
        return f"a list of {len(source)} STAC items"
    return type(source).__name__


def _describe(source: object, params: Mapping[str, Any]) -> str:
    filters = ", ".join(f"{k}={v}" for k, v in params.items())
    return _source_name(source) + (f" with {filters}" if filters else "")


def _stac_io(retries: int, backoff: float, timeout: float) -> StacApiIO:
    retry = Retry(
        total=retries,
        backoff_factor=backoff,
        status_forcelist=_RETRY_STATUSES,
        allowed_methods=None,  # POST /search is safe to repeat
        raise_on_status=False,  # after the last try, surface the server's own error response
    )
    return StacApiIO(max_retries=retry, timeout=timeout)


def _server_error(url: str, err: Exception, retries: int) -> StacServerError:
    status = getattr(err, "status_code", None)
    what = f"answered HTTP {status}" if status else "could not be reached"
    return StacServerError(f"STAC API {url} {what} after {retries} retries with backoff: {err}")


def _open_client(url: str, retries: int, backoff: float, timeout: float) -> Client:
    try:
        return Client.open(url, stac_io=_stac_io(retries, backoff, timeout))
    except APIError as err:
        raise _server_error(url, err, retries) from err
    except (ValueError, KeyError, pystac.STACError) as err:
        raise StacServerError(f"{url} did not answer as a STAC API or catalog: {err}") from err


def _check_api_collections(
    client: Client, url: str, collections: Sequence[str], retries: int
) -> list[Any]:
    found: list[pystac.Collection] = []
    missing: list[str] = []
    try:
        for cid in collections:
            collection = client.get_collection(cid)
            if collection is None:
                missing.append(cid)
            else:
                found.append(collection)
        if missing:
            available = sorted(c.id for c in client.get_collections())
    except APIError as err:
        if getattr(err, "status_code", None) == 404:
            missing, available = list(collections), []
        else:
            raise _server_error(url, err, retries) from err
    if missing:
        raise CollectionNotFoundError(
            f"STAC API {url} has no collection(s) {missing}; available: {', '.join(available[:50]) or 'none listed'}"
        )
    return found


def _extent_hint(extents: Iterable[tuple[str, pystac.Extent]]) -> str:
    parts = []
    for cid, extent in extents:
        bbox = [round(v, 5) for v in extent.spatial.bboxes[0]] if extent.spatial.bboxes else None
        interval = extent.temporal.intervals[0] if extent.temporal.intervals else [None, None]
        times = "/".join(t.date().isoformat() if t else ".." for t in interval)
        parts.append(f"collection {cid!r} covers bbox {bbox} and {times}")
    return ("; " + "; ".join(parts)) if parts else ""


def _search_api(
    url: str,
    params: dict[str, Any],
    max_items: int | None,
    retries: int,
    backoff: float,
    timeout: float,
) -> list[pystac.Item]:
    client = _open_client(url, retries, backoff, timeout)
    collections = _check_api_collections(client, url, params.get("collections") or [], retries)
    try:
        if client.conforms_to("ITEM_SEARCH"):
            items = list(client.search(max_items=max_items, **params).items())
        else:  # a static catalog served over HTTP
            items = _filter_items(client.get_items(recursive=True), params, url)
            items = items[:max_items] if max_items else items
    except APIError as err:
        raise _server_error(url, err, retries) from err
    if not items:
        hint = _extent_hint((c.id, c.extent) for c in collections)
        raise NoItemsError(f"no STAC items matched the search of {_describe(url, params)}{hint}")
    return items


def _time_range(params: Mapping[str, Any]) -> tuple[np.datetime64 | None, np.datetime64 | None]:
    if not params.get("datetime"):
        return None, None
    parts = str(params["datetime"]).split("/")
    start, end = parts[0], parts[-1]

    def parse(text: str) -> np.datetime64 | None:
        return None if text in ("..", "") else np.datetime64(text.replace("Z", ""), "us")

    return parse(start), parse(end)


def _item_times(item: pystac.Item) -> tuple[np.datetime64, np.datetime64]:
    props = item.common_metadata
    start = props.start_datetime or item.datetime
    end = props.end_datetime or item.datetime
    if start is None or end is None:
        raise InputError(f"STAC item {item.id!r} has neither datetime nor start/end_datetime")

    def as64(value: Datetime) -> np.datetime64:
        naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return np.datetime64(naive, "us")

    return as64(start), as64(end)


def _bbox_geometry(bbox: Sequence[float]) -> Any:
    west, south, east, north = bbox
    if west <= east:
        return box(west, south, east, north)
    return box(west, south, 180, north).union(
        box(-180, south, east, north)
    )  # crosses the antimeridian


def _filter_items(
    items: Iterable[pystac.Item], params: Mapping[str, Any], source: object
) -> list[pystac.Item]:
    """Apply collections/ids/bbox/datetime to items the way a STAC API search would."""
    items = list(items)
    if params.get("collections"):
        available = {item.collection_id for item in items if item.collection_id is not None}
        missing = [c for c in params["collections"] if c not in available]
        if missing:
            raise CollectionNotFoundError(
                f"{_source_name(source)} has no collection(s) {missing}; available: {sorted(available) or 'none'}"
            )
        items = [item for item in items if item.collection_id in params["collections"]]
    if params.get("ids"):
        items = [item for item in items if item.id in params["ids"]]
    candidates = items
    if params.get("bbox"):
        area = _bbox_geometry(params["bbox"])
        items = [item for item in items if _footprint(item).intersects(area)]
    start, end = _time_range(params)
    if start is not None or end is not None:
        kept = []
        for item in items:
            item_start, item_end = _item_times(item)
            if (start is None or item_end >= start) and (end is None or item_start <= end):
                kept.append(item)
        items = kept
    if not items:
        raise NoItemsError(
            f"no STAC items matched {_describe(source, params)}{_local_hint(candidates)}"
        )
    return items


def _footprint(item: pystac.Item) -> Any:
    if item.geometry is not None:
        return shape(item.geometry)
    if item.bbox is not None:
        return _bbox_geometry(item.bbox[:2] + item.bbox[-2:] if len(item.bbox) == 6 else item.bbox)
    raise InputError(f"STAC item {item.id!r} has neither geometry nor bbox")


def _local_hint(items: Sequence[pystac.Item]) -> str:
    if not items:
        return ""
    bounds = np.array([_footprint(i).bounds for i in items])
    times = sorted(t for i in items for t in _item_times(i))
    bbox = [round(float(v), 5) for v in (*bounds[:, :2].min(0), *bounds[:, 2:].max(0))]
    return (
        f"; the {len(items)} candidate item(s) cover bbox {bbox} and "
        f"{np.datetime_as_string(times[0], 'D')}/{np.datetime_as_string(times[-1], 'D')}"
    )


_STATIC_SUFFIXES = (".json", ".geojson", ".ndjson", ".jsonl")


def _read_static(href: str, stac_io: StacApiIO | None = None) -> list[pystac.Item]:
    """Items of a static STAC file: a local path, or a URL whose first read goes through ``stac_io``
    (with retries); links below it are followed with pystac's own reader."""
    try:
        text = stac_io.read_text(href) if stac_io else Path(href).read_text()
        if href.endswith((".ndjson", ".jsonl")):
            lines = (line for line in text.splitlines() if line.strip())
            return [pystac.Item.from_dict(json.loads(line)) for line in lines]
        return _items_of(pystac.read_dict(json.loads(text), href=href))
    except (pystac.STACError, ValueError, KeyError) as err:
        raise InputError(
            f"{href} is not a STAC catalog, collection, item collection or item: {err}"
        ) from err


def _read_local(path: Path) -> list[pystac.Item]:
    if not path.exists():
        raise InputError(f"STAC source {path} does not exist")
    return _read_static(str(path))


def _items_of(obj: object) -> list[pystac.Item]:
    if isinstance(obj, pystac.Item):
        return [obj]
    if isinstance(obj, pystac.ItemCollection):
        return list(obj.items)
    if isinstance(obj, pystac.Catalog):  # also a Collection
        return list(obj.get_items(recursive=True))
    raise InputError(f"cannot read STAC items from a {type(obj).__name__}")


def search_items(
    source: StacSource,
    *,
    collections: Sequence[str] | str | None = None,
    bbox: Sequence[float] | None = None,
    datetime: Any = None,
    ids: Sequence[str] | None = None,
    max_items: int | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 30.0,
) -> list[pystac.Item]:
    """Find the STAC items of ``source`` matching the filters (the search half of :func:`open_stac`).

    An API is searched (GET/POST /search, with ``retries`` retries and exponential ``backoff`` seconds on
    connection failures and 429/5xx answers); static sources are filtered locally with the same
    semantics: ``bbox`` in lon/lat degrees intersecting the item footprint, ``datetime`` a datetime,
    ``"2020"``, ``"2010/2015"``, ``"2012-07-31/.."`` or a ``(start, end)`` pair.

    Raises :class:`~geosam.errors.CollectionNotFoundError`, :class:`~geosam.errors.NoItemsError`
    (naming the search and the extent that does exist) or :class:`~geosam.errors.StacServerError`.

    >>> items = search_items("catalog/collection.json", bbox=[-99.2, 47.0, -99.1, 47.1])  # doctest: +SKIP
    """
    if isinstance(collections, str):
        collections = [collections]
    params = _search_parameters(collections, bbox, datetime, ids)
    if _is_url(source) and urlparse(str(source)).path.endswith(_STATIC_SUFFIXES):
        url = str(source)  # a static catalog/collection/item file on a web server
        try:
            items = _filter_items(
                _read_static(url, _stac_io(retries, backoff, timeout)), params, url
            )
        except APIError as err:
            raise _server_error(url, err, retries) from err
        return items[:max_items] if max_items else items
    if _is_url(source):
        return _search_api(str(source), params, max_items, retries, backoff, timeout)
    if isinstance(source, str | os.PathLike):
        path = Path(str(source).removeprefix("file://"))
        items = _filter_items(_read_local(path), params, str(source))
    elif isinstance(source, pystac.ItemCollection | pystac.Catalog):
        items = _filter_items(_items_of(source), params, source)
    elif (
        isinstance(source, Sequence)
        and not isinstance(source, str)
        and all(isinstance(i, pystac.Item) for i in source)
    ):
        if not source:
            raise NoItemsError("the list of STAC items to load is empty")
        items = _filter_items(list(source), params, source)
    else:
        raise InputError(
            "source must be a STAC API URL, a path to a STAC catalog/collection/item collection/.ndjson file, "
            f"a pystac.ItemCollection or a list of pystac.Item; got {type(source).__name__}"
        )
    return items[:max_items] if max_items else items


def _scaling(plan: BandPlan) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """Per band: the one (scale, offset) all items share, or the bands whose items disagree."""
    uniform: dict[str, tuple[float, float]] = {}
    varying: list[str] = []
    for name, band in plan.selection.items():
        pairs = {scale_offset(item, band) for item in plan.items}
        if len(pairs) == 1:
            uniform[name] = pairs.pop()
        else:
            varying.append(name)
    return uniform, varying


def _load_with_varying_scaling(
    items: list[pystac.Item], plan: BandPlan, varying: list[str], load: Any
) -> xr.Dataset:
    """Items whose scale/offset differ (e.g. Sentinel-2 across baseline 04.00): load them as per-time
    properties and convert those bands to float32 physical values (nodata -> NaN)."""
    patched = []
    for item in items:
        clone = item.clone()
        for name in varying:
            scale, offset = scale_offset(item, plan.selection[name])
            clone.properties[f"geosam:scale_{name}"] = scale
            clone.properties[f"geosam:offset_{name}"] = offset
        patched.append(clone)
    props = [f"geosam:{kind}_{name}" for name in varying for kind in ("scale", "offset")]
    ds = load(patched, with_properties=props)
    for name in varying:
        key = plan.selection[name].odc_name
        raw = ds[key]
        scale, offset = ds[f"geosam_scale_{name}"], ds[f"geosam_offset_{name}"]
        nodata = raw.attrs.get("nodata")
        valid = raw != nodata if nodata is not None else xr.ones_like(raw, dtype=bool)
        physical = (raw.astype("float32") * scale + offset).where(valid).astype("float32")
        ds[key] = physical.assign_attrs(
            {k: v for k, v in raw.attrs.items() if k != "nodata"}, nodata=np.nan
        )
        ds = ds.drop_vars([f"geosam_scale_{name}", f"geosam_offset_{name}"])
    return ds


def _native_anchor(item: pystac.Item) -> Any:
    """Pixel-grid alignment of ``item``'s own ``proj:transform``, so that loading at the native CRS
    and resolution reads its pixels as they are instead of resampling onto a grid snapped to whole
    multiples of the resolution (which shifts it by a fraction of a pixel and adds a row/column)."""
    transform = item.properties.get("proj:transform")
    if transform is None:
        transform = next(
            (
                a.extra_fields["proj:transform"]
                for a in item.assets.values()
                if "proj:transform" in a.extra_fields
            ),
            None,
        )
    if transform is None or len(transform) < 6 or not transform[0] or not transform[4]:
        return None
    from odc.geo import xy_

    return xy_((transform[2] / abs(transform[0])) % 1.0, (transform[5] / abs(transform[4])) % 1.0)


def open_stac(
    source: StacSource,
    *,
    collections: Sequence[str] | str | None = None,
    bbox: Sequence[float] | None = None,
    datetime: Any = None,
    bands: Sequence[str] | str | None = None,
    resolution: float | None = None,
    crs: Any = None,
    chunks: Mapping[str, int | str] | None = None,
    groupby: str | None = "solar_day",
    ids: Sequence[str] | None = None,
    max_items: int | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 30.0,
    **load_kwargs: Any,
) -> xr.Dataset:
    """Search ``source`` for STAC items and load them lazily (dask) as one georeferenced Dataset.

    - ``bands``: names to load, matched against common names (``"red"``, ``"nir"``), band names, asset
      keys and odc-stac's ``asset.N``; each becomes a data variable of that name. Default: ``red``,
      ``green``, ``blue`` by common name, else the first three bands of a ``visual`` asset, else the single
      band of one-band (e.g. panchromatic) items.
    - ``bbox`` (lon/lat) both filters the search and crops the loaded grid; ``crs``/``resolution`` reproject
      (default: the items' own CRS and resolution); ``chunks`` defaults to :data:`DEFAULT_CHUNKS`.
    - ``groupby`` is odc-stac's: ``"solar_day"`` (default: tiles of one pass become one time step),
      ``"time"``, ``"id"`` or an item property. The ``time`` dimension is always kept.
    - Integer bands keep their stored values; a scale/offset from ``raster:bands`` (or the Sentinel-2 L2A
      processing baseline) is recorded as ``scale_factor``/``add_offset`` attributes, which
      :func:`geosam.imagery.to_rgb8` applies. Where items disagree, the band is converted to float32
      physical values instead. ``nodata`` attributes come from ``raster:bands``.
    - Further keyword arguments go to :func:`odc.stac.load` (``resampling``, ``geobox``, ``like``, ...).

    The CRS is a CF ``spatial_ref`` coordinate: ``ds.odc.crs`` and ``ds.rio.crs`` both work.

    >>> ds = open_stac(items, bands=["red", "green", "blue", "nir"])    # doctest: +SKIP
    >>> ds = open_stac("https://earth-search.aws.element84.com/v1", collections="sentinel-2-l2a",
    ...                bbox=[11.0, 46.0, 11.1, 46.1], datetime="2023-07")   # doctest: +SKIP
    """
    items = search_items(
        source,
        collections=collections,
        bbox=bbox,
        datetime=datetime,
        ids=ids,
        max_items=max_items,
        retries=retries,
        backoff=backoff,
        timeout=timeout,
    )
    # APIs return items in their own order (rustac: as loaded, pgstac: newest first) and odc-stac takes
    # the output grid from the first item: sort so that a query gives the same grid from any server
    items = sorted(items, key=lambda item: (_item_times(item)[0], item.id))
    plan = plan_bands(items, bands)

    grid: dict[str, Any] = {"bbox": list(bbox)} if bbox is not None else {}
    if crs is not None:
        grid["crs"] = crs
    if resolution is not None:
        grid["resolution"] = resolution
    if crs is None and resolution is None and not {"anchor", "geobox", "like"} & set(load_kwargs):
        anchor = _native_anchor(plan.items[0])
        if anchor is not None:
            grid["anchor"] = anchor

    def load(load_items: list[pystac.Item], **extra: Any) -> xr.Dataset:
        return odc.stac.load(
            load_items,
            bands=plan.odc_names,
            chunks=dict(chunks) if chunks is not None else dict(DEFAULT_CHUNKS),  # type: ignore[arg-type]
            groupby=groupby,
            **grid,
            **load_kwargs,
            **extra,
        )

    uniform, varying = _scaling(plan)
    ds = (
        _load_with_varying_scaling(plan.items, plan, varying, load) if varying else load(plan.items)
    )
    ds = ds.rename(
        {band.odc_name: name for name, band in plan.selection.items() if band.odc_name != name}
    )
    for name, band in plan.selection.items():
        if band.common_name:
            ds[name].attrs["common_name"] = band.common_name
        scale, offset = uniform.get(name, (1.0, 0.0))
        if (scale, offset) != (1.0, 0.0):
            ds[name].attrs.update(scale_factor=scale, add_offset=offset)
    ds.attrs.update(
        stac_source=_source_name(source),
        stac_items=len(items),
    )
    return ds
