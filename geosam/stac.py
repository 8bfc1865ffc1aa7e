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

import difflib
import functools
import inspect
import json
import math
import numbers
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
from geosam.errors import (
    CollectionNotFoundError,
    GeosamError,
    InputError,
    NoItemsError,
    StacServerError,
)
from geosam.tiling import DEFAULT_CHUNK

__all__ = ["DEFAULT_CHUNKS", "StacSource", "open_stac", "search_items"]

StacSource: TypeAlias = (
    str | os.PathLike[str] | pystac.ItemCollection | pystac.Catalog | Sequence[pystac.Item]
)

#: Spatial chunking when ``chunks`` is not given: one time step and 2048 x 2048 pixels per dask chunk.
DEFAULT_CHUNKS: dict[str, int] = {"time": 1, "x": DEFAULT_CHUNK, "y": DEFAULT_CHUNK}

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
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
    # checked here, not left to the server: an API answers 400 and a static source would match nothing
    start, end = _time_range(params)
    if start is not None and end is not None and start > end:
        raise InputError(
            f"datetime={datetime!r} is an interval whose start ({np.datetime_as_string(start, 's')}) "
            f"is after its end ({np.datetime_as_string(end, 's')}); "
            "write it as 'start/end', e.g. '2010/2020'"
        )
    return params


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


def _api_error(
    url: str,
    err: Exception,
    retries: int,
    request: str,
    params: Mapping[str, Any] | None = None,
    server: str = "STAC API",
) -> GeosamError:
    """The geosam error for a failed request to ``url``: what was asked, what the server answered.

    A 4xx answer (other than 429) rejects the request itself, so it is the caller's input that is wrong
    (an :class:`InputError` with the server's message); it is sent once, never retried. Connection
    failures, 429 and the 5xx of ``_RETRY_STATUSES`` were retried before this; other statuses were not,
    and the message says only what is true.
    """
    status = getattr(err, "status_code", None)
    if status is not None and 400 <= status < 500 and status != 429:
        hint = ""
        bbox = (params or {}).get("bbox")
        if bbox and bbox[0] > bbox[2]:
            hint = (
                f"; note: bbox {bbox} has west > east, which STAC reads as a box crossing the "
                "antimeridian (almost all longitudes here): swap west and east if that is not meant"
            )
        return InputError(f"{server} {url} rejected {request} (HTTP {status}): {err}{hint}")
    retried = f" after {retries} retries with backoff"
    if status is None:
        return StacServerError(f"{server} {url} could not be reached{retried} ({request}): {err}")
    retried = retried if status in _RETRY_STATUSES else ""
    return StacServerError(f"{server} {url} answered HTTP {status} to {request}{retried}: {err}")


def _open_client(url: str, retries: int, backoff: float, timeout: float) -> Client:
    try:
        return Client.open(url, stac_io=_stac_io(retries, backoff, timeout))
    except APIError as err:
        raise _api_error(url, err, retries, "the request for its landing page") from err
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
            raise _api_error(
                url, err, retries, f"the request for collection(s) {list(collections)}"
            ) from err
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
        filters = ", ".join(f"{k}={v}" for k, v in params.items())
        request = f"the search with {filters}" if filters else "the search"
        raise _api_error(url, err, retries, request, params) from err
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
    obj: object = None
    try:
        text = stac_io.read_text(href) if stac_io else Path(href).read_text()
        if href.endswith((".ndjson", ".jsonl")):
            lines = (line for line in text.splitlines() if line.strip())
            items = [pystac.Item.from_dict(json.loads(line)) for line in lines]
        else:
            obj = pystac.read_dict(json.loads(text), href=href)
            items = _items_of(obj)
    except (pystac.STACError, ValueError, KeyError) as err:
        raise InputError(
            f"{href} is not a STAC catalog, collection, item collection or item: {err}"
        ) from err
    if not items:
        raise _no_items_error(obj, href, None if stac_io else Path(href).parent)
    return items


