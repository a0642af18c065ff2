"""Which input normalisation a teacher was trained with, how it differs from the one a distillation algorithm feeds
it, and the per-channel affine map that turns one into the other.

In mmrazor's algorithms (and mmkd's, built on them) the batch goes through the **algorithm's** ``data_preprocessor``
(the student's unless the algorithm config sets its own) and the teacher receives that tensor: its own
``data_preprocessor`` never runs. A teacher trained with another mean / std or channel order
(``bgr_to_rgb`` / ``rgb_to_bgr``; ``to_rgb`` in mmcv 1.x pipelines and mmpretrain) therefore sees inputs it was
never trained on. The algorithms (:class:`~mmkd.models.algorithms.TeacherStudentDistill`, its
``teacher_preprocessing``), ``tools/distill.py`` and ``tools/analysis/diagnose_distill.py`` all compare the two
settings with :func:`compare_preprocessing`.

A data preprocessor normalises raw pixels ``p`` (``H x W`` images with ``C`` channels in the loader's order) as

    x[c] = (p[perm(c)] - mean[c]) / std[c],    perm = reversed channel order if it swaps channels, else identity,

so the teacher's own input follows from the student's by a per-channel affine map with one channel permutation
(:func:`input_conversion`):

    x_t[c] = x_s[j] * std_s[j] / std_t[c] + (mean_s[j] - mean_t[c]) / std_t[c],
    j = 2 - c if exactly one of the two swaps the channels (3 channels), else j = c.

It is exact (up to float rounding) on every pixel of the image; pixels that only pad the batch to a common size hold
the student's ``pad_value`` mapped through the same affine map instead of the teacher's ``pad_value``, which no
box or RoI reads. A data preprocessor without mean/std does not normalise (mean 0, std 1).
"""
import ast
import copy
import functools
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

#: the keys that reverse the channel order (mmengine / mmdet, mmdet and mmengine, mmcv 1.x ``Normalize`` / mmpretrain)
SWAP_KEYS = ('bgr_to_rgb', 'rgb_to_bgr', 'to_rgb')
#: the values ``teacher_preprocessing`` of the algorithms accepts
TEACHER_PREPROCESSING_MODES = ('convert', 'refuse', 'ignore')
#: relative tolerance under which two means / stds are the same setting (123.675 and 123.68 are)
RTOL = 1e-3

Summary = Dict[str, Any]  # dict(mean=list | None, std=list | None, swap_channels=bool, swap_key=str)


def preprocessing_summary(dp: Any) -> Summary:
    """Mean, std (lists of floats, None when it does not normalise) and whether it reverses the channel order,
    of a data preprocessor: a config dict, a built one (mmengine's ``ImgDataPreprocessor`` and its subclasses,
    e.g. mmdet's ``DetDataPreprocessor``), an mmcv 1.x ``Normalize`` / ``img_norm_cfg`` dict (``to_rgb``), or a
    summary already. ``None`` is a preprocessor that does not normalise."""
    if isinstance(dp, Mapping) and 'swap_channels' in dp:
        return dict(dp)
    if isinstance(dp, nn.Module):  # float32 buffers: 123.675 is stored as 123.67500305...
        as_list = (lambda t: [float(f'{x:.7g}') for x in t.flatten().tolist()])
        normalise = getattr(dp, '_enable_normalize', False)
        swap = bool(getattr(dp, '_channel_conversion', False))
        return dict(mean=as_list(dp.mean) if normalise else None, std=as_list(dp.std) if normalise else None,
                    swap_channels=swap, swap_key='bgr_to_rgb')
    as_list = (lambda v: None if v is None else [float(x) for x in (v if hasattr(v, '__iter__') else [v])])
    dp = dict(dp or {})
    key = next((k for k in SWAP_KEYS if dp.get(k)), 'bgr_to_rgb')
    return dict(mean=as_list(dp.get('mean')), std=as_list(dp.get('std')), swap_channels=bool(dp.get(key)),
                swap_key=key)


def describe_preprocessing(dp: Any) -> str:
    """``mean [...], std [...], bgr_to_rgb=True`` for messages."""
    s = preprocessing_summary(dp)
    if s['mean'] is None and s['std'] is None:
        norm = 'no normalisation (mean/std unset)'
    else:
        norm = f'mean {s["mean"]}, std {s["std"]}'
    return f'{norm}, {s["swap_key"]}={s["swap_channels"]}'


