"""Diagnose a distillation config in a few batches, before hours of training are spent on it.

The command line is ``tools/analysis/diagnose_distill.py``; this module holds the checks and their verdicts.
Each check gives one line ``[OK]``, ``[WARN]`` or ``[FAIL] <what> — <why, and the fix>``:

1. **teacher weights**: a ``teacher_ckpt`` is set, fits the teacher config by the algorithms' own rule
   (:func:`~mmkd.models.utils.state_dict_mismatch`: no weight missing or of another shape, BatchNorm
   ``num_batches_tracked`` counters not needed) and was trained on the dataset's classes, in the same order
   (``dataset_meta`` of the checkpoint). A ``teacher_ckpt`` that the algorithm refuses when it is built (it does
   not fit, holds NaN/Inf, does not exist) is this check's FAIL, with the algorithm's message; the other checks
   then run on the algorithm built with only the matching weights loaded (``teacher_ckpt_strict=False``) or,
   failing that, with a random teacher, so that they still report what else is wrong;
2. **teacher accuracy** on ``num_batches`` validation batches: top-1 of the teacher's classifier (detection: its
   RoI head classifying the ground-truth boxes) against chance ``1 / K``, with a one-sided binomial test on the
   number of samples (:func:`accuracy_verdict`): FAIL only when the samples rule out a useful teacher and do not
   rule out a guessing one, WARN when they are too few to tell. A random teacher, or one trained on other classes
   or other inputs, is the most common cause of a distillation that does nothing;
3. **preprocessing**: the teacher receives the algorithm's (the student's) ``data_preprocessor``; its mean, std,
   channel order (``bgr_to_rgb``) and the validation image size are compared with the teacher's training config
   (stored in the teacher checkpoint's meta) and with the config's declared ``model.teacher.data_preprocessor``;
4. **class means** (ND, NC): every class, background included for detection, has a teacher mean (from the
   checkpoint, from ``ClassMeansHook(file=...)``, or, as a sample, from ``num_batches`` training batches);
5. **loss <name>**, one line per distillation loss: its value and the norm of its gradient on the student's
   weights at step 0, against the task loss's (the sum of the student's own losses), **at full weight**: a loss
   that ``ClsDistill(loss_warmup=...)`` scales down at step 0 (by ``1/E`` for a warm-up of ``E`` epochs) is
   measured at warm-up factor 1 (its step-0 gradient divided by the factor, which the line reports), since that
   is the weight it trains with once the warm-up is over. The algorithm's own non-finite stop
   (``finite_check_interval``) is off for this step, so that each non-finite loss gets its own line;
6. **RoI correspondence** (detection): the teacher's RoI head runs on exactly the student's RoIs in one training
   step (``mmkd.RoIDistill``; mmrazor's ``SingleTeacherDistill`` samples the teacher's own RoIs).

A check that cannot run is itself reported as a FAIL (``debug`` prints its traceback); a config whose model does
not build (for a reason other than its ``teacher_ckpt``) is one FAIL line ``build``. Nothing is written (no work
dir, no checkpoint, no class-means file). ``seed`` seeds the weights' initialisation, the data order (the
samplers) and the augmentation, so two runs with the same seed see the same batches.

The thresholds (``GRAD_RATIO_*``, ``WEAK_*``, ``CHANCE_ALPHA`` and the rule of :func:`accuracy_verdict`)
are [PROPOSAL]: rules of thumb of this tool, not from the papers.
"""
import contextlib
import inspect
import io
import math
import os.path as osp
import sys
import time
import traceback
from collections import namedtuple
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner, set_random_seed
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint
from mmengine.utils import import_modules_from_strings

from mmkd.engine.hooks import compute_class_means
from mmkd.models.utils.preprocessing import (compare_preprocessing, config_preprocessor, model_preprocessor,
                                             preprocessing_summary)
from mmkd.engine.hooks.distill_metrics_hook import (_eval_mode, gt_boxes_need_rescale, model_task, probe_outputs,
                                                    split_models)
from mmkd.models.utils.checkpoint import (DISTILL_PREFIXES, checkpoint_state_dict, describe_mismatch,
                                          state_dict_mismatch)
from mmkd.registry import MODELS as MMKD_MODELS

__all__ = ['OK', 'WARN', 'FAIL', 'CHECKS', 'Verdict', 'Diagnosis', 'accuracy_verdict', 'gradient_verdict',
           'preprocessing_summary', 'preprocessing_differences', 'pipeline_scale', 'load_config', 'line',
           'binomial_tails', 'summary_line']

