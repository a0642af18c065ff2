"""Wide ResNet for CIFAR (Zagoruyko & Komodakis, BMVC 2016), the WRN-40-2 / WRN-40-1 pair of the KD benchmark."""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import nn

from mmkd.registry import MODELS
from .utils import KAIMING_CONV_INIT, check_out_indices, forward_stages


class PreActBlock(nn.Module):
    """Pre-activation basic block: ``conv3x3(relu(bn(conv3x3(relu(bn(x)))))) + shortcut``.

    When the shape changes, the shortcut is a 1x1 conv applied to the *activated* input (WRN's reference code).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
                         if stride != 1 or in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(self.conv1(act))))
        return out + (x if self.shortcut is None else self.shortcut(act))


@MODELS.register_module()
class CIFARWideResNet(BaseModule):
    """WRN-``depth``-``widen_factor`` for 32x32 inputs.

    Three stages of ``(depth - 4) / 6`` pre-activation blocks with widths ``(16, 32, 64) * widen_factor`` (strides
    1, 2, 2) after a 16-channel 3x3 stem; the last stage ends with BN + ReLU, so its output is what the global
    pool sees. Input ``[B, 3, H, W]`` -> tuple of stage outputs, last ``[B, 64 * widen_factor, H/4, W/4]``
    (WRN-40-2: 128 channels, WRN-40-1: 64).
    """

    def __init__(self, depth: int = 40, widen_factor: int = 2, out_indices: Sequence[int] = (-1, ),
                 init_cfg: Optional[dict] = KAIMING_CONV_INIT) -> None:
        super().__init__(init_cfg=init_cfg)
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f'CIFARWideResNet: depth must be 6n + 4 with n >= 1 (e.g. 16, 28, 40), got {depth}.')
        n = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.layers = nn.ModuleList()
        in_channels = 16
        for i, width in enumerate(widths):
            blocks = [PreActBlock(in_channels if j == 0 else width, width, (1 if i == 0 else 2) if j == 0 else 1)
                      for j in range(n)]
            if i == len(widths) - 1:
                blocks += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            self.layers.append(nn.Sequential(*blocks))
            in_channels = width
        self.out_indices = check_out_indices(out_indices, len(self.layers), type(self).__name__)
        self.out_channels = tuple(widths)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return forward_stages(self.stem(x), self.layers, self.out_indices)
