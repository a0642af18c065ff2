"""CrossKD's pieces (with mmdet 3.3's losses where CrossKD's equal them) against the hand-computed vectors of the
CrossKD method page, and the dense-positive gathering against mmdet's own anchor layout."""
import math

import pytest
import torch
from mmdet.models.losses import GIoULoss, IoULoss, KnowledgeDistillationKLDivLoss, QualityFocalLoss
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.models.task_modules.prior_generators import AnchorGenerator
from mmdet.models.utils import images_to_levels

from mmkd.models.losses.functional_dense import crosskd_align, distribution_kl_sum, gather_positive_rows


# ---------------------------------------------------------------------------------------------------------------
# KD-QFL = mmdet's QualityFocalLoss(use_sigmoid=True, beta=1) with a tensor target
# ---------------------------------------------------------------------------------------------------------------
def kd_qfl_by_hand(pred, teacher, weight, avg):
    """BCE_logits(z, sigma(z_t)) |sigma(z) - sigma(z_t)|, summed over classes, row-weighted, / avg."""
    target = teacher.sigmoid()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(pred, target, reduction='none')
    return ((bce * (pred.sigmoid() - target).abs()).sum(1) * weight).sum() / avg


def test_kd_qfl_vector():
    qfl = QualityFocalLoss(use_sigmoid=True, beta=1.0, loss_weight=1.0)
    pred = torch.tensor([[0., 2.]])
    teacher = torch.tensor([[math.log(3), 2.]])
    one = qfl(pred, teacher.sigmoid(), weight=torch.tensor([1.]), avg_factor=1)
    assert one.item() == pytest.approx(0.1732868, rel=1e-6)
    assert one.item() == pytest.approx(math.log(2) * 0.25, rel=1e-6)
    # a second row with weight 0 changes nothing
    pred2 = torch.cat([pred, torch.tensor([[1., -1.]])])
    teacher2 = torch.cat([teacher, torch.tensor([[-1., -1.]])])
    zero_row = qfl(pred2, teacher2.sigmoid(), weight=torch.tensor([1., 0.]), avg_factor=1)
    assert zero_row.item() == pytest.approx(0.1732868, rel=1e-6)
    both = qfl(pred2, teacher2.sigmoid(), weight=torch.tensor([1., 1.]), avg_factor=2)
    assert both.item() == pytest.approx(0.3279426, rel=1e-6)
    assert both.item() == pytest.approx(kd_qfl_by_hand(pred2, teacher2, torch.ones(2), 2).item(), rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# align
# ---------------------------------------------------------------------------------------------------------------
def test_align_vector():
    s = torch.tensor([0., 4, 1, -3]).view(1, 1, 1, 4)
    t = torch.tensor([1., 1, 3, 3]).view(1, 1, 1, 4)
    torch.testing.assert_close(crosskd_align(s, t).view(-1), torch.tensor([1.8, 3.4, 2.2, 0.6]), rtol=0, atol=1e-5)
    # statistics pooled over the batch: s = [0, 2], t = [10, 14] over N = 2
    s = torch.tensor([0., 2.]).view(2, 1, 1, 1)
    t = torch.tensor([10., 14.]).view(2, 1, 1, 1)
    torch.testing.assert_close(crosskd_align(s, t).view(-1), torch.tensor([10., 14.]), rtol=0, atol=1e-5)


def test_align_per_channel_and_gradient():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 4, 5, generator=g).requires_grad_()
    t = torch.randn(2, 3, 4, 5, generator=g) * torch.tensor([1., 5., .1]).view(1, 3, 1, 1) + 7
    t.requires_grad_()
    out = crosskd_align(s, t)
    for c in range(3):  # each channel takes its teacher channel's mean and unbiased std
        torch.testing.assert_close(out[:, c].mean(), t[:, c].mean().detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out[:, c].std(), t[:, c].std().detach(), rtol=1e-4, atol=1e-5)
    out.square().sum().backward()
    assert s.grad.abs().sum() > 0 and t.grad is None
    with pytest.raises(ValueError, match='widths must match'):
        crosskd_align(torch.randn(1, 3, 2, 2), torch.randn(1, 4, 2, 2))


def test_align_single_value_is_finite():
    # one image and a 1x1 level (P7 of a 64 px input): the unbiased std of one value would be NaN; here the
    # student value maps to the teacher's (its own mean)
    out = crosskd_align(torch.tensor([3., -1.]).view(1, 2, 1, 1), torch.tensor([5., 7.]).view(1, 2, 1, 1))
    torch.testing.assert_close(out.view(-1), torch.tensor([5., 7.]))


