"""Write STAC metadata for local rasters: items, a collection, static catalogs and STAC API load files.

This is how geosam's sample data, its tests and anyone with a folder of GeoTIFFs get STAC items that
:func:`geosam.open_stac` (odc-stac underneath) loads correctly: every asset carries ``proj:*`` grid
metadata, ``eo:bands`` with common names (so ``red``/``green``/``blue`` are found by name) and
``raster:bands`` with the data type, nodata and scale/offset (odc-stac 0.5 reads only band 1 of a
multi-band asset without them).

>>> from geosam.stac_catalog import raster_item, write_api_files
>>> item = raster_item({"image": "naip.tif"}, datetime="2020-08-31",
...                    common_names={"image": ["red", "green", "blue", "nir"]})  # doctest: +SKIP
>>> files = write_api_files([item], "stac/", collection_id="naip")  # doctest: +SKIP
>>> files.collection, files.items   # rustac serve collection.json items.ndjson  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
import rasterio
import rasterio.warp
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension
from shapely.geometry import box, mapping, shape

from geosam.errors import InputError

__all__ = [
    "ApiFiles",
    "RasterAsset",
    "build_collection",
    "raster_item",
    "write_api_files",
    "write_static_catalog",
]

_COG_MEDIA_TYPE = str(pystac.MediaType.COG)


@dataclass(frozen=True)
class RasterAsset:
    """One raster file of an item, with what its bands are.

    ``common_names`` gives one STAC common name per band (``"red"``, ``"nir"``, ``"pan"`` ... or None);
    ``scale``/``offset`` turn stored values into physical ones (``value * scale + offset``), as
    ``raster:bands`` records them (Sentinel-2 L2A: scale 1e-4, offset -0.1).
    """

    path: str | Path
    common_names: Sequence[str | None] = ()
    band_names: Sequence[str] | None = None
    scale: float | None = None
    offset: float | None = None
    roles: Sequence[str] = field(default_factory=lambda: ("data",))
    title: str | None = None


def _file_uri(path: str | Path) -> str:
    """A ``file:///`` URI: bare absolute paths behind an API are resolved against the server's URL."""
    return Path(path).resolve().as_uri()


