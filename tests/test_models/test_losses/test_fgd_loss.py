"""FGDLoss and its masks: the hand-computed vectors of the FGD method page, mask rules, gradients, refusals, and
an independent loop-over-boxes re-implementation of the authors' released ``FeatureLoss`` forward."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.structures.bbox import HorizontalBoxes
from mmrazor.registry import MODELS as MMRAZOR_MODELS

import mmkd  # noqa: F401  (registers the modules)
from mmkd.models.losses import FGDLoss
from mmkd.models.losses.functional_dense import fgd_attention, fgd_masks
from mmkd.registry import MODELS

TERMS = ('fg', 'bg', 'mask', 'global')


def only(term, **kwargs):
    """An FGDLoss whose weights are 1 for ``term`` and 0 for the other three."""
    names = dict(zip(TERMS, ('alpha_fgd', 'beta_fgd', 'gamma_fgd', 'lambda_fgd')))
    weights = {name: float(t == term) for t, name in names.items()}
    return FGDLoss(**kwargs, **weights)


def each_term(preds_S, preds_T, boxes, shapes, **kwargs):
    """The four terms, each from a loss with that term's weight 1 and the others 0."""
    out = {}
    for term in TERMS:
        torch.manual_seed(0)
        out[term] = only(term, **kwargs)(preds_S, preds_T, boxes, shapes).item()
    return out


def box(*xyxy):
    return torch.tensor([list(xyxy)], dtype=torch.float32)


# ---------------------------------------------------------------------------------------------------------------
# The four test vectors (released FeatureLoss values)
# ---------------------------------------------------------------------------------------------------------------
def test_vector1_uniform_attention():
    s, t = torch.zeros(1, 2, 4, 4), torch.ones(1, 2, 4, 4)
    boxes, shapes = [box(0, 0, 15, 15)], [(32, 32)]
    fg, bg = fgd_masks(boxes, shapes, (4, 4))
    expected_fg = torch.zeros(4, 4)
    expected_fg[:3, :3] = 1 / 9
    torch.testing.assert_close(fg[0], expected_fg)
    torch.testing.assert_close(bg[0], (expected_fg == 0).float() / 7)
    terms = each_term(s, t, boxes, shapes, student_channels=2, teacher_channels=2)
    assert terms == pytest.approx(dict(fg=2.0, bg=2.0, mask=0.0, **{'global': 32.0}), abs=1e-5)
    total = FGDLoss(2, 2, alpha_fgd=1e-3, beta_fgd=5e-4, gamma_fgd=5e-4, lambda_fgd=5e-6)(s, t, boxes, shapes)
    assert total.item() == pytest.approx(0.00316, rel=1e-5)
    scaled = FGDLoss(2, 2, alpha_fgd=1e-3, beta_fgd=5e-4, gamma_fgd=5e-4, lambda_fgd=5e-6, loss_weight=0.01)
    assert scaled(s, t, boxes, shapes).item() == pytest.approx(0.0000316, rel=1e-5)  # loss_weight scales all four


def vector2_inputs():
    t = torch.tensor([[2., 0, 0, 0], [2, 0, 0, 0]]).view(1, 2, 1, 4)
    s = torch.tensor([[1., 0, 0, 1], [1, 0, 0, 0]]).view(1, 2, 1, 4)
    return s, t, [box(0, 0, 8, 8)], [(8, 32)]


