"""The ``.remotesam`` accessor on xarray Datasets and DataArrays (registered by ``import geosam``).

Thin methods over the plain functions :func:`geosam.segment`, :func:`geosam.to_geodataframe` and
:func:`geosam.to_zarr`:

>>> import geosam
>>> prob = ds.remotesam.segment("water")                     # doctest: +SKIP
>>> gdf = prob.remotesam.to_geodataframe(threshold=0.5)      # doctest: +SKIP
>>> prob.remotesam.to_zarr("water.zarr")                     # doctest: +SKIP
"""

from geosam.accessors._remotesam import RemoteSAMArrayAccessor, RemoteSAMDatasetAccessor

__all__ = ["RemoteSAMArrayAccessor", "RemoteSAMDatasetAccessor"]
