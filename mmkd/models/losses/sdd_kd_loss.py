"""SDD's multi-region KD (the KD term of SDD-KD and of iCD's released CD-SDD-KD) as a registered module."""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkd.registry import MODELS
from .functional import _at_least_float32

__all__ = ['SDDKDLoss', 'sdd_kd_loss', 'sdd_region_weights']


def sdd_region_weights(teacher_logits: Tensor, labels: Tensor, complementary_weight: float = 2.0) -> Tensor:
    """SDD's weight of every (sample, region) KD term: ``[B, P]``.

    ``c[b, r] = [argmax_k teacher_logits[b, k, r] == labels[b]]`` says whether the teacher's region ``r`` is right;
    region 0 is the global (1x1) region. A region whose correctness equals the global one (both right or both
    wrong: *consistent*) weighs 1, one that differs (*complementary*) weighs ``complementary_weight`` (SDD's 2);
    region 0 always weighs 1. Ties in the argmax go to the first class, as ``torch.argmax``.
    """
    correct = teacher_logits.argmax(dim=1) == labels[:, None]  # [B, P]
    complementary = correct != correct[:, :1]  # region 0 is never complementary
    return 1 + (complementary_weight - 1) * complementary.to(teacher_logits.dtype)


@_at_least_float32
def sdd_kd_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, tau: float = 4.0,
                complementary_weight: float = 2.0) -> Tensor:
    """SDD's multi-region KD (Wei, Luo, Luo, "Scale Decoupled Distillation", CVPR 2024, arXiv 2403.13512),
    equal to the released ``sdd_kd_loss`` that iCD's ``CD_SDD_KD`` adds its cluster loss to.

    ``L = 1 / (P B) * sum_{b, r} w[b, r] * tau^2 * KL(softmax(t[b, :, r] / tau) || softmax(s[b, :, r] / tau))``

    over the ``B`` samples and ``P`` regions, with ``w`` from :func:`sdd_region_weights` (1 for the global region
    and the consistent ones, ``complementary_weight`` for the complementary ones). As released, a NaN element of
    the KL is set to 0 before the sum over classes, and a non-finite total gives a constant 0 (no gradient). With
    ``P = 1`` this is plain KD (``tau^2 * KL``, mean over samples) on the one region.

    Args:
        student_logits: ``[B, K, P]`` local logits (region 0: the 1x1 region), as
            :class:`~mmkd.models.classifiers.LocalLogits` produces them.
        teacher_logits: ``[B, K, P]``; detached.
        labels: ``[B]`` int64 ground-truth classes (only for the weights).
        tau: KD temperature (SDD/iCD: 4).
        complementary_weight: weight of a complementary region (SDD's 2).

    Returns:
        Scalar loss (0 with grad path for ``B = 0``).
    """
    if student_logits.dim() != 3 or student_logits.shape != teacher_logits.shape:
        raise ValueError('sdd_kd_loss: student_logits and teacher_logits must both have shape [B, K, P] (the '
                         f'heads\' local logits), got {list(student_logits.shape)} and {list(teacher_logits.shape)}')
    batch, num_classes, regions = student_logits.shape
    if not isinstance(labels, Tensor) or labels.dtype != torch.int64 or labels.shape != (batch, ):
        raise ValueError(f'sdd_kd_loss: labels must be an int64 tensor of shape [{batch}] (one class per sample), '
                         f'got {getattr(labels, "dtype", type(labels).__name__)} '
                         f'{list(getattr(labels, "shape", []))}')
    if batch == 0:
        return 0 * student_logits.sum()
    teacher_logits = teacher_logits.detach()
    log_s = F.log_softmax(student_logits / tau, dim=1)
    log_t = F.log_softmax(teacher_logits / tau, dim=1)
    kl = log_t.exp() * (log_t - log_s) * tau**2  # [B, K, P]
    kl = torch.where(torch.isnan(kl), 0, kl).sum(dim=1)  # [B, P]
    weights = sdd_region_weights(teacher_logits, labels, complementary_weight)
    loss = (weights * kl).sum() / (batch * regions)
    if not torch.isfinite(loss):  # as released: a non-finite batch loss is skipped (one device sync)
        return loss.new_zeros(())
    return loss


@MODELS.register_module()
class SDDKDLoss(nn.Module):
    """SDD's multi-region KD (Wei et al., CVPR 2024), the KD term of SDD-KD and of iCD's released CD-SDD-KD
    (Xue et al., arXiv 2509.12553).

    ``loss_weight / (P B) * sum_{b, r} w[b, r] * tau^2 * KL(softmax(t[b, :, r] / tau) || softmax(s[b, :, r] / tau))``
    with ``w = 1`` for the global region and for the regions whose teacher prediction is right exactly when the
    global one is (consistent), ``complementary_weight`` (2) for the others; see
    :func:`mmkd.models.losses.sdd_kd_loss.sdd_kd_loss`.

    Args:
        loss_weight: multiplier (iCD/SDD: ``KD.LOSS.KD_WEIGHT`` = 0.9 with KD).
        tau: KD temperature (4).
        complementary_weight: weight of a complementary region (2).

    Forward:
        student_logits ``[B, K, P]``, teacher_logits ``[B, K, P]`` (the heads' local logits), gt_labels ``[B]``
        int64 -> scalar.
    """

    def __init__(self, loss_weight: float = 1.0, tau: float = 4.0, complementary_weight: float = 2.0) -> None:
        super().__init__()
        if not tau > 0:
            raise ValueError(f'SDDKDLoss: tau must be > 0, got {tau}')
        self.loss_weight, self.tau, self.complementary_weight = loss_weight, tau, complementary_weight

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, gt_labels: Tensor) -> Tensor:
        return self.loss_weight * sdd_kd_loss(student_logits, teacher_logits, gt_labels, self.tau,
                                              self.complementary_weight)
