"""The distillation config of a teacher detector config, a student detector config and a method: what
``tools/distill.py`` writes, checks and trains (docs/distill.md).

The written config inherits the two configs instead of copying them: the student config is its first ``_base_``
(its data, schedule and runtime are the run's), the method's settings come from the shared file of its detector kind
(``configs/_base_/distill/roi_losses.py`` for two-stage detectors, ``dense_losses.py`` for dense ones) as a second
``_base_``, and the teacher is
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
and a pair the method cannot connect (features of different widths for a loss that reads the student's, FPNs of
different levels for the methods on the FPN, or of different widths for those that compare them channel by channel,
a head kind the method has no settings for).
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
    """A distillation method of one detector kind. ``model`` lists the algorithm's keys it sets, each from a
    variable of the shared settings file ``base`` (a path relative to the repository's ``configs/`` folder), e.g.
    ``(('distiller', 'kdpp_distiller'),)``: nothing is copied. A variable may name the head kind, ``{head}``
    (dense heads: ``gfl``, ``retina``, ``atss``, ``fcos``, ``rtmdet``), and ``heads`` restricts the method to those
    head kinds (None: every head of its detector kind)."""
    name: str
    kind: str
    base: str
    model: Tuple[Tuple[str, str], ...]
    summary: str
    aliases: Tuple[str, ...] = ()
    heads: Optional[Tuple[str, ...]] = None

    def variables(self, head: Optional[str] = None) -> List[Tuple[str, str]]:
        """``(algorithm key, variable of base)`` pairs, for ``head``."""
        return [(key, var.format(head=head or '{head}')) for key, var in self.model]


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
_DENSE = '_base_/distill/dense_losses.py'
for _m in (
        Method('kd', 'two-stage', _ROI, (('distiller', 'kd_distiller'), ), 'KD on the RoI class logits (T = 1)'),
        Method('nd', 'two-stage', _ROI, (('distiller', 'kdpp_distiller'), ),
               'KD++ (ND paper): ND on the RoI feature (teacher class means) + KD on the RoI logits', ('kdpp', )),
        Method('nc', 'two-stage', _ROI, (('distiller', 'nc_distiller'), ),
               '[PROPOSAL] NC-inspired: NC1 contrast/alignment and NC2 on the RoI feature + KD'),
        Method('icd', 'two-stage', _ROI, (('distiller', 'icd_distiller'), ),
               '[PROPOSAL] iCD on the RoI logits, grouped by image, + KD'),
        Method('reviewkd', 'two-stage', _ROI, (('distiller', 'reviewkd_distiller'), ),
               'ReviewKD: HCL on the FPN levels through the ABF connector'),
        Method('reviewkdpp', 'two-stage', _ROI, (('distiller', 'reviewkdpp_distiller'), ),
               'ReviewKD++ (ND paper): ReviewKD on the FPN + ND on the RoI feature'),
        Method('pkd', 'dense', _DENSE, (('distiller', 'pkd_distiller'), ), 'PKD: Pearson-normalised MSE on FPN '
               'levels 0-3'),
        Method('cwd', 'dense', _DENSE, (('distiller', 'cwd_distiller'), ),
               'CWD: channel-wise KL of the class logit maps (gfl_cls), per level', heads=('gfl', )),
        Method('fgd', 'dense', _DENSE, (('distiller', 'fgd_distiller'), ),
               'FGD: focal (foreground/background) and global distillation of the FPN levels'),
        Method('crosskd', 'dense', _DENSE, (('crosskd', 'crosskd'), ),
               'CrossKD: the student\'s head features through the teacher\'s last head layers'),
        Method('crosskd_pkd', 'dense', _DENSE, (('crosskd', 'crosskd'), ('distiller', 'crosskd_pkd_{head}_distiller')),
               'CrossKD + PKD on the whole necks (the authors\' GFL and RetinaNet settings)', heads=('gfl', 'retina')),
        Method('ld', 'dense', _DENSE, (('ld', 'ld'), ), 'LD: KL of the GFL box-side distributions at the positives',
               heads=('gfl', )),
        Method('nd', 'dense', _DENSE, (('distiller', 'nd_distiller'), ),
               '[PROPOSAL] ND on the last classification conv at the positive priors (teacher class means)'),
        Method('icd', 'dense', _DENSE, (('distiller', 'icd_distiller'), ),
               '[PROPOSAL] iCD on the positive priors\' class logits, grouped by image'),
):
    register_method(_m)
del _m


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
                heads = f' ({"/".join(method.heads)} heads)' if method.heads else ''
                variables = ', '.join(var for _, var in method.variables())
                lines.append(f'  {method.name:<12}{method.summary}{alias}{heads}  [{method.base}: {variables}]')
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


def detector_kind(model: dict, scope: str = 'mmdet') -> Tuple[str, Optional[str]]:
    """``(kind, head kind)`` of a detector's model config, without building it: ``('two-stage', None)`` or
    ``('dense', 'gfl' | 'retina' | 'atss' | 'fcos' | 'rtmdet')`` (see :data:`KINDS`); refuses a model mmkd cannot
    distil."""
    from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
    from mmdet.models.roi_heads import StandardRoIHead

    from mmkd.models.algorithms.dense_heads import head_kind
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
        return 'two-stage', None
    if issubclass(cls, SingleStageDetector):
        head = registry.get((model.get('bbox_head') or {}).get('type', ''))
        try:
            return 'dense', head_kind(head)
        except ValueError as err:
            raise DistillConfigError(str(err)) from err
    raise DistillConfigError(f'{cls.__name__} is neither a two-stage detector with a StandardRoIHead nor a '
                             f'single-stage (dense) detector: mmkd has no distillation algorithm for it.')


def num_classes(model: dict, kind: str) -> Any:
    head = ((model.get('roi_head') or {}).get('bbox_head') if kind == 'two-stage' else model.get('bbox_head')) or {}
    return head.get('num_classes')


def _feat_width(model: dict, kind: str) -> Any:
    """Width of the feature the student-feature losses read: the RoI feature (two-stage; ``Shared2FCBBoxHead``'s
    ``fc_out_channels``, 1024 by default) or the last classification conv of a dense head (``feat_channels``)."""
    if kind == 'two-stage':
        return ((model.get('roi_head') or {}).get('bbox_head') or {}).get('fc_out_channels', 1024)
    return (model.get('bbox_head') or {}).get('feat_channels', 256)


def _fpn(model: dict) -> Tuple[Any, Any, Any]:
    """``(out_channels, num_outs, start_level)`` of a model's neck."""
    neck = model.get('neck') or {}
    if isinstance(neck, (list, tuple)):
        neck = neck[-1] if neck else {}
    return neck.get('out_channels'), neck.get('num_outs'), neck.get('start_level', 0)


# ---------------------------------------------------------------------------------------------------- method
def resolve_method(kind: str, name: str, head: Optional[str] = None) -> Method:
    methods = METHODS.get(kind, {})
    if name not in methods:
        known = ', '.join(sorted({m.name for m in methods.values()})) or 'none yet'
        raise DistillConfigError(f'Method {name!r} is not one mmkd has for {kind} detectors (mmkd.'
                                 f'{KINDS[kind].algorithm}); its methods: {known}. See tools/distill.py --method list.')
    method = methods[name]
    if method.heads and head not in method.heads:
        raise DistillConfigError(
            f'Method {method.name!r} distils {"/".join(method.heads)} heads; these detectors have {head} heads. '
            f'Choose another method (tools/distill.py --method list) or detectors with such a head.')
    return method


def method_settings(method: Method, head: Optional[str] = None) -> Dict[str, dict]:
    """The method's settings by algorithm key (``distiller``, ``crosskd``, ...), read from its shared file."""
    shared = Config.fromfile(osp.join(configs_root(), method.base))
    return {key: shared[var].to_dict() for key, var in method.variables(head)}


def method_needs(distiller: dict) -> Dict[str, Any]:
    """What a distiller config needs from the algorithm and the pair: ``class_means`` (a loss reads the teacher's
    class means), ``student_feat`` (a loss reads the student's RoI / positive-prior feature without a connector,
    so its width must be the teacher's), ``neck`` (recorders on the necks: their levels must pair up), ``abf``
    (the name of ReviewKD's ABF connector, which maps the widths), ``neck_widths`` (the losses take the two
    widths themselves, as FGD's ``student_channels`` / ``teacher_channels``)."""
    from mmkd.registry import MODELS
    losses = (distiller.get('distill_losses') or {}).values()
    mappings = [rec for mapping in (distiller.get('loss_forward_mappings') or {}).values()
                for rec in mapping.values()]
    recorders = list((distiller.get('student_recorders') or {}).values()) + \
        list((distiller.get('teacher_recorders') or {}).values())
    connectors = distiller.get('connectors') or {}
    return dict(
        class_means=any(hasattr(MODELS.get(loss['type']), 'bind_class_means') for loss in losses),
        student_feat=any(r.get('recorder') in ('roi_feat', 'pos_feat') and r.get('from_student')
                         and not r.get('connector') for r in mappings),
        neck=any(str(r.get('source', '')).startswith('neck') for r in recorders if isinstance(r, dict)),
        abf=next((k for k, c in connectors.items() if str(c.get('type', '')).endswith('ABFConnector')), None),
        neck_widths=any('student_channels' in loss for loss in losses))


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


def check_pair(teacher: dict, student: dict, fed: Any, kind: str, method: Method, needs: Dict[str, Any],
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
    sources = ([(trained[0], 'the teacher checkpoint\'s training config')] if trained else []) + \
        ([(declared, f'the teacher config {names[0]}')] if declared is not None else [])
    if fed is not None and sources and teacher_preprocessing is None:
        t_pp, where = sources[0]
        diffs = compare_preprocessing(fed, t_pp, labels=('student', 'teacher'))
        if diffs:
            raise DistillConfigError(
                f'The teacher was trained with {describe_preprocessing(t_pp)} ({where}), the student normalises '
                f'its inputs with {describe_preprocessing(fed)} ({names[1]}): ' + '; '.join(diffs) + '. The '
                'algorithm feeds the teacher the student\'s batch, so it would see inputs it was never trained on. '
                'Fix: pass --teacher-preprocessing convert (the teacher gets its own normalisation of the same '
                'pixels, an exact per-channel affine map; written into the config as teacher_preprocessing), or give '
                'the student config the teacher\'s data_preprocessor mean, std and bgr_to_rgb; '
                '--teacher-preprocessing ignore feeds the teacher the student\'s inputs anyway.')
    t_w, s_w = _feat_width(teacher, kind), _feat_width(student, kind)
    if needs['student_feat'] and t_w != s_w:
        where = 'roi_head.bbox_head.fc_out_channels' if kind == 'two-stage' else 'bbox_head.feat_channels'
        other = 'the RoI logits (kd, icd)' if kind == 'two-stage' else 'other outputs (see --method list)'
        raise DistillConfigError(
            f'{method.name} compares the student\'s {"RoI" if kind == "two-stage" else "positive-prior"} feature with '
            f'the teacher\'s, but they are {s_w}-d (student) and {t_w}-d (teacher). Set the student\'s {where}={t_w}, '
            f'or choose a method that reads {other}, or write the config by hand with an mmkd.EmbeddingProjector '
            f'connector on the student\'s feature.')
    if needs['neck']:
        (t_c, t_n, t_s), (s_c, s_n, s_s) = _fpn(teacher), _fpn(student)
        if None in (t_n, s_n) or (t_n, t_s) != (s_n, s_s):
            raise DistillConfigError(
                f'{method.name} pairs the student\'s FPN levels with the teacher\'s one by one, but the student\'s '
                f'neck has num_outs={s_n}, start_level={s_s} and the teacher\'s num_outs={t_n}, start_level={t_s}. '
                f'Give the student\'s neck the teacher\'s num_outs and start_level (same strides), or choose a '
                f'method on the head (--method list).')
        if t_c != s_c and not needs['abf'] and not needs['neck_widths']:
            raise DistillConfigError(
                f'{method.name} compares the student\'s FPN outputs with the teacher\'s channel by channel, but they '
                f'are {s_c} (student) and {t_c} (teacher) channels wide. Set the student\'s neck.out_channels={t_c}, '
                f'or choose a method that maps the widths (reviewkd, fgd) or one on the head.')


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


def _pair_lines(method: Method, settings: Dict[str, dict], needs: Dict[str, Any], t_cfg: Config,
                s_cfg: Config) -> List[str]:
    """What the pair changes in the shared settings: the widths of ReviewKD's ABF connector, of FGD's losses."""
    (t_c, t_n, _), (s_c, _, _) = _fpn(t_cfg.model), _fpn(s_cfg.model)
    distiller = settings.get('distiller') or {}
    lines = []
    if needs['abf']:
        abf = distiller['connectors'][needs['abf']]
        change = {k: v for k, v in dict(in_channels=s_c, out_channels=t_c, mid_channels=t_c, num_levels=t_n).items()
                  if v is not None and abf.get(k) != v}
        if change:
            args = ', '.join(f'{k}={v!r}' for k, v in change.items())
            lines += [f'# ABF maps the student\'s {s_c}-channel FPN levels to the teacher\'s {t_c} (the shared '
                      f'settings: {abf.get("in_channels")} channels, {abf.get("num_levels")} levels)',
                      f'model[\'distiller\'][\'connectors\'][{needs["abf"]!r}].update({args})']
    if needs['neck_widths']:
        losses = distiller['distill_losses'].values()
        if any((loss.get('student_channels'), loss.get('teacher_channels')) != (s_c, t_c) for loss in losses):
            lines += [f'# the FPN widths of this pair: {s_c} (student), {t_c} (teacher)',
                      'for _loss in model[\'distiller\'][\'distill_losses\'].values():',
                      f'    _loss.update(student_channels={s_c!r}, teacher_channels={t_c!r})',
                      'del _loss']
    return lines


def render(teacher_config: str, student_config: str, teacher_ckpt: str, kind: Kind, method: Method,
           head: Optional[str], t_cfg: Config, s_cfg: Config, needs: Dict[str, Any],
           teacher_preprocessing: Optional[str]) -> str:
    """The text of the distillation config (see the module docstring)."""
    base = method_base_ref(method.base)
    variables = method.variables(head)
    lines = [
        f'# Written by tools/distill.py (docs/distill.md): mmkd.{kind.algorithm} ({kind.name} detectors), method '
        f'{method.name}:',
        f'#   {method.summary}.',
        f'# Teacher: {teacher_config}, weights {teacher_ckpt}.',
        f'# Student: {student_config}: the first base (its data, schedule and runtime are this run\'s).',
        f'# Method settings: {", ".join(var for _, var in variables)} of the second base. Train it again: '
        f'tools/train.py <this file>.',
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
             ('teacher', 'teacher'), ('teacher_ckpt', repr(teacher_ckpt))]
    items += [(key, f'_base_.{var}') for key, var in variables]
    if 'distiller' not in dict(variables):
        items.append(('distiller', "dict(type='ConfigurableDistiller')"))
    if needs['class_means']:
        items.append(('class_means', '_base_.class_means'))
    if teacher_preprocessing is not None:
        items.append(('teacher_preprocessing', repr(teacher_preprocessing)))
    lines.append('model = dict(\n' + ',\n'.join(f'    {k}={v}' for k, v in items) + ')')
    lines += _pair_lines(method, method_settings(method, head), needs, t_cfg, s_cfg)
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
    (t_kind, t_head), (s_kind, s_head) = [detector_kind(c.model, c.get('default_scope', 'mmdet'))
                                          for c in (t_cfg, s_cfg)]
    if t_kind != s_kind:
        raise DistillConfigError(f'The teacher is a {t_kind} detector and the student a {s_kind} one: mmkd '
                                 f'distils within one kind (teacher and student both two-stage, or both dense).')
    if t_head != s_head:
        raise DistillConfigError(f'The teacher has a {t_head} head and the student a {s_head} head: mmkd.DenseDistill '
                                 f'compares the two heads\' outputs and label assignments, so both must be of the '
                                 f'same kind.')
    kind = KINDS[t_kind]
    chosen = resolve_method(kind.name, method, s_head)
    needs = method_needs(method_settings(chosen, s_head).get('distiller') or {})
    text = render(teacher_config, student_config, teacher_ckpt, kind, chosen, s_head, t_cfg, s_cfg, needs,
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
