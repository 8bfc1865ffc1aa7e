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
