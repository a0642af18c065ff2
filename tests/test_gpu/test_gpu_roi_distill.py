"""RoIDistill on a CUDA device: RoI correspondence, the folded channels-last teacher through mmcv's CUDA
``roi_align``, and mixed-precision (AMP) training steps, in process and through ``tools/train.py --amp``."""
import copy
import os
import os.path as osp
import re
import subprocess
import sys

import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmkd.datasets.synthetic import generate_coco_detection
from mmkd.registry import MODELS
from mmkd.testing import randomise_batchnorms

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CUDA = torch.device('cuda')


def demo_model_cfg(method: str = 'nd', **overrides) -> dict:
    """The demo distillation config's model dict (R50 -> R18), without a teacher checkpoint."""
    cfg = Config.fromfile(osp.join(REPO, f'configs/demo/faster_rcnn_r50_r18_{method}.py'))
    model = copy.deepcopy(cfg.model)
    model.update({'teacher_ckpt': None, **overrides})
    model.setdefault('allow_random_teacher', not model.get('teacher_ckpt'))  # a random teacher is enough here
    return model


def build(model_cfg: dict):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(model_cfg)


def batch(num_images: int = 2, size: int = 128, seed: int = 0):
    """Normalised random images on the GPU with 3 random boxes each (labels in [0, 8))."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(num_images, 3, size, size, generator=gen)
    samples = []
    for _ in range(num_images):
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
                                             scale_factor=(1., 1.), batch_input_shape=(size, size)))
        xy = torch.rand(3, 2, generator=gen) * size * 0.6
        wh = 8 + torch.rand(3, 2, generator=gen) * size * 0.35
        sample.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                           labels=torch.randint(0, 8, (3, ), generator=gen))
        samples.append(sample.to(CUDA))
    return inputs.to(CUDA), samples


def fill_class_means(model, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    cm = model.class_means
    feats = torch.rand(cm.num_classes * 4, cm.feat_dim, generator=gen)
    cm.update(feats.to(cm.means.device), torch.arange(cm.num_classes, device=cm.means.device).repeat(4))


def records(model):
    get = model.distiller.get_record
    return dict(s_feat=get('roi_feat', True, data_idx=0), t_feat=get('roi_feat', False, data_idx=0),
                s_logits=get('roi_logits', True), t_logits=get('roi_logits', False),
                rois=get('rois', True, data_idx=1))


def test_teacher_roi_tensors_match_the_students_roi_by_roi_on_cuda(mmcv_cuda_ops, exact_fp32):
    """Teacher = student (same R18 weights, unfused, NCHW): on the GPU too, row i of every teacher RoI tensor is
    the student's row i, so the teacher's RoI head ran on the student's sampled RoIs."""
    cfg = demo_model_cfg('nd', teacher_fuse_conv_bn=False, teacher_channels_last=False)
    cfg['architecture']['backbone']['norm_eval'] = True
    cfg['teacher'] = copy.deepcopy(cfg['architecture'])
    model = build(cfg).to(CUDA)
    model.teacher.load_state_dict(model.student.state_dict())
    fill_class_means(model)
    model.train()
    losses = model.loss(*batch())
    rec = records(model)
    assert rec['s_feat'].is_cuda and rec['rois'].is_cuda and len(rec['rois']) == len(rec['t_feat']) > 0
    torch.testing.assert_close(rec['t_feat'], rec['s_feat'].detach(), rtol=0, atol=1e-4)
    torch.testing.assert_close(rec['t_logits'], rec['s_logits'].detach(), rtol=0, atol=1e-4)
    assert losses['distill.loss_kd'].abs() < 1e-4 and torch.isfinite(losses['distill.loss_nd'])


def test_folded_channels_last_teacher_step_through_cuda_roi_align(tmp_path, mmcv_cuda_ops, exact_fp32):
    """The default teacher (BatchNorms folded after its checkpoint is loaded, channels-last) on the GPU: its RoI
    features, pooled by mmcv's CUDA roi_align from channels-last maps, equal those of the same weights run as
    the (NCHW, unfused) student; then one full training step updates the student only."""
    cfg = demo_model_cfg('nd')
    cfg['architecture']['backbone']['norm_eval'] = True
    student = build(cfg).student
    randomise_batchnorms(student)
    ckpt = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=student.state_dict()), ckpt)
    cfg.update(teacher=copy.deepcopy(cfg['architecture']), teacher_ckpt=str(ckpt))
    model = build(cfg)
    model.student.load_state_dict(student.state_dict())
    model.to(CUDA)
    fill_class_means(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.teacher.modules())
    assert model.teacher.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    before = model.student.roi_head.bbox_head.fc_cls.weight.detach().clone()
    losses = model.loss(*batch())
    rec = records(model)
    s_feat, s_logits = rec['s_feat'].detach(), rec['s_logits'].detach()
    torch.testing.assert_close(rec['t_feat'], s_feat, rtol=0, atol=1e-4 * float(s_feat.abs().max()))
    torch.testing.assert_close(rec['t_logits'], s_logits, rtol=0, atol=1e-4 * float(s_logits.abs().max()))
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert not torch.equal(model.student.roi_head.bbox_head.fc_cls.weight, before)
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())