def _as_datetime(value: str | dt.datetime | dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def raster_item(
    assets: Mapping[str, str | Path | RasterAsset],
    *,
    datetime: str | dt.datetime | dt.date,
    item_id: str | None = None,
    collection: str | None = None,
    common_names: Mapping[str, Sequence[str | None]] | None = None,
    properties: Mapping[str, Any] | None = None,
) -> pystac.Item:
    """Build a STAC item (proj, eo and raster extensions) for one or more GeoTIFF/COG files on one grid.

    Asset hrefs are ``file:///`` URIs. The footprint is the first asset's bounds in EPSG:4326.

    >>> item = raster_item({"image": "m_4709963_se_14_1_20200831.tif"}, datetime="2020-08-31",
    ...                    common_names={"image": ["red", "green", "blue", "nir"]})  # doctest: +SKIP
    """
    if not assets:
        raise InputError("raster_item needs at least one asset")
    specs = {
        key: spec
        if isinstance(spec, RasterAsset)
        else RasterAsset(spec, (common_names or {}).get(key, ()))
        for key, spec in assets.items()
    }
    first = next(iter(specs.values()))
    with rasterio.open(first.path) as src:
        if src.crs is None:
            raise InputError(f"{first.path} has no CRS: STAC items need a georeferenced raster")
        west, south, east, north = rasterio.warp.transform_bounds(
            src.crs, "EPSG:4326", *src.bounds, densify_pts=21
        )
        epsg = src.crs.to_epsg()
        grid = {
            "shape": [src.height, src.width],
            "transform": list(src.transform)[:6],
            "bbox": list(src.bounds),
        }
        crs_wkt = None if epsg else src.crs.to_wkt()
    item = pystac.Item(
        id=item_id or Path(first.path).stem,
        geometry=mapping(box(west, south, east, north)),
        bbox=[west, south, east, north],
        datetime=_as_datetime(datetime),
        properties=dict(properties or {}),
        collection=collection,
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg = epsg
    if crs_wkt is not None:
        proj.wkt2 = crs_wkt
    proj.shape, proj.transform, proj.bbox = grid["shape"], grid["transform"], grid["bbox"]
    for key, spec in specs.items():
        _add_raster_asset(item, key, spec)
    return item


def _add_raster_asset(item: pystac.Item, key: str, spec: RasterAsset) -> None:
    with rasterio.open(spec.path) as src:
        count, dtypes, nodata, res = src.count, src.dtypes, src.nodata, abs(src.transform.a)
    names = list(spec.common_names)
    if names and len(names) != count:
        raise InputError(
            f"{spec.path} has {count} bands but {len(names)} common names were given: {names}"
        )
    asset = pystac.Asset(
        href=_file_uri(spec.path),
        media_type=_COG_MEDIA_TYPE,
        roles=list(spec.roles),
        title=spec.title,
    )
    item.add_asset(key, asset)
    band_names = list(
        spec.band_names or [n or f"b{i + 1}" for i, n in enumerate(names or [None] * count)]
    )
    EOExtension.ext(asset, add_if_missing=True).bands = [
        Band.create(name=band_names[i], common_name=names[i] if names else None)
        for i in range(count)
    ]
    RasterExtension.ext(asset, add_if_missing=True).bands = [
        RasterBand.create(
            data_type=dtypes[i],
            nodata=nodata,
            spatial_resolution=res,
            scale=spec.scale,
            offset=spec.offset,
        )
        for i in range(count)
    ]


def build_collection(
    items: Sequence[pystac.Item],
    collection_id: str,
    *,
    description: str | None = None,
    title: str | None = None,
    license: str = "other",
) -> pystac.Collection:
    """A collection whose spatial and temporal extent covers ``items`` (and sets their collection id)."""
    if not items:
        raise InputError("build_collection needs at least one item")
    footprint = shape(items[0].geometry)
    for item in items[1:]:
        footprint = footprint.union(shape(item.geometry))
    times = sorted(item.datetime for item in items if item.datetime is not None)
    collection = pystac.Collection(
        id=collection_id,
        description=description or f"{len(items)} items",
        title=title,
        license=license,
        extent=pystac.Extent(
            pystac.SpatialExtent([list(footprint.bounds)]),
            pystac.TemporalExtent([[times[0] if times else None, times[-1] if times else None]]),
        ),
    )
    for item in items:
        item.collection_id = collection_id
    return collection


@dataclass(frozen=True)
class ApiFiles:
    """The two files a STAC API server loads: ``rustac serve collection.json items.ndjson``."""

    collection: Path
    items: Path

    def serve_args(self) -> list[str]:
        """The positional arguments of ``rustac serve``."""
        return [str(self.collection), str(self.items)]


def write_api_files(
    items: Sequence[pystac.Item],
    directory: str | Path,
    *,
    collection_id: str,
    description: str | None = None,
    title: str | None = None,
    license: str = "other",
) -> ApiFiles:
    """Write ``collection.json`` and ``items.ndjson`` (one item per line) for loading into a STAC API.

    Both ``rustac serve`` and ``pypgstac load collections|items`` read these files.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    collection = build_collection(
        items, collection_id, description=description, title=title, license=license
    )
    collection_dict = collection.to_dict(include_self_link=False, transform_hrefs=False)
    collection_dict["links"] = []
    files = ApiFiles(directory / "collection.json", directory / "items.ndjson")
    files.collection.write_text(json.dumps(collection_dict, indent=1))
    with files.items.open("w") as out:
        for item in items:
            item_dict = item.to_dict(include_self_link=False, transform_hrefs=False)
            item_dict["links"] = []
            item_dict["collection"] = collection_id
            out.write(json.dumps(item_dict) + "\n")
    return files


def write_static_catalog(
    items: Sequence[pystac.Item],
    directory: str | Path,
    *,
    collection_id: str,
    description: str | None = None,
    license: str = "other",
) -> Path:
    """Write a self-contained static STAC collection (``collection.json`` linking item files); returns its path."""
    directory = Path(directory)
    clones = [item.clone() for item in items]
    collection = build_collection(clones, collection_id, description=description, license=license)
    collection.add_items(clones)
    collection.normalize_hrefs(str(directory))
    collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return directory / "collection.json"
