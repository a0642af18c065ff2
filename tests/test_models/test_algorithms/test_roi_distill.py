"""RoIDistill: the teacher's RoI head runs on the student's RoIs, and nothing else of the teacher runs."""
import copy
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmkd.registry import MODELS
from mmkd.testing import randomise_batchnorms

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
#: the demo detectors' number of classes (the background label) and RoI feature width
K = Config.fromfile(osp.join(REPO, 'configs/demo/faster_rcnn_r50_r18_kd.py')).model.teacher.roi_head.bbox_head\
    .num_classes
C = 512


def demo_model_cfg(method: str = 'nd', **overrides) -> dict:
    """The demo distillation config's model dict (R50 -> R18), without a teacher checkpoint (a random teacher,
    allowed, unless ``overrides`` set ``teacher_ckpt``)."""
    cfg = Config.fromfile(osp.join(REPO, f'configs/demo/faster_rcnn_r50_r18_{method}.py'))
    model = copy.deepcopy(cfg.model)
    model.update({"teacher_ckpt": None, **overrides})
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
        xy = torch.rand(3, 2, generator=gen) * size * 0.6
        wh = 8 + torch.rand(3, 2, generator=gen) * size * 0.35
        sample.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                           labels=torch.randint(0, K, (3,), generator=gen))
        samples.append(sample)
    return inputs, samples


def fill_class_means(model, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    cm = model.class_means
    cm.update(torch.rand(cm.num_classes * 4, cm.feat_dim, generator=gen), torch.arange(cm.num_classes).repeat(4))


def identical_pair(method: str = 'nd'):
    """Teacher and student of the same architecture (R18), the teacher holding the student's weights, unfused
    and in the default layout (so that both compute exactly the same)."""
    cfg = demo_model_cfg(method, teacher_fuse_conv_bn=False, teacher_channels_last=False)
    cfg['architecture']['backbone']['norm_eval'] = True  # BN then behaves alike in train (student) and eval
    cfg['teacher'] = copy.deepcopy(cfg['architecture'])
    model = build(cfg)
    model.teacher.load_state_dict(model.student.state_dict())
    return model


def test_teacher_roi_tensors_match_the_students_roi_by_roi():
    model = identical_pair('nd')
    fill_class_means(model)
    model.train()
    losses = model.loss(*batch())
    record = model.distiller.get_record
    s_feat, t_feat = record('roi_feat', True, data_idx=0), record('roi_feat', False, data_idx=0)
    s_logits, t_logits = record('roi_logits', True), record('roi_logits', False)
    rois = record('rois', True, data_idx=1)
    labels, weights = record('roi_targets', True, data_idx=0), record('roi_targets', True, data_idx=1)
    assert s_feat.shape == t_feat.shape == (len(rois), C) and s_logits.shape == (len(rois), K + 1)
    assert len(labels) == len(rois) and labels.max() <= K and (labels == K).any()  # background = K
    torch.testing.assert_close(t_feat, s_feat.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(t_logits, s_logits.detach(), rtol=0, atol=1e-5)
    assert losses['distill.loss_kd'].abs() < 1e-5  # KD of identical logits
    # ND with ||f_s|| = ||f_t||: 1 - cos(f_s, c_y), averaged over RoIs with positive label weight.
    means = model.class_means.means
    cos = torch.cosine_similarity(s_feat.detach(), means[labels], dim=1)
    expected = (1 - cos)[weights > 0].mean()
    torch.testing.assert_close(losses['distill.loss_nd'].detach(), expected, rtol=1e-5, atol=1e-6)
    assert {'student.loss_cls', 'student.loss_bbox', 'student.loss_rpn_cls'} <= set(losses)


def test_fused_channels_last_teacher_matches_its_checkpoint(tmp_path):
    """By default the teacher's BatchNorms are folded into its convolutions (after its checkpoint is loaded) and
    it runs channels-last; its RoI tensors still match those of the same weights run as the student, and the
    channels-last feature maps reach mmcv's roi_align in NCHW (else the RoI features would be garbage)."""
    cfg = demo_model_cfg('nd')
    cfg['architecture']['backbone']['norm_eval'] = True
    student = build(cfg).student
    randomise_batchnorms(student)
    ckpt = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=student.state_dict()), ckpt)
    cfg.update(teacher=copy.deepcopy(cfg['architecture']), teacher_ckpt=str(ckpt))
    model = build(cfg)
    model.student.load_state_dict(student.state_dict())
    fill_class_means(model)
    assert model.teacher_channels_last and not any(
        isinstance(m, torch.nn.BatchNorm2d) for m in model.teacher.modules())  # every BatchNorm folded
    assert model.teacher.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    model.train()
    model.loss(*batch())
    record = model.distiller.get_record
    s_feat, t_feat = record('roi_feat', True, data_idx=0), record('roi_feat', False, data_idx=0)
    s_feat, s_logits = s_feat.detach(), record('roi_logits', True).detach()
    t_logits = record('roi_logits', False)
    torch.testing.assert_close(t_feat, s_feat, rtol=0, atol=1e-4 * float(s_feat.abs().max()))
    torch.testing.assert_close(t_logits, s_logits, rtol=0, atol=1e-4 * float(s_logits.abs().max()))
    # a checkpoint of the algorithm loads into an algorithm built the same way (tools/test.py, --resume)
    again = build(demo_model_cfg('nd', teacher=copy.deepcopy(cfg['architecture'])))
    again.load_state_dict(model.state_dict())


