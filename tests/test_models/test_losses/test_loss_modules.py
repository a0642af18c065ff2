"""Registered loss modules: registry, class-means binding, weights and term selection."""
from types import SimpleNamespace

import pytest
import torch
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmrazor.registry import MODELS as MMRAZOR_MODELS

import mmkd  # noqa: F401  (registers the modules)
from mmkd.models.losses import ICDLoss, ICDRoILoss, NCLoss, NDLoss
from mmkd.models.losses.functional import (icd_grouped_loss, icd_loss, nc1_align_loss, nc1_contrast_loss, nc2_loss,
                                           nc3_align_loss, nd_loss)
from mmkd.registry import MODELS
from mmkd.structures import ClassMeans


def filled_means(k=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = ClassMeans(k, d)
    means.update(torch.randn(3 * k, d, generator=g) + 1, torch.arange(3 * k) % k)
    return means


@pytest.mark.parametrize('name', ['NDLoss', 'NCLoss', 'ICDLoss', 'ICDRoILoss', 'EmbeddingProjector'])
def test_build_through_mmrazor_registry(name):
    kwargs = dict(in_channels=3, out_channels=2) if name == 'EmbeddingProjector' else {}
    built = MMRAZOR_MODELS.build(dict(type=f'mmkd.{name}', **kwargs))
    assert type(built).__name__ == name
    with MODELS.switch_scope_and_registry('mmkd') as registry:
        assert type(registry.build(dict(type=name, **kwargs))) is type(built)


def test_class_means_binding_is_not_a_submodule():
    loss = NDLoss()
    s, t, y = torch.randn(6, 4), torch.randn(6, 4), torch.arange(6) % 5
    with pytest.raises(RuntimeError, match='never bound.*class_means=dict.*ClassMeansHook'):
        loss(s, t, y)
    empty = ClassMeans(5, 4)
    loss.bind_class_means(empty)
    with pytest.raises(RuntimeError, match='no valid class'):
        loss(s, t, y)
    means = filled_means()
    loss.bind_class_means(means)
    assert list(loss.state_dict()) == [] and list(loss.children()) == []
    owner = torch.nn.ModuleDict(dict(means=means, loss=loss))
    assert sorted(owner.state_dict()) == ['means.counts', 'means.means', 'means.sums']
    with pytest.raises(TypeError, match='ClassMeans'):
        loss.bind_class_means(means.means)


def test_nd_module():
    means = filled_means()
    loss = NDLoss(loss_weight=2.5, eps=1e-4)
    loss.bind_class_means(means)
    s, t, y, w = torch.randn(6, 4), torch.randn(6, 4), torch.arange(6) % 5, torch.rand(6)
    torch.testing.assert_close(loss(s, t, y, w), 2.5 * nd_loss(s, t, y, means.means, w, 1e-4))
    # the default is KD++'s formula, 1 - <f_s, e_y> / (max(||f_s||, ||f_t||) + eps), even where the teacher
    # feature is far shorter than its class mean (where the [PROPOSAL] floor would change it)
    t_small = t * 1e-3
    e = torch.nn.functional.normalize(means.means[y], dim=1)
    kdpp = 1 - (s * e).sum(1) / (torch.maximum(s.norm(dim=1), t_small.norm(dim=1)) + 1e-4)
    s_small = s * 1e-3
    kdpp_small = 1 - (s_small * e).sum(1) / (torch.maximum(s_small.norm(dim=1), t_small.norm(dim=1)) + 1e-4)
    torch.testing.assert_close(loss(s, t_small, y, w), 2.5 * (w * kdpp).sum() / w.sum())
    torch.testing.assert_close(loss(s_small, t_small, y, w), 2.5 * (w * kdpp_small).sum() / w.sum())
    floored = NDLoss(loss_weight=2.5, eps=1e-4, norm_floor=0.1)
    floored.bind_class_means(means)
    torch.testing.assert_close(floored(s_small, t_small, y, w),
                               2.5 * nd_loss(s_small, t_small, y, means.means, w, 1e-4, norm_floor=0.1))
    assert not torch.isclose(floored(s_small, t_small, y, w), loss(s_small, t_small, y, w))
    with pytest.raises(ValueError, match='norm_floor must be >= 0'):
        NDLoss(norm_floor=-0.1)


def test_nc_module_terms_and_weights():
    means = filled_means()
    s, y, w = torch.randn(10, 4), torch.arange(10) % 5, torch.rand(10)
    clf = torch.randn(6, 4, requires_grad=True)
    loss = NCLoss(loss_weight=2., contrast_weight=1., align_weight=0.5, nc2_weight=3., nc3_weight=0.25, tau=0.2,
                  ignore_index=4)
    loss.bind_class_means(means)
    terms = loss.loss_terms(s, y, w, clf)
    p = means.means
    expected = dict(
        loss_nc1_contrast=2 * nc1_contrast_loss(s, y, p, 0.2, w),
        loss_nc1_align=2 * 0.5 * nc1_align_loss(s, y, p, w),
        loss_nc2=2 * 3 * nc2_loss(s, y, p, w, ignore_index=4),
        loss_nc3=2 * 0.25 * nc3_align_loss(clf, p))
    assert terms.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(terms[name], expected[name])
    total = loss(s, y, w, clf)
    torch.testing.assert_close(total, sum(expected.values()))
    total.backward()
    assert clf.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='classifier_weight'):
        loss(s, y)