OK, WARN, FAIL = 'OK', 'WARN', 'FAIL'
#: check name (``only``) -> (what a failure to run it is reported as, Diagnosis method), in the order they run
CHECKS = dict(weights=('teacher weights', 'check_teacher_weights'),
              accuracy=('teacher accuracy', 'check_teacher_accuracy'),
              preprocessing=('preprocessing', 'check_preprocessing'),
              class_means=('class means', 'check_class_means'),
              losses=('distillation losses', 'check_losses'))
Verdict = namedtuple('Verdict', 'level what why')

#: a distillation gradient (at full weight) this many times the task loss's at step 0 swamps the task (FAIL), or
#: may (WARN)
GRAD_RATIO_FAIL = 20.0
GRAD_RATIO_WARN = 5.0
#: below this fraction of the task gradient, a distillation loss hardly trains the student (WARN)
GRAD_RATIO_LOW = 0.01
#: a teacher above chance is weak (WARN) below this top-1, or less than WEAK_MARGIN of the way from chance to 1
WEAK_TEACHER = 0.5
WEAK_MARGIN = 0.1
#: significance level of both one-sided binomial tests of :func:`accuracy_verdict`
CHANCE_ALPHA = 0.05
#: the key of a step's loss dict that ``ClsDistill`` gives a distillation loss: ``distill.<name>``
_DISTILL = 'distill.'


def line(v: Verdict) -> str:
    return f'[{v.level}] {v.what} — {v.why}'


def summary_line(verdicts: Sequence[Verdict]) -> str:
    counts = {level: sum(v.level == level for v in verdicts) for level in (OK, WARN, FAIL)}
    return f'{counts[OK]} OK, {counts[WARN]} WARN, {counts[FAIL]} FAIL'


# ---------------------------------------------------------------------------------------------- verdict rules
def binomial_tails(k: int, n: int, p: float) -> Tuple[float, float]:
    """``(P(X >= k), P(X <= k))`` for ``X ~ Binomial(n, p)``."""
    from scipy.stats import binom  # scipy comes with mmdet
    return float(binom.sf(k - 1, n, p)), float(binom.cdf(k, n, p))


def accuracy_verdict(acc: Optional[float], n: int, num_classes: int, student_acc: Optional[float] = None,
                     unit: str = 'validation images', alpha: float = CHANCE_ALPHA) -> Verdict:
    """Teacher top-1 ``acc`` on ``n`` samples of ``num_classes`` classes against chance ``p0 = 1 / K``.

    With ``k = round(acc * n)`` correct, two one-sided binomial tests at level ``alpha`` [PROPOSAL]:

    * ``P(X >= k | n, p0)``, how often a guessing teacher would do this well: below ``alpha``, the teacher is
      above chance (then OK, or WARN if its top-1 is under :data:`WEAK_TEACHER` or less than
      :data:`WEAK_MARGIN` of the way from chance to 1: 52% on 2 classes may be above chance, but hardly teaches);
    * otherwise ``P(X <= k | n, p1)`` with ``p1 = (1 + p0) / 2``, midway between chance and a perfect teacher,
      how often a useful teacher would do this badly: below ``alpha``, the samples rule it out and the teacher is
      at chance (FAIL); else they are too few to tell (WARN: raise the number of batches).

    So 70% of 50 images on 2 classes is above chance (``P = 0.003``); 55% of 20 is not (``P = 0.41``), and a
    teacher of 75% would score that low with ``P = 0.04``: at chance; 60% of 10 is undecided.
    Two-class detection (``K = 1`` plus background) uses ``p0 = 1 / 2``.
    """
    what = 'teacher accuracy'
    if not n or acc is None:
        return Verdict(WARN, what, f'no labelled {unit} in the batches sampled; raise --num-batches.')
    chance = 1 / max(2, num_classes)
    useful = (1 + chance) / 2
    correct = int(round(acc * n))
    p_guess, p_useful = binomial_tails(correct, n, chance)[0], binomial_tails(correct, n, useful)[1]
    seen = f'top-1 {acc:.3f} ({correct} of {n} {unit}; chance {chance:.3f}' + \
        ('' if student_acc is None else f', the student now {student_acc:.3f}') + ')'
    if p_guess >= alpha and p_useful < alpha:
        return Verdict(FAIL, what, f'{seen}: the teacher is at chance level (a teacher guessing at random scores '
                       f'this well with probability {p_guess:.2g}; one with top-1 {useful:.2f} this badly with '
                       f'{p_useful:.2g}), so distillation transfers noise. Its weights are random (no or an '
                       'untrained teacher_ckpt), trained on other classes or another class order, or it receives '
                       'inputs it was not trained on (see preprocessing). Point model.teacher_ckpt at the teacher '
                       'trained on this dataset.')
    if p_guess >= alpha:
        return Verdict(WARN, what, f'{seen}: {n} samples cannot tell a teacher at chance from a useful one (a '
                       f'guessing teacher scores this well with probability {p_guess:.2g}, one with top-1 '
                       f'{useful:.2f} this badly with {p_useful:.2g}); raise --num-batches to decide.')
    if acc < WEAK_TEACHER or acc < chance + WEAK_MARGIN * (1 - chance):
        return Verdict(WARN, what, f'{seen}: above chance, but a weak teacher; a student rarely gains from a '
                       'teacher that is not clearly better than itself. Train the teacher longer, or check its '
                       'checkpoint.')
    return Verdict(OK, what, seen)


