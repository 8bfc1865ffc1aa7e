"""The training loop: one function, :func:`train`, driven by a :class:`TrainConfig`.

It runs the same on one CPU, one GPU, or many GPUs under ``torchrun`` (DistributedDataParallel), and
can be interrupted at any time (Ctrl-C, SIGTERM, ``max_steps``): it then writes its state, and the
same call with ``resume=True`` continues to exactly the weights an uninterrupted run gives.

Files in ``out``: ``config.json`` (the run's settings), ``log.jsonl`` (steps and epochs with their
metrics), ``last.safetensors`` / ``best.safetensors`` (geosam checkpoints, best by validation oIoU),
``resume.pt`` (optimizer, schedule, position, random state and the run's settings; plain tensors
and strings, read with ``weights_only=True``). A folder that holds a run is continued
(``resume=True``, with the settings of :data:`geosam.train.run_folder.RESUMABLE_SETTINGS` free to change) or cleared
(``overwrite=True``), never written over.

>>> result = train(TrainConfig(data="triplets", out="runs/lite", epochs=2, batch_size=4))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import json
import math
import os
import signal
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from geosam.data.dataset import Augment, TripletDataset
from geosam.data.vocabulary import VOCABULARY, members
from geosam.errors import CheckpointError, InputError
from geosam.model.base import PromptSegmenter
from geosam.model.build import network_with_weights, packaged_weights
from geosam.model.checkpoint import (
    CONFIG_KEY,
    save_checkpoint,
)
from geosam.model.predictor import resolve_device, resolve_precision
from geosam.model.registry import create, get_spec, list_models
from geosam.train.ddp import DistInfo, EpochSampler, barrier, init_distributed
from geosam.train.loss import LossParts, contact_loss, segmentation_loss
from geosam.train.metrics import SegmentationMeter
from geosam.train.run_folder import (
    RESUME_FILE,
    check_out,
    clear_run,
    load_resume,
    path_id,
    resume_changes,
    save_resume,
)

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainConfig:
    """Settings of a training run (the ``geosam train`` options)."""

    data: str
    out: str
    model: str = "remotesam-lite"
    input_size: int | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    init: str | None = None
    resume: bool = False
    overwrite: bool = False
    epochs: int = 10
    batch_size: int = 8
    accumulate: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 0
    poly_power: float = 0.9
    lr_mult: dict[str, float] = field(default_factory=dict)
    freeze: tuple[str, ...] = ()
    clip_grad: float | None = None
    precision: str = "auto"
    device: str = "auto"
    threads: int | None = None
    workers: int = 0
    seed: int = 0
    balance: float | None = 0.5
    augment: bool = True
    max_zoom_out: float = 1.0
    sensor_shift: float = 0.0
    train_splits: tuple[str, ...] = ("train",)
    train_limit: int | None = None
    sources: tuple[str, ...] | None = None
    val_splits: tuple[str, ...] = ("valid",)
    val_limit: int | None = None
    val_every: int = 1
    val_batch_size: int | None = None
    save_every: int = 0
    log_every: int = 10
    max_steps: int | None = None
    class_weights: tuple[float, float] = (0.9, 1.1)
    dice_weight: float = 0.1
    presence_weight: float = 0.0
    negative_regions: float = 0.0
    seam_weight: float = 1.0
    contact_weight: float = 1.0
    find_unused_parameters: bool | None = None
    sync_bn: bool = True
    progress: bool = True

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    network: PromptSegmenter
    out: Path
    history: list[dict[str, Any]]
    completed: bool
    global_step: int


# -- building blocks ----------------------------------------------------------------------------
def build_network(
    name: str,
    *,
    input_size: int | None = None,
    init: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> PromptSegmenter:
    """``create(name)`` (with ``input_size`` and architecture ``options`` if given), initialised
    from ``init``: a geosam ``.safetensors`` checkpoint, or an official ``.pth`` (e.g.
    ``RemoteSAMv1.pth`` for remotesam-v1), or the name of a registered model with packaged weights
    (``"remotesam-lite"``). Options override the checkpoint's configuration; a part
    they add that starts out neutral (``grown_weights``, e.g. ``fine_head=True``) may be absent from
    ``init``."""
    overrides = dict(options or {})
    if input_size is not None:
        overrides["input_size"] = input_size
    if init is None:
        return create(name, **overrides)
    return network_with_weights(name, weights_path(init), overrides=overrides, allow_grown=True)


def weights_path(init: str | os.PathLike[str]) -> Path:
    """``init`` as a path: a registered model's name stands for its packaged weights.

    >>> weights_path("remotesam-lite").name
    'remotesam-lite.safetensors'
    """
    if Path(init).exists():
        return Path(init)
    names = list_models()
    if str(init) in names:
        packaged = get_spec(str(init)).weights
        if packaged is None:
            raise CheckpointError(f"init {str(init)!r} is a registered model without packaged weights: pass the "
                                  f"path of its checkpoint instead (for remotesam-v1, RemoteSAMv1.pth)")
        return packaged_weights(packaged)
    close = difflib.get_close_matches(str(init), names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise CheckpointError(f"init {str(init)!r} not found: no such file, and no registered model of that "
                          f"name (registered: {', '.join(names)}){hint}")


def check_prefixes(net: nn.Module, *, freeze: Sequence[str], lr_mult: Mapping[str, float]) -> None:
    """Refuse ``freeze`` and ``lr_mult`` prefixes that match no parameter name: a misspelt one would
    otherwise be ignored and everything train at the full rate."""
    names = [name for name, _ in net.named_parameters()]
    tops = sorted({name.split(".")[0] + "." for name in names})
    for option, prefixes in (("freeze", list(freeze)), ("lr_mult", list(lr_mult))):
        for prefix in prefixes:
            if not any(name.startswith(prefix) for name in names):
                close = difflib.get_close_matches(prefix, tops, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InputError(f"{option} prefix {prefix!r} matches no parameter of "
                                 f"{getattr(net, 'arch', '') or type(net).__name__}{hint}; its parameter "
                                 f"names start with {', '.join(tops)}")


def param_groups(
    net: nn.Module, *, lr: float, weight_decay: float, lr_mult: Mapping[str, float]
) -> list[dict[str, Any]]:
    """AdamW groups: per learning-rate multiplier (longest matching name prefix), with no weight
    decay on biases and normalisation weights."""
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    names: dict[tuple[float, bool], list[str]] = {}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        matches = [k for k in lr_mult if name.startswith(k)]
        mult = lr_mult[max(matches, key=len)] if matches else 1.0
        key = (mult, p.ndim > 1)
        groups.setdefault(key, []).append(p)
        names.setdefault(key, []).append(name)
    if not groups:
        raise InputError("no trainable parameters: is everything frozen?")
    return [
        {"params": ps, "lr": lr * mult, "weight_decay": weight_decay if decay else 0.0, "lr_mult": mult}
        for (mult, decay), ps in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    ]


def poly_schedule(total_steps: int, *, warmup_steps: int = 0, power: float = 0.9) -> Any:
    """LR factor of a step: linear warmup, then ``(1 - t / T) ** power`` (RemoteSAM's poly decay)."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        t = min(step, total_steps) / max(total_steps, 1)
        return max(1.0 - t, 0.0) ** power

    return factor


def unused_parameters(net: PromptSegmenter, device: torch.device) -> set[str]:
    """Names of trainable parameters that get no gradient from a forward pass (dead branches, such as
    the gates after the last fusion stage), found on a copy of the network with one dummy batch."""
    from geosam.model.text import tokenize

    probe = copy.deepcopy(net).to(device).train()
    ids, mask = tokenize(["probe"], net.max_tokens)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        pixels = torch.zeros(1, 3, net.input_size, net.input_size, device=device)
        probe(pixels, ids.to(device), mask.to(device)).float().sum().backward()
    return {n for n, p in probe.named_parameters() if p.requires_grad and p.grad is None}


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    dtype = _AUTOCAST.get(precision)
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype else contextlib.nullcontext()


@torch.no_grad()
def evaluate_triplets(
    net: PromptSegmenter,
    dataset: TripletDataset,
    *,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    progress: bool = False,
    workers: int = 0,
) -> dict[str, float]:
    """oIoU, mIoU and empty-mask accuracy of ``net`` on ``dataset`` (no augmentation), overall and
    per expression kind and source (``size/oIoU``, ``ships_ge/mIoU`` ...): the network alone, in
    batches of input-size views, as validation during training needs it. What a user gets, with
    attribute and relation expressions resolved by geometry, is
    :func:`geosam.evaluation.evaluate_referring` (``geosam evaluate --format triplets``)."""
    device = torch.device(device)
    was_training = net.training
    net.eval()
    meter = SegmentationMeter()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         pin_memory=device.type == "cuda")
    kinds, sources = dataset.samples["kind"].tolist(), dataset.samples["source"].tolist()
    for batch in tqdm(loader, desc="validating", leave=False, disable=not progress):
        with _autocast(precision, device):
            logits = net(batch["pixels"].to(device), batch["input_ids"].to(device), batch["attention_mask"].to(device))
        pred = logits.float().argmax(1).cpu()
        groups = [[kinds[i], sources[i]] for i in batch["index"].tolist()]
        meter.update(pred, batch["mask"], groups)
    net.train(was_training)
    return meter.result()


