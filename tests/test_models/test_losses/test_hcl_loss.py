"""ReviewKD's HCL loss (function and module): values computed by hand, the authors' formula, errors."""
import pytest
import torch
import torch.nn.functional as F
from mmrazor.registry import MODELS as MMRAZOR_MODELS

import mmkd  # noqa: F401  (registers the modules)
from mmkd.models.losses import HCLLoss
from mmkd.models.losses.functional import hcl_loss


def hand_levels():
    """Three single-channel levels against a zero teacher, with their HCL values worked out by hand."""
    a = torch.tensor([[1., 2.], [3., 4.]]).view(1, 1, 2, 2)
    # 2x2: sizes 4 and 2 are >= H, skipped; 1x1 is the first size kept, weight 1/2. mse 30/4, pooled mean 2.5
    a_loss = (7.5 + 0.5 * 6.25) / 1.5
    b = torch.arange(8.).view(1, 1, 8, 1).expand(1, 1, 8, 8).contiguous()  # value = row index
    # 8x8: every size kept (1/2, 1/4, 1/8); pooled rows: 4x4 -> .5 2.5 4.5 6.5, 2x2 -> 1.5 5.5, 1x1 -> 3.5
    b_loss = (140 / 8 + 0.5 * 69 / 4 + 0.25 * 32.5 / 2 + 0.125 * 12.25) / 1.875
    c = torch.arange(9.).view(1, 1, 3, 3)
    # 3x3 (smaller than 4x4): 4 skipped, 2x2 gets 1/2 (overlapping windows: 2, 3, 5, 6), 1x1 gets 1/4 (mean 4)
    c_loss = (204 / 9 + 0.5 * (4 + 9 + 25 + 36) / 4 + 0.25 * 16) / 1.75
    return [a, b, c], [a_loss, b_loss, c_loss]


def authors_hcl(fstudent, fteacher):
    """The ND authors' / ReviewKD's ``hcl`` (Detection/model/reviewkd.py), transcribed."""
    loss_all = 0.0
    for fs, ft in zip(fstudent, fteacher):
        n, c, h, w = fs.shape
        loss = F.mse_loss(fs, ft, reduction='mean')
        cnt = 1.0
        tot = 1.0
        for size in [4, 2, 1]:
            if size >= h:
                continue
            tmpfs = F.adaptive_avg_pool2d(fs, (size, size))
            tmpft = F.adaptive_avg_pool2d(ft, (size, size))
            cnt /= 2.0
            loss += F.mse_loss(tmpfs, tmpft, reduction='mean') * cnt
            tot += cnt
        loss = loss / tot
        loss_all = loss_all + loss
    return loss_all


def test_hcl_matches_values_computed_by_hand():
    feats, expected = hand_levels()
    zeros = [torch.zeros_like(f) for f in feats]
    for f, e in zip(feats, expected):  # each level alone
        assert hcl_loss([f], [torch.zeros_like(f)]).item() == pytest.approx(e, rel=1e-6)
    assert hcl_loss(feats, zeros).item() == pytest.approx(sum(expected), rel=1e-6)  # levels summed
    # symmetric in student and teacher, and shifted both alike it does not change
    assert hcl_loss(zeros, feats).item() == pytest.approx(sum(expected), rel=1e-6)
    assert hcl_loss([f + 3 for f in feats], [z + 3 for z in zeros]).item() == pytest.approx(sum(expected), rel=1e-5)
    assert hcl_loss(feats, feats).item() == 0


def test_hcl_matches_the_authors_formula_on_fpn_like_levels():
    g = torch.Generator().manual_seed(0)
    sizes = [(20, 28), (10, 14), (5, 7), (3, 4), (2, 2), (1, 1)]  # a 1x1 level keeps no pooled term
    fs = [torch.randn(3, 6, h, w, generator=g) for h, w in sizes]
    ft = [torch.randn(3, 6, h, w, generator=g) * 2 + 1 for h, w in sizes]
    torch.testing.assert_close(hcl_loss(fs, ft), authors_hcl(fs, ft))
    # level by level too (a wrong weight on one level could hide in the sum)
    for s, t in zip(fs, ft):
        torch.testing.assert_close(hcl_loss([s], [t]), authors_hcl([s], [t]))


def test_hcl_module_weight_gradient_and_registry():
    feats, expected = hand_levels()
    student = [f.clone().requires_grad_() for f in feats]
    teacher = tuple(torch.zeros_like(f) for f in feats)
    loss = MMRAZOR_MODELS.build(dict(type='mmkd.HCLLoss', loss_weight=1.4))
    assert isinstance(loss, HCLLoss)
    value = loss(tuple(student), teacher)
    assert value.item() == pytest.approx(1.4 * sum(expected), rel=1e-6)
    value.backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)
    # pool_sizes: only the full-resolution term left
    plain = HCLLoss(pool_sizes=())
    assert plain(feats, teacher).item() == pytest.approx(sum(f.pow(2).mean().item() for f in feats), rel=1e-6)


def test_hcl_in_low_precision_is_computed_in_float32():
    feats, expected = hand_levels()
    half = [f.bfloat16() for f in feats]
    value = hcl_loss(half, [torch.zeros_like(h) for h in half])
    assert value.dtype == torch.float32 and value.item() == pytest.approx(sum(expected), rel=1e-6)


def test_hcl_bad_inputs_name_the_problem():
    a = torch.randn(2, 4, 8, 8)
    with pytest.raises(TypeError, match='one feature map per level'):
        hcl_loss(a, a)
    with pytest.raises(ValueError, match='same non-zero number of student and teacher levels, got 2 and 1'):
        hcl_loss([a, a], [a])
    with pytest.raises(ValueError, match='same non-zero number'):
        hcl_loss([], [])
    with pytest.raises(ValueError, match=r'level 1: .*\[2, 4, 8, 8\] and \[2, 8, 8, 8\].*out_channels'):
        hcl_loss([a, a], [a, torch.randn(2, 8, 8, 8)])
    with pytest.raises(ValueError, match='level 0'):
        hcl_loss([a.flatten(2)], [a.flatten(2)])
    with pytest.raises(ValueError, match='pool_sizes'):
        HCLLoss(pool_sizes=(4, 0))