def _effective(s: Summary, channels: int) -> Tuple[List[float], List[float]]:
    """Mean and std as ``channels`` values (mean 0 / std 1 without normalisation; one value broadcast)."""
    out = []
    for key, neutral in (('mean', 0.0), ('std', 1.0)):
        v = s[key] if s[key] is not None else [neutral]
        out.append(list(v) * channels if len(v) == 1 else list(v))
    return out[0], out[1]


def _channels(a: Summary, b: Summary) -> int:
    return max([len(s[k]) for s in (a, b) for k in ('mean', 'std') if s[k] is not None] or [3])


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= RTOL * max(1.0, abs(y)) for x, y in zip(a, b))


def compare_preprocessing(student: Any, teacher: Any, labels: Tuple[str, str] = ('student', 'teacher')) -> List[str]:
    """What differs between the normalisation fed to the teacher (``student``: the algorithm's data preprocessor)
    and the one the teacher was trained with: one line per differing setting (mean, std, channel order), empty
    if they agree. Either side may be anything :func:`preprocessing_summary` accepts; padding (``pad_value``,
    ``pad_size_divisor``) is not compared. ``labels`` name the two sides in the lines."""
    a, b = preprocessing_summary(student), preprocessing_summary(teacher)
    channels = _channels(a, b)
    ea, eb = _effective(a, channels), _effective(b, channels)
    diffs = []
    for i, key in enumerate(('mean', 'std')):
        if not _close(ea[i], eb[i]):
            diffs.append(f'{key} {a[key]} ({labels[0]}) vs {b[key]} ({labels[1]})')
    if a['swap_channels'] != b['swap_channels'] and channels == 3:
        diffs.append(f'channel swap ({a["swap_key"]}={a["swap_channels"]}) ({labels[0]}) vs ({b["swap_key"]}='
                     f'{b["swap_channels"]}) ({labels[1]}): the colour channels arrive reversed')
    return diffs


class InputConversion:
    """``x_t = x_s[:, index] * scale + shift`` per channel: the student-normalised batch ``[N, C, H, W]`` as the
    teacher's own data preprocessor would have normalised the same pixels (see the module docstring). A plain
    object, not a module: it adds nothing to the state dict; its tensors are made once per device and dtype."""

    def __init__(self, index: Sequence[int], scale: Sequence[float], shift: Sequence[float], text: str = '',
                 target: Optional[Summary] = None) -> None:
        self.index, self.scale, self.shift, self.text = list(index), list(scale), list(shift), text
        self.target = target  # the teacher's normalisation (a preprocessing_summary) the inputs are converted to
        self._permutes = self.index != list(range(len(self.index)))
        self._cache: Dict[Tuple, Tuple[Tensor, Tensor, Tensor]] = {}

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != len(self.scale):
            raise ValueError(f'teacher input conversion expects [N, {len(self.scale)}, H, W] inputs, got '
                             f'{list(x.shape)}')
        key = (x.device, x.dtype)
        if key not in self._cache:
            self._cache[key] = (torch.tensor(self.index, device=x.device),
                                torch.tensor(self.scale, dtype=x.dtype, device=x.device).view(1, -1, 1, 1),
                                torch.tensor(self.shift, dtype=x.dtype, device=x.device).view(1, -1, 1, 1))
        index, scale, shift = self._cache[key]
        if self._permutes:
            x = x.index_select(1, index)
        return torch.addcmul(shift, x, scale)

    def __repr__(self) -> str:
        return f'InputConversion(index={self.index}, scale={self.scale}, shift={self.shift})'

    def __getstate__(self) -> dict:  # no device tensors in copies / pickles
        return {**self.__dict__, '_cache': {}}


