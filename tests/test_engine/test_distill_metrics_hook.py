"""DistillMetricsHook: NC1-NC3 and teacher-student agreement logged with every validation.

In-process: the metrics on constructed inputs. Through tools/train.py (tiny generated data, a few iterations): the
keys in ``vis_data/scalars.json`` and a training that is bit-identical with and without the hook.
"""
import copy
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement
from torch import nn

import mmkd  # noqa: F401
from mmkd.datasets.synthetic import generate_cifar_like, generate_coco_detection
from mmkd.engine.hooks import DistillMetricsHook
from mmkd.engine.hooks.distill_metrics_hook import gt_boxes_need_rescale, probe_outputs, top1_agreement
from mmkd.registry import HOOKS, MODELS
from mmkd.structures.nc_metrics import nc1, nc_summary

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NC_NAMES = ('nc1', 'nc2', 'nc2_equinorm', 'nc2_equiangle', 'nc2_maxangle', 'nc2w_equinorm', 'nc2w_equiangle',
            'nc2w_maxangle', 'nc3', 'nc4', 'top1')
PROBE_KEYS = {'nc/probe_batches', 'nc/probe_samples', 'nc/probe_min_count', 'nc/probe_classes_below_min'}
STUDENT_KEYS = {f'nc/student_{name}' for name in NC_NAMES} | PROBE_KEYS
TEACHER_KEYS = {f'nc/teacher_{name}' for name in NC_NAMES} | {'distill/top1_agreement'}
COLOURS = torch.tensor([[220., 30., 30.], [30., 220., 30.], [30., 30., 220.]])  # one per class


class ImageAsFeatureMap(nn.Module):
    """Backbone returning the image itself: after global pooling the feature is the mean colour."""

    def forward(self, x):
        return (x, )


def classifier(num_classes: int = 3):
    init_default_scope('mmkd')
    model = MODELS.build(dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ImgDataPreprocessor', mean=[128.] * 3, std=[64.] * 3),
        backbone=dict(type='CIFARResNet', arch='resnet8'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=3)))
    model.backbone = ImageAsFeatureMap()
    return model


