"""Polygons and boxes from segmentation results, chunk by chunk, with no seams at chunk borders.

Each dask chunk is vectorized on its own (``scipy.ndimage.label`` and ``rasterio.features.shapes``,
both 4-connected) into polygons in *global pixel* coordinates, where coordinates are exact integers.
A chunk task returns only its polygons, their pixel counts and probability sums, and the labels along
its four edges. The merge step then links labels that face each other across a chunk border
(union-find on the edge strips: the same 4-connectivity as within a chunk), unions the pieces of each
object (exact, since the pieces share integer edges), and only then maps coordinates into the scene's
CRS. Memory is bounded by one chunk plus the polygons themselves.

>>> prob = geosam.segment(ds, "water")                                   # doctest: +SKIP
>>> gdf = to_geodataframe(prob, threshold=0.5)                            # doctest: +SKIP
>>> gdf.columns.tolist()   # ['prompt', 'time', 'score', 'pixels', 'area', 'geometry']  # doctest: +SKIP
>>> gdf.to_parquet("water.parquet")                                      # GeoParquet, CRS kept  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Literal

import dask
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import shapely
import xarray as xr

from geosam._progress import compute as compute_with_progress
from geosam.errors import InputError, MissingCRSError
from geosam.tiling import DEFAULT_CHUNK

__all__ = ["Geometry", "RegionSplit", "boxes", "to_geodataframe"]

Geometry = Literal["polygon", "box", "oriented_box"]
#: How regions are divided after the seam merge: not at all, or at their necks
#: (``"shape"``, :func:`geosam.tasks.boxes.split_at_necks`).
RegionSplit = Literal["shape"] | None


@dataclass
class _ChunkShapes:
    """What one chunk contributes: polygons (WKB, global pixel coordinates) and its edge labels."""

    labels: np.ndarray  # label of each polygon
    wkb: list[bytes]
    pixels: np.ndarray
    prob_sum: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray


def _foreground(
    block: np.ndarray, threshold: float, mask_nodata: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Foreground pixels and the probabilities to average; ``mask_nodata`` is ``None`` for
    probabilities, else the mask's nodata value (NaN if it has none)."""
    if mask_nodata is not None:
        odd = np.unique(block[(block != 0) & (block != 1) & (block != mask_nodata)])
        if odd.size:
            raise InputError(
                f"a mask must hold 0 (background) and 1 (object) only, besides its nodata value; "
                f"found {odd[:5].tolist()}: for imagery run geosam.segment first, for a class map "
                "select one class, e.g. (labels == 3).astype('uint8')"
            )
        fg = block == 1
        return fg, np.where(fg, np.nan, 0.0)  # a mask has no probability to average
    finite = block[np.isfinite(block)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise InputError(
            f"probabilities must lie in [0, 1], found {finite.min():g}..{finite.max():g}: "
            "to_geodataframe takes a geosam.segment result (or a 0/1 mask), not imagery"
        )
    with np.errstate(invalid="ignore"):
        fg = block >= threshold  # NaN (nodata) is never foreground
    return fg, np.where(fg, block, 0.0)


def _chunk_shapes(
    block: np.ndarray, row0: int, col0: int, threshold: float, mask_nodata: float | None
) -> _ChunkShapes:
    import rasterio.features
    from affine import Affine
    from scipy import ndimage

    block = np.asarray(block)
    fg, prob = _foreground(block.reshape(block.shape[-2:]), threshold, mask_nodata)
    labels, count = ndimage.label(fg)  # default structure: 4-connectivity, as rasterio's shapes
    labels = labels.astype(np.int32)
    pixels = np.bincount(labels.ravel(), minlength=count + 1)
    prob_sum = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=count + 1)
    ids, wkb = [], []
    if count:
        shapes = rasterio.features.shapes(
            labels, mask=fg, connectivity=4, transform=Affine.translation(col0, row0)
        )
        for geom, value in shapes:
            ids.append(int(value))
            wkb.append(shapely.to_wkb(shapely.geometry.shape(geom)))
    idx = np.asarray(ids, dtype=np.int64)
    return _ChunkShapes(
        idx,
        wkb,
        pixels[idx],
        prob_sum[idx],
        labels[0].copy(),
        labels[-1].copy(),
        labels[:, 0].copy(),
        labels[:, -1].copy(),
    )


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[tuple[int, int], tuple[int, int]] = {}

    def find(self, key: tuple[int, int]) -> tuple[int, int]:
        parent = self.parent.setdefault(key, key)
        if parent != key:
            parent = self.parent[key] = self.find(parent)
        return parent

    def union(self, a: tuple[int, int], b: tuple[int, int]) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _link(uf: _UnionFind, a_id: int, a_edge: np.ndarray, b_id: int, b_edge: np.ndarray) -> None:
    touching = (a_edge > 0) & (b_edge > 0)
    for la, lb in set(zip(a_edge[touching].tolist(), b_edge[touching].tolist(), strict=True)):
        uf.union((a_id, la), (b_id, lb))


