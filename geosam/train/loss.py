"""RemoteSAM's training loss: 0.9 * weighted cross-entropy + 0.1 * Dice.

Cross-entropy has class weights ``[0.9, 1.1]`` (background, foreground) and PyTorch's weighted mean.
Dice compares the softmax with the one-hot target per image and class, ``1 - (2 I + s) / (P + T + s)``
with ``s = 1e-6``, summed over images and both classes, as the official code does. Pixels whose
target is ``ignore_index`` count in neither term.

An optional image-level presence term (not in the official loss, off by default) is the binary
cross-entropy between the mean foreground probability of each image's most confident pixels and
whether the image holds the referred object at all. On one-to-zero samples the Dice term is
saturated (any predicted mass gives a loss near 1 with a vanishing gradient) and the pixel-averaged
CE weighs a few false-positive pixels lightly; this term penalises exactly the pixels that would
make an empty answer non-empty.

Networks with a contact head (``contact_head=True``) add :func:`contact_loss` on the band where
touching instances meet.

>>> loss = segmentation_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from geosam.data.dataset import IGNORE_INDEX


class LossParts(NamedTuple):
    total: torch.Tensor
    ce: torch.Tensor
    dice: torch.Tensor
    presence: torch.Tensor
    contact: torch.Tensor


def dice_loss(
    logits: torch.Tensor, target: torch.Tensor, *, smooth: float = 1e-6, ignore_index: int = IGNORE_INDEX,
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


def presence_loss(
    logits: torch.Tensor, target: torch.Tensor, *, top_fraction: float = 1e-3, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """BCE between the mean foreground probability of the top ``top_fraction`` of each image's
    valid pixels and whether its target has any foreground; the mean over images."""
    fg = torch.softmax(logits.float(), dim=1)[:, 1].flatten(1)
    flat = target.flatten(1)
    fg = fg.masked_fill(flat == ignore_index, 0.0)
    k = max(1, round(fg.shape[1] * top_fraction))
    score = fg.topk(k, dim=1).values.mean(dim=1).clamp(1e-6, 1 - 1e-6)
    present = (flat == 1).any(dim=1).to(score.dtype)
    return F.binary_cross_entropy(score, present)


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    class_weights: Sequence[float] = (0.9, 1.1),
    dice_weight: float = 0.1,
    smooth: float = 1e-6,
    ignore_index: int = IGNORE_INDEX,
    dice_reduction: str = "sum",
    presence_weight: float = 0.0,
    pixel_weight: torch.Tensor | None = None,
) -> LossParts:
    """``(1 - dice_weight) * CE + dice_weight * Dice + presence_weight * presence`` for logits
    ``(B, 2, H, W)`` and a long target ``(B, H, W)``; returns the total and the parts.

    ``pixel_weight`` ``(B, H, W)`` multiplies each pixel's class weight in the cross-entropy (its
    weighted mean stays a mean), e.g. to weight the seams between touching instances up."""
    if logits.ndim != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"logits (B,C,H,W) and target (B,H,W) differ: {tuple(logits.shape)} vs {tuple(target.shape)}")
    weight = torch.tensor(list(class_weights), dtype=torch.float32, device=logits.device)
    if pixel_weight is None:
        ce = F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index)
    else:
        if pixel_weight.shape != target.shape:
            raise ValueError(f"pixel_weight {tuple(pixel_weight.shape)} differs from target {tuple(target.shape)}")
        per_pixel = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none")
        valid = target != ignore_index
        w = weight[target.clamp(0, logits.shape[1] - 1)] * pixel_weight.float() * valid
        ce = (per_pixel * w).sum() / w.sum().clamp_min(1e-12)
    dice = dice_loss(logits, target, smooth=smooth, ignore_index=ignore_index, reduction=dice_reduction)
    total = (1 - dice_weight) * ce + dice_weight * dice
    presence = presence_loss(logits, target, ignore_index=ignore_index) if presence_weight else ce.new_zeros(())
    return LossParts(total + presence_weight * presence, ce, dice, presence, ce.new_zeros(()))


def contact_loss(logits: torch.Tensor, contact: torch.Tensor, *, pos_weight: float = 10.0) -> torch.Tensor:
    """Binary cross-entropy of contact logits ``(B, 1, H, W)`` against the contact target ``(B, H, W)``
    (pixels near two touching instances, :func:`geosam.data.rasterize.rasterize_separated`).

    Contact pixels are rare (a band where two objects touch, none in most samples), so they are
    weighted ``pos_weight`` times, or the head learns to predict no contact anywhere.

    >>> float(contact_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.bool)))
    0.6931...
    """
    if logits.ndim != 4 or logits.shape[1] != 1 or logits.shape[2:] != contact.shape[1:]:
        raise ValueError(f"contact logits (B,1,H,W) and target (B,H,W) differ: "
                         f"{tuple(logits.shape)} vs {tuple(contact.shape)}")
    weight = torch.tensor(pos_weight, dtype=torch.float32, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits[:, 0].float(), contact.float(), pos_weight=weight)
