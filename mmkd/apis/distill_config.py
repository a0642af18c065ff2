"""The distillation config of a teacher detector config, a student detector config and a method: what
``tools/distill.py`` writes, checks and trains (docs/distill.md).

The written config inherits the two configs instead of copying them: the student config is its first ``_base_``
(its data, schedule and runtime are the run's), the method's settings come from the shared file of its detector kind
(``configs/_base_/distill/roi_losses.py`` for two-stage detectors) as a second ``_base_``, and the teacher is
``dict(cfg_path='pkg::path.py', pretrained=False)`` for a package config (mmrazor builds it with
``mmengine.hub.get_model``) or the ``model`` of a local teacher config file, loaded with ``Config.fromfile``
(mmrazor's ``cfg_path`` takes package configs only).

The detector kind picks the algorithm: a ``TwoStageDetector`` whose ``roi_head`` is a ``StandardRoIHead``
(Faster R-CNN, Mask R-CNN) -> ``mmkd.RoIDistill``; a ``SingleStageDetector`` (dense head) -> ``mmkd.DenseDistill``.
Every method is a row of :data:`METHODS` (:func:`register_method`), so a new kind or method plugs in without
touching the rest.

Before anything is built, :func:`make_distill_config` refuses (:class:`DistillConfigError`, whose message says the
fix): a teacher checkpoint that does not exist, a method the detector kind does not have, detectors of different
kinds or class counts, a teacher trained with another input normalisation than the student's
(:func:`~mmkd.models.utils.preprocessing.compare_preprocessing`; unless ``teacher_preprocessing`` says what to do),
and a pair the method cannot connect (RoI features of different widths for a loss that reads the student's, FPNs of
different levels for ReviewKD).
"""
import importlib.util
import os
import os.path as osp
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from mmengine.config import Config

from mmkd.models.utils.preprocessing import (TEACHER_PREPROCESSING_MODES, checkpoint_preprocessor,
                                             compare_preprocessing, describe_preprocessing, model_preprocessor,
                                             package_config)

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))
_REMOTE = ('http://', 'https://', 's3://', 'open-mmlab://', 'torchvision://', 'modelzoo://')


class DistillConfigError(ValueError):
    """A teacher / student pair, method or checkpoint that ``tools/distill.py`` refuses before building anything;
    the message names the problem and the fix."""


@dataclass(frozen=True)
class Kind:
    """A detector kind: which detectors it covers and the mmkd algorithm that distils them."""
    name: str
    algorithm: str
    detectors: str


@dataclass(frozen=True)
class Method:
    """A distillation method of one detector kind: the distiller settings it uses are the variable ``distiller`` of
    the shared config ``base`` (path relative to the repository's ``configs/`` folder); nothing is copied."""
    name: str
    kind: str
    base: str
    distiller: str
    summary: str
    aliases: Tuple[str, ...] = ()


KINDS: Dict[str, Kind] = {}
#: kind -> method name (and each alias) -> Method
METHODS: Dict[str, Dict[str, Method]] = {}


def register_kind(kind: Kind) -> None:
    KINDS[kind.name] = kind
    METHODS.setdefault(kind.name, {})


def register_method(method: Method) -> None:
    """Add a method (and its aliases) to its detector kind."""
    if method.kind not in KINDS:
        raise KeyError(f'unknown detector kind {method.kind!r}; known: {sorted(KINDS)}')
    for name in (method.name, ) + method.aliases:
        METHODS[method.kind][name] = method


register_kind(Kind('two-stage', 'RoIDistill',
                   'TwoStageDetector with a StandardRoIHead (Faster R-CNN, Mask R-CNN): the teacher\'s RoI head runs '
                   'on the student\'s RoIs'))
register_kind(Kind('dense', 'DenseDistill', 'SingleStageDetector with a dense head (RetinaNet, GFL, ATSS, FCOS, '
                   'RTMDet)'))

