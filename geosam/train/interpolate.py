"""Weight interpolation between a checkpoint and its fine-tuned descendant (WiSE-FT).

Fine-tuning the packaged weights on labels of a few classes teaches the network the new labels and
makes it forget the rest (docs/training.md, "Your own classes"). Averaging the two sets of weights,
``(1 - weight) * start + weight * tuned``, keeps much of both, because a fine-tuned network stays
in the basin of the weights it started from (Wortsman et al., "Robust fine-tuning of zero-shot
models", CVPR 2022). The blend costs nothing to make and is scored like any checkpoint: try a few
weights and keep the one whose scores on your classes and on the others suit you.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from geosam.errors import CheckpointError, InputError
from geosam.model.checkpoint import compare_states, name_listing, read_checkpoint, write_checkpoint
from geosam.train.trainer import weights_path


def interpolate_state(
    start: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], weight: float
) -> dict[str, torch.Tensor]:
    """``(1 - weight) * start + weight * tuned`` for each floating-point tensor; counters (a batch
    norm's ``num_batches_tracked``) are taken from ``tuned``. Both must have the same names and shapes.

    >>> interpolate_state({"w": torch.zeros(2)}, {"w": torch.ones(2)}, 0.25)["w"]
    tensor([0.2500, 0.2500])
    """
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"interpolation weight {weight} is outside [0, 1] (0: the start weights, 1: the tuned)")
    only_start, only_tuned, reshaped = compare_states(start, tuned)
    shapes = [f"{k}: start {tuple(start[k].shape)} vs tuned {tuple(tuned[k].shape)}" for k in reshaped]
    if only_start or only_tuned or shapes:
        problems = [name_listing(label, items) for label, items in (("only in the start weights", only_start),
                                                                    ("only in the tuned weights", only_tuned),
                                                                    ("different shapes", shapes)) if items]
        raise CheckpointError("the two checkpoints are not the same network, so their weights cannot be "
                              "interpolated (was one trained with another --model-option?): " + "; ".join(problems))
    return {k: torch.lerp(start[k].float(), tuned[k].float(), weight).to(tuned[k].dtype)
            if tuned[k].is_floating_point() else tuned[k].clone() for k in tuned}


def interpolate_weights(
    start: str | os.PathLike[str],
    tuned: str | os.PathLike[str],
    weight: float,
    out: str | os.PathLike[str],
) -> Path:
    """Write ``(1 - weight) * start + weight * tuned`` to ``out``, a checkpoint that loads like any
    other (``geosam.load_model(out)``, ``geosam evaluate --model out``).

    ``start`` is a geosam ``.safetensors`` checkpoint or a registered model's name (its packaged
    weights); ``tuned`` a checkpoint fine-tuned from it. The result takes ``tuned``'s architecture
    settings, records both files and the weight, and names the data sources (with their licences)
    and classes of both, since it is trained on all of them.

    >>> interpolate_weights("remotesam-lite", "runs/ships/last.safetensors", 0.5,
    ...                     "ships-half.safetensors")  # doctest: +SKIP
    PosixPath('ships-half.safetensors')
    """
    start_path, tuned_path = weights_path(start), weights_path(tuned)
    start_config, start_state = read_checkpoint(start_path)
    tuned_config, tuned_state = read_checkpoint(tuned_path)
    if start_config.get("arch") != tuned_config.get("arch"):
        raise CheckpointError(f"{start_path} is a {start_config.get('arch')!r} checkpoint and {tuned_path} a "
                              f"{tuned_config.get('arch')!r} one: only weights of one architecture interpolate")
    state = interpolate_state(start_state, tuned_state, weight)
    config: dict[str, Any] = {key: tuned_config[key] for key in ("arch", "config", "model") if key in tuned_config}
    config["data"] = _merged_data(start_config.get("data", {}), tuned_config.get("data", {}))
    config["interpolated"] = {"start": str(start_path), "tuned": str(tuned_path), "weight": weight}
    return write_checkpoint(state, config, out)


def _merged_data(start: dict[str, Any], tuned: dict[str, Any]) -> dict[str, Any]:
    """The training data of a blend: both sets of sources (a source's licence binds the blend as
    much as it bound either parent) and both lists of classes."""
    merged: dict[str, Any] = {"sources": {**start.get("sources", {}), **tuned.get("sources", {})}}
    classes = [c for c in (start.get("classes"), tuned.get("classes")) if c is not None]
    if classes:
        merged["classes"] = sorted(set().union(*classes))
    return merged
