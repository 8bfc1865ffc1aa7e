"""Reading and writing weights, safely.

* geosam's own checkpoints are a single safetensors file whose metadata holds the JSON config
  (architecture name + builder arguments). Nothing is unpickled.
* The official ``RemoteSAMv1.pth`` is a torch pickle; it is read with ``torch.load(weights_only=True)``
  allowing only ``argparse.Namespace`` (its ``args`` entry), so a malicious file cannot run code.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from geosam.errors import CheckpointError
from geosam.model.base import PromptSegmenter

CONFIG_KEY = "geosam_config"
# The only non-tensor global inside RemoteSAMv1.pth.
_OFFICIAL_SAFE_GLOBALS: list[Any] = [argparse.Namespace]


def save_checkpoint(net: PromptSegmenter, path: str | os.PathLike[str], **extra: Any) -> Path:
    """Write ``net``'s weights and config to ``path`` (safetensors). ``extra`` goes into the config.

    >>> save_checkpoint(net, "lite.safetensors", epochs=10)  # doctest: +SKIP
    """
    state = {k: v for k, v in net.state_dict().items() if not k.startswith(net.external_weights)}
    return write_checkpoint(state, {"arch": net.arch, "config": net.config, **extra}, path)


def write_checkpoint(
    state: Mapping[str, torch.Tensor], config: Mapping[str, Any], path: str | os.PathLike[str]
) -> Path:
    """Write a state dict with its geosam ``config`` (``arch``, ``config``, ...) to ``path``, as
    :func:`save_checkpoint` does for a network."""
    path = Path(path)
    # safetensors refuses shared storage; contiguous copies keep the file self-contained.
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata={CONFIG_KEY: json.dumps(config)})
    os.replace(tmp, path)  # never leave a half-written checkpoint under the final name
    return path


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The config and state dict of a geosam safetensors checkpoint."""
    path = _existing(path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        if _is_resume_state(path):
            raise CheckpointError(
                f"{path} is the resume state of a geosam training run (optimizer, schedule and "
                f"position, for `geosam train --resume`), not weights: load "
                f"{path.parent / 'last.safetensors'} (the latest weights) or "
                f"{path.parent / 'best.safetensors'} (the best by validation oIoU)"
            ) from err
        raise CheckpointError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {err}"
        ) from err
    if CONFIG_KEY not in metadata:
        raise CheckpointError(
            f"{path} has no geosam config in its metadata; was it written by save_checkpoint?"
        )
    return json.loads(metadata[CONFIG_KEY]), state


def read_official_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The ``model`` state dict of an official RemoteSAM ``.pth`` file, loaded without running code."""
    path = _existing(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a torch checkpoint archive (truncated, corrupt, or another format)"
        )
    try:
        with torch.serialization.safe_globals(_OFFICIAL_SAFE_GLOBALS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} contains objects that a weights-only load refuses (it could run code), so it "
            f"was not loaded. Only tensors and argparse.Namespace are allowed. Details: {err}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"{path} could not be read (truncated or corrupt?): {err}") from err
    if isinstance(ckpt, Mapping) and "model" in ckpt:
        ckpt = ckpt["model"]
    if not isinstance(ckpt, Mapping) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors under 'model'")
    return dict(ckpt)


def load_weights(
    net: PromptSegmenter,
    state: Mapping[str, torch.Tensor],
    *,
    source: str = "",
    allow_grown: bool = False,
) -> None:
    """Load ``state`` into ``net`` after a strict check of names and shapes, with a readable error.

    ``allow_grown``: ``state`` may lack the network's ``grown_weights`` (a head added for
    fine-tuning, which starts out leaving the output unchanged).
    """
    own = net.state_dict()
    # Frozen parts that come from an installed package are already in place.
    absent_ok = net.external_weights + (net.grown_weights if allow_grown else ())
    missing, unexpected, reshaped = compare_states(own, state, absent_ok=absent_ok)
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in reshaped]
    if missing or unexpected or wrong:
        where = f" from {source}" if source else ""
        overlap = len(own) - len(missing)
        hint = (
            f" Only {overlap} of {len(own)} names match: this looks like a checkpoint of another architecture."
            if overlap < len(own) // 2
            else ""
        )
        parts = [f"cannot load weights{where} into {net.arch or type(net).__name__}.{hint}"]
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
        ):
            if items:
                parts.append(name_listing(label, items))
        raise CheckpointError("\n  ".join(parts))
    net.load_state_dict(state, strict=not absent_ok)


def compare_states(
    expected: Mapping[str, torch.Tensor],
    given: Mapping[str, torch.Tensor],
    *,
    absent_ok: tuple[str, ...] = (),
) -> tuple[list[str], list[str], list[str]]:
    """The names of ``expected`` that ``given`` lacks (but those starting with an ``absent_ok``
    prefix), the names of ``given`` that ``expected`` lacks, and the shared names whose shapes differ.

    >>> compare_states({"a": torch.zeros(2), "b": torch.zeros(1)}, {"a": torch.zeros(3), "c": torch.zeros(1)})
    (['b'], ['c'], ['a'])
    """
    missing = [k for k in expected if k not in given and not k.startswith(absent_ok)]
    unexpected = [k for k in given if k not in expected]
    reshaped = [k for k in expected if k in given and given[k].shape != expected[k].shape]
    return missing, unexpected, reshaped


def name_listing(label: str, items: list[str], shown: int = 8) -> str:
    """``"3 missing: a, b, c"``, with at most ``shown`` of the items written out."""
    more = f", ... ({len(items) - shown} more)" if len(items) > shown else ""
    return f"{len(items)} {label}: {', '.join(items[:shown])}{more}"


def _is_resume_state(path: Path) -> bool:
    """Whether ``path`` is a torch archive holding geosam.train's resume state, told by the keys in
    its pickle's bytes (nothing is unpickled)."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            data = archive.read(pickles[0]) if pickles else b""
    except (zipfile.BadZipFile, OSError):
        return False
    return all(key in data for key in (b"step_in_epoch", b"global_step", b"optimizer"))


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    return path
