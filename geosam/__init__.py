"""geosam: text-prompted segmentation of Earth-observation scenes with RemoteSAM, for the Pangeo stack.

>>> import geosam
>>> model = geosam.load_model()
>>> prob = model.predict(image, "ships")   # doctest: +SKIP
"""

import geosam.accessors  # noqa: F401  (registers the .remotesam accessor on xarray objects)
from geosam.errors import CheckpointError, GeosamError, InputError, PromptError
from geosam.model import RemoteSAM, create, list_models, load_model
from geosam.segment import segment
from geosam.stac import open_stac
from geosam.vectorize import boxes, to_geodataframe
from geosam.zarr_store import open_result, to_zarr

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "GeosamError",
    "InputError",
    "PromptError",
    "RemoteSAM",
    "__version__",
    "boxes",
    "create",
    "list_models",
    "load_model",
    "open_result",
    "open_stac",
    "segment",
    "to_geodataframe",
    "to_zarr",
]
