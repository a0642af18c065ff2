"""Shapes, parameter counts and errors of the CIFAR backbones of the KD benchmark."""
import pytest
import torch

import mmkd  # noqa: F401  (registers everything)
from mmkd.models.backbones.utils import channel_shuffle
from mmkd.registry import MODELS

# config, final [C, H, W] at 32x32, parameters without the classifier (CRD's counts minus the 100-way fc)
CASES = [
    (dict(type='CIFARResNet', arch='resnet20'), (64, 8, 8), 0.2718),
    (dict(type='CIFARResNet', arch='resnet56'), (64, 8, 8), 0.8551),
    (dict(type='CIFARResNet', arch='resnet8x4'), (256, 8, 8), 1.2078),
    (dict(type='CIFARResNet', arch='resnet32x4'), (256, 8, 8), 7.4082),
    (dict(type='CIFARResNet', arch='resnet50'), (2048, 4, 4), 23.5004),
    (dict(type='CIFARWideResNet', depth=40, widen_factor=2), (128, 8, 8), 2.2423),
    (dict(type='CIFARWideResNet', depth=40, widen_factor=1), (64, 8, 8), 0.5633),
    (dict(type='CIFARShuffleNetV1'), (960, 4, 4), 0.8532),
    (dict(type='CIFARShuffleNetV2'), (1024, 4, 4), 1.2530),
    (dict(type='CIFARMobileNetV2'), (1280, 2, 2), 0.6847),
]


@pytest.mark.parametrize('cfg,shape,mparams', CASES, ids=lambda c: str(c.get('arch', c['type'])) if isinstance(
    c, dict) else None)
def test_backbone_shapes_and_size(cfg, shape, mparams):
    model = MODELS.build(cfg)
    out = model(torch.randn(2, 3, 32, 32))
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].shape == (2, *shape)
    assert model.out_channels[-1] == shape[0]
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(mparams, abs=1e-3)


def test_out_indices_and_backward():
    model = MODELS.build(dict(type='CIFARResNet', arch='resnet8x4', out_indices=(0, 1, 2)))
    x = torch.randn(2, 3, 32, 32)
    outs = model(x)
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 32, 32), (128, 16, 16), (256, 8, 8)]
    outs[-1].sum().backward()
    assert model.stem[0].weight.grad is not None and model.stem[0].weight.grad.abs().sum() > 0


def test_bad_configs_raise():
    with pytest.raises(ValueError, match='unknown arch'):
        MODELS.build(dict(type='CIFARResNet', arch='resnet21'))
    with pytest.raises(ValueError, match='out_indices'):
        MODELS.build(dict(type='CIFARResNet', arch='resnet20', out_indices=(3, )))
    with pytest.raises(ValueError, match='6n \\+ 4'):
        MODELS.build(dict(type='CIFARWideResNet', depth=41))


def test_channel_shuffle_permutes_groups():
    x = torch.arange(6.).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0., 3., 1., 4., 2., 5.]
    assert channel_shuffle(x, 3).flatten().tolist() == [0., 2., 4., 1., 3., 5.]
