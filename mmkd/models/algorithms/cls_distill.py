"""Teacher-student distillation for mmkd's lean image classifiers (KD++, DKD++, NC, iCD on CIFAR/ImageNet/CUB)."""
import logging
from typing import Dict, List, Mapping, Optional, Tuple, Union

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.structures import BaseDataElement
from mmrazor.models.utils import add_prefix
from torch import Tensor

from mmkd.models.classifiers import stack_gt_labels
from mmkd.registry import MODELS
from .base import TeacherStudentDistill

#: Recorders every ``ClsDistill`` provides, by name, to ``loss_forward_mappings`` (a config may override them).
STUDENT_CLS_RECORDERS = dict(
    feat=dict(type='ModuleOutputs', source='neck'),  # penultimate feature [B, C_s]
    logits=dict(type='ModuleOutputs', source='head.fc'),  # [B, K]
    labels=dict(type='ModuleInputs', source='head.loss_module'),  # data_idx=1: labels [B]
)
TEACHER_CLS_RECORDERS = dict(
    feat=dict(type='ModuleOutputs', source='neck'),  # [B, C_t]
    logits=dict(type='ModuleOutputs', source='head.fc'),  # [B, K]
)
LOCAL_LOGITS = 'head.local_logits'


def warmup_factor(epoch: int, warmup_epochs: int) -> float:
    """Linear warm-up ``min(1, (epoch + 1) / warmup_epochs)`` for a 0-based ``epoch`` (the ND/DKD reference code's
    ``min(1, epoch / warm)`` with 1-based epochs); 1 when ``warmup_epochs <= 0``. The same for a 0-based
    iteration and a warm-up length in iterations."""
    return 1.0 if warmup_epochs <= 0 else min(1.0, (epoch + 1) / warmup_epochs)


def parse_loss_warmup(loss_warmup: Mapping[str, Union[int, Mapping[str, int]]]) -> Dict[str, Tuple[str, int]]:
    """``loss_warmup`` entries -> ``{loss name: ('epoch' | 'iter', length)}``. An entry is an int (epochs),
    ``dict(epochs=E)`` or ``dict(iters=N)`` (for ``IterBasedTrainLoop``, whose epoch stays 0)."""
    parsed = {}
    for name, value in loss_warmup.items():
        if isinstance(value, Mapping) and len(value) == 1 and set(value) <= {'epochs', 'iters'}:
            unit, length = ('epoch', value['epochs']) if 'epochs' in value else ('iter', value['iters'])
        else:
            unit, length = 'epoch', value
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f'ClsDistill: loss_warmup[{name!r}] = {value!r}; give a number of epochs (an int >= 0), '
                             f'dict(epochs=E) or, for iteration-based training, dict(iters=N).')
        parsed[name] = (unit, length)
    return parsed


