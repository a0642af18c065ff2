"""ClsDistill: one distillation step on tiny classifiers, what the teacher runs, and config checks."""

import uuid

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement

import mmkd  # noqa: F401
from mmkd.models.algorithms import cls_distill
from mmkd.models.algorithms.cls_distill import parse_loss_warmup, warmup_factor
from mmkd.registry import MODELS

K = 5


@pytest.fixture(autouse=True)
def mmkd_scope():
    # mmrazor builds the student and teacher from its own registry; the runner's default_scope='mmkd' (set by
    # every mmkd config) makes it resolve mmkd's classifiers
    with DefaultScope.overwrite_default_scope('mmkd'):
        yield


def classifier(arch='resnet8', dim=64, local_scales=None):
    return dict(type='ImageClassifier', backbone=dict(type='CIFARResNet', arch=arch),
                head=dict(type='LinearClsHead', num_classes=K, in_channels=dim, local_scales=local_scales))


def algorithm(losses=('kd', 'nd', 'icd'), student=None, connectors=None, nd_connector=None, **kwargs):
    all_losses = dict(
        loss_kd=(dict(type='KLDivergence', tau=4, loss_weight=1.0),
                 dict(preds_S=dict(recorder='logits', from_student=True),
                      preds_T=dict(recorder='logits', from_student=False))),
        loss_nd=(dict(type='NDLoss', loss_weight=2.0),
                 dict(student_feat=dict(recorder='feat', from_student=True,
                                        **(dict(connector=nd_connector) if nd_connector else {})),
                      teacher_feat=dict(recorder='feat', from_student=False),
                      labels=dict(recorder='labels', from_student=True, data_idx=1))),
        loss_dkd=(dict(type='DKDLoss', tau=4, alpha=1.0, beta=8.0),
                  dict(preds_S=dict(recorder='logits', from_student=True),
                       preds_T=dict(recorder='logits', from_student=False),
                       gt_labels=dict(recorder='labels', from_student=True, data_idx=1))),
        loss_icd=(dict(type='ICDLoss', loss_weight=2.0),
                  dict(student_logits=dict(recorder='local', from_student=True),
                       teacher_logits=dict(recorder='local', from_student=False))))
    chosen = {f'loss_{n}': all_losses[f'loss_{n}'] for n in losses}
    local = dict(local=dict(type='ModuleOutputs', source='head.local_logits')) if 'icd' in losses else {}
    cfg = dict(
        type='ClsDistill', architecture=student or classifier(local_scales=(1, 2, 4)),
        teacher=classifier('resnet14', local_scales=(1, 2, 4)),
        distiller=dict(type='ConfigurableDistiller', student_recorders=local, teacher_recorders=local,
                       connectors=connectors or {},
                       distill_losses={k: v[0] for k, v in chosen.items()},
                       loss_forward_mappings={k: v[1] for k, v in chosen.items()}), **kwargs)
    if 'nd' in losses:
        cfg.setdefault('class_means', dict(num_classes=K, feat_dim=64))
    cfg.setdefault('allow_random_teacher', not cfg.get('teacher_ckpt'))  # tests need no trained teacher
    return MODELS.build(cfg)


def batch(n=4):
    return torch.randn(n, 3, 32, 32), [BaseDataElement(gt_label=torch.tensor([i % K])) for i in range(n)]


def fill_class_means(model, x, ds):
    feats, labels = model.collect_class_features(x, ds)
    assert feats.shape == (len(ds), 64) and labels.tolist() == [i % K for i in range(len(ds))]
    model.class_means.update(feats, labels)


