"""Folding a frozen teacher's BatchNorms into its convolutions: pairs from the data flow, outputs unchanged."""
import copy
import os.path as osp

import pytest
import torch
from mmcv.cnn import fuse_conv_bn as mmcv_fuse_conv_bn
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import mmkd  # noqa: F401
from mmkd.models.utils import fuse_conv_bn_, trace_conv_bn_pairs
from mmkd.registry import MODELS
from mmkd.testing import randomise_batchnorms

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


class RegisteredOutOfOrder(nn.Module):
    """Registration order (conv_a, bn_b, conv_b, bn_a) differs from the data flow (conv_a->bn_a, conv_b->bn_b)."""

    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1)
        self.bn_b = nn.BatchNorm2d(4)
        self.conv_b = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn_b(self.conv_b(torch.relu(self.bn_a(self.conv_a(x)))))


class InPlaceBetween(nn.Module):
    """conv -> in-place ReLU -> BN: the BN does not read the convolution's output, so it must stay."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(torch.relu_(self.conv(x)))


class SkipReadsConv(nn.Module):
    """The convolution's output also bypasses the BN: folding would change the skip, so fusing is refused."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def check_fused(module: nn.Module, extract=lambda m, x: m(x), size: int = 32):
    """Fuse ``module`` (random BN statistics) and check it against an unfused copy on a fresh input."""
    module = randomise_batchnorms(module)
    reference = copy.deepcopy(module)
    trace = torch.randn(1, 3, size, size)
    fused = fuse_conv_bn_(module, lambda: extract(module, trace))
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected, actual = extract(reference, x), extract(module, x)
    if torch.is_tensor(expected):
        expected, actual = (expected, ), (actual, )
    assert len(expected) == len(actual)
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-4 * float(e.abs().max()))
    return fused, module


def test_pairs_follow_the_data_flow_not_the_registration_order():
    pairs, _ = trace_conv_bn_pairs(RegisteredOutOfOrder().eval(), lambda: None)  # nothing ran, nothing paired
    assert pairs == []
    module = RegisteredOutOfOrder().eval()
    x = torch.randn(1, 3, 8, 8)
    pairs, _ = trace_conv_bn_pairs(module, lambda: module(x))
    assert sorted(pairs) == [('conv_a', 'bn_a'), ('conv_b', 'bn_b')]
    fused, module = check_fused(RegisteredOutOfOrder())
    assert fused == 2 and isinstance(module.bn_a, nn.Identity) and module.conv_b.bias is not None
    assert set(module.state_dict()) == {'conv_a.weight', 'conv_a.bias', 'conv_b.weight', 'conv_b.bias'}
    # mmcv's registration-order fusion gets this module wrong: the reason mmkd traces the data flow
    reference = randomise_batchnorms(RegisteredOutOfOrder())
    with torch.no_grad():
        assert not torch.allclose(mmcv_fuse_conv_bn(copy.deepcopy(reference))(x), reference(x), atol=1e-3)


def test_in_place_op_between_conv_and_bn_is_left_alone():
    fused, module = check_fused(InPlaceBetween())
    assert fused == 0 and isinstance(module.bn, nn.BatchNorm2d)


def test_conv_output_read_elsewhere_is_refused():
    module = randomise_batchnorms(SkipReadsConv())
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(RuntimeError, match='teacher_fuse_conv_bn=False'):
        fuse_conv_bn_(module, lambda: module(x))


def test_training_mode_is_refused():
    module = RegisteredOutOfOrder().train()
    with pytest.raises(RuntimeError, match=r'training mode.*\.eval\(\)'):
        fuse_conv_bn_(module, lambda: module(torch.randn(1, 3, 8, 8)))


def teacher_of(config: str) -> nn.Module:
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdet')):
        return MODELS.build(cfg.model.teacher)


@pytest.mark.parametrize('config,size,all_folded', [
    ('cls/cifar100/kdpp_res56_res20.py', 32, True),
    ('cls/cifar100/kdpp_res32x4_res8x4.py', 32, True),
    ('cls/cifar100/kdpp_res50_mv2.py', 32, True),
    ('cls/cifar100/kdpp_wrn40_2_wrn40_1.py', 32, False),  # pre-activation: a block's first BN reads a sum
    ('cls/imagenet/kdpp_r34_r18.py', 64, True),
    ('faster_rcnn_r101_r50_nd.py', 64, True),
])
def test_shipped_teachers_fuse_without_changing_their_features(config, size, all_folded):
    teacher = teacher_of(config)
    num_bns = sum(isinstance(m, _BatchNorm) for m in teacher.modules())
    fused, teacher = check_fused(teacher, lambda m, x: m.extract_feat(x), size)
    left = sum(isinstance(m, _BatchNorm) for m in teacher.modules())
    assert fused + left == num_bns and fused > 0
    assert (left == 0) == all_folded
