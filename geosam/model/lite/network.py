"""remotesam-lite: RemoteSAM's design (language fused into every backbone stage, a top-down decoder,
the same loss) on an EfficientNet-Lite0 backbone and a MiniLM text encoder, sized for CPUs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geosam.model.base import PromptSegmenter, SegmentParts, TextFeatures
from geosam.model.lite.backbone import STAGE_CHANNELS, STEM_CHANNELS, EfficientNetStages
from geosam.model.lite.decoder import ContactHead, FineHead, PresenceGate, TopDownDecoder, carve
from geosam.model.lite.fusion import PixelWordFusion, SceneContext
from geosam.model.lite.text_encoder import MiniLMEncoder


class RemoteSAMLite(PromptSegmenter):
    """EfficientNet-Lite0 + MiniLM referring-segmentation network.

    >>> from geosam.model.text import tokenize
    >>> net = RemoteSAMLite(input_size=256).eval()
    >>> ids, mask = tokenize(["ships"])
    >>> net(torch.zeros(1, 3, 256, 256), ids, mask).shape
    torch.Size([1, 2, 256, 256])
    """

    arch = "remotesam-lite"
    # EfficientNet-Lite was trained on (x - 127) / 128 in 0-255 units.
    pixel_mean = (127 / 255, 127 / 255, 127 / 255)
    pixel_std = (128 / 255, 128 / 255, 128 / 255)
    max_tokens = 20

    def __init__(
        self,
        input_size: int = 512,
        backbone: str = "efficientnet-lite0",
        decoder_channels: Sequence[int] = (64, 96, 128),
        freeze_text: bool = True,
        coords: bool = True,
        context_layers: int = 1,
        fine_head: bool = False,
        contact_head: bool = False,
        *,
        pretrained: bool = True,
    ):
        super().__init__()
        self.input_size = input_size
        self.config = {
            "input_size": input_size,
            "backbone": backbone,
            "decoder_channels": list(decoder_channels),
            "freeze_text": freeze_text,
            "coords": coords,
            "context_layers": context_layers,
            "fine_head": fine_head,
            "contact_head": contact_head,
        }
        self.text_encoder = MiniLMEncoder(pretrained=pretrained, frozen=freeze_text)
        if freeze_text:
            self.external_weights = ("text_encoder.",)
        self.backbone = EfficientNetStages(backbone, pretrained=pretrained)
        last = len(STAGE_CHANNELS) - 1
        self.fusion = nn.ModuleList(
            PixelWordFusion(c, self.text_encoder.dim, gated=i < last, coords=coords)
            for i, c in enumerate(STAGE_CHANNELS)
        )
        self.context = (
            SceneContext(STAGE_CHANNELS[-1], self.text_encoder.dim, context_layers)
            if context_layers
            else None
        )
        self.decoder = TopDownDecoder(STAGE_CHANNELS, decoder_channels)
        self.presence = PresenceGate(STAGE_CHANNELS[-1])
        self.fine_head = FineHead(decoder_channels[0], STEM_CHANNELS) if fine_head else None
        self.contact_head = ContactHead(decoder_channels[0]) if contact_head else None
        self.grown_weights = tuple(
            f"{name}." for name, on in (("fine_head", fine_head), ("contact_head", contact_head)) if on
        )

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextFeatures:
        return self.text_encoder(input_ids, attention_mask)

    def prepare_for_inference(self) -> None:
        """Fold the backbone's BatchNorms into its convolutions (see
        :meth:`EfficientNetStages.prepare_for_inference`); the state dict is unchanged."""
        self.backbone.prepare_for_inference()

    def segment(self, pixels: torch.Tensor, text: TextFeatures) -> torch.Tensor:
        logits, contact = self.segment_parts(pixels, text)
        return logits if contact is None else carve(logits, contact)

    def segment_parts(self, pixels: torch.Tensor, text: TextFeatures) -> SegmentParts:
        if pixels.device.type == "cpu":
            # oneDNN's depthwise convolutions are several times faster channels-last, in training
            # and inference alike; the layout then flows through every later layer (decision 0007).
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        stem = x = self.backbone.run_stem(pixels)
        language_maps = []
        for stage, fusion in enumerate(self.fusion):
            x = self.backbone.run_stage(stage, x)
            x, x_res = fusion(x, text.features, text.mask)
            language_maps.append(x_res)
        if self.context is not None:
            language_maps[-1] = self.context(language_maps[-1], text.features, text.mask)
        features = self.decoder(language_maps)
        logits = self.decoder.classifier(features)
        if self.fine_head is not None:
            logits = self.fine_head(logits, features, stem)
        logits = self.presence(language_maps[-1], logits)
        size = pixels.shape[-2:]
        contact = None
        if self.contact_head is not None:
            contact = F.interpolate(self.contact_head(features), size=size, mode="bilinear", align_corners=False)
        return SegmentParts(F.interpolate(logits, size=size, mode="bilinear", align_corners=False), contact)
