"""Run folders: which files a training run writes, how a folder holding one is continued
(``resume``) or cleared (``overwrite``) but never written over, which settings may change on
resume, and the resume state's safe reading and atomic writing."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from geosam.errors import CheckpointError, InputError

RESUME_FILE = "resume.pt"
#: Files whose presence means that a folder holds a run (``train`` refuses to start over them).
RUN_MARKERS = (RESUME_FILE, "last.safetensors", "log.jsonl")
#: Every file a run writes, including half-written ones: what ``overwrite=True`` deletes.
RUN_FILES = (*RUN_MARKERS, "best.safetensors", "config.json", "resume.tmp", "last.safetensors.tmp",
             "best.safetensors.tmp")
#: Settings that may differ when a run is resumed: where and how fast it runs, what it logs and
#: saves, when it stops, and the weights of the loss terms (a curriculum: the packaged weights' first
#: stage added the presence term on resume, docs/model-card.md). Any other difference (the data and
#: its sampling, the architecture and initial weights, batch, optimizer and schedule, validation
#: set) makes it another run, and is refused. A new TrainConfig field is refused until listed here.
RESUMABLE_SETTINGS = frozenset({
    "device", "precision", "threads", "workers", "progress", "log_every", "save_every", "max_steps",
    "val_every", "val_batch_size", "presence_weight", "dice_weight", "class_weights", "seam_weight",
    "contact_weight",
})


def check_out(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Check that ``out`` may take this run: a folder holding a run is continued (``resume``) or
    cleared of the run's files (``overwrite``, :func:`clear_run`), never written over, which would
    mix two runs' logs and leave the old run's ``best.safetensors`` beside the new one's."""
    if resume and overwrite:
        raise InputError(f"resume=True continues the run in {out} and overwrite=True deletes it: pass only one of them")
    if overwrite:
        return
    found = [name for name in RUN_MARKERS if (out / name).exists()]
    if resume and found and RESUME_FILE not in found:
        raise InputError(f"{out} holds files of a run ({', '.join(found)}) but no {RESUME_FILE} to continue from: "
                         f"pass overwrite=True to delete them and start afresh, or choose another out folder")
    if not resume and found:
        raise InputError(f"{out} already holds a training run ({', '.join(found)}): pass resume=True to continue it, "
                         f"overwrite=True to delete its files and start afresh, or choose another out folder")


def clear_run(out: Path) -> None:
    """Delete the files of the run in ``out`` (``overwrite``), and nothing else the folder holds."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


def path_id(value: str) -> str:
    """A path as it compares between runs (absolute, links resolved); a name that is no file as is."""
    return str(Path(value).resolve()) if Path(value).exists() else value


def _show(value: Any) -> str:
    return "(not set)" if value is None else value if isinstance(value, str) else json.dumps(value)


def resume_changes(saved: Mapping[str, Any], current: Mapping[str, Any], out: Path) -> dict[str, list[Any]]:
    """The settings that differ from the run's ``saved`` ones, as ``{name: [old, new]}``; raises
    :class:`InputError` listing each one not in :data:`RESUMABLE_SETTINGS`."""
    # A setting that the saved ones lack (one added to geosam since) cannot be compared.
    changed = {k: [saved[k], v] for k, v in current.items() if k in saved and saved[k] != v}
    refused = {k: v for k, v in changed.items() if k not in RESUMABLE_SETTINGS}
    if refused:
        lines = "".join(f"\n  {k}: {_show(old)} -> {_show(new)}" for k, (old, new) in sorted(refused.items()))
        further = (f"; to train a finished run further, start a new one from its weights, "
                   f"init={out / 'last.safetensors'}" if "epochs" in refused else "")
        raise InputError(f"resume=True would continue the run in {out} with other settings, which makes it another "
                         f"run:{lines}\nresume with the run's settings ({out / 'config.json'}), or pass "
                         f"overwrite=True to start afresh, or choose another out folder{further} (docs/training.md, "
                         f"'Run folders')")
    return changed


def save_resume(path: Path, state: dict[str, Any]) -> None:
    """Write the resume state through a temporary file, so an interruption never leaves half of one."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_resume(path: Path) -> dict[str, Any]:
    """The resume state in ``path``, read with ``weights_only=True`` (tensors, numbers, strings)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or foreign file: say which
        raise CheckpointError(f"cannot read the resume state {path}: {err}") from err
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a geosam resume state")
    return state
