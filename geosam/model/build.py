"""``load_model``: a registered architecture plus weights, wrapped in a :class:`RemoteSAM` predictor."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from geosam.errors import CheckpointError
from geosam.model.base import PromptSegmenter
from geosam.model.checkpoint import load_weights, read_checkpoint, read_official_checkpoint
from geosam.model.predictor import Precision, RemoteSAM
from geosam.model.registry import create, get_spec

DEFAULT_MODEL = "remotesam-lite"


def packaged_weights(filename: str) -> Path:
    """Path of a weights file shipped inside the package (it may not exist yet)."""
    return Path(str(resources.files("geosam") / "weights" / filename))


def load_model(
    name: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device = "auto",
    precision: Precision = "auto",
    batch_size: int | None = None,
    tta: bool = False,
    scales: Sequence[float] = (1.0,),
) -> RemoteSAM:
    """Load a network with its weights and return a ready predictor.

    ``name`` is a registered architecture (see :func:`geosam.model.list_models`) or the path of a
    geosam safetensors checkpoint. ``weights`` is a geosam ``.safetensors`` file or, for
    ``remotesam-v1``, the official ``RemoteSAMv1.pth``; without it the packaged weights are used.
    ``tta=True`` adds mirrored views at test time (three forward passes) and ``scales=(0.75, 1,
    1.25)`` views of the image seen smaller and larger (see :class:`RemoteSAM`).

    >>> model = geosam.load_model()  # remotesam-lite, packaged weights, best device  # doctest: +SKIP
    >>> model = geosam.load_model("remotesam-v1", weights="RemoteSAMv1.pth", device="cpu",
    ...                           precision="fp32")  # doctest: +SKIP
    """
    net = _network(os.fspath(name), weights)
    return RemoteSAM(net, device=device, precision=precision, batch_size=batch_size, tta=tta, scales=scales)


def _network(name: str, weights: str | os.PathLike[str] | None) -> PromptSegmenter:
    """The network :func:`load_model` serves: from a checkpoint path, ``weights`` or the package."""
    if name.endswith(".safetensors") or Path(name).is_file():
        return network_with_weights(None, name)
    spec = get_spec(name)
    if weights is not None:
        return network_with_weights(spec.name, weights)
    if spec.weights is not None and packaged_weights(spec.weights).is_file():
        return network_with_weights(spec.name, packaged_weights(spec.weights))
    if spec.weights is None:
        raise CheckpointError(
            f"{spec.name} has no packaged weights: download its checkpoint yourself (for remotesam-v1, "
            "RemoteSAMv1.pth from the 1e12Leon/RemoteSAM model hub page) and pass weights=PATH"
        )
    warnings.warn(
        f"{spec.name}: no trained weights are packaged yet; using its pretrained parts with an "
        "untrained head (predictions are not meaningful)",
        UserWarning,
        stacklevel=3,
    )
    torch.manual_seed(0)  # the untrained head is at least deterministic
    return create(spec.name)


def network_with_weights(
    name: str | None,
    weights: str | os.PathLike[str],
    *,
    overrides: Mapping[str, Any] | None = None,
    allow_grown: bool = False,
) -> PromptSegmenter:
    """The network ``name`` loaded from ``weights``: a geosam ``.safetensors`` checkpoint of that
    architecture (its configuration updated by ``overrides``; ``name=None`` takes the checkpoint's
    own) or an official ``.pth`` (``RemoteSAMv1.pth``). ``allow_grown`` lets ``overrides`` add parts
    the file lacks that start out neutral (``fine_head=True``). :func:`load_model` and
    ``geosam train --init`` both use it.

    >>> net = network_with_weights("remotesam-v1", "RemoteSAMv1.pth")  # doctest: +SKIP
    """
    path = os.fspath(weights)
    overrides = dict(overrides or {})
    if name is None or path.endswith(".safetensors"):
        config, state = read_checkpoint(path)
        if name is not None and config.get("arch") != name:
            raise CheckpointError(
                f"{path} holds a {config.get('arch')!r} checkpoint, not {name!r}: load it with its own "
                f"architecture (load_model({path!r}), or --model {config.get('arch')})"
            )
        net = create(config["arch"], **{**config.get("config", {}), **overrides})
    else:
        net = create(name, **overrides)
        state = read_official_checkpoint(path)
    load_weights(net, state, source=path, allow_grown=allow_grown)
    return net