def _train_mode(net: nn.Module) -> None:
    """``net.train()``, except batch norms whose parameters are all frozen (``--freeze``): they keep
    their running statistics and normalise with them, so frozen parts compute what they did."""
    net.train()
    for module in net.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and params and not any(p.requires_grad for p in params):
            module.eval()


# -- checks before any work ----------------------------------------------------------------------
def run_settings(cfg: TrainConfig, **resolved: Any) -> dict[str, Any]:
    """What identifies a run, as JSON values: ``cfg`` without where it writes and how it starts,
    plus the ``resolved`` values (``world_size``, the precision and device that ``auto`` chose)."""
    settings: dict[str, Any] = json.loads(json.dumps(cfg.to_json()))
    for key in ("out", "resume", "overwrite"):
        settings.pop(key, None)
    settings["data"] = path_id(settings["data"])
    if settings["init"] is not None:
        settings["init"] = path_id(settings["init"])
    return {**settings, **resolved}


def _saved_settings(state: Mapping[str, Any], out: Path) -> dict[str, Any] | None:
    """The settings the run in ``out`` was started with: from its resume state, or (states written
    before they held them) from its ``config.json``; None where neither says."""
    if "settings" in state:
        saved: dict[str, Any] = json.loads(state["settings"])
        return saved
    config_file = out / "config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text())
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    old = TrainConfig(**{k: v for k, v in config.items() if k in names})
    return run_settings(old, world_size=config.get("world_size", 1), precision=config.get("precision"),
                        device=config.get("device"))


