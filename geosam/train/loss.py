"""RemoteSAM's training loss: 0.9 * weighted cross-entropy + 0.1 * Dice.

Cross-entropy has class weights ``[0.9, 1.1]`` (background, foreground) and PyTorch's weighted mean.
Dice compares the softmax with the one-hot target per image and class, ``1 - (2 I + s) / (P + T + s)``
with ``s = 1e-6``, summed over images and both classes, as the official code does. Pixels whose
target is ``ignore_index`` count in neither term.

>>> loss = segmentation_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F


class LossParts(NamedTuple):
    total: torch.Tensor
    ce: torch.Tensor
    dice: torch.Tensor


def dice_loss(
    logits: torch.Tensor, target: torch.Tensor, *, smooth: float = 1e-6, ignore_index: int = 255,
    reduction: str = "sum",
) -> torch.Tensor:
    """``1 - dice`` of softmax(logits) against one-hot(target), per image and class, reduced."""
    probs = torch.softmax(logits.float(), dim=1)
    valid = (target != ignore_index).unsqueeze(1).to(probs.dtype)
    onehot = F.one_hot(target.clamp(0, logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    probs, onehot = probs * valid, onehot * valid
    dims = tuple(range(2, logits.ndim))
    inter = (probs * onehot).sum(dims)
    union = probs.sum(dims) + onehot.sum(dims)
    loss = 1 - (2 * inter + smooth) / (union + smooth)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    class_weights: Sequence[float] = (0.9, 1.1),
    dice_weight: float = 0.1,
    smooth: float = 1e-6,
    ignore_index: int = 255,
    dice_reduction: str = "sum",
) -> LossParts:
    """``(1 - dice_weight) * CE + dice_weight * Dice`` for logits ``(B, 2, H, W)`` and a long target
    ``(B, H, W)``; returns the total and both parts."""
    if logits.ndim != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"logits (B,C,H,W) and target (B,H,W) differ: {tuple(logits.shape)} vs {tuple(target.shape)}")
    weight = torch.tensor(list(class_weights), dtype=torch.float32, device=logits.device)
    ce = F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index)
    dice = dice_loss(logits, target, smooth=smooth, ignore_index=ignore_index, reduction=dice_reduction)
    return LossParts((1 - dice_weight) * ce + dice_weight * dice, ce, dice)
