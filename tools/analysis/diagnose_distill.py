"""Diagnose a distillation config in a few batches, before hours of training are spent on it.

    python tools/analysis/diagnose_distill.py CONFIG [--checkpoint CKPT] [--num-batches 2] [--only CHECK ...] \
        [--device cpu|cuda] [--debug] [--cfg-options KEY=VALUE ...]

Checks the usual reasons why a distilled student does not beat the student trained alone, each printed as one
line ``[OK]``, ``[WARN]`` or ``[FAIL] <what> — <why, and the fix>``; the exit code is 1 if any check fails:

1. **teacher weights**: a ``teacher_ckpt`` is set, fits the teacher config (no weight missing or of another shape:
   another architecture or number of classes) and was trained on the dataset's classes, in the same order
   (``dataset_meta`` of the checkpoint);
2. **teacher accuracy** on ``--num-batches`` validation batches: top-1 of the teacher's classifier (detection:
   its RoI head classifying the ground-truth boxes, K+1-way) against chance. A random teacher, or one trained on
   other classes or other inputs, is the most common cause of a distillation that does nothing;
3. **preprocessing**: the teacher receives the algorithm's (the student's) ``data_preprocessor``; its mean, std,
   channel order (``bgr_to_rgb``) and the validation image size are compared with the teacher's training config
   (stored in the teacher checkpoint's meta) and with the config's declared ``model.teacher.data_preprocessor``;
4. **class means** (ND, NC): every class, background included for detection, has a teacher mean (from
   ``--checkpoint``, from ``ClassMeansHook(file=...)``, or, as a sample, from ``--num-batches`` training batches);
5. **loss <name>**, one line per distillation loss: its value and the norm of its gradient on the student's
   weights at step 0, against the task loss's (the sum of the student's own losses);
6. **RoI correspondence** (detection): the teacher's RoI head runs on exactly the student's RoIs in one training
   step (``mmkd.RoIDistill``; mmrazor's ``SingleTeacherDistill`` samples the teacher's own RoIs).

``--checkpoint`` is a checkpoint of CONFIG's model (e.g. ``iter_1000.pth`` of a distillation run): student,
teacher and class means are taken from it. ``--only`` runs some of the checks (``weights``, ``accuracy``,
``preprocessing``, ``class_means``, ``losses``; the last includes RoI correspondence). A check that cannot run
is itself reported as a FAIL (``--debug`` prints its traceback); a config whose model does not build is one FAIL
line ``build``. Nothing is written (no work dir, no checkpoint, no class-means file).

The thresholds (``GRAD_RATIO_*``, ``WEAK_TEACHER``, the chance rule of :func:`accuracy_verdict`) are
[PROPOSAL]: rules of thumb of this tool, not from the papers.
"""
import argparse
import contextlib
import io
import math
import os.path as osp
import sys
import traceback
from collections import namedtuple
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import mmkd  # noqa: E402,F401  (first: compatibility patches, registration)
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint  # noqa: E402
from mmengine.utils import import_modules_from_strings  # noqa: E402

from mmkd.engine.hooks import compute_class_means  # noqa: E402
from mmkd.engine.hooks.distill_metrics_hook import (_eval_mode, gt_boxes_need_rescale, model_task,  # noqa: E402
                                                    probe_outputs, split_models)
from mmkd.registry import MODELS as MMKD_MODELS  # noqa: E402

OK, WARN, FAIL = 'OK', 'WARN', 'FAIL'
#: --only name -> (what a failure to run it is reported as, Diagnosis method), in the order they run
CHECKS = dict(weights=('teacher weights', 'check_teacher_weights'),
              accuracy=('teacher accuracy', 'check_teacher_accuracy'),
              preprocessing=('preprocessing', 'check_preprocessing'),
              class_means=('class means', 'check_class_means'),
              losses=('distillation losses', 'check_losses'))
Verdict = namedtuple('Verdict', 'level what why')

#: a distillation gradient this many times the task loss's at step 0 swamps the task (FAIL), or may (WARN)
GRAD_RATIO_FAIL = 20.0
GRAD_RATIO_WARN = 5.0
#: below this fraction of the task gradient, a distillation loss hardly trains the student (WARN)
GRAD_RATIO_LOW = 0.01
#: a teacher below this top-1 is weak (WARN); at most max(chance * 2, midway between chance and 1) it FAILs
WEAK_TEACHER = 0.5


def line(v: Verdict) -> str:
    return f'[{v.level}] {v.what} — {v.why}'


