"""Accessor classes: one shared base for Dataset and DataArray, result methods on DataArray only."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import xarray as xr

from geosam.distributed import ModelLike, ModelRef
from geosam.tasks.scene import (
    class_scores_scene,
    classify_regions,
    count_scene,
    detect_changes_scene,
    detect_scene,
    ground_scene,
    semantic_segment_scene,
)

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

T = TypeVar("T", xr.Dataset, xr.DataArray)


class _RemoteSAMAccessor(Generic[T]):
    """What both accessors share: segmenting the scene they hold, and the tasks derived from it
    (``detect``, ``semantic_segment``, ``ground``, ``count``, ...: geosam.tasks.scene)."""

    def __init__(self, obj: T) -> None:
        self._obj: T = obj

    @property
    def gsd(self) -> float:
        """Metres on the ground per pixel at the scene's centre, in any CRS (``segment(gsd=...)``
        sizes windows from it; :func:`geosam.segment.scene_gsd`).

        >>> rioxarray.open_rasterio("naip.tif").remotesam.gsd        # 0.6  # doctest: +SKIP
        """
        from geosam.segment import scene_gsd

        return scene_gsd(self._obj)

    def segment(
        self,
        prompts: str | Sequence[str],
        *,
        model: ModelLike | ModelRef = None,
        threshold: float | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> xr.DataArray:
        """Lazy foreground probability (or a mask with ``threshold``) of ``prompts``: see :func:`geosam.segment`.

        >>> ds.remotesam.segment("ships", threshold=0.5)            # doctest: +SKIP
        """
        from geosam.segment import segment

        return segment(
            self._obj,
            prompts,
            model=model,
            threshold=threshold,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            **kwargs,
        )

    def semantic_segment(self, classes: str | Sequence[str], **kwargs: Any) -> xr.DataArray:
        """Lazy label map of the scene: see :func:`geosam.tasks.scene.semantic_segment_scene`.

        >>> ds.remotesam.semantic_segment(["building", "road", "water"])  # doctest: +SKIP
        """
        return semantic_segment_scene(self._obj, classes, **kwargs)

    def detect(self, classes: str | Sequence[str], **kwargs: Any) -> gpd.GeoDataFrame:
        """Boxes of each class in the scene's CRS: see :func:`geosam.tasks.scene.detect_scene`.

        >>> ds.remotesam.detect(["ship"], oriented=True)  # doctest: +SKIP
        """
        return detect_scene(self._obj, classes, **kwargs)

    def ground(self, expression: str, **kwargs: Any) -> gpd.GeoDataFrame:
        """Box of what an expression refers to: see :func:`geosam.tasks.scene.ground_scene`.

        >>> ds.remotesam.ground("the pond next to the barn")  # doctest: +SKIP
        """
        return ground_scene(self._obj, expression, **kwargs)

    def count(self, classes: str | Sequence[str], **kwargs: Any) -> pd.DataFrame:
        """Objects per class, per scene or region: see :func:`geosam.tasks.scene.count_scene`.

        >>> ds.remotesam.count(["ship"], regions=harbours)  # doctest: +SKIP
        """
        return count_scene(self._obj, classes, **kwargs)

    def class_scores(self, classes: str | Sequence[str], **kwargs: Any) -> pd.DataFrame:
        """Class scores per scene or region: see :func:`geosam.tasks.scene.class_scores_scene`.

        >>> ds.remotesam.class_scores(["farmland", "forest"])  # doctest: +SKIP
        """
        return class_scores_scene(self._obj, classes, **kwargs)

    def classify_regions(
        self, regions: gpd.GeoDataFrame | gpd.GeoSeries, classes: str | Sequence[str], **kwargs: Any
    ) -> gpd.GeoDataFrame:
        """The class of each region: see :func:`geosam.tasks.scene.classify_regions`.

        >>> ds.remotesam.classify_regions(parcels, ["farmland", "forest"])  # doctest: +SKIP
        """
        return classify_regions(self._obj, regions, classes, **kwargs)

    def detect_changes(self, prompt: str, **kwargs: Any) -> gpd.GeoDataFrame:
        """Objects that appeared / disappeared: see :func:`geosam.tasks.scene.detect_changes_scene`.

        >>> ds.remotesam.detect_changes("buildings")  # doctest: +SKIP
        """
        return detect_changes_scene(self._obj, prompt, **kwargs)


@xr.register_dataset_accessor("remotesam")
class RemoteSAMDatasetAccessor(_RemoteSAMAccessor[xr.Dataset]):
    """``ds.remotesam``: segment a scene held as red/green/blue variables (what ``geosam.open_stac`` returns)."""


@xr.register_dataarray_accessor("remotesam")
class RemoteSAMArrayAccessor(_RemoteSAMAccessor[xr.DataArray]):
    """``da.remotesam``: segment a band-stacked scene, or vectorize and store a segmentation result."""

    def to_geodataframe(self, **kwargs: Any) -> Any:
        """Polygons (or boxes) of the result, merged across chunks: see :func:`geosam.to_geodataframe`.

        >>> prob.remotesam.to_geodataframe(threshold=0.5, geometry="box")   # doctest: +SKIP
        """
        from geosam.vectorize import to_geodataframe

        return to_geodataframe(self._obj, **kwargs)

    def to_zarr(self, store: str | os.PathLike[str] | Any, **kwargs: Any) -> Any:
        """Write the result chunk by chunk into a resumable Zarr store: see :func:`geosam.to_zarr`.

        >>> prob.remotesam.to_zarr("ships.zarr")                             # doctest: +SKIP
        """
        from geosam.zarr_store import to_zarr

        return to_zarr(self._obj, store, **kwargs)
