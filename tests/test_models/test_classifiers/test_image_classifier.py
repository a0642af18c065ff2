"""The lean classifier: the shapes the distillation losses need, its three modes and its module boundaries."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

import mmkd  # noqa: F401
from mmkd.models.classifiers import multi_scale_local_logits
from mmkd.registry import MODELS


def build(backbone, in_channels, num_classes=10, local_scales=None):
    return MODELS.build(dict(
        type='ImageClassifier', backbone=backbone,
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=in_channels, local_scales=local_scales),
        data_preprocessor=dict(type='ImgDataPreprocessor', mean=[128.] * 3, std=[64.] * 3)))


def samples(labels):
    return [BaseDataElement(gt_label=torch.tensor([y])) for y in labels]


@pytest.mark.parametrize('backbone,dim', [
    (dict(type='CIFARResNet', arch='resnet8'), 64),
    (dict(type='CIFARMobileNetV2'), 1280),
    (dict(type='mmdet.ResNet', depth=18, out_indices=(3, ), norm_eval=False), 512),
])
def test_modes_and_recorded_shapes(backbone, dim):
    model = build(backbone, dim, local_scales=(1, 2, 4))
    x, ds = torch.randn(3, 3, 32, 32), samples([0, 4, 9])
    seen = {}
    hooks = [getattr(model, p[0]).get_submodule(p[1]).register_forward_hook(
        lambda m, i, o, name='.'.join(p): seen.__setitem__(name, (i, o)))
        for p in (('neck', ''), ('head', 'fc'), ('head', 'loss_module'), ('head', 'local_logits'))]
    losses = model(x, ds, mode='loss')
    for h in hooks:
        h.remove()
    assert set(losses) == {'loss_cls'} and losses['loss_cls'].dim() == 0
    feat, logits = seen['neck.'][1], seen['head.fc'][1]
    assert feat.shape == (3, dim) and logits.shape == (3, 10)
    assert seen['head.loss_module'][0][1].tolist() == [0, 4, 9]  # ModuleInputs data_idx=1 = labels
    local = seen['head.local_logits'][1]
    assert local.shape == (3, 10, 21)
    torch.testing.assert_close(local[:, :, 0], logits, rtol=1e-4, atol=1e-4)  # region 0 = global logit
    assert model(x, mode='tensor').shape == (3, 10)
    preds = model(x, samples([1, 2, 3]), mode='predict')
    assert len(preds) == 3 and preds[0].pred_score.shape == (10, ) and preds[0].pred_label.shape == (1, )
    torch.testing.assert_close(preds[0].pred_score.sum(), torch.tensor(1.))


def test_loss_is_cross_entropy_and_trains():
    model = build(dict(type='CIFARResNet', arch='resnet8'), 64)
    x, ds = torch.randn(4, 3, 32, 32), samples([1, 2, 3, 1])
    model.eval()
    logits = model(x, mode='tensor')
    loss = model(x, ds, mode='loss')['loss_cls']
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.tensor([1, 2, 3, 1])))
    model.train()
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    first = None
    for _ in range(5):
        loss = model(x, ds, mode='loss')['loss_cls']
        first = loss.item() if first is None else first
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert loss.item() < first


def test_local_logits_only_when_configured_and_enabled():
    calls = []
    model = build(dict(type='CIFARResNet', arch='resnet8'), 64)
    assert model.head.local_logits is None
    model = build(dict(type='CIFARResNet', arch='resnet8'), 64, local_scales=(1, 2))
    model.head.local_logits.register_forward_hook(lambda *a: calls.append(1))
    model(torch.randn(2, 3, 32, 32), mode='tensor')
    assert calls == [1] and model.head.local_logits.num_regions == 5
    model.head.compute_local = False
    model(torch.randn(2, 3, 32, 32), mode='tensor')
    assert calls == [1]


def test_multi_scale_local_logits_matches_pool_then_linear():
    fmap, w, b = torch.randn(2, 6, 8, 8), torch.randn(5, 6), torch.randn(5)
    z = multi_scale_local_logits(fmap, w, b, (1, 2, 4))
    assert z.shape == (2, 5, 21)
    # 2x2 region (row 1, col 0) is index 1 + 2 = 3; 4x4 region (row 2, col 3) is index 5 + 2 * 4 + 3 = 16
    torch.testing.assert_close(z[:, :, 3], fmap[:, :, 4:, :4].mean((2, 3)) @ w.T + b)
    torch.testing.assert_close(z[:, :, 16], fmap[:, :, 4:6, 6:].mean((2, 3)) @ w.T + b)
    with pytest.raises(ValueError, match='C = 6'):
        multi_scale_local_logits(torch.randn(2, 7, 8, 8), w, b, (1, ))


def test_errors():
    model = build(dict(type='CIFARResNet', arch='resnet8'), 64)
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match='gt_label'):
        model(x, [BaseDataElement(), BaseDataElement()], mode='loss')
    with pytest.raises(ValueError, match="mode must be"):
        model(x, mode='logits')
    with pytest.raises(ValueError, match='positive ints'):
        build(dict(type='CIFARResNet', arch='resnet8'), 64, local_scales=(0, 2))