def gradient_verdict(name: str, value: float, grad: float, task_value: Optional[float],
                     task_grad: Optional[float], warmup: float = 1.0) -> Verdict:
    """A distillation loss's ``value`` and student-gradient norm ``grad`` at step 0 against the task loss's.

    ``warmup`` is the factor that scaled the loss in that step (``ClsDistill.warmup_factors()``; 1 without a
    warm-up). Loss and gradient are linear in it, so the verdict is on ``value / warmup`` and ``grad / warmup``:
    the loss at full weight, as it trains once the warm-up is over; the line reports the factor."""
    what = f'loss {name}'
    if not (warmup > 0 and math.isfinite(warmup)):
        raise ValueError(f'gradient_verdict: warm-up factor {warmup} of {name}; it must be > 0 and finite')
    value, grad = value / warmup, grad / warmup
    seen = f'value {value:.4g}, gradient norm {grad:.4g}'
    if warmup != 1:
        seen = (f'at full weight (its loss_warmup scales it by {warmup:.3g} at this step, to value '
                f'{value * warmup:.4g}, gradient norm {grad * warmup:.4g}; the ratios below are at full weight) '
                + seen)
    if not (math.isfinite(value) and math.isfinite(grad)):
        return Verdict(FAIL, what, f'{seen}: not finite at step 0, so training would stop at its first step. Check '
                       'its inputs (a zero-norm feature or class mean, logits of another shape), the student\'s '
                       'weights (--checkpoint) and the teacher\'s.')
    if grad == 0:
        return Verdict(FAIL, what, f'{seen}: no gradient reaches the student, so the loss trains nothing. Its '
                       'loss_forward_mappings must read a student tensor (from_student=True) that is not detached.')
    if not task_grad:
        return Verdict(WARN, what, f'{seen}; there is no task loss to compare with (calculate_student_loss=False '
                       'or a task loss without gradient).')
    if not math.isfinite(task_grad):
        return Verdict(WARN, what, f'{seen}; the task loss\'s gradient is not finite, so there is nothing to '
                       'compare with (see task loss).')
    ratio = grad / task_grad
    seen += (f' = {ratio:.3g}x the task loss\'s {task_grad:.4g} at step 0 (value {value / task_value:.3g}x '
             f'the task loss {task_value:.4g})' if task_value else f' = {ratio:.3g}x the task loss\'s')
    if ratio > GRAD_RATIO_FAIL:
        return Verdict(FAIL, what, f'{seen}: it swamps the task loss, and the student stops learning its own task. '
                       f'Lower its loss_weight about {ratio:.0f}x (to a gradient comparable to the task\'s).')
    if ratio > GRAD_RATIO_WARN:
        return Verdict(WARN, what, f'{seen}: it dominates the task loss; consider a loss_weight about '
                       f'{ratio:.0f}x lower unless this is what the method prescribes.')
    if ratio < GRAD_RATIO_LOW:
        return Verdict(WARN, what, f'{seen}: too small to change the student; raise its loss_weight about '
                       f'{GRAD_RATIO_LOW / ratio * 10:.0f}x.')
    return Verdict(OK, what, seen)


def preprocessing_differences(runtime: dict, teacher: dict) -> List[str]:
    """What differs between the normalisation fed to the teacher and the teacher's own (empty if they agree):
    :func:`~mmkd.models.utils.preprocessing.compare_preprocessing`, the algorithms' own rule."""
    return compare_preprocessing(runtime, teacher, labels=('fed to it', 'teacher'))


def pipeline_scale(pipeline: Optional[Sequence[dict]]):
    """``scale`` of the first resize transform of a pipeline config, as a tuple, or None."""
    for t in pipeline or []:
        if 'Resize' in str(t.get('type', '')) and t.get('scale') is not None:
            scale = t['scale']
            return tuple(scale) if isinstance(scale, (list, tuple)) else scale
    return None


# ---------------------------------------------------------------------------------------------- helpers
def load_config(path: str, options: Optional[dict] = None) -> Config:
    """``path`` with ``--cfg-options`` merged, its ``custom_imports`` imported and its default scope set."""
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg


def runtime_preprocessor(model_cfg: dict) -> Optional[dict]:
    """The data_preprocessor config that feeds the model (for an algorithm: its own, else the student's)."""
    return model_preprocessor(model_cfg)


