"""Neural-collapse and teacher-student agreement metrics, logged with every validation."""
import random
from contextlib import contextmanager
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

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

    ``num_batches`` validation batches run through the student and, for a distillation algorithm, the teacher
    (eval mode, no gradients, the random states restored afterwards, so training continues exactly as without
    the hook). On those samples (:func:`probe_outputs`: detection, one per ground-truth box taken as RoI;
    classification, one per image) it computes, with :mod:`mmkd.structures.nc_metrics` (Papyan et al. 2020):

    ==========================  ======================================================================
    ``nc/student_nc1``          NC1 ``tr(Sigma_W Sigma_B^+) / K`` of the penultimate feature
    ``nc/student_nc2``          NC2: distance of its class means (over the classes present) from a
                                simplex ETF
    ``nc/student_nc3``          NC3: distance of the classifier (``fc_cls`` / ``head.fc``, background
                                row dropped) from the centred class means
    ``nc/student_top1``         top-1 accuracy of the classifier on the same samples (detection: the
                                RoI head's K+1-way classification of the ground-truth boxes)
    ``nc/teacher_*``            the same four for the teacher
    ``distill/top1_agreement``  fraction of samples where student and teacher logits (the distilled
                                RoI / image logits) have the same arg-max
    ==========================  ======================================================================

    They are written to the message hub as ``val/<key>`` before ``LoggerHook`` (priority ``BELOW_NORMAL``)
    logs the validation, so they appear in the validation log line and, without the ``val/`` prefix (the
    keys above), in every visualizer backend (``vis_data/scalars.json``, TensorBoard, W&B). Without a teacher
    (a student trained alone) only the student's metrics are logged. Under distributed training each rank
    probes ``num_batches`` of its own shard and the samples of all ranks are pooled. A metric that needs two
    classes is skipped (with a warning) when the sample holds fewer.

    The distillation loss terms need no hook: the algorithms return them as ``distill.loss_*`` and mmengine
    logs them as training scalars.

    Args:
        num_batches (int): validation batches probed per validation (per rank).
    """

    priority = 'NORMAL'  # after RuntimeInfoHook (VERY_HIGH) stores the metrics, before LoggerHook (BELOW_NORMAL)

    def __init__(self, num_batches: int = 4) -> None:
        if not isinstance(num_batches, int) or num_batches < 1:
            raise ValueError(f'DistillMetricsHook: num_batches must be a positive int, got {num_batches!r}')
        self.num_batches = num_batches

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
        scalars = self.compute(runner.model, dataloader, gt_boxes_need_rescale(dataloader.dataset),
                               warn=runner.logger.warning)
        for key, value in scalars.items():
            runner.message_hub.update_scalar(f'val/{key}', value)

    @torch.no_grad()
    def compute(self, model: nn.Module, batches: Iterable, rescale_gt: bool = False,
                warn=print) -> Dict[str, float]:
        """The metrics (keys without ``val/``) on the first ``num_batches`` of ``batches`` (data batches as a
        dataloader yields them); ``model`` is a plain model or a distillation algorithm, possibly wrapped."""
        inner = model.module if is_model_wrapper(model) else model
        student, teacher = split_models(inner)
        roles = dict(student=student) if teacher is None else dict(student=student, teacher=teacher)
        outputs = {role: [] for role in roles}
        weights = {}
        with preserved_rng(), _eval_mode(inner):
            for i, batch in enumerate(batches):
                if i >= self.num_batches:
                    break
                data = inner.data_preprocessor(batch, False)
                for role, net in roles.items():
                    inputs = data['inputs']
                    if role == 'teacher' and hasattr(inner, 'teacher_inputs'):
                        inputs = inner.teacher_inputs(inputs)
                    feat, logits, labels, weight = probe_outputs(net, inputs, data['data_samples'], rescale_gt)
                    outputs[role].append((feat.float().cpu(), logits.float().cpu(), labels.cpu()))
                    weights[role] = weight
        if get_world_size() > 1:
            outputs = {role: [o for rank in all_gather_object(outs) for o in rank] for role, outs in outputs.items()}
        scalars, logits = {}, {}
        for role, outs in outputs.items():
            feats, role_logits, labels = (torch.cat(t) for t in zip(*outs)) if outs else (None, None, None)
            if feats is None or not len(labels):
                warn(f'DistillMetricsHook: no {role} samples in {self.num_batches} validation batches; nothing '
                     f'logged.')
                continue
            logits[role] = role_logits
            num_classes = weights[role].shape[0] - (1 if model_task(roles[role]) == 'det' else 0)
            scalars[f'nc/{role}_top1'] = float((role_logits.argmax(1) == labels).double().mean())
            try:
                nc = nc_summary(feats, labels, num_classes, weights[role])
            except ValueError as e:
                warn(f'DistillMetricsHook: {role} NC metrics skipped ({e}); probe more batches (num_batches).')
                continue
            scalars.update({f'nc/{role}_{name}': value for name, value in nc.items()})
        if len(logits) == 2 and logits['student'].shape == logits['teacher'].shape:
            scalars['distill/top1_agreement'] = top1_agreement(logits['student'], logits['teacher'])
        return scalars