_ROI = '_base_/distill/roi_losses.py'
for _m in (
        Method('kd', 'two-stage', _ROI, 'kd_distiller', 'KD on the RoI class logits (T = 1)'),
        Method('nd', 'two-stage', _ROI, 'kdpp_distiller',
               'KD++ (ND paper): ND on the RoI feature (teacher class means) + KD on the RoI logits', ('kdpp', )),
        Method('nc', 'two-stage', _ROI, 'nc_distiller',
               '[PROPOSAL] NC-inspired: NC1 contrast/alignment and NC2 on the RoI feature + KD'),
        Method('icd', 'two-stage', _ROI, 'icd_distiller', '[PROPOSAL] iCD on the RoI logits, grouped by image, + KD'),
        Method('reviewkd', 'two-stage', _ROI, 'reviewkd_distiller',
               'ReviewKD: HCL on the FPN levels through the ABF connector'),
        Method('reviewkdpp', 'two-stage', _ROI, 'reviewkdpp_distiller',
               'ReviewKD++ (ND paper): ReviewKD on the FPN + ND on the RoI feature'),
):
    register_method(_m)
del _m
# Dense (one-stage) methods register here, with the shared settings file of the dense methods as their ``base``:
#   register_method(Method('<name>', 'dense', '_base_/distill/<dense settings>.py', '<variable>', '<summary>'))


def list_methods() -> str:
    """The methods of every detector kind, one line each (``tools/distill.py --method list``)."""
    lines = []
    for kind in KINDS.values():
        lines.append(f'{kind.name} detectors -> mmkd.{kind.algorithm}: {kind.detectors}')
        seen = []
        for method in METHODS[kind.name].values():
            if method not in seen:
                seen.append(method)
                alias = f' (alias {", ".join(method.aliases)})' if method.aliases else ''
                lines.append(f'  {method.name:<12}{method.summary}{alias}  [{method.base}: {method.distiller}]')
        if not seen:
            lines.append('  (none yet)')
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------- configs
def configs_root() -> str:
    """The repository's ``configs/`` folder (``mmkd/.mim/configs/configs`` in an installed package)."""
    for path in (osp.join(osp.dirname(_PACKAGE), 'configs'), osp.join(_PACKAGE, '.mim', 'configs', 'configs')):
        if osp.isdir(path):
            return path
    raise FileNotFoundError('mmkd\'s configs/ folder is not found (neither the checkout\'s nor mmkd/.mim\'s); '
                            'reinstall mmkd (pip install -e .).')


def method_base_ref(rel: str) -> str:
    """How the written config names a shared method file: ``mmkd::configs/<rel>`` where mmengine resolves it
    (mmkd installed with its ``.mim`` folder), else its absolute path."""
    if osp.isfile(osp.join(_PACKAGE, '.mim', 'configs', 'configs', rel)):
        return f'mmkd::configs/{rel}'
    return osp.join(configs_root(), rel)


def load_config(name: str) -> Config:
    """A config file, or a package config ``pkg::path.py`` (e.g. ``mmdet::faster_rcnn/...``)."""
    if '::' in name:
        package = name.split('::')[0]
        if importlib.util.find_spec(package) is None:
            raise DistillConfigError(f'{name}: the package {package!r} is not installed; install it or pass a '
                                     f'config file.')
        try:
            return package_config(name)
        except (AssertionError, FileNotFoundError, ValueError) as err:
            raise DistillConfigError(f'{name}: no such package config ({err}). Write it as in a _base_, e.g. '
                                     f'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py.') from err
    if not osp.isfile(name):
        raise DistillConfigError(f'Config {name!r} does not exist. Pass a config file or a package config such as '
                                 f'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py.')
    return Config.fromfile(name)


def _base_ref(name: str) -> str:
    return name if '::' in name else osp.abspath(name)


def _stem(name: str) -> str:
    return osp.splitext(osp.basename(name.split('::')[-1]))[0]


# ---------------------------------------------------------------------------------------------------- detectors
def _model_class(model: dict, scope: str):
    from mmengine.registry import MODELS
    with MODELS.switch_scope_and_registry(model.get('_scope_', scope)) as registry:
        return registry.get(model.get('type')), registry


