"""Exceptions raised by geosam.

Every error a user can trigger with bad input derives from :class:`GeosamError`, and from the builtin
exception that best describes it, so ``except ValueError`` keeps working for callers who expect it.
"""

from __future__ import annotations


class GeosamError(Exception):
    """Base class of all geosam errors."""


class InputError(GeosamError, ValueError):
    """An image, array or scene that the model cannot take (dtype, shape, band count, CRS ...)."""


class PromptError(InputError):
    """A text prompt that is empty, not a string, or otherwise unusable."""


class CheckpointError(GeosamError, ValueError):
    """A weights file that is missing, corrupt, unsafe, or made for another architecture."""


class ModelNotFoundError(GeosamError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class MissingCRSError(InputError):
    """A raster or scene without a coordinate reference system, so results could not be georeferenced."""


class BandError(InputError):
    """Band names that the data does not have, or a band count that cannot make an RGB image."""


class NoDataError(InputError):
    """Input whose pixels are all nodata or NaN: there is nothing to segment."""


class NoItemsError(InputError):
    """A STAC search (or filter of a static catalog) that matched no items."""


class CollectionNotFoundError(InputError):
    """A STAC collection id that the catalog or API does not have."""


class StacServerError(GeosamError, ConnectionError):
    """A STAC API that cannot be reached or keeps answering errors after retries."""


class IncompleteResultError(GeosamError):
    """A result store whose writing job has not finished (it was interrupted, or is still running)."""


class JobMismatchError(GeosamError, FileExistsError):
    """A result store that already holds a different result than the one asked to be written."""