def test_nc_module_skips_zero_weight_terms(monkeypatch):
    import mmkd.models.losses.nc_loss as nc_module

    def forbidden(*args, **kwargs):
        raise AssertionError('a term with weight 0 was computed')

    monkeypatch.setattr(nc_module, 'nc2_loss', forbidden)
    monkeypatch.setattr(nc_module, 'nc3_align_loss', forbidden)
    loss = NCLoss(nc2_weight=0., nc3_weight=0.)
    loss.bind_class_means(filled_means())
    assert set(loss.loss_terms(torch.randn(4, 4), torch.arange(4))) == {'loss_nc1_contrast', 'loss_nc1_align'}
    assert loss(torch.randn(4, 4), torch.arange(4)).dim() == 0
    with pytest.raises(ValueError, match='every term weight is 0'):
        NCLoss(contrast_weight=0, align_weight=0, nc2_weight=0)


def test_nc_module_counts_and_logs_skipped_nc2():
    """NC2 is skipped (0) for batches with 2 classes when centred; the skips are counted on the module and recorded
    in the message hub as train/nc2_skipped, which mmengine's logger prints."""
    import uuid

    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance(f'nc2_skip_test_{uuid.uuid4()}')  # new: the current instance
    loss = NCLoss(contrast_weight=0., align_weight=0., nc2_weight=1., ignore_index=-1)
    loss.bind_class_means(filled_means())
    loss.train()
    two = torch.tensor([0, 1, 0, 1, 4, 4])  # classes 0, 1 and the ignored last class
    three = torch.tensor([0, 1, 2, 1, 4, 4])
    s = torch.randn(6, 4, requires_grad=True)
    assert MessageHub.get_current_instance() is hub
    assert loss(s, two).item() == 0
    assert (loss.nc2_calls, loss.nc2_skipped) == (1, 1)
    assert hub.get_scalar('train/nc2_skipped').current() == 1
    out = loss(s, three)
    out.backward()
    assert out > 0 and s.grad.abs().sum() > 0
    assert (loss.nc2_calls, loss.nc2_skipped) == (2, 1)
    assert hub.get_scalar('train/nc2_skipped').mean() == 0.5
    uncentred = NCLoss(contrast_weight=0., align_weight=0., nc2_weight=1., ignore_index=-1, center=False)
    uncentred.bind_class_means(filled_means())
    assert uncentred(s, two) > 0 and uncentred.nc2_skipped == 0


def test_icd_modules():
    zs, zt = torch.randn(2, 6, 5), torch.randn(2, 6, 5)
    torch.testing.assert_close(ICDLoss(2., (1, 2), 3.)(zs, zt), 2 * icd_loss(zs, zt, (1, 2), 3.))
    rois = torch.tensor([[0, 0, 0, 10, 10], [0, 0, 0, 200, 200], [1, 5, 5, 60, 70], [0, 0, 0, 30, 20],
                         [1, 0, 0, 500, 500], [1, 10, 10, 20, 20]], dtype=torch.float)
    ls, lt = torch.randn(6, 7), torch.randn(6, 7)
    by_image = ICDRoILoss(loss_weight=1.5, tau=1.)
    torch.testing.assert_close(by_image.group_ids(rois), torch.tensor([0, 0, 1, 0, 1, 1]))
    torch.testing.assert_close(by_image(ls, lt, rois), 1.5 * icd_grouped_loss(ls, lt, rois[:, 0].long(), 1.))
    by_level = ICDRoILoss(group_by='image_level', finest_scale=56, num_levels=4)
    # sqrt(w*h): 10, 200, ~59.8, ~24.5, 500, 10 -> levels 0, 1, 0, 0, 3, 0
    torch.testing.assert_close(by_level.group_ids(rois), torch.tensor([0, 1, 4, 0, 7, 4]))
    levels = SingleRoIExtractor.map_roi_levels(SimpleNamespace(finest_scale=56), rois, 4)
    torch.testing.assert_close(by_level.group_ids(rois), rois[:, 0].long() * 4 + levels)
    with pytest.raises(ValueError, match='group_by'):
        ICDRoILoss(group_by='level')
    with pytest.raises(ValueError, match=r'\[R, 5\]'):
        by_image(ls, lt, rois[:, 1:])


def test_kdpp_configs_use_kdpps_formula():
    """Every KD++ config once used norm_floor=0.1 (then NDLoss's default), which is not KD++'s formula. The
    configs that define ND rely on the default, now 0: none may set another value without saying so here."""
    import glob
    import os.path as osp

    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    found = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get('type', '')).endswith('NDLoss'):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    for path in [osp.join(repo, 'configs/_base_/distill/roi_losses.py'),
                 *glob.glob(osp.join(repo, 'configs/cls/_base_/distill/*.py'))]:
        walk(Config.fromfile(path).to_dict())
    assert len(found) >= 4, found
    for cfg in found:
        assert cfg.get('norm_floor', 0) == 0, cfg
        assert MODELS.build(cfg).norm_floor == 0
