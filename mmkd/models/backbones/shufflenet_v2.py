"""ShuffleNetV2 for CIFAR (Ma et al., ECCV 2018), CRD's variant used as the "ShuffleV2" student of the KD
benchmark (net size 1: widths 116/232/464, final 1x1 conv to 1024)."""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import nn

from mmkd.registry import MODELS
from .utils import KAIMING_CONV_INIT, channel_shuffle, check_out_indices, conv_bn, forward_stages


class ShuffleV2Block(nn.Module):
    """Split the channels in half, run ``1x1 -> dw3x3 -> 1x1`` (BN, ReLU) on the second half, concatenate with the
    untouched first half, then shuffle (2 groups)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(conv_bn(half, half, 1, relu=True), conv_bn(half, half, 3, groups=half),
                                    conv_bn(half, half, 1, relu=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat([x1, self.branch(x2)], 1), 2)


class ShuffleV2DownBlock(nn.Module):
    """Stride-2 block: two branches (``dw3x3/2 -> 1x1`` and ``1x1 -> dw3x3/2 -> 1x1``) with ``out_channels / 2``
    outputs each, concatenated and shuffled."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.left = nn.Sequential(conv_bn(in_channels, in_channels, 3, 2, groups=in_channels),
                                  conv_bn(in_channels, mid, 1, relu=True))
        self.right = nn.Sequential(conv_bn(in_channels, mid, 1, relu=True), conv_bn(mid, mid, 3, 2, groups=mid),
                                   conv_bn(mid, mid, 1, relu=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(torch.cat([self.left(x), self.right(x)], 1), 2)


@MODELS.register_module()
class CIFARShuffleNetV2(BaseModule):
    """ShuffleNetV2 (CIFAR): 1x1 stem to 24 channels, three stages (a down block then ``num_blocks`` blocks), and a
    final 1x1 conv-BN-ReLU to ``last_channels`` appended to the last stage. Input ``[B, 3, H, W]`` -> tuple of stage
    outputs, last ``[B, 1024, H/8, W/8]`` with the defaults.
    """

    def __init__(self, out_channels: Sequence[int] = (116, 232, 464), num_blocks: Sequence[int] = (3, 7, 3),
                 last_channels: int = 1024, out_indices: Sequence[int] = (-1, ),
                 init_cfg: Optional[dict] = KAIMING_CONV_INIT) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(out_channels) != len(num_blocks):
            raise ValueError('CIFARShuffleNetV2: out_channels and num_blocks need one entry per stage, got '
                             f'{len(out_channels)} and {len(num_blocks)}.')
        self.stem = conv_bn(3, 24, 1, relu=True)
        self.layers = nn.ModuleList()
        in_channels = 24
        for i, (width, n) in enumerate(zip(out_channels, num_blocks)):
            blocks = [ShuffleV2DownBlock(in_channels, width)] + [ShuffleV2Block(width) for _ in range(n)]
            if i == len(out_channels) - 1:
                blocks.append(conv_bn(width, last_channels, 1, relu=True))
            self.layers.append(nn.Sequential(*blocks))
            in_channels = width
        self.out_indices = check_out_indices(out_indices, len(self.layers), type(self).__name__)
        self.out_channels = tuple(out_channels[:-1]) + (last_channels, )

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return forward_stages(self.stem(x), self.layers, self.out_indices)
