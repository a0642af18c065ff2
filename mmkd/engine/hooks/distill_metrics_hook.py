"""Neural-collapse and teacher-student agreement metrics, logged with every validation."""
import random
from contextlib import contextmanager
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from torch import Tensor, nn

from mmkd.registry import HOOKS
from mmkd.structures.nc_metrics import nc_summary

__all__ = ['DistillMetricsHook', 'split_models', 'model_task', 'probe_outputs', 'gt_boxes_need_rescale',
           'top1_agreement', 'preserved_rng']

#: transforms after which the ground-truth boxes no longer are in the input image's coordinates
_GEOMETRIC = ('Resize', 'Pad', 'Crop', 'Flip', 'Affine', 'Rotate', 'Shear', 'Translate', 'Expand')


def split_models(model: nn.Module) -> Tuple[nn.Module, Optional[nn.Module]]:
    """``(student, teacher)`` of an mmrazor/mmkd distillation algorithm, ``(model, None)`` for a plain model."""
    model = model.module if is_model_wrapper(model) else model
    if hasattr(model, 'student') and hasattr(model, 'teacher'):
        return model.student, model.teacher
    return model, None


def model_task(model: nn.Module) -> str:
    """``'det'`` for an mmdet two-stage detector with a ``StandardRoIHead`` whose bbox head has ``fc_cls``,
    ``'cls'`` for an mmkd ``ImageClassifier`` (``neck`` + ``head.fc``); TypeError otherwise."""
    bbox_head = getattr(getattr(model, 'roi_head', None), 'bbox_head', None)
    if bbox_head is not None and isinstance(getattr(bbox_head, 'fc_cls', None), nn.Linear) \
            and hasattr(model.roi_head, '_bbox_forward'):
        return 'det'
    if hasattr(model, 'neck') and isinstance(getattr(getattr(model, 'head', None), 'fc', None), nn.Linear):
        return 'cls'
    raise TypeError(f'{type(model).__name__} is neither a two-stage detector with a StandardRoIHead and an fc_cls '
                    f'classifier (mmdet Faster R-CNN) nor an mmkd ImageClassifier (neck + head.fc), so its '
                    f'penultimate feature is unknown; remove DistillMetricsHook from custom_hooks for this model.')


def gt_boxes_need_rescale(dataset) -> bool:
    """Whether the dataset's pipeline loads the annotations after a geometric transform (mmdet's test pipelines
    load them after ``Resize``, so that they stay in the original image's coordinates): the boxes must then be
    multiplied by the sample's ``scale_factor`` to lie on the model's input."""
    transforms = getattr(getattr(dataset, 'pipeline', None), 'transforms', None) or []
    names = [type(t).__name__ for t in transforms]
    load = next((i for i, n in enumerate(names) if n.startswith('LoadAnnotations')), None)
    if load is None:
        return False
    return any(any(g in n for g in _GEOMETRIC) for n in names[:load])


def _gt(data_samples: List, rescale: bool) -> Tuple[List[Tensor], Tensor]:
    """Ground-truth boxes (input coordinates) per image and their labels ``[G]``."""
    from mmdet.structures.bbox import get_box_tensor, scale_boxes
    boxes, labels = [], []
    for sample in data_samples:
        if 'gt_instances' not in sample or 'bboxes' not in sample.gt_instances:
            raise ValueError('DistillMetricsHook: the validation data samples have no gt_instances.bboxes; add '
                             "dict(type='LoadAnnotations', with_bbox=True) to the validation pipeline.")
        b = get_box_tensor(sample.gt_instances.bboxes).float()
        if rescale:
            b = scale_boxes(b, sample.metainfo['scale_factor'])
        boxes.append(b)
        labels.append(sample.gt_instances.labels)
    return boxes, torch.cat(labels).long()


