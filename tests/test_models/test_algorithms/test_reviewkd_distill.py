"""ReviewKD / ReviewKD++ in RoIDistill (demo configs, R50 -> R18): what runs, what is recorded, what trains."""
import copy
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from test_roi_distill import REPO, batch, build, demo_model_cfg, fill_class_means  # noqa: E402


def forbid(*args, **kwargs):
    raise AssertionError('the teacher must not run this')


def test_reviewkd_runs_only_the_teachers_backbone_and_neck(monkeypatch):
    model = build(demo_model_cfg('reviewkd'))
    assert model._teacher_runs and not model._teacher_runs_roi_head
    monkeypatch.setattr(model.teacher.roi_head, '_bbox_forward', forbid)
    monkeypatch.setattr(model.teacher, 'loss', forbid)
    model.train()
    inputs, samples = batch()
    losses = model.loss(inputs, samples)
    assert set(k for k in losses if k.startswith('distill.')) == {'distill.loss_hcl'}
    # the teacher record is the teacher's raw FPN output (5 levels), the student's goes through the connector
    t_feats = model.distiller.get_record('neck', False)
    s_feats = model.distiller.get_record('neck', True)
    with torch.no_grad():
        expected = model.teacher.extract_feat(model.teacher_inputs(inputs))
    assert len(t_feats) == len(s_feats) == 5
    for t, e, s in zip(t_feats, expected, s_feats):
        torch.testing.assert_close(t, e)
        assert t.shape == s.shape and not t.requires_grad and s.requires_grad
    assert torch.isfinite(losses['distill.loss_hcl']) and losses['distill.loss_hcl'] > 0


def test_reviewkdpp_adds_nd_on_the_students_rois_without_logit_kd():
    model = build(demo_model_cfg('reviewkdpp'))
    assert model._teacher_runs_roi_head and model.class_means is not None
    fill_class_means(model)
    model.train()
    losses = model.loss(*batch())
    assert set(k for k in losses if k.startswith('distill.')) == {'distill.loss_hcl', 'distill.loss_nd'}
    assert all(torch.isfinite(losses[k]) and losses[k] > 0 for k in ('distill.loss_hcl', 'distill.loss_nd'))


@pytest.mark.parametrize('method', ['reviewkd', 'reviewkdpp'])
def test_connector_is_in_the_optimizer_and_gets_gradients(method):
    cfg = Config.fromfile(osp.join(REPO, f'configs/demo/faster_rcnn_r50_r18_{method}.py'))
    model = build(demo_model_cfg(method))
    if model.class_means is not None:
        fill_class_means(model)
    # as mmengine's Runner builds it from the config
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    in_optimizer = {id(p) for group in optim_wrapper.optimizer.param_groups for p in group['params']}
    connector = dict(model.distiller.connectors.named_parameters())
    assert len(connector) == 5 * 6 + 4 * 2  # per level conv1 + BN, conv2 + BN; att_conv (w, b) on all but the deepest
    assert all(id(p) in in_optimizer and p.requires_grad for p in connector.values())
    assert all(k.startswith('distiller.connectors.abf.') for k in model.state_dict() if '.abfs.' in k)
    model.train()
    loss, _ = model.parse_losses(model.loss(*batch()))
    optim_wrapper.update_params(loss, zero_kwargs=dict(set_to_none=False))  # backward + step (zero_grad after)
    model.train()
    loss, _ = model.parse_losses(model.loss(*batch(seed=1)))
    loss.backward()
    for name, p in connector.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in model.teacher.parameters())


def test_non_finite_teacher_fpn_output_is_named():
    model = build(demo_model_cfg('reviewkd'))
    with torch.no_grad():
        model.teacher.neck.fpn_convs[0].conv.weight[0, 0, 0, 0] = float('nan')
    model.train()
    with pytest.raises(FloatingPointError, match=r"non-finite teacher outputs.*teacher record 'neck' \(neck; read by "
                                                 r"loss_hcl\): \d+ NaN"):
        model.loss(*batch())


