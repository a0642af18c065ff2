"""``tools/analysis/loss_gradient_scales.py``: the per-term gradient norms, ratios and cosines it reports, the NC
sub-terms, the loss-weight scaling, checkpoint restoring and refusing a config that does not distil."""
import importlib.util
import math
import os.path as osp

import pytest
import torch
from mmengine.registry import DefaultScope
from torch import nn

from mmkd.datasets.synthetic import generate_cifar_like
from mmkd.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'analysis', 'loss_gradient_scales.py')
NC = 'configs/cls/synthetic/nc_res20_res8_synthetic.py'
ICD = 'configs/cls/synthetic/icd_res20_res8_synthetic.py'
NC_TERMS = ('loss_nc1_contrast', 'loss_nc1_align', 'loss_nc2')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('loss_gradient_scales', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    return generate_cifar_like(tmp_path_factory.mktemp('cls') / 'data', num_train=32, num_test=4)['data_root']


def tiny(data_root, *options):
    """The synthetic configs on 32 tiny images, batch 8, random teacher, class means from 2 batches."""
    return ['--batches', '2', '--class-means-iters', '2', '--cfg-options',
            f'train_dataloader.dataset.data_root={data_root}', 'train_dataloader.batch_size=8',
            'model.teacher_ckpt=None', 'model.allow_random_teacher=True', *options]


def test_measure_terms_matches_autograd(tool):
    torch.manual_seed(0)
    backbone, head = nn.Linear(3, 4), nn.Linear(4, 2)
    x = torch.randn(5, 3)
    feat = backbone(x)
    task = head(feat).pow(2).mean()
    feat_only = feat.sin().sum()  # reaches the backbone only
    terms = dict(task=task, feat_only=feat_only, both=2 * task + feat_only, constant=torch.tensor(3.0))
    groups = dict(backbone=list(backbone.parameters()), head=list(head.parameters()))
    out = tool.measure_terms(terms, groups)

    def grads(value, params):
        found = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, found)])

    params = [*backbone.parameters(), *head.parameters()]
    g_task, g_feat = grads(task, params), grads(feat_only, params)
    assert out['task']['grad_backbone'] == pytest.approx(float(grads(task, groups['backbone']).norm()), rel=1e-5)
    assert out['task']['grad_head'] == pytest.approx(float(grads(task, groups['head']).norm()), rel=1e-5)
    assert out['task']['ratio_backbone'] == pytest.approx(1) and out['task']['cos_task'] == pytest.approx(1)
    assert out['feat_only']['grad_head'] == 0 and out['feat_only']['ratio_head'] == 0
    assert out['feat_only']['ratio_backbone'] == pytest.approx(
        float(grads(feat_only, groups['backbone']).norm() / grads(task, groups['backbone']).norm()), rel=1e-5)
    assert out['feat_only']['cos_task'] == pytest.approx(
        float(g_feat @ g_task / (g_feat.norm() * g_task.norm())), rel=1e-5, abs=1e-7)
    assert out['both']['grad_head'] == pytest.approx(2 * out['task']['grad_head'], rel=1e-5)
    assert out['both']['loss'] == pytest.approx(float(2 * task + feat_only))
    assert out['constant'] == dict(loss=3.0, grad_backbone=0.0, ratio_backbone=0.0, grad_head=0.0, ratio_head=0.0,
                                   cos_task=None)


def test_nc_terms_sum_and_scale_with_the_loss_weight(tool, data_root):
    base = tool.main([NC, *tiny(data_root)])
    assert base['batches'] == 2 and base['teacher_ckpt'] is None and base['epoch'] == 0
    names = ['student.loss_cls', 'task', 'distill.loss_nc', *(f'distill.loss_nc/{t}' for t in NC_TERMS),
             'distill (sum)']
    assert list(base['summary']['terms']) == names
    for batch in base['per_batch']:
        terms = batch['terms']
        assert sum(terms[f'distill.loss_nc/{t}']['loss'] for t in NC_TERMS) == pytest.approx(
            terms['distill.loss_nc']['loss'], rel=1e-5)
        assert terms['task']['grad_head'] > 0 and terms['task']['grad_backbone'] > 0
        for name in names[2:]:  # the NC losses read the penultimate feature: nothing reaches the classifier
            assert terms[name]['grad_head'] == 0 and terms[name]['grad_backbone'] > 0
            assert terms[name]['ratio_backbone'] == pytest.approx(
                terms[name]['grad_backbone'] / terms['task']['grad_backbone'])
        assert batch['student_feat_norm'] > 0
        assert set(batch['teacher_reference']) == {'distill.loss_nc', *(f'distill.loss_nc/{t}' for t in NC_TERMS)}
    # same seed, same batches and weights: doubling the NC weight doubles its gradients and leaves the task's
    doubled = tool.main([NC, *tiny(data_root, 'model.distiller.distill_losses.loss_nc.loss_weight=2.0')])
    for name, row in base['summary']['terms'].items():
        factor = 1 if name.startswith(('student', 'task')) else 2
        new = doubled['summary']['terms'][name]
        assert new['loss'] == pytest.approx(factor * row['loss'], rel=1e-4)
        assert new['grad_backbone'] == pytest.approx(factor * row['grad_backbone'], rel=1e-3)
        assert new['cos_task'] == pytest.approx(row['cos_task'], rel=1e-3, abs=1e-5)
    assert doubled['summary']['teacher_reference']['distill.loss_nc'] == pytest.approx(
        2 * base['summary']['teacher_reference']['distill.loss_nc'], rel=1e-4)


