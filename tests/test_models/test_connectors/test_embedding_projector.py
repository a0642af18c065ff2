"""EmbeddingProjector: structure, init, shapes and use as an mmrazor connector."""
import pytest
import torch
from mmrazor.models.architectures.connectors.base_connector import BaseConnector
from mmrazor.registry import MODELS as MMRAZOR_MODELS
from torch import nn

import mmkd  # noqa: F401
from mmkd.models.connectors import EmbeddingProjector


def test_structure_init_and_forward():
    proj = EmbeddingProjector(6, 10, dropout=0.3)
    assert isinstance(proj, BaseConnector)
    assert [type(m) for m in proj.children()] == [nn.BatchNorm1d, nn.Dropout, nn.Linear]
    assert proj.dropout.p == 0.3
    assert torch.equal(proj.bn.weight, torch.ones(6)) and torch.equal(proj.bn.bias, torch.zeros(6))
    assert torch.equal(proj.fc.bias, torch.zeros(10)) and proj.fc.weight.abs().sum() > 0
    x = torch.randn(8, 6) * 3 + 2
    proj.eval()
    expected = proj.fc((x - proj.bn.running_mean) / torch.sqrt(proj.bn.running_var + proj.bn.eps))
    torch.testing.assert_close(proj(x), expected)
    proj.train()
    out = proj(x)
    out.sum().backward()
    assert out.shape == (8, 10) and proj.fc.weight.grad is not None and proj.bn.weight.grad is not None
    with pytest.raises(ValueError, match=r'\[N, 6\]'):
        proj(torch.randn(8, 6, 1, 1))


def test_in_configurable_distiller_connectors():
    distiller = MMRAZOR_MODELS.build(
        dict(
            type='ConfigurableDistiller',
            connectors=dict(proj=dict(type='mmkd.EmbeddingProjector', in_channels=4, out_channels=3, dropout=0.))))
    proj = distiller.connectors['proj']
    assert isinstance(proj, EmbeddingProjector)
    assert proj(torch.randn(5, 4)).shape == (5, 3)
    assert 'connectors.proj.fc.weight' in distiller.state_dict()