def detector_kind(model: dict, scope: str = 'mmdet') -> str:
    """``'two-stage'`` or ``'dense'`` (see :data:`KINDS`) from a detector's model config, without building it;
    refuses a model mmkd cannot distil."""
    from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
    from mmdet.models.roi_heads import StandardRoIHead
    cls, registry = _model_class(model, scope)
    if cls is None:
        raise DistillConfigError(f'model type {model.get("type")!r} is not registered in the {scope!r} scope: is the '
                                 f'package that defines it imported (custom_imports)?')
    if issubclass(cls, TwoStageDetector):
        head = registry.get((model.get('roi_head') or {}).get('type', ''))
        if head is None or not issubclass(head, StandardRoIHead):
            raise DistillConfigError(
                f'{cls.__name__} has a {(model.get("roi_head") or {}).get("type")} RoI head; mmkd.RoIDistill '
                f'distils two-stage detectors with a StandardRoIHead (one bbox head: Faster R-CNN, Mask R-CNN), not '
                f'cascades. Use a StandardRoIHead detector as teacher and student.')
        return 'two-stage'
    if issubclass(cls, SingleStageDetector):
        return 'dense'
    raise DistillConfigError(f'{cls.__name__} is neither a two-stage detector with a StandardRoIHead nor a '
                             f'single-stage (dense) detector: mmkd has no distillation algorithm for it.')


def num_classes(model: dict, kind: str) -> Any:
    head = ((model.get('roi_head') or {}).get('bbox_head') if kind == 'two-stage' else model.get('bbox_head')) or {}
    return head.get('num_classes')


def _roi_feat_width(model: dict) -> Any:
    head = (model.get('roi_head') or {}).get('bbox_head') or {}
    return head.get('fc_out_channels', 1024)  # Shared2FCBBoxHead's default


def _fpn(model: dict) -> Tuple[Any, Any, Any]:
    """``(out_channels, num_outs, start_level)`` of a model's neck."""
    neck = model.get('neck') or {}
    if isinstance(neck, (list, tuple)):
        neck = neck[-1] if neck else {}
    return neck.get('out_channels'), neck.get('num_outs'), neck.get('start_level', 0)


# ---------------------------------------------------------------------------------------------------- method
def resolve_method(kind: str, name: str) -> Method:
    methods = METHODS.get(kind, {})
    if name not in methods:
        known = ', '.join(sorted({m.name for m in methods.values()})) or 'none yet'
        raise DistillConfigError(f'Method {name!r} is not one mmkd has for {kind} detectors (mmkd.'
                                 f'{KINDS[kind].algorithm}); its methods: {known}. See tools/distill.py --method list.')
    return methods[name]


def method_settings(method: Method) -> dict:
    """The method's distiller config, read from its shared settings file."""
    return Config.fromfile(osp.join(configs_root(), method.base))[method.distiller].to_dict()


def method_needs(distiller: dict) -> Dict[str, bool]:
    """What a distiller config needs from the algorithm and the pair: ``class_means`` (a loss reads the teacher's
    class means), ``student_roi_feat`` (a loss reads the student's RoI feature, so its width must be the
    teacher's), ``abf`` (ReviewKD's ABF connector pairs the FPN levels)."""
    from mmkd.registry import MODELS
    losses = [MODELS.get(loss['type']) for loss in (distiller.get('distill_losses') or {}).values()]
    mappings = [rec for mapping in (distiller.get('loss_forward_mappings') or {}).values()
                for rec in mapping.values()]
    return dict(
        class_means=any(hasattr(cls, 'bind_class_means') for cls in losses if cls is not None),
        student_roi_feat=any(r.get('recorder') == 'roi_feat' and r.get('from_student') and not r.get('connector')
                             for r in mappings),
        abf=any(str(c.get('type', '')).endswith('ABFConnector') for c in
                (distiller.get('connectors') or {}).values() if isinstance(c, dict)))


# ---------------------------------------------------------------------------------------------------- checks
def check_checkpoint(path: Optional[str]) -> None:
    if not path:
        raise DistillConfigError('--teacher-ckpt is required: the trained teacher\'s checkpoint (train the teacher '
                                 'with tools/train.py <teacher config>, or download its model-zoo weights).')
    if not path.startswith(_REMOTE) and not osp.isfile(path):
        raise DistillConfigError(f'Teacher checkpoint {path!r} does not exist. Train the teacher first '
                                 f'(tools/train.py <teacher config>) or download its weights, and pass that file.')


