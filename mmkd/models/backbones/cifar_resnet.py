"""ResNets at CIFAR resolution, as in the standard CIFAR-100 KD benchmark (CRD, Tian et al., ICLR 2020).

Two families share one builder (3x3 stride-1 stem, no max-pool, first stage at stride 1, then stride 2 per stage):

* ``resnet{20,32,44,56,110}`` and ``resnet{8,32}x4``: depth ``6n + 2``, three stages of ``n`` basic blocks, widths
  ``(16, 32, 64)`` or 4x wider ``(64, 128, 256)`` after a 16- or 32-channel stem (CRD's ``resnet.py``); a 32x32
  input gives an 8x8 final map.
* ``resnet{18,34,50}``: the ImageNet stage layout ``(64, 128, 256, 512) x expansion`` on a 64-channel 3x3 stem
  (CRD's ``resnetv2.py``; ``resnet50`` is the CIFAR "res50" teacher with a 2048-d embedding); 4x4 final map.
"""
from typing import Optional, Sequence, Tuple, Type

import torch
from mmengine.model import BaseModule
from torch import nn

from mmkd.registry import MODELS
from .utils import KAIMING_CONV_INIT, check_out_indices, conv_bn, forward_stages


class BasicBlock(nn.Module):
    """``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``; the shortcut is a 1x1 conv-BN when the shape
    changes."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = conv_bn(in_channels, channels, 3, stride)
        self.conv2 = conv_bn(channels, out_channels, 3)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (conv_bn(in_channels, out_channels, 1, stride)
                         if stride != 1 or in_channels != out_channels else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu(self.conv1(x)))
        return self.relu(out + self.shortcut(x))


class Bottleneck(BasicBlock):
    """``1x1 -> 3x3 (stride) -> 1x1 (x4 channels)`` bottleneck with the same shortcut rule."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        nn.Module.__init__(self)
        out_channels = channels * self.expansion
        self.conv1 = nn.Sequential(conv_bn(in_channels, channels, 1, relu=True), conv_bn(channels, channels, 3, stride))
        self.conv2 = conv_bn(channels, out_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (conv_bn(in_channels, out_channels, 1, stride)
                         if stride != 1 or in_channels != out_channels else nn.Identity())


@MODELS.register_module()
class CIFARResNet(BaseModule):
    """ResNet for 32x32 inputs (CRD's CIFAR ResNets; He et al., CVPR 2016).

    Input ``[B, 3, H, W]``; output a tuple of the feature maps of the stages in ``out_indices`` (default: last stage
    only), e.g. ``[B, 64, H/4, W/4]`` for ``resnet56`` and ``[B, 2048, H/8, W/8]`` for ``resnet50``.

    Args:
        arch: one of :attr:`arch_settings`.
        out_indices: stages whose outputs are returned (negative indices count from the end).
        init_cfg: mmengine init config; by default Kaiming-normal convs, as in CRD.
    """

    # arch: (block, blocks per stage, stem width, stage widths before expansion)
    arch_settings = {
        'resnet8': (BasicBlock, (1, 1, 1), 16, (16, 32, 64)),
        'resnet14': (BasicBlock, (2, 2, 2), 16, (16, 32, 64)),
        'resnet20': (BasicBlock, (3, 3, 3), 16, (16, 32, 64)),
        'resnet32': (BasicBlock, (5, 5, 5), 16, (16, 32, 64)),
        'resnet44': (BasicBlock, (7, 7, 7), 16, (16, 32, 64)),
        'resnet56': (BasicBlock, (9, 9, 9), 16, (16, 32, 64)),
        'resnet110': (BasicBlock, (18, 18, 18), 16, (16, 32, 64)),
        'resnet8x4': (BasicBlock, (1, 1, 1), 32, (64, 128, 256)),
        'resnet32x4': (BasicBlock, (5, 5, 5), 32, (64, 128, 256)),
        'resnet18': (BasicBlock, (2, 2, 2, 2), 64, (64, 128, 256, 512)),
        'resnet34': (BasicBlock, (3, 4, 6, 3), 64, (64, 128, 256, 512)),
        'resnet50': (Bottleneck, (3, 4, 6, 3), 64, (64, 128, 256, 512)),
    }

    def __init__(self, arch: str = 'resnet56', out_indices: Sequence[int] = (-1, ),
                 init_cfg: Optional[dict] = KAIMING_CONV_INIT) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch not in self.arch_settings:
            raise ValueError(f'CIFARResNet: unknown arch {arch!r}; choose one of {sorted(self.arch_settings)}.')
        block, num_blocks, stem, widths = self.arch_settings[arch]
        self.stem = conv_bn(3, stem, 3, relu=True)
        self.layers = nn.ModuleList()
        in_channels = stem
        for i, (n, width) in enumerate(zip(num_blocks, widths)):
            self.layers.append(self._make_stage(block, in_channels, width, n, 1 if i == 0 else 2))
            in_channels = width * block.expansion
        self.out_indices = check_out_indices(out_indices, len(self.layers), type(self).__name__)
        self.out_channels = tuple(w * block.expansion for w in widths)

    @staticmethod
    def _make_stage(block: Type[BasicBlock], in_channels: int, channels: int, num_blocks: int,
                    stride: int) -> nn.Sequential:
        blocks = [block(in_channels, channels, stride)]
        blocks += [block(channels * block.expansion, channels) for _ in range(num_blocks - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return forward_stages(self.stem(x), self.layers, self.out_indices)
