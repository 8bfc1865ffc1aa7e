"""Process groups from torchrun's environment, and the epoch sampler shared by all ranks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group described by ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (set by torchrun),
    with NCCL on GPUs and gloo on CPUs. Without those variables: a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistInfo(rank, world, local)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


class EpochSampler(torch.utils.data.Sampler[int]):
    """The sample order of an epoch, split across ranks.

    Uniform (a permutation) or weighted (``weights``, drawn with replacement); the order depends
    only on ``seed`` and the epoch, so every rank agrees and a resumed run sees the same order.
    ``skip`` drops the first samples of this rank's share (resuming inside an epoch).
    """

    def __init__(
        self, n: int, *, weights: np.ndarray | None = None, rank: int = 0, world_size: int = 1, seed: int = 0
    ) -> None:
        self.n, self.weights, self.rank, self.world = n, weights, rank, world_size
        self.seed, self.epoch, self.skip = seed, 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def order(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.weights is None:
            full = rng.permutation(self.n)
        else:
            full = rng.choice(self.n, size=self.n, replace=True, p=self.weights)
        per_rank = self.n // self.world
        return full[self.rank : per_rank * self.world : self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(int(i) for i in self.order()[self.skip :])

    def __len__(self) -> int:
        return self.n // self.world - self.skip