@MODELS.register_module()
class ClsDistill(TeacherStudentDistill):
    """Distils an :class:`~mmkd.models.classifiers.ImageClassifier` (student) from another (teacher).

    One step:

    1. the teacher, frozen, wholly in eval mode and without gradients, runs ``backbone -> neck`` and, only if a
       loss reads a head tensor, ``head`` (its iCD local logits only if a loss reads ``head.local_logits``) inside
       the teacher recorders; it never computes a loss and is skipped entirely when no loss reads it;
    2. the student's ``loss`` forward runs inside the student recorders (its local logits only when read);
    3. ``distiller.compute_distill_losses()``; a loss named in ``loss_warmup`` is scaled by
       ``min(1, (epoch + 1) / E)`` (the linear KD/DKD warm-up of KD++/DKD++, 20 epochs on CIFAR-100), or by
       ``min(1, (iter + 1) / N)`` for a warm-up given in iterations (epoch and iteration from the message hub).

    Once mmrazor's ``StopDistillHook`` has set ``distillation_stopped``, a step runs only the student's own loss:
    no teacher forward, no recorders, no class-means update.

    Besides the config's own recorders, the distiller gets these by name (``B`` images, ``K`` classes):

    =======================  =================================================================================
    student/teacher ``feat``  ``neck`` output: the penultimate feature ``[B, C]`` (ND, NC)
    student/teacher
    ``logits``                ``head.fc`` output ``[B, K]`` (KD, DKD)
    student ``labels``        ``head.loss_module`` inputs; ``data_idx=1``: labels ``[B]``
    =======================  =================================================================================

    iCD configs add ``ModuleOutputs`` recorders on ``head.local_logits`` (``[B, K, P]``; the heads need
    ``local_scales``).

    Args:
        class_means (dict, optional): ``dict(num_classes=K, feat_dim=C_t, momentum=None)``; see
            :class:`TeacherStudentDistill`.
        loss_warmup (dict, optional): distill loss name -> warm-up length: epochs (an int or ``dict(epochs=E)``)
            or iterations (``dict(iters=N)``; use this with ``IterBasedTrainLoop``, whose epoch stays 0, so an
            epoch warm-up would never end -- a warning says so when the loop has fewer epochs than the warm-up).
        **kwargs: ``SingleTeacherDistill``'s keys. ``teacher_trainable`` is refused (the teacher never computes
            its own losses).
    """

    STUDENT_RECORDERS = STUDENT_CLS_RECORDERS
    TEACHER_RECORDERS = TEACHER_CLS_RECORDERS

    def __init__(self,
                 distiller: Dict,
                 *args,
                 loss_warmup: Optional[Mapping[str, Union[int, Mapping[str, int]]]] = None,
                 **kwargs) -> None:
        warmup = parse_loss_warmup(loss_warmup or {})  # before the models are built
        super().__init__(distiller, *args, **kwargs)
        self.loss_warmup = warmup
        self._warmup_checked = False
        unknown = set(self.loss_warmup) - set(self.distiller.distill_losses)
        if unknown:
            raise ValueError(f'ClsDistill: loss_warmup names {sorted(unknown)}, which are not distill losses; '
                             f'choose among {sorted(self.distiller.distill_losses)}.')
        self._check_models()
        used_s, used_t = self._used_sources(True), self._used_sources(False)
        self.student.head.compute_local = self.student.head.local_logits is not None and LOCAL_LOGITS in used_s
        self.teacher.head.compute_local = self.teacher.head.local_logits is not None and LOCAL_LOGITS in used_t
        self._ema = self.class_means is not None and self.class_means.momentum is not None
        self._teacher_runs = bool(used_t) or self._ema
        self._teacher_runs_head = any(not src.startswith(('backbone', 'neck')) for src in used_t)

    # ------------------------------------------------------------------ checks
    def _check_models(self) -> None:
        for role, model in (('student', self.student), ('teacher', self.teacher)):
            if not all(hasattr(model, m) for m in ('backbone', 'neck', 'head')) or \
                    not hasattr(model.head, 'local_logits'):
                raise TypeError(f'ClsDistill needs mmkd ImageClassifier models (backbone, neck, LinearClsHead); '
                                f'the {role} is a {type(model).__name__}.')
        s_head, t_head = self.student.head, self.teacher.head
        if s_head.num_classes != t_head.num_classes:
            raise ValueError(f'The student predicts {s_head.num_classes} classes but the teacher {t_head.num_classes}; '
                             'set the same head.num_classes in both and use a teacher trained on the same classes.')
        if s_head.in_channels != t_head.in_channels:
            for loss_name, mapping in self.distiller.loss_forward_mappings.items():
                for arg, rec in mapping.items():
                    if rec.get('from_student') and not rec.get('connector') and \
                            self._source(rec['recorder'], True) == 'neck':
                        raise ValueError(
                            f'The student\'s feature is {s_head.in_channels}-d but the teacher\'s is '
                            f'{t_head.in_channels}-d, and {loss_name}.{arg} reads it without a connector. Add to '
                            f'distiller.connectors `proj=dict(type=\'mmkd.EmbeddingProjector\', '
                            f'in_channels={s_head.in_channels}, out_channels={t_head.in_channels})` and '
                            f'`connector=\'proj\'` to that mapping.')

    def class_means_shape(self) -> Tuple[int, int]:
        """One mean per class of the teacher's penultimate feature: ``[K, C_t]``."""
        return self.teacher.head.num_classes, self.teacher.head.in_channels

    def _source(self, recorder: str, from_student: bool) -> str:
        manager = self.distiller.student_recorders if from_student else self.distiller.teacher_recorders
        return manager.recorders[recorder].source

    # ------------------------------------------------------------------ training step
    def loss(self, batch_inputs: Tensor, data_samples: Optional[List[BaseDataElement]] = None) -> Dict[str, Tensor]:
        self._before_loss()
        losses = dict()
        if self.distillation_stopped:
            return self._student_only_loss(batch_inputs, data_samples)
        step = None  # the teacher part of the finite verdict, taken before the class means change
        self.distiller.set_deliveries_override(False)
        if self._teacher_runs:
            with self.distiller.teacher_recorders, self.distiller.deliveries, torch.no_grad():
                t_feat = self._teacher_forward(batch_inputs)
            if self._ema:
                step = self._update_ema_class_means(t_feat, stack_gt_labels(data_samples).to(t_feat.device))
        self.distiller.set_deliveries_override(True)
        with self.distiller.student_recorders, self.distiller.deliveries:
            if self.calculate_student_loss:
                losses.update(add_prefix(self.student(batch_inputs, data_samples, mode='loss'), 'student'))
            else:
                with torch.set_grad_enabled(self.student_trainable):
                    self.student(batch_inputs, data_samples, mode='loss')
        if not self.distillation_stopped:
            distill_losses = self.distiller.compute_distill_losses()
            if self.loss_warmup:
                self._check_warmup_length(MessageHub.get_current_instance())
                for name, factor in self.warmup_factors().items():
                    distill_losses[name] = distill_losses[name] * factor
            losses.update(add_prefix(distill_losses, 'distill'))
        return self._check_finite(losses, step)

    def warmup_factors(self, epoch: Optional[int] = None, iteration: Optional[int] = None) -> Dict[str, float]:
        """The warm-up factor of each loss in ``loss_warmup`` at a 0-based ``epoch`` / ``iteration`` (by default
        the message hub's ``epoch`` / ``iter``, as in a training step)."""
        hub = MessageHub.get_current_instance()
        progress = dict(epoch=hub.get_info('epoch', 0) if epoch is None else epoch,
                        iter=hub.get_info('iter', 0) if iteration is None else iteration)
        return {name: warmup_factor(progress[unit], length) for name, (unit, length) in self.loss_warmup.items()}

    def _student_only_loss(self, batch_inputs: Tensor, data_samples: Optional[List[BaseDataElement]]) -> Dict:
        """A step after ``StopDistillHook``: the student's own loss only (no teacher, recorders or local logits)."""
        head = self.student.head
        compute_local, head.compute_local = head.compute_local, False
        try:
            if self.calculate_student_loss:
                return add_prefix(self.student(batch_inputs, data_samples, mode='loss'), 'student')
            with torch.set_grad_enabled(self.student_trainable):
                self.student(batch_inputs, data_samples, mode='loss')
            return dict()
        finally:
            head.compute_local = compute_local

    def _check_warmup_length(self, hub: MessageHub) -> None:
        """Warn once when an epoch warm-up is longer than the training loop's epochs (``IterBasedTrainLoop``
        reports 1 epoch): it would never end."""
        max_epochs = hub.get_info('max_epochs')
        if self._warmup_checked or max_epochs is None:
            return
        self._warmup_checked = True
        for name, (unit, length) in self.loss_warmup.items():
            if unit == 'epoch' and length > max_epochs:
                print_log(
                    f'ClsDistill: the warm-up of {name} lasts {length} epochs but the training loop has {max_epochs} '
                    f'(an IterBasedTrainLoop counts 1 and its epoch stays 0), so {name} stays scaled down for the '
                    f'whole run. For iteration-based training give the warm-up in iterations: '
                    f'loss_warmup=dict({name}=dict(iters=N)).', logger='current', level=logging.WARNING)

    def _teacher_forward(self, batch_inputs: Tensor) -> Tensor:
        """``backbone -> neck`` (-> ``head`` when read) of the teacher; returns its feature ``[B, C_t]``."""
        maps = self.teacher.backbone(self.teacher_inputs(batch_inputs))
        feat = self.teacher.neck(maps)
        if self._teacher_runs_head:
            self.teacher.head(feat, maps[-1])
        return feat

    # ------------------------------------------------------------------ class statistics
    @torch.no_grad()
    def collect_class_features(self, batch_inputs: Tensor,
                               data_samples: List[BaseDataElement]) -> Tuple[Tensor, Tensor]:
        """Teacher penultimate features ``[B, C_t]`` and ground-truth labels ``[B]`` (KD++'s class centres)."""
        feats = self.teacher.extract_feat(self.teacher_inputs(batch_inputs))
        return feats, stack_gt_labels(data_samples).to(feats.device)
