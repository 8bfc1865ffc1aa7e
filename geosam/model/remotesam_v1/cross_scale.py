"""RMSIN's cross-scale interaction module (CIM), in the official parameter layout.

The four stage maps are average-pooled to the coarsest grid (28x28 at 896 input), concatenated
(1920 channels), reduced to 480, mixed by one block of cross-scale attention and feed-forwards, and
returned to each scale through a scale-aware gate. The token-axis projection of the attention
(1080 -> 784 tokens) ties the module to 896x896 inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Tokens of the cross-scale attention at 896 input: 28x28 + 14x14 (3x3 s2) + 10x10 (5x5 s3).
GRID = 28
GRID_TOKENS = GRID * GRID
ALL_TOKENS = GRID_TOKENS + 14 * 14 + 10 * 10


class Residual(nn.Module):
    """``x + m(x)`` (the submodule is named ``m``)."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


class LinearBN(nn.Sequential):
    """Linear without bias then BatchNorm1d over the channels of ``(B, N, C)`` tokens."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.add_module("c", nn.Linear(dim_in, dim_out, bias=False))
        self.add_module("bn", nn.BatchNorm1d(dim_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        linear, bn = self
        y = linear(x)
        return bn(y.flatten(0, 1)).view_as(y)


class CrossScaleSelfAttention(nn.Module):
    """Multi-head attention over the 1080 multi-scale tokens, projected back to the 784 grid tokens.

    Official name ``Attention``. Two details of the reference are kept on purpose:
    the head outputs ``(B, heads, N, d)`` are merged by a *raw* reshape of ``(B, N, heads, d)`` into
    ``(B, heads*d, N)`` (tokens and channels interleave), and the grid values enter a depthwise
    3x3 conv through the same kind of raw reshape.
    """

    def __init__(
        self, dim: int, key_dim: int = 32, heads: int = 8, attn_ratio: int = 2,
        tokens: int = ALL_TOKENS, grid_tokens: int = GRID_TOKENS,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.key_dim = key_dim
        self.d = attn_ratio * key_dim
        self.dh = self.d * heads
        self.grid_tokens = grid_tokens
        self.qkv = LinearBN(dim, self.dh + 2 * key_dim * heads)
        self.parallel_conv = nn.Sequential(
            nn.Hardswish(), nn.Conv2d(self.dh, self.dh, 3, padding=1, groups=self.dh)
        )
        self.to_out = nn.Linear(self.dh, dim)
        self.proj = nn.Linear(tokens, grid_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1080, C)`` -> ``(B, 784, C)``."""
        b, n, _ = x.shape
        qkv = self.qkv(x).view(b, n, self.heads, -1)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.d], dim=3)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        side = int(self.grid_tokens**0.5)
        v_grid = v[:, :, : self.grid_tokens].reshape(b, self.dh, side, side)  # raw reshape
        v_conv = self.parallel_conv(v_grid).flatten(2)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.key_dim**-0.5)
        out = out.transpose(1, 2).reshape(b, -1, n)  # raw reshape: (B, N, heads, d) -> (B, heads*d, N)
        out = self.proj(out) + v_conv
        return self.to_out(out.transpose(1, 2))


class CrossScaleAttention(nn.Module):
    """Grid tokens plus two strided depthwise summaries attend to each other; conv(hswish(BN(.)))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(dim)
        self.DWConv1 = nn.Sequential(
            nn.Conv2d(dim, dim, 3, stride=2, padding=1, groups=dim), nn.BatchNorm2d(dim)
        )
        self.DWConv2 = nn.Sequential(
            nn.Conv2d(dim, dim, 5, stride=3, padding=2, groups=dim), nn.BatchNorm2d(dim)
        )
        self.attention = CrossScaleSelfAttention(dim)
        self.bn4 = nn.BatchNorm2d(dim)
        self.activate = nn.Hardswish()
        self.conv = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x0 = self.bn1(x)
        tokens = torch.cat(
            [x0.flatten(2), self.DWConv1(x0).flatten(2), self.DWConv2(x0).flatten(2)], dim=2
        ).transpose(1, 2)
        out = self.attention(tokens).transpose(1, 2).reshape(b, c, h, w)
        return self.conv(self.activate(self.bn4(out)))


class FeedForward(nn.Module):
    """``conv3(relu6(dwconv3x3(BN(conv1(BN(x))))))`` (no residual)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, hidden, 1)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=dim)
        self.relu = nn.ReLU6()
        self.conv3 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.relu(self.conv2(self.bn2(self.conv1(self.bn1(x))))))