def check_sources(data: str, sources: Sequence[str] | None, splits: Sequence[str]) -> None:
    """Refuse ``sources`` that the dataset does not have, or none of which has samples in
    ``splits``, naming those it has (a dataset without ``dataset.json`` is left to :class:`TripletDataset`)."""
    meta_file = Path(data) / "dataset.json"
    if not sources or not meta_file.is_file():
        return
    meta = json.loads(meta_file.read_text())
    known = sorted(meta.get("sources", {}))
    unknown = [s for s in sources if s not in known]
    if unknown:
        raise InputError(f"sources {', '.join(unknown)} not in the dataset {data}; its sources are {', '.join(known)}")
    held = sorted({key.partition("/")[0] for key, n in meta.get("samples", {}).items()  # "source/split": n
                   if key.partition("/")[2] in splits and n})
    if not set(sources) & set(held):
        raise InputError(f"sources {', '.join(sources)} have no samples in split(s) {', '.join(splits)} of {data}; "
                         f"sources with samples there: {', '.join(held) or 'none'}")


def init_classes(init: str) -> set[str] | None:
    """The leaf classes that the ``init`` weights were trained to find (present in their training
    samples): ``data.classes`` of their checkpoint; None where unknown (an official ``.pth``, a
    checkpoint from before geosam recorded it)."""
    path = weights_path(init)
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        config = json.loads((f.metadata() or {}).get(CONFIG_KEY, "{}"))
    classes = config.get("data", {}).get("classes")
    return set(classes) if classes is not None else None


def warn_forgetting(dataset: TripletDataset, init: str, known: set[str] | None) -> list[str]:
    """Warn of the classes that ``dataset`` names only as absent while the network can find them:
    the dataset shows them in other samples, or the ``init`` weights were trained on them (``known``).
    Classes neither knows (asked only as absent there too, e.g. the packaged weights' helicopters)
    lose nothing. Returns every class named only as absent."""
    absent_only = dataset.negative_only_classes()
    in_data = [c for c in absent_only if c in dataset.meta.get("classes", {})]
    in_init = [c for c in absent_only if c not in in_data and known and set(members(c)) & known]
    reasons = ([f"{', '.join(in_data)} (present in other samples of the dataset)"] if in_data else []) + (
        [f"{', '.join(in_init)} (which {init} was trained to find)"] if in_init else [])
    if reasons:
        warnings.warn(
            f"the training samples name {'; '.join(reasons)} only as absent (one-to-zero prompts or negative "
            f"regions): the network will learn to answer them with empty masks everywhere and forget what "
            f"{init} knew of them (docs/training.md, 'Your own classes')", UserWarning, stacklevel=3)
    return absent_only


