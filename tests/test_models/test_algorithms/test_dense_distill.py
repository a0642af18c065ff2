"""DenseDistill: dense (one-stage) detector distillation on the demo GFL pair (R50 -> R18, width-reduced): CrossKD's
cross-head gradient, LD against mmdet's LDHead, ND/iCD rows, what the teacher runs, checks, export, class means."""
import copy
import functools
import importlib.util
import os.path as osp
import types

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmkd.engine.hooks import ClassMeansHook
from mmkd.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
K = 4  # the demo detectors' classes
C = 64  # their FPN and head width


@functools.lru_cache(maxsize=None)
def _demo_config(method: str) -> Config:
    return Config.fromfile(osp.join(REPO, f'configs/demo/gfl_r50_r18_{method}.py'))


def demo_model_cfg(method: str = 'crosskd', **overrides) -> dict:
    """The demo dense distillation config's model dict, with a random teacher (allowed) unless ``overrides`` set
    ``teacher_ckpt``."""
    model = copy.deepcopy(_demo_config(method).model.to_dict())
    model.update({'teacher_ckpt': None, **overrides})
    model.setdefault('allow_random_teacher', not model.get('teacher_ckpt'))
    return model


def build(model_cfg: dict):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(model_cfg)


def batch(num_images: int = 2, size: int = 64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(num_images, 3, size, size, generator=gen)
    samples = []
    for _ in range(num_images):
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
                                             scale_factor=(1., 1.), batch_input_shape=(size, size)))
        xy = torch.rand(2, 2, generator=gen) * size * 0.5
        wh = 16 + torch.rand(2, 2, generator=gen) * size * 0.4
        sample.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1).clamp(max=size - 1),
                                           labels=torch.randint(0, K, (2, ), generator=gen))
        samples.append(sample)
    return inputs, samples


def identical_pair(method: str, **overrides):
    """Teacher and student of the same architecture (R18), the teacher holding the student's weights, unfused and
    in the default layout (so both compute exactly the same)."""
    cfg = demo_model_cfg(method, teacher_fuse_conv_bn=False, teacher_channels_last=False, **overrides)
    cfg['architecture']['backbone']['norm_eval'] = True  # BN then behaves alike in train (student) and eval
    cfg['teacher'] = copy.deepcopy(cfg['architecture'])
    model = build(cfg)
    model.teacher.load_state_dict(model.student.state_dict())
    return model


_ANCHORS = dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4, scales_per_octave=1,
                strides=[8, 16, 32, 64, 128])
_FOCAL = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)
_CTR = dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)
#: mmdet's RetinaNet / ATSS / FCOS heads (and their training settings) at the demo's width
HEADS = dict(
    retina=(dict(type='RetinaHead', anchor_generator=dict(_ANCHORS, scales_per_octave=3, ratios=[0.5, 1.0, 2.0]),
                 bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0] * 4, target_stds=[1.0] * 4),
                 loss_cls=_FOCAL, loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
            dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                               ignore_iof_thr=-1), sampler=dict(type='PseudoSampler'), allowed_border=-1,
                 pos_weight=-1, debug=False)),
    atss=(dict(type='ATSSHead', anchor_generator=_ANCHORS, loss_cls=_FOCAL, loss_centerness=_CTR,
               bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
               loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
          dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1, debug=False)),
    # norm_on_bbox=False: clamped distances of a random head are often 0, and IoU of empty boxes is 0, not 1
    fcos=(dict(type='FCOSHead', strides=[8, 16, 32, 64, 128], norm_on_bbox=False, centerness_on_reg=True,
               loss_cls=_FOCAL, loss_bbox=dict(type='GIoULoss', loss_weight=1.0), loss_centerness=_CTR,
               norm_cfg=dict(type='GN', num_groups=32, requires_grad=True)),
          dict(allowed_border=-1, pos_weight=-1, debug=False)),
)


def with_head(model_cfg: dict, kind: str) -> dict:
    """The demo pair with mmdet's ``kind`` head on both detectors."""
    head, train_cfg = HEADS[kind]
    for part in ('architecture', 'teacher'):
        model_cfg[part]['bbox_head'] = dict(head, num_classes=K, in_channels=C, stacked_convs=4, feat_channels=C)
        model_cfg[part]['train_cfg'] = train_cfg
    return model_cfg


