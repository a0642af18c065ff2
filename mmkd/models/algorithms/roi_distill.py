"""RoI-aligned distillation for two-stage detectors: the teacher's RoI head runs on the student's RoIs."""
from contextlib import ExitStack
from typing import Dict, Optional, Tuple

import torch
from mmdet.structures import SampleList
from mmrazor.models.utils import add_prefix
from torch import Tensor

from mmkd.registry import MODELS
from .base import TeacherStudentDistill

#: Recorders every ``RoIDistill`` provides, by name, to ``loss_forward_mappings`` (a config may override them).
STUDENT_ROI_RECORDERS = dict(
    rois=dict(type='ModuleInputs', source='roi_head.bbox_roi_extractor'),  # data_idx=1: rois [R, 5]
    roi_feat=dict(type='ModuleInputs', source='roi_head.bbox_head.fc_cls'),  # data_idx=0: [R, C]
    roi_logits=dict(type='ModuleOutputs', source='roi_head.bbox_head.fc_cls'),  # [R, K + 1]
    # data_idx=0: labels [R] (background = K), data_idx=1: label weights [R]
    roi_targets=dict(type='MethodOutputs', source='mmdet.models.roi_heads.bbox_heads.BBoxHead.get_targets'),
)
TEACHER_ROI_RECORDERS = dict(
    roi_feat=dict(type='ModuleInputs', source='roi_head.bbox_head.fc_cls'),
    roi_logits=dict(type='ModuleOutputs', source='roi_head.bbox_head.fc_cls'),
)


def _contiguous_feats(_, args: tuple) -> tuple:
    """Forward pre-hook of an RoI extractor: its feature maps in contiguous NCHW (mmcv's ``roi_align`` indexes
    the raw storage as NCHW, so channels-last maps would give wrong RoI features, silently)."""
    return (tuple(f.contiguous() for f in args[0]), ) + tuple(args[1:])


