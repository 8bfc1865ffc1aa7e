"""Accessor classes: one shared base for Dataset and DataArray, result methods on DataArray only."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import xarray as xr

from geosam.distributed import ModelLike, ModelRef
from geosam.tasks.scene import SceneTasksMixin

T = TypeVar("T", xr.Dataset, xr.DataArray)


class _RemoteSAMAccessor(SceneTasksMixin, Generic[T]):
    """What both accessors share: segmenting the scene they hold, and the tasks derived from it
    (``detect``, ``semantic_segment``, ``ground``, ``count``, ...: geosam.tasks.scene)."""

    def __init__(self, obj: T) -> None:
        self._obj: T = obj

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
