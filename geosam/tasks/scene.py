"""The tasks on georeferenced scenes: built on :func:`geosam.segment` and :func:`geosam.to_geodataframe`.

Each class is one prompt of one lazy :func:`~geosam.segment` pass ("{class} in the image", as for
images), so the scene is cut into blended windows and never held in memory whole. Objects are the
regions :func:`~geosam.to_geodataframe` vectorizes chunk by chunk and merges across chunk borders,
so an object lying across a border is counted once. The vectorizer's regions are 4-connected and
include pixels at exactly the threshold (image tasks use 8-connected regions above it).

* :func:`semantic_segment_scene`: a lazy label DataArray (argmax over classes, 0 = none, 255 = nodata);
* :func:`detect_scene`: a GeoDataFrame of boxes in the scene's CRS (mask-to-box: confidence floor,
  nested boxes dropped, NMS per class and time step);
* :func:`ground_scene`: the union box of what an expression refers to, per time step;
* :func:`count_scene`: objects per class, per time step or per region;
* :func:`class_scores_scene`, :func:`classify_regions`: ``lambda * max + (1 - lambda) * mean`` of the
  probability per class over the scene or over each region, and the best class of each region;
* :func:`detect_changes_scene`: objects that appeared or disappeared between two time steps.

The same functions are methods of the ``.remotesam`` accessor (geosam.accessors).

>>> labels = geosam.tasks.scene.semantic_segment_scene(ds, ["building", "road", "water"])  # doctest: +SKIP
>>> boxes = ds.remotesam.detect(["ship", "harbor"])                                          # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
import pandas as pd
import shapely
import xarray as xr

from geosam.errors import InputError, PromptError
from geosam.model.text import normalize_prompts
from geosam.segment import PROMPT_DIM
from geosam.tasks._probs import CLASS_TEMPLATE, check_classes, class_prompts
from geosam.tasks.boxes import MIN_SCORE, NMS_IOU, nested_polygons, polygon_nms
from geosam.tasks.classification import CLASS_THRESHOLD, MULTI_LABEL_BALANCE
from geosam.tasks.referring import (
    MIN_RELATIVE_AREA,
    choose_nearest,
    choose_object,
    class_prompt,
    parse_attribute,
    parse_relation,
)
from geosam.vectorize import RegionSplit, spatial_dims

if TYPE_CHECKING:
    import geopandas as gpd

#: Label of nodata pixels in a scene label map.
LABEL_NODATA = 255


# -- probabilities -------------------------------------------------------------------------------


def _segment(obj: xr.Dataset | xr.DataArray, prompts: list[str], options: dict[str, Any]) -> xr.DataArray:
    """:func:`geosam.segment` for a scene task, naming a keyword it does not take as the task's
    mistake (a bare TypeError would name ``segment()``, which the user never called)."""
    import inspect

    from geosam.segment import segment

    known = [p for p in inspect.signature(segment).parameters if p not in ("obj", "prompts")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {', '.join(map(repr, unknown))}: scene tasks take "
            f"their own arguments and those of geosam.segment ({', '.join(known)})"
        )
    return segment(obj, prompts, **options)


def class_probabilities_scene(
    obj: xr.Dataset | xr.DataArray,
    classes: str | Sequence[str],
    *,
    template: str = CLASS_TEMPLATE,
    **segment_kwargs: Any,
) -> xr.DataArray:
    """Lazy probabilities of each class, with a ``class`` coordinate along the ``prompt`` dim."""
    names = check_classes(classes)
    probs = _segment(obj, class_prompts(names, template), segment_kwargs)
    return probs.assign_coords({"class": (PROMPT_DIM, np.array(names, dtype=object))})


def _class_names(probs: xr.DataArray) -> list[str]:
    if PROMPT_DIM not in probs.dims:
        raise InputError(
            f"class probabilities need a {PROMPT_DIM!r} dimension, got dims {probs.dims}"
        )
    if "class" in probs.coords and probs["class"].ndim == 1:
        return [str(c) for c in probs["class"].values]
    return [str(p) for p in probs[PROMPT_DIM].values]


def _with_prompt_dim(prob: xr.DataArray) -> xr.DataArray:
    """A one-prompt result with its ``prompt`` dimension (``segment(obj, "x")`` makes it scalar)."""
    if PROMPT_DIM in prob.dims:
        return prob
    prob = prob.drop_vars("class", errors="ignore")
    if PROMPT_DIM in prob.coords:
        return prob.expand_dims(PROMPT_DIM)
    return prob.expand_dims({PROMPT_DIM: [str(prob.attrs.get("prompt", prob.name or "prompt"))]})


# -- semantic segmentation ----------------------------------------------------------------------


def labels_from_scene_probs(probs: xr.DataArray, threshold: float = 0.5) -> xr.DataArray:
    """Label map of class probabilities (``prompt`` dim): ``i + 1`` where class ``i`` is the most
    probable and above ``threshold``, 0 where none is, 255 where the scene has no data. Lazy.

    The result is uint8 with CF ``flag_values`` / ``flag_meanings`` attributes naming the classes.
    """
    names = _class_names(probs)
    if len(names) >= LABEL_NODATA:
        raise InputError(
            f"at most {LABEL_NODATA - 1} classes fit a uint8 label map, got {len(names)}"
        )

    def label(block: np.ndarray) -> np.ndarray:
        # block: (..., P, y, x) with the prompt axis whole; NaN = nodata
        valid = ~np.isnan(block).all(axis=-3)
        filled = np.where(np.isnan(block), -1.0, block)
        best = filled.argmax(axis=-3)
        conf = np.take_along_axis(filled, best[..., None, :, :], axis=-3)[..., 0, :, :]
        out = np.where(conf > threshold, best + 1, 0).astype(np.uint8)
        out[~valid] = LABEL_NODATA
        return out

    moved = probs.transpose(
        *[d for d in probs.dims if d != PROMPT_DIM][:-2], PROMPT_DIM, *spatial_dims(probs)
    )
    data = moved.data
    if isinstance(data, dask.array.Array):
        data = data.rechunk({moved.get_axis_num(PROMPT_DIM): -1})
        labels = data.map_blocks(label, drop_axis=moved.get_axis_num(PROMPT_DIM), dtype=np.uint8)
    else:
        labels = label(np.asarray(data))
    dims = [d for d in moved.dims if d != PROMPT_DIM]
    coords = {k: v for k, v in moved.coords.items() if PROMPT_DIM not in v.dims}
    out = xr.DataArray(labels, dims=dims, coords=coords, name="label")
    out.attrs.update(
        long_name="class label",
        flag_values=list(range(len(names) + 1)),
        flag_meanings=" ".join(["none", *(n.replace(" ", "_") for n in names)]),
        classes=list(names),
        nodata=LABEL_NODATA,
        threshold=threshold,
    )
    grid_mapping = probs.encoding.get("grid_mapping") or probs.attrs.get("grid_mapping")
    if grid_mapping is None and "spatial_ref" in out.coords:
        grid_mapping = "spatial_ref"
    if grid_mapping is not None:
        out = out.rio.write_grid_mapping(grid_mapping)
    return out


def semantic_segment_scene(
    obj: xr.Dataset | xr.DataArray,
    classes: str | Sequence[str],
    *,
    threshold: float = 0.5,
    template: str = CLASS_TEMPLATE,
    **segment_kwargs: Any,
) -> xr.DataArray:
    """Lazy uint8 label map of a scene: 0 = no class confident, ``i + 1`` = ``classes[i]``,
    255 = nodata; on the scene's grid and CRS, with the scene's other dims (``time``) first.

    ``segment_kwargs`` go to :func:`geosam.segment` (``model``, ``tile``, ``overlap``, ...).

    >>> labels = semantic_segment_scene(ds, ["building", "road", "water"]).compute()  # doctest: +SKIP
    >>> labels.attrs["flag_meanings"]                                              # doctest: +SKIP
    'none building road water'
    """
    probs = class_probabilities_scene(obj, classes, template=template, **segment_kwargs)
    return labels_from_scene_probs(probs, threshold)


# -- objects -------------------------------------------------------------------------------------


def _objects(
    probs: xr.DataArray, threshold: float, progress: bool, split: RegionSplit = None
) -> gpd.GeoDataFrame:
    """Seam-merged object polygons of every class and time step, with a ``class`` column."""
    from geosam.vectorize import to_geodataframe

    names = _class_names(probs)
    if PROMPT_DIM not in probs.dims:
        raise InputError(f"class probabilities need a {PROMPT_DIM!r} dimension")
    # The vectorizer labels rows by prompt; map prompts back to class names.
    by_prompt = dict(zip([str(p) for p in probs[PROMPT_DIM].values], names, strict=True))
    plain = probs.drop_vars("class", errors="ignore")
    if not isinstance(plain.data, dask.array.Array):  # the vectorizer works chunk by chunk
        plain = plain.chunk({d: 1 for d in plain.dims[:-2]})
    gdf = to_geodataframe(plain, threshold=threshold, geometry="polygon", split=split, progress=progress)
    gdf.insert(0, "class", gdf["prompt"].map(by_prompt))
    if "time" in gdf.columns and np.issubdtype(probs["time"].dtype, np.datetime64):
        gdf["time"] = pd.to_datetime(gdf["time"])  # the vectorizer gives datetimes as integers
    return gdf


def _group_keys(gdf: gpd.GeoDataFrame) -> list[str]:
    return [c for c in ("class", "time") if c in gdf.columns]


def _filter_objects(
    objects: gpd.GeoDataFrame, *, oriented: bool, min_score: float, nms_iou: float | None
) -> gpd.GeoDataFrame:
    """Boxes of the objects after the M2B rules, per class and time step, best first."""
    polygons = objects.geometry.values
    boxes = shapely.oriented_envelope(polygons) if oriented else shapely.envelope(polygons)
    out = objects.set_geometry(list(boxes), crs=objects.crs)
    out = out[~(out["score"] < min_score)]  # masks (NaN score) are kept
    keep: list[Any] = []
    for _, group in out.groupby(_group_keys(out), sort=False, dropna=False):
        geoms = np.asarray(group.geometry.values, dtype=object)
        scores = group["score"].fillna(1.0).to_numpy()
        idx = np.flatnonzero(~nested_polygons(geoms))
        if nms_iou is not None and len(idx) > 1:
            idx = idx[polygon_nms(geoms[idx], scores[idx], nms_iou)]
        else:
            idx = idx[np.argsort(-scores[idx], kind="stable")]
        keep.extend(group.index[idx])
    return out.loc[keep].reset_index(drop=True)


def detections_from_scene_probs(
    probs: xr.DataArray,
    *,
    threshold: float = 0.5,
    oriented: bool = False,
    min_score: float = MIN_SCORE,
    nms_iou: float | None = NMS_IOU,
    split: RegionSplit = None,
    progress: bool = False,
) -> gpd.GeoDataFrame:
    """:func:`detect_scene` on class probabilities already computed (``prompt`` dim)."""
    objects = _objects(probs, threshold, progress, split)
    return _filter_objects(objects, oriented=oriented, min_score=min_score, nms_iou=nms_iou)


def detect_scene(
    obj: xr.Dataset | xr.DataArray,
    classes: str | Sequence[str],
    *,
    oriented: bool = False,
    threshold: float = 0.5,
    template: str = CLASS_TEMPLATE,
    split: RegionSplit = None,
    progress: bool = False,
    **segment_kwargs: Any,
) -> gpd.GeoDataFrame:
    """Boxes of every class in the scene's CRS, one row per object.

    Columns: ``class``, ``prompt``, ``time`` (for a time series), ``score`` (mean probability of the
    object), ``pixels``, ``area`` (of the object, CRS units squared) and ``geometry``: the object's
    bounding box (``oriented=True``: its minimum rotated rectangle). Objects whose score is under
    0.01 are dropped, then boxes inside other boxes, then overlapping boxes (NMS at IoU 0.5), per
    class and time step. Rows are best first within each group. ``split="shape"`` divides touching
    objects at the necks of their mask first (docs/decisions/0005-splitting-touching-objects.md).

    >>> gdf = detect_scene(ds, ["ship", "harbor"])            # doctest: +SKIP
    >>> gdf.to_parquet("ships.parquet")                        # GeoParquet with the CRS  # doctest: +SKIP
    """
    probs = class_probabilities_scene(obj, classes, template=template, **segment_kwargs)
    return detections_from_scene_probs(
        probs, threshold=threshold, oriented=oriented, split=split, progress=progress
    )


def ground_from_scene_prob(
    prob: xr.DataArray,
    *,
    threshold: float = 0.5,
    min_score: float = MIN_SCORE,
    attribute: str | None = None,
    anchor: xr.DataArray | None = None,
    progress: bool = False,
) -> gpd.GeoDataFrame:
    """:func:`ground_scene` on a probability DataArray already computed; ``attribute`` ("largest",
    "top left" ...) keeps one object per time step, chosen as on images
    (:func:`geosam.tasks.referring.choose_object`, centroids in fractions of the scene); ``anchor``,
    the probability of a relation's other class, keeps the object nearest it
    (:func:`geosam.tasks.referring.choose_nearest`), and nothing in a time step without it."""
    import geopandas as gpd

    objects = _objects(_with_prompt_dim(prob), threshold, progress)
    objects = objects[~(objects["score"] < min_score)]
    anchors = None if anchor is None else _objects(_with_prompt_dim(anchor), threshold, progress)
    rows: list[dict[str, Any]] = []
    keys = [k for k in ("time",) if k in objects.columns]
    groups = objects.groupby(keys, sort=True) if keys else [((), objects)]
    for key, group in groups:
        if group.empty:
            continue
        if anchors is not None:
            near = (
                anchors
                if not keys
                else anchors[anchors["time"] == (key[0] if isinstance(key, tuple) else key)]
            )
            near = near[near["pixels"] >= MIN_RELATIVE_AREA * near["pixels"].max()]
            if near.empty:
                continue
            distances = group.geometry.distance(shapely.union_all(near.geometry.values))
            group = group.iloc[[choose_nearest(distances.to_numpy(), group["pixels"].to_numpy())]]
        if attribute is not None:
            left, bottom, right, top = prob.rio.bounds()
            centre = group.geometry.centroid
            pick = choose_object(
                group["pixels"].to_numpy(),
                (centre.x.to_numpy() - left) / (right - left),
                (top - centre.y.to_numpy()) / (top - bottom),
                attribute,
            )
            group = group.iloc[[pick]]
        pixels = group["pixels"].to_numpy()
        row: dict[str, Any] = {"prompt": group["prompt"].iloc[0]}
        if keys:
            row["time"] = key[0] if isinstance(key, tuple) else key
        row.update(
            score=float(np.nansum(group["score"].to_numpy() * pixels) / pixels.sum()),
            objects=len(group),
            pixels=int(pixels.sum()),
            geometry=shapely.box(*shapely.total_bounds(group.geometry.values)),
        )
        rows.append(row)
    columns = ["prompt", *keys, "score", "objects", "pixels", "geometry"]
    return gpd.GeoDataFrame(rows, columns=columns, geometry="geometry", crs=objects.crs)


def ground_scene(
    obj: xr.Dataset | xr.DataArray,
    expression: str,
    *,
    threshold: float = 0.5,
    progress: bool = False,
    **segment_kwargs: Any,
) -> gpd.GeoDataFrame:
    """The box of what ``expression`` refers to, in the scene's CRS: one row per time step where
    something was found (none if nothing was), the union box of all its objects. Size and position
    expressions ("the largest field", "the ship in the top left") segment their class and keep the
    one object with that attribute, and relations ("the ship next to the harbor") the object of the
    first class nearest the second, as :func:`geosam.tasks.referring.refer` does on images.

    Columns: ``prompt``, ``time`` (for a time series), ``score`` (mean probability over the objects'
    pixels), ``objects``, ``pixels`` and ``geometry``.

    >>> ground_scene(ds, "the largest pond")  # doctest: +SKIP
    >>> ground_scene(ds, "the ship next to the harbor")  # doctest: +SKIP
    """

    if not isinstance(expression, str):
        raise PromptError(f"expression must be one string, got {type(expression).__name__}")
    normalize_prompts(expression)
    parsed = parse_attribute(expression)
    related = parse_relation(expression)
    if parsed is not None:
        prob = _segment(obj, [class_prompt(parsed.subject)], segment_kwargs)
        found = ground_from_scene_prob(
            prob, threshold=threshold, attribute=parsed.attribute, progress=progress
        )
    elif related is not None:
        probs = _segment(
            obj, [class_prompt(related.subject), class_prompt(related.anchor)], segment_kwargs
        )
        found = ground_from_scene_prob(
            probs.isel({PROMPT_DIM: 0}),
            threshold=threshold,
            anchor=probs.isel({PROMPT_DIM: 1}),
            progress=progress,
        )
    else:
        prob = _segment(obj, [expression], segment_kwargs)
        return ground_from_scene_prob(prob, threshold=threshold, progress=progress)
    found["prompt"] = expression
    return found


def _regions_in(regions: gpd.GeoDataFrame | gpd.GeoSeries, crs: Any) -> gpd.GeoDataFrame:
    import geopandas as gpd

    if isinstance(regions, gpd.GeoSeries):
        regions = gpd.GeoDataFrame(geometry=regions)
    if not isinstance(regions, gpd.GeoDataFrame):
        raise InputError(
            f"regions must be a GeoDataFrame or GeoSeries, got {type(regions).__name__}"
        )
    if regions.crs is None:
        raise InputError(
            "regions have no CRS: set one (regions.set_crs(...)) so they can be placed on the scene"
        )
    return regions.to_crs(crs)


def count_scene(
    obj: xr.Dataset | xr.DataArray,
    classes: str | Sequence[str],
    *,
    regions: gpd.GeoDataFrame | gpd.GeoSeries | None = None,
    threshold: float = 0.5,
    template: str = CLASS_TEMPLATE,
    split: RegionSplit = None,
    progress: bool = False,
    **segment_kwargs: Any,
) -> pd.DataFrame:
    """Number of objects of each class (the boxes :func:`detect_scene` keeps, ``split`` as there).

    A DataFrame with one column per class and one row for the scene (or per time step); with
    ``regions`` (polygons in any CRS), one row per region (and time step), an object counting for
    the region holding its representative point.

    >>> count_scene(ds, ["ship"], regions=harbours)  # doctest: +SKIP
    """
    probs = class_probabilities_scene(obj, classes, template=template, **segment_kwargs)
    return counts_from_scene_probs(
        probs, regions=regions, threshold=threshold, split=split, progress=progress
    )


def counts_from_scene_probs(
    probs: xr.DataArray,
    *,
    regions: gpd.GeoDataFrame | gpd.GeoSeries | None = None,
    threshold: float = 0.5,
    split: RegionSplit = None,
    progress: bool = False,
) -> pd.DataFrame:
    """:func:`count_scene` on class probabilities already computed (``prompt`` dim)."""
    import geopandas as gpd

    names = _class_names(probs)
    objects = _objects(probs, threshold, progress, split)
    points = objects.geometry.representative_point()
    kept = _filter_objects(
        objects.assign(_point=points), oriented=False, min_score=MIN_SCORE, nms_iou=NMS_IOU
    )
    has_time = "time" in kept.columns or "time" in probs.dims
    index: list[Hashable] = []
    if regions is not None:
        zones = _regions_in(regions, objects.crs).reset_index(drop=True)
        located = gpd.GeoDataFrame(
            kept.drop(columns="geometry"), geometry=kept["_point"], crs=kept.crs
        )
        joined = gpd.sjoin(located, zones[["geometry"]], how="inner", predicate="within")
        kept = joined.rename(columns={"index_right": "region"})
        index.append("region")
    if has_time and "time" in kept.columns:
        index.append("time")
    if not index:
        counts = kept["class"].value_counts().reindex(names, fill_value=0)
        return pd.DataFrame([counts.to_numpy()], columns=names)
    table = kept.groupby([*index, "class"]).size().unstack("class", fill_value=0)
    table = table.reindex(columns=names, fill_value=0)
    full_index = _full_index(
        index, probs, None if regions is None else len(_regions_in(regions, objects.crs))
    )
    table = table.reindex(full_index, fill_value=0)
    table.columns.name = None
    return table.astype(int)


def _full_index(index: Sequence[Hashable], probs: xr.DataArray, n_regions: int | None) -> pd.Index:
    levels: list[Any] = []
    for name in index:
        if name == "region":
            levels.append(range(n_regions or 0))
        else:
            levels.append(pd.Index(probs[name].values))
    if len(levels) == 1:
        return pd.Index(levels[0], name=index[0])
    return pd.MultiIndex.from_product(levels, names=list(index))


# -- class scores --------------------------------------------------------------------------------


def scores_from_scene_probs(
    probs: xr.DataArray,
    *,
    balance: float = MULTI_LABEL_BALANCE,
    regions: gpd.GeoDataFrame | gpd.GeoSeries | None = None,
) -> pd.DataFrame:
    """``balance * max + (1 - balance) * mean`` of each class over the valid pixels of the scene
    (one row, or one per time step) or of each region (one row per region and time step)."""
    import rasterio.features
    from rioxarray.exceptions import NoDataInBounds

    if not 0.0 <= balance <= 1.0:
        raise InputError(f"balance must lie in [0, 1], got {balance}")
    names = _class_names(probs)
    ydim, xdim = spatial_dims(probs)
    lead = [d for d in probs.dims if d not in (PROMPT_DIM, ydim, xdim)]
    arranged = probs.transpose(*lead, PROMPT_DIM, ydim, xdim)
    if regions is None:
        hi, mean = dask.compute(arranged.max((ydim, xdim)).data, arranged.mean((ydim, xdim)).data)
        rows = [balance * np.asarray(hi) + (1 - balance) * np.asarray(mean)]
        rows = [r.reshape(-1, len(names)) for r in rows]
        frame = pd.DataFrame(rows[0], columns=names)
        if lead:
            frame.index = _full_index(lead, probs, None)
        return frame

    zones = _regions_in(regions, probs.rio.crs).reset_index(drop=True)
    windows, masks = [], []
    for geom in zones.geometry:
        try:
            window = arranged.rio.clip_box(*geom.bounds, allow_one_dimensional_raster=True)
        except NoDataInBounds:  # a region off the scene scores NaN, like an all-nodata one
            windows.append(arranged.isel({ydim: slice(0, 0), xdim: slice(0, 0)}).data)
            masks.append(np.zeros((0, 0), dtype=bool))
            continue
        inside = rasterio.features.rasterize(
            [(geom, 1)],
            out_shape=window.shape[-2:],
            transform=window.rio.transform(recalc=True),
            all_touched=True,
            dtype="uint8",
        ).astype(bool)
        windows.append(window.data)
        masks.append(inside)
    # One compute: regions sharing chunks share their segmentation.
    values = dask.compute(*windows)
    records = []
    for region, (vals, inside) in enumerate(zip(values, masks, strict=True)):
        arr = np.asarray(vals)[..., inside]  # (..., P, n)
        arr = arr.reshape(math.prod(arr.shape[:-2]), len(names), arr.shape[-1])
        with warnings.catch_warnings():  # all-nodata regions score NaN, silently
            warnings.simplefilter("ignore", RuntimeWarning)
            hi = np.nanmax(arr, axis=-1) if arr.shape[-1] else np.full(arr.shape[:2], np.nan)
            mean = np.nanmean(arr, axis=-1) if arr.shape[-1] else np.full(arr.shape[:2], np.nan)
        for k, row in enumerate(balance * hi + (1 - balance) * mean):
            records.append((region, k, *row))
    frame = pd.DataFrame(records, columns=["region", "_lead", *names])
    if lead:
        times = _full_index(lead, probs, None)
        frame["_lead"] = [times[k] for k in frame["_lead"]]
        frame = frame.rename(columns={"_lead": lead[0]}).set_index(["region", lead[0]])
    else:
        frame = frame.drop(columns="_lead").set_index("region")
    return frame


def class_scores_scene(
    obj: xr.Dataset | xr.DataArray,
    classes: str | Sequence[str],
    *,
    balance: float = MULTI_LABEL_BALANCE,
    regions: gpd.GeoDataFrame | gpd.GeoSeries | None = None,
    template: str = CLASS_TEMPLATE,
    **segment_kwargs: Any,
) -> pd.DataFrame:
    """Score of each class (columns) for the scene or each of ``regions`` (rows): the paper's
    ``balance * max + (1 - balance) * mean`` over valid pixels (balance 0.5: multi-label; 1.0: scene).

    >>> class_scores_scene(ds, ["farmland", "forest", "water"], regions=parcels)  # doctest: +SKIP
    """
    probs = class_probabilities_scene(obj, classes, template=template, **segment_kwargs)
    return scores_from_scene_probs(probs, balance=balance, regions=regions)


def classify_regions(
    obj: xr.Dataset | xr.DataArray,
    regions: gpd.GeoDataFrame | gpd.GeoSeries,
    classes: str | Sequence[str],
    *,
    balance: float = MULTI_LABEL_BALANCE,
    threshold: float = CLASS_THRESHOLD,
    template: str = CLASS_TEMPLATE,
    **segment_kwargs: Any,
) -> gpd.GeoDataFrame:
    """The regions (in the scene's CRS) with their best ``class`` (None when no score exceeds
    ``threshold``) and its ``score``; one row per region, or per region and time step.

    >>> classify_regions(ds, parcels, ["farmland", "forest", "water"])  # doctest: +SKIP
    """
    import geopandas as gpd

    probs = class_probabilities_scene(obj, classes, template=template, **segment_kwargs)
    scores = scores_from_scene_probs(probs, balance=balance, regions=regions)
    names = _class_names(probs)
    zones = _regions_in(regions, probs.rio.crs).reset_index(drop=True)
    values = scores[names].to_numpy()
    best = np.nanargmax(np.where(np.isnan(values), -np.inf, values), axis=1)
    top = values[np.arange(len(values)), best]
    out = scores.reset_index()
    out["class"] = [names[b] if s > threshold else None for b, s in zip(best, top, strict=True)]
    out["score"] = top
    geometry = zones.geometry.iloc[out["region"].to_numpy()].to_numpy()
    return gpd.GeoDataFrame(out, geometry=list(geometry), crs=zones.crs)


# -- change detection ----------------------------------------------------------------------------


def changes_from_scene_prob(
    prob: xr.DataArray,
    *,
    threshold: float = 0.5,
    min_overlap: float = 0.1,
    min_score: float = MIN_SCORE,
    progress: bool = False,
) -> gpd.GeoDataFrame:
    """:func:`detect_changes_scene` on a probability DataArray with exactly two time steps."""
    if "time" not in prob.dims or prob.sizes["time"] != 2:
        raise InputError(
            f"change detection needs a time dimension of 2 steps, got dims {dict(prob.sizes)}"
        )
    if not 0.0 <= min_overlap <= 1.0:
        raise InputError(f"min_overlap must lie in [0, 1], got {min_overlap}")
    prob = _with_prompt_dim(prob)
    objects = _objects(prob, threshold, progress)
    objects = objects[~(objects["score"] < min_score)].reset_index(drop=True)
    is_before = objects["time"].to_numpy() == prob["time"].values[0]
    before, after = objects[is_before], objects[~is_before]

    def overlap(items: Any, others: Any) -> np.ndarray:
        if len(items) == 0:
            return np.zeros(0)
        if len(others) == 0:
            return np.zeros(len(items))
        union = shapely.union_all(others.geometry.values)
        inter = shapely.area(shapely.intersection(items.geometry.values, union))
        return inter / shapely.area(items.geometry.values)

    before = before.assign(overlap=overlap(before, after))
    after = after.assign(overlap=overlap(after, before))
    before = before[before["overlap"] < min_overlap].assign(change="disappeared")
    appeared = after[after["overlap"] < min_overlap].assign(change="appeared")
    persisted = after[after["overlap"] >= min_overlap].assign(change="persisted")
    out = pd.concat([appeared, before, persisted], ignore_index=True)
    columns = [
        "change",
        *[c for c in out.columns if c not in ("change", "class", "geometry")],
        "geometry",
    ]
    return out[columns]


def _one_time(obj: xr.Dataset | xr.DataArray, label: Any, default: int) -> Any:
    """The one time step ``label`` selects ("2020", "2012-07-31", a datetime; ``None``: step
    ``default``), or an InputError naming the steps there are."""
    times = obj["time"]
    if label is None:
        return times.values[default]
    try:
        found = np.atleast_1d(times.sel(time=label).values)
    except KeyError:
        found = np.array([])
    if len(found) != 1:
        steps = ", ".join(str(t)[:10] for t in times.values)
        raise InputError(
            f"before/after {label!r} selects {len(found)} time steps, not one; the scene has: {steps}"
        )
    return found[0]


def detect_changes_scene(
    obj: xr.Dataset | xr.DataArray,
    prompt: str,
    *,
    before: Any = None,
    after: Any = None,
    threshold: float = 0.5,
    min_overlap: float = 0.1,
    progress: bool = False,
    **segment_kwargs: Any,
) -> gpd.GeoDataFrame:
    """Objects of ``prompt`` that appeared or disappeared between two time steps of a scene.

    ``before``/``after`` are ``time`` labels (default: the first and last step). An object whose
    area is covered by the other date's objects for less than ``min_overlap`` has changed.
    Returns a GeoDataFrame of object polygons in the scene's CRS with columns ``change``
    ("appeared", "disappeared" or "persisted"), ``prompt``, ``time``, ``score``, ``pixels``,
    ``area`` (CRS units squared) and ``overlap``.

    >>> ch = detect_changes_scene(ds, "buildings")                      # doctest: +SKIP
    >>> ch[ch.change == "appeared"].area.sum()                          # new building area, m2  # doctest: +SKIP
    """

    if not isinstance(prompt, str):
        raise PromptError(f"prompt must be one string, got {type(prompt).__name__}")
    normalize_prompts(prompt)
    if "time" not in obj.dims or obj.sizes["time"] < 2:
        raise InputError("change detection needs a scene with a time dimension of at least 2 steps")
    t0, t1 = (_one_time(obj, label, default) for label, default in ((before, 0), (after, -1)))
    if t0 == t1:
        raise InputError("before and after select the same time step")
    two = obj.sel(time=[t0, t1])
    prob = _segment(two, [prompt], segment_kwargs)
    return changes_from_scene_prob(
        prob, threshold=threshold, min_overlap=min_overlap, progress=progress
    )
