"""The multimodal Swin-B backbone: Swin stages with language fused at the end of each, then CIM.

Data flow of stage ``i`` (``X`` are the tokens ``(B, H*W, C)``)::

    X = SwinBlocks(X)
    x_res = PWAM(X, words)                       # language-aware residual
    v_res = VariousReceptive(X)                  # spatial gate branch
    X = X + tanh_gate(x_res) * x_res + tanh_gate(v_res) * v_res
    output_i = LayerNorm_i(x_res)                # the stage OUTPUT is x_res, not X
    X = PatchMerging(X)                          # stages 0-2 only

so the last stage's update of ``X`` never reaches the output and is not computed.
"""

from __future__ import annotations

import torch
from torch import nn

from geosam.model.remotesam_v1.cross_scale import CIM
from geosam.model.remotesam_v1.fusion import PWAM, VariousReceptive, tanh_gate
from geosam.model.remotesam_v1.swin import PatchEmbed, PatchMerging, SwinBlock, shift_mask

# Which parts keep float32 under autocast. Measured on seeded weights (tests/remotesam_v1_fixtures):
# each part alone in bfloat16 moves the foreground probability by up to stage-0 blocks 0.046,
# patch merging 0.009, PWAM 0.007, gates 0.005; stage 1-3 blocks 0.007/0.014/0.006 (bfloat16 kept,
# they are 90% of the backbone's arithmetic), CIM 0.003, decoder 0.003 (bfloat16 kept).
_FLOAT32_STAGES = (0,)


def _autocast_on(x: torch.Tensor) -> bool:
    return torch.is_autocast_enabled(x.device.type)


class MultiModalStage(nn.Module):
    """Swin blocks followed by PWAM fusion, the various-receptive branch and their gates.

    Official name ``MMBasicLayer``; parameters under ``layers.<i>``.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        window: int,
        drop_path: list[float],
        downsample: bool,
        text_dim: int = 768,
        fusion_drop: float = 0.0,
        float32_blocks: bool = False,
    ) -> None:
        super().__init__()
        self.window = window
        self.float32_blocks = float32_blocks
        self.shift = window // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, window, 0 if i % 2 == 0 else window // 2, drop_path=drop_path[i])
            for i in range(depth)
        )
        self.fusion = PWAM(dim, text_dim, fusion_drop)
        self.res_gate = tanh_gate(dim)
        self.visual_residual = VariousReceptive()
        self.visual_gate = tanh_gate(dim)
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(
        self, x: torch.Tensor, h: int, w: int, words: torch.Tensor, word_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the stage output ``x_res`` ``(B, H*W, C)`` and the next stage's input (or None)."""
        win = self.window
        shifted = shift_mask(-(-h // win) * win, -(-w // win) * win, win, self.shift)
        shifted = shifted.to(x.device)
        with torch.autocast(x.device.type, enabled=not self.float32_blocks and _autocast_on(x)):
            for blk in self.blocks:
                assert isinstance(blk, SwinBlock)
                bias = blk.attn.position_bias()[None]
                mask = bias + shifted.to(bias.dtype) if blk.shift else bias
                x = blk(x, h, w, mask)
        # Fusion, gates and merging see per-channel offsets that dwarf the variation over the
        # image, so they run in float32 (about 5% of the arithmetic).
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            x_res = self.fusion(x, words.float(), word_mask.float())
            if self.downsample is None:
                return x_res, None
            v_res = self.visual_residual(x, h, w)
            x = x + self.res_gate(x_res) * x_res + self.visual_gate(v_res) * v_res
            return x_res, self.downsample(x, h, w)


class MultiModalSwin(nn.Module):
    """Swin-B with language fusion in every stage, per-stage output norms and the CIM.

    Returns four maps ``(B, C_i, H_i, W_i)`` (C = 128/256/512/1024 at 1/4 ... 1/32 resolution) in
    channels-last memory layout.
    """

    def __init__(
        self,
        embed_dim: int = 128,
        depths: tuple[int, ...] = (2, 2, 18, 2),
        heads: tuple[int, ...] = (4, 8, 16, 32),
        window: int = 12,
        drop_path_rate: float = 0.3,
        text_dim: int = 768,
        fusion_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(4, 3, embed_dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.num_features = [embed_dim * 2**i for i in range(len(depths))]
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(
                MultiModalStage(
                    self.num_features[i],
                    depth,
                    heads[i],
                    window,
                    rates[start : start + depth],
                    downsample=i < len(depths) - 1,
                    text_dim=text_dim,
                    fusion_drop=fusion_drop,
                    float32_blocks=i in _FLOAT32_STAGES,
                )
            )
        for i, dim in enumerate(self.num_features):
            self.add_module(f"norm{i}", nn.LayerNorm(dim))
        self.cim = CIM(sum(self.num_features), self.num_features)

    def forward(
        self, pixels: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor
    ) -> list[torch.Tensor]:
        """``words`` ``(B, N, D)`` and ``word_mask`` ``(B, N, 1)`` (float) go into every stage."""
        x, h, w = self.patch_embed(pixels)
        if torch.is_autocast_enabled(x.device.type):
            # The residual stream stays in float32 under autocast; only matmuls and convs drop
            # to lower precision (24 residual additions in bfloat16 would drift).
            x = x.float()
        outs = []
        for i, layer in enumerate(self.layers):
            x_res, x_next = layer(x, h, w, words, word_mask)
            out = getattr(self, f"norm{i}")(x_res)
            # (B, H, W, C) viewed as NCHW: channels-last layout, no copy.
            outs.append(out.view(-1, h, w, out.shape[-1]).permute(0, 3, 1, 2))
            if x_next is not None:
                x, h, w = x_next, (h + 1) // 2, (w + 1) // 2
        return self.cim(outs)
