"""ABFConnector (ReviewKD's attention-based fusion): structure, init, shapes, fusion order, errors."""
import math

import pytest
import torch
import torch.nn.functional as F

import mmkd  # noqa: F401,I001  (first: patches mmrazor's imports on torch 2.x, registers the modules)
from mmrazor.models.architectures.connectors.base_connector import BaseConnector
from mmrazor.registry import MODELS as MMRAZOR_MODELS
from torch import nn

from mmkd.models.connectors import ABFConnector

SIZES = [(16, 20), (8, 10), (4, 5), (2, 3), (1, 2)]  # FPN-like: each level half the previous one
IN, OUT = [4, 6, 8, 10, 12], [5, 7, 9, 11, 13]


def fpn_like(n=2, channels=IN, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, c, h, w, generator=g) for c, (h, w) in zip(channels, SIZES))


def test_structure_init_and_output_shapes():
    conn = MMRAZOR_MODELS.build(dict(type='mmkd.ABFConnector', in_channels=IN, out_channels=OUT, mid_channels=3))
    assert isinstance(conn, ABFConnector) and isinstance(conn, BaseConnector) and len(conn.abfs) == 5
    for level, abf in enumerate(conn.abfs):
        conv1, bn1 = abf.conv1
        conv2, bn2 = abf.conv2
        assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.bias) == (IN[level], 3, (1, 1), None)
        assert (conv2.in_channels, conv2.out_channels, conv2.kernel_size, conv2.padding, conv2.bias) == \
            (3, OUT[level], (3, 3), (1, 1), None)
        assert isinstance(bn1, nn.BatchNorm2d) and isinstance(bn2, nn.BatchNorm2d)
        # kaiming_uniform_(a=1): U(-b, b) with b = sqrt(6 / ((1 + a^2) fan_in)) = sqrt(3 / fan_in)
        for conv in (conv1, conv2):
            fan_in = conv.weight[0].numel()
            assert conv.weight.abs().max() <= math.sqrt(3 / fan_in) + 1e-6
            assert conv.weight.abs().max() > 0.5 * math.sqrt(3 / fan_in)
        if level < 4:
            att, sigmoid = abf.att_conv
            assert (att.in_channels, att.out_channels, att.kernel_size) == (6, 2, (1, 1)) and att.bias is not None
            assert isinstance(sigmoid, nn.Sigmoid)
    assert conn.abfs[4].att_conv is None  # the deepest level is not fused
    outs = conn(fpn_like())
    assert isinstance(outs, tuple)
    assert [tuple(o.shape) for o in outs] == [(2, c, h, w) for c, (h, w) in zip(OUT, SIZES)]
    # one int for every level, 5 levels by default (P2-P6)
    assert len(ABFConnector(256, 256).abfs) == 5 and len(ABFConnector([8, 8, 8], 4).abfs) == 3


def test_fusion_runs_from_the_deepest_level_up():
    conn = ABFConnector(IN, OUT, mid_channels=3).eval()
    feats = fpn_like()
    outs = conn(feats)
    # by hand: the deepest level alone, then each shallower level fused with the deeper fused map
    fused = conn.abfs[4].conv1(feats[4])
    torch.testing.assert_close(outs[4], conn.abfs[4].conv2(fused))
    for level in (3, 2, 1, 0):
        abf = conn.abfs[level]
        x = abf.conv1(feats[level])
        y = F.interpolate(fused, size=x.shape[-2:], mode='nearest')
        a = torch.sigmoid(abf.att_conv[0](torch.cat([x, y], 1)))
        fused = x * a[:, :1] + y * a[:, 1:]
        torch.testing.assert_close(outs[level], abf.conv2(fused))
    # information flows from deep to shallow only: changing the shallowest input changes only its output,
    # changing the deepest input changes every output
    shallow = (feats[0] + 1, ) + feats[1:]
    changed = [not torch.allclose(a, b) for a, b in zip(conn(shallow), outs)]
    assert changed == [True, False, False, False, False]
    deep = feats[:4] + (feats[4] + 1, )
    assert all(not torch.allclose(a, b) for a, b in zip(conn(deep), outs))


def test_every_parameter_gets_a_gradient():
    conn = ABFConnector(IN, OUT, mid_channels=3).train()
    outs = conn(fpn_like())
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    for name, p in conn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs_and_configs_name_the_fix():
    conn = ABFConnector(IN, OUT)
    with pytest.raises(TypeError, match="FPN levels.*ModuleOutputs on 'neck'"):
        conn(torch.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match='built for 5 levels but got 4'):
        conn(fpn_like()[:4])
    with pytest.raises(ValueError, match=r'C = \[4, 6, 8, 10, 12\].*in_channels'):
        conn(fpn_like(channels=[4, 6, 8, 10, 13]))
    with pytest.raises(ValueError, match='level 1 is one 1x1 map.*>= 2 images per GPU'):
        ABFConnector(4, 4, num_levels=2).train()((torch.randn(1, 4, 2, 2), torch.randn(1, 4, 1, 1)))
    ABFConnector(4, 4, num_levels=2).eval()((torch.randn(1, 4, 2, 2), torch.randn(1, 4, 1, 1)))  # eval: fine
    with pytest.raises(ValueError, match='different numbers of levels'):
        ABFConnector([4, 4], [4, 4, 4])
    with pytest.raises(ValueError, match='different numbers of levels'):
        ABFConnector(4, [4, 4], num_levels=3)
    with pytest.raises(ValueError, match='positive widths'):
        ABFConnector([4, 0], 4)
    with pytest.raises(ValueError, match='mid_channels'):
        ABFConnector(4, 4, mid_channels=0)
