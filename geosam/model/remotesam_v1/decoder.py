"""The top-down decoder (LAVT's SimpleDecoding) with RMSIN's adaptive rotated convolutions.

Each of the three steps: upsample x2 (bilinear, align_corners=True), concat the skip map,
conv3x3-BN-ReLU, adaptive rotated conv3x3-BN-ReLU. A final 1x1 conv gives 2-class logits at 1/4
of the input resolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def rotation_matrix(theta: torch.Tensor) -> torch.Tensor:
    """Matrices ``(B, 9, 9)`` that rotate a row-major 3x3 kernel by ``theta`` (radians, |theta| < pi/4).

    Rotated kernel tap ``i`` = ``sum_j M[i, j] * tap_j``: each outer tap moves along the ring of
    eight neighbours and is linearly interpolated between its two nearest taps (the centre stays).
    The coefficients are those of the adaptive rotated convolution (Pu et al., ICCV 2023), where
    ``theta >= 0`` and ``theta < 0`` use mirrored interpolation schemes.
    """
    cos, sin = torch.cos(theta), torch.sin(theta)
    a, b, c = cos - sin, cos * sin, cos + sin
    one = torch.ones_like(theta)
    # (row, col, coefficient) of the non-zero entries, for positive and negative angles.
    positive = [
        (0, 0, a), (0, 1, 1 - a),
        (1, 1, cos - b), (1, 2, b), (1, 4, 1 - c + b), (1, 5, sin - b),
        (2, 2, a), (2, 5, 1 - a),
        (3, 0, b), (3, 1, sin - b), (3, 3, cos - b), (3, 4, 1 - c + b),
        (4, 4, one),
        (5, 4, 1 - c + b), (5, 5, cos - b), (5, 7, sin - b), (5, 8, b),
        (6, 3, 1 - a), (6, 6, a),
        (7, 3, sin - b), (7, 4, 1 - c + b), (7, 6, b), (7, 7, cos - b),
        (8, 7, 1 - a), (8, 8, a),
    ]
    negative = [
        (0, 0, c), (0, 3, 1 - c),
        (1, 0, -b), (1, 1, cos + b), (1, 3, b - sin), (1, 4, 1 - a - b),
        (2, 1, 1 - c), (2, 2, c),
        (3, 3, cos + b), (3, 4, 1 - a - b), (3, 6, -b), (3, 7, b - sin),
        (4, 4, one),
        (5, 1, b - sin), (5, 2, -b), (5, 4, 1 - a - b), (5, 5, cos + b),
        (6, 6, c), (6, 7, 1 - c),
        (7, 4, 1 - a - b), (7, 5, b - sin), (7, 7, cos + b), (7, 8, -b),
        (8, 5, 1 - c), (8, 8, c),
    ]
    mats = []
    for entries in (positive, negative):
        m = theta.new_zeros(theta.shape[0], 9, 9)
        for row, col, value in entries:
            m[:, row, col] = value
        mats.append(m)
    use_positive = (theta >= 0).to(theta.dtype).view(-1, 1, 1)
    return use_positive * mats[0] + (1 - use_positive) * mats[1]


class _ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of an NCHW map (official ``LayerNormProxy``; param ``norm``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class RoutingFunction(nn.Module):
    """Per-sample kernel gate ``alpha`` (sigmoid) and angle ``theta`` (softsign * 40 degrees).

    Official name ``RountingFunction`` (the checkpoint key is ``rounting_func``).
    """

    def __init__(self, channels: int, kernels: int = 1, dropout: float = 0.2, max_degrees: float = 40.0) -> None:
        super().__init__()
        self.dwc = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.norm = _ChannelLayerNorm(channels)
        self.dropout1 = nn.Dropout(dropout)
        self.fc_alpha = nn.Linear(channels, kernels)
        self.dropout2 = nn.Dropout(dropout)
        self.fc_theta = nn.Linear(channels, kernels, bias=False)
        self.max_angle = max_degrees / 180.0 * math.pi

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = F.relu(self.norm(self.dwc(x))).mean(dim=(2, 3))
        alpha = torch.sigmoid(self.fc_alpha(self.dropout1(pooled)))
        theta = F.softsign(self.fc_theta(self.dropout2(pooled))) * self.max_angle
        return alpha, theta


class AdaptiveRotatedConv2d(nn.Module):
    """3x3 conv whose kernel is rotated and scaled per sample by a routing function (one kernel)."""

    def __init__(self, channels: int, kernel_number: int = 1) -> None:
        super().__init__()
        if kernel_number != 1:
            raise ValueError("only kernel_number=1 (RemoteSAM's configuration) is implemented")
        self.rounting_func = RoutingFunction(channels, kernel_number)
        self.weight = nn.Parameter(torch.empty(kernel_number, channels, channels, 3, 3))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def kernels(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample kernels ``(B, C_out, C_in, 3, 3)`` for the input ``x``."""
        alpha, theta = self.rounting_func(x)
        w = self.weight[0] if weight is None else weight
        c_out, c_in = w.shape[:2]
        rot = rotation_matrix(theta[:, 0].float()) * alpha[:, 0].float().view(-1, 1, 1)  # (B, 9, 9)
        taps = w.reshape(c_out * c_in, 9).t()  # (9, C_out*C_in)
        rotated = torch.matmul(rot.to(taps.dtype), taps)  # (B, 9, C_out*C_in)
        return rotated.transpose(1, 2).reshape(-1, c_out, c_in, 3, 3)

    def forward(
        self, x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-sample rotated conv; ``weight``/``bias`` replace the base kernel (folded BN) if given."""
        kernels = self.kernels(x, weight)
        if bias is not None:
            bias = bias.to(kernels.dtype)
        if x.shape[0] == 1:
            return F.conv2d(x, kernels[0], bias, padding=1)
        return torch.cat(
            [F.conv2d(x[i : i + 1], kernels[i], bias, padding=1) for i in range(x.shape[0])]
        )


def _fold_bn(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class SimpleDecoding(nn.Module):
    """Three top-down fusion steps (1/32 -> 1/4) and a 1x1 classifier: ``(B, 2, H/4, W/4)`` logits."""

    def __init__(self, c4_dims: int = 1024, factor: int = 2) -> None:
        super().__init__()
        hidden = c4_dims // factor
        skips = {"4": c4_dims + c4_dims // factor, "3": hidden + c4_dims // factor**2,
                 "2": hidden + c4_dims // factor**3}
        for step, c_in in skips.items():
            self.add_module(f"conv1_{step}", nn.Conv2d(c_in, hidden, 3, padding=1, bias=False))
            self.add_module(f"conv2_{step}", AdaptiveRotatedConv2d(hidden))
            self.add_module(f"bn1_{step}", nn.BatchNorm2d(hidden))
            self.add_module(f"relu1_{step}", nn.ReLU())
            self.add_module(f"bn2_{step}", nn.BatchNorm2d(hidden))
            self.add_module(f"relu2_{step}", nn.ReLU())
        self.conv1_1 = nn.Conv2d(hidden, 2, 1)
        # Inference-only copies with the BatchNorms folded in (see fold_batchnorm); not saved.
        for step in skips:
            for name in ("w1", "b1", "w2", "b2"):
                self.register_buffer(f"folded_{name}_{step}", None, persistent=False)

    def forward(self, c4: torch.Tensor, c3: torch.Tensor, c2: torch.Tensor, c1: torch.Tensor) -> torch.Tensor:
        x = c4
        for step, skip in (("4", c3), ("3", c2), ("2", c1)):
            if x.shape[-2] < skip.shape[-2] or x.shape[-1] < skip.shape[-1]:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            x = torch.cat([x, skip], dim=1)
            x = self._step(step, x)
        return self.conv1_1(x)

    def _step(self, step: str, x: torch.Tensor) -> torch.Tensor:
        rotated: AdaptiveRotatedConv2d = getattr(self, f"conv2_{step}")
        w1, b1, w2, b2 = (getattr(self, f"folded_{n}_{step}") for n in ("w1", "b1", "w2", "b2"))
        if w1 is not None and not self.training:
            x = F.relu(F.conv2d(x, w1.to(x.dtype), b1.to(x.dtype), padding=1))
            return F.relu(rotated(x, w2, b2))
        x = getattr(self, f"relu1_{step}")(getattr(self, f"bn1_{step}")(getattr(self, f"conv1_{step}")(x)))
        return getattr(self, f"relu2_{step}")(getattr(self, f"bn2_{step}")(rotated(x)))

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold the eval-mode BatchNorms into the convs before them (inference only).

        BN2's scale commutes with the kernel rotation (it acts on output channels), so it folds
        into the rotated conv's base kernel.
        """
        for step in ("4", "3", "2"):
            s1, b1 = _fold_bn(getattr(self, f"bn1_{step}"))
            s2, b2 = _fold_bn(getattr(self, f"bn2_{step}"))
            w1 = getattr(self, f"conv1_{step}").weight * s1.view(-1, 1, 1, 1)
            w2 = getattr(self, f"conv2_{step}").weight[0] * s2.view(-1, 1, 1, 1)
            setattr(self, f"folded_w1_{step}", w1.contiguous(memory_format=torch.channels_last))
            setattr(self, f"folded_b1_{step}", b1)
            setattr(self, f"folded_w2_{step}", w2.contiguous())
            setattr(self, f"folded_b2_{step}", b2)