def test_step_losses_gradients_and_frozen_teacher():
    model = algorithm()
    model.train()
    assert not model.teacher.training and all(not p.requires_grad for p in model.teacher.parameters())
    x, ds = batch(5)
    fill_class_means(model, x, ds)
    losses = model(x, ds, mode='loss')
    assert set(losses) == {'student.loss_cls', 'distill.loss_kd', 'distill.loss_nd', 'distill.loss_icd'}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert losses['distill.loss_icd'] > 0 and losses['distill.loss_nd'] > 0
    sum(losses.values()).backward()
    assert model.student.backbone.stem[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model(x, mode='tensor').shape == (5, K)  # student only


def test_teacher_runs_only_what_losses_read():
    calls = dict(head=0, local=0, student_local=0)
    model = algorithm(losses=('nd', ))  # reads features only
    model.teacher.head.fc.register_forward_hook(lambda *a: calls.__setitem__('head', calls['head'] + 1))
    model.teacher.head.local_logits.register_forward_hook(lambda *a: calls.__setitem__('local', calls['local'] + 1))
    model.student.head.local_logits.register_forward_hook(
        lambda *a: calls.__setitem__('student_local', calls['student_local'] + 1))
    x, ds = batch()
    fill_class_means(model, x, ds)
    model(x, ds, mode='loss')
    assert calls == dict(head=0, local=0, student_local=0)
    model = algorithm(losses=('kd', 'dkd'))
    model.teacher.head.fc.register_forward_hook(lambda *a: calls.__setitem__('head', calls['head'] + 1))
    model.teacher.head.local_logits.register_forward_hook(lambda *a: calls.__setitem__('local', calls['local'] + 1))
    losses = model(*batch(), mode='loss')
    assert calls['head'] == 1 and calls['local'] == 0 and 'distill.loss_dkd' in losses


def test_projector_for_width_mismatch_and_clear_error():
    wide = classifier('resnet8x4', 256)
    with pytest.raises(ValueError, match="EmbeddingProjector.*in_channels=256, out_channels=64"):
        algorithm(losses=('nd', ), student=wide)
    model = algorithm(losses=('nd', ), student=wide, nd_connector='proj',
                      connectors=dict(proj=dict(type='EmbeddingProjector', in_channels=256, out_channels=64)))
    model.train()
    x, ds = batch()
    fill_class_means(model, x, ds)
    loss = model(x, ds, mode='loss')['distill.loss_nd']
    loss.backward()
    assert torch.isfinite(loss) and model.distiller.connectors['proj'].fc.weight.grad.abs().sum() > 0


def test_warmup_scales_named_losses():
    assert [warmup_factor(e, 20) for e in (0, 9, 19, 30)] == [0.05, 0.5, 1.0, 1.0] and warmup_factor(3, 0) == 1.0
    torch.manual_seed(0)
    model = algorithm(losses=('kd', ), loss_warmup=dict(loss_kd=4))
    model.eval()  # deterministic BN for comparing two steps
    x, ds = batch()
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 0)
    early = model(x, ds, mode='loss')['distill.loss_kd']
    hub.update_info('epoch', 10)
    late = model(x, ds, mode='loss')['distill.loss_kd']
    torch.testing.assert_close(early * 4, late)
    with pytest.raises(ValueError, match='not distill losses'):
        algorithm(losses=('kd', ), loss_warmup=dict(loss_dkd=20))


class TinyData(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(3, 32, 32, generator=g),
                    data_samples=BaseDataElement(gt_label=torch.tensor([i % K])))


class RecordOutputs(Hook):

    def __init__(self):
        self.outputs = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.outputs.append({k: float(v) for k, v in outputs.items()})


def tiny_runner(model, work_dir, max_iters, hooks=()):
    """A real mmengine Runner (IterBasedTrainLoop, lr 0) around ``model`` on 8 random 32x32 images."""
    return Runner(
        model=model, work_dir=str(work_dir), experiment_name=f'tiny_{uuid.uuid4().hex}', default_scope='mmkd',
        train_dataloader=dict(dataset=TinyData(), sampler=dict(type='InfiniteSampler', shuffle=False), batch_size=4,
                              num_workers=0, collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters), optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.)),
        default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(hooks), log_processor=dict(by_epoch=False))


def raw_distill_losses(model):
    """Record the distill losses before the warm-up scaling."""
    raw, compute = [], model.distiller.compute_distill_losses

    def recording():
        losses = compute()
        raw.append({k: float(v) for k, v in losses.items()})
        return losses

    model.distiller.compute_distill_losses = recording
    return raw