@pytest.mark.parametrize('kind', ['retina', 'atss', 'fcos'])
def test_crosskd_on_each_head_kind_is_zero_for_an_identical_teacher(kind):
    cfg = with_head(demo_model_cfg('crosskd', teacher_fuse_conv_bn=False), kind)
    cfg['architecture']['backbone']['norm_eval'] = True
    cfg['teacher'] = copy.deepcopy(cfg['architecture'])
    model = build(cfg)
    model.teacher.load_state_dict(model.student.state_dict())
    assert model.crosskd_cfg['k'] == (2 if kind == 'fcos' else 3)
    model.train()
    losses = model.loss(*batch())
    assert losses['distill.loss_cls_kd'].abs() < 1e-4 and losses['distill.loss_reg_kd'].abs() < 1e-4, losses
    if kind == 'atss':  # sigmoid BCE to the teacher's own centerness: its entropy, > 0
        assert losses['distill.loss_center_kd'] > 0
    with torch.no_grad():  # a different teacher: every KD term is positive and finite
        for p in model.teacher.bbox_head.parameters():
            p.add_(0.05 * torch.randn_like(p))
    losses = model.loss(*batch())
    assert all(torch.isfinite(losses[k]) and losses[k] > 0 for k in ('distill.loss_cls_kd', 'distill.loss_reg_kd'))
    (losses['distill.loss_cls_kd'] + losses['distill.loss_reg_kd']).backward()
    assert model.student.bbox_head.cls_convs[0].conv.weight.grad.abs().sum() > 0
    # the teacher head's own assignment for the class means (ClassMeansHook's pass)
    feats, labels = model.collect_class_features(*batch())
    assert feats.shape == (len(labels), C) and len(labels) > 0 and labels.max() < K


def test_crosskd_gradient_reaches_the_student_before_k_only_and_the_teacher_stays_frozen():
    model = build(demo_model_cfg('crosskd'))
    model.train()
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    losses = model.loss(*batch())
    assert {'distill.loss_cls_kd', 'distill.loss_reg_kd', 'student.loss_cls'} <= set(losses)
    (losses['distill.loss_cls_kd'] + losses['distill.loss_reg_kd']).backward()
    head = model.student.bbox_head  # k = 3: the student's hold is the output of cls_convs[2] / reg_convs[2]
    for branch in (head.cls_convs, head.reg_convs):
        assert all(branch[i].conv.weight.grad.abs().sum() > 0 for i in range(3))
        assert branch[3].conv.weight.grad is None  # the student's own layers after k get no KD gradient
    assert head.gfl_cls.weight.grad is None and head.gfl_reg.weight.grad is None
    assert model.student.backbone.conv1.weight.grad.abs().sum() > 0
    assert model.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    optim.step()
    assert all(torch.equal(v, before[k]) for k, v in model.teacher.state_dict().items())


def test_identical_teacher_gives_zero_crosskd_ld_and_icd_and_the_nd_formula():
    torch.manual_seed(0)
    model = identical_pair('crosskd', ld=dict())
    model.train()
    losses = model.loss(*batch())
    # the cross-head predictions are the teacher's own (align of equal statistics is the identity up to 1e-6)
    assert losses['distill.loss_reg_kd'].abs() < 1e-5 and losses['distill.loss_cls_kd'].abs() < 1e-4
    assert losses['distill.loss_ld'].abs() < 1e-6

    model = identical_pair('icd')
    model.train()
    losses = model.loss(*batch())
    record = model.distiller.get_record
    s_feat, t_feat = record('pos_feat', True), record('pos_feat', False)
    labels, rois = record('pos_targets', True, data_idx=0), record('pos_targets', True, data_idx=1)
    assert len(labels) > 0 and s_feat.shape == t_feat.shape == (len(labels), C) and labels.max() < K
    assert record('pos_logits', True).shape == (len(labels), K) and rois.shape == (len(labels), 5)
    assert set(rois[:, 0].tolist()) <= {0., 1.} and (rois[:, 3] > rois[:, 1]).all()
    torch.testing.assert_close(t_feat, s_feat.detach(), rtol=0, atol=1e-5)
    assert losses['distill.loss_icd'].abs() < 1e-6

    model = identical_pair('nd')
    cm = model.class_means
    assert (cm.num_classes, cm.feat_dim) == (K, C)  # positives only: no background row
    cm.update(torch.rand(2 * K, C) + 0.1, torch.arange(K).repeat(2))
    model.train()
    losses = model.loss(*batch())
    s_feat = model.distiller.get_record('pos_feat', True).detach()
    labels = model.distiller.get_record('pos_targets', True, data_idx=0)
    expected = (1 - torch.cosine_similarity(s_feat, cm.means[labels], dim=1)).mean()
    torch.testing.assert_close(losses['distill.loss_nd'].detach(), expected, rtol=1e-5, atol=1e-6)