def probe_outputs(model: nn.Module, inputs: Tensor, data_samples: List,
                  rescale_gt: bool = False) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Penultimate features ``[N, D]``, logits ``[N, K(+1)]``, labels ``[N]`` and classifier weight ``[K(+1), D]``
    of ``model`` (in whatever mode it is in; call under ``torch.no_grad``) for one pre-processed batch.

    * detection (``model_task == 'det'``), [PROPOSAL] (Papyan et al. measure classifiers): one sample per
      ground-truth box. The boxes are the RoIs
      (``rescale_gt``: multiplied by ``scale_factor`` first, see :func:`gt_boxes_need_rescale`); the feature is
      the input of ``bbox_head.fc_cls`` (the post-ReLU output of the shared FCs), the logits its output (background
      last), the label the box's class.
    * classification: the ``neck`` output, ``head.fc`` logits and ``gt_label`` of each image.
    """
    if model_task(model) == 'cls':
        from mmkd.models.classifiers import stack_gt_labels
        feats = model.extract_feat(inputs)
        return feats, model.head.fc(feats), stack_gt_labels(data_samples).to(feats.device), model.head.fc.weight
    from mmdet.structures.bbox import bbox2roi
    boxes, labels = _gt(data_samples, rescale_gt)
    fc_cls = model.roi_head.bbox_head.fc_cls
    if labels.numel() == 0:
        return (inputs.new_zeros(0, fc_cls.in_features), inputs.new_zeros(0, fc_cls.out_features),
                labels.to(inputs.device), fc_cls.weight)
    captured = {}
    handle = fc_cls.register_forward_hook(lambda module, args, out: captured.update(feat=args[0]))
    try:
        logits = model.roi_head._bbox_forward(model.extract_feat(inputs), bbox2roi(boxes).to(inputs.device))
    finally:
        handle.remove()
    return captured['feat'], logits['cls_score'], labels.to(inputs.device), fc_cls.weight


def top1_agreement(logits_a: Tensor, logits_b: Tensor) -> float:
    """Fraction of rows of two ``[N, K]`` logit tensors with the same arg-max."""
    if logits_a.shape != logits_b.shape or logits_a.dim() != 2 or not len(logits_a):
        raise ValueError(f'need two non-empty [N, K] logit tensors of one shape, got {list(logits_a.shape)} and '
                         f'{list(logits_b.shape)}')
    return float((logits_a.argmax(1) == logits_b.argmax(1)).double().mean())


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Restores the Python, NumPy and torch (CPU and initialised CUDA) random states on exit: iterating a
    dataloader draws a worker seed from torch's generator and a pipeline may draw from the others, so a probe
    pass would otherwise change what the training that follows samples."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode


@HOOKS.register_module()
class DistillMetricsHook(Hook):
    """After every validation, logs neural-collapse metrics of the student (and teacher) and their agreement.

    **Probe.** Validation batches run through the student and, for a distillation algorithm, the teacher (eval
    mode, no gradients, the random states restored afterwards, so training continues exactly as without the
    hook) until every class has at least ``min_per_class`` samples or ``max_batches`` batches were probed (or the
    loader ends). A sample is (:func:`probe_outputs`) one ground-truth box taken as RoI in detection, one image in
    classification. Classes with fewer than ``min_per_class`` samples are **excluded** from every NC metric (a
    class with one sample has no within-class scatter, which would bias NC1 down); the per-class counts and the
    excluded classes are logged (an ``INFO`` line per validation) and kept in :attr:`last_probe`. Under
    distributed training each rank probes its own shard until its own counts reach the minimum (so the pooled
    counts do too), and the samples of all ranks are pooled.

    **Metrics** (:mod:`mmkd.structures.nc_metrics`, Papyan, Han & Donoho, PNAS 2020; figure numbers are the
    paper's), over the classes with at least ``min_per_class`` samples:

    ================================  ==================================================================
    ``nc/student_nc1``                NC1 ``tr(Sigma_W Sigma_B^+) / K`` of the penultimate feature (Fig. 6)
    ``nc/student_nc2``                NC2 summary: distance of the Gram of the centred class means (not
                                      normalised) from a simplex ETF's
    ``nc/student_nc2_equinorm``       NC2 equal norms of the centred class means, std / avg (Fig. 2)
    ``nc/student_nc2_equiangle``      NC2 equal angles: std of their pairwise cosines (Fig. 3)
    ``nc/student_nc2_maxangle``       NC2 maximal angles: avg ``|cos + 1 / (K - 1)|`` (Fig. 4)
    ``nc/student_nc2w_*``             the same three for the classifier rows (Figs. 2-4)
    ``nc/student_nc3``                NC3: distance of the normalised classifier (``fc_cls`` / ``head.fc``,
                                      background row dropped) from the normalised centred means (Fig. 5)
    ``nc/student_nc4``                NC4: fraction of samples whose classifier arg-max (over the used
                                      classes) is not the nearest class mean (Fig. 7)
    ``nc/student_top1``               top-1 accuracy of the classifier on all probed samples (detection:
                                      the RoI head's K+1-way classification of the ground-truth boxes)
    ``nc/teacher_*``                  the same for the teacher
    ``distill/top1_agreement``        fraction of samples where student and teacher logits (the distilled
                                      RoI / image logits) have the same arg-max
    ``nc/probe_batches``              batches probed (this rank)
    ``nc/probe_samples``              samples probed (all ranks)
    ``nc/probe_min_count``            fewest samples of a class
    ``nc/probe_classes_below_min``    classes with fewer than ``min_per_class`` samples (excluded)
    ================================  ==================================================================

    They are written to the message hub as ``val/<key>`` before ``LoggerHook`` (priority ``BELOW_NORMAL``)
    logs the validation, so they appear in the validation log line and, without the ``val/`` prefix (the
    keys above), in every visualizer backend (``vis_data/scalars.json``, TensorBoard, W&B). Without a teacher
    (a student trained alone) only the student's metrics are logged. When fewer than 2 classes reach
    ``min_per_class`` the NC metrics are skipped with a warning.

    The distillation loss terms need no hook: the algorithms return them as ``distill.loss_*`` and mmengine
    logs them as training scalars.

    Args:
        min_per_class (int): samples each class needs (>= 2) before the probe stops; classes below it are
            excluded from the NC metrics.
        max_batches (int): most validation batches probed per validation (per rank).
    """

    priority = 'NORMAL'  # after RuntimeInfoHook (VERY_HIGH) stores the metrics, before LoggerHook (BELOW_NORMAL)

    def __init__(self, min_per_class: int = 20, max_batches: int = 50, num_batches: Optional[int] = None) -> None:
        if num_batches is not None:
            raise ValueError('DistillMetricsHook: num_batches was replaced by min_per_class and max_batches (the '
                             'probe now runs until every class has min_per_class samples, at most max_batches '
                             f'batches); write max_batches={num_batches!r} instead of num_batches.')
        if isinstance(min_per_class, bool) or not isinstance(min_per_class, int) or min_per_class < 2:
            raise ValueError(f'DistillMetricsHook: min_per_class must be an int >= 2 (one sample has no '
                             f'within-class scatter), got {min_per_class!r}')
        if isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1:
            raise ValueError(f'DistillMetricsHook: max_batches must be a positive int, got {max_batches!r}')
        self.min_per_class, self.max_batches = min_per_class, max_batches
        #: the last probe: ``batches``, per-class ``counts`` (list, all ranks), ``below_min`` (class indices)
        self.last_probe: Dict[str, object] = {}

    def before_run(self, runner: Runner) -> None:
        """Checks the model and the validation pipeline before any training is spent."""
        student, _ = split_models(runner.model)
        task = model_task(student)
        val = runner.cfg.get('val_dataloader') or {}
        pipeline = (val.get('dataset') or {}).get('pipeline') or []
        if task == 'det' and pipeline and not any('LoadAnnotations' in str(t.get('type', '')) for t in pipeline):
            raise ValueError('DistillMetricsHook needs the ground-truth boxes of the validation images: add '
                             "dict(type='LoadAnnotations', with_bbox=True) to val_dataloader.dataset.pipeline.")

    def after_val_epoch(self, runner: Runner, metrics: Optional[Dict[str, float]] = None) -> None:
        dataloader = runner.val_loop.dataloader
        classes = (getattr(dataloader.dataset, 'metainfo', None) or {}).get('classes')
        scalars = self.compute(runner.model, dataloader, gt_boxes_need_rescale(dataloader.dataset),
                               warn=runner.logger.warning, info=runner.logger.info, class_names=classes)
        for key, value in scalars.items():
            runner.message_hub.update_scalar(f'val/{key}', value)

    def _probe_report(self, counts: Tensor, batches: int, class_names: Optional[Sequence[str]]) -> str:
        below = (counts < self.min_per_class).nonzero().squeeze(1).tolist()

        def name(k: int) -> str:
            return f'{k} ({class_names[k]})' if class_names is not None and k < len(class_names) else str(k)

        self.last_probe = dict(batches=batches, counts=counts.tolist(), below_min=below)
        excluded = ', '.join(f'{name(k)}: {int(counts[k])}' for k in below) or 'none'
        return (f'DistillMetricsHook: probed {batches} batch(es), {int(counts.sum())} samples; per-class counts '
                f'{counts.tolist()}; classes below min_per_class={self.min_per_class}, excluded from the NC '
                f'metrics: {excluded}')

    @torch.no_grad()
    def compute(self, model: nn.Module, batches: Iterable, rescale_gt: bool = False, warn=print,
                info=print, class_names: Optional[Sequence[str]] = None) -> Dict[str, float]:
        """The metrics (keys without ``val/``) on the probe drawn from ``batches`` (data batches as a dataloader
        yields them); ``model`` is a plain model or a distillation algorithm, possibly wrapped. ``info`` gets
        the probe's per-class counts, ``warn`` the skipped metrics; ``class_names`` name the classes there."""
        inner = model.module if is_model_wrapper(model) else model
        student, teacher = split_models(inner)
        roles = dict(student=student) if teacher is None else dict(student=student, teacher=teacher)
        num_classes = {role: None for role in roles}
        outputs = {role: [] for role in roles}
        weights = {}
        probed = 0
        with preserved_rng(), _eval_mode(inner):
            local_counts = None
            for batch in batches:
                if probed >= self.max_batches:
                    break
                probed += 1
                data = inner.data_preprocessor(batch, False)
                for role, net in roles.items():
                    inputs = data['inputs']
                    if role == 'teacher' and hasattr(inner, 'teacher_inputs'):
                        inputs = inner.teacher_inputs(inputs)
                    feat, logits, labels, weight = probe_outputs(net, inputs, data['data_samples'], rescale_gt)
                    outputs[role].append((feat.float().cpu(), logits.float().cpu(), labels.cpu()))
                    weights[role] = weight
                    num_classes[role] = weight.shape[0] - (1 if model_task(net) == 'det' else 0)
                k = num_classes['student']
                batch_counts = torch.bincount(outputs['student'][-1][2], minlength=k)[:k]
                local_counts = batch_counts if local_counts is None else local_counts + batch_counts
                if bool((local_counts >= self.min_per_class).all()):
                    break
        if get_world_size() > 1:
            outputs = {role: [o for rank in all_gather_object(outs) for o in rank] for role, outs in outputs.items()}
        scalars, logits = {}, {}
        for role, outs in outputs.items():
            feats, role_logits, labels = (torch.cat(t) for t in zip(*outs)) if outs else (None, None, None)
            if feats is None or not len(labels):
                warn(f'DistillMetricsHook: no {role} samples in {probed} validation batches; nothing logged.')
                continue
            logits[role] = role_logits
            k = num_classes[role]
            counts = torch.bincount(labels, minlength=k)
            if role == 'student':
                info(self._probe_report(counts, probed, class_names))
                scalars.update({'nc/probe_batches': float(probed), 'nc/probe_samples': float(len(labels)),
                                'nc/probe_min_count': float(counts.min()),
                                'nc/probe_classes_below_min': float((counts < self.min_per_class).sum())})
            scalars[f'nc/{role}_top1'] = float((role_logits.argmax(1) == labels).double().mean())
            enough = counts >= self.min_per_class
            if enough.sum() < 2:
                warn(f'DistillMetricsHook: {role} NC metrics skipped: {int(enough.sum())} class(es) have at least '
                     f'min_per_class={self.min_per_class} samples after {probed} batch(es), at least 2 are '
                     'needed; raise max_batches or lower min_per_class.')
                continue
            nc = nc_summary(feats, labels, k, weights[role], role_logits, enough)
            scalars.update({f'nc/{role}_{name}': value for name, value in nc.items()})
        if len(logits) == 2 and logits['student'].shape == logits['teacher'].shape:
            scalars['distill/top1_agreement'] = top1_agreement(logits['student'], logits['teacher'])
        return scalars
