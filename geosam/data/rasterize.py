"""Masks from instance geometries (pixel coordinates), through ``rasterio.features.rasterize``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple, overload

import geopandas as gpd
import numpy as np
import rasterio.features
import shapely
from rasterio import Affine
from scipy import ndimage

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
        return rasterize_separated(geoms, shape, transform=transform)[0]
    return _burn(geoms, shape, transform)


def _pixel_window(
    geom: shapely.Geometry, shape: tuple[int, int], transform: Affine | None, margin: int = 1
) -> tuple[slice, slice] | None:
    """Rows and columns of ``shape`` that ``geom`` can touch (``margin`` pixels around), or None."""
    x0, y0, x1, y1 = geom.bounds
    if transform is not None:
        inverse = ~transform
        corners = [inverse @ (x, y) for x in (x0, x1) for y in (y0, y1)]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    c0, r0 = max(int(np.floor(x0)) - margin, 0), max(int(np.floor(y0)) - margin, 0)
    c1, r1 = min(int(np.ceil(x1)) + margin, shape[1]), min(int(np.ceil(y1)) + margin, shape[0])
    if c1 <= c0 or r1 <= r0:
        return None
    return slice(r0, r1), slice(c0, c1)


class Separated(NamedTuple):
    """Masks of :func:`rasterize_separated`, each ``H x W`` bool."""

    mask: np.ndarray  # the union without overlaps and without interface pixels
    seams: np.ndarray  # background that keeps neighbours apart (not in ``mask``)
    contact: np.ndarray  # pixels, in an object or not, within ``gap`` of two instances


def rasterize_separated(
    geoms: Sequence[shapely.Geometry], shape: tuple[int, int], *, transform: Affine | None = None, gap: int = 0
) -> Separated:
    """``(mask, seams, contact)``: the union of the geometries' masks without overlaps and without pixels
    on an interface between two instances (4- and 8-neighbours), i.e. a two-pixel seam between
    touching objects (``rasterize(..., separate=True)`` is ``mask``), and the background that keeps
    neighbours apart: the removed pixels, and with ``gap > 0`` also the background pixels within
    ``gap`` pixels of two different instances. A training loss can weight ``seams`` up, so that the
    model learns to keep neighbours apart rather than to paint one blob over a row of parked aircraft.
    ``contact`` (the target of a contact head) is wider where objects touch: every pixel within
    ``gap`` pixels of two instances, inside an object or not, and the removed pixels.

    >>> from shapely.geometry import box
    >>> mask, seams, _ = rasterize_separated([box(0, 0, 4, 4), box(4, 0, 8, 4)], (4, 8))
    >>> mask[0].astype(int).tolist(), seams[0].astype(int).tolist()
    ([1, 1, 1, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0, 0, 0])
    >>> rasterize_separated([box(0, 0, 3, 4), box(5, 0, 8, 4)], (4, 8), gap=2)[1][0].astype(int).tolist()
    [0, 0, 0, 1, 1, 0, 0, 0]
    """
    if gap < 0:
        raise ValueError(f"gap must be >= 0 pixels, got {gap}")
    # Each geometry is burnt only in its own bounding window: a chip of a marina holds a hundred
    # boats, and full-size masks per boat made this the slowest step of loading a training sample.
    labels = np.zeros(shape, dtype=np.int32)  # the first instance that covers a pixel
    count = np.zeros(shape, dtype=np.int32)
    near = np.zeros(shape, dtype=np.int32)  # instances within `gap` pixels
    disk = ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), gap) if gap else None
    base = transform or Affine.identity()
    for i, geom in enumerate(geoms, start=1):
        if geom is None or geom.is_empty:
            continue
        window = _pixel_window(geom, shape, transform, margin=1 + gap)
        if window is None:
            continue
        rows, cols = window
        local = base @ Affine.translation(cols.start, rows.start)
        mask = _burn([geom], (rows.stop - rows.start, cols.stop - cols.start), local)
        count[window] += mask
        view = labels[window]
        view[mask & (view == 0)] = i
        if disk is not None:
            near[window] += ndimage.binary_dilation(mask, disk)
    keep = count == 1
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = labels[: labels.shape[0] - dy, max(dx, 0) : labels.shape[1] + min(dx, 0)]
        b = labels[dy:, max(-dx, 0) : labels.shape[1] + min(-dx, 0)]
        interface = (a != b) & (a > 0) & (b > 0)
        keep[: labels.shape[0] - dy, max(dx, 0) : labels.shape[1] + min(dx, 0)] &= ~interface
        keep[dy:, max(-dx, 0) : labels.shape[1] + min(-dx, 0)] &= ~interface
    seams = (count > 0) & ~keep
    contact = seams.copy()
    if disk is not None:
        seams |= (count == 0) & (near >= 2)
        contact |= near >= 2
    return Separated(keep, seams, contact)
