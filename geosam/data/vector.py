"""Importers of vector labels: georeferenced geometries over a raster (GeoJSON, GeoDataFrame), and
pixel box tables (NEON/DeepForest csv)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from shapely.affinity import affine_transform
from shapely.geometry import box

from geosam.data._common import ClassMap, guess_split, to_class
from geosam.data.images import read_header
from geosam.data.instances import DroppedLabels, InstanceTable, image_record
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

    The labels are reprojected to the raster's CRS and mapped through its affine transform; so
    :func:`geosam.data.rasterize` of the result equals ``rasterio.features.rasterize`` of the labels
    with the raster's transform. A label partly outside the raster is kept whole (chips record the
    fraction in view); labels wholly outside are dropped with a warning, and an error is raised if
    none falls on the raster. Every pixel without a label counts as showing none of the labelled
    classes. Each feature gets ``class_name``, or the label in ``class_column`` (``class_map`` keys
    may be the column's numbers or strings). Lines and points are widened by ``buffer_m`` metres (in
    their UTM zone, so true metres in any CRS; required for them).

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
    _check_degrees(gdf)
    if class_column is not None:
        missing = int(gdf[class_column].isna().sum())
        if missing:
            raise InputError(f"{missing} of {len(gdf)} features have no value in column {class_column!r}: drop "
                             "or fill them (an unlabelled feature cannot say what it is)")
    if class_map is not None:
        class_map = {_label_text(k): v for k, v in class_map.items()}
    if buffer_m is not None:
        gdf = _buffer_thin(gdf, buffer_m)
    gdf = gdf.to_crs(crs)
    inverse = ~transform
    matrix = [inverse.a, inverse.b, inverse.d, inverse.e, inverse.xoff, inverse.yoff]
    pixel_m = _pixel_size_m(transform, crs, gdf)
    split = split or guess_split(raster.parent)
    instances: list[dict[str, Any]] = []
    labelled: set[str] = set()
    dropped = DroppedLabels(labels if not isinstance(labels, gpd.GeoDataFrame) else "the labels")
    for number, (value, geom) in enumerate(
        zip(gdf[class_column] if class_column else [class_name] * len(gdf), gdf.geometry, strict=True), 1
    ):
        label = _label_text(value)
        canonical = to_class(label, class_map)
        if canonical is None or geom is None or geom.is_empty:
            continue
        labelled.add(canonical)
        if _is_thin(geom):
            raise InputError(f"feature {number} ({geom.geom_type}) has lines or points: pass buffer_m= to give "
                             "them a width")
        pix = shapely.make_valid(affine_transform(geom, matrix))
        if not dropped.keep(pix, width, height, f"feature {number}"):
            continue
        instances.append({"image": str(raster), "class_name": canonical, "label": label,
                          "kind": "polygon", "instance": number, "difficult": False, "geometry": pix})
    if labelled and not instances:
        raise InputError(f"none of the {dropped.checked} labels falls on {raster}: they cover another area "
                         "(or are in another CRS than they declare)")
    dropped.warn()
    images = [image_record(raster, width, height, source=source, licence=licence, split=split,
                           labelled=labelled, gsd=pixel_m)]
    return InstanceTable.from_records(images, instances)


def _label_text(value: Any) -> str:
    """A class column's value as text: whole numbers without a decimal point (1.0 -> "1")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_degrees(gdf: gpd.GeoDataFrame) -> None:
    """Refuse coordinates that cannot be the degrees their CRS says: GeoJSON without a ``crs`` member
    is read as longitude/latitude (RFC 7946) even when it was written in metres."""
    if not gdf.crs.is_geographic or gdf.empty:
        return
    x0, y0, x1, y1 = gdf.total_bounds
    if min(x0, y0) < -180 or x1 > 180 or y1 > 90 or y0 < -90:
        raise InputError(f"the labels' CRS is {gdf.crs.to_string()} (degrees) but their coordinates reach "
                         f"({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}): probably metres of a projected CRS that the "
                         "file does not declare; set it (gdf.set_crs(..., allow_override=True))")


_THIN = ("LineString", "MultiLineString", "Point", "MultiPoint")


def _buffer_thin(gdf: gpd.GeoDataFrame, buffer_m: float) -> gpd.GeoDataFrame:
    """Lines and points widened by ``buffer_m`` metres, in the UTM zone of the labels: true metres
    whatever the label and raster CRSs (degrees are not the same length east and north)."""
    thin = np.array([g is not None and _is_thin(g) for g in gdf.geometry])
    if not thin.any():
        return gdf
    metric = gdf.estimate_utm_crs()
    widened = gdf.geometry[thin].to_crs(metric).apply(lambda g: _widen(g, buffer_m)).set_crs(metric)
    widened = widened.to_crs(gdf.crs)
    out = gdf.copy()
    out.loc[thin, out.geometry.name] = widened.to_numpy()
    return out


def _is_thin(geom: shapely.Geometry) -> bool:
    """Whether ``geom`` is or holds lines or points (which have no area to rasterize)."""
    if geom.geom_type == "GeometryCollection":
        return any(_is_thin(g) for g in geom.geoms)
    return geom.geom_type in _THIN


def _widen(geom: shapely.Geometry, distance: float) -> shapely.Geometry:
    """``geom`` with its lines and points buffered by ``distance`` (polygons kept as they are)."""
    if geom.geom_type == "GeometryCollection":
        return shapely.union_all([_widen(g, distance) for g in geom.geoms])
    return geom.buffer(distance) if geom.geom_type in _THIN else geom


def _pixel_size_m(transform: rasterio.Affine, crs: Any, gdf: gpd.GeoDataFrame) -> float:
    """The ground sample distance in metres: the square root of the pixel's area."""
    size_x, size_y = math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e)
    if crs.is_geographic:
        lat = float(gdf.geometry.union_all().centroid.y) if len(gdf) else 0.0
        # metres per degree east (shrinking with latitude) and north (WGS84, about constant)
        return math.sqrt(size_x * 111_320.0 * math.cos(math.radians(lat)) * size_y * 110_574.0)
    factor = float(crs.linear_units_factor[1]) if crs.linear_units_factor else 1.0
    return math.sqrt(size_x * size_y) * factor


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