def checkpoint_meta_preprocessor(path: str) -> Optional[Tuple[Any, str]]:
    """The normalisation a local teacher checkpoint's stored training config states (memory-mapped: its weights
    are not read), or None."""
    if path.startswith(_REMOTE):
        return None
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception:  # not a zip checkpoint, or an object the allow-list refuses: the algorithm says so later
        return None
    return checkpoint_preprocessor(checkpoint)


def check_pair(teacher: dict, student: dict, fed: Any, kind: str, method: Method, needs: Dict[str, bool],
               trained: Optional[Tuple[Any, str]] = None, teacher_preprocessing: Optional[str] = None,
               names: Tuple[str, str] = ('teacher', 'student')) -> None:
    """Refuse a pair the method cannot distil (see the module docstring). ``teacher`` / ``student``: model
    configs; ``fed``: the normalisation the algorithm gives the batch (the student's); ``trained``: the teacher
    checkpoint's own (:func:`checkpoint_meta_preprocessor`)."""
    t_classes, s_classes = num_classes(teacher, kind), num_classes(student, kind)
    if t_classes != s_classes:
        head = 'roi_head.bbox_head' if kind == 'two-stage' else 'bbox_head'
        raise DistillConfigError(
            f'The teacher detects {t_classes} classes ({names[0]}) but the student {s_classes} ({names[1]}): '
            f'distillation compares the two class by class. Use a teacher trained on the student\'s classes, or set '
            f'the student\'s model.{head}.num_classes={t_classes} (and its dataset\'s classes) in its config '
            f'(--cfg-options model.architecture.{head}.num_classes={t_classes} changes only this run).')
    declared = model_preprocessor(teacher)
    sources = ([(trained[0], f'the teacher checkpoint\'s training config')] if trained else []) + \
        ([(declared, f'the teacher config {names[0]}')] if declared is not None else [])
    if fed is not None and sources and teacher_preprocessing is None:
        t_pp, where = sources[0]
        diffs = compare_preprocessing(fed, t_pp, labels=('student', 'teacher'))
        if diffs:
            raise DistillConfigError(
                f'The teacher was trained with {describe_preprocessing(t_pp)} ({where}), the student normalises '
                f'its inputs with {describe_preprocessing(fed)} ({names[1]}): ' + '; '.join(diffs) + '. The '
                f'algorithm feeds the teacher the student\'s batch, so it would see inputs it was never trained on. '
                f'Fix: pass --teacher-preprocessing convert (the teacher gets its own normalisation of the same '
                f'pixels, an exact per-channel affine map; written into the config as teacher_preprocessing), or give '
                f'the student config the teacher\'s data_preprocessor mean, std and bgr_to_rgb; '
                f'--teacher-preprocessing ignore feeds the teacher the student\'s inputs anyway.')
    if needs['student_roi_feat'] and _roi_feat_width(teacher) != _roi_feat_width(student):
        raise DistillConfigError(
            f'{method.name} compares the student\'s RoI feature with the teacher\'s, but they are '
            f'{_roi_feat_width(student)}-d (student) and {_roi_feat_width(teacher)}-d (teacher). Set the student\'s '
            f'roi_head.bbox_head.fc_out_channels={_roi_feat_width(teacher)}, or choose a method that reads only '
            f'the RoI logits (kd, icd), or write the config by hand with an mmkd.EmbeddingProjector connector on the '
            f'student\'s roi_feat (see mmkd.RoIDistill).')
    if needs['abf']:
        (t_c, t_n, t_s), (s_c, s_n, s_s) = _fpn(teacher), _fpn(student)
        if None in (t_n, s_n) or (t_n, t_s) != (s_n, s_s):
            raise DistillConfigError(
                f'{method.name} pairs the student\'s FPN levels with the teacher\'s one by one, but the student\'s '
                f'neck has num_outs={s_n}, start_level={s_s} and the teacher\'s num_outs={t_n}, start_level={t_s}. '
                f'Give the student\'s neck the teacher\'s num_outs and start_level (same strides), or choose a '
                f'method on the RoI head (kd, nd, nc, icd).')