# ---------------------------------------------------------------------------------------------- verdict rules
def accuracy_verdict(acc: Optional[float], n: int, num_classes: int, student_acc: Optional[float] = None,
                     unit: str = 'validation images') -> Verdict:
    """Teacher top-1 ``acc`` on ``n`` samples of ``num_classes`` classes against chance ``1 / num_classes``."""
    what = 'teacher accuracy'
    if not n or acc is None:
        return Verdict(WARN, what, f'no labelled {unit} in the batches sampled; raise --num-batches.')
    chance = 1 / num_classes
    fail_below = min(2 * chance, (1 + chance) / 2)
    seen = f'top-1 {acc:.3f} on {n} {unit} (chance {chance:.3f}' + \
        ('' if student_acc is None else f', the student now {student_acc:.3f}') + ')'
    if acc < fail_below:
        return Verdict(FAIL, what, f'{seen}: the teacher is at chance level, so distillation transfers noise. '
                       'Its weights are random (no or an untrained teacher_ckpt), trained on other classes or '
                       'another class order, or it receives inputs it was not trained on (see preprocessing). '
                       'Point model.teacher_ckpt at the teacher trained on this dataset.')
    if acc < WEAK_TEACHER:
        return Verdict(WARN, what, f'{seen}: a weak teacher; a student rarely gains from a teacher that is not '
                       'clearly better than itself. Train the teacher longer, or check its checkpoint.')
    return Verdict(OK, what, seen)


def gradient_verdict(name: str, value: float, grad: float, task_value: Optional[float],
                     task_grad: Optional[float]) -> Verdict:
    """A distillation loss's value and student-gradient norm at step 0 against the task loss's."""
    what = f'loss {name}'
    seen = f'value {value:.4g}, gradient norm {grad:.4g}'
    if not (math.isfinite(value) and math.isfinite(grad)):
        return Verdict(FAIL, what, f'{seen}: not finite at step 0. Check its inputs (a zero-norm feature or class '
                       'mean, logits of another shape) and the teacher weights.')
    if grad == 0:
        return Verdict(FAIL, what, f'{seen}: no gradient reaches the student, so the loss trains nothing. Its '
                       'loss_forward_mappings must read a student tensor (from_student=True) that is not detached.')
    if not task_grad:
        return Verdict(WARN, what, f'{seen}; there is no task loss to compare with (calculate_student_loss=False '
                       'or a task loss without gradient).')
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


def preprocessing_summary(dp: Optional[dict]) -> dict:
    """Mean, std (lists of floats or None) and whether the channels are swapped, of a data_preprocessor config."""
    dp = dict(dp or {})
    as_list = (lambda v: None if v is None else [float(x) for x in v])
    return dict(mean=as_list(dp.get('mean')), std=as_list(dp.get('std')),
                swap_channels=bool(dp.get('bgr_to_rgb') or dp.get('rgb_to_bgr')))


def preprocessing_differences(runtime: dict, teacher: dict) -> List[str]:
    """What differs between two :func:`preprocessing_summary` results (empty if they agree)."""
    diffs = []
    for key in ('mean', 'std'):
        a, b = runtime[key], teacher[key]
        same = (a is None and b is None) or (a is not None and b is not None and len(a) == len(b) and
                                             all(abs(x - y) <= 1e-3 * max(1.0, abs(y)) for x, y in zip(a, b)))
        if not same:
            diffs.append(f'{key} {a} (fed to it) vs {b} (teacher)')
    if runtime['swap_channels'] != teacher['swap_channels']:
        diffs.append(f'channel swap (bgr_to_rgb) {runtime["swap_channels"]} (fed to it) vs '
                     f'{teacher["swap_channels"]} (teacher): the colour channels arrive reversed')
    return diffs


def pipeline_scale(pipeline: Optional[Sequence[dict]]):
    """``scale`` of the first resize transform of a pipeline config, as a tuple, or None."""
    for t in pipeline or []:
        if 'Resize' in str(t.get('type', '')) and t.get('scale') is not None:
            scale = t['scale']
            return tuple(scale) if isinstance(scale, (list, tuple)) else scale
    return None


# ---------------------------------------------------------------------------------------------- helpers
def load_config(path: str, options: Optional[dict]) -> Config:
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg


def runtime_preprocessor(model_cfg: dict) -> Optional[dict]:
    """The data_preprocessor config that feeds the model (for an algorithm: its own, else the student's)."""
    if model_cfg.get('data_preprocessor') is not None:
        return model_cfg['data_preprocessor']
    return (model_cfg.get('architecture') or {}).get('data_preprocessor')


def load_state(path: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """``(state_dict, meta)`` of a checkpoint file, loaded with mmkd's allow-list."""
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    return state, (ckpt.get('meta') or {}) if isinstance(ckpt, dict) else {}


def grad_norm(loss, params: List[torch.Tensor]) -> float:
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        return 0.0
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads if g is not None))