def test_amp_training_step_runs_the_models_in_float16_and_the_losses_in_fp32(mmcv_cuda_ops):
    """What ``--amp`` configures on a GPU (mmengine's AmpOptimWrapper: float16 autocast, dynamic loss scaling):
    the student and teacher RoI tensors come out in float16, every distillation loss is a finite float32, and
    the step updates the student."""
    dtype = 'float16'
    model = build(demo_model_cfg('nd')).to(CUDA)
    fill_class_means(model)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    wrapper = AmpOptimWrapper(optimizer=optimizer, loss_scale='dynamic', dtype=dtype)
    before = model.student.roi_head.bbox_head.fc_cls.weight.detach().clone()
    with wrapper.optim_context(model):
        losses = model.loss(*batch())
    rec = records(model)
    low = getattr(torch, dtype)
    assert rec['s_logits'].dtype == rec['t_logits'].dtype == low and rec['t_feat'].dtype == low
    for name in ('distill.loss_kd', 'distill.loss_nd'):
        assert losses[name].dtype == torch.float32 and torch.isfinite(losses[name]), (name, losses[name])
    loss, _ = model.parse_losses(losses)
    wrapper.update_params(loss)
    after = model.student.roi_head.bbox_head.fc_cls.weight
    assert after.dtype == torch.float32 and torch.isfinite(after).all() and not torch.equal(after, before)


def test_amp_step_with_nan_teacher_outputs_is_skipped_by_the_loss_scaler(mmcv_cuda_ops):
    """Under mmengine's AmpOptimWrapper, a step whose teacher outputs are NaN makes no update (the algorithm
    hands GradScaler a non-finite gradient: it skips the step and lowers its scale), is counted, and the next
    finite step updates again."""
    model = build(demo_model_cfg('nd')).to(CUDA)
    fill_class_means(model)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9,
                                weight_decay=1e-4)
    wrapper = AmpOptimWrapper(optimizer=optimizer, loss_scale='dynamic', dtype='float16')
    weight = model.teacher.roi_head.bbox_head.fc_cls.weight
    saved = weight.detach().clone()

    def step():
        with wrapper.optim_context(model):
            losses = model.loss(*batch())
        wrapper.update_params(model.parse_losses(losses)[0])

    step()  # momentum buffers exist from here on: a zero gradient would still move the weights
    before = [p.detach().clone() for p in model.student.parameters()]
    scale = wrapper.loss_scaler.get_scale()
    with torch.no_grad():
        weight[0, 0] = float('nan')
    step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.student.parameters()))
    assert model.nonfinite_skipped_steps == 1 and wrapper.loss_scaler.get_scale() < scale
    with torch.no_grad():
        weight.copy_(saved)
    step()
    assert not all(torch.equal(a, b) for a, b in zip(before, model.student.parameters()))
    assert model._nonfinite_in_a_row == 0


def test_train_tool_with_amp_on_the_gpu(tmp_path, mmcv_cuda_ops):
    """``tools/train.py --amp``: the demo teacher, then the ND student from it, 2 iterations each on the GPU."""
    data = generate_coco_detection(tmp_path / 'data', num_train=8, num_val=4, img_size=64)
    opts = {'train_cfg.max_iters': 2, 'train_cfg.val_interval': 1000, 'default_hooks.checkpoint.interval': 2,
            'default_hooks.logger.interval': 1, 'train_dataloader.batch_size': 2}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts[f'{loader}.dataset.data_root'] = data['data_root'] + '/'
    for evaluator in ('val_evaluator', 'test_evaluator'):
        opts[f'{evaluator}.ann_file'] = data['val_ann_file']

    def train(config, work_dir, **extra):
        options = [f'{k}={v}' for k, v in dict(opts, **extra).items()]
        cmd = [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir), '--amp', '--cfg-options',
               *options]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, PYTHONUNBUFFERED='1'))
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-6000:]
        return out

    train('configs/demo/faster_rcnn_r50_teacher.py', tmp_path / 'teacher')
    log = train('configs/demo/faster_rcnn_r50_r18_nd.py', tmp_path / 'nd',
                **{'model.teacher_ckpt': str(tmp_path / 'teacher' / 'iter_2.pth')})
    assert 'Iter(train) [2/2]' in log
    dumped = (tmp_path / 'nd' / 'faster_rcnn_r50_r18_nd.py').read_text()  # the config the runner ran
    assert "type='AmpOptimWrapper'" in dumped and "loss_scale='dynamic'" in dumped
    losses = re.findall(r'(distill\.loss_\w+): (\S+)', log)
    assert {name for name, _ in losses} >= {'distill.loss_kd', 'distill.loss_nd'}
    assert all(torch.isfinite(torch.tensor(float(v))) for _, v in losses), losses
