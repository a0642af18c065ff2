"""mmrazor's feature-distillation algorithms (``FpnTeacherDistill``, ``SingleTeacherDistill``) with mmkd's checks."""
from typing import Dict, List, Optional

import torch
from mmengine.structures import BaseDataElement
from mmrazor.models.utils import add_prefix
from torch import Tensor

from mmkd.registry import MODELS
from .base import TeacherStudentDistill


class _CheckedRazorDistill(TeacherStudentDistill):
    """The training step of mmrazor's ``SingleTeacherDistill`` family between mmkd's checks (see the two classes
    below): with deliveries recording, the frozen teacher runs on the batch (:meth:`teacher_forward`, under
    ``torch.no_grad()``, inside the teacher recorders); with deliveries replaying, the student's ``loss`` runs
    inside the student recorders (its losses added as ``student.*`` if ``calculate_student_loss``, else run under
    ``student_trainable``'s grad mode); then, unless ``StopDistillHook`` stopped distillation, the ``distill.*``
    losses of ``distiller``."""

    def __init__(self, distiller: Dict, *args, class_means: Optional[Dict] = None, **kwargs) -> None:
        if class_means is not None:
            raise ValueError(f'{type(self).__name__} keeps no teacher class means (they need the RoI or image '
                             f'features of mmkd.RoIDistill / mmkd.ClsDistill): remove class_means, or use those '
                             f'algorithms for ND/NC losses.')
        super().__init__(distiller, *args, **kwargs)

    def teacher_forward(self, inputs: Tensor, data_samples: Optional[List[BaseDataElement]]) -> None:
        """What the teacher runs in a training step (its outputs are read through the teacher recorders)."""
        raise NotImplementedError

    def loss(self, batch_inputs: Tensor, data_samples: Optional[List[BaseDataElement]] = None) -> Dict[str, Tensor]:
        self._before_loss()
        losses = dict()
        self.distiller.set_deliveries_override(False)  # deliveries record what the teacher's pass computes
        with self.distiller.teacher_recorders, self.distiller.deliveries, torch.no_grad():
            self.teacher_forward(self.teacher_inputs(batch_inputs), data_samples)
        self.distiller.set_deliveries_override(True)  # and replay it in the student's
        with self.distiller.student_recorders, self.distiller.deliveries:
            if self.calculate_student_loss:
                losses.update(add_prefix(self.student(batch_inputs, data_samples, mode='loss'), 'student'))
            else:
                with torch.set_grad_enabled(self.student_trainable):
                    self.student(batch_inputs, data_samples, mode='loss')
        if not self.distillation_stopped:
            losses.update(add_prefix(self.distiller.compute_distill_losses(), 'distill'))
        return self._check_finite(losses)


@MODELS.register_module()
class FpnTeacherDistill(_CheckedRazorDistill):
    """mmrazor's ``FpnTeacherDistill`` (the frozen teacher runs only ``extract_feat``: backbone and neck; the
    student runs its full ``loss``; ``distiller.compute_distill_losses()`` adds the ``distill.*`` losses) with the
    guarantees of :class:`TeacherStudentDistill`, for the feature-distillation recipes mmrazor ships (CWD on FPN
    outputs, ``ChannelWiseDivergence``; PKD, ``PKDLoss``; MGD, ``MGDConnector`` + ``MGDLoss``; see
    ``docs/mmrazor_configs.md``). Every config key of mmrazor's class keeps its meaning and the step computes the
    same losses, deliveries and ``StopDistillHook`` included (``calculate_student_loss=False``, which mmrazor's
    ``FpnTeacherDistill`` ignores, is honoured as in its ``SingleTeacherDistill``). What mmkd adds:

    * ``teacher_ckpt`` must fit the teacher: a checkpoint that leaves a teacher weight unloaded (missing or of
      another shape; e.g. a Faster R-CNN checkpoint for a RetinaNet teacher, whose ``bbox_head`` it lacks) is
      refused before training, naming the weights; so is one holding a NaN/Inf. mmrazor loads any checkpoint
      with a missing-keys warning.
    * no training against a random teacher: without ``teacher_ckpt`` (and no ``load_from`` / ``--resume`` of a
      distillation checkpoint) the first step stops, unless ``allow_random_teacher=True``.
    * every ``finite_check_interval`` steps, the teacher tensors the losses read and the ``distill.*`` losses must
      be finite: the first step that is not stops with a ``FloatingPointError`` naming them, before its update.
    * the teacher is wholly in eval mode (mmrazor switches only its BatchNorms: dropout and drop-path, e.g. of a
      Swin teacher, stay stochastic there), and ``teacher_fuse_conv_bn`` (default True) folds its BatchNorms
      into the convolutions that feed them (outputs equal up to float rounding; modules a recorder reads are kept).
    * the teacher gets its own input normalisation if it was trained with another one than the student's batch
      (``teacher_preprocessing``, :meth:`TeacherStudentDistill.teacher_inputs`); mmrazor feeds it the student's.

    ``teacher_trainable=True`` and ``class_means`` are refused.
    """

    def teacher_forward(self, inputs: Tensor, data_samples: Optional[List[BaseDataElement]]) -> None:
        self.teacher.extract_feat(inputs)


@MODELS.register_module()
class FullTeacherDistill(_CheckedRazorDistill):
    """mmrazor's ``SingleTeacherDistill`` (the frozen teacher runs its whole ``loss`` forward under
    ``torch.no_grad()``, its losses discarded, so that recorders may read its heads; then the student's ``loss``
    and the ``distill.*`` losses; ``calculate_student_loss`` and ``student_trainable`` as in mmrazor) with the
    guarantees of :class:`TeacherStudentDistill` listed in :class:`FpnTeacherDistill`. Used by mmrazor's FBKD
    config, whose recorders read FPN convolutions only. For two-stage detectors whose losses read RoI tensors use
    :class:`~mmkd.models.algorithms.RoIDistill`: here the teacher samples RoIs of its own.

    ``teacher_trainable=True`` and ``class_means`` are refused.
    """

    def teacher_forward(self, inputs: Tensor, data_samples: Optional[List[BaseDataElement]]) -> None:
        self.teacher(inputs, data_samples, mode='loss')