def test_warmup_in_iterations_under_iter_based_loop(tmp_path, monkeypatch):
    """With IterBasedTrainLoop the hub's epoch stays 0: a warm-up in iterations ends, and an epoch warm-up longer
    than the loop's epochs is reported."""
    torch.manual_seed(0)
    model = algorithm(losses=('kd', 'dkd'), loss_warmup=dict(loss_kd=dict(iters=2), loss_dkd=3))
    raw, record = raw_distill_losses(model), RecordOutputs()
    warnings = []
    monkeypatch.setattr(cls_distill, 'print_log', lambda msg, **kw: warnings.append(msg))
    tiny_runner(model, tmp_path, 4, [record]).train()
    assert len(raw) == len(record.outputs) == 4
    kd = [out['distill.loss_kd'] / r['loss_kd'] for out, r in zip(record.outputs, raw)]
    dkd = [out['distill.loss_dkd'] / r['loss_dkd'] for out, r in zip(record.outputs, raw)]
    assert kd == pytest.approx([0.5, 1, 1, 1])  # iterations 0, 1, 2, 3 of a 2-iteration warm-up
    assert dkd == pytest.approx([1 / 3] * 4)  # epoch 0 for ever ...
    assert len(warnings) == 1 and 'loss_dkd' in warnings[0] and 'dict(iters=N)' in warnings[0]  # ... and said so
    assert model.warmup_factors(epoch=2, iteration=0) == dict(loss_kd=0.5, loss_dkd=1.0)
    assert parse_loss_warmup(dict(a=3, b=dict(epochs=2), c=dict(iters=50))) == dict(
        a=('epoch', 3), b=('epoch', 2), c=('iter', 50))
    for bad in (dict(steps=5), -1, 2.5, dict(iters=5, epochs=1)):
        with pytest.raises(ValueError, match=r'loss_kd.*dict\(iters=N\)'):
            parse_loss_warmup(dict(loss_kd=bad))


def test_no_teacher_forward_after_distillation_stops(tmp_path):
    """mmrazor's StopDistillHook sets distillation_stopped: then only the student runs (no teacher, no local
    logits), directly and in a runner."""
    from mmrazor.engine.hooks import StopDistillHook  # after mmkd's compat patches (imported above)
    calls = dict(teacher=0, student_local=0)
    model = algorithm(losses=('kd', 'icd'))
    model.teacher.backbone.register_forward_hook(lambda *a: calls.__setitem__('teacher', calls['teacher'] + 1))
    model.student.head.local_logits.register_forward_hook(
        lambda *a: calls.__setitem__('student_local', calls['student_local'] + 1))
    x, ds = batch()
    assert set(model(x, ds, mode='loss')) == {'student.loss_cls', 'distill.loss_kd', 'distill.loss_icd'}
    assert calls == dict(teacher=1, student_local=1)
    model.distillation_stopped = True
    losses = model(x, ds, mode='loss')
    assert set(losses) == {'student.loss_cls'} and calls == dict(teacher=1, student_local=1)
    assert model.student.head.compute_local  # restored for when distillation resumes
    model = algorithm(losses=('kd', ))
    model.teacher.backbone.register_forward_hook(lambda *a: calls.__setitem__('teacher', calls['teacher'] + 1))
    record = RecordOutputs()
    tiny_runner(model, tmp_path, 2, [StopDistillHook(stop_epoch=0), record]).train()
    assert model.distillation_stopped and calls['teacher'] == 1
    assert [set(out) for out in record.outputs] == [{'loss', 'student.loss_cls'}] * 2


def test_config_errors():
    with pytest.raises(ValueError, match='teacher_trainable'):
        algorithm(losses=('kd', ), teacher_trainable=True)
    with pytest.raises(ValueError, match='classes'):
        algorithm(losses=('kd', ), student=dict(classifier(), head=dict(
            type='LinearClsHead', num_classes=K + 1, in_channels=64)))
    with pytest.raises(ValueError, match='feat_dim=64'):
        algorithm(losses=('nd', ), class_means=dict(num_classes=K, feat_dim=32))
