"""RemoteSAM v1: BERT-base + multimodal Swin-B (window 12) + CIM + rotated-conv decoder at 896x896."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from geosam.errors import InputError
from geosam.model.base import PromptSegmenter, TextFeatures
from geosam.model.remotesam_v1.backbone import MultiModalSwin
from geosam.model.remotesam_v1.decoder import SimpleDecoding
from geosam.model.remotesam_v1.fusion import RepBlock
from geosam.model.remotesam_v1.text_encoder import build_text_encoder


class RemoteSAMv1(PromptSegmenter):
    """The official RemoteSAM network (RMSIN / LAVT-one layout), state-dict compatible with
    ``RemoteSAMv1.pth`` (``backbone.*``, ``classifier.*``, ``text_encoder.*``).

    >>> net = RemoteSAMv1().eval()                       # doctest: +SKIP
    >>> text = net.encode_text(ids, mask)                 # ids, mask: (P, 20)  # doctest: +SKIP
    >>> logits = net.segment(pixels, text)                # pixels: (P, 3, 896, 896) -> (P, 2, 896, 896)  # doctest: +SKIP
    """

    arch = "remotesam-v1"
    input_size = 896
    max_tokens = 20
    output_resize = "nearest"  # the official code resizes probabilities back with F.interpolate's default

    def __init__(self, drop_path_rate: float = 0.3, fusion_drop: float = 0.0) -> None:
        super().__init__()
        self.config = {"drop_path_rate": drop_path_rate, "fusion_drop": fusion_drop}
        self.backbone = MultiModalSwin(
            embed_dim=128, depths=(2, 2, 18, 2), heads=(4, 8, 16, 32), window=12,
            drop_path_rate=drop_path_rate, text_dim=768, fusion_drop=fusion_drop,
        )
        self.classifier = SimpleDecoding(8 * 128)
        self.text_encoder = build_text_encoder()

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextFeatures:
        """BERT features ``(P, N, 768)`` of token ids ``(P, N)`` (no token types, as officially)."""
        if input_ids.ndim != 2 or input_ids.shape != attention_mask.shape:
            raise InputError(
                f"input_ids and attention_mask must both be (P, N); got {tuple(input_ids.shape)} "
                f"and {tuple(attention_mask.shape)}"
            )
        # Twenty tokens cost nothing next to the image: encode them in float32 even under autocast.
        with torch.autocast(input_ids.device.type, enabled=False):
            feats = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return TextFeatures(feats, attention_mask)

    def segment(self, pixels: torch.Tensor, text: TextFeatures) -> torch.Tensor:
        """Logits ``(B, 2, 896, 896)`` for normalised pixels ``(B, 3, 896, 896)`` and ``B`` prompts."""
        size = self.input_size
        if pixels.ndim != 4 or pixels.shape[1:] != (3, size, size):
            raise InputError(
                f"remotesam-v1 takes pixels of shape (B, 3, {size}, {size}) (its cross-scale module "
                f"is built for that size); got {tuple(pixels.shape)}"
            )
        if text.features.shape[0] != pixels.shape[0]:
            raise InputError(
                f"one prompt per image is needed: {pixels.shape[0]} images, {text.features.shape[0]} prompts"
            )
        words = text.features
        word_mask = text.mask.to(words.dtype).unsqueeze(-1)
        c1, c2, c3, c4 = self.backbone(pixels, words, word_mask)
        logits = self.classifier(c4, c3, c2, c1)
        return F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=True)

    @torch.no_grad()
    def prepare_for_inference(self) -> None:
        """Fold eval-mode BatchNorms (decoder convs, RepVGG branches) and use channels-last convs.

        Call it after loading weights; calling it again recomputes the folded copies. The
        saved state dict is unchanged.
        """
        for module in self.modules():
            if isinstance(module, RepBlock):
                module.fuse()
        self.classifier.fold_batchnorm()
        for module in (*self.classifier.modules(), *self.backbone.cim.modules()):
            if isinstance(module, torch.nn.Conv2d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)

