"""Language fusion inside the backbone: pixel-word attention with a tanh-gated residual.

This is the PWAM + gate design of LAVT / RemoteSAM, sized for a mobile backbone: every pixel attends
to the prompt's words, the attended language vector multiplies a projection of the pixel's own
features, and the product is added back to the visual stream through a learned tanh gate that starts
closed (so the pretrained backbone is undisturbed at initialisation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PixelWordFusion(nn.Module):
    """Fuse word features ``(B, N, D)`` into a visual map ``(B, C, H, W)``.

    Returns the updated visual map and the language-aware map ``x_res`` used by the decoder. The
    last stage has no later stage to feed, so it is built with ``gated=False`` and returns ``x``
    unchanged (RemoteSAM v1 keeps such dead parameters for checkpoint compatibility; we need not).
    """

    def __init__(
        self,
        channels: int,
        text_dim: int,
        attn_dim: int | None = None,
        *,
        gated: bool = True,
        coords: bool = True,
    ):
        super().__init__()
        d = attn_dim or max(channels, 32)
        self.attn_dim = d
        self.coords = coords
        self.vis_proj = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.GELU())
        # Normalised pixel coordinates join the query so that words such as "left" or "top" can
        # be matched to places (a convolutional backbone alone barely knows where it is).
        self.query = nn.Sequential(
            nn.Conv2d(channels + 2 * coords, d, 1), nn.InstanceNorm2d(d, affine=True)
        )
        self.key = nn.Linear(text_dim, d)
        self.value = nn.Linear(text_dim, d)
        self.lang_out = nn.Sequential(
            nn.Conv2d(d, channels, 1), nn.InstanceNorm2d(channels, affine=True)
        )
        self.project = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.GELU())
        self.gate: nn.Module | None = None
        if gated:
            hidden = max(channels // 2, 16)
            gate_out = nn.Conv2d(hidden, channels, 1, bias=False)
            nn.init.zeros_(gate_out.weight)  # the gate starts closed
            self.gate = nn.Sequential(
                nn.Conv2d(channels, hidden, 1, bias=False),
                nn.ReLU(inplace=True),
                gate_out,
                nn.Tanh(),
            )

    def forward(
        self, x: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = x.shape
        q_in = torch.cat([x, coordinate_map(x)], dim=1) if self.coords else x
        q = self.query(q_in).flatten(2).transpose(1, 2)  # B, HW, d
        k = self.key(words)  # B, N, d
        v = self.value(words)
        # Padding tokens get no attention; a boolean mask broadcast over the pixel axis.
        attn_mask = word_mask[:, None, :].bool()
        lang = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # B, HW, d
        lang = lang.transpose(1, 2).reshape(b, self.attn_dim, h, w)
        x_res = self.project(self.vis_proj(x) * self.lang_out(lang))
        if self.gate is None:
            return x, x_res
        return x + self.gate(x_res) * x_res, x_res


def coordinate_map(x: torch.Tensor) -> torch.Tensor:
    """``(B, 2, H, W)`` pixel-centre coordinates of ``x``'s grid, x then y, each in [-1, 1]."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=x.device, dtype=x.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y])[None].expand(b, 2, h, w)


class SceneContext(nn.Module):
    """Global reasoning over the coarsest map: pixels (with positions) and words in one attention.

    Referring to "the largest ship" or "the plane in the top left" means comparing objects across
    the whole image, which the convolutional stages cannot. At stride 32 the map is small (16 x 16
    for a 512 input), so a full transformer layer over its pixels plus the prompt's words is cheap.
    """

    def __init__(self, channels: int, text_dim: int, layers: int = 1, heads: int = 8):
        super().__init__()
        self.words = nn.Linear(text_dim, channels)
        self.position = nn.Sequential(
            nn.Linear(2, channels), nn.GELU(), nn.Linear(channels, channels)
        )
        self.kind = nn.Parameter(torch.zeros(2, channels))  # pixel / word token type
        layer = nn.TransformerEncoderLayer(
            channels,
            heads,
            dim_feedforward=2 * channels,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)  # starts as the identity map of the input
        nn.init.zeros_(self.out.bias)

    def forward(
        self, x: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor
    ) -> torch.Tensor:
        b, c, h, w = x.shape
        pixels = x.flatten(2).transpose(1, 2)
        pos = self.position(coordinate_map(x).flatten(2).transpose(1, 2))
        tokens = torch.cat([pixels + pos + self.kind[0], self.words(words) + self.kind[1]], dim=1)
        padding = torch.cat([word_mask.new_ones(b, h * w), word_mask], dim=1) == 0
        out = self.encoder(tokens, src_key_padding_mask=padding)[:, : h * w]
        return x + self.out(out).transpose(1, 2).reshape(b, c, h, w)
