"""Distillation of one-stage (dense) detectors: GFL, RetinaNet, ATSS, FCOS and RTMDet heads of mmdet 3.3."""
import copy
from contextlib import ExitStack
from typing import Dict, List, Optional, Tuple

import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import distance2bbox
from mmdet.utils import reduce_mean
from mmrazor.models.utils import add_prefix
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base import TeacherStudentDistill
from .computed_recorder import ComputedRecorder  # noqa: F401  (registers mmkd.ComputedRecorder)
from .dense_heads import DenseHeadAdapter, activation_fn, head_kind, targets_method_path

_QFL_KD = dict(type='QualityFocalLoss', use_sigmoid=True, beta=1.0, loss_weight=1.0)
#: CrossKD's settings per head kind (the authors' configs; RTMDet's are [PROPOSAL]). ``loss_reg_kd`` of GFL is
#: the bin-summed distribution KL (``T``, ``loss_weight``), the others are mmdet losses.
CROSSKD_DEFAULTS = dict(
    gfl=dict(reused_teacher_head_idx=3, loss_cls_kd=_QFL_KD, loss_reg_kd=dict(T=1, loss_weight=4.0)),
    retina=dict(reused_teacher_head_idx=3, loss_cls_kd=_QFL_KD, loss_reg_kd=dict(type='GIoULoss', loss_weight=1.0)),
    atss=dict(reused_teacher_head_idx=3, loss_cls_kd=_QFL_KD, loss_reg_kd=dict(type='GIoULoss', loss_weight=1.0),
              loss_center_kd=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    fcos=dict(reused_teacher_head_idx=2, loss_cls_kd=dict(_QFL_KD, loss_weight=0.4),
              loss_reg_kd=dict(type='IoULoss', mode='log', loss_weight=0.75)),
    rtmdet=dict(reused_teacher_head_idx=1, loss_cls_kd=_QFL_KD, loss_reg_kd=dict(type='GIoULoss', loss_weight=1.0)),
)
#: LD as mmdet 3.3's ld configs set it (``LDHead.loss_ld``)
LD_DEFAULTS = dict(loss_ld=dict(type='KnowledgeDistillationKLDivLoss', T=10, loss_weight=0.25))

_computed = dict(type='mmkd.Computed')
#: Records every ``DenseDistill`` provides, by name, to ``loss_forward_mappings`` (a config may override them).
STUDENT_DENSE_RECORDERS = dict(
    gt_bboxes=dict(_computed, source='gt_bboxes'),  # N x [k_i, 4] xyxy pixels of the resized image
    img_shapes=dict(_computed, source='img_shapes'),  # N x (h, w): metainfo img_shape (unpadded)
    batch_input_shapes=dict(_computed, source='batch_input_shapes'),  # N x (h, w): the padded batch's
    pos_feat=dict(_computed, source='pos_feat'),  # [P, C] last cls-conv feature at the positive priors
    pos_logits=dict(_computed, source='pos_logits'),  # [P, K] class logits of the positive priors
    pos_targets=dict(_computed, source='pos_targets'),  # data_idx=0: labels [P]; 1: rois [P, 5]
)
TEACHER_DENSE_RECORDERS = dict(
    pos_feat=dict(_computed, source='pos_feat'),
    pos_logits=dict(_computed, source='pos_logits'),
)
_POS_RECORDS = ('pos_feat', 'pos_logits', 'pos_targets')
_EPS = 1e-6


def _flat(x: Tensor, width: int) -> Tensor:
    """``[N, A*width, H, W]`` -> ``[N*H*W*A, width]`` (mmdet's row order of a head output)."""
    return x.permute(0, 2, 3, 1).reshape(-1, width)


def _cat_levels(xs: List[Tensor], width: Optional[int] = None) -> Tensor:
    return torch.cat([x.reshape(-1) if width is None else x.reshape(-1, width) for x in xs])


class _StudentTaps:
    """Forward hooks on the student's head that keep, while active, the tensors the head distillation reads: the
    head's outputs, the outputs of conv ``k - 1`` of each stack (CrossKD's hold; for ``k = 0`` the head's input
    features) and of the last classification conv, one entry per level in level order."""

    def __init__(self, adapter: DenseHeadAdapter, hold_idx: Optional[int]) -> None:
        self.active = False
        self.data: Dict[str, list] = {}
        head = adapter.head

        def keep(name):
            def hook(_, __, out):
                if self.active:
                    self.data.setdefault(name, []).append(out)
            return hook

        def keep_inputs(_, args):
            if self.active:
                self.data['feats'] = list(args[0])

        head.register_forward_hook(keep('outs'))
        head.register_forward_pre_hook(keep_inputs)
        for module in adapter.unique_modules('cls', -1):
            module.register_forward_hook(keep('cls_last'))
        if hold_idx:
            for branch in ('cls', 'reg'):
                for module in adapter.unique_modules(branch, hold_idx - 1):
                    module.register_forward_hook(keep(f'{branch}_hold'))

    def __enter__(self):
        self.data, self.active = {}, True

    def __exit__(self, *args):
        self.active = False

    def holds(self, branch: str, hold_idx: int) -> List[Tensor]:
        return self.data['feats'] if hold_idx == 0 else self.data[f'{branch}_hold']


@MODELS.register_module()
class DenseDistill(TeacherStudentDistill):
    """Distils a one-stage detector (mmdet ``SingleStageDetector`` with a ``GFLHead``, ``RetinaHead``,
    ``ATSSHead``, ``FCOSHead`` or ``RTMDetSepBNHead``; other heads are refused when the algorithm is built).

    One training step:

    1. the teacher, frozen and wholly in eval mode, runs ``extract_feat`` without gradients (BatchNorms folded,
       channels-last: see :class:`TeacherStudentDistill`), inside the teacher recorders;
    2. the student runs its normal ``loss`` forward inside the student recorders; its head's label assignment
       (``get_targets``) is recorded (an mmrazor ``MethodOutputs`` recorder named ``head_targets``), so the
       teacher never runs an assigner;
    3. the teacher's head runs (without gradients) only when a loss reads it: CrossKD, LD, the ``pos_*`` teacher
       records, a teacher recorder on ``bbox_head``, or EMA class means;
    4. the head losses built into the algorithm (``crosskd``, ``ld``) and the distiller's losses are computed.
       The teacher does not run at all when nothing reads it or distillation is stopped (``StopDistillHook``).

    Methods:

    * **feature losses on the FPN** (PKD, CWD, MGD, FGD...): mmrazor's (or mmkd's) losses through the
      distiller's ``loss_forward_mappings`` on ``ModuleOutputs`` recorders of ``neck`` (``data_idx`` = level) or
      ``neck.fpn_convs.{i}.conv``, as mmrazor's configs. FGD's boxes and image sizes are the records
      ``gt_bboxes`` and ``img_shapes`` (``batch_input_shapes`` for ``FGDLoss(mask_shape='batch_input_shape')``).
    * **CrossKD** (Wang et al., "CrossKD: Cross-Head Knowledge Distillation for Object Detection", CVPR 2024),
      ``crosskd=dict(reused_teacher_head_idx=k, loss_cls_kd=..., loss_reg_kd=..., loss_center_kd=...)``, each
      key defaulting to the authors' setting for the head (:data:`CROSSKD_DEFAULTS`): the student's head
      features after conv ``k - 1`` of each stack (post-activation, as the authors' code ends up using them: its
      in-place ReLU overwrites the kept pre-activation tensor; the FPN feature for ``k = 0``) are aligned to the
      teacher's per-channel statistics at the same layer and level
      (:func:`~mmkd.models.losses.functional_dense.crosskd_align`), activated again (k > 0), and run through the
      teacher's remaining convs and predictors **with gradient** to the student (the teacher's parameters are
      frozen, the pass is not under ``no_grad``); these cross-head predictions mimic the teacher's own:

      ======== ======================================== ===================================================
      head     cls KD (normaliser)                      reg KD
      ======== ======================================== ===================================================
      GFL      KD-QFL (mmdet ``QualityFocalLoss``,      ``T^2 sum_bins KL`` per box side, weight 4, rows
               beta 1, target ``sigmoid(teacher)``)     weighted by ``w = sigmoid(max teacher logit)`` (0 on
               on label weight > 0 / #pos (all-reduced) invalid anchors) / 4, divided by ``sum w``
      RetinaNet KD-QFL per anchor / #pos                ``GIoULoss`` on boxes decoded from the anchors,
                                                        weights ``w`` / #pos
      ATSS     as GFL                                   as RetinaNet; + centerness: sigmoid BCE of the
                                                        cross-head logit to ``sigmoid(teacher)``, positives
                                                        only / #pos (``loss_center_kd``)
      FCOS     KD-QFL x 0.4 at all points / sum of the  ``IoULoss(mode='log')`` x 0.75 on decoded boxes,
               positives' centerness targets            weights ``w`` at all points, same normaliser
      RTMDet   [PROPOSAL] KD-QFL on label weight > 0    [PROPOSAL] ``GIoULoss`` on ``distance2bbox`` boxes,
               / sum of assign metrics                  weights ``w``, same normaliser
      ======== ======================================== ===================================================

      Every normaliser is clamped here (#pos and the assign-metric sum to >= 1, ``sum w`` to >= 1e-6): mmdet's
      ``weight_reduce_loss`` divides by ``avg_factor + eps`` unclamped, so with no positive in a batch the
      authors' cls KD terms blow up. With FCOS ``norm_on_bbox`` the distances are multiplied by the level's
      stride before decoding (both sides; the teacher's head always runs in its training-mode units).
      [PROPOSAL] for RTMDet (the authors have no RTMDet config): ``k = 1`` of the 2 stacked convs, per-level
      convs, BatchNorms and predictors, the head's SiLU re-applied after align. When the student's head is
      narrower than the teacher's (RTMDet-s 128 vs RTMDet-l 256), a learnable 1x1 convolution per stack maps
      the student's hold to the teacher's width before align (``crosskd_adapters``, trained with the student,
      dropped by ``convert_kd_ckpt_to_student.py``). Loss keys ``loss_cls_kd``, ``loss_reg_kd``
      (``loss_center_kd``).
    * **LD** (Zheng et al., "Localization Distillation for Dense Object Detection", CVPR 2022) as mmdet 3.3's
      ``LDHead`` computes it, ``ld=dict(loss_ld=...)`` (GFL heads): mmdet's ``KnowledgeDistillationKLDivLoss``
      (T = 10, weight 0.25) between the student's and the teacher's distribution logits (after ``Scale``) of the
      4 sides of every positive anchor, weighted by the student's detached max sigmoid class score,
      ``avg_factor=4`` (so it grows with the number of positives, as mmdet's). Key ``loss_ld``.
    * **ND and iCD on dense heads** [PROPOSAL]: the records ``pos_feat`` (the output of the last classification
      conv at each positive prior ``[P, C]``; student and teacher, the same priors), ``pos_logits`` (class logits
      ``[P, K]``) and ``pos_targets`` (``data_idx=0``: the student head's assigned labels ``[P]``; ``1``: rois
      ``[P, 5]`` = image index and the prior's box: the anchor, or a stride-sized box centred on a point) feed
      mmkd's ``NDLoss`` (toward the teacher's class mean of the assigned label; class means ``[K, C]`` of
      positives only, no background) and ``ICDRoILoss`` (per-image Gram of the positives' logits). Positives are
      the priors labelled ``0 <= label < K``; with several anchors per location (RetinaNet) a location's feature
      appears once per positive anchor.

    Besides the records above (and whatever recorders the config declares), the student records
    ``head_targets``: the raw output of its head's ``get_targets``.

    Args:
        crosskd (dict, optional): enables CrossKD; keys default to :data:`CROSSKD_DEFAULTS` of the head kind.
        ld (dict, optional): enables LD (GFL heads); ``loss_ld`` defaults to :data:`LD_DEFAULTS`.
        class_means (dict, optional): ``dict(momentum=None)``; see :class:`TeacherStudentDistill`. Dense class
            means are ``[K, C]`` (``C`` = the teacher head's ``feat_channels``), positives only.
        teacher_fuse_conv_bn (bool): see :class:`TeacherStudentDistill`; default True (the folding covers the
            backbone and neck the fusion is traced on; the head keeps its norms).
        teacher_channels_last (bool): see :class:`TeacherStudentDistill`; default False here: mmrazor's losses
            that ``view`` their inputs (``ChannelWiseDivergence``) refuse the channels-last neck outputs it gives.
            With it, the teacher's head still gets contiguous features.
        module_inplace, teacher_module_inplace (bool): keep in-place activations in place (default True, as
            ``RoIDistill``): every tensor read here is a module output no later op modifies.
        **kwargs: ``SingleTeacherDistill``'s keys. ``teacher_trainable`` and ``distill_deliveries`` are refused.
    """

    STUDENT_RECORDERS = STUDENT_DENSE_RECORDERS
    TEACHER_RECORDERS = TEACHER_DENSE_RECORDERS

    def __init__(self, distiller: Dict, *args, crosskd: Optional[Dict] = None, ld: Optional[Dict] = None,
                 module_inplace: bool = True, teacher_module_inplace: bool = True, teacher_fuse_conv_bn: bool = True,
                 teacher_channels_last: bool = False, **kwargs) -> None:
        if distiller.get('distill_deliveries'):
            raise ValueError('DenseDistill runs the teacher\'s head after the student on the student\'s label '
                             'assignment, so distill_deliveries (which replay teacher-first calls) do not apply; '
                             'remove them.')
        kind = head_kind(self._head_class(kwargs.get('architecture'), 'architecture (student)'))
        teacher_kind = head_kind(self._head_class(kwargs.get('teacher'), 'teacher'))
        if kind != teacher_kind:
            raise ValueError(f'The student\'s head is a {kind} head but the teacher\'s a {teacher_kind} head: '
                             f'DenseDistill compares the two heads\' outputs and assignments, so both must be of '
                             f'the same kind.')
        distiller = copy.deepcopy(distiller)
        distiller['student_recorders'] = dict(
            head_targets=dict(type='MethodOutputs', source=targets_method_path(
                self._head_class(kwargs.get('architecture'), 'architecture'))),
            **(distiller.get('student_recorders') or {}))
        super().__init__(distiller, *args, module_inplace=module_inplace,
                         teacher_module_inplace=teacher_module_inplace, teacher_fuse_conv_bn=teacher_fuse_conv_bn,
                         teacher_channels_last=teacher_channels_last, **kwargs)
        self.s_head = DenseHeadAdapter(self.student.bbox_head)
        self.t_head = DenseHeadAdapter(self.teacher.bbox_head)
        self._check_heads()
        self.crosskd_cfg = self._build_crosskd(crosskd)
        self.ld_cfg = None
        if ld is not None:
            if kind != 'gfl':
                raise ValueError(f'LD distils the GFL distribution of box sides; the heads here are {kind} heads. '
                                 f'Use a GFLHead student and teacher, or drop `ld`.')
            ld = {**LD_DEFAULTS, **ld}
            self.loss_ld = MMDET_MODELS.build(_mmdet_loss(ld['loss_ld']))
            self.ld_cfg = ld
        self._check_records()
        read_t = self._used_sources(from_student=False)
        read = self._read_records()
        ema = self.class_means is not None and self.class_means.momentum is not None
        self._rows = ema or any(name in _POS_RECORDS for name in read)
        t_head_records = any(not src.startswith(('backbone', 'neck')) for src in read_t)
        self._teacher_runs_head = bool(self.crosskd_cfg or self.ld_cfg or ema or t_head_records)
        self._teacher_runs = self._teacher_runs_head or bool(read_t)
        self._taps = _StudentTaps(self.s_head, self.crosskd_cfg['k'] if self.crosskd_cfg else None)

    # ------------------------------------------------------------------ build-time checks
    @staticmethod
    def _head_class(model, what: str) -> type:
        if isinstance(model, nn.Module):
            head = getattr(model, 'bbox_head', None)
            if head is None:
                raise ValueError(f'DenseDistill: the {what} has no bbox_head; it distils one-stage detectors.')
            return type(head)
        if isinstance(model, dict) and isinstance(model.get('bbox_head'), dict):
            name = model['bbox_head'].get('type')
            cls = name if isinstance(name, type) else MMDET_MODELS.get(str(name).split('.')[-1])
            if cls is None:
                raise ValueError(f'DenseDistill: the {what}\'s bbox_head type {name!r} is not an mmdet model.')
            return cls
        raise ValueError(f'DenseDistill: the {what} must be a one-stage detector config dict with a bbox_head (or '
                         f'a built model); got {type(model).__name__}. Pass the model dict (e.g. _base_.model).')

    def _check_heads(self) -> None:
        s, t = self.s_head, self.t_head
        if s.num_classes != t.num_classes:
            raise ValueError(f'The student detects {s.num_classes} classes but the teacher {t.num_classes}: dense '
                             f'distillation compares the two per class. Set the same num_classes in both bbox_head '
                             f'configs and use a teacher trained on the same classes.')
        if (s.num_levels, s.num_priors) != (t.num_levels, t.num_priors):
            raise ValueError(f'The student\'s head has {s.num_levels} levels x {s.num_priors} priors per location, '
                             f'the teacher\'s {t.num_levels} x {t.num_priors}: the two heads\' outputs must match '
                             f'location by location (same prior generator settings).')

    def _build_crosskd(self, crosskd: Optional[Dict]) -> Optional[Dict]:
        self.crosskd_adapters = None
        if crosskd is None:
            return None
        cfg = {**CROSSKD_DEFAULTS[self.s_head.kind], **crosskd}
        k = cfg.pop('reused_teacher_head_idx')
        unknown = set(cfg) - {'loss_cls_kd', 'loss_reg_kd', 'loss_center_kd'}
        if unknown:
            raise ValueError(f'crosskd: unknown keys {sorted(unknown)} (reused_teacher_head_idx, loss_cls_kd, '
                             f'loss_reg_kd, loss_center_kd)')
        depth = min(self.s_head.stacked_convs, self.t_head.stacked_convs)
        if not 0 <= k <= depth:
            raise ValueError(f'crosskd.reused_teacher_head_idx must lie in [0, {depth}] (the heads stack '
                             f'{self.s_head.stacked_convs} / {self.t_head.stacked_convs} convs), got {k}.')
        self.crosskd_losses = nn.ModuleDict()
        for name in ('loss_cls_kd', 'loss_center_kd') + (() if self.s_head.kind == 'gfl' else ('loss_reg_kd', )):
            if cfg.get(name) is not None:
                self.crosskd_losses[name] = MMDET_MODELS.build(_mmdet_loss(cfg[name]))
        if self.s_head.kind == 'atss' and 'loss_center_kd' not in self.crosskd_losses:
            raise ValueError('crosskd on ATSS needs loss_center_kd (the authors\': sigmoid CrossEntropyLoss).')
        c_s, c_t = self.s_head.feat_channels, self.t_head.feat_channels
        if c_s != c_t:  # [PROPOSAL] CrossKD assumes equal widths
            self.crosskd_adapters = nn.ModuleDict({b: nn.Conv2d(c_s, c_t, 1) for b in ('cls', 'reg')})
        acts = activation_fn(self.t_head.conv_stacks(0)[0][k - 1]) if k > 0 else None
        return dict(k=k, act=acts, reg=cfg['loss_reg_kd'])

    def _read_records(self) -> set:
        return {rec['recorder'] for mapping in self.distiller.loss_forward_mappings.values()
                for rec in mapping.values()}

    def _check_records(self) -> None:
        s_dim, t_dim = self.s_head.feat_channels, self.t_head.feat_channels
        for loss_name, mapping in self.distiller.loss_forward_mappings.items():
            loss = self.distiller.distill_losses[loss_name]
            for arg, rec in mapping.items():
                if rec.get('recorder') == 'pos_feat' and rec.get('from_student') and s_dim != t_dim \
                        and not rec.get('connector'):
                    raise ValueError(
                        f'The student\'s head features are {s_dim}-d but the teacher\'s {t_dim}-d, and '
                        f'{loss_name}.{arg} reads them without a connector. Add to distiller.connectors '
                        f'`feat_proj=dict(type=\'mmkd.EmbeddingProjector\', in_channels={s_dim}, '
                        f'out_channels={t_dim})` and `connector=\'feat_proj\'` to that mapping.')
                shape_key = getattr(loss, 'mask_shape', None)
                if arg == 'img_shapes' and shape_key is not None:
                    wanted = 'img_shapes' if shape_key == 'img_shape' else 'batch_input_shapes'
                    if rec.get('recorder') != wanted:
                        raise ValueError(f'{loss_name} ({type(loss).__name__}, mask_shape={shape_key!r}) reads '
                                         f'img_shapes from {rec.get("recorder")!r}; map it to the record '
                                         f'{wanted!r}.')

    def class_means_shape(self) -> Tuple[int, int]:
        """Teacher class means of the last classification-conv feature at positive priors: ``[K, C]``."""
        return self.teacher.bbox_head.num_classes, self.teacher.bbox_head.feat_channels

    # ------------------------------------------------------------------ training step
    def loss(self, batch_inputs: Tensor, data_samples: Optional[SampleList] = None) -> Dict[str, Tensor]:
        self._before_loss()
        losses = dict()
        distill = not self.distillation_stopped  # StopDistillHook: the student trains alone, the teacher rests
        with ExitStack() as teacher_recording:
            t_feats = None
            if distill and self._teacher_runs:
                teacher_recording.enter_context(self.distiller.teacher_recorders)
                with torch.no_grad():
                    t_feats = self.teacher.extract_feat(self.teacher_inputs(batch_inputs))
            with self.distiller.student_recorders, self._taps:
                if self.calculate_student_loss:
                    losses.update(add_prefix(self.student(batch_inputs, data_samples, mode='loss'), 'student'))
                else:
                    with torch.set_grad_enabled(self.student_trainable):
                        self.student(batch_inputs, data_samples, mode='loss')
            if not distill:
                return losses
            self._set_sample_records(data_samples)
            t_out = None
            if self._teacher_runs_head:
                with torch.no_grad():
                    t_out = self.t_head.forward_with_features(
                        [f.contiguous() for f in t_feats], self.crosskd_cfg['k'] if self.crosskd_cfg else None)
            head_losses, step = {}, None  # step: the teacher part of the finite verdict (EMA)
            if self.crosskd_cfg or self.ld_cfg or self._rows:
                s_out = self.s_head.outputs_by_level(self._taps.data['outs'][0])
                sizes = [o['cls'].shape[-2:] for o in s_out]
                targets = self.s_head.normalise_targets(self.distiller.get_record('head_targets', True), sizes,
                                                        [s.metainfo for s in data_samples])
                if self._rows:
                    step = self._set_row_records(s_out, t_out, targets)
                if self.crosskd_cfg:
                    head_losses.update(self._crosskd_losses(t_out, targets))
                if self.ld_cfg:
                    head_losses['loss_ld'] = self._ld_loss(s_out, t_out, targets)
        losses.update(add_prefix(head_losses, 'distill'))
        losses.update(add_prefix(self.distiller.compute_distill_losses(), 'distill'))
        return self._check_finite(losses, step)

    def _set_record(self, name: str, from_student: bool, value) -> None:
        manager = self.distiller.student_recorders if from_student else self.distiller.teacher_recorders
        manager.get_recorder(name).set(value)

    def _set_sample_records(self, data_samples: SampleList) -> None:
        self._set_record('gt_bboxes', True, [getattr(s.gt_instances.bboxes, 'tensor', s.gt_instances.bboxes)
                                             for s in data_samples])
        self._set_record('img_shapes', True, [tuple(s.metainfo['img_shape'][:2]) for s in data_samples])
        self._set_record('batch_input_shapes', True,
                         [tuple(s.metainfo.get('batch_input_shape', s.metainfo['img_shape'])[:2])
                          for s in data_samples])

    def _positive_rows(self, cls_last: List[Tensor], logits: List[Tensor], targets: Dict
                       ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Features ``[P, C]``, logits ``[P, K]``, labels ``[P]``, rois ``[P, 5]`` and the flat prior index of
        the positive priors (levels concatenated, mmdet's row order)."""
        from mmkd.models.losses.functional_dense import gather_positive_rows
        head = self.s_head
        labels = _cat_levels(targets['labels'])
        feats, labs, imgs, index = gather_positive_rows(cls_last, labels, head.num_classes, head.num_priors,
                                                        return_index=True)
        flat_logits = _cat_levels([_flat(x, head.head.cls_out_channels) for x in logits], head.head.cls_out_channels)
        return feats, flat_logits[index], labs, torch.cat([imgs[:, None].to(feats.dtype), self._prior_boxes(
            targets)[index].to(feats.dtype)], 1), index

    def _prior_boxes(self, targets: Dict) -> Tensor:
        """``[M, 4]`` box of every prior (levels concatenated): the anchor, or a stride-sized box centred on a
        point prior."""
        boxes = []
        for level, priors in enumerate(targets['priors']):
            priors = priors.reshape(-1, priors.shape[-1])
            if self.s_head.kind in ('fcos', 'rtmdet'):
                half = self.s_head.head.prior_generator.strides[level][0] / 2
                priors = torch.cat([priors[:, :2] - half, priors[:, :2] + half], 1)
            boxes.append(priors)
        return torch.cat(boxes)

    def _set_row_records(self, s_out: List[Dict], t_out: Optional[List[Dict]], targets: Dict):
        """Fills the ``pos_*`` records (and updates EMA class means: returns the base's step check, or None)."""
        from mmkd.models.losses.functional_dense import gather_positive_rows
        feats, logits, labels, rois, index = self._positive_rows(self._taps.data['cls_last'],
                                                                 [o['cls'] for o in s_out], targets)
        self._set_record('pos_feat', True, feats)
        self._set_record('pos_logits', True, logits)
        self._set_record('pos_targets', True, (labels, rois))
        if t_out is None:
            return None
        t_feats = gather_positive_rows([o['cls_last'] for o in t_out], _cat_levels(targets['labels']),
                                       self.t_head.num_classes, self.t_head.num_priors)[0]
        width = self.t_head.head.cls_out_channels
        t_logits = _cat_levels([_flat(o['cls'], width) for o in t_out], width)[index]
        self._set_record('pos_feat', False, t_feats)
        self._set_record('pos_logits', False, t_logits)
        cm = self.class_means
        if cm is not None and cm.momentum is not None:
            return self._update_ema_class_means(t_feats, labels)
        return None

    # ------------------------------------------------------------------ head losses
    def _cross_head(self, t_out: List[Dict]) -> List[Dict[str, Tensor]]:
        """The cross-head predictions: the student's held features, aligned, through the teacher's remaining
        layers, with gradient to the student."""
        from mmkd.models.losses.functional_dense import crosskd_align
        k, act = self.crosskd_cfg['k'], self.crosskd_cfg['act']
        holds = {b: self._taps.holds(b, k) for b in ('cls', 'reg')}
        out = []
        for level, t in enumerate(t_out):
            feats = []
            for branch in ('cls', 'reg'):
                s = holds[branch][level]
                if self.crosskd_adapters is not None:
                    s = self.crosskd_adapters[branch](s)
                s = crosskd_align(s, t[f'{branch}_hold'])
                feats.append(act(s) if act is not None else s)
            out.append(self.t_head.forward_from(feats[0], feats[1], level, k))
        return out

    def _crosskd_losses(self, t_out: List[Dict], targets: Dict) -> Dict[str, Tensor]:
        x_out = self._cross_head(t_out)
        head, kind = self.t_head.head, self.s_head.kind
        k_cls = head.cls_out_channels
        t_cls = _cat_levels([_flat(o['cls'], k_cls) for o in t_out], k_cls)
        x_cls = _cat_levels([_flat(o['cls'], k_cls) for o in x_out], k_cls)
        label_weights = _cat_levels(targets['label_weights']).float()
        labels = _cat_levels(targets['labels'])
        w = t_cls.max(dim=1)[0].sigmoid()
        losses = dict()
        loss_cls = self.crosskd_losses['loss_cls_kd']
        loss_reg = self.crosskd_losses['loss_reg_kd'] if 'loss_reg_kd' in self.crosskd_losses else None
        if kind == 'fcos':
            norm = self._fcos_normaliser(targets, labels)
            losses['loss_cls_kd'] = loss_cls(x_cls, t_cls.sigmoid(), avg_factor=norm)
        else:
            norm = targets['avg_factor']
            losses['loss_cls_kd'] = loss_cls(x_cls, t_cls.sigmoid(), weight=label_weights, avg_factor=norm)
            w = w * (label_weights > 0)
        if kind == 'gfl':
            bins = head.reg_max + 1
            t_reg = _cat_levels([_flat(o['reg'], 4 * bins) for o in t_out], bins)
            x_reg = _cat_levels([_flat(o['reg'], 4 * bins) for o in x_out], bins)
            from mmkd.models.losses.functional_dense import distribution_kl_sum
            reg_cfg = self.crosskd_cfg['reg']
            rows = distribution_kl_sum(x_reg, t_reg, reg_cfg.get('T', 1))
            total = (rows * w.repeat_interleave(4)).sum() / 4 * reg_cfg.get('loss_weight', 4.0)
            losses['loss_reg_kd'] = total / w.sum().clamp(min=_EPS)
            return losses
        t_box, x_box = self._decode(t_out, targets), self._decode(x_out, targets)
        losses['loss_reg_kd'] = loss_reg(x_box, t_box, weight=w, avg_factor=norm)
        if kind == 'atss':
            pos = (labels >= 0) & (labels < head.num_classes)
            t_ctr, x_ctr = _cat_levels([_flat(o['ctr'], 1) for o in t_out]), _cat_levels(
                [_flat(o['ctr'], 1) for o in x_out])
            losses['loss_center_kd'] = self.crosskd_losses['loss_center_kd'](
                x_ctr[pos], t_ctr[pos].sigmoid(), avg_factor=norm) if pos.any() else x_ctr.sum() * 0
        return losses

    def _fcos_normaliser(self, targets: Dict, labels: Tensor) -> float:
        """FCOS: the sum of the positives' centerness targets, all-reduced, >= 1e-6 (as its box loss)."""
        head = self.s_head.head
        pos = (labels >= 0) & (labels < head.num_classes)
        bbox_targets = _cat_levels(targets['bbox_targets'], 4)[pos]
        if pos.any():
            total = head.centerness_target(bbox_targets).sum().detach()
        else:
            total = bbox_targets.new_zeros(())
        return max(float(reduce_mean(total)), _EPS)

    def _decode(self, outs: List[Dict], targets: Dict) -> Tensor:
        """Boxes ``[M, 4]`` (pixels) of a head's per-level box outputs on the student's priors."""
        head, kind, boxes = self.s_head.head, self.s_head.kind, []
        for level, (o, priors) in enumerate(zip(outs, targets['priors'])):
            priors = priors.reshape(-1, priors.shape[-1])
            if kind in ('retina', 'atss'):
                boxes.append(head.bbox_coder.decode(priors, _flat(o['reg'], head.bbox_coder.encode_size)))
                continue
            dist = _flat(o['reg'], 4)
            if kind == 'fcos' and head.norm_on_bbox:
                dist = dist * head.prior_generator.strides[level][0]
            boxes.append(distance2bbox(priors[:, :2], dist))
        return torch.cat(boxes)

    def _ld_loss(self, s_out: List[Dict], t_out: List[Dict], targets: Dict) -> Tensor:
        head = self.s_head.head
        bins, k_cls = head.reg_max + 1, head.cls_out_channels
        labels = _cat_levels(targets['labels'])
        pos = (labels >= 0) & (labels < head.num_classes)
        s_reg = _cat_levels([_flat(o['reg'], 4 * bins) for o in s_out], 4 * bins)
        if not pos.any():
            return s_reg.sum() * 0
        t_reg = _cat_levels([_flat(o['reg'], 4 * bins) for o in t_out], 4 * bins)
        w = _cat_levels([_flat(o['cls'], k_cls) for o in s_out], k_cls).detach().sigmoid().max(dim=1)[0][pos]
        return self.loss_ld(s_reg[pos].reshape(-1, bins), t_reg[pos].reshape(-1, bins),
                            weight=w[:, None].expand(-1, 4).reshape(-1), avg_factor=4.0)

    # ------------------------------------------------------------------ class statistics
    @torch.no_grad()
    def collect_class_features(self, batch_inputs: Tensor, data_samples: SampleList) -> Tuple[Tensor, Tensor]:
        """Teacher features ``[P, C]`` (last classification conv) at the positive priors of the teacher head's own
        label assignment on its own predictions, and their labels ``[P]`` (no background)."""
        from mmkd.models.losses.functional_dense import gather_positive_rows
        feats = self.teacher.extract_feat(self.teacher_inputs(batch_inputs))
        outs = self.t_head.forward_with_features(feats)
        targets = self.t_head.compute_targets(outs, [s.gt_instances for s in data_samples],
                                              [s.metainfo for s in data_samples])
        rows, labels, _ = gather_positive_rows([o['cls_last'] for o in outs], _cat_levels(targets['labels']),
                                               self.t_head.num_classes, self.t_head.num_priors)
        return rows, labels


def _mmdet_loss(cfg: Dict) -> Dict:
    """An mmdet loss config (``type`` with or without the ``mmdet.`` prefix), built with mmdet's registry."""
    cfg = dict(cfg)
    cfg['type'] = 'mmdet.' + str(cfg['type']).split('.')[-1]  # resolved in mmdet whatever the default scope
    return cfg
