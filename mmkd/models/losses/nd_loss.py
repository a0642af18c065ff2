"""ND loss of KD++ as a registered module."""
from typing import Optional

from torch import Tensor, nn

from mmkd.registry import MODELS
from .class_means_mixin import ClassMeansMixin
from .functional import nd_loss


@MODELS.register_module()
class NDLoss(ClassMeansMixin, nn.Module):
    """ND loss of KD++ (Wang et al., "Improving Knowledge Distillation via Regularizing Feature Norm and
    Direction", arXiv 2305.17007; ECCV 2024).

    ``loss_weight * mean_i [1 - <f_s,i, c_{y_i}/||c_{y_i}||> / (max(||f_s,i||, ||f_t,i||, r ||c_{y_i}||) + eps)]``
    over samples with positive label weight and a valid teacher class mean, ``r = norm_floor`` (default 0:
    KD++'s formula, ``max(||f_s||, ||f_t||) + eps``); see
    :func:`mmkd.models.losses.functional.nd_loss`. The class means ``c`` ``[K, D]`` come from the bound
    :class:`~mmkd.structures.ClassMeans` (:meth:`bind_class_means`).

    Args:
        loss_weight: multiplier of the loss.
        eps: added to the denominator.
        norm_floor: 0 (default) gives KD++'s exact denominator. [PROPOSAL] ``> 0``: the teacher norm is taken
            as at least ``norm_floor * ||c_y||``, which bounds the gradient (KD++'s is ``1 / eps`` per sample
            when both features are zero, which overflows float16); not compared with KD++'s formula on held-out
            data yet, so opt-in (e.g. ``norm_floor=0.1``).

    Forward:
        student_feat ``[N, D]``, teacher_feat ``[N, D]``, labels ``[N]`` int64 (detection: RoI labels with the
        background last), label_weights optional ``[N]`` -> scalar.
    """

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-6, norm_floor: float = 0.0) -> None:
        super().__init__()
        if not norm_floor >= 0:
            raise ValueError(f'NDLoss: norm_floor must be >= 0 (a fraction of the class-mean norm), got {norm_floor}')
        self.loss_weight, self.eps, self.norm_floor = loss_weight, eps, norm_floor

    def forward(self,
                student_feat: Tensor,
                teacher_feat: Tensor,
                labels: Tensor,
                label_weights: Optional[Tensor] = None) -> Tensor:
        means = self.class_means
        loss = nd_loss(student_feat, teacher_feat, labels, means.means, label_weights, self.eps, self.norm_floor)
        return self.loss_weight * loss
