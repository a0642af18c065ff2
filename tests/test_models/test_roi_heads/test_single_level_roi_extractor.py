"""mmkd.models.roi_heads.SingleRoIExtractor: mmdet's extractor with mmkd.ops layers, built from a detector config."""
import pytest
import torch

import mmkd  # noqa: F401,I001
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor as MMDetSingleRoIExtractor
from mmdet.registry import MODELS as MMDET_MODELS

from mmkd.models.roi_heads import SingleRoIExtractor
from mmkd.ops import RoIAlign

CFG = dict(roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0), out_channels=6,
           featmap_strides=[4, 8, 16, 32])


def test_built_from_the_mmdet_scope_with_mmkd_layers_and_the_same_features():
    ours = MMDET_MODELS.build(dict(CFG, type='mmkd.models.roi_heads.SingleRoIExtractor',
                                   roi_layer=dict(CFG['roi_layer'], type='mmkd.RoIAlign')))
    ref = MMDetSingleRoIExtractor(**CFG)
    assert isinstance(ours, SingleRoIExtractor) and all(type(layer) is RoIAlign for layer in ours.roi_layers)
    assert [layer.spatial_scale for layer in ours.roi_layers] == [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    feats = tuple(torch.randn(2, 6, 512 // s, 480 // s, requires_grad=True) for s in (4, 8, 16, 32))
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(40, 2, generator=g) * 200
    rois = torch.cat([torch.randint(0, 2, (40, 1), generator=g).float(), xy,
                      xy + 8 + torch.rand(40, 2, generator=g) * 500], 1)  # sizes that use all four levels
    assert len(set(ref.map_roi_levels(rois, 4).tolist())) == 4
    out, expected = ours(feats, rois), ref(feats, rois)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), feats)
    expected_grads = torch.autograd.grad(expected.square().sum(), feats)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-4, rtol=1e-4)


def test_mmcv_layers_as_in_mmdet_and_an_unknown_mmkd_layer_named():
    assert all(type(layer).__module__.startswith('mmcv') for layer in SingleRoIExtractor(**CFG).roi_layers)
    with pytest.raises(ValueError, match=r"'mmkd.RoIPool' is not a layer of mmkd.ops \(it has RoIAlign\)"):
        SingleRoIExtractor(**dict(CFG, roi_layer=dict(type='mmkd.RoIPool', output_size=7)))