def test_a_batch_without_objects_gives_finite_zero_valued_head_losses():
    model = build(demo_model_cfg('nd', crosskd=dict(), ld=dict()))
    cm = model.class_means
    cm.update(torch.rand(K, C) + 0.1, torch.arange(K))
    model.train()
    inputs, samples = batch()
    for s in samples:
        s.gt_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    losses = model.loss(inputs, samples)
    for key in ('distill.loss_cls_kd', 'distill.loss_reg_kd', 'distill.loss_ld', 'distill.loss_nd'):
        assert torch.isfinite(losses[key]), key
    assert losses['distill.loss_ld'] == 0 and losses['distill.loss_nd'] == 0
    assert losses['distill.loss_cls_kd'] < 1e3  # normalised by #pos clamped to 1, not by ~0


def test_ld_matches_mmdets_ldhead():
    from mmdet.registry import MODELS as MMDET_MODELS
    model = build(demo_model_cfg('ld'))
    model.train()
    inputs, samples = batch()
    losses = model.loss(inputs, samples)
    head_cfg = Config.fromfile(osp.join(REPO, 'configs/demo/gfl_r18_baseline.py')).model.bbox_head
    ld_head = MMDET_MODELS.build(dict(head_cfg, type='LDHead', train_cfg=model.student.bbox_head.train_cfg,
                                      loss_ld=dict(type='KnowledgeDistillationKLDivLoss', T=10, loss_weight=0.25)))
    ld_head.load_state_dict(model.student.bbox_head.state_dict())
    with torch.no_grad():
        s_x = model.student.extract_feat(inputs)
        t_out = model.teacher.bbox_head(model.teacher.extract_feat(model.teacher_inputs(inputs)))
        cls_scores, bbox_preds = ld_head(s_x)
        ref = ld_head.loss_by_feat(cls_scores, bbox_preds, [s.gt_instances for s in samples],
                                   [s.metainfo for s in samples], t_out[1])
    expected = sum(ref['loss_ld'])
    assert expected > 0
    torch.testing.assert_close(losses['distill.loss_ld'].detach(), expected, rtol=1e-4, atol=1e-6)


def test_teacher_runs_no_assigner_and_its_head_only_when_a_loss_reads_it(monkeypatch):
    calls = {}

    def count(name):
        def hook(*_):
            calls[name] = calls.get(name, 0) + 1
        return hook

    def forbidden(*args, **kwargs):
        raise AssertionError('the teacher must not run this')

    for method, head_calls in (('pkd', 0), ('crosskd', 10), ('cwd', 5)):
        model = build(demo_model_cfg(method))
        model.train()
        calls.clear()
        model.teacher.bbox_head.gfl_cls.register_forward_hook(count('gfl_cls'))
        model.teacher.neck.register_forward_hook(count('neck'))
        for name in ('get_targets', 'loss', 'loss_by_feat', 'predict'):
            monkeypatch.setattr(model.teacher.bbox_head, name, forbidden)
        monkeypatch.setattr(model.teacher.bbox_head.assigner, 'assign', forbidden)
        losses = model.loss(*batch())
        assert calls.get('neck') == 1 and calls.get('gfl_cls', 0) == head_calls, (method, calls)
        assert all(torch.isfinite(v).all() for k, v in losses.items() if k.startswith('distill.'))
    cfg = demo_model_cfg('pkd')
    cfg['distiller'] = dict(type='ConfigurableDistiller')  # no loss reads the teacher
    model = build(cfg)
    assert not model._teacher_runs
    model.teacher.extract_feat = None  # would raise if called
    model.train()
    assert 'student.loss_cls' in model.loss(*batch())
    model = build(demo_model_cfg('crosskd'))
    model.train()
    model.distillation_stopped = True  # StopDistillHook
    model.teacher.extract_feat = None
    losses = model.loss(*batch())
    assert 'student.loss_cls' in losses and not any(k.startswith('distill.') for k in losses)