# ---------------------------------------------------------------------------------------------------- writing
@dataclass
class DistillConfig:
    """A written distillation config: its file, the work dir to train in, and what it was made of."""
    path: str
    work_dir: str
    kind: str
    method: Method
    algorithm: str
    text: str


def _teacher_lines(teacher_config: str, t_cfg: Config) -> List[str]:
    if '::' in teacher_config:
        return ['# the teacher config\'s model, built by mmrazor (mmengine.hub.get_model; its weights: teacher_ckpt)',
                f'teacher = dict(cfg_path={teacher_config!r}, pretrained=False)']
    lines = ['# the teacher config\'s model (mmrazor\'s cfg_path takes package configs only, not files)',
             'from mmengine.config import Config  # noqa: E402',
             f'teacher = Config.fromfile({osp.abspath(teacher_config)!r}).model',
             'del Config']
    if '_scope_' not in t_cfg.model:
        lines.append(f'teacher[\'_scope_\'] = {t_cfg.get("default_scope", "mmdet")!r}')
    return lines


def render(teacher_config: str, student_config: str, teacher_ckpt: str, kind: Kind, method: Method,
           t_cfg: Config, s_cfg: Config, needs: Dict[str, bool], teacher_preprocessing: Optional[str]) -> str:
    """The text of the distillation config (see the module docstring)."""
    base = method_base_ref(method.base)
    lines = [
        f'# Written by tools/distill.py (docs/distill.md): mmkd.{kind.algorithm} ({kind.name} detectors), method '
        f'{method.name}:',
        f'#   {method.summary}.',
        f'# Teacher: {teacher_config}, weights {teacher_ckpt}.',
        f'# Student: {student_config}, the first base: its data, schedule and runtime are this run\'s. The method\'s',
        f'# settings: {method.distiller} of the second base. Train it again: tools/train.py <this file>.',
        f'_base_ = [{_base_ref(student_config)!r}, {base!r}]',
        '',
    ]
    imports = (s_cfg.get('custom_imports') or {}).get('imports') or []
    if 'mmkd' not in imports:
        lines.append(f'custom_imports = dict(imports={list(imports) + ["mmkd"]!r}, allow_failed_imports=False)')
    lines += _teacher_lines(teacher_config, t_cfg)
    # a model inherited from a package config gets that package's _scope_; a local config's may have none
    student = '_base_.model' if '_scope_' in s_cfg.model or '::' in student_config else \
        f'dict(_base_.model, _scope_={s_cfg.get("default_scope", "mmdet")!r})'
    items = [("_delete_", 'True'), ('_scope_', "'mmkd'"), ('type', repr(kind.algorithm)), ('architecture', student),
             ('teacher', 'teacher'), ('teacher_ckpt', repr(teacher_ckpt)),
             ('distiller', f'_base_.{method.distiller}')]
    if needs['class_means']:
        items.append(('class_means', '_base_.class_means'))
    if teacher_preprocessing is not None:
        items.append(('teacher_preprocessing', repr(teacher_preprocessing)))
    lines.append('model = dict(\n' + ',\n'.join(f'    {k}={v}' for k, v in items) + ')')
    if needs['abf']:
        (t_c, t_n, _), (s_c, _, _) = _fpn(t_cfg.model), _fpn(s_cfg.model)
        name, abf = next((k, v) for k, v in method_settings(method)['connectors'].items()
                         if str(v.get('type', '')).endswith('ABFConnector'))
        change = {k: v for k, v in dict(in_channels=s_c, out_channels=t_c, mid_channels=t_c, num_levels=t_n).items()
                  if v is not None and abf.get(k) != v}
        if change:
            args = ', '.join(f'{k}={v!r}' for k, v in change.items())
            lines.append(f'# ABF maps the student\'s {s_c}-channel FPN levels to the teacher\'s {t_c} (the shared '
                         f'settings: {abf.get("in_channels")} channels, {abf.get("num_levels")} levels)')
            lines.append(f'model[\'distiller\'][\'connectors\'][{name!r}].update({args})')
    if needs['class_means']:
        hook = "dict(type='mmkd.ClassMeansHook')"
        hooks = f'_base_.custom_hooks + [{hook}]' if s_cfg.get('custom_hooks') else f'[{hook}]'
        lines += ['# the teacher\'s class means, one pass before training', f'custom_hooks = {hooks}']
    return '\n'.join(lines) + '\n'