def _merge(chunks: np.ndarray) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Objects from a 2-D grid of chunk results: (pixel-space geometries, pixel counts, probability sums)."""
    ny, nx = chunks.shape
    uf = _UnionFind()
    for i in range(ny):
        for j in range(nx):
            here = chunks[i, j]
            if j + 1 < nx:
                _link(uf, i * nx + j, here.right, i * nx + j + 1, chunks[i, j + 1].left)
            if i + 1 < ny:
                _link(uf, i * nx + j, here.bottom, (i + 1) * nx + j, chunks[i + 1, j].top)
    groups: dict[tuple[int, int], list[tuple[bytes, int, float]]] = {}
    for flat, shapes in enumerate(chunks.ravel()):
        for label, wkb, npix, psum in zip(
            shapes.labels, shapes.wkb, shapes.pixels, shapes.prob_sum, strict=True
        ):
            groups.setdefault(uf.find((flat, int(label))), []).append((wkb, int(npix), float(psum)))
    geoms, pixels, sums = [], [], []
    for parts in groups.values():
        pieces = shapely.from_wkb([p[0] for p in parts])
        geoms.append(pieces[0] if len(pieces) == 1 else shapely.union_all(pieces))
        pixels.append(sum(p[1] for p in parts))
        sums.append(sum(p[2] for p in parts))
    return geoms, np.asarray(pixels, dtype=np.int64), np.asarray(sums, dtype=np.float64)


def _split_regions(
    geoms: list[Any], pixels: np.ndarray, sums: np.ndarray
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Regions (pixel-space polygons) divided at their necks; each part keeps its region's mean."""
    import rasterio.features
    from affine import Affine

    from geosam.tasks.boxes import split_at_necks

    out_geoms: list[Any] = []
    out_pixels: list[int] = []
    out_sums: list[float] = []
    for geom, n, total in zip(geoms, pixels, sums, strict=True):
        x0, y0, x1, y1 = (round(v) for v in geom.bounds)  # whole pixels: the polygons follow pixel edges
        at = Affine.translation(x0, y0)
        mask = rasterio.features.rasterize([geom], out_shape=(y1 - y0, x1 - x0), transform=at, dtype="uint8")
        labels, k = split_at_necks(mask.astype(bool))
        if k < 2:
            out_geoms.append(geom)
            out_pixels.append(int(n))
            out_sums.append(float(total))
            continue
        counts = np.bincount(labels.ravel(), minlength=k + 1)
        pieces: dict[int, list[Any]] = {}
        # a part grown by the 8-connected watershed may touch itself at a corner only
        for piece, value in rasterio.features.shapes(labels, mask=labels > 0, connectivity=8, transform=at):
            pieces.setdefault(int(value), []).append(shapely.geometry.shape(piece))
        for value, parts in sorted(pieces.items()):
            out_geoms.append(shapely.union_all(parts))
            out_pixels.append(int(counts[value]))
            out_sums.append(float(total) / float(n) * int(counts[value]))
    return out_geoms, np.asarray(out_pixels, dtype=np.int64), np.asarray(out_sums, dtype=np.float64)


