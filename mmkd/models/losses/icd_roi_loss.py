"""[PROPOSAL] RoI-relational iCD for detection as a registered module."""
import torch
from torch import Tensor, nn

from mmkd.registry import MODELS
from .functional import icd_grouped_loss


@MODELS.register_module()
class ICDRoILoss(nn.Module):
    """[PROPOSAL, not from the iCD authors] iCD on detection RoIs (docs/methods.md 3(f) P1; iCD: Xue et al.,
    arXiv 2509.12553).

    The RoIs are grouped (by image, or by image and FPN level); within each group the Gram of the
    L2-normalised RoI class-logit vectors is row-softmaxed at ``tau`` and ``KL(teacher || student)`` is averaged
    over the group's rows, then over the groups with at least 2 RoIs; see
    :func:`mmkd.models.losses.functional.icd_grouped_loss`.

    Args:
        loss_weight: multiplier.
        tau: Gram softmax temperature.
        group_by: ``'image'`` (``rois[:, 0]``) or ``'image_level'`` (also the FPN level mmdet's
            ``SingleRoIExtractor.map_roi_levels`` assigns: ``floor(log2(sqrt(w*h) / finest_scale + 1e-6))``
            clamped to ``[0, num_levels - 1]``).
        finest_scale: as the RoI extractor's ``finest_scale``.
        num_levels: number of FPN levels the extractor pools from.

    Forward:
        student_logits ``[R, K]``, teacher_logits ``[R, K]`` (on the same RoIs), rois ``[R, 5]``
        ``(batch_idx, x1, y1, x2, y2)`` -> scalar.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 tau: float = 2.0,
                 group_by: str = 'image',
                 finest_scale: int = 56,
                 num_levels: int = 4) -> None:
        super().__init__()
        if group_by not in ('image', 'image_level'):
            raise ValueError(f"group_by must be 'image' or 'image_level', got {group_by!r}")
        self.loss_weight, self.tau, self.group_by = loss_weight, tau, group_by
        self.finest_scale, self.num_levels = finest_scale, num_levels

    def group_ids(self, rois: Tensor) -> Tensor:
        """``[R]`` int64 group of each RoI."""
        if rois.dim() != 2 or rois.shape[1] != 5:
            raise ValueError(f'rois must have shape [R, 5] (batch_idx, x1, y1, x2, y2), got {list(rois.shape)}')
        image = rois[:, 0].long()
        if self.group_by == 'image':
            return image
        scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
        level = torch.floor(torch.log2(scale / self.finest_scale + 1e-6)).clamp(0, self.num_levels - 1).long()
        return image * self.num_levels + level

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, rois: Tensor) -> Tensor:
        loss = icd_grouped_loss(student_logits, teacher_logits, self.group_ids(rois.detach()), self.tau)
        return self.loss_weight * loss
