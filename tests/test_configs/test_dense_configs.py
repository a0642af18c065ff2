"""Every dense-detector config (GFL, RetinaNet, RTMDet on COCO; the demo GFL pair) parses, builds (a random teacher,
no download) and trains one step on two generated 32x32 images (one full-size pair at 64x64)."""
import glob
import os.path as osp

import mmdet
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmkd.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(osp.relpath(p, REPO) for pattern in ('gfl_*.py', 'retinanet_*.py', 'rtmdet_*.py', 'demo/gfl_*.py')
                 for p in glob.glob(osp.join(REPO, 'configs', pattern)))


def _no_pretrained(model: dict, narrow: bool = True) -> None:
    """No download: the detector starts random (init_cfg=None). ``narrow``: the COCO backbones (ResNet-50/101,
    CSPNeXt) narrowed to keep this file fast (ResNet base_channels 16, CSPNeXt widen 1/16 of l's, one CSP block):
    depth, necks and heads stay as configured, and test_full_size_pair_trains_one_step runs one pair as it is."""
    for part in ('backbone', 'neck', 'bbox_head'):
        if isinstance(model.get(part), dict):
            model[part]['init_cfg'] = None
    backbone, neck = model['backbone'], model['neck']
    if not narrow:
        return
    if backbone['type'] == 'ResNet' and backbone.get('base_channels', 64) == 64 and backbone['depth'] >= 50:
        backbone['base_channels'] = 16
        neck['in_channels'] = [64, 128, 256, 512]
    elif backbone['type'] == 'CSPNeXt':
        scale = backbone['widen_factor'] / 16
        backbone.update(widen_factor=scale, deepen_factor=0.33)
        neck.update(in_channels=[int(c * scale) for c in (256, 512, 1024)], num_csp_blocks=1)


def _data(num_classes: int, size: int = 32) -> dict:
    """Two images of ``size`` px (PKD's per-channel std over a 1x1 level of one image would be NaN)."""
    gen = torch.Generator().manual_seed(0)
    samples = []
    for boxes in ([[4., 5., 20., 25.], [15., 10., 30., 22.]], [[2., 2., 15., 18.]]):
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes),
                                           labels=torch.arange(len(boxes)) % num_classes)
        samples.append(sample)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=gen) for _ in samples],
                data_samples=samples)


