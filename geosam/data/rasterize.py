"""Masks from instance geometries (pixel coordinates), through ``rasterio.features.rasterize``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, overload

import geopandas as gpd
import numpy as np
import rasterio.features
import shapely
from rasterio import Affine

#: Geometries smaller than this (in output pixels) are burnt with ``all_touched`` so that tiny
#: objects (a far-away car) never vanish from their mask.
_TINY_AREA = 4.0


def _burn(
    geoms: Sequence[shapely.Geometry], shape: tuple[int, int], transform: Affine | None
) -> np.ndarray:
    out = np.zeros(shape, dtype=np.uint8)
    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if not geoms:
        return out.astype(bool)
    scale = 1.0 if transform is None else abs(transform.a * transform.e - transform.b * transform.d)
    small = [g for g in geoms if g.area / scale < _TINY_AREA]
    large = [g for g in geoms if g.area / scale >= _TINY_AREA]
    kwargs = {"out_shape": shape, "transform": transform or Affine.identity(), "dtype": "uint8"}
    if large:
        out |= rasterio.features.rasterize([(g, 1) for g in large], **kwargs)
    if small:
        out |= rasterio.features.rasterize([(g, 1) for g in small], all_touched=True, **kwargs)
    return out.astype(bool)


@overload
def rasterize(
    instances: gpd.GeoDataFrame | Iterable[shapely.Geometry],
    shape: tuple[int, int],
    *,
    by: Literal["union"] = "union",
    transform: Affine | None = None,
    separate: bool = False,
) -> np.ndarray: ...
@overload
def rasterize(
    instances: gpd.GeoDataFrame | Iterable[shapely.Geometry],
    shape: tuple[int, int],
    *,
    by: Literal["instance"],
    transform: Affine | None = None,
) -> np.ndarray: ...
@overload
def rasterize(
    instances: gpd.GeoDataFrame,
    shape: tuple[int, int],
    *,
    by: Literal["class"],
    transform: Affine | None = None,
) -> dict[str, np.ndarray]: ...


def rasterize(
    instances: gpd.GeoDataFrame | Iterable[shapely.Geometry],
    shape: tuple[int, int],
    *,
    by: Literal["union", "instance", "class"] = "union",
    transform: Affine | None = None,
    separate: bool = False,
) -> np.ndarray | dict[str, np.ndarray]:
    """Boolean masks of ``shape`` ``(height, width)`` from geometries in pixel coordinates.

    * ``by="union"``: one ``H x W`` mask of everything;
    * ``by="instance"``: an ``N x H x W`` stack, one mask per row (overlaps kept);
    * ``by="class"``: ``{class_name: H x W}`` (needs the ``class_name`` column).

    ``separate=True`` (union only) leaves a background seam where instances touch or overlap, so
    that neighbouring objects (parked planes, cars in a row) stay separate connected components:
    a model trained on such masks keeps instances apart, which mask-to-box detection needs.

    A pixel belongs to a geometry when its centre is inside (tiny geometries: when touched).
    ``transform`` maps output pixel coordinates to the geometries' coordinates, as in rasterio (e.g.
    the raster's transform for georeferenced geometries, or ``Affine.scale(2)`` for half resolution).

    >>> masks = rasterize(table.instances_of(path), (h, w), by="class")   # doctest: +SKIP
    >>> masks["ship"].sum()                                                # doctest: +SKIP
    """
    if by == "class":
        if not isinstance(instances, gpd.GeoDataFrame):
            raise TypeError("by='class' needs a GeoDataFrame with a class_name column")
        return {
            str(name): _burn(list(group.geometry), shape, transform)
            for name, group in instances.groupby("class_name", sort=True)
        }
    geoms = list(instances.geometry) if isinstance(instances, gpd.GeoDataFrame) else list(instances)
    if by == "instance":
        if not geoms:
            return np.zeros((0, *shape), dtype=bool)
        return np.stack([_burn([g], shape, transform) for g in geoms])
    if by != "union":
        raise ValueError(f"by must be 'union', 'instance' or 'class', got {by!r}")
    if separate and len(geoms) > 1:
        return _separated_union(geoms, shape, transform)
    return _burn(geoms, shape, transform)


def _pixel_window(
    geom: shapely.Geometry, shape: tuple[int, int], transform: Affine | None
) -> tuple[slice, slice] | None:
    """Rows and columns of ``shape`` that ``geom`` can touch (one pixel of margin), or None."""
    x0, y0, x1, y1 = geom.bounds
    if transform is not None:
        inverse = ~transform
        corners = [inverse @ (x, y) for x in (x0, x1) for y in (y0, y1)]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    c0, r0 = max(int(np.floor(x0)) - 1, 0), max(int(np.floor(y0)) - 1, 0)
    c1, r1 = min(int(np.ceil(x1)) + 1, shape[1]), min(int(np.ceil(y1)) + 1, shape[0])
    if c1 <= c0 or r1 <= r0:
        return None
    return slice(r0, r1), slice(c0, c1)


def _separated_union(
    geoms: Sequence[shapely.Geometry], shape: tuple[int, int], transform: Affine | None
) -> np.ndarray:
    """Union of the geometries' masks without overlaps and without pixels on an interface between
    two instances (4- and 8-neighbours), i.e. a two-pixel seam between touching objects.

    Each geometry is burnt only in its own bounding window: a chip of a marina holds a hundred
    boats, and full-size masks per boat made this the slowest step of loading a training sample.
    """
    labels = np.zeros(shape, dtype=np.int32)  # the first instance that covers a pixel
    count = np.zeros(shape, dtype=np.int32)
    base = transform or Affine.identity()
    for i, geom in enumerate(geoms, start=1):
        if geom is None or geom.is_empty:
            continue
        window = _pixel_window(geom, shape, transform)
        if window is None:
            continue
        rows, cols = window
        local = base @ Affine.translation(cols.start, rows.start)
        mask = _burn([geom], (rows.stop - rows.start, cols.stop - cols.start), local)
        count[window] += mask
        view = labels[window]
        view[mask & (view == 0)] = i
    keep = count == 1
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = labels[: labels.shape[0] - dy, max(dx, 0) : labels.shape[1] + min(dx, 0)]
        b = labels[dy:, max(-dx, 0) : labels.shape[1] + min(-dx, 0)]
        interface = (a != b) & (a > 0) & (b > 0)
        keep[: labels.shape[0] - dy, max(dx, 0) : labels.shape[1] + min(dx, 0)] &= ~interface
        keep[dy:, max(-dx, 0) : labels.shape[1] + min(-dx, 0)] &= ~interface
    return keep