def test_build_time_checks_name_the_fix(tmp_path):
    student = build(demo_model_cfg('pkd')).student  # R18 weights for the R50 teacher
    path = str(tmp_path / 'r18.pth')
    torch.save(dict(state_dict=student.state_dict()), path)
    with pytest.raises(ValueError, match=r'does not fit the teacher \(GFL\)'):
        build(demo_model_cfg('pkd', teacher_ckpt=path))
    cfg = demo_model_cfg('crosskd')
    cfg['teacher']['bbox_head']['num_classes'] = K + 1
    with pytest.raises(ValueError, match=f'student detects {K} classes but the teacher {K + 1}'):
        build(cfg)
    cfg = demo_model_cfg('pkd')
    cfg['teacher']['bbox_head']['type'] = 'ATSSHead'
    with pytest.raises(ValueError, match='same kind'):
        build(cfg)
    cfg = demo_model_cfg('pkd')
    for part in ('architecture', 'teacher'):
        cfg[part]['bbox_head'] = dict(cfg[part]['bbox_head'], type='RetinaSepBNHead', num_ins=5)
    with pytest.raises(ValueError, match='RetinaSepBNHead'):
        build(cfg)
    cfg = demo_model_cfg('pkd')
    for part in ('architecture', 'teacher'):
        cfg[part]['bbox_head']['type'] = 'LDHead'
    with pytest.raises(ValueError, match=r'use a GFLHead .* `ld=dict\(\)`'):
        build(cfg)
    with pytest.raises(ValueError, match='LD distils the GFL'):
        build(with_head(demo_model_cfg('pkd', ld=dict()), 'atss'))
    with pytest.raises(ValueError, match=r'reused_teacher_head_idx must lie in \[0, 4\]'):
        build(demo_model_cfg('crosskd', crosskd=dict(reused_teacher_head_idx=5)))
    cfg = demo_model_cfg('nd')
    cfg['teacher']['bbox_head']['feat_channels'] = 2 * C
    with pytest.raises(ValueError, match='EmbeddingProjector'):
        build(cfg)


def test_student_exports_to_a_plain_mmdet_checkpoint(tmp_path):
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.runner import load_checkpoint
    cfg = demo_model_cfg('crosskd')
    for part in ('architecture', ):  # a narrower student head: CrossKD's 1x1 adapters [PROPOSAL]
        cfg[part]['bbox_head']['feat_channels'] = C // 2
    model = build(cfg)
    assert model.crosskd_adapters is not None
    model.train()
    losses = model.loss(*batch())
    assert torch.isfinite(losses['distill.loss_reg_kd'])
    path = tmp_path / 'kd.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=1)), path)
    spec = importlib.util.spec_from_file_location(
        'convert_kd_ckpt_to_student', osp.join(REPO, 'tools/model_converters/convert_kd_ckpt_to_student.py'))
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    out = converter.convert(torch.load(path, weights_only=False), 'kd.pth')
    assert not any(k.startswith(('crosskd', 'teacher', 'distiller')) for k in out['state_dict'])
    torch.save(out, tmp_path / 'student.pth')
    student_cfg = Config.fromfile(osp.join(REPO, 'configs/demo/gfl_r18_baseline.py')).model
    student_cfg.bbox_head.feat_channels = C // 2
    with DefaultScope.overwrite_default_scope('mmdet'):
        student = MMDET_MODELS.build(student_cfg)
    load_checkpoint(student, str(tmp_path / 'student.pth'), map_location='cpu', strict=True)
    for key, value in student.state_dict().items():
        torch.testing.assert_close(value, model.student.state_dict()[key], rtol=0, atol=0)


class _Logger:

    def __init__(self):
        self.infos, self.warnings = [], []

    def info(self, msg):
        self.infos.append(msg)

    def warning(self, msg):
        self.warnings.append(msg)