def spatial_dims(result: xr.DataArray) -> tuple[Hashable, Hashable]:
    """The ``(y, x)`` dimension names of a georeferenced result (rioxarray's reading of them).

    >>> spatial_dims(xr.DataArray(np.zeros((1, 2, 3)), dims=("time", "y", "x")))
    ('y', 'x')
    """
    try:
        return result.rio.y_dim, result.rio.x_dim
    except Exception as err:
        raise InputError(
            f"cannot find the spatial dimensions of the result (dims {result.dims}): {err}"
        ) from err


def to_geodataframe(
    result: xr.DataArray,
    *,
    threshold: float = 0.5,
    geometry: Geometry = "polygon",
    min_pixels: int = 1,
    split: RegionSplit = None,
    progress: bool = False,
) -> Any:
    """Objects of a :func:`geosam.segment` result as a GeoDataFrame in the scene's CRS.

    One row per connected (4-connected) region of ``probability >= threshold`` (or ``mask == 1`` for a
    thresholded result), per prompt and time step: columns ``prompt``, ``time`` (if the result has a
    time dimension), ``score`` (mean probability over the region; NaN for a mask, which has none),
    ``pixels``, ``area`` (in CRS units squared) and ``geometry``. ``geometry`` is ``"polygon"``, ``"box"``
    (axis-aligned bounding box) or ``"oriented_box"`` (minimum rotated rectangle). Regions smaller than
    ``min_pixels`` are dropped. Nodata never becomes an object. ``split="shape"`` then divides
    each region at its necks, as :func:`geosam.tasks.boxes.components` does on images (touching
    aircraft come apart); each part keeps the score of its whole region.

    Computed chunk by chunk; regions crossing chunk borders are merged into one polygon (and only
    then split, so a split never depends on the chunks).

    >>> gdf = to_geodataframe(geosam.segment(ds, "ships"), geometry="oriented_box")  # doctest: +SKIP
    >>> gdf.to_parquet("ships.parquet")   # GeoParquet; geopandas.read_parquet keeps the CRS  # doctest: +SKIP
    """
    import geopandas as gpd

    if not isinstance(result, xr.DataArray):
        raise InputError(
            f"to_geodataframe takes a DataArray from geosam.segment, got {type(result).__name__}"
        )
    if geometry not in ("polygon", "box", "oriented_box"):
        raise InputError(f"geometry must be 'polygon', 'box' or 'oriented_box', got {geometry!r}")
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"threshold must be between 0 and 1, got {threshold}")
    if split not in (None, "shape"):
        raise InputError(f"split must be None or 'shape' for a scene, got {split!r}")
    crs = result.rio.crs
    if crs is None:
        raise MissingCRSError(
            "the result has no CRS (spatial_ref coordinate), so polygons could not be georeferenced"
        )
    ydim, xdim = spatial_dims(result)
    if "band" in result.dims:
        raise InputError(
            f"the input has a 'band' dimension ({result.sizes['band']} bands): to_geodataframe takes "
            "the probability or mask that geosam.segment returns, not imagery"
        )
    is_mask = np.issubdtype(result.dtype, np.integer) or result.dtype == bool
    mask_nodata = float(result.attrs.get("nodata", np.nan)) if is_mask else None
    transform = result.rio.transform(recalc=True)

    others = [d for d in result.dims if d not in (ydim, xdim)]
    data = result.transpose(*others, ydim, xdim).data
    if not isinstance(data, dask.array.Array):
        data = dask.array.from_array(np.asarray(data), chunks=(1,) * len(others) + (DEFAULT_CHUNK, DEFAULT_CHUNK))
    # one 2-D grid of chunks per time step and prompt
    data = data.rechunk({k: 1 for k in range(len(others))})
    row_starts = np.cumsum((0, *data.chunks[-2]))
    col_starts = np.cumsum((0, *data.chunks[-1]))
    blocks = data.to_delayed()
    func = dask.delayed(_chunk_shapes, pure=True)
    tasks = [
        func(
            blocks[index],
            int(row_starts[index[-2]]),
            int(col_starts[index[-1]]),
            float(threshold),
            mask_nodata,
        )
        for index in np.ndindex(*blocks.shape)
    ]
    shapes = np.empty(blocks.shape, dtype=object)
    shapes.ravel()[:] = compute_with_progress(*tasks, desc="vectorizing", progress=progress)

    table: dict[str, list[Any]] = {"prompt": []}
    table.update({str(d): [] for d in others if d != "prompt"})
    table.update(score=[], pixels=[])
    pixel_geoms: list[Any] = []
    for lead in np.ndindex(*blocks.shape[:-2]):
        geoms, pixels, sums = _merge(shapes[lead])
        if split == "shape":
            geoms, pixels, sums = _split_regions(geoms, pixels, sums)
        keep = pixels >= min_pixels
        n = int(keep.sum())
        labels = {
            str(d): _scalar(result[d].values[pos]) for d, pos in zip(others, lead, strict=True)
        }
        labels.setdefault("prompt", _prompt_of(result))
        for key, value in labels.items():
            table[key].extend([value] * n)
        with np.errstate(invalid="ignore", divide="ignore"):
            table["score"].extend((sums / pixels)[keep] if not is_mask else [np.nan] * n)
        table["pixels"].extend(pixels[keep].tolist())
        pixel_geoms.extend(g for g, k in zip(geoms, keep, strict=True) if k)

    # Pixel -> CRS in two steps: the linear part first, so areas and (oriented) boxes are computed
    # on small coordinates (at 5e6 m, float error alone puts a polygon 1e-6 outside its box), then
    # the translation to the scene's origin.
    linear = np.asarray([transform.a, transform.b, transform.d, transform.e, 0.0, 0.0])
    origin = np.asarray([transform.c, transform.f])
    polygons = np.asarray(pixel_geoms, dtype=object)
    if len(polygons):
        polygons = shapely.transform(polygons, lambda xy: _affine(xy, linear))
    table["area"] = list(shapely.area(polygons)) if len(polygons) else []
    if geometry != "polygon":
        polygons = _boxes(polygons, oriented=geometry == "oriented_box")
    if len(polygons):
        polygons = shapely.transform(polygons, lambda xy: xy + origin)
    gdf = gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(list(polygons), crs=crs), crs=crs)
    return gdf.astype({"score": "float64", "pixels": "int64", "area": "float64"})