def loss_total(value) -> torch.Tensor:
    return sum(value) if isinstance(value, (list, tuple)) else value


def quiet_dataloader(cfg: dict):
    """``Runner.build_dataloader`` without pycocotools' prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return Runner.build_dataloader(cfg, seed=0)


def class_names(dataset) -> List[str]:
    return list((getattr(dataset, 'metainfo', None) or {}).get('classes') or [])


# ---------------------------------------------------------------------------------------------- checks
class Diagnosis:
    """Runs the checks of the module docstring on one config; :attr:`verdicts` holds the results in order."""

    def __init__(self, cfg: Config, checkpoint: Optional[str], num_batches: int, device: Optional[str] = None,
                 debug: bool = False, only: Sequence[str] = tuple(CHECKS)) -> None:
        self.cfg, self.checkpoint, self.num_batches, self.debug = cfg, checkpoint, num_batches, debug
        self.only = [name for name in CHECKS if name in only]
        self.device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        self.verdicts: List[Verdict] = []
        self.logger = MMLogger.get_current_instance()

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

    def run(self) -> List[Verdict]:
        cfg = self.cfg
        try:
            self.model = MODELS.build(cfg.model)
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
        self.val_loader = quiet_dataloader(cfg.val_dataloader)
        self.classes = class_names(self.val_loader.dataset)
        self.teacher_meta = {}
        for name in self.only:
            what, method = CHECKS[name]
            self.guarded(what, getattr(self, method))
        return self.verdicts

    # -------------------------------------------------------------------- 1. teacher weights
    def check_teacher_weights(self) -> None:
        what, cfg = 'teacher weights', self.cfg
        if self.teacher is None:
            self.add(Verdict(OK, what, 'n/a: a model without teacher (the student alone).'))
            return
        if self.checkpoint:
            if not any(k.startswith('teacher.') for k in self.ckpt_state):
                self.add(Verdict(FAIL, what, f'--checkpoint {self.checkpoint} holds no teacher.* weights, so the '
                                 'teacher stays random: pass a checkpoint of this distillation config (or the '
                                 'teacher\'s through --cfg-options model.teacher_ckpt=PATH and no --checkpoint).'))
            else:
                self.add(Verdict(OK, what, f'from --checkpoint {self.checkpoint}.'))
            return
        teacher_ckpt = cfg.model.get('teacher_ckpt')
        if not teacher_ckpt:
            self.add(Verdict(FAIL, what, 'no teacher_ckpt: the teacher is randomly initialised, and a random '
                             'teacher teaches noise. Train it first (tools/train.py <teacher config>) and pass '
                             '--cfg-options model.teacher_ckpt=PATH (or set teacher_ckpt in the config).'))
            return
        state, self.teacher_meta = load_state(teacher_ckpt)
        fresh = MMKD_MODELS.build(cfg.model.teacher).state_dict()  # unfused, as the checkpoint was loaded into it
        missing = [k for k in fresh if k not in state]
        reshaped = [f'{k} {list(state[k].shape)} vs {list(fresh[k].shape)}' for k in fresh
                    if k in state and state[k].shape != fresh[k].shape]
        if missing or reshaped:
            hint = (' It looks like a distillation checkpoint: extract the model with '
                    'tools/model_converters/convert_kd_ckpt_to_student.py.'
                    if any(k.startswith(('architecture.', 'teacher.')) for k in state) else '')
            self.add(Verdict(FAIL, what, f'{teacher_ckpt} does not fit model.teacher: {len(missing)} of '
                             f'{len(fresh)} weights missing{" (e.g. " + missing[0] + ")" if missing else ""}, '
                             f'{len(reshaped)} of another shape{" (e.g. " + reshaped[0] + ")" if reshaped else ""}; '
                             'those stay random. Use the checkpoint trained with the teacher config (same '
                             f'architecture and number of classes).{hint}'))
            return
        trained_on = list((self.teacher_meta.get('dataset_meta') or {}).get('classes') or [])
        if trained_on and self.classes and trained_on != self.classes:
            self.add(Verdict(FAIL, what, f'{teacher_ckpt} was trained on classes {trained_on} but the data has '
                             f'{self.classes}: its class indices mean other classes. Use a teacher trained on '
                             'this dataset (same classes, same order).'))
            return
        classes = f', trained on the same {len(trained_on)} classes' if trained_on else \
            ' (no class names in its meta to compare)'
        self.add(Verdict(OK, what, f'{teacher_ckpt}: all {len(fresh)} weights found{classes}.'))

    # -------------------------------------------------------------------- 2. teacher accuracy
    def check_teacher_accuracy(self) -> None:
        if self.teacher is None:
            self.add(Verdict(OK, 'teacher accuracy', 'n/a: no teacher.'))
            return
        rescale = gt_boxes_need_rescale(self.val_loader.dataset)
        correct, total = dict(student=0, teacher=0), 0
        with torch.no_grad(), _eval_mode(self.model):
            for i, batch in enumerate(self.val_loader):
                if i >= self.num_batches:
                    break
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
        self.add(accuracy_verdict(acc['teacher'], total, num_classes, acc['student'], unit))

    # -------------------------------------------------------------------- 3. preprocessing
    def check_preprocessing(self) -> None:
        what, cfg = 'preprocessing', self.cfg
        if self.teacher is None:
            self.add(Verdict(OK, what, 'n/a: no teacher.'))
            return
        fed = preprocessing_summary(runtime_preprocessor(cfg.model))
        problems, warnings, compared = [], [], []
        declared = cfg.model.teacher.get('data_preprocessor')
        if declared is not None:
            compared.append('model.teacher.data_preprocessor')
            problems += [f'{d} [declared teacher config]' for d in
                         preprocessing_differences(fed, preprocessing_summary(declared))]
        trained = self._teacher_training_cfg()
        if trained is not None:
            compared.append('the teacher checkpoint\'s training config')
            t_model = trained.model.get('architecture', trained.model)
            problems += [f'{d} [teacher training config]' for d in
                         preprocessing_differences(fed, preprocessing_summary(t_model.get('data_preprocessor')))]
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
                             'model.data_preprocessor) the teacher\'s mean, std and bgr_to_rgb.'))
        elif warnings:
            self.add(Verdict(WARN, what, '; '.join(warnings) + ': the teacher runs at a scale it was not trained '
                             'for, which lowers its accuracy (see teacher accuracy); match the image sizes.'))
        else:
            self.add(Verdict(OK, what, f'mean {fed["mean"]}, std {fed["std"]}, channel swap {fed["swap_channels"]} '
                             f'agree with {" and ".join(compared)}.'))

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
                                        SimpleNamespace(seed=0, logger=self.logger), log_interval=10**9)
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
        train_loader = quiet_dataloader(self.cfg.train_dataloader)
        model.train()
        try:
            data = model.data_preprocessor(next(iter(train_loader)), True)
            losses = model.loss(data['inputs'], data['data_samples'])
        finally:
            for h in handles:
                h.remove()
        distill = {k[len('distill.'):]: loss_total(v) for k, v in losses.items()
                   if k.startswith('distill.') and 'loss' in k}
        task_terms = [loss_total(v) for k, v in losses.items() if not k.startswith('distill.') and 'loss' in k]
        task = sum(task_terms) if task_terms else None
        params = [p for p in self.student.parameters() if p.requires_grad]
        task_grad = grad_norm(task, params) if task is not None else None
        if not distill:
            self.add(Verdict(WARN, 'distillation losses', 'the distiller returned no loss (no distill_losses, or '
                             'distillation stopped): the student trains alone.'))
        for name, value in distill.items():
            self.add(gradient_verdict(name, value.item(), grad_norm(value, params),
                                      None if task is None else task.item(), task_grad))
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='a distillation (or student) config')
    parser.add_argument('--checkpoint', help='a checkpoint of CONFIG\'s model (student, teacher, class means)')
    parser.add_argument('--num-batches', type=int, default=2, help='validation / training batches per check')
    parser.add_argument('--device', help='cpu or cuda (default: cuda if available)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--debug', action='store_true', help='print the traceback of a check that cannot run')
    parser.add_argument('--only', nargs='+', choices=list(CHECKS), default=list(CHECKS), metavar='CHECK',
                        help=f'run only these checks, among {list(CHECKS)} (losses includes RoI correspondence)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    args = parser.parse_args(argv)
    if args.num_batches < 1:
        parser.error('--num-batches must be >= 1')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'--checkpoint {args.checkpoint} does not exist')
    return args


def main(argv=None) -> int:
    """Prints the verdicts; returns the exit code (1 if any FAIL)."""
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    # only warnings from mmengine (init_weights otherwise prints every parameter): the verdicts are the output
    if not MMLogger.check_instance_created('diagnose_distill'):
        MMLogger.get_instance('diagnose_distill', log_level='WARNING')
    cfg = load_config(args.config, args.cfg_options)
    verdicts = Diagnosis(cfg, args.checkpoint, args.num_batches, args.device, args.debug, args.only).run()
    counts = {level: sum(v.level == level for v in verdicts) for level in (OK, WARN, FAIL)}
    print(f'{counts[OK]} OK, {counts[WARN]} WARN, {counts[FAIL]} FAIL', flush=True)
    return 1 if counts[FAIL] else 0


if __name__ == '__main__':
    sys.exit(main())