class _TinyDet(torch.utils.data.Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, i):
        inputs, samples = batch(1, seed=i)
        image = ((inputs[0] - inputs[0].min()) / (inputs[0].max() - inputs[0].min()) * 255).to(torch.uint8)
        return dict(inputs=image, data_samples=samples[0])


def test_class_means_hook_fills_dense_class_means(tmp_path):
    model = build(demo_model_cfg('nd'))
    assert not model.class_means.initialized
    feats, labels = model.collect_class_features(*batch())
    assert feats.ndim == 2 and feats.shape[1] == C and len(labels) == len(feats) > 0 and labels.max() < K
    dataloader = dict(dataset=_TinyDet(), sampler=dict(type='DefaultSampler', shuffle=False), batch_size=2,
                      num_workers=0, collate_fn=dict(type='pseudo_collate'))
    runner = types.SimpleNamespace(model=model, logger=_Logger(), log_dir=str(tmp_path / 'log'), seed=0,
                                   cfg=types.SimpleNamespace(train_dataloader=dataloader, filename='config.py'))
    ClassMeansHook().before_train(runner)
    cm = model.class_means
    assert cm.initialized and cm.means.shape == (K, C) and cm.valid.any()
    assert torch.isfinite(cm.means[cm.valid]).all() and (cm.means[cm.valid] >= 0).all()  # post-ReLU features
    assert osp.isfile(osp.join(runner.log_dir, 'class_means.pth'))
    model.train()
    assert torch.isfinite(model.loss(*batch())['distill.loss_nd'])


def test_student_init_from_teacher_copies_the_named_modules_after_the_students_initialisation(tmp_path):
    """FGD's init_student: after init_weights the student's neck and head hold the teacher checkpoint's tensors
    where the shapes match (the FPN output convs, the whole head); the lateral convs (R50 and R18 widths differ)
    and the backbone keep the student's own initialisation. Errors for a missing checkpoint and a wrong name."""
    teacher = build(demo_model_cfg('fgd', teacher_fuse_conv_bn=False)).teacher  # a plain GFL's checkpoint
    path = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=teacher.state_dict(), meta=dict(iter=1)), path)
    t_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    model = build(demo_model_cfg('fgd_init', teacher_ckpt=str(path)))
    assert model.student_init_from_teacher == ('neck', 'bbox_head')
    model.init_weights()
    s_state = model.student.state_dict()
    head = [k for k in s_state if k.startswith('bbox_head.')]
    assert head and all(torch.equal(s_state[k], t_state[k]) for k in head)
    fpn = [k for k in s_state if k.startswith('neck.fpn_convs.')]
    assert fpn and all(torch.equal(s_state[k], t_state[k]) for k in fpn)
    lateral = [k for k in s_state if k.startswith('neck.lateral_convs.') and k.endswith('weight')]
    assert lateral and all(s_state[k].shape != t_state[k].shape for k in lateral)
    assert all(s_state[k].abs().sum() > 0 for k in lateral)  # initialised, not zeroed
    # without the option the same build keeps the student's own head
    plain = build(demo_model_cfg('fgd', teacher_ckpt=str(path)))
    plain.init_weights()
    assert not torch.equal(plain.student.state_dict()['bbox_head.gfl_cls.weight'], t_state['bbox_head.gfl_cls.weight'])
    with pytest.raises(ValueError, match='teacher_ckpt, which is not set'):
        build(demo_model_cfg('fgd_init'))
    with pytest.raises(ValueError, match=r"names \['roi_head'\], not modules of the student"):
        build(demo_model_cfg('fgd', teacher_ckpt=str(path), student_init_from_teacher=['roi_head']))
    # a checkpoint that fits the teacher loosely (teacher_ckpt_strict=False) but holds no head: refused at
    # init_weights, before any step, naming the module
    torch.save(dict(state_dict={k: v for k, v in t_state.items() if not k.startswith('bbox_head.')}), path)
    loose = build(demo_model_cfg('fgd_init', teacher_ckpt=str(path), teacher_ckpt_strict=False))
    with pytest.raises(ValueError, match="no tensor of the student's 'bbox_head' with its shape"):
        loose.init_weights()
