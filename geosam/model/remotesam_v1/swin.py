"""Swin Transformer parts (v1, shifted windows) in the parameter layout of the official checkpoint.

timm's Swin blocks would give these, but timm cannot be imported beside the CPU build of torch
(docs/decisions/0001-no-torchvision.md), so the few pieces are written here. Names and shapes follow
Swin's reference code, which is what RemoteSAM's ``backbone.layers.*.blocks.*`` entries use.

Window attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` with the
relative position bias (plus the shift mask) as an additive mask: the same arithmetic as the
reference ``softmax(q k^T * scale + bias + mask) v``, in one fused kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Score added between tokens of different regions of a shifted window (the reference uses -100).
SHIFT_MASK_VALUE = -100.0


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B * nW, window * window, C)``, windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, window * window, C)`` -> ``(B, H, W, C)``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """Index into the ``(2w-1)^2`` bias table for every pair of tokens of a window: ``(w^2, w^2)``."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
    flat = coords.flatten(1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shift_mask(hp: int, wp: int, window: int, shift: int) -> torch.Tensor:
    """Additive mask ``(nW, 1, w^2, w^2)`` that keeps a shifted window's regions apart."""
    region = torch.zeros(hp, wp)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, (hs, ws) in enumerate((hs, ws) for hs in cuts for ws in cuts):
        region[hs, ws] = i
    ids = window_partition(region[None, :, :, None], window)[..., 0]  # (nW, w^2)
    different = ids[:, None, :] != ids[:, :, None]
    return (different.float() * SHIFT_MASK_VALUE)[:, None]


class DropPath(nn.Module):
    """Stochastic depth: drops whole residual branches per sample while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class CastCachingLinear(nn.Linear):
    """``nn.Linear`` that, in eval mode under autocast, keeps its low-precision weight between calls.

    Autocast re-casts every float32 weight on each forward; for Swin-B that is ~170 MB written per
    image-prompt. The cached copy is rebuilt when the weight changes (its version counter moves).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        if self.training or not torch.is_autocast_enabled(device):
            return super().forward(x)
        dtype = torch.get_autocast_dtype(device)
        key = (dtype, self.weight._version, self.weight.data_ptr(), self.weight.device)
        cache = self.__dict__.get("_cast_cache")
        if cache is None or cache[0] != key:
            with torch.no_grad():
                bias = None if self.bias is None else self.bias.to(dtype)
                cache = (key, self.weight.to(dtype), bias)
            self.__dict__["_cast_cache"] = cache
        return F.linear(x.to(dtype), cache[1], cache[2])


class Mlp(nn.Module):
    """The transformer feed-forward: ``fc2(GELU(fc1(x)))``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = CastCachingLinear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = CastCachingLinear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias."""

    relative_position_index: torch.Tensor

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.window = window
        self.heads = heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        # Persistent: the official checkpoint carries it.
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = CastCachingLinear(dim, dim * 3)
        self.proj = CastCachingLinear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> torch.Tensor:
        """The relative position bias ``(heads, w^2, w^2)``."""
        n = self.window * self.window
        table = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        # Contiguous, so the masks built from it are too (the fused kernel would copy them).
        return table.view(n, n, -1).permute(2, 0, 1).contiguous()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attend within each window of ``x`` ``(B * nW, N, C)``.

        ``mask`` is the additive score mask: ``(1, heads, N, N)`` for plain windows or
        ``(nW, heads, N, N)`` for shifted ones, which is applied image by image.
        """
        bw, n, c = x.shape
        qkv = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        mask = mask.to(q.dtype)
        if mask.shape[0] == 1 or mask.shape[0] == bw:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            # A batch-sized copy of the mask would cost more than the loop; the fused CPU kernel
            # is slow with a mask broadcast over the batch.
            nw = mask.shape[0]
            out = torch.cat(
                [
                    F.scaled_dot_product_attention(
                        q[i : i + nw], k[i : i + nw], v[i : i + nw], attn_mask=mask
                    )
                    for i in range(0, bw, nw)
                ]
            )
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window attention and MLP, each residual. Input ``(B, H*W, C)``."""

    def __init__(
        self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float = 4.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int, mask: torch.Tensor) -> torch.Tensor:
        b, length, c = x.shape
        win = self.window
        y = self.norm1(x).view(b, h, w, c)
        # Pad with zeros AFTER the norm, as the reference does: padded tokens take part in the
        # attention of border windows with zero features.
        pad_r, pad_b = (win - w % win) % win, (win - h % win) % win
        if pad_r or pad_b:
            y = F.pad(y, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, win), mask)
        y = window_reverse(y, win, hp, wp)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        if pad_r or pad_b:
            y = y[:, :h, :w, :]
        x = x + self.drop_path(y.reshape(b, length, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping 4x4 patches -> ``embed_dim`` channels, then LayerNorm. Output ``(B, H*W, C)``."""

    def __init__(self, patch: int = 4, in_chans: int = 3, embed_dim: int = 128) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        # float32 even under autocast: rounding the pixels to bfloat16 (steps of ~0.01 after
        # normalisation) wipes out the faint texture of water or fields; the layer is tiny.
        with torch.autocast(x.device.type, enabled=False):
            x = self.proj(x.float())
            h, w = x.shape[-2:]
            return self.norm(x.flatten(2).transpose(1, 2)), h, w


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated (4C), LayerNorm, linear to 2C: halves the resolution."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        # Order (even,even), (odd,even), (even,odd), (odd,odd) as in the reference.
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))
