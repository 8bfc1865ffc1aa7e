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
        self, channels: int, text_dim: int, attn_dim: int | None = None, *, gated: bool = True
    ):
        super().__init__()
        d = attn_dim or max(channels, 32)
        self.attn_dim = d
        self.vis_proj = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.GELU())
        self.query = nn.Sequential(nn.Conv2d(channels, d, 1), nn.InstanceNorm2d(d, affine=True))
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
        q = self.query(x).flatten(2).transpose(1, 2)  # B, HW, d
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