# -- the loop -----------------------------------------------------------------------------------
class _Stop:
    """Turns SIGINT/SIGTERM into a request to stop at the next step boundary."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        with contextlib.suppress(ValueError):  # not the main thread: no signal handling
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _broadcast_buffers(net: nn.Module, dinfo: DistInfo) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics drift apart between DDP's per-forward
    broadcasts), so that all ranks hold the very weights that rank 0 saves."""
    if dinfo.enabled:
        for buf in net.buffers():
            torch.distributed.broadcast(buf, 0)


def _trainable_state(net: PromptSegmenter) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items() if not k.startswith(net.external_weights)}


def _batches(loader: Iterator[dict[str, Any]], accumulate: int) -> Iterator[list[dict[str, Any]]]:
    group: list[dict[str, Any]] = []
    for batch in loader:
        group.append(batch)
        if len(group) == accumulate:
            yield group
            group = []


def train(config: TrainConfig) -> TrainResult:
    """Train ``config.model`` on the triplet dataset ``config.data`` (see the module docstring)."""
    cfg = config
    out = Path(cfg.out)
    device = resolve_device(cfg.device)
    dinfo = init_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", dinfo.local_rank)
        torch.cuda.set_device(device)
    precision = resolve_precision(cfg.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every training batch has the same shape
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    for name in ("seam_weight", "contact_weight"):
        if getattr(cfg, name) < 0:
            raise InputError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    augmentation = Augment(max_zoom_out=cfg.max_zoom_out, sensor_shift=cfg.sensor_shift)  # checks before any work
    check_sources(cfg.data, cfg.sources, cfg.train_splits)
    check_out(out, resume=cfg.resume, overwrite=cfg.overwrite)
    settings = run_settings(cfg, world_size=dinfo.world_size, precision=precision, device=str(device))
    resume_path = out / RESUME_FILE
    state = load_resume(resume_path) if cfg.resume and resume_path.is_file() else None
    saved = _saved_settings(state, out) if state is not None else None
    changed = resume_changes(saved, settings, out) if saved is not None else {}
    out.mkdir(parents=True, exist_ok=True)

    net = build_network(cfg.model, input_size=cfg.input_size, init=cfg.init, options=cfg.model_options)
    check_prefixes(net, freeze=cfg.freeze, lr_mult=cfg.lr_mult)
    for name, p in net.named_parameters():
        if cfg.freeze and name.startswith(tuple(cfg.freeze)):
            p.requires_grad_(False)
    net.to(device)
    if dinfo.enabled and cfg.find_unused_parameters is None:
        dead = unused_parameters(net, device)
        for name, p in net.named_parameters():
            if name in dead:
                p.requires_grad_(False)  # DDP would wait forever for their gradients
        if dead and dinfo.is_main:
            print(f"geosam train: {len(dead)} parameters get no gradient and stay frozen: {sorted(dead)[:4]} ...")
    _train_mode(net)  # after every parameter is frozen or not

    train_ds = TripletDataset.for_network(cfg.data, net, list(cfg.train_splits),
                                         augment=augmentation if cfg.augment else False, seed=cfg.seed,
                                         limit=cfg.train_limit, sources=cfg.sources,
                                         negative_regions=cfg.negative_regions)
    # What the trained weights can find, for the forgetting warning of runs that start from them:
    # what these samples show, and what the initial weights knew unless these samples unteach it.
    classes: list[str] = []
    if dinfo.is_main:  # only rank 0 warns and writes checkpoints
        known = init_classes(cfg.init) if cfg.init is not None else None
        absent_only = warn_forgetting(train_ds, cfg.init, known) if cfg.init is not None else []
        unlearnt = {leaf for c in absent_only if c in VOCABULARY for leaf in members(c)}
        classes = sorted(train_ds.shown_classes() | ((known or set()) - unlearnt))
    val_ds: TripletDataset | None = None
    if cfg.val_splits:
        try:
            val_ds = TripletDataset.for_network(cfg.data, net, list(cfg.val_splits), limit=cfg.val_limit,
                                                sources=cfg.sources)
        except InputError:
            warnings.warn(f"no samples in validation split(s) {cfg.val_splits}: validation is skipped", stacklevel=2)
    weights = train_ds.sample_weights(cfg.balance) if cfg.balance is not None else None
    sampler = EpochSampler(len(train_ds), weights=weights, rank=dinfo.rank, world_size=dinfo.world_size, seed=cfg.seed)
    micro_per_epoch = (len(train_ds) // dinfo.world_size) // cfg.batch_size
    steps_per_epoch = micro_per_epoch // cfg.accumulate
    if steps_per_epoch < 1:
        raise InputError(
            f"{len(train_ds)} training samples over {dinfo.world_size} process(es) do not fill one step of "
            f"batch size {cfg.batch_size} x accumulate {cfg.accumulate}"
        )
    total_steps = steps_per_epoch * cfg.epochs

    optimizer = torch.optim.AdamW(param_groups(net, lr=cfg.lr, weight_decay=cfg.weight_decay, lr_mult=cfg.lr_mult))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, poly_schedule(total_steps, warmup_steps=cfg.warmup_steps, power=cfg.poly_power)
    )
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    start_epoch, step_in_epoch, global_step, best = 0, 0, 0, -math.inf
    history: list[dict[str, Any]] = []
    if state is not None:
        missing, unexpected = net.load_state_dict(state["model"], strict=False)
        bad = [k for k in missing if not k.startswith(net.external_weights)] + list(unexpected)
        if bad:
            raise CheckpointError(f"{resume_path} does not match {cfg.model}: {bad[:5]}")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start_epoch, step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        global_step, best = int(state["global_step"]), float(state["best"])
        history = json.loads(state["history"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
    elif cfg.resume and dinfo.is_main:
        print(f"geosam train: no {resume_path} yet, starting from scratch")

    model: nn.Module = net
    if dinfo.enabled:
        if device.type == "cuda" and cfg.sync_bn:
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=bool(cfg.find_unused_parameters),
        )

    log_file = out / "log.jsonl"
    if cfg.overwrite and dinfo.is_main:  # only now: a run refused by a check above keeps its files
        clear_run(out)
    if dinfo.is_main:  # on resume, the run's settings with the changes allowed (RESUMABLE_SETTINGS)
        (out / "config.json").write_text(json.dumps({**cfg.to_json(), "world_size": dinfo.world_size,
                                                      "precision": precision, "device": str(device),
                                                      "steps_per_epoch": steps_per_epoch,
                                                      "train_samples": len(train_ds)}, indent=2) + "\n")

    def log(record: dict[str, Any]) -> None:
        if dinfo.is_main:
            with log_file.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def resume_state(epoch: int, step: int) -> dict[str, Any]:
        state: dict[str, Any] = {
            "model": _trainable_state(net), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": epoch, "step_in_epoch": step, "global_step": global_step, "best": best,
            "history": json.dumps(history), "rng_cpu": torch.get_rng_state(),
            "settings": json.dumps(settings),  # what a resume must keep (resume_changes)
        }
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        if device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(device)
        return state

    meta = {"data": {"path": str(cfg.data), "sources": train_ds.meta.get("sources", {}), "classes": classes},
            "model": cfg.model}
    if state is not None:  # where the run continued, and with which allowed changes
        log({"event": "resume", "epoch": start_epoch, "global_step": global_step, "changed": changed})

    def checkpoint(name: str, **extra: Any) -> None:
        if dinfo.is_main:
            save_checkpoint(net, out / name, **meta, **extra)

    completed = True
    with _Stop() as stop:
        for epoch in range(start_epoch, cfg.epochs):
            skip = step_in_epoch * cfg.accumulate * cfg.batch_size
            sampler.set_epoch(epoch, skip=skip)
            train_ds.set_epoch(epoch)
            gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            loader = torch.utils.data.DataLoader(
                train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=True,
                pin_memory=device.type == "cuda", generator=gen,
            )
            bar = tqdm(total=steps_per_epoch, initial=step_in_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=not (cfg.progress and dinfo.is_main), dynamic_ncols=True)
            epoch_loss, epoch_n, t_last, unlogged = 0.0, 0, time.perf_counter(), 0
            for group in _batches(iter(loader), cfg.accumulate):
                if step_in_epoch >= steps_per_epoch:
                    break
                optimizer.zero_grad(set_to_none=True)
                parts_sum = np.zeros(len(LossParts._fields))
                for k, batch in enumerate(group):
                    sync = k == len(group) - 1 or not dinfo.enabled
                    ctx = contextlib.nullcontext() if sync else model.no_sync()  # type: ignore[operator]
                    with ctx:
                        with _autocast(precision, device):
                            logits, contact = model(batch["pixels"].to(device, non_blocking=True),
                                                    batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                                    parts=True)
                        pixel_weight = (1.0 + (cfg.seam_weight - 1.0) * batch["seams"].to(device).float()
                                 if cfg.seam_weight != 1.0 else None)
                        parts = segmentation_loss(logits, batch["mask"].to(device), class_weights=cfg.class_weights,
                                                  dice_weight=cfg.dice_weight, presence_weight=cfg.presence_weight,
                                                  pixel_weight=pixel_weight)
                        if contact is not None:
                            c = contact_loss(contact, batch["contact"].to(device))
                            parts = parts._replace(total=parts.total + cfg.contact_weight * c, contact=c)
                        loss = parts.total / len(group)
                        if scaler is not None:
                            scaler.scale(loss).backward()
                        else:
                            loss.backward()
                    parts_sum += [float(part.detach()) for part in parts]
                if cfg.clip_grad:
                    if scaler is not None:
                        scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], cfg.clip_grad)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                global_step += 1
                step_in_epoch += 1
                means = {k: float(v) for k, v in zip(LossParts._fields, parts_sum / len(group), strict=True)}
                total = means.pop("total")
                epoch_loss += total
                epoch_n += 1
                bar.update(1)
                bar.set_postfix(loss=f"{total:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
                unlogged += 1
                stopping = stop.requested or (cfg.max_steps is not None and global_step >= cfg.max_steps)
                # The last step is always logged, so that a run shorter than log_every has a step line.
                last_step = stopping or global_step >= total_steps
                if cfg.log_every and (global_step % cfg.log_every == 0 or last_step):
                    now = time.perf_counter()
                    log({"event": "step", "epoch": epoch, "step": step_in_epoch, "global_step": global_step,
                         "loss": total, **means,  # ce, dice, presence, contact
                         "lr": optimizer.param_groups[0]["lr"],
                         "sec_per_step": (now - t_last) / unlogged})
                    t_last, unlogged = now, 0
                if (cfg.save_every and global_step % cfg.save_every == 0) or stopping:
                    if dinfo.is_main:
                        save_resume(resume_path, resume_state(epoch, step_in_epoch))
                    checkpoint("last.safetensors", epoch=epoch, global_step=global_step)
                if stopping and global_step < total_steps:
                    completed = False
                    break
            bar.close()
            if not completed:
                _broadcast_buffers(net, dinfo)
                log({"event": "stopped", "epoch": epoch, "global_step": global_step})
                break
            record: dict[str, Any] = {"event": "epoch", "epoch": epoch, "global_step": global_step,
                                      "train_loss": epoch_loss / max(epoch_n, 1)}
            last_epoch = epoch == cfg.epochs - 1
            if val_ds is not None and dinfo.is_main and ((epoch + 1) % cfg.val_every == 0 or last_epoch):
                metrics = evaluate_triplets(net, val_ds, batch_size=cfg.val_batch_size or cfg.batch_size,
                                            device=device, precision=precision, progress=cfg.progress,
                                            workers=cfg.workers)
                _train_mode(net)
                record.update({f"val/{k}": v for k, v in metrics.items()})
                if metrics.get("oIoU", -math.inf) > best:
                    best = float(metrics["oIoU"])  # a numpy scalar would not load with weights_only
                    checkpoint("best.safetensors", epoch=epoch, global_step=global_step, metrics=metrics)
            history.append(record)
            log(record)
            _broadcast_buffers(net, dinfo)
            step_in_epoch = 0
            checkpoint("last.safetensors", epoch=epoch, global_step=global_step)
            if dinfo.is_main:
                save_resume(resume_path, resume_state(epoch + 1, 0))
            barrier(dinfo)
    barrier(dinfo)
    return TrainResult(net, out, history, completed, global_step)

