"""Referring-segmentation metrics accumulated over a validation pass."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch


class SegmentationMeter:
    """oIoU (cumulative intersection over cumulative union), mIoU (mean per-sample IoU, an empty
    prediction of an empty target counting as 1), P@0.5 (share of samples with IoU >= 0.5: for
    size and position expressions, how often the referred object is hit), and ``empty_ok`` (the
    share of empty-target samples predicted empty), overall and per group (expression kind, source)."""

    def __init__(self) -> None:
        self.inter: dict[str, float] = defaultdict(float)
        self.union: dict[str, float] = defaultdict(float)
        self.ious: dict[str, list[float]] = defaultdict(list)
        self.empty_hits: dict[str, list[bool]] = defaultdict(list)

    def update(self, pred: torch.Tensor, target: torch.Tensor, groups: Sequence[Sequence[str]] = ()) -> None:
        """``pred``/``target``: ``(B, H, W)`` 0/1; ``groups``: per sample, the group names it counts in."""
        p, t = pred.bool().flatten(1), target.bool().flatten(1)
        inter = (p & t).sum(1).double().cpu().numpy()
        union = (p | t).sum(1).double().cpu().numpy()
        t_empty = (~t.any(1)).cpu().numpy()
        p_empty = (~p.any(1)).cpu().numpy()
        for i in range(p.shape[0]):
            names = ["all", *(groups[i] if i < len(groups) else ())]
            iou = 1.0 if union[i] == 0 else inter[i] / union[i]
            for g in names:
                self.inter[g] += inter[i]
                self.union[g] += union[i]
                self.ious[g].append(float(iou))
                if t_empty[i]:
                    self.empty_hits[g].append(bool(p_empty[i]))

    def result(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for g in sorted(self.ious):
            prefix = "" if g == "all" else f"{g}/"
            if self.union[g] > 0:
                out[f"{prefix}oIoU"] = self.inter[g] / self.union[g]
            out[f"{prefix}mIoU"] = float(np.mean(self.ious[g]))
            out[f"{prefix}P@0.5"] = float(np.mean(np.asarray(self.ious[g]) >= 0.5))
            if self.empty_hits[g]:
                out[f"{prefix}empty_ok"] = float(np.mean(self.empty_hits[g]))
            out[f"{prefix}n"] = float(len(self.ious[g]))
        return out