class IntraFeedForward(nn.Module):
    """Separate residual feed-forwards on each scale's share of the channels (32/64/128/256)."""

    def __init__(self, channels: list[int], mlp_ratio: int = 2) -> None:
        super().__init__()
        self.channels = [c // 4 for c in channels]
        for i, c in enumerate(self.channels):
            self.add_module(f"ff{i + 1}", Residual(FeedForward(c, mlp_ratio * c)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.split(self.channels, dim=1)
        return torch.cat([getattr(self, f"ff{i + 1}")(p) for i, p in enumerate(parts)], dim=1)


class CIMBlock(nn.Module):
    """Attention, per-scale feed-forward, attention, feed-forward; each residual."""

    def __init__(self, dim: int, channels: list[int], mlp_ratio: int = 2) -> None:
        super().__init__()
        self.csa1 = Residual(CrossScaleAttention(dim))
        self.intra_ff = Residual(IntraFeedForward(channels, mlp_ratio))
        self.csa2 = Residual(CrossScaleAttention(dim))
        self.ff = Residual(FeedForward(dim, dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(self.csa2(self.intra_ff(self.csa1(x))))


class ScaleAwareGate(nn.Module):
    """``BN(conv(local)) * up(hsigmoid(BN(conv(global)))) + up(BN(conv(global)))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.local_embedding = nn.Conv2d(dim, dim, 1)
        self.bn1 = nn.BatchNorm2d(dim)
        self.global_embedding = nn.Conv2d(dim, dim, 1)
        self.bn2 = nn.BatchNorm2d(dim)
        self.global_act = nn.Conv2d(dim, dim, 1)
        self.bn3 = nn.BatchNorm2d(dim)

    def forward(self, x_local: torch.Tensor, x_global: torch.Tensor) -> torch.Tensor:
        size = x_local.shape[-2:]
        local = self.bn1(self.local_embedding(x_local))
        glob = F.interpolate(
            self.bn2(self.global_embedding(x_global)), size=size, mode="bilinear", align_corners=False
        )
        act = F.interpolate(
            F.hardsigmoid(self.bn3(self.global_act(x_global))), size=size, mode="bilinear",
            align_corners=False,
        )
        return local * act + glob


class CIM(nn.Module):
    """Cross-scale interaction over the four backbone maps; returns four maps of the same shapes."""

    def __init__(self, dim: int, channels: list[int], num_layers: int = 1) -> None:
        super().__init__()
        hidden = dim // 4
        self.channels = channels
        self.down_channel = nn.Conv2d(dim, hidden, 1)
        self.up_channel = nn.Conv2d(hidden, dim, 1)
        self.block = nn.ModuleList(CIMBlock(hidden, channels) for _ in range(num_layers))
        self.bn = nn.BatchNorm2d(hidden)
        self.fusion = nn.ModuleList(ScaleAwareGate(c) for c in channels)

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        size = (int(maps[-1].shape[-2]), int(maps[-1].shape[-1]))
        out = torch.cat([F.adaptive_avg_pool2d(m, size) for m in maps], dim=1)
        out = self.down_channel(out)
        if torch.is_autocast_enabled(out.device.type):
            out = out.float()  # residual stream in float32 (see MultiModalSwin.forward)
        for layer in self.block:
            out = layer(out)
        parts = self.up_channel(self.bn(out)).split(self.channels, dim=1)
        return [gate(m, g) for gate, m, g in zip(self.fusion, maps, parts, strict=True)]
