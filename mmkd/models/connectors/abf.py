"""ReviewKD's attention-based fusion (ABF) of the student's FPN levels, as one connector."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmrazor.models.architectures.connectors.base_connector import BaseConnector
from torch import Tensor, nn

from mmkd.registry import MODELS


class ABF(nn.Module):
    """One level of ReviewKD's attention-based fusion (the authors' ``ABF``).

    ``x = BN(conv1x1(x))`` (``in -> mid``, no bias); with ``fuse``: ``y' = nearest-upsample(y, x's size)``,
    ``[a0, a1] = sigmoid(conv1x1([x, y']))`` (``2 mid -> 2``, with bias), ``x = x * a0 + y' * a1``. Returns
    ``(BN(conv3x3(x)), x)``: the level's output at ``out`` channels (3x3, padding 1, no bias) and the fused
    ``mid``-channel map handed on to the next (shallower) level. ``conv1`` / ``conv2`` weights:
    ``kaiming_uniform_(a=1)``; ``att_conv``: PyTorch's default init.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, fuse: bool) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 1, bias=False), nn.BatchNorm2d(mid_channels))
        self.conv2 = nn.Sequential(nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(out_channels))
        self.att_conv = nn.Sequential(nn.Conv2d(2 * mid_channels, 2, 1), nn.Sigmoid()) if fuse else None
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        x = self.conv1(x)
        if self.att_conv is not None:
            y = F.interpolate(y, size=x.shape[-2:], mode='nearest')
            z = self.att_conv(torch.cat([x, y], dim=1))
            x = x * z[:, 0:1] + y * z[:, 1:2]
        return self.conv2(x), x


@MODELS.register_module()
class ABFConnector(BaseConnector):
    """ReviewKD's review connector with attention-based fusion (Chen et al., "Distilling Knowledge via Knowledge
    Review", CVPR 2021), as the ND paper's ReviewKD++ applies it to the student's FPN outputs P2-P6 (Wang et al.,
    arXiv 2305.17007, ``Detection/model/reviewkd.py``; docs/methods.md 1(c)).

    The levels are processed from the deepest up: level ``L-1`` (deepest) gives
    ``m_{L-1} = BN(conv1x1(x_{L-1}))`` unfused; every shallower level ``l`` fuses
    ``c_l = BN(conv1x1(x_l))`` with the deeper fused map ``u = nearest-upsample(m_{l+1})``:
    ``m_l = c_l * a0 + u * a1``, ``[a0, a1] = sigmoid(conv1x1([c_l, u]))``. Output ``l`` is
    ``BN(conv3x3(m_l))`` at the teacher's width (see :class:`ABF`). Trained with the student by the default
    optimizer (it is part of the distiller) and dropped by ``convert_kd_ckpt_to_student.py``.

    Args:
        in_channels: the student's width per level (shallow -> deep), or one int for every level.
        out_channels: the teacher's width per level, or one int.
        mid_channels: width of the fused maps (the paper: 256).
        num_levels: number of levels when both widths are ints (default 5: P2-P6 of mmdet's FPN with
            ``num_outs=5``).
        init_cfg: mmengine init config (overrides the authors' init when given).

    Forward:
        a tuple of ``L`` maps ``[N, in_l, H_l, W_l]``, shallow -> deep (an mmdet neck's output) ->
        a tuple of ``L`` maps ``[N, out_l, H_l, W_l]`` in the same order.
    """

    def __init__(self, in_channels: Union[int, Sequence[int]], out_channels: Union[int, Sequence[int]],
                 mid_channels: int = 256, num_levels: Optional[int] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        in_list, out_list = _per_level(in_channels, out_channels, num_levels)
        if mid_channels < 1:
            raise ValueError(f'ABFConnector: mid_channels must be >= 1, got {mid_channels}')
        self.in_channels, self.out_channels, self.mid_channels = in_list, out_list, mid_channels
        last = len(in_list) - 1
        # abfs[l] serves level l (shallow -> deep); the deepest has no fusion
        self.abfs = nn.ModuleList(ABF(c_in, mid_channels, c_out, fuse=level < last)
                                  for level, (c_in, c_out) in enumerate(zip(in_list, out_list)))

    def forward_train(self, feature: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        feats = self._check(feature)
        outs: List[Optional[Tensor]] = [None] * len(feats)
        fused = None
        for level in reversed(range(len(feats))):
            outs[level], fused = self.abfs[level](feats[level], fused)
        return tuple(outs)

    def _check(self, feature: Sequence[Tensor]) -> List[Tensor]:
        if isinstance(feature, Tensor) or not isinstance(feature, (list, tuple)):
            raise TypeError(f'ABFConnector takes the tuple of the student\'s FPN levels (record the neck\'s outputs: '
                            f'ModuleOutputs on \'neck\'), got {type(feature).__name__}')
        if len(feature) != len(self.abfs):
            raise ValueError(f'ABFConnector was built for {len(self.abfs)} levels but got {len(feature)}: set its '
                             f'in_channels / out_channels (or num_levels) to the neck\'s {len(feature)} outputs')
        widths = [f.shape[1] if isinstance(f, Tensor) and f.dim() == 4 else None for f in feature]
        if widths != self.in_channels:
            raise ValueError(f'ABFConnector expects [N, C, H, W] maps with C = {self.in_channels} per level, got '
                             f'{[list(getattr(f, "shape", [])) for f in feature]}; set in_channels to the '
                             f'student neck\'s widths')
        single = [level for level, f in enumerate(feature) if f.shape[0] * f.shape[2] * f.shape[3] == 1]
        if self.training and single:
            raise ValueError(f'ABFConnector: level {single[0]} is one 1x1 map ({list(feature[single[0]].shape)}), so '
                             f'its BatchNorms cannot train (one value per channel). Use >= 2 images per GPU or '
                             f'larger images (with 5 FPN levels, P6 is 1x1 for inputs of at most 64 px).')
        return list(feature)


def _per_level(in_channels: Union[int, Sequence[int]], out_channels: Union[int, Sequence[int]],
               num_levels: Optional[int]) -> Tuple[List[int], List[int]]:
    lengths = {len(c) for c in (in_channels, out_channels) if not isinstance(c, int)}
    if num_levels is not None:
        lengths.add(num_levels)
    if len(lengths) > 1:
        raise ValueError(f'ABFConnector: in_channels {in_channels!r}, out_channels {out_channels!r} and '
                         f'num_levels {num_levels!r} give different numbers of levels; give one width per level')
    levels = lengths.pop() if lengths else 5
    in_list = [in_channels] * levels if isinstance(in_channels, int) else [int(c) for c in in_channels]
    out_list = [out_channels] * levels if isinstance(out_channels, int) else [int(c) for c in out_channels]
    if levels < 1 or min(in_list + out_list) < 1:
        raise ValueError(f'ABFConnector needs >= 1 level and positive widths, got in_channels {in_channels!r}, '
                         f'out_channels {out_channels!r}, num_levels {num_levels!r}')
    return in_list, out_list
