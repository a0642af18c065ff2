"""What mmkd's distillation algorithms share on top of mmrazor's ``SingleTeacherDistill``."""
import copy
import logging
import os.path as osp
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

import torch
from mmengine.dist import all_reduce, broadcast_object_list, get_rank, get_world_size
from mmengine.logging import MessageHub, print_log
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from mmrazor.models import SingleTeacherDistill
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmkd.models.utils import fuse_conv_bn_
from mmkd.models.utils.checkpoint import (DISTILL_PREFIXES, checkpoint_state_dict,  # noqa: F401
                                          describe_mismatch, state_dict_mismatch)
from mmkd.models.utils.preprocessing import (checkpoint_preprocessor, compare_preprocessing, model_preprocessor,
                                             plan_teacher_preprocessing)
from mmkd.registry import MODELS
from mmkd.structures import ClassMeans

_REMOTE_PREFIXES = ('http://', 'https://', 's3://', 'open-mmlab://', 'torchvision://', 'modelzoo://')
def _refuse_folded_state(module: nn.Module, state_dict: Dict[str, Tensor], prefix: str, *args) -> None:
    """Load-state-dict pre-hook of the teacher: refuses a state dict whose BatchNorms were folded into their
    convolutions (written with ``teacher_fuse_conv_bn=True``) when this teacher keeps those BatchNorms, as
    loading it would apply every such BatchNorm twice. (The opposite, an unfolded state dict into a folded
    teacher, is folded on load by :func:`~mmkd.models.utils.fuse_conv_bn_`'s own hook.)"""
    if not any(k.startswith(prefix) for k in state_dict):
        return  # the checkpoint has no teacher (e.g. a plain student checkpoint): nothing to compare
    named = dict(module.named_modules())
    no_stats = [n for n, m in named.items() if isinstance(m, _BatchNorm) and m.track_running_stats
                and f'{prefix}{n}.running_mean' not in state_dict]
    new_bias = [n for n, m in named.items()
                if isinstance(m, nn.Conv2d) and m.bias is None and f'{prefix}{n}.bias' in state_dict]
    if no_stats and new_bias:
        raise ValueError(
            f'The checkpoint\'s teacher ({prefix[:-1]}) has BatchNorms folded into its convolutions ({len(new_bias)} '
            f'convolutions carry a bias this teacher\'s lack, e.g. {new_bias[0]}; {len(no_stats)} BatchNorms have '
            f'no statistics, e.g. {no_stats[0]}): it was written by an algorithm built with '
            f'teacher_fuse_conv_bn=True, but this one keeps those BatchNorms (teacher_fuse_conv_bn=False, or a '
            f'recorder reads them), so loading it would apply them twice. Build the algorithm with '
            f'teacher_fuse_conv_bn=True (the default) and without recorders on those modules to load it.')


def _note_loaded_teacher(module: nn.Module, state_dict: Dict[str, Tensor], prefix: str, *args) -> None:
    """Load-state-dict pre-hook of the teacher: counts the teacher entries of a state dict loaded into the model
    (``load_from`` / ``--resume`` of a distillation checkpoint, or a teacher checkpoint loaded directly), so that a
    teacher built without ``teacher_ckpt`` is known to hold trained weights (see
    :meth:`TeacherStudentDistill.check_teacher_weights`)."""
    loaded = sum(1 for k in state_dict if k.startswith(prefix))
    if loaded:
        module._mmkd_loaded_entries = max(getattr(module, '_mmkd_loaded_entries', 0), loaded)


class _NonFiniteGrad(torch.autograd.Function):
    """``0`` in the forward, a NaN gradient for ``param`` in the backward: added to a loss, it leaves the logged
    value unchanged and makes the step's gradients non-finite, so that a mixed-precision optimizer wrapper skips the
    update as it skips an overflow (``GradScaler`` for ``AmpOptimWrapper``; ``mmkd.CPUAmpOptimWrapper`` likewise).

    A non-finite teacher output does not always make the gradients non-finite by itself: a teacher feature that
    overflows to +Inf enters ND only as the norm in a denominator, so that sample's loss is 1 and its gradient 0,
    and the step's gradients stay finite; without this term such a step would update the weights while being
    counted as skipped."""

    @staticmethod
    def forward(ctx, param: Tensor) -> Tensor:
        ctx.shape, ctx.dtype = param.shape, param.dtype
        return param.new_zeros((), dtype=torch.float32)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return torch.full(ctx.shape, float('nan'), dtype=ctx.dtype, device=grad.device)