def input_conversion(student: Any, teacher: Any) -> Optional[InputConversion]:
    """The :class:`InputConversion` from inputs normalised as ``student`` to inputs normalised as ``teacher``, or
    None when the two agree (:func:`compare_preprocessing`)."""
    if not compare_preprocessing(student, teacher):
        return None
    a, b = preprocessing_summary(student), preprocessing_summary(teacher)
    channels = _channels(a, b)
    (mean_s, std_s), (mean_t, std_t) = _effective(a, channels), _effective(b, channels)
    flip = a['swap_channels'] != b['swap_channels'] and channels == 3
    index = [channels - 1 - c if flip else c for c in range(channels)]
    scale = [std_s[j] / std_t[c] for c, j in enumerate(index)]
    shift = [(mean_s[j] - mean_t[c]) / std_t[c] for c, j in enumerate(index)]
    text = ('x_teacher = x[:, ' + str(index) + '] * ' + str([round(v, 6) for v in scale]) + ' + '
            + str([round(v, 6) for v in shift]))
    return InputConversion(index, scale, shift, text, target=b)


# ------------------------------------------------------------------------------- where the settings are written
@functools.lru_cache(maxsize=16)
def package_config(cfg_path: str):
    """``mmengine.hub.get_config(cfg_path)`` (``pkg::path.py``), once per process: each lookup reads every metafile
    of the package (about a second for mmdet's). The returned config is shared: do not modify it."""
    from mmengine.hub import get_config
    return get_config(cfg_path)


def model_preprocessor(model: Any) -> Any:
    """The data preprocessor (config dict or built module) that feeds ``model``, or None when it is not known.

    ``model`` is a model config dict, a ``dict(cfg_path='pkg::path.py')`` (mmrazor's form: the config's
    ``model.data_preprocessor``, or its top-level ``data_preprocessor``, as ``mmengine.hub.get_model`` builds it),
    a distillation algorithm's config (its own ``data_preprocessor``, else its ``architecture``'s) or a built
    model. A model config without ``data_preprocessor`` is unknown (None), not "no normalisation"."""
    if model is None:
        return None
    if isinstance(model, nn.Module):
        return getattr(model, 'data_preprocessor', None)
    if not isinstance(model, Mapping):
        return None
    if model.get('cfg_path') and not model.get('type'):
        cfg = package_config(model['cfg_path'])
        return copy.deepcopy(cfg.get('data_preprocessor') or model_preprocessor(cfg.get('model')))
    if model.get('data_preprocessor') is not None:
        return model['data_preprocessor']
    if model.get('architecture') is not None:
        return model_preprocessor(model['architecture'])
    return None


def _find_normalize(node: Any) -> Optional[dict]:
    """The first mmcv 1.x ``Normalize`` transform in a (nested) pipeline / dataset config."""
    if isinstance(node, Mapping):
        if node.get('type') == 'Normalize' and node.get('mean') is not None:
            return dict(node)
        for v in node.values():
            found = _find_normalize(v)
            if found is not None:
                return found
    elif isinstance(node, (list, tuple)):
        for v in node:
            found = _find_normalize(v)
            if found is not None:
                return found
    return None


def config_preprocessor(cfg: Any) -> Any:
    """The data preprocessor a full training config feeds its model: ``model.data_preprocessor`` (mmengine-era
    configs, see :func:`model_preprocessor`), else the mmcv 1.x ``Normalize`` of its training pipeline
    (``img_norm_cfg``) for configs of mmdet 2.x, whose model-zoo checkpoints carry them; None if neither."""
    if not hasattr(cfg, 'get'):  # a dict or an mmengine Config
        return None
    found = model_preprocessor(cfg.get('model'))
    if found is None and cfg.get('data_preprocessor') is not None:
        found = cfg['data_preprocessor']
    if found is None:
        for key in ('data', 'train_pipeline', 'train_dataloader'):
            found = _find_normalize(cfg.get(key))
            if found is not None:
                break
    if found is None and isinstance(cfg.get('img_norm_cfg'), Mapping):
        found = dict(cfg['img_norm_cfg'])
    return found