def test_vector2_non_uniform_attention():
    s, t, boxes, shapes = vector2_inputs()
    fg, bg = fgd_masks(boxes, shapes, (1, 4))
    torch.testing.assert_close(fg.view(-1), torch.tensor([.25, .25, 0, 0]))
    torch.testing.assert_close(bg.view(-1), torch.tensor([0, 0, .5, .5]))
    spatial_t, channel_t = fgd_attention(t, 0.5)
    spatial_s, channel_s = fgd_attention(s, 0.5)
    torch.testing.assert_close(spatial_t.view(-1), torch.tensor([3.79166, 0.06945, 0.06945, 0.06945]), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(channel_t.view(-1), torch.tensor([1., 1.]))
    torch.testing.assert_close(spatial_s.view(-1), torch.tensor([2.44118, 0.33038, 0.33038, 0.89806]), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(channel_s.view(-1), torch.tensor([1.24492, 0.75508]), atol=1e-5, rtol=0)
    terms = each_term(s, t, boxes, shapes, student_channels=2, teacher_channels=2, temp=0.5)
    expected = dict(fg=1.89583, bg=0.034723, mask=3.190792, **{'global': 3.0})
    assert terms == pytest.approx(expected, rel=1e-5)
    total = FGDLoss(2, 2)(s, t, boxes, shapes)  # class defaults 1e-3 / 5e-4 / 1e-3 / 5e-6
    assert total.item() == pytest.approx(1e-3 * 1.89583 + 5e-4 * 0.034723 + 1e-3 * 3.190792 + 5e-6 * 3.0, rel=1e-5)


def test_vector3_batch_with_an_image_without_gt():
    s, t = torch.zeros(2, 2, 2, 2), torch.ones(2, 2, 2, 2)
    boxes, shapes = [box(0, 0, 4, 4), torch.zeros(0, 4)], [(16, 16), (16, 16)]
    fg, bg = fgd_masks(boxes, shapes, (2, 2))
    torch.testing.assert_close(fg, torch.stack([torch.full((2, 2), .25), torch.zeros(2, 2)]))
    torch.testing.assert_close(bg, torch.stack([torch.zeros(2, 2), torch.full((2, 2), .25)]))
    terms = each_term(s, t, boxes, shapes, student_channels=2, teacher_channels=2, temp=1.0)
    assert terms == pytest.approx(dict(fg=1.0, bg=1.0, mask=0.0, **{'global': 8.0}), abs=1e-6)
    total = FGDLoss(2, 2, temp=1.0, gamma_fgd=5e-4)(s, t, boxes, shapes)
    assert total.item() == pytest.approx(1e-3 * 1 + 5e-4 * 1 + 5e-6 * 8, rel=1e-5)


def test_vector4_overlapping_boxes_smaller_wins():
    s, t = torch.zeros(1, 2, 4, 4), torch.ones(1, 2, 4, 4)
    boxes = [torch.tensor([[0., 0, 24, 24], [0, 0, 8, 8]])]
    fg, bg = fgd_masks(boxes, [(32, 32)], (4, 4))
    expected = torch.full((4, 4), 1 / 16)
    expected[:2, :2] = 1 / 4
    torch.testing.assert_close(fg[0], expected)
    assert bg.abs().sum() == 0  # no background cell: the background mask stays all zero
    # the box order does not matter
    torch.testing.assert_close(fgd_masks([boxes[0].flip(0)], [(32, 32)], (4, 4))[0], fg)
    terms = each_term(s, t, boxes, [(32, 32)], student_channels=2, teacher_channels=2, temp=1.0)
    assert terms['fg'] == pytest.approx(3.5, rel=1e-6)
    assert terms['bg'] == 0
    total = FGDLoss(2, 2, temp=1.0)(s, t, boxes, [(32, 32)])
    assert total.item() == pytest.approx(1e-3 * 3.5 + 5e-6 * 32, rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Mask rules
# ---------------------------------------------------------------------------------------------------------------
def test_masks_image_without_gt_and_region_one_cell_larger():
    fg, bg = fgd_masks([torch.zeros(0, 4), box(0, 0, 8, 8)], [(32, 32), (32, 32)], (4, 4))
    assert fg[0].abs().sum() == 0
    torch.testing.assert_close(bg[0], torch.full((4, 4), 1 / 16))
    # box [0, 8) at stride 8 covers cells 0 and 1 (the inclusive ceil of the authors' code)
    expected = torch.zeros(4, 4)
    expected[:2, :2] = 1 / 4
    torch.testing.assert_close(fg[1], expected)
    torch.testing.assert_close(bg[1].sum(), torch.tensor(1.))


def test_masks_scale_with_the_given_shape_and_clip():
    # a (16, 32) image in a 32x32 padded batch: its img_shape stretches the box over the whole map height
    boxes = [box(0, 0, 8, 16)]
    stretched, _ = fgd_masks(boxes, [(16, 32)], (4, 4))
    faithful, _ = fgd_masks(boxes, [(32, 32)], (4, 4))
    assert (stretched[0] > 0).sum() == 2 * 4 and (faithful[0] > 0).sum() == 2 * 3
    # a box past the border: clipped, its value still from the unclipped cell counts
    fg, _ = fgd_masks([box(-3, 20, 40, 40)], [(32, 32)], (4, 4))
    r0, r1, c0, c1 = 2, 5, -1, 5
    expected = torch.zeros(4, 4)
    expected[2:, :] = 1 / ((r1 - r0 + 1) * (c1 - c0 + 1))
    torch.testing.assert_close(fg[0], expected)
    # mmdet's box type is accepted; a degenerate (inverted) box covers nothing
    fg_hb, _ = fgd_masks([HorizontalBoxes(box(0, 0, 8, 8))], [(32, 32)], (4, 4))
    torch.testing.assert_close(fg_hb, fgd_masks([box(0, 0, 8, 8)], [(32, 32)], (4, 4))[0])
    assert fgd_masks([box(20, 20, 4, 4)], [(32, 32)], (4, 4))[0].abs().sum() == 0


def test_mask_refusals():
    with pytest.raises(ValueError, match='2 box tensors but 1 image shapes'):
        fgd_masks([box(0, 0, 1, 1)] * 2, [(8, 8)], (2, 2))
    with pytest.raises(ValueError, match=r'gt_bboxes\[0\] must be a \[k, 4\]'):
        fgd_masks([torch.zeros(2, 5)], [(8, 8)], (2, 2))
    with pytest.raises(ValueError, match=r'img_shapes\[0\] must be a positive'):
        fgd_masks([box(0, 0, 1, 1)], [(0, 8)], (2, 2))


# ---------------------------------------------------------------------------------------------------------------
# Module behaviour
# ---------------------------------------------------------------------------------------------------------------
def test_refusals():
    with pytest.raises(ValueError, match='teacher_channels must be >= 2'):
        FGDLoss(4, 1)
    for bad in (-1.0, float('nan'), float('inf'), '1'):
        with pytest.raises(ValueError, match='loss_weight must be a finite number >= 0'):
            FGDLoss(4, 4, loss_weight=bad)
    with pytest.raises(ValueError, match='mask_shape must be one of'):
        FGDLoss(4, 4, mask_shape='pad_shape')
    loss = FGDLoss(3, 4)
    boxes, shapes = [box(0, 0, 8, 8)], [(32, 32)]
    with pytest.raises(ValueError, match='same batch size and H, W'):
        loss(torch.randn(1, 3, 4, 4), torch.randn(1, 4, 4, 5), boxes, shapes)
    with pytest.raises(ValueError, match=r'preds_S must have shape \[N, 3, H, W\]'):
        loss(torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4), boxes, shapes)
    with pytest.raises(ValueError, match='for a batch of 2'):
        loss(torch.randn(2, 3, 4, 4), torch.randn(2, 4, 4, 4), boxes, shapes)


def test_identity_context_blocks_at_init_and_align_conv():
    loss = FGDLoss(3, 4)
    assert isinstance(loss.align, torch.nn.Conv2d) and loss.align.weight.shape == (4, 3, 1, 1)
    assert loss.align.bias is not None
    assert FGDLoss(4, 4).align is None
    x = torch.randn(2, 4, 5, 6)
    torch.testing.assert_close(loss.gc_s(x), x)
    torch.testing.assert_close(loss.gc_t(x), x)
    assert loss.gc_s.conv_mask.bias.abs().sum() == 0
    # separate parameters on the two sides
    assert loss.gc_s.conv_mask.weight.data_ptr() != loss.gc_t.conv_mask.weight.data_ptr()


def test_no_gradient_into_the_teacher_map():
    torch.manual_seed(0)
    loss = FGDLoss(3, 4)
    torch.nn.init.normal_(loss.gc_t.channel_add_conv[-1].weight)
    preds_S = torch.randn(2, 3, 6, 6, requires_grad=True)
    preds_T = torch.randn(2, 4, 6, 6, requires_grad=True)
    out = loss(preds_S, preds_T, [box(0, 0, 10, 12), torch.zeros(0, 4)], [(24, 24), (24, 24)])
    out.backward()
    assert preds_T.grad is None
    assert preds_S.grad is not None and preds_S.grad.abs().sum() > 0
    # the teacher-side context block is trained (the authors optimise it with the student)
    assert loss.gc_t.conv_mask.weight.grad.abs().sum() > 0
    assert loss.gc_t.channel_add_conv[0].weight.grad.abs().sum() > 0


def test_build_through_registries():
    built = MMRAZOR_MODELS.build(dict(type='mmkd.FGDLoss', student_channels=8, teacher_channels=16))
    assert type(built) is FGDLoss and built.align is not None
    with MODELS.switch_scope_and_registry('mmkd') as registry:
        assert type(registry.build(dict(type='FGDLoss', student_channels=8, teacher_channels=8))) is FGDLoss


# ---------------------------------------------------------------------------------------------------------------
# Against an independent re-implementation of the authors' FeatureLoss forward
# ---------------------------------------------------------------------------------------------------------------
def reference_feature_loss(loss, preds_S, preds_T, gt_bboxes, img_shapes):
    """The released FeatureLoss forward, rewritten: masks with a loop over images and boxes and slice
    assignments, the sqrt-scaled summed-MSE form of the focal terms, and the context blocks by hand from
    ``loss``'s parameters."""
    if loss.align is not None:
        preds_S = loss.align(preds_S)
    n, c, h, w = preds_S.shape

    def attention(x):
        a = x.abs()
        spatial = h * w * F.softmax(a.mean(1).reshape(n, -1) / loss.temp, dim=1).reshape(n, h, w)
        return spatial, c * F.softmax(a.mean((2, 3)) / loss.temp, dim=1)

    sp_t, ch_t = attention(preds_T)
    sp_s, ch_s = attention(preds_S)
    fg = torch.zeros(n, h, w)
    bg = torch.ones(n, h, w)
    for i in range(n):
        img_h, img_w = img_shapes[i][:2]
        for x1, y1, x2, y2 in gt_bboxes[i].tolist():
            c0, c1 = math.floor(x1 / img_w * w), math.ceil(x2 / img_w * w)
            r0, r1 = math.floor(y1 / img_h * h), math.ceil(y2 / img_h * h)
            value = 1.0 / (r1 + 1 - r0) / (c1 + 1 - c0)
            region = fg[i, r0:r1 + 1, c0:c1 + 1]
            fg[i, r0:r1 + 1, c0:c1 + 1] = torch.clamp(region, min=value)
        bg[i] = (fg[i] == 0).float()
        if bg[i].sum() > 0:
            bg[i] = bg[i] / bg[i].sum()

    scale = torch.sqrt(sp_t[:, None]) * torch.sqrt(ch_t[:, :, None, None])
    fea_t, fea_s = preds_T * scale, preds_S * scale
    fg_loss = F.mse_loss(fea_s * fg[:, None].sqrt(), fea_t * fg[:, None].sqrt(), reduction='sum') / n
    bg_loss = F.mse_loss(fea_s * bg[:, None].sqrt(), fea_t * bg[:, None].sqrt(), reduction='sum') / n
    mask_loss = (ch_s - ch_t).abs().sum() / n + (sp_s - sp_t).abs().sum() / n

    def context_block(block, x):
        logits = F.conv2d(x, block.conv_mask.weight, block.conv_mask.bias).reshape(n, 1, h * w)
        pooled = torch.einsum('nck,nk->nc', x.reshape(n, c, h * w), F.softmax(logits, dim=2)[:, 0])
        conv1, norm, _, conv2 = block.channel_add_conv
        y = F.conv2d(pooled[:, :, None, None], conv1.weight, conv1.bias)
        y = F.layer_norm(y, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        return x + F.conv2d(F.relu(y), conv2.weight, conv2.bias)

    rela_loss = F.mse_loss(context_block(loss.gc_s, preds_S), context_block(loss.gc_t, preds_T),
                           reduction='sum') / n
    return (loss.alpha_fgd * fg_loss + loss.beta_fgd * bg_loss + loss.gamma_fgd * mask_loss +
            loss.lambda_fgd * rela_loss)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_matches_the_released_forward_on_random_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    n = 3
    cs, ct = [(6, 8), (8, 8), (5, 4)][seed]
    h, w = [(7, 9), (10, 6), (5, 5)][seed]
    # weights of order 1 so that every term matters at the tolerance
    loss = FGDLoss(cs, ct, temp=[0.5, 0.8, 1.0][seed], alpha_fgd=0.7, beta_fgd=1.3, gamma_fgd=0.9, lambda_fgd=0.2)
    with torch.no_grad():  # non-trivial context blocks (at init they are the identity)
        for p in loss.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    preds_S = torch.randn(n, cs, h, w, generator=g)
    preds_T = torch.randn(n, ct, h, w, generator=g)
    shapes = [(h * 8 - 3, w * 8), (h * 8, w * 8 - 5), (h * 8 - 8, w * 8 - 8)]  # unpadded sizes <= the batch's
    boxes = []
    for i, (img_h, img_w) in enumerate(shapes):
        k = [5, 3, 0][i] if seed != 2 else [2, 7, 4][i]
        xy = torch.rand(k, 2, generator=g) * torch.tensor([img_w, img_h]) * 0.8
        wh = torch.rand(k, 2, generator=g) * torch.tensor([img_w, img_h]) * 0.6 + 1
        boxes.append(torch.cat([xy, torch.minimum(xy + wh, torch.tensor([img_w, img_h]).float())], dim=1))
    boxes[0][0] = torch.tensor([0., 0, shapes[0][1], shapes[0][0]])  # a whole-image box
    got = loss(preds_S, preds_T, boxes, shapes)
    want = reference_feature_loss(loss, preds_S, preds_T, boxes, shapes)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    terms = loss.terms(preds_S, preds_T, boxes, shapes)
    assert all(v > 0 for v in terms.values())  # every term contributes to the compared total
    weights = (loss.alpha_fgd, loss.beta_fgd, loss.gamma_fgd, loss.lambda_fgd)
    torch.testing.assert_close(sum(wt * terms[k] for wt, k in zip(weights, TERMS)), got)