def test_icd_terms_reach_the_head_and_print(tool, data_root, capsys):
    out = tool.main([ICD, *tiny(data_root)])
    terms = out['summary']['terms']
    assert list(terms) == ['student.loss_cls', 'task', 'distill.loss_kd', 'distill.loss_icd', 'distill (sum)']
    for name in ('distill.loss_kd', 'distill.loss_icd'):  # logit losses: through the classifier into both parts
        assert terms[name]['grad_head'] > 0 and terms[name]['grad_backbone'] > 0
    assert out['summary']['teacher_reference'] == {}  # no loss reads the student feature
    printed = capsys.readouterr().out
    assert f'{ICD}: 2 batches, epoch 0' in printed
    assert any(line.startswith('distill.loss_icd ') and len(line.split()) == 7 for line in printed.splitlines())


@pytest.mark.parametrize('algorithm_format', [False, True])
def test_checkpoint_restores_the_student(tool, data_root, tmp_path, algorithm_format):
    # a student whose classifier is all zeros: the task loss is then log(10) and no gradient reaches the backbone
    with DefaultScope.overwrite_default_scope('mmkd'):
        student = MODELS.build(dict(type='ImageClassifier', backbone=dict(type='CIFARResNet', arch='resnet8'),
                                    head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))
    nn.init.zeros_(student.head.fc.weight)
    nn.init.zeros_(student.head.fc.bias)
    state = student.state_dict()
    if algorithm_format:
        state = {f'architecture.{k}': v for k, v in state.items()}
    ckpt = tmp_path / 'epoch_3.pth'
    torch.save(dict(state_dict=state, meta=dict(epoch=3)), ckpt)
    out = tool.main([ICD, '--checkpoint', str(ckpt), *tiny(data_root)])
    task = out['summary']['terms']['student.loss_cls']
    assert out['epoch'] == 3
    assert task['loss'] == pytest.approx(0.1 * math.log(10), rel=1e-5)  # the iCD recipe weighs CE 0.1
    assert task['grad_backbone'] == 0 and task['grad_head'] > 0
    assert out['summary']['terms']['distill.loss_kd']['ratio_backbone'] is None  # no task gradient to compare to


def test_refuses_a_config_that_does_not_distil(tool, data_root):
    with pytest.raises(SystemExit, match='not a distillation config'):
        tool.main(['configs/cls/synthetic/res8_baseline_synthetic.py', *tiny(data_root)[:4],
                   '--cfg-options', f'train_dataloader.dataset.data_root={data_root}'])


def test_warmup_factor_applies_to_the_loss_and_its_terms(tool, data_root):
    # epoch 4 of a 10-epoch linear warm-up: factor (4 + 1) / 10; the sub-terms are scaled alike (the tool checks
    # that they sum to the loss the step used)
    full = tool.main([NC, *tiny(data_root)])['summary']['terms']
    half = tool.main([NC, '--epoch', '4', *tiny(data_root, 'model.loss_warmup.loss_nc=10')])['summary']['terms']
    assert half['student.loss_cls']['loss'] == pytest.approx(full['student.loss_cls']['loss'], rel=1e-5)
    for name in ('distill.loss_nc', *(f'distill.loss_nc/{t}' for t in NC_TERMS)):
        assert half[name]['loss'] == pytest.approx(0.5 * full[name]['loss'], rel=1e-4)
        assert half[name]['ratio_backbone'] == pytest.approx(0.5 * full[name]['ratio_backbone'], rel=1e-3)