def _write_atomic(path: str, text: str) -> None:
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(path) or '.', suffix='.py')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def make_distill_config(teacher_config: str, student_config: str, teacher_ckpt: Optional[str], method: str,
                        work_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
                        teacher_preprocessing: Optional[str] = None) -> Tuple[DistillConfig, Config]:
    """Check the pair and write its distillation config; returns it and the loaded config (``cfg_options``
    merged). Raises :class:`DistillConfigError` before writing anything if the pair, method or checkpoint is refused
    (nothing is built either way: see :func:`build_model` for that)."""
    if teacher_preprocessing is not None and teacher_preprocessing not in TEACHER_PREPROCESSING_MODES:
        raise DistillConfigError(f'--teacher-preprocessing must be one of {TEACHER_PREPROCESSING_MODES}')
    check_checkpoint(teacher_ckpt)
    t_cfg, s_cfg = load_config(teacher_config), load_config(student_config)
    scopes = [c.get('default_scope', 'mmdet') for c in (t_cfg, s_cfg)]
    kinds = [detector_kind(c.model, s) for c, s in zip((t_cfg, s_cfg), scopes)]
    if kinds[0] != kinds[1]:
        raise DistillConfigError(f'The teacher is a {kinds[0]} detector and the student a {kinds[1]} one: mmkd '
                                 f'distils within one kind (teacher and student both two-stage, or both dense).')
    kind = KINDS[kinds[0]]
    chosen = resolve_method(kind.name, method)
    needs = method_needs(method_settings(chosen))
    text = render(teacher_config, student_config, teacher_ckpt, kind, chosen, t_cfg, s_cfg, needs,
                  teacher_preprocessing)
    name = f'{chosen.name}_{_stem(teacher_config)}_to_{_stem(student_config)}'
    work_dir = work_dir or osp.join('work_dirs', name)
    # Load what was written (a scratch copy first: a refused pair leaves nothing behind), options merged, and
    # check the pair as the algorithm will get it.
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = osp.join(scratch, f'{name}.py')
        _write_atomic(scratch_path, text)
        cfg = Config.fromfile(scratch_path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    student = cfg.model.architecture
    teacher = cfg.model.teacher
    if teacher.get('cfg_path') and not teacher.get('type'):
        teacher = load_config(teacher['cfg_path']).model
    trained = checkpoint_meta_preprocessor(teacher_ckpt)
    fed = cfg.model.get('data_preprocessor') or model_preprocessor(student)
    check_pair(teacher, student, fed, kind.name, chosen, needs, trained,
               cfg.model.get('teacher_preprocessing', teacher_preprocessing), (teacher_config, student_config))
    path = osp.join(work_dir, 'config', f'{name}.py')
    _write_atomic(path, text)
    cfg.work_dir = work_dir
    return DistillConfig(path, work_dir, kind.name, chosen, kind.algorithm, text), cfg


def build_model(cfg: Config):
    """Build the algorithm of a distillation config, as the Runner would (no ``init_weights``: nothing is
    downloaded; the teacher checkpoint is loaded and checked by the algorithm)."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return MODELS.build(cfg.model)


def describe_model(model) -> str:
    """One line about a built distillation algorithm."""
    count = (lambda m: sum(p.numel() for p in m.parameters()) / 1e6)
    losses = ', '.join(model.distiller.distill_losses) or 'none'
    return (f'{type(model).__name__}: student {type(model.student).__name__} ({count(model.student):.1f} M '
            f'parameters), teacher {type(model.teacher).__name__} ({count(model.teacher):.1f} M, weights from '
            f'{model.teacher_ckpt}), distillation losses: {losses}')


__all__ = ['DistillConfigError', 'Kind', 'Method', 'KINDS', 'METHODS', 'register_kind', 'register_method',
           'list_methods', 'make_distill_config', 'build_model', 'describe_model', 'check_pair', 'detector_kind',
           'resolve_method', 'method_needs', 'load_config', 'DistillConfig']