def _boxes(geoms: np.ndarray, *, oriented: bool) -> np.ndarray:
    return shapely.oriented_envelope(geoms) if oriented else shapely.envelope(geoms)


def _affine(xy: np.ndarray, m: np.ndarray) -> np.ndarray:
    a, b, d, e, c, f = m
    return np.column_stack([a * xy[:, 0] + b * xy[:, 1] + c, d * xy[:, 0] + e * xy[:, 1] + f])


def _scalar(value: Any) -> Any:
    if isinstance(value, np.datetime64):
        import pandas as pd

        return pd.Timestamp(value)  # .item() would give integer nanoseconds
    return value.item() if isinstance(value, np.generic) else value


def _prompt_of(result: xr.DataArray) -> str | None:
    if "prompt" in result.coords and result["prompt"].ndim == 0:
        return str(result["prompt"].item())
    return result.attrs.get("prompt")


def boxes(gdf: Any, *, oriented: bool = False) -> Any:
    """A copy of a polygon GeoDataFrame with each geometry replaced by its bounding box
    (``oriented=True``: the minimum rotated rectangle, via shapely's ``oriented_envelope``).

    >>> boxes(to_geodataframe(prob), oriented=True)                      # doctest: +SKIP
    """
    import geopandas as gpd

    out = gdf.copy()
    geoms = gdf.geometry.values
    if len(geoms):
        origin = np.asarray(gdf.total_bounds[:2])  # small coordinates for exact boxes (see above)
        local = shapely.transform(np.asarray(geoms, dtype=object), lambda xy: xy - origin)
        geoms = shapely.transform(_boxes(local, oriented=oriented), lambda xy: xy + origin)
    out.geometry = gpd.GeoSeries(list(geoms), index=gdf.index, crs=gdf.crs)
    return out