def colour_batches(noise: float, num_batches: int = 3, per_class: int = 4, seed: int = 0, labels_per_batch=None):
    """Batches of 8x8 images of class k = colour k + N(0, noise^2) per pixel (labels 0, 1, 2, 0, 1, 2, ..., or
    the lists of ``labels_per_batch``)."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for b in range(num_batches if labels_per_batch is None else len(labels_per_batch)):
        labels = torch.arange(3).repeat(per_class) if labels_per_batch is None else torch.tensor(labels_per_batch[b])
        imgs = COLOURS[labels][:, :, None, None] + noise * torch.randn(len(labels), 3, 8, 8, generator=gen)
        batches.append(dict(inputs=list(imgs.clamp(0, 255)),
                            data_samples=[BaseDataElement(gt_label=torch.tensor([int(y)])) for y in labels]))
    return batches


def test_registered_and_validates_arguments():
    assert HOOKS.get('DistillMetricsHook') is DistillMetricsHook
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match='min_per_class must be an int >= 2'):
            DistillMetricsHook(min_per_class=bad)
    for bad in (0, -1, 1.0):
        with pytest.raises(ValueError, match='max_batches must be a positive int'):
            DistillMetricsHook(max_batches=bad)
    with pytest.raises(ValueError, match='write max_batches=4 instead of num_batches'):
        DistillMetricsHook(num_batches=4)


def test_every_config_builds_its_hook():
    """The configs that log NC metrics build the hook with the current arguments (num_batches was replaced)."""
    paths = [p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
             if 'DistillMetricsHook' in open(p).read()]
    assert paths
    for path in paths:
        hooks = [h for h in Config.fromfile(path).get('custom_hooks', []) if 'DistillMetricsHook' in h['type']]
        for cfg in hooks:
            hook = HOOKS.build(dict(cfg, type='mmkd.DistillMetricsHook'))
            assert hook.min_per_class >= 2 and hook.max_batches >= 1, path


def test_nc1_grows_with_within_class_noise_and_matches_direct_features():
    model = classifier()
    hook = DistillMetricsHook(min_per_class=12, max_batches=10)  # 4 per class and batch: 3 batches
    values = {}
    for noise in (4.0, 64.0):
        batches = colour_batches(noise)
        out = hook.compute(model, batches)
        assert set(out) == STUDENT_KEYS  # no teacher: the student's metrics only
        assert out['nc/probe_batches'] == 3 and out['nc/probe_samples'] == 36 and out['nc/probe_min_count'] == 12
        assert out['nc/probe_classes_below_min'] == 0
        # the same metric computed directly on the mean colours of all 3 batches
        data = [model.data_preprocessor(b, False) for b in batches]
        feats = torch.cat([d['inputs'].mean(dim=(2, 3)) for d in data])
        labels = torch.cat([torch.tensor([int(s.gt_label) for s in d['data_samples']]) for d in data])
        assert out['nc/student_nc1'] == pytest.approx(nc1(feats, labels, 3), rel=1e-5)
        logits = model.head.fc(feats)
        expected = nc_summary(feats, labels, 3, model.head.fc.weight, logits)
        assert {k: v for k, v in out.items() if k.startswith('nc/student_nc')} == pytest.approx(
            {f'nc/student_{k}': v for k, v in expected.items()}, rel=1e-5, abs=1e-9)
        assert out['nc/student_top1'] == float((logits.argmax(1) == labels).double().mean())
        values[noise] = out['nc/student_nc1']
    # pooled over 64 pixels the feature noise is noise / 8: NC1 ~ noise^2, so 16x the noise gives ~256x the NC1
    assert values[64.0] > 50 * values[4.0]
    assert values[4.0] < 1e-2


def test_probe_stops_at_min_per_class_or_max_batches_and_training_mode_is_restored():
    model = classifier()
    model.train()
    seen = []
    model.data_preprocessor.register_forward_hook(lambda m, args, out: seen.append(len(out['inputs'])))
    DistillMetricsHook(min_per_class=8).compute(model, colour_batches(4.0, num_batches=5))
    assert seen == [12, 12] and model.training and model.head.training  # 4 per class and batch: 2 batches
    seen.clear()
    out = DistillMetricsHook(min_per_class=100, max_batches=3).compute(model, colour_batches(4.0, num_batches=5))
    assert seen == [12, 12, 12] and out['nc/probe_classes_below_min'] == 3
    assert not any(k.startswith('nc/student_nc') for k in out)  # no class reached the minimum


def test_rare_class_is_waited_for_then_excluded_and_reported():
    """Class 2 appears once in the first batch: the probe continues past the batch where classes 0 and 1 have
    enough samples, and a class still below the minimum at the cap is left out of every NC metric (its single
    sample would give it zero within-class scatter) and named in the report."""
    model = classifier()
    labels = [[0, 1, 0, 1, 2], [0, 1, 0, 1], [0, 1, 0, 1], [0, 1, 2, 2], [0, 1]]
    batches = colour_batches(16.0, labels_per_batch=labels)
    seen = []
    model.data_preprocessor.register_forward_hook(lambda m, args, out: seen.append(len(out['inputs'])))
    messages = []
    hook = DistillMetricsHook(min_per_class=3)
    out = hook.compute(model, batches, info=messages.append, class_names=('red', 'green', 'blue'))
    assert seen == [5, 4, 4, 4]  # 0 and 1 had 4 each after batch 2; 2 reached 3 in batch 4; batch 5 not probed
    assert hook.last_probe == dict(batches=4, counts=[7, 7, 3], below_min=[])
    seen.clear()
    out = hook.compute(model, batches[:3], info=messages.append, class_names=('red', 'green', 'blue'))
    assert seen == [5, 4, 4] and hook.last_probe == dict(batches=3, counts=[6, 6, 1], below_min=[2])
    assert out['nc/probe_classes_below_min'] == 1 and out['nc/probe_min_count'] == 1
    assert 'per-class counts [6, 6, 1]' in messages[-1] and '2 (blue): 1' in messages[-1]
    data = [model.data_preprocessor(b, False) for b in batches[:3]]
    feats = torch.cat([d['inputs'].mean(dim=(2, 3)) for d in data])
    y = torch.tensor([v for batch in labels[:3] for v in batch])
    keep = y < 2
    assert out['nc/student_nc1'] == pytest.approx(nc1(feats[keep], y[keep], 3), rel=1e-5)
    assert out['nc/student_nc1'] != pytest.approx(nc1(feats, y, 3), rel=1e-3)
    assert out['nc/student_top1'] == pytest.approx(
        float((model.head.fc(feats).argmax(1) == y).double().mean()))  # top-1 over every sample


def test_teacher_equal_to_student_agrees_and_has_the_same_nc():
    """A ClsDistill whose teacher is a copy of the student: equal NC metrics, agreement 1; a teacher with its
    classifier rows permuted: the same NC1/NC2 (they do not read the classifier) but no agreement."""
    student = classifier()
    algo = MODELS.build(dict(type='ClsDistill', architecture=student, teacher=copy.deepcopy(student),
                             distiller=dict(type='ConfigurableDistiller')))
    batches = colour_batches(16.0)
    out = DistillMetricsHook(min_per_class=12).compute(algo, batches)
    assert set(out) == STUDENT_KEYS | TEACHER_KEYS
    for name in NC_NAMES:
        assert out[f'nc/teacher_{name}'] == pytest.approx(out[f'nc/student_{name}'], rel=1e-5), name
    assert out['distill/top1_agreement'] == 1.0
    with torch.no_grad():
        algo.teacher.head.fc.weight.copy_(algo.teacher.head.fc.weight[[1, 2, 0]])
        algo.teacher.head.fc.bias.copy_(algo.teacher.head.fc.bias[[1, 2, 0]])
    shifted = DistillMetricsHook(min_per_class=12).compute(algo, batches)
    assert shifted['nc/teacher_nc1'] == pytest.approx(out['nc/teacher_nc1'], rel=1e-6)
    assert shifted['nc/teacher_nc3'] != pytest.approx(out['nc/teacher_nc3'], rel=1e-3)
    assert shifted['distill/top1_agreement'] < 0.5


def test_random_states_are_restored():
    """Iterating a dataloader draws a worker seed from torch's generator: the hook puts every state back."""
    import random

    import numpy as np
    from torch.utils.data import DataLoader
    batches = colour_batches(4.0)
    loader = DataLoader(batches, batch_size=None, shuffle=True)  # shuffling draws from torch's generator too
    model = classifier()
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    DistillMetricsHook(max_batches=2).compute(model, loader)
    after = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    assert torch.equal(before[0], after[0]) and (before[1] == after[1]).all() and before[2] == after[2]
    next(iter(loader))
    assert not torch.equal(torch.get_rng_state(), before[0])  # what the hook undid


