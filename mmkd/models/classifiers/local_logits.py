"""Multi-scale local logits of SDD/iCD: the classifier applied to pooled sub-regions of the last feature map."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def multi_scale_local_logits(feat_map: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                             scales: Sequence[int]) -> torch.Tensor:
    """Pool ``feat_map`` to every ``s x s`` grid of ``scales`` and apply the linear classifier to each region.

    ``Z[b, :, r] = W @ x_r + bias`` where ``x_r`` is region ``r`` of ``adaptive_avg_pool2d(F, s)``; regions are
    ordered scale by scale (as given, e.g. 1x1, then 2x2 row-major, then 4x4 row-major). Pooling and the linear map
    commute, so this equals pooling a ``K x H x W`` logit map (SDD, Wei et al., CVPR 2024; iCD, Xue et al.,
    arXiv 2509.12553, section 3(a) of the spec).

    Each grid is pooled directly from ``feat_map``, so the 1x1 region is exactly the global logit. (SDD pools to
    4x4 first and derives 2x2/1x1 from it; the two agree whenever 4 divides H and W.)

    Args:
        feat_map: ``[B, C, H, W]``.
        weight: classifier weight ``[K, C]``.
        bias: classifier bias ``[K]`` or None.
        scales: grid sizes, e.g. ``(1, 2, 4)``.

    Returns:
        Local logits ``[B, K, P]`` with ``P = sum(s * s for s in scales)``.
    """
    if feat_map.dim() != 4 or feat_map.shape[1] != weight.shape[1]:
        raise ValueError(f'multi_scale_local_logits: feat_map must be [B, C, H, W] with C = {weight.shape[1]} (the '
                         f'classifier input width), got shape {tuple(feat_map.shape)}.')
    pooled = torch.cat([F.adaptive_avg_pool2d(feat_map, s).flatten(2) for s in scales], dim=2)  # [B, C, P]
    logits = torch.einsum('bcp,kc->bkp', pooled, weight)
    return logits if bias is None else logits + bias[:, None]


class LocalLogits(nn.Module):
    """Parameter-free module around :func:`multi_scale_local_logits`: ``(feat_map [B, C, H, W], weight [K, C],
    bias [K]) -> [B, K, P]``.

    It exists so that a ``ModuleOutputs`` recorder on ``head.local_logits`` captures the iCD local logits, and it
    reuses the head's ``fc`` parameters without calling ``fc`` (a recorder on ``head.fc`` sees one call only).
    """

    def __init__(self, scales: Sequence[int] = (1, 2, 4)) -> None:
        super().__init__()
        scales = tuple(scales)
        if not scales or any(not isinstance(s, int) or s < 1 for s in scales):
            raise ValueError(f'LocalLogits: scales must be a non-empty sequence of positive ints, got {scales}.')
        self.scales: Tuple[int, ...] = scales
        self.num_regions = sum(s * s for s in scales)

    def forward(self, feat_map: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        return multi_scale_local_logits(feat_map, weight, bias, self.scales)

    def extra_repr(self) -> str:
        return f'scales={self.scales}, num_regions={self.num_regions}'
