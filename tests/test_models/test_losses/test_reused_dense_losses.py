"""The dense-detector losses mmkd reuses from mmrazor 1.0.0 (PKD, CWD, MGD) and mmdet 3.3 (LD's KL), built by
the names users write in mmkd configs, against hand-computed vectors: they run on this torch, and the names
resolve."""
import math

import pytest
import torch

import mmkd  # noqa: F401  (registers the modules)
from mmkd.registry import MODELS


def build(cfg):
    """Build as a config in the ``mmkd`` scope does (ConfigurableDistiller builds its losses this way)."""
    with MODELS.switch_scope_and_registry('mmkd') as registry:
        return registry.build(cfg)


@pytest.mark.parametrize('prefix', ['', 'mmrazor.'])
def test_names_resolve(prefix):
    assert type(build(dict(type=f'{prefix}PKDLoss'))).__name__ == 'PKDLoss'
    assert type(build(dict(type=f'{prefix}ChannelWiseDivergence'))).__name__ == 'ChannelWiseDivergence'
    assert type(build(dict(type=f'{prefix}MGDLoss'))).__name__ == 'MGDLoss'
    connector = build(dict(type=f'{prefix}MGDConnector', student_channels=2, teacher_channels=2))
    assert type(connector).__name__ == 'MGDConnector'


def test_ld_loss_name_resolves_with_mmdet_scope():
    assert type(build(dict(type='mmdet.KnowledgeDistillationKLDivLoss'))).__name__ == \
        'KnowledgeDistillationKLDivLoss'
    with pytest.raises(KeyError, match='KnowledgeDistillationKLDivLoss'):  # mmdet's losses need the prefix
        build(dict(type='KnowledgeDistillationKLDivLoss'))


def row(*values):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


# ---------------------------------------------------------------------------------------------------------------
# PKD
# ---------------------------------------------------------------------------------------------------------------
def test_pkd_vectors():
    pkd = build(dict(type='PKDLoss'))
    a = row(1, 2, 3, 4)
    assert pkd(a, 2 * a + 5).item() == pytest.approx(0, abs=1e-6)
    assert pkd(a, row(4, 3, 2, 1)).item() == pytest.approx(1.4999979, rel=1e-5)
    assert pkd(row(1, 2, 3), row(1, 3, 2)).item() == pytest.approx(0.3333327, rel=1e-5)
    pkd6 = build(dict(type='mmrazor.PKDLoss', loss_weight=6))
    levels = pkd6((a, row(1, 2, 3)), (row(4, 3, 2, 1), row(1, 3, 2)))
    assert levels.item() == pytest.approx(10.999983, rel=1e-5)


def test_pkd_resizes_the_student():
    pkd = build(dict(type='PKDLoss'))
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 8, 8)
    assert torch.isfinite(pkd(s, t)) and pkd(s, t) > 0


# ---------------------------------------------------------------------------------------------------------------
# CWD
# ---------------------------------------------------------------------------------------------------------------
def test_cwd_vectors():
    s, t = row(0, 0), row(math.log(3), 0)
    assert build(dict(type='ChannelWiseDivergence', tau=1.0))(s, t).item() == pytest.approx(0.1308121, rel=1e-5)
    assert build(dict(type='ChannelWiseDivergence', tau=2.0))(s, t).item() == pytest.approx(0.1453632, rel=1e-5)
    s4, t4 = torch.zeros(2, 2, 1, 2), torch.zeros(2, 2, 1, 2)
    t4[1, 0, 0] = torch.tensor([math.log(3), 0])  # one non-trivial row of the 4
    cwd10 = build(dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=10))
    assert cwd10(s4, t4).item() == pytest.approx(0.3270303, rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# MGD
# ---------------------------------------------------------------------------------------------------------------
def test_mgd_loss_vectors():
    mgd = build(dict(type='MGDLoss', alpha_mgd=2e-5))
    gen = torch.tensor([[1., 2.], [0., 0.]]).view(1, 2, 1, 2)
    t = torch.tensor([[0., 0.], [3., 0.]]).view(1, 2, 1, 2)
    assert mgd(gen, t).item() == pytest.approx(2.8e-4, rel=1e-5)
    assert mgd(torch.cat([gen, gen]), torch.cat([t, torch.zeros_like(t)])).item() == pytest.approx(1.9e-4, rel=1e-5)


@pytest.mark.parametrize('mask_on_channel', [False, True])
def test_mgd_connector_shapes_and_mask_fraction(mask_on_channel):
    torch.manual_seed(0)
    connector = build(
        dict(type='MGDConnector', student_channels=4, teacher_channels=8, lambda_mgd=0.65,
             mask_on_channel=mask_on_channel))
    seen = []
    connector.generation[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    x = torch.randn(4, 4, 32, 32)
    out = connector(x)
    assert out.shape == (4, 8, 32, 32) and torch.isfinite(out).all()
    masked = seen[0]  # the aligned feature with a fraction lambda of pixels (or channels) zeroed
    aligned = connector.align(x)
    zero = masked == 0
    if mask_on_channel:
        per_channel = zero.flatten(2).all(dim=2)  # [N, C]: whole channels zeroed
        assert torch.equal(zero, per_channel[:, :, None, None].expand_as(zero))
        fraction, tol = per_channel.float().mean().item(), 0.2  # 32 draws
    else:
        per_pixel = zero.all(dim=1)  # [N, H, W]: whole pixels zeroed
        assert torch.equal(zero, per_pixel[:, None].expand_as(zero))
        fraction, tol = per_pixel.float().mean().item(), 0.03  # 4096 draws
    assert fraction == pytest.approx(0.65, abs=tol)
    torch.testing.assert_close(masked[~zero], aligned[~zero])


# ---------------------------------------------------------------------------------------------------------------
# LD (mmdet 3.3's KnowledgeDistillationKLDivLoss, T = 10, weight 0.25)
# ---------------------------------------------------------------------------------------------------------------
def test_ld_vectors():
    student = torch.zeros(1, 3)
    teacher = torch.tensor([[10 * math.log(2), 0., 0.]])
    one = build(dict(type='mmdet.KnowledgeDistillationKLDivLoss', T=10, loss_weight=1.0))
    assert one(student, teacher).item() == pytest.approx(1.963051, rel=1e-5)
    ld = build(dict(type='mmdet.KnowledgeDistillationKLDivLoss', T=10, loss_weight=0.25))
    assert ld(student, teacher).item() == pytest.approx(0.4907628, rel=1e-5)
    # LDHead: one positive, its 4 sides, weight 0.8 repeated over them, avg_factor 4
    sides = ld(student.expand(4, 3), teacher.expand(4, 3), weight=torch.full((4, ), 0.8), avg_factor=4)
    assert sides.item() == pytest.approx(0.3926103, rel=1e-5)