def test_top1_agreement_and_too_few_classes():
    a = torch.tensor([[1., 0.], [0., 1.], [1., 0.], [0., 1.]])
    assert top1_agreement(a, a.flip(1)) == 0.0 and top1_agreement(a, a) == 1.0
    with pytest.raises(ValueError, match='of one shape'):
        top1_agreement(a, a[:2])
    warnings = []
    batches = [dict(inputs=[torch.zeros(3, 8, 8)] * 2, data_samples=[BaseDataElement(gt_label=torch.tensor([1]))] * 2)]
    out = DistillMetricsHook(min_per_class=2, max_batches=1).compute(classifier(), batches, warn=warnings.append)
    assert set(out) == {'nc/student_top1'} | PROBE_KEYS and 'at least 2 are needed' in warnings[0]


# ------------------------------------------------------------------------------------------ detection probe
def test_detection_probe_takes_gt_boxes_in_input_coordinates(tmp_path):
    """The detector's RoI head sees the ground-truth boxes in the input's coordinates: loaded after Resize
    (mmdet's test pipelines), they are scaled by scale_factor."""
    from mmengine.runner import Runner
    data = generate_coco_detection(tmp_path / 'data', num_train=2, num_val=2, img_size=64, num_classes=3)
    cfg = Config.fromfile(osp.join(REPO, 'configs/demo/faster_rcnn_r18_baseline.py'))
    init_default_scope('mmdet')
    for loader in (cfg.val_dataloader, ):
        loader.dataset.data_root = data['data_root'] + '/'
        loader.num_workers, loader.persistent_workers, loader.batch_size = 0, False, 2
    with open(data['val_ann_file']) as f:
        classes = tuple(c['name'] for c in sorted(json.load(f)['categories'], key=lambda c: c['id']))
    cfg.val_dataloader.dataset.metainfo = dict(classes=classes)
    cfg.model.roi_head.bbox_head.num_classes = len(classes)
    cfg.val_dataloader.dataset.pipeline[1].scale = (128, 128)  # 64 px images upscaled 2x
    loader = Runner.build_dataloader(cfg.val_dataloader, seed=0)
    assert gt_boxes_need_rescale(loader.dataset)  # LoadAnnotations after Resize
    model = MODELS.build(cfg.model).eval()
    batch = next(iter(loader))
    data_pp = model.data_preprocessor(batch, False)
    rois = []
    model.roi_head.bbox_roi_extractor.register_forward_pre_hook(lambda m, args: rois.append(args[1]))
    with torch.no_grad():
        feat, logits, labels, weight = probe_outputs(model, data_pp['inputs'], data_pp['data_samples'], True)
    original = torch.cat([s.gt_instances.bboxes for s in data_pp['data_samples']])
    assert torch.allclose(rois[0][:, 1:], original * 2)
    assert len(original) > 0
    width = model.roi_head.bbox_head.fc_cls.in_features
    assert feat.shape == (len(original), width) and logits.shape == (len(original), 4) and weight.shape == (4, width)
    assert torch.equal(labels, torch.cat([s.gt_instances.labels for s in data_pp['data_samples']]))


# ------------------------------------------------------------------------------------------ through tools/train.py
def train(config: str, work_dir, *options: str) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir)]
    if options:
        cmd += ['--cfg-options', *options]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    return proc.stdout + proc.stderr


def scalars(work_dir) -> list:
    (path, ) = glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f]


