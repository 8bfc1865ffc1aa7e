"""``remotesam-v1``: the official RemoteSAM network, ported faithfully and made faster.

No weights are packaged: load the released ``RemoteSAMv1.pth`` with
``geosam.load_model("remotesam-v1", weights="RemoteSAMv1.pth")``.
"""

from __future__ import annotations

from geosam.model.registry import register_model
from geosam.model.remotesam_v1.network import RemoteSAMv1

__all__ = ["RemoteSAMv1", "remotesam_v1"]


@register_model("remotesam-v1")
def remotesam_v1(drop_path_rate: float = 0.3, fusion_drop: float = 0.0) -> RemoteSAMv1:
    """RemoteSAM v1 (BERT-base + multimodal Swin-B, 896x896 input); bring RemoteSAMv1.pth."""
    return RemoteSAMv1(drop_path_rate=drop_path_rate, fusion_drop=fusion_drop)
