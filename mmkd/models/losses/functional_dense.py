"""Pure tensor math of dense-detector distillation: FGD, CrossKD's pieces and positive-location gathering.

No mmengine / mmrazor imports. The loss functions run with autocast disabled and their floating inputs cast to
at least float32 (as :mod:`mmkd.models.losses.functional`); none of them loops over images or boxes (a loop over
FPN levels is fine).

* FGD: Yang et al., "Focal and Global Knowledge Distillation for Detectors", CVPR 2022. The formulas follow
  the authors' released ``FeatureLoss`` (masks, attention, the per-term sums divided by the batch size).
* CrossKD: Wang et al., "CrossKD: Cross-Head Knowledge Distillation for Object Detection", CVPR 2024
  (arXiv 2306.11369): the per-channel statistics alignment of the student's head feature and the summed
  distribution KL of its GFL regression distillation.
* :func:`gather_positive_rows` [PROPOSAL]: dense positives as rows for the row losses (ND, iCD).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .functional import _at_least_float32

__all__ = [
    'fgd_masks', 'fgd_attention', 'fgd_feature_loss', 'fgd_mask_loss', 'fgd_global_loss', 'crosskd_align',
    'distribution_kl_sum', 'gather_positive_rows'
]


def _check_4d(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f'{name} must be a torch.Tensor, got {type(x).__name__}')
    if x.dim() != 4:
        raise ValueError(f'{name} must have shape [N, C, H, W], got {list(x.shape)}')


# --------------------------------------------------------------------------------------------------------------
# FGD
# --------------------------------------------------------------------------------------------------------------
def fgd_masks(gt_bboxes: List[Tensor], img_shapes: Sequence[Tuple[int, int]],
              feat_hw: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
    """FGD's foreground and background masks of one feature level, as the authors' code builds them.

    For every box ``(x1, y1, x2, y2)`` (pixels of the image whose size is ``img_shapes[i] = (h, w)``) on a map of
    ``feat_hw = (H, W)`` cells:

    * scaled to the map: ``x' = x / w * W``, ``y' = y / h * H``;
    * cells: rows ``floor(y1')..ceil(y2')`` and columns ``floor(x1')..ceil(x2')``, both ends **inclusive** (so
      the region reaches one cell further right and down than the box: box ``[0, 8)`` at stride 8 covers cells
      0 and 1), clipped to the map;
    * value ``a = 1 / ((r1 - r0 + 1) (c1 - c0 + 1))`` from the unclipped indices.

    ``M_fg`` is the elementwise maximum of ``a`` over the boxes covering a cell (so the smaller box wins where
    boxes overlap), 0 elsewhere. ``M_bg = 1[M_fg = 0] / sum 1[M_fg = 0]`` per image (all zero when no cell is
    background); an image without boxes gets ``M_fg = 0``, ``M_bg = 1 / (H W)``.

    Two notes on fidelity to the authors' code:

    * which shape to pass: the authors scale with the *unpadded* resized ``img_shape`` while ``(H, W)`` belong to
      the padded batch, which stretches the masks of images smaller than the batch. Passing
      ``batch_input_shape`` instead gives geometry-faithful masks [PROPOSAL]; this function uses whatever it is
      given.
    * a box with a negative coordinate (mmdet's pipelines clip boxes to the image, so this is rare) is clipped at
      cell 0 here; the authors' slicing with a negative start index wraps around and leaves such a box out.

    Vectorised over images and boxes: each box's covered cells come from comparing the row/column indices with
    its range (broadcast to ``[K, H, W]`` for the ``K`` boxes of the batch), reduced per image with
    ``scatter_reduce(amax)``.

    Args:
        gt_bboxes: one ``[k_i, 4]`` tensor (or an mmdet ``BaseBoxes``) per image, xyxy pixels.
        img_shapes: one ``(h, w, ...)`` per image: the image size the boxes are in.
        feat_hw: ``(H, W)`` of the feature map.

    Returns:
        ``(fg [N, H, W], bg [N, H, W])`` on the boxes' device, the boxes' floating dtype (float32 for non-floating
        boxes), no gradient.
    """
    if len(gt_bboxes) != len(img_shapes):
        raise ValueError(f'fgd_masks: got {len(gt_bboxes)} box tensors but {len(img_shapes)} image shapes; pass '
                         'one of each per image of the batch')
    if len(gt_bboxes) == 0:
        raise ValueError('fgd_masks: the batch has no image (gt_bboxes is empty)')
    height, width = int(feat_hw[0]), int(feat_hw[1])
    boxes = [getattr(b, 'tensor', b) for b in gt_bboxes]  # mmdet HorizontalBoxes -> its tensor
    for i, b in enumerate(boxes):
        if not isinstance(b, Tensor) or not (b.dim() == 2 and b.shape[1] == 4 or b.numel() == 0):
            raise ValueError(f'fgd_masks: gt_bboxes[{i}] must be a [k, 4] xyxy tensor, got '
                             f'{list(b.shape) if isinstance(b, Tensor) else type(b).__name__}')
    for i, s in enumerate(img_shapes):
        if len(s) < 2 or not s[0] > 0 or not s[1] > 0:
            raise ValueError(f'fgd_masks: img_shapes[{i}] must be a positive (h, w), got {s}')
    device = boxes[0].device
    dtype = boxes[0].dtype if boxes[0].is_floating_point() else torch.float32
    n = len(boxes)
    box = torch.cat([b.reshape(-1, 4).to(dtype) for b in boxes]).detach()
    counts = torch.tensor([b.reshape(-1, 4).shape[0] for b in boxes], device=device)
    image = torch.repeat_interleave(torch.arange(n, device=device), counts)  # [K]
    shapes = torch.tensor([[s[0], s[1]] for s in img_shapes], dtype=dtype, device=device)[image]  # [K, 2]
    img_h, img_w = shapes[:, 0], shapes[:, 1]
    # the same operation order as the authors' code (x / w * W), so floor / ceil agree at cell borders
    c0 = torch.floor(box[:, 0] / img_w * width).long()
    c1 = torch.ceil(box[:, 2] / img_w * width).long()
    r0 = torch.floor(box[:, 1] / img_h * height).long()
    r1 = torch.ceil(box[:, 3] / img_h * height).long()
    area = 1.0 / (r1 + 1 - r0).to(dtype) / (c1 + 1 - c0).to(dtype)  # [K]
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_rows = (rows[None] >= r0[:, None]) & (rows[None] <= r1[:, None])  # [K, H]
    in_cols = (cols[None] >= c0[:, None]) & (cols[None] <= c1[:, None])  # [K, W]
    cover = in_rows[:, :, None] & in_cols[:, None, :]  # [K, H, W]
    values = torch.where(cover, area[:, None, None], area.new_zeros(()))  # an empty box covers nothing
    fg = box.new_zeros(n, height * width)
    fg.scatter_reduce_(0, image[:, None].expand(-1, height * width), values.reshape(-1, height * width), 'amax')
    fg = fg.view(n, height, width)
    bg = (fg <= 0).to(dtype)
    bg = bg / bg.sum(dim=(1, 2), keepdim=True).clamp_min(1)
    return fg, bg


@_at_least_float32
def fgd_attention(x: Tensor, temp: float) -> Tuple[Tensor, Tensor]:
    """FGD's spatial and channel attention of a feature map ``x`` ``[N, C, H, W]`` at temperature ``temp``.

    ``A_S = H W softmax_{hw}(mean_c |x| / temp)`` ``[N, H, W]`` and ``A_C = C softmax_c(mean_{hw} |x| / temp)``
    ``[N, C]`` (each averages to 1 over its positions).
    """
    _check_4d('x', x)
    n, c, h, w = x.shape
    value = x.abs()
    spatial = h * w * F.softmax((value.mean(dim=1) / temp).reshape(n, -1), dim=1)
    channel = c * F.softmax(value.mean(dim=(2, 3)) / temp, dim=1)
    return spatial.view(n, h, w), channel


@_at_least_float32
def fgd_feature_loss(preds_S: Tensor, preds_T: Tensor, mask_fg: Tensor, mask_bg: Tensor, spatial_t: Tensor,
                     channel_t: Tensor) -> Tuple[Tensor, Tensor]:
    """FGD's focal (foreground and background) feature-imitation losses.

    ``L_fg = (1/N) sum_{n,c,h,w} M_fg A_S^t A_C^t (F^t - F^s)^2`` and ``L_bg`` the same with ``M_bg``; both use the
    **teacher's** attention (as the authors' code, which scales both maps by the square roots and takes a summed
    MSE: the same value and gradient).

    Args:
        preds_S: ``[N, C, H, W]`` student map (already aligned to the teacher's channels).
        preds_T: ``[N, C, H, W]`` teacher map.
        mask_fg, mask_bg: ``[N, H, W]`` from :func:`fgd_masks`.
        spatial_t, channel_t: ``[N, H, W]`` and ``[N, C]`` teacher attention from :func:`fgd_attention`.

    Returns:
        ``(L_fg, L_bg)`` scalars.
    """
    _check_4d('preds_S', preds_S)
    if preds_S.shape != preds_T.shape:
        raise ValueError(f'fgd_feature_loss: student {list(preds_S.shape)} and teacher {list(preds_T.shape)} '
                         'maps differ; align the student channels first')
    n = preds_S.shape[0]
    sq = (preds_S - preds_T).square() * spatial_t[:, None] * channel_t[:, :, None, None]
    fg = (sq * mask_fg[:, None]).sum() / n
    bg = (sq * mask_bg[:, None]).sum() / n
    return fg, bg


@_at_least_float32
def fgd_mask_loss(channel_s: Tensor, channel_t: Tensor, spatial_s: Tensor, spatial_t: Tensor) -> Tensor:
    """FGD's attention-mask loss ``(1/N) [sum |A_C^s - A_C^t| + sum |A_S^s - A_S^t|]`` (N = batch size)."""
    n = channel_s.shape[0]
    return ((channel_s - channel_t).abs().sum() + (spatial_s - spatial_t).abs().sum()) / n


@_at_least_float32
def fgd_global_loss(out_s: Tensor, out_t: Tensor) -> Tensor:
    """FGD's global (relation) loss on the context-block outputs: ``(1/N) sum (GC_t(F^t) - GC_s(F^s))^2``."""
    if out_s.shape != out_t.shape:
        raise ValueError(f'fgd_global_loss: shapes differ, {list(out_s.shape)} vs {list(out_t.shape)}')
    return (out_s - out_t).square().sum() / out_s.shape[0]


# --------------------------------------------------------------------------------------------------------------
# CrossKD
# --------------------------------------------------------------------------------------------------------------
@_at_least_float32
def crosskd_align(student: Tensor, teacher: Tensor) -> Tensor:
    """CrossKD's statistics alignment of the student head feature before it enters the teacher's head layers.

    Per channel ``c``, over all ``N H W`` values of the batch: ``(s - mu_s) / (sd_s + 1e-6) * sd_t + mu_t``, with
    ``sd`` the unbiased standard deviation and ``mu_t``, ``sd_t`` from the teacher feature of the same layer and
    level. As the authors' code (``align_scale`` of their detectors): no parameters, equal channel counts. One
    difference: the std of a single value (one image, a 1x1 level) is taken as 0 here, where theirs is NaN.
    The teacher statistics are detached (the teacher is a target; in the authors' setting it has no gradient
    anyway).

    Args:
        student: ``[N, C, H, W]``.
        teacher: ``[N', C, H', W']`` (same ``C``; normally the same shape).

    Returns:
        ``[N, C, H, W]`` student feature with the teacher's per-channel mean and std.
    """
    _check_4d('student', student)
    _check_4d('teacher', teacher)
    if student.shape[1] != teacher.shape[1]:
        raise ValueError(f'crosskd_align: student has {student.shape[1]} channels, teacher {teacher.shape[1]}; '
                         'CrossKD feeds the student feature into the teacher head, so the widths must match '
                         '(add a 1x1 projection first)')
    s_mean, s_std = _channel_stats(student)
    t_mean, t_std = _channel_stats(teacher.detach())
    return (student - s_mean) / (s_std + 1e-6) * t_std + t_mean


def _channel_stats(x: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-channel mean and unbiased std over ``N H W`` (``[1, C, 1, 1]`` each); the std of a single value is 0
    (the unbiased estimate would be NaN: one image with a 1x1 level, e.g. P7 of a 64 px input)."""
    dims = (0, 2, 3)
    single = x.shape[0] * x.shape[2] * x.shape[3] == 1
    return x.mean(dim=dims, keepdim=True), x.std(dim=dims, keepdim=True, correction=0 if single else 1)


@_at_least_float32
def distribution_kl_sum(pred_logits: Tensor, soft_logits: Tensor, T: float) -> Tensor:
    """Row-wise KL between softened distributions, **summed** over bins: CrossKD's GFL regression KD row.

    ``T^2 sum_b p_t (log p_t - log_softmax(z_s / T))`` with ``p_t = softmax(z_t / T)`` detached (``p_t = 0`` bins
    contribute 0). mmdet 3.3's ``KnowledgeDistillationKLDivLoss`` is the same with a **mean** over the ``B`` bins.

    Args:
        pred_logits: ``[M, B]`` student (cross-head) logits, one row per box side.
        soft_logits: ``[M, B]`` teacher logits.
        T: temperature.

    Returns:
        ``[M]`` per-row values (weight, sum and normalise them as the caller's loss does).
    """
    if pred_logits.dim() != 2 or pred_logits.shape != soft_logits.shape:
        raise ValueError(f'distribution_kl_sum: pred_logits {list(pred_logits.shape)} and soft_logits '
                         f'{list(soft_logits.shape)} must both be [M, B]')
    target = F.softmax(soft_logits.detach() / T, dim=1)
    kl = F.kl_div(F.log_softmax(pred_logits / T, dim=1), target, reduction='none')
    return kl.sum(dim=1) * (T * T)


# --------------------------------------------------------------------------------------------------------------
# Dense positives as rows [PROPOSAL]
# --------------------------------------------------------------------------------------------------------------
def gather_positive_rows(feats: List[Tensor],
                         labels: Tensor,
                         num_classes: int,
                         num_anchors: int = 1,
                         order: str = 'level',
                         return_index: bool = False):
    """[PROPOSAL] The feature vectors at a dense head's positive anchors, as rows for row losses (ND, iCD).

    Index order of ``labels`` (``L`` levels, ``N`` images, level ``l`` of ``H_l x W_l`` locations and
    ``A = num_anchors`` anchors per location; this is mmdet's order, as ``AnchorGenerator`` /
    ``MlvlPointGenerator`` lay the priors out and ``images_to_levels`` splits the targets):

    * ``order='level'`` (default): ``torch.cat([t.reshape(-1) for t in labels_list])`` of the per-level targets
      ``labels_list[l]`` ``[N, H_l W_l A]`` that ``GFLHead.get_targets`` (``ATSSHead``, ``AnchorHead``) return,
      i.e. level, then image, then row ``y``, column ``x``, anchor ``a``: the flat index within level ``l`` is
      ``((n H_l + y) W_l + x) A + a`` (offset by the sizes of the earlier levels). This is also the order of
      ``cls_score.permute(0, 2, 3, 1).reshape(-1, num_classes)`` per level, as ``loss_by_feat_single`` uses it.
      ``FCOSHead.get_targets`` returns its per-level targets in this order too (level, then image).
    * ``order='image'``: image, then level, then ``y``, ``x``, ``a``: the concatenation over images of the
      per-image targets before ``images_to_levels`` splits them (``_get_targets_single``'s order).

    Positives are ``0 <= label < num_classes`` (mmdet labels background ``num_classes``). The row of an anchor is
    the feature vector of its location: ``feats[l][n, :, y, x]``.

    Args:
        feats: one ``[N, C, H_l, W_l]`` map per level (same ``N`` and ``C``).
        labels: ``[N * sum_l H_l W_l A]`` int targets in the order above.
        num_classes: number of foreground classes.
        num_anchors: anchors per location (1 for GFL / ATSS / FCOS, 9 for RetinaNet).
        order: ``'level'`` or ``'image'``, see above.
        return_index: also return the positives' flat indices into ``labels`` (``[P]`` int64), to pick the
            matching rows of other per-anchor tensors (e.g. label weights).

    Returns:
        ``(rows [P, C], labels [P] int64, image_ids [P] int64)`` (and the index), the positives in the order they
        appear in ``labels``. Rows keep the features' gradient.
    """
    if order not in ('level', 'image'):
        raise ValueError(f"gather_positive_rows: order must be 'level' or 'image', got {order!r}")
    if not feats:
        raise ValueError('gather_positive_rows: feats is empty; pass one [N, C, H, W] map per level')
    for i, f in enumerate(feats):
        _check_4d(f'feats[{i}]', f)
    n, c = feats[0].shape[:2]
    if any(f.shape[:2] != (n, c) for f in feats):
        raise ValueError('gather_positive_rows: every level must have the same [N, C], got '
                         f'{[list(f.shape[:2]) for f in feats]}')
    if num_anchors < 1:
        raise ValueError(f'gather_positive_rows: num_anchors must be >= 1, got {num_anchors}')
    sizes = [f.shape[2] * f.shape[3] * num_anchors for f in feats]
    total = n * sum(sizes)
    labels = labels.reshape(-1)
    if labels.numel() != total:
        raise ValueError(f'gather_positive_rows: labels has {labels.numel()} entries but N * sum(H_l W_l A) = '
                         f'{n} * {sum(sizes)} = {total}; check num_anchors and that labels are flattened in the '
                         'documented order')
    if order == 'level':
        per_level = labels.split([n * s for s in sizes])
        per_level = [t.view(n, s) for t, s in zip(per_level, sizes)]
    else:
        per_level = labels.view(n, -1).split(sizes, dim=1)  # each [N, s_l]
    offsets = [0]
    for s in sizes[:-1]:
        offsets.append(offsets[-1] + s)
    rows, labs, imgs, index = [], [], [], []
    for lvl, (f, lab) in enumerate(zip(feats, per_level)):
        pos = (lab >= 0) & (lab < num_classes)  # [N, s_l]
        img, j = pos.nonzero(as_tuple=True)
        loc = torch.div(j, num_anchors, rounding_mode='floor')
        table = f.flatten(2)  # [N, C, H W]
        rows.append(table[img, :, loc])  # [P_l, C]
        labs.append(lab[img, j])
        imgs.append(img)
        if order == 'level':
            index.append(n * offsets[lvl] + img * sizes[lvl] + j)
        else:
            index.append(img * sum(sizes) + offsets[lvl] + j)
    rows, labs, imgs, index = torch.cat(rows), torch.cat(labs).long(), torch.cat(imgs), torch.cat(index)
    if order == 'image':  # levels were gathered one after another: restore the order of ``labels``
        perm = index.argsort()
        rows, labs, imgs, index = rows[perm], labs[perm], imgs[perm], index[perm]
    if return_index:
        return rows, labs, imgs, index
    return rows, labs, imgs