def _no_items_error(
    obj: object, href: str | None = None, directory: Path | None = None
) -> NoItemsError:
    """Say that a source holds no items at all, rather than blaming the filters for matching none.

    A ``collection.json`` written for a STAC API (``write_api_files``, ``demo_catalog``) has no links by
    design: its items are in the ``.ndjson`` file beside it, which is named when ``directory`` has one.
    """
    if isinstance(obj, pystac.Catalog):
        what = f"STAC {type(obj).__name__} {obj.id!r}"
        message = f"{href} ({what})" if href else what
        message += " links no items (no 'item' links, nor child catalogs that have any)"
    else:
        message = f"{href or 'the ItemCollection'} holds no STAC items"
    siblings = sorted(
        p
        for p in (directory.iterdir() if directory is not None and directory.is_dir() else ())
        if p.suffix in (".ndjson", ".jsonl")
    )
    if siblings and isinstance(obj, pystac.Catalog):
        message += (
            f". Its items are probably in {siblings[0]}: a collection.json beside an items.ndjson is "
            "the pair a STAC API loads (written by geosam.stac_catalog.write_api_files and "
            "geosam.sample_data.demo_catalog), not a static catalog. Open the items file instead, "
            f"geosam.open_stac({str(siblings[0])!r}, ...), or serve the pair with "
            "geosam.stac_server.serve_rustac"
        )
    return NoItemsError(message)


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
            raise _api_error(url, err, retries, "the request", server="web server") from err
        return items[:max_items] if max_items else items
    if _is_url(source):
        return _search_api(str(source), params, max_items, retries, backoff, timeout)
    if isinstance(source, str | os.PathLike):
        path = Path(str(source).removeprefix("file://"))
        items = _filter_items(_read_local(path), params, str(source))
    elif isinstance(source, pystac.ItemCollection | pystac.Catalog):
        items = _items_of(source)
        if not items:
            raise _no_items_error(source)
        items = _filter_items(items, params, source)
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


# odc.stac.load (odc-stac 0.5) also reads these from its **kw, outside its signature.
_ODC_LOAD_KW = frozenset({"nodata", "use_overviews", "align", "debug"})
# datacube-style names odc.stac.load takes for arguments that open_stac names (and sets) itself
_ODC_LOAD_ALIASES = {"measurements": "bands", "output_crs": "crs"}


@functools.cache
def _keywords() -> tuple[frozenset[str], frozenset[str]]:
    """open_stac's own keyword names, and those it may pass on to odc.stac.load."""

    def named(func: Any) -> set[str]:
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {p.name for p in inspect.signature(func).parameters.values() if p.kind in kinds}

    own = named(open_stac) - {"source"}
    return frozenset(own), frozenset((named(odc.stac.load) | _ODC_LOAD_KW) - own - {"items"})


def _check_load_kwargs(load_kwargs: Mapping[str, Any]) -> None:
    """Refuse keywords that neither open_stac nor odc.stac.load knows.

    odc.stac.load takes ``**kw`` and silently ignores names it does not read, so a misspelt
    ``collection=`` would otherwise load every collection of the source onto one huge grid.
    """
    own, passed_on = _keywords()
    unknown = [name for name in load_kwargs if name not in passed_on]
    if not unknown:
        return
    hints, guessed = [], True
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(own | passed_on), n=1)
        if name in _ODC_LOAD_ALIASES:
            hints.append(f"{name!r} (open_stac calls it {_ODC_LOAD_ALIASES[name]!r})")
        elif close:
            hints.append(f"{name!r} (did you mean {close[0]!r}?)")
        else:
            hints.append(repr(name))
            guessed = False
    message = f"open_stac() got unexpected keyword argument(s) {', '.join(hints)}"
    if not guessed:
        message += (
            f"; besides its own arguments ({', '.join(sorted(own))}) it passes only these on to "
            f"odc.stac.load: {', '.join(sorted(passed_on))}"
        )
    raise TypeError(message)


def _check_resolution(resolution: object) -> None:
    """A pixel size must be a positive finite number (odc-geo asserts on 0 and flips axes on < 0)."""
    if resolution is None:
        return
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, numbers.Real)
        or not math.isfinite(resolution)
        or resolution <= 0
    ):
        raise InputError(
            "resolution must be a positive number (the pixel size in units of the output CRS, "
            f"metres for UTM), got {resolution!r}"
        )


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

    A keyword neither open_stac nor odc.stac.load knows raises ``TypeError`` (naming the closest one);
    a server answering 4xx to the search raises :class:`~geosam.errors.InputError` with its message.

    >>> ds = open_stac(items, bands=["red", "green", "blue", "nir"])    # doctest: +SKIP
    >>> ds = open_stac("https://earth-search.aws.element84.com/v1", collections="sentinel-2-l2a",
    ...                bbox=[11.0, 46.0, 11.1, 46.1], datetime="2023-07")   # doctest: +SKIP
    """
    _check_load_kwargs(load_kwargs)
    _check_resolution(resolution)
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
        grid["resolution"] = float(resolution)  # odc-geo refuses numpy scalars such as float32
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