def test_distill_losses_backpropagate_into_the_student_only():
    model = build(demo_model_cfg('icd'))
    model.train()
    losses = model.loss(*batch())
    assert all(torch.isfinite(torch.stack(v) if isinstance(v, list) else v).all()
               for k, v in losses.items() if 'loss' in k)
    losses['distill.loss_icd'].backward()
    assert model.student.roi_head.bbox_head.fc_cls.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())


def test_teacher_runs_no_rpn_sampling_or_losses(monkeypatch):
    model = build(demo_model_cfg('kd'))
    model.train()
    assert not model.teacher.training  # wholly in eval mode, not only its BatchNorms

    def forbidden(*args, **kwargs):
        raise AssertionError('the teacher must not run this')

    for name in ('rpn_head', 'roi_head.bbox_sampler', 'roi_head.bbox_assigner'):
        obj = model.teacher
        for part in name.split('.'):
            obj = getattr(obj, part)
        for method in ('forward', 'loss', 'predict', 'sample', 'assign', 'loss_and_predict'):
            if hasattr(obj, method):
                monkeypatch.setattr(obj, method, forbidden)
    monkeypatch.setattr(model.teacher.roi_head, 'loss', forbidden)
    losses = model.loss(*batch())
    assert torch.isfinite(losses['distill.loss_kd'])


def test_teacher_is_skipped_when_no_loss_reads_it():
    cfg = demo_model_cfg('kd')
    cfg['distiller'] = dict(type='ConfigurableDistiller')  # no distillation loss at all
    model = build(cfg)
    assert not model._teacher_runs
    model.teacher.extract_feat = None  # would raise if called
    model.train()
    assert 'student.loss_cls' in model.loss(*batch())


def test_ema_class_means_follow_the_teacher_roi_features_step_by_step():
    m = 0.5
    model = build(demo_model_cfg('nd', class_means=dict(momentum=m)))
    assert model._teacher_runs_roi_head and not model.class_means.initialized
    model.train()
    expected = torch.zeros(K + 1, C, dtype=torch.float64)
    seen = torch.zeros(K + 1, dtype=torch.bool)
    for seed in (0, 1, 2):
        losses = model.loss(*batch(seed=seed))
        assert torch.isfinite(losses['distill.loss_nd'])
        record = model.distiller.get_record
        feats = record('roi_feat', False, data_idx=0).double()
        labels, weights = record('roi_targets', True, data_idx=0), record('roi_targets', True, data_idx=1).double()
        for c in labels[weights > 0].unique().tolist():  # per class present: EMA of its weighted batch mean
            w = weights * (labels == c)
            batch_mean = (feats * w[:, None]).sum(0) / w.sum()
            expected[c] = (1 - m) * expected[c] + m * batch_mean if seen[c] else batch_mean
            seen[c] = True
    assert seen[K] and seen.sum() >= 3  # background (K) in every batch, and some objects
    torch.testing.assert_close(model.class_means.means, expected.float(), rtol=1e-5, atol=1e-6)
    assert model.class_means.valid.tolist() == seen.tolist()


def test_collect_class_features_labels_teacher_rois_with_their_assigned_class():
    model = build(demo_model_cfg('nd'))
    model.train()
    feats, labels = model.collect_class_features(*batch())
    assert feats.ndim == 2 and feats.shape == (len(labels), C) and len(labels) > 0
    assert labels.min() >= 0 and labels.max() <= K and (feats >= 0).all()  # post-ReLU feature


