"""Importers of vector labels: georeferenced geometries over a raster (GeoJSON, GeoDataFrame), and
pixel box tables (NEON/DeepForest csv)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import rasterio
import shapely
from shapely.affinity import affine_transform
from shapely.geometry import box

from geosam.data._common import ClassMap, guess_split, to_class
from geosam.data.images import read_header
from geosam.data.instances import InstanceTable, image_record
from geosam.errors import InputError


def read_vector_labels(
    labels: str | Path | gpd.GeoDataFrame,
    raster: str | Path,
    *,
    class_name: str | None = None,
    class_column: str | None = None,
    buffer_m: float | None = None,
    source: str = "vector",
    licence: str = "",
    split: str | None = None,
    class_map: ClassMap | None = None,
) -> InstanceTable:
    """Geometries over a georeferenced raster, as instances in the raster's pixel coordinates.

    The labels are reprojected to the raster's CRS, mapped through its affine transform and clipped
    to it; so :func:`geosam.data.rasterize` of the result equals ``rasterio.features.rasterize`` of
    the labels with the raster's transform. Each feature gets ``class_name``, or the label in
    ``class_column``. Lines and points are buffered by ``buffer_m`` metres (required for them).

    >>> read_vector_labels("spacenet/geotiff_labels.geojson", "spacenet/sample_geotiff.tif",
    ...                    class_name="building")   # doctest: +SKIP
    """
    gdf = labels if isinstance(labels, gpd.GeoDataFrame) else gpd.read_file(labels)
    if (class_name is None) == (class_column is None):
        raise InputError("give exactly one of class_name (one class for all) or class_column")
    if class_column is not None and class_column not in gdf.columns:
        raise InputError(f"column {class_column!r} not in the labels; columns: {list(gdf.columns)}")
    raster = Path(raster)
    with rasterio.open(raster) as src:
        crs, transform, width, height = src.crs, src.transform, src.width, src.height
    if crs is None:
        raise InputError(f"{raster} has no CRS: cannot place georeferenced labels on it")
    if gdf.crs is None:
        raise InputError("the labels have no CRS; set it (gdf.set_crs(...)) before importing")
    gdf = gdf.to_crs(crs)
    inverse = ~transform
    matrix = [inverse.a, inverse.b, inverse.d, inverse.e, inverse.xoff, inverse.yoff]
    pixel_m = _pixel_size_m(transform, crs, gdf)
    frame = box(0, 0, width, height)
    split = split or guess_split(raster.parent)
    instances: list[dict[str, Any]] = []
    labelled: set[str] = set()
    for number, (label, geom) in enumerate(
        zip(gdf[class_column] if class_column else [class_name] * len(gdf), gdf.geometry, strict=True), 1
    ):
        canonical = to_class(str(label), class_map)
        if canonical is None or geom is None or geom.is_empty:
            continue
        labelled.add(canonical)
        pix = affine_transform(geom, matrix)
        if pix.geom_type in ("LineString", "MultiLineString", "Point", "MultiPoint"):
            if buffer_m is None:
                raise InputError(f"feature {number} is a {pix.geom_type}: pass buffer_m= to give it a width")
            pix = pix.buffer(buffer_m / pixel_m)
        pix = shapely.make_valid(pix).intersection(frame)
        if pix.is_empty or pix.area == 0:
            continue
        instances.append({"image": str(raster), "class_name": canonical, "label": str(label),
                          "kind": "polygon", "instance": number, "difficult": False, "geometry": pix})
    images = [image_record(raster, width, height, source=source, licence=licence, split=split,
                           labelled=labelled, gsd=pixel_m)]
    return InstanceTable.from_records(images, instances)


def _pixel_size_m(transform: rasterio.Affine, crs: Any, gdf: gpd.GeoDataFrame) -> float:
    size = math.sqrt(abs(transform.a * transform.e - transform.b * transform.d))
    if crs.is_geographic:
        lat = float(gdf.geometry.union_all().centroid.y) if len(gdf) else 0.0
        return size * 111_320.0 * math.cos(math.radians(lat))
    return size * float(crs.linear_units_factor[1]) if crs.linear_units_factor else size


def read_box_csv(
    path: str | Path,
    *,
    image_dir: str | Path | None = None,
    source: str = "boxes",
    licence: str = "",
    split: str | None = None,
    gsd: float | None = None,
    class_map: ClassMap | None = None,
) -> InstanceTable:
    """Pixel boxes from a csv with ``image_path,xmin,ymin,xmax,ymax,label`` (DeepForest/NEON).

    >>> read_box_csv("neon/OSBS_029.csv", source="neon").class_counts()   # doctest: +SKIP
    {'tree': 61}
    """
    path = Path(path)
    frame = pd.read_csv(path)
    need = {"image_path", "xmin", "ymin", "xmax", "ymax", "label"}
    if not need <= set(frame.columns):
        raise InputError(f"{path} needs the columns {sorted(need)}, has {list(frame.columns)}")
    image_dir = Path(image_dir) if image_dir is not None else path.parent
    images: dict[str, dict[str, Any]] = {}
    instances: list[dict[str, Any]] = []
    classes = {str(lbl): to_class(str(lbl), class_map) for lbl in frame["label"].unique()}
    labelled = {c for c in classes.values() if c is not None}
    for number, row in enumerate(frame.itertuples(index=False), 1):
        image = image_dir / str(row.image_path)
        if str(image) not in images:
            width, height = read_header(image).size
            images[str(image)] = image_record(image, width, height, source=source, licence=licence,
                                              split=split or guess_split(path.parent), labelled=labelled,
                                              gsd=gsd)
        class_name = classes[str(row.label)]
        if class_name is None:
            continue
        instances.append({"image": str(image), "class_name": class_name, "label": str(row.label),
                          "kind": "box", "instance": number, "difficult": False,
                          "geometry": box(*(float(v) for v in (row.xmin, row.ymin, row.xmax, row.ymax)))})  # type: ignore[arg-type]
    return InstanceTable.from_records(list(images.values()), instances)
