"""Small building blocks shared by mmkd's CIFAR backbones."""
from typing import Sequence, Tuple, Union

import torch
from torch import nn

#: default init of the CIFAR backbones: Kaiming-normal convs (fan-out, ReLU gain), as the CRD/ND reference code does.
KAIMING_CONV_INIT = dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu')


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
            relu: bool = False) -> nn.Sequential:
    """``Conv2d (no bias, 'same' padding) -> BatchNorm2d [-> ReLU]``."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
              nn.BatchNorm2d(out_channels)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: ``[B, g*c, H, W] -> view [B, g, c, H, W] -> transpose -> [B, c*g, H, W]``."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def check_out_indices(out_indices: Union[int, Sequence[int]], num_stages: int, name: str) -> Tuple[int, ...]:
    """Normalise ``out_indices`` to sorted non-negative stage indices, or raise a ValueError naming the range."""
    if isinstance(out_indices, int):
        out_indices = (out_indices, )
    resolved = tuple(sorted(i + num_stages if i < 0 else i for i in out_indices))
    if not resolved or any(not 0 <= i < num_stages for i in resolved):
        raise ValueError(f'{name}: out_indices {tuple(out_indices)} out of range for {num_stages} stages; '
                         f'use indices in [-{num_stages}, {num_stages - 1}].')
    return resolved


def forward_stages(x: torch.Tensor, stages: nn.ModuleList, out_indices: Tuple[int, ...]) -> Tuple[torch.Tensor, ...]:
    """Run ``stages`` in order and return the outputs of those in ``out_indices``."""
    outs = []
    for i, stage in enumerate(stages):
        x = stage(x)
        if i in out_indices:
            outs.append(x)
    return tuple(outs)
