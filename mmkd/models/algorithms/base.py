"""What mmkd's distillation algorithms share on top of mmrazor's ``SingleTeacherDistill``."""
import copy
import os.path as osp
from typing import Dict, List, Optional, Set, Tuple

import torch
from mmrazor.models import SingleTeacherDistill
from torch import Tensor

from mmkd.models.utils import fuse_conv_bn_
from mmkd.registry import MODELS
from mmkd.structures import ClassMeans

_REMOTE_PREFIXES = ('http://', 'https://', 's3://', 'open-mmlab://', 'torchvision://', 'modelzoo://')


@MODELS.register_module()
class TeacherStudentDistill(SingleTeacherDistill):
    """Base of mmkd's distillation algorithms (detection: ``RoIDistill``; classification: ``ClsDistill``).

    Keeps every config key of mmrazor's ``SingleTeacherDistill`` (``architecture``, ``teacher``,
    ``teacher_ckpt``, ``teacher_trainable``, ``teacher_norm_eval``, ``distiller``, ``calculate_student_loss``,
    ...) and adds:

    * ``class_means=dict(momentum=None)``: the teacher's per-class mean features ``[K, D]`` (``num_classes`` and
      ``feat_dim`` default to the teacher's, see :meth:`class_means_shape`),
      a :class:`~mmkd.structures.ClassMeans` owned by the algorithm (so they are saved in every checkpoint) and
      bound into every distillation loss that needs them (ND, NC). ``ClassMeansHook`` fills them before
      training with one teacher pass (:meth:`collect_class_features`), or loads them from a file; with a
      ``momentum`` they are instead updated online (EMA) from the teacher features of each training step.
    * a frozen teacher that is **wholly** in eval mode (mmrazor only switches its BatchNorm layers, leaving
      dropout and drop-path stochastic), unless ``teacher_trainable``.
    * the recorders of :attr:`STUDENT_RECORDERS` / :attr:`TEACHER_RECORDERS`, added to the distiller's by name
      (the config's own recorders of the same name win);
    * checks at build time, before any weights are built, so that a wrong config fails in seconds;
    * a faster frozen teacher, same function: ``teacher_fuse_conv_bn`` folds every BatchNorm into the convolution
      that feeds it (:func:`~mmkd.models.utils.fuse_conv_bn_`, checked on a traced input; teacher outputs then
      differ from the unfused ones by float rounding only), and ``teacher_channels_last`` stores the teacher's
      convolution weights channels-last and feeds it channels-last inputs (:meth:`teacher_inputs`). Both change
      the teacher's entries in the state dict / memory layout, so a checkpoint of the algorithm loads into an
      algorithm built with the same two settings.

    The teacher never computes its own losses, so ``teacher_trainable=True`` is refused.
    """

    STUDENT_RECORDERS: Dict[str, Dict] = {}
    TEACHER_RECORDERS: Dict[str, Dict] = {}
    #: side of the random image the teacher's Conv/BN pairs are traced on (``teacher_fuse_conv_bn``)
    TRACE_SIZE = 64

    def __init__(self, distiller: Dict, *args, teacher_ckpt: Optional[str] = None,
                 class_means: Optional[Dict] = None, teacher_fuse_conv_bn: bool = True,
                 teacher_channels_last: bool = False, **kwargs) -> None:
        if kwargs.get('teacher_trainable'):
            raise ValueError(f'{type(self).__name__} never computes the teacher\'s own losses, so '
                             f'teacher_trainable=True cannot work; use mmrazor\'s SingleTeacherDistill to train '
                             f'the teacher too.')
        if teacher_ckpt and not teacher_ckpt.startswith(_REMOTE_PREFIXES) and not osp.isfile(teacher_ckpt):
            raise FileNotFoundError(
                f'Teacher checkpoint {teacher_ckpt!r} does not exist. Train the teacher first (tools/train.py '
                f'<teacher config>) or download its weights, then point the config\'s `teacher_ckpt` at the file '
                f'(or pass --cfg-options model.teacher_ckpt=PATH).')
        distiller = copy.deepcopy(distiller)
        for key, defaults in (('student_recorders', self.STUDENT_RECORDERS),
                              ('teacher_recorders', self.TEACHER_RECORDERS)):
            distiller[key] = {**defaults, **(distiller.get(key) or {})}
        super().__init__(distiller, *args, teacher_ckpt=teacher_ckpt, **kwargs)
        self.class_means = None
        if class_means is not None:
            num_classes, feat_dim = self.class_means_shape()
            cfg = {**dict(num_classes=num_classes, feat_dim=feat_dim), **class_means}
            if (cfg['num_classes'], cfg['feat_dim']) != (num_classes, feat_dim):
                raise ValueError(
                    f'class_means is configured as [{cfg["num_classes"]}, {cfg["feat_dim"]}] but the teacher\'s '
                    f'are [{num_classes}, {feat_dim}] ({num_classes} classes, {feat_dim}-d features): set '
                    f'class_means=dict(num_classes={num_classes}, feat_dim={feat_dim}), or leave both out.')
            self.class_means = ClassMeans(**cfg)
        for name, loss in self.distiller.distill_losses.items():
            if not hasattr(loss, 'bind_class_means'):
                continue
            if self.class_means is None:
                raise ValueError(
                    f'Distillation loss {name!r} ({type(loss).__name__}) needs the teacher\'s class means. Add '
                    f'`class_means=dict()` to the algorithm (model) config and '
                    f'`dict(type=\'mmkd.ClassMeansHook\')` to custom_hooks.')
            loss.bind_class_means(self.class_means)
        self.teacher_channels_last = teacher_channels_last
        self.teacher.eval()
        if teacher_fuse_conv_bn:
            image = torch.randn(1, 3, self.TRACE_SIZE, self.TRACE_SIZE, generator=torch.Generator().manual_seed(0))
            fuse_conv_bn_(self.teacher, lambda: self.teacher.extract_feat(image))
        if teacher_channels_last:
            self.teacher.to(memory_format=torch.channels_last)

    def teacher_inputs(self, batch_inputs: Tensor) -> Tensor:
        """``batch_inputs`` in the memory layout the teacher runs in (channels-last with
        ``teacher_channels_last``)."""
        if self.teacher_channels_last and batch_inputs.dim() == 4:
            return batch_inputs.contiguous(memory_format=torch.channels_last)
        return batch_inputs

    @property
    def needs_class_means(self) -> bool:
        """Whether a loss reads the class means (``ClassMeansHook`` then makes sure they are filled)."""
        return self.class_means is not None

    @torch.no_grad()
    def collect_class_features(self, batch_inputs: Tensor,
                               data_samples: Optional[List]) -> Tuple[Tensor, Tensor]:
        """Teacher features ``[N, D]`` and their class labels ``[N]`` for one pre-processed batch."""
        raise NotImplementedError

    def class_means_shape(self) -> Tuple[int, int]:
        """``(number of classes, feature width)`` of the teacher features the class means average."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> 'TeacherStudentDistill':
        super().train(mode)
        if not self.teacher_trainable:
            self.teacher.eval()
        return self

    def _used_sources(self, from_student: bool) -> Set[str]:
        """Module/method paths of the student's or the teacher's recorders that some distillation loss reads."""
        manager = self.distiller.student_recorders if from_student else self.distiller.teacher_recorders
        return {manager.recorders[rec['recorder']].source
                for mapping in self.distiller.loss_forward_mappings.values() for rec in mapping.values()
                if rec.get('from_student', True) == from_student}