# ---------------------------------------------------------------------------------------------------------------
# GFL regression KD: summed distribution KL
# ---------------------------------------------------------------------------------------------------------------
def test_reg_kd_vector():
    pred = torch.zeros(1, 3)
    soft = torch.tensor([[math.log(2), 0., 0.]])
    row = distribution_kl_sum(pred, soft, T=1.0)
    assert row.shape == (1, )
    assert row.item() == pytest.approx(0.0588916, rel=1e-5)
    assert 4 * row.item() == pytest.approx(0.2355661, rel=1e-5)
    # mmdet 3.3's loss averages over the bins instead: a third of it here
    mean_kl = KnowledgeDistillationKLDivLoss(T=1, loss_weight=4.0)(pred, soft)
    assert mean_kl.item() == pytest.approx(0.0785220, rel=1e-5)
    # one location, w_loc = 0.8 over its 4 sides, avg_factor 4 (the per-level loss), then / sum of w_loc
    sides = distribution_kl_sum(pred.expand(4, 3), soft.expand(4, 3), T=1.0)
    level = 4.0 * weight_reduce_loss(sides, torch.full((4, ), 0.8), reduction='mean', avg_factor=4.0)
    assert level.item() == pytest.approx(0.1884529, rel=1e-5)
    assert (level / 0.8).item() == pytest.approx(0.2355661, rel=1e-5)


def test_reg_kd_temperature_detach_and_zero_bins():
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(5, 17, generator=g).requires_grad_()
    soft = torch.randn(5, 17, generator=g).requires_grad_()
    for T in (1.0, 10.0):
        p = torch.softmax(soft / T, 1)
        want = (p * (p.log() - torch.log_softmax(pred / T, 1))).sum(1) * T * T
        torch.testing.assert_close(distribution_kl_sum(pred, soft, T), want)
        # mmdet's mean version times the number of bins
        mmdet_rows = KnowledgeDistillationKLDivLoss(T=T, reduction='none')(pred, soft)
        torch.testing.assert_close(mmdet_rows * 17, distribution_kl_sum(pred, soft, T))
    distribution_kl_sum(pred, soft, 1.0).sum().backward()
    assert pred.grad.abs().sum() > 0 and soft.grad is None
    # a teacher distribution with exact zeros (one-hot at -inf logits) gives finite values
    hard = torch.tensor([[0., -float('inf'), -float('inf')]])
    assert torch.isfinite(distribution_kl_sum(torch.zeros(1, 3), hard, 1.0)).all()
    with pytest.raises(ValueError, match=r'must both be \[M, B\]'):
        distribution_kl_sum(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)


