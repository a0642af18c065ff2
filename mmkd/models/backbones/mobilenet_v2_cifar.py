"""MobileNetV2 for CIFAR (Sandler et al., CVPR 2018), CRD's ``mobile_half`` used as the "MV2" student of the KD
benchmark: width multiplier 0.5, expansion 6, final 1x1 conv to 1280 channels."""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import nn

from mmkd.registry import MODELS
from .utils import KAIMING_CONV_INIT, check_out_indices, conv_bn, forward_stages


class InvertedResidual(nn.Module):
    """``1x1 expand (BN, ReLU) -> dw3x3 (stride; BN, ReLU) -> 1x1 project (BN)``, plus the input when stride 1 and
    the width is unchanged."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(conv_bn(in_channels, hidden, 1, relu=True),
                                  conv_bn(hidden, hidden, 3, stride, groups=hidden, relu=True),
                                  conv_bn(hidden, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


@MODELS.register_module()
class CIFARMobileNetV2(BaseModule):
    """MobileNetV2 (CIFAR). A stride-2 3x3 stem, then the seven inverted-residual stages of the paper (``t, c, n, s``
    with ``t = expand_ratio`` except the first stage, ``c`` scaled by ``widen_factor``; CRD strides
    ``1, 1, 2, 2, 1, 2, 1``), then a 1x1 conv-BN-ReLU to ``last_channels`` (1280 unless ``widen_factor > 1``)
    appended to the last stage. Input ``[B, 3, H, W]`` -> tuple of stage outputs, last ``[B, 1280, H/16, W/16]``.
    """

    # (expand ratio, or None for ``expand_ratio``), channels, blocks, first stride
    stage_settings = ((1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2), (None, 96, 3, 1),
                      (None, 160, 3, 2), (None, 320, 1, 1))

    def __init__(self, widen_factor: float = 0.5, expand_ratio: int = 6, out_indices: Sequence[int] = (-1, ),
                 init_cfg: Optional[dict] = KAIMING_CONV_INIT) -> None:
        super().__init__(init_cfg=init_cfg)
        in_channels = int(32 * widen_factor)
        self.stem = conv_bn(3, in_channels, 3, 2, relu=True)
        self.layers = nn.ModuleList()
        out_channels = []
        last_channels = int(1280 * widen_factor) if widen_factor > 1.0 else 1280
        for i, (t, c, n, s) in enumerate(self.stage_settings):
            width = int(c * widen_factor)
            blocks = [InvertedResidual(in_channels if j == 0 else width, width, s if j == 0 else 1,
                                       expand_ratio if t is None else t) for j in range(n)]
            if i == len(self.stage_settings) - 1:
                blocks.append(conv_bn(width, last_channels, 1, relu=True))
                width = last_channels
            self.layers.append(nn.Sequential(*blocks))
            out_channels.append(width)
            in_channels = int(c * widen_factor)
        self.out_indices = check_out_indices(out_indices, len(self.layers), type(self).__name__)
        self.out_channels = tuple(out_channels)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return forward_stages(self.stem(x), self.layers, self.out_indices)