class _StepCheck(NamedTuple):
    """The teacher part of one checked step's finite verdict, taken before the step changes any state
    (:meth:`TeacherStudentDistill._update_ema_class_means`) and completed by ``_check_finite``."""
    teacher: List[Tuple[str, Tensor]]  # the teacher tensors checked, each with what it is
    sums: Tensor  # their float32 sums ``[len(teacher)]``, on the device (not synced yet)
    class_means_before: Optional[Dict[str, Tensor]]  # under autocast: the class means before the update


def _autocast_enabled() -> bool:
    """Whether the code runs inside an autocast region (the optim context of ``AmpOptimWrapper`` or
    ``mmkd.CPUAmpOptimWrapper``). ``torch.is_autocast_enabled(device_type)`` exists from torch 2.4 on (mmkd needs
    2.6); a device type this torch build does not know (``npu``, ``mlu``, ``musa`` without their extension) raises a
    RuntimeError and is skipped, any other error propagates."""
    for device in ('cuda', 'cpu', 'npu', 'mlu', 'musa', 'xpu'):
        try:
            if torch.is_autocast_enabled(device):
                return True
        except RuntimeError as err:
            if 'device' not in str(err):  # e.g. "Expected one of cpu, cuda, ... device type at start of ..."
                raise
    return False


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
      convolution weights channels-last and feeds it channels-last inputs (:meth:`teacher_inputs`). Teacher
      modules that a recorder reads (or whose parameters it reads) are never folded, so every recorder sees
      what it would see without the fusion. The folded teacher's state dict has no entries for the folded
      BatchNorms and a bias for their convolutions; it still loads checkpoints written without the fusion
      (folding them on load), and a checkpoint written with it is refused, with an error, by an algorithm
      built without it (which would apply the BatchNorms twice). [PROPOSAL]
    * ``teacher_ckpt`` must fit the teacher: a checkpoint that leaves any teacher weight unloaded (missing or of
      another shape; e.g. the student's checkpoint, or one of another detector) is refused before training
      with an error naming how many weights and which, unless ``teacher_ckpt_strict=False``; so is one holding
      a NaN/Inf. [PROPOSAL]
    * no training against a random teacher: without ``teacher_ckpt`` the teacher's weights must come from a
      checkpoint loaded into the algorithm (``load_from`` / ``--resume`` of a distillation checkpoint, which holds
      the teacher); the first training step (and ``ClassMeansHook``, before its teacher pass) refuses a teacher
      that got none, naming what to set (:meth:`check_teacher_weights`; ``tools/train.py`` refuses such a config
      before building anything). ``allow_random_teacher=True`` opts into a random teacher (tests, debugging).
      [PROPOSAL]
    * a verdict on every checked training step: are the teacher outputs (the recorded tensors the distillation
      losses read) and the distillation losses finite? In float32, the first step that is not (a NaN weight, an
      overflow) stops with a ``FloatingPointError`` naming them, before the step's update or any later checkpoint
      exists. Under mixed precision (``loss`` runs under autocast: ``AmpOptimWrapper``, ``tools/train.py --amp``,
      or ``mmkd.CPUAmpOptimWrapper``) the step is skipped as the loss scaler skips an overflow: its gradients are
      made non-finite (the logged losses are unchanged, and the student's own gradients need not be: a teacher
      overflow to Inf leaves ND's value and gradient finite), so the wrapper makes no update, EMA class means are
      restored, and the skip is counted (``MessageHub`` runtime info ``nonfinite_skipped_steps``) and logged;
      ``amp_stop_after_nonfinite`` checked steps in a row that are not finite stop the run with the same error.
      EMA class means never take a non-finite teacher batch: the teacher part of the verdict is taken before their
      update, which it gates on the device (:meth:`_update_ema_class_means`), so in float32 too they are as they
      were when the step stops.
      With several ranks, one all-reduce of a per-rank flag gives every rank the same verdict in the same step,
      and the error (the first rank's that saw the values, named in it) is the same on every rank, so they all
      stop together instead of waiting in the next collective. The check costs one fused reduction, that
      all-reduce and one host sync per checked step (``finite_check_interval``: every that many steps; 0 turns
      it off). The default, every step, is what keeps the cost under 1% of a step on a CPU (one check: 550 µs
      against a 115 s R101 -> R50 step, ``tools/analysis/benchmark_distill.py``'s ``finite check`` line); the
      GPU figure, where the sync stalls the queue, is not measured yet: raise the interval if that line shows
      more than 1% there. [PROPOSAL]

    * the teacher sees the inputs it was trained on (``teacher_preprocessing``): the batch goes through the
      algorithm's ``data_preprocessor`` (the student's unless set), and mmrazor feeds the teacher that tensor, never
      running the teacher's own. Its normalisation (mean, std, channel order ``bgr_to_rgb``/``rgb_to_bgr``; padding
      is not compared) is compared (:func:`~mmkd.models.utils.preprocessing.compare_preprocessing`) with the
      teacher's: the teacher config's ``data_preprocessor`` before anything is built, then the training config
      stored in ``teacher_ckpt`` (``meta['cfg']`` of mmengine checkpoints, ``meta['config']`` of mmcv 1.x ones such
      as mmdet's model zoo; it wins over the teacher config, as it is what the weights were trained with) before
      the weights are loaded. If they differ, ``teacher_preprocessing='convert'`` (the default) feeds the teacher
      its own normalisation of the same pixels: ``x_t[c] = x[j] * std_s[j] / std_t[c] + (mean_s[j] - mean_t[c]) /
      std_t[c]`` (``j`` the other end of the channels if exactly one side swaps them), exact but for float
      rounding and for the padding pixels (:meth:`teacher_inputs`; logged as a warning); ``'refuse'`` raises a
      ``ValueError`` naming both settings and the fixes; ``'ignore'`` feeds the student's inputs anyway, as mmrazor
      does (logged). A teacher whose normalisation is written nowhere (no ``data_preprocessor`` in its config, no
      training config in its checkpoint) is not checked. [PROPOSAL]

    * ``student_init_from_teacher=('neck', 'bbox_head')``: these student modules start from ``teacher_ckpt``'s
      weights of the same names (FGD's ``init_student``, Yang et al., CVPR 2022, which copies every non-backbone
      weight of the teacher into the student), copied after the student's own initialisation
      (:meth:`init_weights`, what mmengine's runner calls before training); a tensor of another shape (an FPN
      lateral conv whose input width differs) keeps its initialisation, and the log names it. A module the
      student lacks, or one that gets no tensor at all, is an error.

    The teacher never computes its own losses, so ``teacher_trainable=True`` is refused.
    """

    STUDENT_RECORDERS: Dict[str, Dict] = {}
    TEACHER_RECORDERS: Dict[str, Dict] = {}
    #: side of the random image the teacher's Conv/BN pairs are traced on (``teacher_fuse_conv_bn``)
    TRACE_SIZE = 64

    def __init__(self, distiller: Dict, *args, teacher_ckpt: Optional[str] = None,
                 teacher_ckpt_strict: bool = True, class_means: Optional[Dict] = None,
                 teacher_fuse_conv_bn: bool = True, teacher_channels_last: bool = False,
                 finite_check_interval: int = 1, amp_stop_after_nonfinite: int = 10,
                 allow_random_teacher: bool = False, teacher_preprocessing: str = 'convert',
                 student_init_from_teacher: Sequence[str] = (), **kwargs) -> None:
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
        if finite_check_interval < 0:
            raise ValueError(f'finite_check_interval must be >= 0 (0: no check), got {finite_check_interval}')
        if isinstance(amp_stop_after_nonfinite, bool) or not isinstance(amp_stop_after_nonfinite, int) or \
                amp_stop_after_nonfinite < 1:
            raise ValueError(f'amp_stop_after_nonfinite must be an int >= 1 (1: stop at the first non-finite step, '
                             f'as in float32), got {amp_stop_after_nonfinite!r}')
        # the teacher's normalisation against the batch's, from the configs, before anything is built
        teacher_conversion = self._plan_teacher_preprocessing(
            teacher_preprocessing, kwargs.get('data_preprocessor') or model_preprocessor(kwargs.get('architecture')),
            model_preprocessor(kwargs.get('teacher', args[0] if args else None)), "model.teacher's data_preprocessor")
        super().__init__(distiller, *args, teacher_ckpt=None, **kwargs)
        self.teacher_preprocessing = teacher_preprocessing
        self._teacher_input_conversion = teacher_conversion
        self.teacher_ckpt = teacher_ckpt
        if teacher_ckpt:
            self._load_teacher_ckpt(teacher_ckpt, teacher_ckpt_strict)
        self.student_init_from_teacher = self._check_student_init(student_init_from_teacher, teacher_ckpt)
        self.finite_check_interval = finite_check_interval
        self.amp_stop_after_nonfinite = amp_stop_after_nonfinite
        self._loss_calls = 0
        self._nonfinite_in_a_row = 0  # checked mixed-precision steps skipped in a row
        self.nonfinite_skipped_steps = 0  # in this process's run
        self.allow_random_teacher = allow_random_teacher
        self._teacher_weights_checked = bool(teacher_ckpt) or allow_random_teacher
        self.teacher.register_load_state_dict_pre_hook(_note_loaded_teacher)
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
            # the teacher's recorders are hooked into its modules already: keep those modules as they are
            recorded = {rec.source for rec in self.distiller.teacher_recorders.recorders.values()}
            try:
                fuse_conv_bn_(self.teacher, lambda: self.teacher.extract_feat(image), keep=recorded)
            except FloatingPointError as err:
                raise FloatingPointError(
                    f'The teacher\'s features on a random {self.TRACE_SIZE}x{self.TRACE_SIZE} image are not finite '
                    f'(teacher_ckpt {teacher_ckpt!r}): its activations overflow, so it cannot teach. Check the '
                    f'teacher checkpoint (evaluate it with tools/test.py and the teacher config).') from err
        self.teacher.register_load_state_dict_pre_hook(_refuse_folded_state)
        if teacher_channels_last:
            self.teacher.to(memory_format=torch.channels_last)

    def _check_student_init(self, names: Sequence[str], teacher_ckpt: Optional[str]) -> Tuple[str, ...]:
        """``student_init_from_teacher`` as a tuple, after checking that there is a checkpoint to copy from and
        that each name is a module of the student."""
        names = (names, ) if isinstance(names, str) else tuple(names)
        if names and not teacher_ckpt:
            raise ValueError(f'student_init_from_teacher={list(names)} copies weights from teacher_ckpt, which is not '
                             f'set: set model.teacher_ckpt, or drop student_init_from_teacher.')
        unknown = [n for n in names if not isinstance(getattr(self.student, n, None), nn.Module)]
        if unknown:
            raise ValueError(f'student_init_from_teacher names {unknown}, not modules of the student '
                             f'({type(self.student).__name__}: {[n for n, _ in self.student.named_children()]}).')
        return names

    def init_weights(self) -> None:
        """mmengine's initialisation of every module (the teacher keeps its checkpoint's weights), then the
        student modules of ``student_init_from_teacher`` copied from ``teacher_ckpt`` where the shapes match."""
        super().init_weights()
        if not self.student_init_from_teacher:
            return
        state = checkpoint_state_dict(_load_checkpoint(self.teacher_ckpt, map_location='cpu'), self.teacher_ckpt)
        own = self.student.state_dict()
        copied, other_shape = [], []
        for name in self.student_init_from_teacher:
            keys = [k for k in own if k.startswith(name + '.') and k in state]
            fit = [k for k in keys if state[k].shape == own[k].shape]
            if not fit:
                raise ValueError(f'student_init_from_teacher: teacher_ckpt {self.teacher_ckpt!r} has no tensor of the '
                                 f'student\'s {name!r} with its shape ({len(keys)} of the same name): is it a '
                                 f'checkpoint of this teacher?')
            copied += fit
            other_shape += [k for k in keys if k not in fit]
        with torch.no_grad():
            for k in copied:
                own[k].copy_(state[k])
        print_log(f'student_init_from_teacher: {len(copied)} tensors of the student\'s '
                  f'{", ".join(self.student_init_from_teacher)} copied from teacher_ckpt {self.teacher_ckpt!r}'
                  + (f'; {len(other_shape)} of another shape keep their initialisation ({", ".join(other_shape[:4])}'
                     f'{", ..." if len(other_shape) > 4 else ""})' if other_shape else ''), logger='current')

    def _load_teacher_ckpt(self, filename: str, strict: bool) -> None:
        """Load ``teacher_ckpt`` into the (still unfused) teacher after checking that it fits (see the class
        docstring); mmrazor itself would load any checkpoint with only a missing-keys warning."""
        checkpoint = _load_checkpoint(filename, map_location='cpu')
        self._check_checkpoint_preprocessing(checkpoint, filename)
        state = checkpoint_state_dict(checkpoint, filename)
        expected = self.teacher.state_dict()
        missing, unexpected, mismatched = state_dict_mismatch(expected, state)
        if missing or mismatched:
            hint = ''
            if any(k.startswith(DISTILL_PREFIXES) for k in state):
                hint = (' It is a distillation checkpoint (its keys start with "architecture." / "teacher."); a '
                        'teacher checkpoint is a plain model\'s: train the teacher with its own config, or turn '
                        'a distilled student into one with tools/model_converters/convert_kd_ckpt_to_student.py.')
            msg = (f'teacher_ckpt {filename!r} does not fit the teacher ({type(self.teacher).__name__}): '
                   f'{describe_mismatch(expected, state, "the teacher")}{hint} The distillation would learn from a '
                   f'partly random teacher.')
            if strict:
                raise ValueError(f'{msg} Point `teacher_ckpt` at a checkpoint of the teacher config\'s model '
                                 f'(e.g. trained with tools/train.py <teacher config>). To load only the matching '
                                 f'weights on purpose, set teacher_ckpt_strict=False in the algorithm (model) config.')
            print_log(f'{msg} Loading only the matching weights (teacher_ckpt_strict=False).', logger='current',
                      level=logging.WARNING)
            state = {k: v for k, v in state.items() if k in expected and expected[k].shape == v.shape}
            checkpoint = dict(state_dict=state)
        elif unexpected:
            print_log(f'teacher_ckpt {filename!r}: {len(unexpected)} entries that the teacher does not have are '
                      f'ignored ({", ".join(unexpected[:4])}{", ..." if len(unexpected) > 4 else ""}).',
                      logger='current', level=logging.WARNING)
        _load_checkpoint_to_model(self.teacher, checkpoint, strict=False, logger='current')
        self.teacher._is_init = True  # keep the loaded weights through init_weights(), as mmrazor does
        non_finite = [k for k, v in self.teacher.state_dict().items()
                      if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if non_finite:
            raise ValueError(
                f'teacher_ckpt {filename!r} holds NaN/Inf values in {len(non_finite)} of the teacher\'s tensors '
                f'({", ".join(non_finite[:4])}{", ..." if len(non_finite) > 4 else ""}): the student would be '
                f'trained into NaN. Use an earlier checkpoint of the teacher (one whose training had not diverged), '
                f'or retrain it.')

    def _plan_teacher_preprocessing(self, mode: str, fed, teacher, teacher_source: str):
        """The teacher-input conversion (or None) for ``teacher_preprocessing=mode``; refuses in ``'refuse'`` mode
        (see the class docstring). Also called before ``nn.Module.__init__``: sets no attribute."""
        if fed is None or teacher is None:  # a normalisation written nowhere: nothing to compare
            plan_teacher_preprocessing(None, None, mode, type(self).__name__, teacher_source)  # checks `mode`
            return None
        conversion, message = plan_teacher_preprocessing(fed, teacher, mode, type(self).__name__, teacher_source)
        if message:
            print_log(message, logger='current', level=logging.WARNING)
        return conversion

    def _check_checkpoint_preprocessing(self, checkpoint: Any, filename: str) -> None:
        """The teacher's normalisation as ``teacher_ckpt``'s training config states it, against the batch's
        (:meth:`_plan_teacher_preprocessing`); called before the checkpoint's weights are loaded."""
        found = checkpoint_preprocessor(checkpoint)
        if found is None:
            return
        trained, where = found
        declared = getattr(self.teacher, 'data_preprocessor', None)
        self._teacher_input_conversion = self._plan_teacher_preprocessing(
            self.teacher_preprocessing, self.data_preprocessor, trained, f'teacher_ckpt {filename!r}: {where}')
        if declared is not None and compare_preprocessing(declared, trained):
            print_log(f'{type(self).__name__}: model.teacher\'s data_preprocessor differs from the one teacher_ckpt '
                      f'{filename!r} was trained with ({where}); the checkpoint\'s is the teacher\'s.',
                      logger='current', level=logging.WARNING)

    def teacher_inputs(self, batch_inputs: Tensor) -> Tensor:
        """``batch_inputs`` normalised as the teacher was trained (``teacher_preprocessing='convert'``, when the
        two normalisations differ), in the memory layout the teacher runs in (channels-last with
        ``teacher_channels_last``)."""
        if getattr(self, '_teacher_input_conversion', None) is not None and batch_inputs.dim() == 4:
            batch_inputs = self._teacher_input_conversion(batch_inputs)
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

    # ------------------------------------------------------------------ fault tolerance
    def check_teacher_weights(self) -> None:
        """Refuse to train against a teacher that holds no trained weights: no ``teacher_ckpt``, no checkpoint with
        teacher entries loaded into the algorithm since it was built (``load_from`` / ``--resume`` of a
        distillation checkpoint), and no ``allow_random_teacher=True``. Called by the first training step and by
        ``ClassMeansHook`` before its teacher pass; free after the first call."""
        if self._teacher_weights_checked:
            return
        if getattr(self.teacher, '_mmkd_loaded_entries', 0):
            self._teacher_weights_checked = True
            return
        raise ValueError(
            f'{type(self).__name__}: the teacher has no trained weights: teacher_ckpt is not set and no checkpoint '
            f'holding the teacher was loaded (load_from / --resume of a distillation checkpoint), so the student '
            f'would be trained to imitate a randomly initialised network, and end up worse than trained alone. Set '
            f'the algorithm\'s `teacher_ckpt` to the trained teacher\'s checkpoint (in the config, or '
            f'--cfg-options model.teacher_ckpt=PATH), or resume / load_from a checkpoint of this distillation run. '
            f'For a deliberate random-teacher run (tests, debugging) set allow_random_teacher=True in the algorithm '
            f'(model) config.')

    def _before_loss(self) -> None:
        """What every training step checks first (the teacher's weights, once)."""
        if self.training and not self._teacher_weights_checked:
            self.check_teacher_weights()

    def _update_ema_class_means(self, feats: Tensor, labels: Tensor,
                                weight: Optional[Tensor] = None) -> Optional[_StepCheck]:
        """This step's EMA update of the class means from the teacher's ``feats [N, D]`` (``labels [N]``, optional
        ``weight [N]``), after the teacher part of the step's finite verdict: a non-finite teacher never reaches
        the means. The teacher tensors the distillation losses read, and ``feats``, are summed first (float32, on
        the device, no host sync) and the update is applied only if every sum is finite (``ClassMeans.update``'s
        ``accept``). The verdict itself comes at the end of the step from the same sums (:meth:`_check_finite`,
        given the returned object; the step's one host sync): a ``FloatingPointError`` in float32, a skipped step
        under mixed precision, the means as they were in both. Under mixed precision the means are also copied
        first and restored if the step is skipped for a non-finite distillation loss. Returns None when the step
        is not checked (``finite_check_interval``); ``ClassMeans.update`` still ignores non-finite ``feats``."""
        if not self._check_due():
            self.class_means.update(feats, labels, weight)
            return None
        teacher = self._teacher_loss_inputs()
        if not any(t is feats for _, t in teacher):
            teacher.append(('the teacher features of the EMA class-means update', feats))
        sums = _sums([t for _, t in teacher])
        before = {k: v.clone() for k, v in self.class_means.state_dict().items()} if _autocast_enabled() else None
        self.class_means.update(feats, labels, weight, accept=torch.isfinite(sums).all())
        return _StepCheck(teacher, sums, before)

    def _check_due(self) -> bool:
        """Whether the coming call of :meth:`_check_finite` checks (every ``finite_check_interval`` calls)."""
        return bool(self.finite_check_interval) and self._loss_calls % self.finite_check_interval == 0

    def _check_finite(self, losses: Dict[str, Tensor], step: Optional[_StepCheck] = None) -> Dict[str, Tensor]:
        """The verdict on one training step (called at the end of ``loss``, every ``finite_check_interval``
        calls): ``losses`` unchanged if the teacher tensors the distillation losses read and the distillation
        losses are finite on every rank; else, in float32 (or after ``amp_stop_after_nonfinite`` such checked
        steps in a row under autocast), a ``FloatingPointError`` naming them, raised on every rank; else (under
        autocast) ``losses`` whose gradients are non-finite, so that the mixed-precision wrapper skips the update.
        ``step``: the teacher part of the verdict taken earlier in the step (:meth:`_update_ema_class_means`),
        whose teacher tensors and sums are used instead of the recorded ones.

        One float32 sum per tensor, one all-reduce of a ``[world_size]`` flag when distributed, one host sync: a
        sum is finite exactly when every element is (barring an overflow of the float32 sum itself)."""
        due = self._check_due()
        self._loss_calls += 1
        distill = [(name, value) for name, value in losses.items() if name.startswith('distill.')]
        if not due or not distill:
            return losses
        teacher = self._teacher_loss_inputs() if step is None else step.teacher
        loss_tensors = [t for _, v in distill for t in _float_tensors(v)]
        if step is None:
            sums = _sums([t for _, t in teacher] + loss_tensors)
        else:
            sums = torch.cat([step.sums, _sums(loss_tensors)]) if loss_tensors else step.sums
        class_means_before = step.class_means_before if step is not None else None
        world_size, rank = get_world_size(), get_rank()
        flags = torch.zeros(world_size, device=sums.device)
        flags[rank] = (~torch.isfinite(sums).all()).float()
        if world_size > 1:
            all_reduce(flags, op='max')
        bad_ranks = [r for r, bad in enumerate(flags.tolist()) if bad]  # the host sync
        if not bad_ranks:
            self._nonfinite_in_a_row = 0
            return losses
        amp = _autocast_enabled()
        self._nonfinite_in_a_row += 1
        stop = not amp or self._nonfinite_in_a_row >= self.amp_stop_after_nonfinite
        message = [self._non_finite_message(teacher, distill) if rank in bad_ranks else None]
        if world_size > 1:  # every rank reports what the first rank that saw it found
            broadcast_object_list(message, src=bad_ranks[0])
        message = message[0]
        if world_size > 1:
            seen = ', '.join(map(str, bad_ranks))
            message += (f' (Seen on rank{"s" if len(bad_ranks) > 1 else ""} {seen} of {world_size}; the details '
                        f'are rank {bad_ranks[0]}\'s. Every rank reached this verdict in the same step.)')
        if stop:
            if amp:
                message += (f' Under mixed precision {self._nonfinite_in_a_row} checked steps in a row were not '
                            f'finite (amp_stop_after_nonfinite={self.amp_stop_after_nonfinite}; the earlier ones '
                            f'were skipped): this is no passing overflow.')
            raise FloatingPointError(message + ' Training stopped before this step\'s update; no checkpoint of it '
                                               'was written.')
        self.nonfinite_skipped_steps += 1
        hub = MessageHub.get_current_instance()
        hub.update_info('nonfinite_skipped_steps', self.nonfinite_skipped_steps)
        if class_means_before is not None:
            self.class_means.load_state_dict(class_means_before)
        print_log(f'{message} Mixed precision: this step is skipped (no update, as the loss scaler skips an '
                  f'overflow); {self._nonfinite_in_a_row} in a row, {self.nonfinite_skipped_steps} in this run; '
                  f'{self.amp_stop_after_nonfinite} in a row stop the run (amp_stop_after_nonfinite).',
                  logger='current', level=logging.WARNING)
        param = next((p for p in self.parameters() if p.requires_grad), None)
        if param is None:  # nothing would be updated anyway
            return losses
        losses, poison = dict(losses), _NonFiniteGrad.apply(param)
        # a loss that parse_losses adds to the total (its name holds 'loss'), else a term of its own (value 0)
        name = next((n for n, v in distill if 'loss' in n and torch.is_tensor(v) and v.is_floating_point()), None)
        if name is None:
            losses['distill.loss_nonfinite_skip'] = poison
        else:
            losses[name] = losses[name] + poison.to(losses[name].dtype)
        return losses

    def _non_finite_message(self, teacher: List[Tuple[str, Tensor]], distill: List[Tuple[str, Any]]) -> str:
        """What is not finite in this step: the teacher's recorded tensors if any, else the distillation losses."""
        step = MessageHub.get_current_instance().get_info('iter')
        at = f'at training iteration {step + 1}' if step is not None else 'in this training step'
        bad_teacher = [(what, t) for what, t in teacher if not torch.isfinite(t).all()]
        if bad_teacher:
            ckpt = f' ({self.teacher_ckpt})' if self.teacher_ckpt else ''
            return (f'{type(self).__name__}: non-finite teacher outputs {at}: '
                    + '; '.join(f'{what}: {_count_non_finite(t)}' for what, t in bad_teacher)
                    + f'. The teacher\'s weights{ckpt} hold a NaN/Inf, or its activations overflow (fp16: run the '
                      f'teacher in fp32/bf16).')
        bad_losses = [name for name, v in distill if not all(torch.isfinite(t).all() for t in _float_tensors(v))]
        return (f'{type(self).__name__}: non-finite distillation loss {at}: '
                + ', '.join(f'{name} = {[float(t) for t in _float_tensors(dict(distill)[name])]}'
                            for name in bad_losses)
                + ' (the teacher outputs they read are finite; a student output or a loss\'s own arithmetic is not: '
                  'lower the learning rate or that loss\'s weight, or check its inputs).')

    def _teacher_loss_inputs(self) -> List[Tuple[str, Tensor]]:
        """The recorded teacher tensors that some distillation loss reads, each with a description."""
        readers: Dict[Tuple, List[str]] = {}
        for loss_name, mapping in self.distiller.loss_forward_mappings.items():
            for rec in mapping.values():
                if not rec.get('from_student', True):
                    key = (rec['recorder'], rec.get('record_idx', 0), rec.get('data_idx'))
                    readers.setdefault(key, []).append(loss_name)
        out = []
        for (recorder, record_idx, data_idx), losses in readers.items():
            source = self.distiller.teacher_recorders.recorders[recorder].source
            data = self.distiller.get_record(recorder, False, record_idx=record_idx, data_idx=data_idx)
            what = (f'teacher record {recorder!r} ({source}'
                    + (f', data_idx={data_idx}' if data_idx is not None else '') + f'; read by {", ".join(losses)})')
            out += [(what, t) for t in _float_tensors(data)]
        return out

    def _used_sources(self, from_student: bool) -> Set[str]:
        """Module/method paths of the student's or the teacher's recorders that some distillation loss reads."""
        manager = self.distiller.student_recorders if from_student else self.distiller.teacher_recorders
        return {manager.recorders[rec['recorder']].source
                for mapping in self.distiller.loss_forward_mappings.values() for rec in mapping.values()
                if rec.get('from_student', True) == from_student}


def _sums(tensors: List[Tensor]) -> Tensor:
    """``[len(tensors)]`` float32 sums, without a host sync (finite exactly when every element is, barring an
    overflow of the float32 sum itself)."""
    return torch.stack([t.detach().sum(dtype=torch.float32) for t in tensors])


def _float_tensors(data: Any) -> List[Tensor]:
    """The floating-point tensors in a (nested) record or loss value."""
    if torch.is_tensor(data):
        return [data] if data.is_floating_point() else []
    if isinstance(data, (list, tuple)):
        return [t for d in data for t in _float_tensors(d)]
    return []


def _count_non_finite(t: Tensor) -> str:
    nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
    return f'{nan} NaN and {inf} Inf of {t.numel()} values'