# ---------------------------------------------------------------------------------------------------------------
# Box KD: mmdet's GIoULoss / IoULoss(log) on decoded boxes, weighted by w_loc
# ---------------------------------------------------------------------------------------------------------------
def test_box_kd_vector():
    teacher_logits = torch.tensor([[-1., 2.], [0., -3.]])
    label_weight = torch.tensor([1., 0.])
    w = teacher_logits.max(dim=1).values.sigmoid()
    w[label_weight == 0] = 0
    torch.testing.assert_close(w, torch.tensor([0.880797, 0.]), rtol=1e-6, atol=1e-6)
    cross = torch.tensor([[0., 0., 2., 2.], [4., 4., 6., 7.]])
    teacher = torch.tensor([[1., 1., 3., 3.], [4., 4., 6., 7.]])
    giou = GIoULoss(loss_weight=1.0)(cross, teacher, weight=w, avg_factor=1)
    assert giou.item() == pytest.approx(0.9507014, rel=1e-5)
    iou = IoULoss(mode='log', loss_weight=0.75)(cross[:1], teacher[:1], weight=w[:1])
    assert iou.item() == pytest.approx(-math.log(1 / 7) * 0.880797 * 0.75, rel=1e-5)
    assert iou.item() == pytest.approx(1.2854637, rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# gather_positive_rows [PROPOSAL]
# ---------------------------------------------------------------------------------------------------------------
def test_gather_positive_rows_hand_built():
    # 2 images, levels 2x2 and 1x1, 2 anchors per location, 3 channels, 3 classes (background = 3)
    n, a = 2, 2
    feats = [torch.zeros(n, 3, 2, 2), torch.zeros(n, 3, 1, 1)]
    for lvl, f in enumerate(feats):
        for img in range(n):
            for y in range(f.shape[2]):
                for x in range(f.shape[3]):
                    f[img, :, y, x] = torch.tensor([lvl, img, 10 * y + x])
    level0 = torch.full((n, 2 * 2 * a), 3)  # [N, H W A]
    level1 = torch.full((n, 1 * 1 * a), 3)
    level0[0, (1 * 2 + 0) * a + 1] = 2  # image 0, y 1, x 0, anchor 1
    level0[1, (0 * 2 + 1) * a + 0] = 0  # image 1, y 0, x 1, anchor 0
    level0[1, (1 * 2 + 1) * a + 1] = 1  # image 1, y 1, x 1, anchor 1
    level1[0, 1] = 1  # image 0, the only cell, anchor 1
    level1[1, 0] = -1  # not a class: ignored
    labels = torch.cat([level0.reshape(-1), level1.reshape(-1)])
    rows, labs, imgs = gather_positive_rows(feats, labels, num_classes=3, num_anchors=a)
    torch.testing.assert_close(rows, torch.tensor([[0., 0, 10], [0, 1, 1], [0, 1, 11], [1, 0, 0]]))
    assert labs.tolist() == [2, 0, 1, 1] and imgs.tolist() == [0, 1, 1, 0]
    # image-major flattening of the same targets: same positives, in image order
    by_image = torch.cat([torch.cat([level0[i], level1[i]]) for i in range(n)])
    rows_i, labs_i, imgs_i, index = gather_positive_rows(
        feats, by_image, num_classes=3, num_anchors=a, order='image', return_index=True)
    torch.testing.assert_close(rows_i, torch.tensor([[0., 0, 10], [1, 0, 0], [0, 1, 1], [0, 1, 11]]))
    assert labs_i.tolist() == [2, 1, 0, 1] and imgs_i.tolist() == [0, 0, 1, 1]
    assert torch.equal(by_image[index], labs_i)
    # gradient reaches the gathered locations only
    f0 = feats[0].clone().requires_grad_()
    gather_positive_rows([f0, feats[1]], labels, 3, a)[0].sum().backward()
    assert (f0.grad != 0).sum() == 3 * 3
    # no positive: empty rows
    rows_e, labs_e, imgs_e = gather_positive_rows(feats, torch.full_like(labels, 3), 3, a)
    assert rows_e.shape == (0, 3) and labs_e.shape == (0, ) and imgs_e.shape == (0, )
    with pytest.raises(ValueError, match='check num_anchors'):
        gather_positive_rows(feats, labels, 3, num_anchors=1)
    with pytest.raises(ValueError, match="order must be 'level' or 'image'"):
        gather_positive_rows(feats, labels, 3, a, order='anchor')


@pytest.mark.parametrize('order', ['level', 'image'])
def test_gather_positive_rows_follows_mmdets_anchor_layout(order):
    """Each gathered row is the feature of the cell its anchor is centred on, with targets laid out as
    AnchorGenerator + images_to_levels lay them out."""
    g = torch.Generator().manual_seed(0)
    strides, sizes, n = [8, 16], [(5, 6), (3, 3)], 2
    gen = AnchorGenerator(strides=strides, ratios=[0.5, 1.0, 2.0], scales=[4], center_offset=0.0)
    a = gen.num_base_priors[0]
    priors = gen.grid_priors(sizes, device='cpu')  # per level [H W A, 4]
    # features that encode each cell's centre in pixels, and the image index
    feats = []
    for (h, w), s in zip(sizes, strides):
        ys, xs = torch.meshgrid(torch.arange(h) * s, torch.arange(w) * s, indexing='ij')
        feats.append(torch.stack([xs, ys]).float()[None].repeat(n, 1, 1, 1))
        feats[-1] = torch.cat([feats[-1], torch.arange(n).float().view(n, 1, 1, 1).expand(n, 1, h, w)], 1)
    per_image_labels = [torch.randint(0, 5, (sum(p.shape[0] for p in priors), ), generator=g) for _ in range(n)]
    per_image_centres = [torch.cat([(p[:, :2] + p[:, 2:]) / 2 for p in priors]) for _ in range(n)]
    num_levels = [p.shape[0] for p in priors]
    if order == 'level':
        labels = torch.cat([t.reshape(-1) for t in images_to_levels(per_image_labels, num_levels)])
        centres = torch.cat([t.reshape(-1, 2) for t in images_to_levels(per_image_centres, num_levels)])
        image = torch.cat([t.reshape(-1) for t in images_to_levels(
            [torch.full((sum(num_levels), ), i) for i in range(n)], num_levels)])
    else:
        labels, centres = torch.cat(per_image_labels), torch.cat(per_image_centres)
        image = torch.arange(n).repeat_interleave(sum(num_levels))
    rows, labs, imgs, index = gather_positive_rows(feats, labels, 4, a, order=order, return_index=True)
    pos = (labels < 4).nonzero().view(-1)
    assert torch.equal(index, pos) and torch.equal(labs, labels[pos]) and torch.equal(imgs, image[pos])
    torch.testing.assert_close(rows[:, :2], centres[pos])
    torch.testing.assert_close(rows[:, 2], image[pos].float())
