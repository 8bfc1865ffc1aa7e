"""geosam: text-prompted segmentation of Earth-observation scenes with RemoteSAM, for the Pangeo stack.

>>> import geosam
>>> model = geosam.load_model()
>>> prob = model.predict(image, "ships")   # doctest: +SKIP
"""

from geosam.errors import CheckpointError, GeosamError, InputError, PromptError
from geosam.model import RemoteSAM, create, list_models, load_model
from geosam.stac import open_stac

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "GeosamError",
    "InputError",
    "PromptError",
    "RemoteSAM",
    "__version__",
    "create",
    "list_models",
    "load_model",
    "open_stac",
]
