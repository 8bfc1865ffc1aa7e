"""remotesam-lite: the default, CPU-sized network (EfficientNet-Lite0 + MiniLM)."""

from __future__ import annotations

from collections.abc import Sequence

from geosam.model.lite.network import RemoteSAMLite
from geosam.model.registry import register_model

__all__ = ["RemoteSAMLite", "remotesam_lite"]


@register_model("remotesam-lite", weights="remotesam-lite.safetensors")
def remotesam_lite(
    input_size: int = 512,
    backbone: str = "efficientnet-lite0",
    decoder_channels: Sequence[int] = (64, 96, 128),
    freeze_text: bool = True,
    coords: bool = True,
    context_layers: int = 1,
    fine_head: bool = False,
    contact_head: bool = False,
    pretrained: bool = True,
) -> RemoteSAMLite:
    """EfficientNet-Lite0 + MiniLM with language fused in every stage; the default CPU model.
    ``fine_head``: logits corrected at stride 2 (:class:`geosam.model.lite.decoder.FineHead`);
    ``contact_head``: touching instances cut apart (:class:`geosam.model.lite.decoder.ContactHead`)."""
    return RemoteSAMLite(
        input_size,
        backbone,
        decoder_channels,
        freeze_text,
        coords,
        context_layers,
        fine_head,
        contact_head,
        pretrained=pretrained,
    )
