"""SDD's multi-region KD (the KD term of iCD's released CD-SDD-KD): hand-computed values of the consistent /
complementary weighting, the released numerics, the registry and the iCD configs that use it."""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import BaseDataElement

import mmkd  # noqa: F401  (registers the modules)
from mmkd.models.losses import SDDKDLoss
from mmkd.models.losses.sdd_kd_loss import sdd_kd_loss, sdd_region_weights
from mmkd.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
L3 = math.log(3)
# KL(softmax([ln 3, 0]) || uniform over 2) = 0.75 ln 0.75 + 0.25 ln 0.25 + ln 2
KAPPA = 0.75 * math.log(0.75) + 0.25 * math.log(0.25) + math.log(2)


def teacher_case(scale=1.0):
    """B = 2, K = 2, P = 5 (scales 1, 2); labels (0, 1). Teacher regions per sample (their argmax; a tie goes to
    class 0): sample 0: [ln3, 0] (right: global right), [0, ln3] (wrong: complementary), [ln3, 0] (right),
    [0, 0] (class 0, right; KL 0), [0, ln3] (wrong: complementary); sample 1: [ln3, 0] (wrong: global wrong),
    [0, ln3] (right: complementary), [ln3, 0] (wrong), [0, 0] (class 0, wrong; KL 0), [ln3, 0] (wrong)."""
    rows = [[[L3, 0], [0, L3], [L3, 0], [0, 0], [0, L3]],
            [[L3, 0], [0, L3], [L3, 0], [0, 0], [L3, 0]]]
    teacher = torch.tensor(rows, dtype=torch.float64).transpose(1, 2) * scale  # [B, K, P]
    return teacher, torch.zeros_like(teacher), torch.tensor([0, 1])


def test_weights_by_hand():
    teacher, _, labels = teacher_case()
    torch.testing.assert_close(sdd_region_weights(teacher, labels),
                               torch.tensor([[1., 2, 1, 1, 2], [1, 2, 1, 1, 1]], dtype=torch.float64))
    torch.testing.assert_close(sdd_region_weights(teacher, labels, 3.0)[0],
                               torch.tensor([1., 3, 1, 1, 3], dtype=torch.float64))


def test_value_by_hand():
    teacher, student, labels = teacher_case()
    # sample 0: kappa * (1 + 2 + 1 + 0 + 2), sample 1: kappa * (1 + 2 + 1 + 0 + 1); divided by P * B = 10
    expected = 11 * KAPPA / 10
    torch.testing.assert_close(sdd_kd_loss(student, teacher, labels, tau=1.0),
                               torch.tensor(expected, dtype=torch.float64))
    # tau = 2 on twice the logits: the same distributions, times tau^2
    teacher2, _, _ = teacher_case(2.0)
    torch.testing.assert_close(sdd_kd_loss(student, teacher2, labels, tau=2.0),
                               torch.tensor(4 * expected, dtype=torch.float64))
    # the registered module: loss_weight times the function; every region weighs 1 with complementary_weight=1
    module = SDDKDLoss(loss_weight=0.9, tau=1.0, complementary_weight=1.0)
    torch.testing.assert_close(module(student, teacher, labels), torch.tensor(0.9 * 8 * KAPPA / 10,
                                                                              dtype=torch.float64))


def test_one_region_is_plain_kd_and_many_regions_are_not():
    g = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(6, 10, 1, generator=g), torch.randn(6, 10, 1, generator=g), torch.arange(6)
    plain = F.kl_div(F.log_softmax(s[..., 0] / 4, 1), F.softmax(t[..., 0] / 4, 1), reduction='batchmean') * 16
    torch.testing.assert_close(sdd_kd_loss(s, t, y), plain)
    s, t = torch.randn(6, 10, 21, generator=g) * 3, torch.randn(6, 10, 21, generator=g) * 3
    plain = F.kl_div(F.log_softmax(s[..., 0] / 4, 1), F.softmax(t[..., 0] / 4, 1), reduction='batchmean') * 16
    assert abs(float(sdd_kd_loss(s, t, y)) - float(plain)) > 1e-3