def with_hook(tmp_path, base: str, name: str, hook: bool = True) -> str:
    """``base`` with (only) our DistillMetricsHook, or without any, and a fixed seed."""
    config = tmp_path / f'{name}.py'
    hooks = "[dict(type='mmkd.DistillMetricsHook', min_per_class=2, max_batches=2)]" if hook else '[]'
    config.write_text(f"_base_ = '{osp.join(REPO, base)}'\n"
                      "custom_hooks = [h for h in _base_.get('custom_hooks', []) "
                      f"if 'DistillMetricsHook' not in h['type']] + {hooks}\nrandomness = dict(seed=0)\n")
    return str(config)


def det_options(data) -> list:
    opts = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts[f'{loader}.dataset.data_root'] = data['data_root'] + '/'
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
    for evaluator in ('val_evaluator', 'test_evaluator'):
        opts[f'{evaluator}.ann_file'] = data['val_ann_file']
    opts.update({'train_dataloader.batch_size': 2, 'val_dataloader.batch_size': 2, 'train_cfg.max_iters': 2,
                 'train_cfg.val_interval': 1, 'default_hooks.checkpoint.interval': 2,
                 'default_hooks.logger.interval': 1, 'default_hooks.logger.log_metric_by_epoch': False})
    return [f'{k}={v}' for k, v in opts.items()]


@pytest.fixture(scope='module')
def det_data(tmp_path_factory):
    classes = Config.fromfile(osp.join(REPO, 'configs/demo/faster_rcnn_r50_teacher.py')).metainfo['classes']
    return generate_coco_detection(tmp_path_factory.mktemp('det'), num_train=4, num_val=4, img_size=64,
                                   num_classes=len(classes), min_object_size=16)


def test_detection_run_logs_the_metrics_and_trains_exactly_as_without_the_hook(det_data, tmp_path):
    """RoIDistill (KD, random teacher) for 2 iterations, validated after each: the hook's keys are in the
    validation entries of scalars.json next to the mAP, finite; distill.loss_kd is a training scalar; and the
    weights and mAP after 2 iterations are those of the same run without the hook (it validates after
    iteration 1, so its extra dataloader pass and forwards would shift the RoI sampling of iteration 2 if the
    random state were not restored)."""
    config = 'configs/demo/faster_rcnn_r50_r18_kd.py'
    opts = det_options(det_data) + ['model.teacher_ckpt=None', 'model.allow_random_teacher=True']
    runs = {}
    for hook in (True, False):
        work_dir = tmp_path / f'hook_{hook}'
        train(with_hook(tmp_path, config, f'kd_{hook}', hook), work_dir, *opts)
        runs[hook] = (scalars(work_dir), torch.load(work_dir / 'iter_2.pth', weights_only=False)['state_dict'])
    records, state = runs[True]
    val = [r for r in records if 'coco/bbox_mAP' in r]
    assert [r['step'] for r in val] == [1, 2]
    for r in val:
        assert STUDENT_KEYS | TEACHER_KEYS <= set(r), sorted(r)
        assert all(math.isfinite(r[k]) for k in STUDENT_KEYS | TEACHER_KEYS)
        assert 0 <= r['distill/top1_agreement'] <= 1
    train_records = [r for r in records if 'loss' in r]
    assert train_records and all('distill.loss_kd' in r and 'student.loss_cls' in r for r in train_records)
    assert not any(k.startswith(('nc/', 'distill/')) for r in train_records for k in r)
    records0, state0 = runs[False]
    assert not any(k.startswith('nc/') for r in records0 for k in r)
    assert [r['coco/bbox_mAP'] for r in records0 if 'coco/bbox_mAP' in r] == [r['coco/bbox_mAP'] for r in val]
    assert state.keys() == state0.keys()
    for key in state:
        assert torch.equal(state[key], state0[key]), key


def test_student_alone_run_logs_student_metrics_only(tmp_path):
    data = generate_cifar_like(tmp_path / 'cifar', num_train=16, num_test=16, num_classes=10)
    opts = [f'{loader}.dataset.data_root={data["data_root"]}' for loader in ('train_dataloader', 'val_dataloader')]
    opts += ['train_dataloader.batch_size=8', 'val_dataloader.batch_size=8', 'train_cfg.max_epochs=1',
             'train_cfg.val_interval=1', 'param_scheduler.milestones=[1]',  # the student's x0.1 steps
             'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1']
    train(with_hook(tmp_path, 'configs/cls/synthetic/res8_baseline_synthetic.py', 'baseline'), tmp_path / 'run',
          *opts)
    (val, ) = [r for r in scalars(tmp_path / 'run') if 'accuracy/top1' in r]
    assert STUDENT_KEYS <= set(val) and not any(k in val for k in TEACHER_KEYS)
    assert all(math.isfinite(val[k]) for k in STUDENT_KEYS)
    assert 0 <= val['nc/student_top1'] <= 1