def _literal(node: ast.AST) -> Any:
    """The value of a config expression made of literals, lists, tuples, dicts and ``dict(...)`` calls (whose
    entries that are none of these are left out); anything else (a name, another call) raises ``ValueError``.
    Config texts stored in checkpoints are read with this, never executed."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict' and not node.args:
        return _literal_items((k.arg, k.value) for k in node.keywords if k.arg is not None)
    if isinstance(node, ast.Dict):
        return _literal_items((ast.literal_eval(k), v) for k, v in zip(node.keys, node.values) if k is not None)
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_literal(v) for v in node.elts]
        return values if isinstance(node, ast.List) else tuple(values)
    return ast.literal_eval(node)


def _literal_items(items) -> dict:
    """A dict of the items whose values are literal (:func:`_literal`); the others are left out."""
    out = {}
    for key, value in items:
        try:
            out[key] = _literal(value)
        except (ValueError, TypeError, SyntaxError):
            continue
    return out


def config_text_values(text: str) -> Dict[str, Any]:
    """The top-level assignments of a (flattened) config text whose values are literals (see :func:`_literal`),
    without executing it; the others are left out."""
    values = {}
    for stmt in ast.parse(text).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:
                values[stmt.targets[0].id] = _literal(stmt.value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                continue
    return values


def checkpoint_preprocessor(checkpoint: Any) -> Optional[Tuple[Any, str]]:
    """``(data preprocessor, where it was found)`` of the training config a checkpoint carries, or None.

    mmengine's ``Runner`` writes its config text as ``meta['cfg']``; mmcv 1.x runners (the mmdet 2.x era of
    mmdet's model zoo) wrote it as ``meta['config']``. The text is parsed, not executed (a checkpoint must not run
    code); one that does not parse counts as absent."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    if not isinstance(meta, Mapping):
        return None
    for key in ('cfg', 'config'):
        text = meta.get(key)
        if not isinstance(text, str) or not text.strip():
            continue
        try:
            found = config_preprocessor(config_text_values(text))
        except Exception:  # an unparsable text, or a cfg_path whose package is not installed here
            continue
        if found is not None:
            return found, f"its checkpoint's training config (meta['{key}'])"
    return None


def plan_teacher_preprocessing(fed: Any, teacher: Any, mode: str, owner: str, teacher_source: str,
                               fed_source: str = "the algorithm's data_preprocessor: the student's, unless "
                                                 "model.data_preprocessor is set"
                               ) -> Tuple[Optional[InputConversion], Optional[str]]:
    """What a distillation algorithm does about the teacher's normalisation (``teacher_preprocessing``):
    ``(conversion or None, message to log or None)``.

    ``fed`` is the normalisation the algorithm gives the batch, ``teacher`` the one the teacher was trained with
    (``teacher_source`` says where it was read). If they agree: ``(None, None)``. Otherwise ``mode``
    ``'convert'`` gives the :class:`InputConversion` (and a message saying so), ``'ignore'`` none (and a message),
    and ``'refuse'`` raises a ``ValueError`` naming both settings and the fixes."""
    if mode not in TEACHER_PREPROCESSING_MODES:
        raise ValueError(f'{owner}: teacher_preprocessing must be one of {TEACHER_PREPROCESSING_MODES}, got '
                         f'{mode!r}.')
    diffs = compare_preprocessing(fed, teacher, labels=('fed to the teacher', 'teacher'))
    if not diffs:
        return None, None
    head = (f'{owner}: the teacher was trained with {describe_preprocessing(teacher)} ({teacher_source}), but the '
            f'batch is normalised with {describe_preprocessing(fed)} ({fed_source}): ' + '; '.join(diffs) + '.')
    if mode == 'refuse':
        raise ValueError(
            f'{head} The teacher would see inputs it was never trained on (teacher_preprocessing=\'refuse\'). Fix: '
            f'set teacher_preprocessing=\'convert\' in the algorithm (model) config, which feeds the teacher its own '
            f'normalisation of the same pixels (an exact per-channel affine map of the batch; the default); or give '
            f'the student the teacher\'s mean, std and channel order (model.architecture.data_preprocessor, or the '
            f'algorithm\'s model.data_preprocessor); or set teacher_preprocessing=\'ignore\' to feed the teacher the '
            f'student\'s inputs anyway.')
    if mode == 'ignore':
        return None, f'{head} teacher_preprocessing=\'ignore\': the teacher is fed these inputs anyway.'
    conversion = input_conversion(fed, teacher)
    return conversion, (f'{head} teacher_preprocessing=\'convert\': the teacher gets its own normalisation of the '
                        f'same pixels, {conversion.text}.')