def test_every_dense_config_is_covered():
    names = {osp.basename(c) for c in CONFIGS}
    for method in ('ld', 'pkd', 'cwd', 'fgd', 'crosskd', 'crosskd_pkd', 'nd'):
        assert f'gfl_r101_r50_{method}.py' in names and f'gfl_r50_r18_{method}.py' in names
    assert {'retinanet_r101_r50_pkd.py', 'retinanet_r101_r50_fgd.py', 'retinanet_r101_r50_crosskd.py',
            'rtmdet_l_s_pkd.py', 'rtmdet_l_s_crosskd.py', 'gfl_r50_baseline.py', 'retinanet_r50_baseline.py',
            'rtmdet_s_baseline.py', 'gfl_r18_baseline.py', 'gfl_r50_teacher.py'} <= names


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_and_trains_one_step(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    model_cfg = cfg.model
    distill = model_cfg.get('type') == 'DenseDistill'
    if distill:
        assert model_cfg.teacher_ckpt  # every distillation config names its teacher's checkpoint
        # the teacher's BatchNorms unfolded (their folding costs a traced forward; test_full_size_pair_trains_one_step
        # runs the default)
        model_cfg.update(teacher_ckpt=None, allow_random_teacher=True, teacher_fuse_conv_bn=False)
        if model_cfg.get('student_init_from_teacher'):  # FGD's init_student copies from teacher_ckpt: none here
            assert ('fgd' in config or 'init_only' in config) and \
                list(model_cfg.student_init_from_teacher) == ['neck', 'bbox_head']
            model_cfg.student_init_from_teacher = []
        _no_pretrained(model_cfg.architecture)
        _no_pretrained(model_cfg.teacher)
        num_classes = model_cfg.architecture.bbox_head.num_classes
    else:
        _no_pretrained(model_cfg)
        num_classes = model_cfg.bbox_head.num_classes
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdet')):
        model = revert_sync_batchnorm(MODELS.build(model_cfg))
    if distill and model.class_means is not None:
        cm = model.class_means
        cm.update(torch.rand(cm.num_classes, cm.feat_dim) + 0.1, torch.arange(cm.num_classes))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    log = model.train_step(_data(num_classes), OptimWrapper(torch.optim.SGD(params, lr=1e-3)))
    assert all(torch.isfinite(v).all() for v in log.values())
    if distill:  # init_only is the start of FGD's recipe without any loss
        assert any(k.startswith('distill.') for k in log) != config.endswith('init_only.py'), sorted(log)
    assert any(not torch.equal(p, b) for p, b in zip(params, before))


def test_full_size_pair_trains_one_step():
    """GFL R101 -> R50 at full width, CrossKD + PKD (every path of the algorithm at once)."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/gfl_r101_r50_crosskd_pkd.py'))
    model_cfg = cfg.model
    model_cfg.update(teacher_ckpt=None, allow_random_teacher=True)
    _no_pretrained(model_cfg.architecture, narrow=False)
    _no_pretrained(model_cfg.teacher, narrow=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(model_cfg)
    assert model.teacher.backbone.layer3[22] is not None  # ResNet-101
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    log = model.train_step(_data(80, size=64), OptimWrapper(torch.optim.SGD(params, lr=1e-3)))
    assert {'distill.loss_cls_kd', 'distill.loss_reg_kd', 'distill.loss_pkd'} <= set(log)
    assert all(torch.isfinite(v).all() for v in log.values())


def test_rtmdet_teacher_is_mmdets_rtmdet_l():
    """The RTMDet-l teacher, written as the student's model with RTMDet-l's widths, has exactly the weights of
    mmdet's rtmdet_l_8xb32-300e_coco model (so the model zoo checkpoint loads into it)."""
    ours = Config.fromfile(osp.join(REPO, 'configs/rtmdet_l_s_pkd.py')).model.teacher
    mmdet_l = Config.fromfile(osp.join(osp.dirname(mmdet.__file__),
                                       '.mim/configs/rtmdet/rtmdet_l_8xb32-300e_coco.py')).model
    with DefaultScope.overwrite_default_scope('mmdet'):
        shapes = [{k: v.shape for k, v in MODELS.build(m).state_dict().items()} for m in (ours, mmdet_l)]
    assert shapes[0] == shapes[1]


def test_rtmdet_teacher_collects_class_features():
    """ClassMeansHook's teacher pass on RTMDet: its own dynamic assignment on its own predictions."""
    model_cfg = Config.fromfile(osp.join(REPO, 'configs/rtmdet_l_s_pkd.py')).model
    model_cfg.update(teacher_ckpt=None, allow_random_teacher=True, teacher_fuse_conv_bn=False)
    _no_pretrained(model_cfg.architecture)
    _no_pretrained(model_cfg.teacher)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = revert_sync_batchnorm(MODELS.build(model_cfg))
    assert model.class_means_shape() == (80, 256)
    data = model.data_preprocessor(_data(80), True)
    feats, labels = model.collect_class_features(data['inputs'], data['data_samples'])
    assert feats.shape == (len(labels), 256) and len(labels) > 0 and set(labels.tolist()) <= {0, 1}


def test_rtmdet_hooks_build():
    """mmdet's EMA and pipeline switch at epoch 280 kept, and mmrazor's StopDistillHook at the same epoch."""
    from mmengine.registry import HOOKS
    cfg = Config.fromfile(osp.join(REPO, 'configs/rtmdet_l_s_crosskd.py'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        hooks = [HOOKS.build(h) for h in cfg.custom_hooks]
    names = [type(h).__name__ for h in hooks]
    assert names == ['EMAHook', 'PipelineSwitchHook', 'StopDistillHook']
    assert hooks[1].switch_epoch == hooks[2].stop_epoch == 280
