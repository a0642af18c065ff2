"""ShuffleNetV1 for CIFAR (Zhang et al., CVPR 2018), CRD's variant used as the "ShuffleV1" student of the KD
benchmark (groups 3, widths 240/480/960)."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from mmkd.registry import MODELS
from .utils import KAIMING_CONV_INIT, channel_shuffle, check_out_indices, conv_bn, forward_stages


class ShuffleV1Block(nn.Module):
    """Group 1x1 conv -> channel shuffle -> depthwise 3x3 (stride) -> group 1x1 conv.

    Stride 2: the output is ``cat(branch, avgpool3x3/2(x))`` (so ``out_channels`` of the branch excludes the input
    width); stride 1: ``branch + x``. Both end with a ReLU. The first block after the 24-channel stem uses 1 group in
    its first conv, as in the paper.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int) -> None:
        super().__init__()
        mid = out_channels // 4
        self.first_groups = 1 if in_channels == 24 else groups
        self.stride = stride
        self.conv1 = conv_bn(in_channels, mid, 1, groups=self.first_groups, relu=True)
        self.conv2 = conv_bn(mid, mid, 3, stride, groups=mid, relu=True)
        self.conv3 = conv_bn(mid, out_channels, 1, groups=groups)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.conv2(channel_shuffle(self.conv1(x), self.first_groups)))
        res = self.shortcut(x)
        return F.relu(torch.cat([out, res], 1) if self.stride == 2 else out + res)


@MODELS.register_module()
class CIFARShuffleNetV1(BaseModule):
    """ShuffleNetV1 (CIFAR): 1x1 stem to 24 channels, three stages of ``num_blocks`` blocks with widths
    ``out_channels`` (each starting with a stride-2 block). Input ``[B, 3, H, W]`` -> tuple of stage outputs, last
    ``[B, 960, H/8, W/8]`` with the defaults.
    """

    def __init__(self, out_channels: Sequence[int] = (240, 480, 960), num_blocks: Sequence[int] = (4, 8, 4),
                 groups: int = 3, out_indices: Sequence[int] = (-1, ),
                 init_cfg: Optional[dict] = KAIMING_CONV_INIT) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(out_channels) != len(num_blocks):
            raise ValueError('CIFARShuffleNetV1: out_channels and num_blocks need one entry per stage, got '
                             f'{len(out_channels)} and {len(num_blocks)}.')
        self.stem = conv_bn(3, 24, 1, relu=True)
        self.layers = nn.ModuleList()
        in_channels = 24
        for width, n in zip(out_channels, num_blocks):
            blocks = [ShuffleV1Block(in_channels, width - in_channels, 2, groups)]
            blocks += [ShuffleV1Block(width, width, 1, groups) for _ in range(n - 1)]
            self.layers.append(nn.Sequential(*blocks))
            in_channels = width
        self.out_indices = check_out_indices(out_indices, len(self.layers), type(self).__name__)
        self.out_channels = tuple(out_channels)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return forward_stages(self.stem(x), self.layers, self.out_indices)
