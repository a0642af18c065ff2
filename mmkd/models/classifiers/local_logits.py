"""Multi-scale local logits of SDD/iCD: the classifier applied to pooled sub-regions of the last feature map."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

#: SDD's SPP pools the map to this grid first and every coarser grid from it (``nn.AdaptiveAvgPool2d((4, 4))``).
SDD_BASE_GRID = 4


def check_local_scales(scales: Sequence[int], base_grid: Optional[int] = SDD_BASE_GRID) -> Tuple[int, ...]:
    """``scales`` as a tuple, after checking them against ``base_grid``; a clear error names the fix."""
    scales = tuple(scales)
    if not scales or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in scales):
        raise ValueError(f'LocalLogits: scales must be a non-empty sequence of positive ints, got {scales}.')
    if base_grid is not None:
        if isinstance(base_grid, bool) or not isinstance(base_grid, int) or base_grid < 1:
            raise ValueError(f'LocalLogits: base_grid must be a positive int or None, got {base_grid!r}.')
        bad = [s for s in scales if base_grid % s]
        if bad:
            raise ValueError(f'LocalLogits: scales {bad} do not divide base_grid={base_grid} (SDD pools the map to '
                             f'a {base_grid}x{base_grid} grid and every coarser grid from it); use scales that '
                             f'divide it, a base_grid that all scales divide, or base_grid=None to pool each grid '
                             f'directly from the map.')
    return scales


def multi_scale_local_logits(feat_map: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                             scales: Sequence[int], base_grid: Optional[int] = SDD_BASE_GRID) -> torch.Tensor:
    """Pool ``feat_map`` to every ``s x s`` grid of ``scales`` and apply the linear classifier to each region.

    ``Z[b, :, r] = W @ x_r + bias`` where ``x_r`` is region ``r``; regions are ordered scale by scale (as given,
    e.g. 1x1, then 2x2 row-major, then 4x4 row-major). Pooling and the linear map commute, so this equals pooling
    a ``K x H x W`` logit map (SDD, Wei et al., CVPR 2024; iCD, Xue et al., arXiv 2509.12553).

    Pooling as SDD's released ``SPP`` (which iCD reuses): the map is adaptive-average-pooled to a
    ``base_grid x base_grid`` grid (4x4), and every grid of ``scales`` is adaptive-average-pooled from that grid,
    not from the map. ``adaptive_avg_pool2d`` to ``n`` cells along a side of length ``H`` averages rows
    ``floor(i*H/n) .. ceil((i+1)*H/n) - 1`` for cell ``i``: when ``n`` does not divide ``H`` the windows overlap
    (14 -> 4: rows 0-3, 3-6, 7-10, 10-13), so the 1x1 region -- the mean of the 16 cells -- is not the map's mean
    and differs from the head's global logit; when 4 divides ``H`` and ``W`` it is exactly the global logit.
    ``base_grid=None`` pools every grid directly from the map instead ([PROPOSAL], not SDD's).

    Args:
        feat_map: ``[B, C, H, W]``.
        weight: classifier weight ``[K, C]``.
        bias: classifier bias ``[K]`` or None.
        scales: grid sizes, e.g. ``(1, 2, 4)``; each must divide ``base_grid``.
        base_grid: the grid pooled from the map (SDD: 4), or None.

    Returns:
        Local logits ``[B, K, P]`` with ``P = sum(s * s for s in scales)``.
    """
    if feat_map.dim() != 4 or feat_map.shape[1] != weight.shape[1]:
        raise ValueError(f'multi_scale_local_logits: feat_map must be [B, C, H, W] with C = {weight.shape[1]} (the '
                         f'classifier input width), got shape {tuple(feat_map.shape)}.')
    scales = check_local_scales(scales, base_grid)
    if base_grid is None:
        grids = [F.adaptive_avg_pool2d(feat_map, s) for s in scales]
    else:
        base = F.adaptive_avg_pool2d(feat_map, base_grid)  # [B, C, g, g]
        grids = [base if s == base_grid else F.adaptive_avg_pool2d(base, s) for s in scales]
    pooled = torch.cat([g.flatten(2) for g in grids], dim=2)  # [B, C, P]
    logits = torch.einsum('bcp,kc->bkp', pooled, weight)
    return logits if bias is None else logits + bias[:, None]


class LocalLogits(nn.Module):
    """Parameter-free module around :func:`multi_scale_local_logits`: ``(feat_map [B, C, H, W], weight [K, C],
    bias [K]) -> [B, K, P]``, pooled as SDD's ``SPP`` (the map to 4x4, the coarser grids from the 4x4).

    It exists so that a ``ModuleOutputs`` recorder on ``head.local_logits`` captures the iCD local logits, and it
    reuses the head's ``fc`` parameters without calling ``fc`` (a recorder on ``head.fc`` sees one call only).

    Args:
        scales: grid sizes, each dividing ``base_grid``.
        base_grid: the grid pooled from the map (SDD's 4), or None to pool each grid from the map [PROPOSAL].
    """

    def __init__(self, scales: Sequence[int] = (1, 2, 4), base_grid: Optional[int] = SDD_BASE_GRID) -> None:
        super().__init__()
        self.scales: Tuple[int, ...] = check_local_scales(scales, base_grid)
        self.base_grid = base_grid
        self.num_regions = sum(s * s for s in self.scales)

    def forward(self, feat_map: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        return multi_scale_local_logits(feat_map, weight, bias, self.scales, self.base_grid)

    def extra_repr(self) -> str:
        return f'scales={self.scales}, base_grid={self.base_grid}, num_regions={self.num_regions}'
