"""[PROPOSAL] NC-inspired distillation losses (NCKD reconstruction) as one registered module."""
import logging
from typing import Dict, Optional

from mmengine.logging import MessageHub, print_log
from torch import Tensor, nn

from mmkd.registry import MODELS
from .class_means_mixin import ClassMeansMixin
from .functional import nc1_align_loss, nc1_contrast_loss, nc2_loss, nc2_min_classes, nc3_align_loss


@MODELS.register_module()
class NCLoss(ClassMeansMixin, nn.Module):
    """[PROPOSAL, our reconstruction, not the authors' equations] NC-inspired distillation after NCKD (Zhang,
    Song, He, "Neural Collapse Inspired Knowledge Distillation", AAAI 2025, arXiv 2412.11788); docs/methods.md 2(b).

    With ``p~_k`` the teacher class means centred by their mean over valid classes and L2-normalised
    (:func:`~mmkd.models.losses.functional.prototype_directions`), the loss is
    ``loss_weight * (contrast_weight * L_NC1,con + align_weight * L_NC1,align + nc2_weight * L_NC2
    + nc3_weight * L_NC3)``:

    * ``L_NC1,con``: cross-entropy of ``cos(z~_i, p~_k) / tau`` over classes, target ``y_i``;
    * ``L_NC1,align``: mean ``1 - cos(z~_i, p~_{y_i})``;

    where ``z~_i = z_i - m`` is the student feature centred by ``m``, the mean of the student's batch class means
    (with ``center``; :func:`~mmkd.models.losses.functional.nc1_contrast_loss`), so that NC1 compares centred
    features with centred prototypes as NC2 does. (Before the centring fix the raw feature was compared with the centred
    prototypes: ``tools/analysis/logs/nc_icd_analysis.md``. The centred features are shorter, so the contrast
    gradient, ``~ 1 / (tau ||z~||)``, is larger: re-check ``tau`` and the weights with
    ``tools/analysis/loss_gradient_scales.py``.) A batch with fewer than 2 classes gives NC1 = 0.
    * ``L_NC2``: ``||G_s - G_t||_F^2 / S^2`` between the Grams of the centred, normalised student batch class
      means and the teacher means over the ``S`` classes present (``ignore_index`` excluded, e.g. background;
      skipped when ``S < 3``, see below);
    * ``L_NC3``: ``||W/||W||_F - P~/||P~||_F||_F^2`` for the student classifier ``W`` (first ``K`` rows).

    NC2 needs at least 3 classes present when ``center`` (two centred class means are antipodal on both sides,
    so the term would be identically 0 with zero gradient) and 2 otherwise; a batch with fewer is skipped (the
    term is 0 with grad path). [PROPOSAL] Skips are observable: :attr:`nc2_calls` and :attr:`nc2_skipped` count
    the NC2 evaluations and the skipped ones, the first skip is logged as a warning, and in training mode each
    call records ``train/nc2_skipped`` (1 skipped, 0 computed) in the message hub, so mmengine's logger prints
    the fraction of skipped batches over each logging window (frequent in detection with the background
    ignored: try ``center=False``, larger batches, or a lower ``nc2_weight``).

    A term whose weight is 0 is not computed. mmrazor's ``ConfigurableDistiller`` stores one tensor per loss
    name (``parse_losses`` rejects dicts), so ``forward`` returns the weighted **sum**; :meth:`loss_terms` gives
    the weighted terms by name (``loss_nc1_contrast``, ``loss_nc1_align``, ``loss_nc2``, ``loss_nc3``) for
    logging. The class means come from the bound :class:`~mmkd.structures.ClassMeans`.

    Args:
        loss_weight: overall multiplier.
        contrast_weight, align_weight, nc2_weight, nc3_weight: term weights.
        tau: temperature of the contrast term.
        ignore_index: class left out of NC2 (detection: the background, the last class of the class means).
            Negative values count from the end of the class means (``-1``: the last class).
        center: centre the prototypes (NC1, NC3: by the mean over valid classes; NC2: both sides by the mean
            over the classes present) and, in NC1, the student features (by the mean of their batch class
            means) -- docs/methods.md 2(b) leaves centred vs. uncentred to ablation.

    Forward:
        student_feat ``[N, D]`` (projected to the teacher width), labels ``[N]`` int64, label_weights optional
        ``[N]``, classifier_weight ``[K', D]`` (required when ``nc3_weight > 0``) -> scalar.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 contrast_weight: float = 1.0,
                 align_weight: float = 1.0,
                 nc2_weight: float = 1.0,
                 nc3_weight: float = 0.0,
                 tau: float = 0.1,
                 ignore_index: Optional[int] = None,
                 center: bool = True) -> None:
        super().__init__()
        self.loss_weight, self.tau, self.ignore_index, self.center = loss_weight, tau, ignore_index, center
        self.term_weights = dict(
            loss_nc1_contrast=contrast_weight, loss_nc1_align=align_weight, loss_nc2=nc2_weight, loss_nc3=nc3_weight)
        if not any(self.term_weights.values()):
            raise ValueError('NCLoss: every term weight is 0; enable at least one term')
        self.nc2_calls = 0
        self.nc2_skipped = 0

    def loss_terms(self,
                   student_feat: Tensor,
                   labels: Tensor,
                   label_weights: Optional[Tensor] = None,
                   classifier_weight: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """The weighted terms (``loss_weight * term_weight * term``) with non-zero weight, by name."""
        protos, weights, center = self.class_means.means, label_weights, self.center
        terms = dict(
            loss_nc1_contrast=lambda: nc1_contrast_loss(student_feat, labels, protos, self.tau, weights, center),
            loss_nc1_align=lambda: nc1_align_loss(student_feat, labels, protos, weights, center),
            loss_nc2=lambda: self._nc2(student_feat, labels, protos, weights),
            loss_nc3=lambda: nc3_align_loss(self._classifier(classifier_weight), protos, center=center))
        return {name: self.loss_weight * w * terms[name]() for name, w in self.term_weights.items() if w}

    def _nc2(self, student_feat: Tensor, labels: Tensor, protos: Tensor, weights: Optional[Tensor]) -> Tensor:
        """NC2, counting (and logging) the batches with too few classes for it."""
        loss, num = nc2_loss(student_feat, labels, protos, weights, self._ignored(len(protos)), self.center,
                             return_num_classes=True)
        skipped = num < nc2_min_classes(self.center)
        self.nc2_calls += 1
        self.nc2_skipped += int(skipped)
        if skipped and self.nc2_skipped == 1:
            print_log(
                f'NCLoss: NC2 skipped: {num} class(es) present in the batch (after ignore_index={self.ignore_index}) '
                f'but it needs {nc2_min_classes(self.center)} (center={self.center}); the term is 0 for such '
                'batches. NCLoss.nc2_skipped counts them and the log shows train/nc2_skipped (the fraction).',
                logger='current', level=logging.WARNING)
        if self.training:
            MessageHub.get_current_instance().update_scalar('train/nc2_skipped', float(skipped))
        return loss

    def _ignored(self, num_classes: int) -> Optional[int]:
        index = self.ignore_index
        return index + num_classes if index is not None and index < 0 else index

    @staticmethod
    def _classifier(classifier_weight: Optional[Tensor]) -> Tensor:
        if classifier_weight is None:
            raise ValueError('NCLoss with nc3_weight > 0 needs classifier_weight (the student classifier [K, D]); '
                             'map it in loss_forward_mappings or set nc3_weight=0')
        return classifier_weight

    def forward(self,
                student_feat: Tensor,
                labels: Tensor,
                label_weights: Optional[Tensor] = None,
                classifier_weight: Optional[Tensor] = None) -> Tensor:
        return sum(self.loss_terms(student_feat, labels, label_weights, classifier_weight).values())