PAPER = {  # config: (teacher checkpoint, teacher depth, HCL weight) of the ND paper's setup
    'faster_rcnn_r101_r50_reviewkdpp': ('faster_rcnn_r101_fpn_mstrain_3x_coco_20210524_110822-4d4d2ca8.pth', 101, 1.4),
    'faster_rcnn_r101_r18_reviewkdpp': ('faster_rcnn_r101_fpn_mstrain_3x_coco_20210524_110822-4d4d2ca8.pth', 101, 1.2),
    'faster_rcnn_r50_mbv2_reviewkdpp': ('faster_rcnn_r50_fpn_mstrain_3x_coco_20210524_110822-e10bd31c.pth', 50, 2.2),
    'faster_rcnn_r101_r50_reviewkd': ('faster_rcnn_r101_fpn_mstrain_3x_coco_20210524_110822-4d4d2ca8.pth', 101, 1.0),
    'faster_rcnn_r101_r18_reviewkd': ('faster_rcnn_r101_fpn_mstrain_3x_coco_20210524_110822-4d4d2ca8.pth', 101, 1.2),
    'faster_rcnn_r50_mbv2_reviewkd': ('faster_rcnn_r50_fpn_mstrain_3x_coco_20210524_110822-e10bd31c.pth', 50, 2.0),
    'faster_rcnn_r101_mbv2_reviewkdpp': ('faster_rcnn_r101_fpn_mstrain_3x_coco_20210524_110822-4d4d2ca8.pth', 101, 2.2),
    'faster_rcnn_r101_mbv2_reviewkd': ('faster_rcnn_r101_fpn_mstrain_3x_coco_20210524_110822-4d4d2ca8.pth', 101, 2.0),
}


@pytest.mark.parametrize('name', sorted(PAPER))
def test_coco_configs_have_the_papers_teacher_schedule_and_weights(name):
    cfg = Config.fromfile(osp.join(REPO, f'configs/{name}.py'))
    ckpt, depth, hcl = PAPER[name]
    model = cfg.model
    assert model.teacher_ckpt == f'checkpoints/{ckpt}' and model.teacher.backbone.depth == depth
    losses = model.distiller.distill_losses
    assert losses.loss_hcl.loss_weight == hcl and 'loss_kd' not in losses
    if name.endswith('pp'):
        assert losses.loss_nd.loss_weight == 1.0 and model.class_means is not None
        assert [h['type'] for h in cfg.custom_hooks] == ['mmkd.ClassMeansHook']
    else:
        assert set(losses) == {'loss_hcl'}
    abf = model.distiller.connectors.abf
    assert (abf.in_channels, abf.out_channels, abf.mid_channels, abf.num_levels) == (256, 256, 256, 5)
    assert model.architecture.neck.out_channels == model.teacher.neck.out_channels == 256
    assert model.architecture.neck.num_outs == 5
    # student: mmdet's 1x (12 epochs, lr 0.02 at batch 16) with multi-scale training, short side 640-800
    assert cfg.train_cfg.max_epochs == 12 and cfg.optim_wrapper.optimizer.lr == 0.02
    resize = [t for t in cfg.train_dataloader.dataset.pipeline if 'Resize' in t['type']]
    assert resize == [dict(type='RandomChoiceResize', keep_ratio=True,
                           scales=[(1333, s) for s in (640, 672, 704, 736, 768, 800)])]
    assert cfg.model.architecture.backbone.init_cfg.type == 'Pretrained'


def test_coco_reviewkdpp_builds_and_steps_on_small_images():
    cfg = Config.fromfile(osp.join(REPO, 'configs/faster_rcnn_r50_mbv2_reviewkdpp.py'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.update(teacher_ckpt=None, allow_random_teacher=True)
    model_cfg.architecture.backbone.init_cfg = None
    model = build(model_cfg)
    fill_class_means(model)
    model.train()
    losses = model.loss(*batch(size=128))
    assert torch.isfinite(losses['distill.loss_hcl']) and torch.isfinite(losses['distill.loss_nd'])
