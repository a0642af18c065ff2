"""ReviewKD's hierarchical context loss (HCL) as a registered module."""
from typing import Sequence

from torch import Tensor, nn

from mmkd.registry import MODELS
from .functional import hcl_loss


@MODELS.register_module()
class HCLLoss(nn.Module):
    """ReviewKD's hierarchical context loss (Chen et al., "Distilling Knowledge via Knowledge Review", CVPR 2021),
    as the ND paper's ReviewKD++ applies it to the FPN levels (Wang et al., arXiv 2305.17007, ``Detection/``).

    ``loss_weight * sum_l (mse(S_l, T_l) + sum_k w_k mse(P_k(S_l), P_k(T_l))) / (1 + sum_k w_k)``, where ``S_l``
    is the connector's (``mmkd.ABFConnector``) output for level ``l``, ``T_l`` the teacher's FPN output,
    ``P_k`` ``adaptive_avg_pool2d`` to each size of ``pool_sizes`` below the map's height (a size ``>= H`` is
    skipped) and ``w_k = 2^-k`` for the ``k``-th size kept; ``mse`` is the mean over all elements, levels are
    summed. See :func:`mmkd.models.losses.functional.hcl_loss`.

    Args:
        loss_weight: multiplier (the ND paper's ``KD_WEIGHT``: ReviewKD++ 1.4 R101->R50, 1.2 R101->R18,
            2.2 R50->MV2; ReviewKD 1.0 / 1.2 / 2.0).
        pool_sizes: the pooled context sizes, in weight order (ReviewKD: 4, 2, 1).

    Forward:
        student_feats, teacher_feats: sequences of ``[N, C_l, H_l, W_l]`` (one per level, same shapes) -> scalar.
    """

    def __init__(self, loss_weight: float = 1.0, pool_sizes: Sequence[int] = (4, 2, 1)) -> None:
        super().__init__()
        if any(int(p) < 1 for p in pool_sizes):
            raise ValueError(f'HCLLoss: pool_sizes must be positive ints, got {tuple(pool_sizes)}')
        self.loss_weight, self.pool_sizes = loss_weight, tuple(int(p) for p in pool_sizes)

    def forward(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor]) -> Tensor:
        return self.loss_weight * hcl_loss(student_feats, teacher_feats, self.pool_sizes)