def test_gradients_reach_the_student_only():
    teacher, student, labels = teacher_case()
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    loss = sdd_kd_loss(student, teacher, labels, tau=1.0)
    loss.backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0
    # d/ds of KL(p || softmax(s)) at uniform s is (softmax(s) - p): sample 0, region 1 (weight 2, p = (.25, .75))
    torch.testing.assert_close(student.grad[0, :, 1], 2 / 10 * torch.tensor([0.25, -0.25], dtype=torch.float64))


def test_released_numerics():
    # a zero teacher probability where the teacher logit is -inf: its NaN element counts 0 (KL = ln 2 on that row)
    s, t, y = torch.zeros(1, 2, 1), torch.tensor([[[-math.inf], [0.]]]), torch.tensor([1])
    torch.testing.assert_close(sdd_kd_loss(s, t, y, tau=1.0), torch.tensor(math.log(2)))
    # a non-finite total is skipped: a constant 0
    s = torch.tensor([[[-math.inf], [0.]]], requires_grad=True)
    loss = sdd_kd_loss(s, torch.zeros(1, 2, 1), y, tau=1.0)
    assert loss.item() == 0 and not loss.requires_grad
    empty = torch.zeros(0, 3, 5, requires_grad=True)
    assert sdd_kd_loss(empty, empty.detach(), torch.zeros(0, dtype=torch.long)).item() == 0


def test_errors():
    s = torch.zeros(2, 3, 5)
    with pytest.raises(ValueError, match=r'shape \[B, K, P\]'):
        sdd_kd_loss(s, torch.zeros(2, 3, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r'int64 tensor of shape \[2\]'):
        sdd_kd_loss(s, s, torch.tensor([0., 1.]))
    with pytest.raises(ValueError, match='tau must be > 0'):
        SDDKDLoss(tau=0)


def test_registry():
    with MODELS.switch_scope_and_registry('mmkd') as registry:
        assert type(registry.build(dict(type='SDDKDLoss', loss_weight=0.9))) is SDDKDLoss


def icd_model(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs/cls/synthetic', name))
    cfg.model.pop('teacher_ckpt', None)
    cfg.model.allow_random_teacher = True  # a random teacher: only the wiring is checked
    with DefaultScope.overwrite_default_scope('mmkd'):
        return cfg, MODELS.build(cfg.model)


def test_released_icd_config_uses_sdd_kd_on_the_recorded_local_logits():
    """The released iCD row: loss_kd is 0.9 * SDD-KD on the local logits the heads record (with the labels), the
    plain-KD variant 0.9 * KD on the global logits."""
    cfg, model = icd_model('icd_res20_res8_synthetic.py')
    assert cfg.model.distiller.distill_losses.loss_kd.type == 'SDDKDLoss'
    assert isinstance(model.distiller.distill_losses.loss_kd, SDDKDLoss)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    ds = [BaseDataElement(gt_label=torch.tensor([y])) for y in (3, 7)]
    seen = {}
    for role, net in (('s', model.student), ('t', model.teacher)):
        net.head.local_logits.register_forward_hook(lambda m, i, o, role=role: seen.__setitem__(role, o.detach()))
    losses = model.loss(x, ds)
    assert seen['s'].shape == seen['t'].shape == (2, 10, 21)
    expected = 0.9 * sdd_kd_loss(seen['s'], seen['t'], torch.tensor([3, 7]))
    torch.testing.assert_close(losses['distill.loss_kd'], expected)
    _, plain = icd_model('icd_plainkd_res20_res8_synthetic.py')
    assert type(plain.distiller.distill_losses.loss_kd).__name__ == 'KLDivergence'
    assert set(plain.distiller.distill_losses) == {'loss_kd', 'loss_icd'}
    assert plain.student.head.loss_module.loss_weight == 0.1
    _, full = icd_model('icd_full_plainkd_res20_res8_synthetic.py')
    assert full.student.head.loss_module.loss_weight == 1.0
    assert type(full.distiller.distill_losses.loss_kd).__name__ == 'KLDivergence'