@MODELS.register_module()
class RoIDistill(TeacherStudentDistill):
    """Distils a two-stage detector (mmdet ``TwoStageDetector`` with a ``StandardRoIHead``) on matching RoIs.

    mmrazor's ``SingleTeacherDistill`` runs the teacher's whole ``loss`` forward: its own RPN, its own random
    RoI sampling and its own losses, all thrown away, and its recorded RoI tensors describe other boxes than the
    student's. One step of ``RoIDistill`` instead (docs/methods.md 4(a), fix (i); as in the ND authors' code):

    1. runs the teacher, frozen, wholly in eval mode and without gradients, through ``extract_feat``;
    2. runs the student's normal ``loss`` forward inside the student recorders (RPN, sampling, task losses);
    3. runs the teacher's RoI extractor and bbox head **on the student's sampled RoIs**
       (``StandardRoIHead._bbox_forward``), so that row ``i`` of every teacher RoI tensor belongs to the same box
       as row ``i`` of the student's. The teacher never runs RPN, sampling or losses, skips the RoI head when no
       loss reads it, and does not run at all when no loss reads it or distillation is stopped;
    4. computes the distillation losses of ``distiller`` (mmrazor ``ConfigurableDistiller``).

    Besides whatever recorders the config declares, the distiller gets these by name (``R`` = RoIs sampled in
    the batch, ``C`` = RoI feature width, ``K`` = number of classes):

    ========================  ============================================================================
    student ``rois``          ``data_idx=1``: RoIs ``[R, 5]`` ``(image index, x1, y1, x2, y2)``
    student/teacher
    ``roi_feat``              ``data_idx=0``: the feature the classifier ``fc_cls`` sees ``[R, C]`` (the
                              post-ReLU output of the shared FCs for ``Shared2FCBBoxHead``)
    ``roi_logits``            RoI class logits ``[R, K + 1]`` (background last)
    student ``roi_targets``   ``data_idx=0``: assigned labels ``[R]`` (background = ``K``); ``data_idx=1``:
                              label weights ``[R]``
    ========================  ============================================================================

    Neck or backbone recorders (e.g. ``ModuleOutputs`` on ``neck``) work on both models as usual.

    Args:
        class_means (dict, optional): ``dict(momentum=None)``; see :class:`TeacherStudentDistill`. Detection
            class means are ``[K + 1, C]``: background included, as in the ND paper.
        teacher_fuse_conv_bn, teacher_channels_last (bool): see :class:`TeacherStudentDistill`; both default to
            True here (docs/speed.md: with both, the R101-FPN -> R50-FPN step at 1333x800 on CPU takes 0.93x the
            time). mmcv's CPU ``roi_align`` reads its input as contiguous NCHW whatever its strides, so the
            teacher's RoI extractor gets its feature maps made contiguous first.
        module_inplace, teacher_module_inplace (bool): keep in-place ops (ReLU) in place. Default True, unlike
            mmrazor (which turns them off so that any recorded tensor stays intact, at a cost in speed and
            memory): the recorders above read nothing a later in-place op modifies. Set False if a recorder of
            yours does.
        **kwargs: ``SingleTeacherDistill``'s keys (``architecture``, ``teacher``, ``teacher_ckpt``,
            ``distiller``, ``calculate_student_loss``, ``student_trainable``, ...). ``teacher_trainable`` and
            ``distill_deliveries`` are refused: the teacher never computes its own losses and runs after the
            student.
    """

    STUDENT_RECORDERS = STUDENT_ROI_RECORDERS
    TEACHER_RECORDERS = TEACHER_ROI_RECORDERS

    def __init__(self, distiller: Dict, *args, module_inplace: bool = True, teacher_module_inplace: bool = True,
                 teacher_fuse_conv_bn: bool = True, teacher_channels_last: bool = True, **kwargs) -> None:
        if distiller.get('distill_deliveries'):
            raise ValueError('RoIDistill runs the teacher after the student on the student\'s RoIs, so '
                             'distill_deliveries (which replay teacher-first calls) do not apply; remove them.')
        super().__init__(distiller, *args, module_inplace=module_inplace,
                         teacher_module_inplace=teacher_module_inplace, teacher_fuse_conv_bn=teacher_fuse_conv_bn,
                         teacher_channels_last=teacher_channels_last, **kwargs)
        if teacher_channels_last:
            self.teacher.roi_head.bbox_roi_extractor.register_forward_pre_hook(_contiguous_feats)
        self._check_heads()
        used = self._used_sources(from_student=False)
        ema = self.class_means is not None and self.class_means.momentum is not None
        self._teacher_runs = bool(used) or ema  # exact class means come from ClassMeansHook's own pass
        self._teacher_runs_roi_head = ema or any(not src.startswith(('backbone', 'neck')) for src in used)

    # ------------------------------------------------------------------ checks
    def _check_heads(self) -> None:
        s_head, t_head = self.student.roi_head.bbox_head, self.teacher.roi_head.bbox_head
        if s_head.num_classes != t_head.num_classes:
            raise ValueError(
                f'The student detects {s_head.num_classes} classes but the teacher {t_head.num_classes}: RoI '
                f'distillation compares the two per class. Set the same num_classes in both roi_head.bbox_head '
                f'configs (the dataset has {s_head.num_classes}?) and use a teacher trained on the same classes.')
        s_dim, t_dim = s_head.cls_last_dim, t_head.cls_last_dim
        if s_dim != t_dim:
            for loss_name, mapping in self.distiller.loss_forward_mappings.items():
                for arg, rec in mapping.items():
                    if rec.get('recorder') == 'roi_feat' and rec.get('from_student') and not rec.get('connector'):
                        raise ValueError(
                            f'The student\'s RoI feature is {s_dim}-d but the teacher\'s is {t_dim}-d, and '
                            f'{loss_name}.{arg} reads it without a connector. Add to distiller.connectors '
                            f'`roi_proj=dict(type=\'mmkd.EmbeddingProjector\', in_channels={s_dim}, '
                            f'out_channels={t_dim})` and `connector=\'roi_proj\'` to that mapping.')

    def class_means_shape(self) -> Tuple[int, int]:
        """Teacher RoI class means include background: ``[K + 1, C]``."""
        head = self.teacher.roi_head.bbox_head
        return head.num_classes + 1, head.cls_last_dim

    # ------------------------------------------------------------------ training step
    def loss(self, batch_inputs: Tensor, data_samples: Optional[SampleList] = None) -> Dict[str, Tensor]:
        self._before_loss()
        losses = dict()
        distill = not self.distillation_stopped  # StopDistillHook: the student trains alone, the teacher rests
        with ExitStack() as teacher_recording:
            if distill and self._teacher_runs:
                # The teacher's backbone and neck run first, so their activations are freed before the
                # student's (kept for backward) exist: the peak memory is that of mmrazor's teacher-first order.
                teacher_recording.enter_context(self.distiller.teacher_recorders)
                with torch.no_grad():
                    teacher_feats = self.teacher.extract_feat(self.teacher_inputs(batch_inputs))
            with self.distiller.student_recorders:
                if self.calculate_student_loss:
                    losses.update(add_prefix(self.student(batch_inputs, data_samples, mode='loss'), 'student'))
                else:
                    with torch.set_grad_enabled(self.student_trainable):
                        self.student(batch_inputs, data_samples, mode='loss')
            if distill and self._teacher_runs_roi_head:
                with torch.no_grad():
                    self.teacher.roi_head._bbox_forward(teacher_feats, self._record('rois', True, data_idx=1))
        if not distill:
            return losses
        step = None  # the teacher part of the finite verdict, taken before the class means change
        if self.class_means is not None and self.class_means.momentum is not None:
            step = self._update_ema_class_means(self._record('roi_feat', False, data_idx=0),
                                                self._record('roi_targets', True, data_idx=0),
                                                self._record('roi_targets', True, data_idx=1))
        losses.update(add_prefix(self.distiller.compute_distill_losses(), 'distill'))
        return self._check_finite(losses, step)

    def _record(self, name: str, from_student: bool, data_idx: Optional[int] = None):
        return self.distiller.get_record(name, from_student, data_idx=data_idx)

    # ------------------------------------------------------------------ class statistics
    @torch.no_grad()
    def collect_class_features(self, batch_inputs: Tensor, data_samples: SampleList) -> Tuple[Tensor, Tensor]:
        """Teacher RoI features ``[R, C]`` and assigned labels ``[R]`` (background = K) on the teacher's own
        proposals and RoI sampling, as the ND authors computed their detection class means.

        RoIs with label weight 0 are dropped.
        """
        feat_recorder = self.distiller.teacher_recorders.get_recorder('roi_feat')
        target_recorder = self.distiller.student_recorders.get_recorder('roi_targets')
        with feat_recorder, target_recorder:
            self.teacher.loss(self.teacher_inputs(batch_inputs), data_samples)
        feats, (labels, weights) = feat_recorder.get_record_data(0, 0), target_recorder.get_record_data(0)[:2]
        keep = weights > 0
        return feats[keep], labels[keep]