def test_build_time_checks_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match='teacher_ckpt'):
        build(demo_model_cfg('nd', teacher_ckpt=str(tmp_path / 'missing.pth')))
    cfg = demo_model_cfg('kd')
    cfg['teacher']['roi_head']['bbox_head']['num_classes'] = K + 1
    with pytest.raises(ValueError, match='num_classes'):
        build(cfg)
    cfg = demo_model_cfg('nd')
    cfg['teacher']['roi_head']['bbox_head']['fc_out_channels'] = 256
    with pytest.raises(ValueError, match='EmbeddingProjector'):
        build(cfg)
    cfg['distiller']['connectors'] = dict(roi_proj=dict(type='mmkd.EmbeddingProjector', in_channels=C,
                                                        out_channels=256))
    cfg['distiller']['loss_forward_mappings']['loss_nd']['student_feat']['connector'] = 'roi_proj'
    model = build(cfg)
    assert model.class_means.feat_dim == 256
    fill_class_means(model)
    model.train()
    assert torch.isfinite(model.loss(*batch())['distill.loss_nd'])
    with pytest.raises(ValueError, match='class_means'):
        build(demo_model_cfg('nd', class_means=None))
    with pytest.raises(ValueError, match=rf'\[{K + 1}, {C}\]'):
        build(demo_model_cfg('nd', class_means=dict(num_classes=81, feat_dim=1024)))
    with pytest.raises(ValueError, match='teacher_trainable'):
        build(demo_model_cfg('kd', teacher_trainable=True))


def test_stopped_distillation_trains_the_student_alone_without_the_teacher():
    model = build(demo_model_cfg('kd'))
    model.train()
    model.distillation_stopped = True  # what mmrazor's StopDistillHook sets
    model.teacher.extract_feat = None  # would raise if called
    losses = model.loss(*batch())
    assert 'student.loss_cls' in losses and not any(k.startswith('distill.') for k in losses)


def test_student_checkpoint_given_as_the_teachers_is_refused(tmp_path):
    student = build(demo_model_cfg('kd')).student  # R18 weights for the R50 teacher
    path = str(tmp_path / 'r18.pth')
    torch.save(dict(state_dict=student.state_dict()), path)
    with pytest.raises(ValueError, match=r'does not fit the teacher \(FasterRCNN\): \d+ of the \d+ weights of the '
                                         r'teacher .*missing \(backbone\..*of another shape \(.*'
                                         r'teacher_ckpt_strict=False'):
        build(demo_model_cfg('kd', teacher_ckpt=path))


def test_nan_teacher_weight_stops_the_step_naming_the_roi_logits():
    model = build(demo_model_cfg('kd'))
    with torch.no_grad():
        model.teacher.roi_head.bbox_head.fc_cls.weight[0, 0] = float('nan')
    model.train()
    with pytest.raises(FloatingPointError, match=r"non-finite teacher outputs.*teacher record 'roi_logits' "
                                                 r"\(roi_head\.bbox_head\.fc_cls; read by loss_kd\): \d+ NaN"):
        model.loss(*batch())


def test_nan_teacher_roi_features_never_reach_the_ema_class_means():
    """float32: the step stops naming the teacher's RoI features and the means are those of before the step (the
    update used to run first and turn them NaN); under autocast: the step is skipped, the means kept, and a clean
    step after it updates them again."""
    from mmkd.compat import mmcv_ops_accept_bfloat16
    from mmkd.engine.optim_wrappers import CPUAmpOptimWrapper
    model = build(demo_model_cfg('nd', class_means=dict(momentum=0.5)))
    model.train()
    model.loss(*batch(seed=0))
    assert model.class_means.initialized
    state = {k: v.clone() for k, v in model.class_means.state_dict().items()}

    def unchanged():
        return all(torch.equal(v, state[k]) for k, v in model.class_means.state_dict().items())

    handle = model.teacher.roi_head.bbox_head.fc_cls.register_forward_pre_hook(
        lambda module, args: (args[0] * float('nan'), ), prepend=True)  # the recorded RoI features go NaN
    with pytest.raises(FloatingPointError, match=r"non-finite teacher outputs.*teacher record 'roi_feat' "
                                                 r"\(roi_head\.bbox_head\.fc_cls, data_idx=0; read by loss_nd\): "
                                                 r"\d+ NaN"):
        model.loss(*batch(seed=1))
    assert unchanged()
    mmcv_ops_accept_bfloat16()
    CPUAmpOptimWrapper._float_roi_extractors(model)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(*batch(seed=1))
    assert model.nonfinite_skipped_steps == 1 and unchanged()
    model.parse_losses(losses)[0].backward()
    assert any(not torch.isfinite(p.grad).all() for p in model.student.parameters() if p.grad is not None)
    handle.remove()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        model.loss(*batch(seed=1))
    assert model.nonfinite_skipped_steps == 1 and not unchanged()
    assert torch.isfinite(model.class_means.means).all()
