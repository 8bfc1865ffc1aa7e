"""Top-down decoder in the style of RemoteSAM's SimpleDecoding, with separable convolutions.

Starting from the stride-32 language-aware map, each step upsamples by two, concatenates the skip
map of the next stage and refines with conv-BN-ReLU; a 1x1 conv gives 2-class logits at stride 4.
An optional :class:`FineHead` corrects them at stride 2 from the stem's map, for objects only a few
stride-4 cells wide (parked aircraft, cars) and the gaps between them; an optional
:class:`ContactHead` marks where two referred instances touch, and :func:`carve` cuts those pixels
out of the mask so that touching neighbours come out as separate components.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(cin: int, cout: int, k: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SeparableBlock(nn.Sequential):
    """1x1 mix of the concatenated inputs, then a depthwise-separable 3x3 refinement."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            _conv_bn_relu(cin, cout),
            _conv_bn_relu(cout, cout, 3, groups=cout),
            _conv_bn_relu(cout, cout),
            _conv_bn_relu(cout, cout, 3, groups=cout),
            _conv_bn_relu(cout, cout),
        )


class TopDownDecoder(nn.Module):
    """Decode stage maps (strides 4, 8, 16, 32) into a stride-4 map and 2-class logits."""

    def __init__(self, in_channels: Sequence[int], channels: Sequence[int] = (64, 96, 128)):
        super().__init__()
        c4, c8, c16, c32 = in_channels
        d4, d8, d16 = channels
        self.step16 = SeparableBlock(c32 + c16, d16)
        self.step8 = SeparableBlock(d16 + c8, d8)
        self.step4 = SeparableBlock(d8 + c4, d4)
        self.classifier = nn.Conv2d(d4, 2, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """The refined stride-4 map; ``classifier`` turns it into logits."""
        f4, f8, f16, f32 = feats
        y = f32
        for step, skip in ((self.step16, f16), (self.step8, f8), (self.step4, f4)):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=True)
            y = step(torch.cat([y, skip], dim=1))
        return y


class FineHead(nn.Module):
    """Stride-2 correction of the decoder's stride-4 logits.

    The stride-4 logits are upsampled to the stem's stride-2 map and a correction computed from the
    decoder's stride-4 features and that map is added. The correction's last convolution starts at
    zero, so a network that grows this head keeps its predictions (up to resampling) until training
    moves it: checkpoints without the head load into a network with it (see ``grown_weights``).
    """

    def __init__(self, decoder_channels: int, stem_channels: int, channels: int = 32):
        super().__init__()
        self.refine = SeparableBlock(decoder_channels + stem_channels, channels)
        self.correction = nn.Conv2d(channels, 2, 1)
        for param in self.correction.parameters():
            nn.init.zeros_(param)

    def forward(self, logits: torch.Tensor, features: torch.Tensor, stem: torch.Tensor) -> torch.Tensor:
        size = stem.shape[-2:]
        up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        y = F.interpolate(features, size=size, mode="bilinear", align_corners=True)
        return up + self.correction(self.refine(torch.cat([y, stem], dim=1)))


class PresenceGate(nn.Module):
    """Image-level evidence that the prompt is present at all, folded into the mask.

    A small MLP on max- and mean-pooled stride-32 language-aware features gives a presence logit
    ``z``; the mask probability becomes ``sigmoid(pixel) * sigmoid(z)``. With prompts that name an
    absent class (a quarter of the training samples) the gate learns to empty the whole mask, which
    per-pixel evidence alone does poorly. It is trained only through the segmentation loss.
    """

    def __init__(self, channels: int, hidden: int = 128):
        super().__init__()
        out = nn.Linear(hidden, 1)
        nn.init.constant_(out.bias, 3.0)  # starts open: sigmoid(3) = 0.95
        self.mlp = nn.Sequential(nn.Linear(2 * channels, hidden), nn.ReLU(inplace=True), out)

    def forward(self, feats: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([feats.amax(dim=(2, 3)), feats.mean(dim=(2, 3))], dim=1)
        z = self.mlp(pooled)[:, :, None, None]
        return _two_class(F.logsigmoid(logits[:, 1:] - logits[:, :1]) + F.logsigmoid(z))


class ContactHead(nn.Module):
    """Logit ``(B, 1, H/4, W/4)`` that a pixel lies between two touching referred instances.

    Trained on the ``contact`` band of :func:`geosam.data.rasterize.rasterize_separated`, a few pixels
    wide, that the foreground head, whose masks must stay true to the objects, cannot afford to
    learn. Its weights start at zero and its bias low, so a network that grows it predicts almost
    no contact, and :func:`carve` leaves the masks as they were, until training moves it.
    """

    def __init__(self, channels: int, hidden: int = 32):
        super().__init__()
        self.refine = SeparableBlock(channels, hidden)
        self.logit = nn.Conv2d(hidden, 1, 1)
        nn.init.zeros_(self.logit.weight)
        assert self.logit.bias is not None
        nn.init.constant_(self.logit.bias, -6.0)  # sigmoid(-6) = 0.0025

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.logit(self.refine(features))


def carve(logits: torch.Tensor, contact: torch.Tensor) -> torch.Tensor:
    """2-class logits whose foreground probability is ``min(p, 1 - sigmoid(contact))``: a mask at 0.5
    loses exactly the pixels where contact is more likely than not. (The product ``p * (1 - c)`` let
    a diffuse contact of 0.2 erase objects of marginal confidence: swimming pools on held-back chips.)"""
    log_p = F.logsigmoid(logits[:, 1:] - logits[:, :1])
    return _two_class(torch.minimum(log_p, F.logsigmoid(-contact)))


def _two_class(log_p: torch.Tensor) -> torch.Tensor:
    """Two-class logits whose softmax is ``(1 - p, p)``; the clamp keeps ``log(1 - p)`` finite."""
    log_q = torch.log(-torch.expm1(log_p.clamp(max=-1e-6)))
    return torch.cat([log_q, log_p], dim=1)
