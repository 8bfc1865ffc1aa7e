"""Language-vision fusion inside every backbone stage: PWAM, the various-receptive branch and gates.

All of it works on token-major tensors ``(B, H*W, C)``. The official modules use ``Conv1d`` with a
1x1 kernel over ``(B, C, H*W)``; :class:`TokenLinear` keeps that parameter layout (``(C_out, C_in, 1)``)
but applies it as a linear layer over the last axis, which saves the transposes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Score offset that removes padded words from the softmax, as the reference adds (1e4 * mask - 1e4).
_PAD_SCORE = 1e4


class TokenLinear(nn.Conv1d):
    """A 1x1 ``Conv1d`` (its parameters) applied to channels-last tokens ``(..., C_in)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight[..., 0], self.bias)


class TokenInstanceNorm(nn.Module):
    """``InstanceNorm1d`` (no affine, eps 1e-5) of ``(B, L, C)`` tokens: each channel over ``L``."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=1, correction=0, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps)


class PixelWordAttention(nn.Module):
    """Every pixel attends over the words (one head): ``W(softmax(q k^T / sqrt(C)) v)``.

    Official name ``image_lang_att`` (LAVT's SpatialImageLanguageAttention). Queries are instance
    normalised, padded words are masked out of keys, values and the softmax.
    """

    def __init__(self, dim: int, text_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.f_key = nn.Sequential(TokenLinear(text_dim, dim))
        self.f_query = nn.Sequential(TokenLinear(dim, dim), TokenInstanceNorm())
        self.f_value = nn.Sequential(TokenLinear(text_dim, dim))
        self.W = nn.Sequential(TokenLinear(dim, dim), TokenInstanceNorm())

    def forward(self, x: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, HW, C)``, ``words`` ``(B, N, D)``, ``word_mask`` ``(B, N, 1)`` float -> ``(B, HW, C)``.

        Meant to run in float32 (the backbone disables autocast around the fusion): both instance
        norms see channels whose variation over the image is small next to their mean.
        """
        if True:
            query = self.f_query(x)
            key = self.f_key(words) * word_mask
            value = self.f_value(words) * word_mask
            scores = torch.matmul(query, key.transpose(1, 2)) * self.dim**-0.5
            scores = scores + (_PAD_SCORE * word_mask.transpose(1, 2) - _PAD_SCORE)
            out = torch.matmul(scores.softmax(dim=-1), value)
            return self.W(out)


class PWAM(nn.Module):
    """Pixel-word attention module (LAVT): ``GELU(proj(GELU(vis(x)) * attend(x, words)))``."""

    def __init__(self, dim: int, text_dim: int = 768, dropout: float = 0.0) -> None:
        super().__init__()
        self.vis_project = nn.Sequential(TokenLinear(dim, dim), nn.GELU(), nn.Dropout(dropout))
        self.image_lang_att = PixelWordAttention(dim, text_dim)
        self.project_mm = nn.Sequential(TokenLinear(dim, dim), nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        return self.project_mm(self.vis_project(x) * self.image_lang_att(x, words, word_mask))


def tanh_gate(dim: int) -> nn.Sequential:
    """``Linear-ReLU-Linear-Tanh`` without biases: the per-channel gate of a fused residual."""
    return nn.Sequential(
        nn.Linear(dim, dim, bias=False), nn.ReLU(), nn.Linear(dim, dim, bias=False), nn.Tanh()
    )


def _conv_bn(kernel: int) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("conv", nn.Conv2d(1, 1, kernel, padding=kernel // 2, bias=False))
    seq.add_module("bn", nn.BatchNorm2d(1))
    return seq


def _conv1x1_bn_conv3x3_bn() -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("conv1", nn.Conv2d(1, 1, 1, bias=False))
    seq.add_module("bn1", nn.BatchNorm2d(1))
    seq.add_module("conv2", nn.Conv2d(1, 1, 3, padding=1, bias=False))
    seq.add_module("bn2", nn.BatchNorm2d(1))
    return seq


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``scale * x + shift``."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class RepBlock(nn.Module):
    """RMSIN's single-channel RepVGG-style block: two sums of [1x1-BN-3x3-BN, 1x1-BN, BN].

    ``sigmoid(sum2(relu(sum1(x))))``. :meth:`fuse` re-parameterises each sum into one 3x3 conv.
    """

    fused: torch.Tensor | None

    def __init__(self) -> None:
        super().__init__()
        self.brb_3x3 = _conv1x1_bn_conv3x3_bn()
        self.brb_1x1 = _conv_bn(1)
        self.brb_identity = nn.BatchNorm2d(1)
        self.brb_3x3_2 = _conv1x1_bn_conv3x3_bn()
        self.brb_1x1_2 = _conv_bn(1)
        self.brb_identity_2 = nn.BatchNorm2d(1)
        # Inference-only re-parameterisation (see fuse): (kernel, border kernel, shift) per sum.
        self.register_buffer("fused", None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None and not self.training:
            k1, kb1, c1, k2, kb2, c2 = self.fused.split([9, 9, 1, 9, 9, 1])
            out = F.relu(self._fused_sum(x, k1, kb1, c1))
            return torch.sigmoid(self._fused_sum(out, k2, kb2, c2))
        out = F.relu(self.brb_1x1(x) + self.brb_3x3(x) + self.brb_identity(x))
        return torch.sigmoid(self.brb_1x1_2(out) + self.brb_3x3_2(out) + self.brb_identity_2(out))

    @staticmethod
    def _fused_sum(
        x: torch.Tensor, kernel: torch.Tensor, border_kernel: torch.Tensor, shift: torch.Tensor
    ) -> torch.Tensor:
        # The 3x3 branch zero-pads AFTER its first BN, so its shift reaches only the taps that
        # fall inside the image: that part is the conv of a ones map, exact at the borders too.
        ones = torch.ones_like(x[:1])
        kernel, border_kernel = kernel.view(1, 1, 3, 3).to(x.dtype), border_kernel.view(1, 1, 3, 3).to(x.dtype)
        bias_map = F.conv2d(ones, border_kernel, padding=1) + shift.to(x.dtype)
        return F.conv2d(x, kernel, padding=1) + bias_map

    @torch.no_grad()
    def fuse(self) -> None:
        """Re-parameterise both sums (eval-mode BN statistics) into single 3x3 convs."""
        parts = [
            self._fuse_sum(self.brb_3x3, self.brb_1x1, self.brb_identity),
            self._fuse_sum(self.brb_3x3_2, self.brb_1x1_2, self.brb_identity_2),
        ]
        self.fused = torch.cat([t.reshape(-1) for part in parts for t in part])

    @staticmethod
    def _fuse_sum(
        b3: Any, b1: Any, ident: nn.BatchNorm2d
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a1, s1 = _bn_affine(b3.bn1)
        a2, s2 = _bn_affine(b3.bn2)
        k3 = b3.conv2.weight  # (1, 1, 3, 3)
        kernel = (a2 * a1 * b3.conv1.weight[0, 0, 0, 0]) * k3
        a11, s11 = _bn_affine(b1.bn)
        ai, si = _bn_affine(ident)
        center = a11 * b1.conv.weight[0, 0, 0, 0] + ai
        kernel = kernel.clone()
        kernel[0, 0, 1, 1] += center[0]
        border_kernel = (a2 * s1) * k3
        shift = s2 + s11 + si
        return kernel, border_kernel, shift.view(1, 1, 1, 1)


class VariousReceptive(nn.Module):
    """RMSIN's spatial gate: ``x * RepBlock(mean of x over channels)``. ``x`` is ``(B, H*W, C)``, square."""

    def __init__(self) -> None:
        super().__init__()
        self.repblock = RepBlock()

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b = x.shape[0]
        gate = self.repblock(x.mean(dim=-1).view(b, 1, h, w))
        return x * gate.view(b, h * w, 1)
