"""A small model registry: names to builders, as timm does.

Network modules register their builders at import time::

    @register_model("remotesam-lite", weights="remotesam-lite.safetensors")
    def remotesam_lite(**config) -> PromptSegmenter: ...

and users build networks by name with :func:`create`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from geosam.errors import InputError, ModelNotFoundError
from geosam.model.base import PromptSegmenter

Builder = Callable[..., PromptSegmenter]

# Built-in architectures and the module whose import registers each; imported on first use so that
# using one network never pays for importing the other.
_BUILTIN_MODULES = {
    "remotesam-v1": "geosam.model.remotesam_v1",
    "remotesam-lite": "geosam.model.lite",
}


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture."""

    name: str
    builder: Builder
    #: File name of weights shipped in ``geosam/weights`` (None: users bring their own).
    weights: str | None
    description: str


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, *, weights: str | None = None, description: str = ""
) -> Callable[[Builder], Builder]:
    """Decorator that registers ``builder`` under ``name``."""

    def wrap(builder: Builder) -> Builder:
        doc = description or (builder.__doc__ or "").strip().splitlines()[0]
        _REGISTRY[name] = ModelSpec(name, builder, weights, doc)
        return builder

    return wrap


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES.values():
        importlib.import_module(module)


def get_spec(name: str) -> ModelSpec:
    """The registered spec of ``name``; raises :class:`ModelNotFoundError` with the known names."""
    if name in _BUILTIN_MODULES and name not in _REGISTRY:
        importlib.import_module(_BUILTIN_MODULES[name])
    if name not in _REGISTRY:
        _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ModelNotFoundError(f"unknown model {name!r}; registered models: {known}") from None


def list_models() -> list[str]:
    """Names of all registered architectures.

    >>> "remotesam-v1" in list_models()
    True
    """
    _load_builtins()
    return sorted(_REGISTRY)


def create(name: str, **overrides: Any) -> PromptSegmenter:
    """Build the network ``name`` with its default configuration updated by ``overrides``.

    The network has freshly initialised (or pretrained-part) weights; use :func:`geosam.load_model`
    for a ready predictor with trained weights.

    >>> net = create("remotesam-lite", input_size=256)
    >>> net.input_size
    256
    """
    spec = get_spec(name)
    known = inspect.signature(spec.builder).parameters
    unknown = sorted(set(overrides) - set(known))
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in known.values()):
        fixed = " (its input size is fixed)" if "input_size" in unknown else ""
        raise InputError(
            f"{name} has no setting {', '.join(map(repr, unknown))}{fixed}; its settings: {', '.join(known)}"
        )
    net = spec.builder(**overrides)
    net.arch = name
    return net