def load_state(path: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """``(state_dict, meta)`` of a checkpoint file, loaded with mmkd's allow-list."""
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    meta = (ckpt.get('meta') or {}) if isinstance(ckpt, dict) else {}
    return checkpoint_state_dict(ckpt, path), meta


def grad_norm(loss: Any, params: List[torch.Tensor]) -> float:
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        return 0.0
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads if g is not None))


def loss_total(value: Any) -> torch.Tensor:
    return sum(value) if isinstance(value, (list, tuple)) else value


def class_names(dataset) -> List[str]:
    return list((getattr(dataset, 'metainfo', None) or {}).get('classes') or [])


def batch_fingerprint(batch: dict) -> Tuple[Tuple, int]:
    """``(sample ids, sum of the raw input values)`` of a dataloader batch: what tells two batches apart (the
    samples and their augmentation)."""
    ids = []
    for sample in batch.get('data_samples') or []:
        meta = getattr(sample, 'metainfo', {}) or {}
        ids.append(next((meta[k] for k in ('img_path', 'img_id', 'sample_idx') if meta.get(k) is not None), None))
    inputs = batch.get('inputs')
    tensors = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    return tuple(ids), sum(int(t.long().sum()) for t in tensors if torch.is_tensor(t))


# ---------------------------------------------------------------------------------------------- checks
class Diagnosis:
    """Runs the checks of the module docstring on one config; :attr:`verdicts` holds the results in order.

    Args:
        cfg: the config (:func:`load_config`).
        checkpoint: a checkpoint of ``cfg``'s model (student, teacher, class means), or None.
        num_batches: validation / training batches per check.
        device: ``'cpu'`` or ``'cuda'`` (default: cuda if available).
        debug: print the traceback of a check that cannot run.
        only: the checks to run (names of :data:`CHECKS`).
        seed: seed of the weights' initialisation, the samplers and the augmentation.
    """

    def __init__(self, cfg: Config, checkpoint: Optional[str], num_batches: int, device: Optional[str] = None,
                 debug: bool = False, only: Sequence[str] = tuple(CHECKS), seed: int = 0) -> None:
        if num_batches < 1:
            raise ValueError(f'num_batches must be >= 1, got {num_batches}')
        unknown = set(only) - set(CHECKS)
        if unknown:
            raise ValueError(f'unknown checks {sorted(unknown)}; choose among {list(CHECKS)}')
        self.cfg, self.checkpoint, self.num_batches, self.debug, self.seed = cfg, checkpoint, num_batches, debug, seed
        self.only = [name for name in CHECKS if name in only]
        self.device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        self.verdicts: List[Verdict] = []
        self.logger = MMLogger.get_current_instance()
        #: (loader, sample ids, input sum) of every batch the checks drew, in order (see :func:`batch_fingerprint`)
        self.batches_seen: List[Tuple[str, Tuple, int]] = []
        #: (the build error, how the model was built instead) when the algorithm refused ``teacher_ckpt``
        self.teacher_ckpt_error: Optional[Tuple[BaseException, str]] = None
        self.ckpt_state: Dict[str, torch.Tensor] = {}
        self.teacher_meta: dict = {}

    def add(self, v: Verdict) -> Verdict:
        self.verdicts.append(v)
        print(line(v), flush=True)
        return v

    def guarded(self, what: str, check) -> None:
        """Runs ``check()`` (which adds its verdicts); an exception becomes a FAIL line."""
        try:
            check()
        except Exception as e:  # a check that cannot run is itself a finding
            if self.debug:
                traceback.print_exc(file=sys.stderr)
            self.add(Verdict(FAIL, what, f'could not run: {type(e).__name__}: {e}'))

    def dataloader(self, name: str):
        """``cfg.<name>_dataloader`` built with :attr:`seed` (its sampler's shuffling; worker seeds), without
        pycocotools' prints."""
        with contextlib.redirect_stdout(io.StringIO()):
            return Runner.build_dataloader(self.cfg[f'{name}_dataloader'], seed=self.seed)

    def batches(self, loader, name: str, count: int):
        """The first ``count`` batches of ``loader``, recorded in :attr:`batches_seen`."""
        for i, batch in enumerate(loader):
            if i >= count:
                break
            self.batches_seen.append((name, *batch_fingerprint(batch)))
            yield batch

    def run(self) -> List[Verdict]:
        # a message hub of its own: epoch and iteration 0 (what loss_warmup reads), whatever ran before in-process
        MessageHub.get_instance(f'diagnose_distill_{time.time_ns()}')
        set_random_seed(self.seed)
        try:
            self.model = self._build_model()
            self.model.init_weights()
            if self.checkpoint:
                self.ckpt_state, _ = load_state(self.checkpoint)
                load_checkpoint(self.model, self.checkpoint, map_location='cpu', strict=False, logger='silent')
            self.model.to(self.device)
        except Exception as e:
            if self.debug:
                traceback.print_exc(file=sys.stderr)
            self.add(Verdict(FAIL, 'build', f'{type(e).__name__}: {e}'))
            return self.verdicts
        self.student, self.teacher = split_models(self.model)
        self.task = model_task(self.student)
        self.val_loader = self.dataloader('val')
        self.classes = class_names(self.val_loader.dataset)
        for name in self.only:
            what, method = CHECKS[name]
            self.guarded(what, getattr(self, method))
        return self.verdicts

    def _build_model(self):
        """The config's model. If the algorithm refuses its ``teacher_ckpt`` (it raises while built), the error
        is kept for the teacher-weights verdict and the model is built with only the checkpoint's matching weights
        loaded (``teacher_ckpt_strict=False``), else without the checkpoint, so that the other checks still run;
        an error that remains without the checkpoint is the config's own and is raised."""
        model_cfg = self.cfg.model
        try:
            return MODELS.build(self._model_cfg())
        except Exception as error:
            if not model_cfg.get('teacher_ckpt'):
                raise
            for change, how in ((dict(teacher_ckpt_strict=False), 'with only the matching weights of teacher_ckpt '
                                 'loaded (teacher_ckpt_strict=False)'),
                                (dict(teacher_ckpt=None), 'with a random teacher (without teacher_ckpt)')):
                try:
                    model = MODELS.build(self._model_cfg(**change))
                except Exception:
                    continue
                self.teacher_ckpt_error = (error, how)
                return model
            raise

    def _model_cfg(self, **change) -> dict:
        """``cfg.model`` with ``change``; without a teacher checkpoint, an algorithm that refuses to train a random
        teacher (``allow_random_teacher``) is told to allow it here: the teacher-weights verdict reports it, and
        the other checks still run."""
        model_cfg = {**self.cfg.model, **change}
        algorithm = model_cfg.get('type')
        for registry in (MMKD_MODELS, MODELS):
            if not isinstance(algorithm, str):
                break
            try:
                algorithm = registry.get(algorithm) or algorithm
            except Exception:  # an unknown type: the build reports it
                pass
        if not model_cfg.get('teacher_ckpt') and isinstance(algorithm, type) and any(
                'allow_random_teacher' in inspect.signature(cls.__init__).parameters
                for cls in algorithm.__mro__ if '__init__' in vars(cls)):
            model_cfg.setdefault('allow_random_teacher', True)
        return model_cfg

    # -------------------------------------------------------------------- 1. teacher weights
    def check_teacher_weights(self) -> None:
        what, cfg = 'teacher weights', self.cfg
        if self.teacher is None:
            self.add(Verdict(OK, what, 'n/a: a model without teacher (the student alone).'))
            return
        if self.teacher_ckpt_error is not None:  # also with --checkpoint: the config does not build without it
            error, how = self.teacher_ckpt_error
            built = 'loaded with --checkpoint' if self.checkpoint else f'built {how}'
            self.add(Verdict(FAIL, what, f'the algorithm refuses teacher_ckpt when it is built, so training would '
                             f'stop there: {type(error).__name__}: {error} (the other checks ran on the algorithm '
                             f'{built}.)'))
            return
        if self.checkpoint:
            self.add(self._checkpoint_teacher_verdict())
            return
        teacher_ckpt = cfg.model.get('teacher_ckpt')
        if not teacher_ckpt:
            self.add(Verdict(FAIL, what, 'no teacher_ckpt: the teacher is randomly initialised, and a random '
                             'teacher teaches noise. Train it first (tools/train.py <teacher config>) and pass '
                             '--cfg-options model.teacher_ckpt=PATH (or set teacher_ckpt in the config).'))
            return
        state, self.teacher_meta = load_state(teacher_ckpt)
        fresh = MMKD_MODELS.build(cfg.model.teacher).state_dict()  # unfused, as the checkpoint was loaded into it
        missing, _, mismatched = state_dict_mismatch(fresh, state)
        if missing or mismatched:
            hint = (' It is a distillation checkpoint: extract the model with '
                    'tools/model_converters/convert_kd_ckpt_to_student.py.'
                    if any(k.startswith(DISTILL_PREFIXES) for k in state) else '')
            self.add(Verdict(FAIL, what, f'{teacher_ckpt} does not fit model.teacher: '
                             f'{describe_mismatch(fresh, state, "model.teacher")} Those stay random (the algorithm '
                             'loads it only because of teacher_ckpt_strict=False). Use the checkpoint trained with '
                             f'the teacher config (same architecture and number of classes).{hint}'))
            return
        trained_on = list((self.teacher_meta.get('dataset_meta') or {}).get('classes') or [])
        if trained_on and self.classes and trained_on != self.classes:
            self.add(Verdict(FAIL, what, f'{teacher_ckpt} was trained on classes {trained_on} but the data has '
                             f'{self.classes}: its class indices mean other classes. Use a teacher trained on '
                             'this dataset (same classes, same order).'))
            return
        classes = f', trained on the same {len(trained_on)} classes' if trained_on else \
            ' (no class names in its meta to compare)'
        count = sum(not k.endswith('num_batches_tracked') for k in fresh)
        self.add(Verdict(OK, what, f'{teacher_ckpt}: all {count} weights found{classes}.'))

    def _checkpoint_teacher_verdict(self) -> Verdict:
        """Whether ``--checkpoint``'s ``teacher.*`` weights fit the teacher, folded (as built here) or not (a
        checkpoint written without ``teacher_fuse_conv_bn``, which the algorithm folds on load)."""
        what = 'teacher weights'
        given = {k[len('teacher.'):]: v for k, v in self.ckpt_state.items() if k.startswith('teacher.')}
        if not given:
            return Verdict(FAIL, what, f'--checkpoint {self.checkpoint} holds no teacher.* weights, so the teacher '
                           'stays random: pass a checkpoint of this distillation config (or the teacher\'s through '
                           '--cfg-options model.teacher_ckpt=PATH and no --checkpoint).')
        candidates = [self.teacher.state_dict()]
        if type(self.model).__name__ != 'SingleTeacherDistill':
            candidates.append(MMKD_MODELS.build(self.cfg.model.teacher).state_dict())
        results = [(state_dict_mismatch(expected, given), expected) for expected in candidates]
        for (missing, _, mismatched), _ in results:
            if not missing and not mismatched:
                return Verdict(OK, what, f'from --checkpoint {self.checkpoint}: all teacher weights found.')
        (missing, _, mismatched), expected = min(results, key=lambda r: len(r[0][0]) + len(r[0][2]))
        return Verdict(FAIL, what, f'--checkpoint {self.checkpoint} does not fit model.teacher: '
                       f'{describe_mismatch(expected, given, "model.teacher")} Those stay random. Pass a checkpoint '
                       'written by training this config.')

    # -------------------------------------------------------------------- 2. teacher accuracy
    def check_teacher_accuracy(self) -> None:
        if self.teacher is None:
            self.add(Verdict(OK, 'teacher accuracy', 'n/a: no teacher.'))
            return
        rescale = gt_boxes_need_rescale(self.val_loader.dataset)
        correct, total = dict(student=0, teacher=0), 0
        with torch.no_grad(), _eval_mode(self.model):
            for batch in self.batches(self.val_loader, 'val', self.num_batches):
                data = self.model.data_preprocessor(batch, False)
                for role, net in (('student', self.student), ('teacher', self.teacher)):
                    inputs = data['inputs']
                    if role == 'teacher' and hasattr(self.model, 'teacher_inputs'):
                        inputs = self.model.teacher_inputs(inputs)
                    _, logits, labels, _ = probe_outputs(net, inputs, data['data_samples'], rescale)
                    correct[role] += int((logits.argmax(1) == labels).sum())
                total += len(labels)
        num_classes = (self.teacher.roi_head.bbox_head.num_classes if self.task == 'det' else
                       self.teacher.head.num_classes)
        acc = {role: c / total if total else None for role, c in correct.items()}
        unit = 'ground-truth boxes of validation images' if self.task == 'det' else 'validation images'
        verdict = accuracy_verdict(acc['teacher'], total, num_classes, acc['student'], unit)
        if self.teacher_ckpt_error is not None and not self.checkpoint:
            verdict = verdict._replace(why=f'{verdict.why} (This teacher was built {self.teacher_ckpt_error[1]}, '
                                       'since the algorithm refuses teacher_ckpt: see teacher weights.)')
        self.add(verdict)

    # -------------------------------------------------------------------- 3. preprocessing
    def check_preprocessing(self) -> None:
        what, cfg = 'preprocessing', self.cfg
        if self.teacher is None:
            self.add(Verdict(OK, what, 'n/a: no teacher.'))
            return
        fed = preprocessing_summary(runtime_preprocessor(cfg.model))
        conversion = getattr(self.model, '_teacher_input_conversion', None)
        if conversion is not None:  # teacher_preprocessing='convert': the teacher gets this normalisation instead
            fed = conversion.target
        problems, warnings, compared = [], [], []
        declared = model_preprocessor(cfg.model.teacher)
        if declared is not None:
            compared.append('model.teacher.data_preprocessor')
            problems += [f'{d} [declared teacher config]' for d in
                         preprocessing_differences(fed, preprocessing_summary(declared))]
        trained = self._teacher_training_cfg()
        if trained is not None:
            compared.append('the teacher checkpoint\'s training config')
            problems += [f'{d} [teacher training config]' for d in
                         preprocessing_differences(fed, preprocessing_summary(config_preprocessor(trained)))]
            t_loader = trained.get('val_dataloader') or trained.get('test_dataloader') or {}
            t_scale = pipeline_scale((t_loader.get('dataset') or {}).get('pipeline'))
            s_scale = pipeline_scale((cfg.val_dataloader.get('dataset') or {}).get('pipeline'))
            if t_scale is not None and s_scale is not None and t_scale != s_scale:
                warnings.append(f'validation image size {s_scale} here vs {t_scale} in the teacher\'s training')
        if not compared:
            self.add(Verdict(WARN, what, 'nothing to compare with: model.teacher has no data_preprocessor and the '
                             'teacher checkpoint no training config; make sure the teacher was trained with the '
                             f'student\'s mean {fed["mean"]}, std {fed["std"]} and channel order.'))
        elif problems:
            self.add(Verdict(FAIL, what, 'the teacher is fed the algorithm\'s (student\'s) data_preprocessor, which '
                             'differs from its own: ' + '; '.join(problems) + '. It then sees inputs it was never '
                             'trained on. Give the student (model.architecture.data_preprocessor, or '
                             'model.data_preprocessor) the teacher\'s mean, std and bgr_to_rgb, or (mmkd\'s '
                             'algorithms) set model.teacher_preprocessing=\'convert\' (the default) to re-normalise '
                             'the batch for the teacher.'))
        elif warnings:
            self.add(Verdict(WARN, what, '; '.join(warnings) + ': the teacher runs at a scale it was not trained '
                             'for, which lowers its accuracy (see teacher accuracy); match the image sizes.'))
        else:
            converted = (' (the algorithm converts the batch to them: teacher_preprocessing=\'convert\', '
                         f'{conversion.text})' if conversion is not None else '')
            self.add(Verdict(OK, what, f'mean {fed["mean"]}, std {fed["std"]}, channel swap {fed["swap_channels"]} '
                             f'agree with {" and ".join(compared)}{converted}.'))

    def _teacher_training_cfg(self) -> Optional[Config]:
        text = self.teacher_meta.get('cfg')
        teacher_ckpt = self.cfg.model.get('teacher_ckpt')
        if not text and not self.teacher_meta and teacher_ckpt and osp.isfile(teacher_ckpt):
            self.teacher_meta = load_state(teacher_ckpt)[1]
            text = self.teacher_meta.get('cfg')
        if not text:
            return None
        try:
            return Config.fromstring(text, '.py')
        except Exception as e:  # an unparsable config text: compare with the declared config only
            self.logger.warning(f'diagnose_distill: the teacher checkpoint\'s config does not parse ({e}).')
            return None

    # -------------------------------------------------------------------- 4. class means
    def check_class_means(self) -> None:
        what = 'class means'
        means = getattr(self.model, 'class_means', None)
        if means is None:
            self.add(Verdict(OK, what, 'n/a: no loss reads teacher class means.'))
            return
        hook = self._class_means_hook()
        if hook is None and means.momentum is None:
            self.add(Verdict(FAIL, what, 'model.class_means is set but custom_hooks has no ClassMeansHook, so the '
                             'means are never filled and the first training step fails: add '
                             "dict(type='mmkd.ClassMeansHook') to custom_hooks."))
        source, final = self._fill_class_means()
        names = self.classes + ['background'] if self.task == 'det' else list(self.classes)
        missing = [names[i] if i < len(names) else str(i) for i in (~means.valid).nonzero().flatten().tolist()]
        k = means.num_classes
        if not missing:
            self.add(Verdict(OK, what, f'all {k} classes{" (background included)" if self.task == "det" else ""} '
                             f'have a teacher mean ({source}).'))
        elif final:
            self.add(Verdict(FAIL, what, f'no teacher mean for {missing} ({source}): ND and NC give the samples of '
                             'those classes no distillation signal. Recompute the means over the whole training set '
                             '(tools/analysis/compute_class_means.py, or ClassMeansHook without file) with a teacher '
                             'trained on every class.'))
        else:
            pass_len = 'one epoch' if hook is None or hook.get('max_iters') is None else \
                f'{hook["max_iters"]} batches'
            self.add(Verdict(WARN, what, f'{missing} not seen in the {source}; ClassMeansHook\'s own pass '
                             f'({pass_len}) must cover every class, or their samples get no ND/NC signal: check '
                             'that each class occurs in the training set (raise --num-batches to look further).'))

    def _class_means_hook(self) -> Optional[dict]:
        return next((h for h in self.cfg.get('custom_hooks') or [] if 'ClassMeansHook' in str(h.get('type'))), None)

    def _fill_class_means(self) -> Tuple[str, bool]:
        """Fills ``model.class_means`` as training would (checkpoint, else the hook's file, else a teacher pass over
        ``num_batches`` training batches) and returns ``(where they come from, whether that is what training
        uses)``; the first call does the work."""
        if getattr(self, '_means_source', None) is None:
            means, hook = self.model.class_means, self._class_means_hook()
            if means.initialized:
                self._means_source = (f'--checkpoint {self.checkpoint}', True)
            elif hook is not None and hook.get('file'):
                means.load(hook['file'])
                self._means_source = (f'ClassMeansHook file {hook["file"]}', True)
            else:
                with contextlib.redirect_stdout(io.StringIO()):
                    compute_class_means(self.model, self.cfg.train_dataloader, self.num_batches,
                                        SimpleNamespace(seed=self.seed, logger=self.logger), log_interval=10**9)
                self._means_source = (f'{self.num_batches} training batches sampled here', False)
        return self._means_source

    # -------------------------------------------------------------------- 5./6. losses, RoI correspondence
    def check_losses(self) -> None:
        model = self.model
        if self.teacher is None or not hasattr(model, 'distiller'):
            self.add(Verdict(OK, 'distillation losses', 'n/a: no distiller.'))
            return
        if getattr(model, 'class_means', None) is not None:
            self._fill_class_means()
        rois = {}

        def capture(role):
            def hook(module, args) -> None:  # returns None: the arguments are left as they are
                rois.setdefault(role, args[1].detach().clone())
            return hook

        handles = []
        if self.task == 'det':
            for role, net in (('student', self.student), ('teacher', self.teacher)):
                handles.append(net.roi_head.bbox_roi_extractor.register_forward_pre_hook(capture(role)))
        batch = next(self.batches(self.dataloader('train'), 'train', 1))
        model.train()
        # every non-finite loss gets its own verdict below, instead of the algorithm's stop at the first one
        finite_check = getattr(model, 'finite_check_interval', None)
        if finite_check is not None:
            model.finite_check_interval = 0
        try:
            data = model.data_preprocessor(batch, True)
            losses = model.loss(data['inputs'], data['data_samples'])
        finally:
            for h in handles:
                h.remove()
            if finite_check is not None:
                model.finite_check_interval = finite_check
        # the factor each warmed-up loss was scaled by in this step (same message hub as model.loss read)
        warmup = model.warmup_factors() if callable(getattr(model, 'warmup_factors', None)) else {}
        distill = {k[len(_DISTILL):]: loss_total(v) for k, v in losses.items()
                   if k.startswith(_DISTILL) and 'loss' in k}
        task_terms = [loss_total(v) for k, v in losses.items() if not k.startswith(_DISTILL) and 'loss' in k]
        task = sum(task_terms) if task_terms else None
        params = [p for p in self.student.parameters() if p.requires_grad]
        task_grad = grad_norm(task, params) if task is not None else None
        if task is not None and not (math.isfinite(task.item()) and math.isfinite(task_grad)):
            self.add(Verdict(FAIL, 'task loss', f'value {task.item():.4g}, gradient norm {task_grad:.4g}: the '
                             'student\'s own loss is not finite at step 0. Check the student\'s weights (--checkpoint) '
                             'and the data\'s labels and boxes.'))
        if not distill:
            self.add(Verdict(WARN, 'distillation losses', 'the distiller returned no loss (no distill_losses, or '
                             'distillation stopped): the student trains alone.'))
        for name, value in distill.items():
            self.add(gradient_verdict(name, value.item(), grad_norm(value, params),
                                      None if task is None else task.item(), task_grad, warmup.get(name, 1.0)))
        if self.task == 'det':
            self.add(self._roi_verdict(rois))

    @staticmethod
    def _roi_verdict(rois: dict) -> Verdict:
        what = 'RoI correspondence'
        s, t = rois.get('student'), rois.get('teacher')
        if t is None:
            return Verdict(OK, what, 'n/a: the teacher\'s RoI head did not run (no loss reads a teacher RoI tensor).')
        if s is not None and s.shape == t.shape and torch.equal(s, t):
            return Verdict(OK, what, f'the teacher\'s RoI head ran on the student\'s {len(s)} RoIs.')
        return Verdict(FAIL, what, f'the teacher\'s RoI head ran on {len(t)} RoIs of its own, not on the student\'s '
                       f'{0 if s is None else len(s)}: row i of a teacher RoI tensor is another box than row i of '
                       'the student\'s, so RoI losses compare unrelated boxes. Use type=\'mmkd.RoIDistill\', which '
                       'runs the teacher\'s RoI head on the student\'s RoIs (mmrazor\'s SingleTeacherDistill runs '
                       'the teacher\'s own RPN and sampling).')
