"""Pure tensor math of mmkd's distillation losses (no mmengine / mmrazor imports).

Every function casts its floating inputs to float32 (float64 if any input is float64) and runs with autocast
disabled, so that the reductions (norms, Grams, softmaxes, sums) are float32 under bf16/fp16 training;
gradients still flow back to the low-precision inputs. None of them loops over samples, RoIs, classes or
groups. Device syncs: the label range check, and finding the groups / classes present in
:func:`icd_grouped_loss`, :func:`nc2_loss` and the centred NC1 losses.

Conventions shared by the functions:

* ``labels`` are int64 class indices in ``[0, K)`` where ``K`` is the number of rows of the class means /
  prototypes (in detection ``K = num_classes + 1``, background last, as mmdet's ``BBoxHead.get_targets``
  labels it); anything outside raises ``ValueError``.
* a class mean / prototype row is *valid* when it is finite and has non-zero norm; samples of invalid classes
  and samples with ``weight <= 0`` are dropped.
* when no sample is left the loss is ``0 * input.sum()``: a zero that keeps the autograd graph (so DDP sees
  every parameter used) instead of NaN.
"""
import functools
import itertools
import math
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'nd_loss', 'icd_loss', 'icd_scale_weights', 'icd_grouped_loss', 'prototype_directions', 'nc1_contrast_loss',
    'nc1_align_loss', 'nc2_loss', 'nc2_min_classes', 'nc3_align_loss', 'prototype_cosine_logits', 'hcl_loss'
]


def _at_least_float32(fn: Callable) -> Callable:
    """Run ``fn`` with autocast off and its floating tensor arguments cast to one dtype: float32, or float64
    if any argument is float64 (so float64 checks stay exact)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        floats = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor) and a.is_floating_point()]
        dtype = functools.reduce(torch.promote_types, (a.dtype for a in floats), torch.float32)
        device = floats[0].device.type if floats else 'cpu'

        def cast(x):
            return x.to(dtype) if isinstance(x, Tensor) and x.is_floating_point() else x

        with torch.autocast(device_type=device, enabled=False):
            return fn(*map(cast, args), **{k: cast(v) for k, v in kwargs.items()})

    return wrapper


def _check_2d(name: str, x: Tensor, rows: Optional[int] = None, cols: Optional[int] = None) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f'{name} must be a torch.Tensor, got {type(x).__name__}')
    if x.dim() != 2 or (rows is not None and x.shape[0] != rows) or (cols is not None and x.shape[1] != cols):
        want = f'[{rows if rows is not None else "N"}, {cols if cols is not None else "D"}]'
        raise ValueError(f'{name} must have shape {want}, got {list(x.shape)}')


def _check_labels(labels: Tensor, n: int, num_classes: int) -> None:
    if not isinstance(labels, Tensor) or labels.dtype != torch.int64:
        raise TypeError(f'labels must be an int64 tensor of class indices, got {getattr(labels, "dtype", labels)}')
    if labels.shape != (n, ):
        raise ValueError(f'labels must have shape [{n}] (one per feature row), got {list(labels.shape)}')
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f'labels must lie in [0, {num_classes}) (rows of the class means), got values in '
                         f'[{int(labels.min())}, {int(labels.max())}]; check num_classes of the class means '
                         '(detection: num_classes + 1 rows, background last)')


def _sample_weight(weight: Optional[Tensor], ref: Tensor) -> Tensor:
    """Per-sample weights ``[N]`` (ones when ``weight`` is None), negative ones clamped to 0."""
    if weight is None:
        return ref.new_ones(ref.shape[0])
    if weight.shape != (ref.shape[0], ):
        raise ValueError(f'weight must have shape [{ref.shape[0]}] (one per sample), got {list(weight.shape)}')
    return weight.to(ref.dtype).clamp_min(0)


def _weighted_mean(per_sample: Tensor, weight: Tensor, anchor: Tensor) -> Tensor:
    """``sum(w * l) / sum(w)`` over samples with ``w > 0``; ``0 * anchor.sum()`` when none is left."""
    keep = weight > 0
    total = torch.where(keep, weight * per_sample, per_sample.new_zeros(())).sum()
    return total / weight.sum().clamp_min(torch.finfo(weight.dtype).tiny) + 0 * anchor.sum()


def _inverse(norm: Tensor) -> Tensor:
    """``1 / norm``, and 0 where ``norm`` is 0 (so a zero vector stays zero, with zero gradient)."""
    return torch.where(norm > 0, 1 / norm.clamp_min(1e-12), 0)


def _unit(x: Tensor, dim: int = -1) -> Tensor:
    """``x / ||x||`` along ``dim``; an all-zero slice stays zero **with zero gradient** (``F.normalize`` would
    give it a ``1 / eps`` gradient, which overflows fp16)."""
    return x * _inverse(torch.linalg.vector_norm(x, dim=dim, keepdim=True))


def _valid_rows(x: Tensor) -> Tuple[Tensor, Tensor]:
    """Row norms ``[K]`` and the rows that are valid (finite, non-zero norm) ``[K]`` bool."""
    norm = torch.linalg.vector_norm(x, dim=1)
    return norm, torch.isfinite(norm) & (norm > 0)


# --------------------------------------------------------------------------------------------------------------
# ND (KD++)
# --------------------------------------------------------------------------------------------------------------
@_at_least_float32
def nd_loss(student_feat: Tensor,
            teacher_feat: Tensor,
            labels: Tensor,
            class_means: Tensor,
            weight: Optional[Tensor] = None,
            eps: float = 1e-6,
            norm_floor: float = 0.0) -> Tensor:
    """ND loss of KD++ (Wang et al., "Improving Knowledge Distillation via Regularizing Feature Norm and
    Direction", arXiv 2305.17007).

    Per sample ``l_i = 1 - <f_s,i, e_{y_i}> / (max(||f_s,i||, n_i) + eps)`` with ``e_k = c_k / ||c_k||`` the
    unit direction of the teacher class mean and ``n_i = max(||f_t,i||, norm_floor * ||c_{y_i}||)`` the teacher
    norm. With the default ``norm_floor=0`` this is KD++'s formula, ``n_i = ||f_t,i||`` (plus ``eps``). When
    ``||f_s|| >= n`` it is ``1 - cos(f_s, e_y)``; otherwise it is linear in ``f_s`` and pushes its norm up towards
    ``n``. The teacher norm and the class means get no gradient.

    [PROPOSAL] ``norm_floor > 0`` (not in KD++, whose denominator is ``max(||f_s||, ||f_t||)``; opt-in, no
    held-out comparison with KD++'s formula yet): the gradient of ``l_i`` has norm at most
    ``2 / max(||f_s||, n)``, so without a floor a sample whose teacher feature is (near) zero -- post-ReLU
    detection embeddings, or a projector output -- gets a gradient up to ``1 / eps`` when ``f_s`` is also small
    (``1e6`` per sample at the default ``eps``: beyond float16's range, so a float16 step with loss scaling is
    skipped). With the floor it is at most ``2 / (norm_floor * ||c_y||)`` per sample (divided by the weight sum):
    a scale set by the teacher's own class mean. A teacher feature normally has a norm comparable to its class
    mean's, so a floor of 0.1 only changes outlier samples (``||f_t|| < 0.1 ||c_y||``), whose student is then
    asked for at least that norm.

    Args:
        student_feat: ``[N, D]`` student embeddings (after the projector if widths differ).
        teacher_feat: ``[N, D]`` teacher embeddings of the same samples (only their norm is used).
        labels: ``[N]`` int64 class indices into ``class_means``.
        class_means: ``[K, D]`` teacher class means; invalid rows (zero / non-finite) drop their samples.
        weight: optional ``[N]`` sample weights (e.g. mmdet label weights); ``w <= 0`` drops the sample.
        eps: added to the denominator. A sample with ``f_s = f_t = 0`` has loss 1 and gradient
            ``-e_y / (N * (norm_floor * ||c_y|| + eps))``.
        norm_floor: lower bound of the teacher norm, as a fraction of ``||c_y||``; 0 (default) is KD++'s
            formula, ``> 0`` our [PROPOSAL] (e.g. 0.1 for float16 training or near-zero teacher features).

    Returns:
        Scalar: ``sum_i w_i l_i / sum_i w_i`` over the kept samples, 0 (with grad path) if none.
    """
    _check_2d('student_feat', student_feat)
    n, d = student_feat.shape
    _check_2d('teacher_feat', teacher_feat, n, d)
    _check_2d('class_means', class_means, cols=d)
    _check_labels(labels, n, class_means.shape[0])
    if not norm_floor >= 0:
        raise ValueError(f'norm_floor must be >= 0 (a fraction of the class-mean norm), got {norm_floor}')
    means = class_means.detach()[labels]  # gather first: O(N D), not O(K D)
    norm, valid = _valid_rows(means)
    norm = torch.where(valid, norm, 0)
    direction = torch.where(valid[:, None], means, 0) * _inverse(norm)[:, None]
    teacher_norm = torch.maximum(teacher_feat.detach().norm(dim=1), norm_floor * norm)
    denom = torch.maximum(student_feat.norm(dim=1), teacher_norm) + eps
    per_sample = 1 - (student_feat * direction).sum(dim=1) / denom
    weight = _sample_weight(weight, student_feat) * valid
    return _weighted_mean(per_sample, weight, student_feat)


# --------------------------------------------------------------------------------------------------------------
# iCD
# --------------------------------------------------------------------------------------------------------------
def _relation_kl(student: Tensor, teacher: Tensor, tau: float, mask: Optional[Tensor] = None) -> Tensor:
    """Row-wise ``KL(softmax(G_t / tau) || softmax(G_s / tau))`` of two Gram matrices ``[..., n, n]``, summed
    over columns -> ``[..., n]``. ``mask`` (broadcastable, True = keep) restricts each row's softmax."""
    if mask is not None:
        student = student.masked_fill(~mask, float('-inf'))
        teacher = teacher.masked_fill(~mask, float('-inf'))
    log_s = F.log_softmax(student / tau, dim=-1)
    log_t = F.log_softmax(teacher / tau, dim=-1)
    kl = log_t.exp() * (log_t - log_s)
    if mask is not None:
        kl = torch.where(mask, kl, 0)
    return kl.sum(dim=-1)


@_at_least_float32
def icd_loss(student_logits: Tensor,
             teacher_logits: Tensor,
             scales: Sequence[int] = (1, 2, 4),
             tau: float = 2.0) -> Tensor:
    """iCD implicit-clustering loss (Xue et al., "A Implicit Clustering Distillation Method for Structural
    Information Mining", arXiv 2509.12553), equal to the official ``cluster_loss``.

    For every scale ``s`` (its ``s*s`` regions, taken in order from the region axis) and every sample ``b``:
    L2-normalise each region's K-vector, build the region Gram ``G_b = Z_b^T Z_b`` ``[s^2, s^2]``, and take
    ``KL(softmax(G_t,b / tau) || softmax(G_s,b / tau))`` summed over rows and columns. Per scale the KL is
    summed over samples and divided by ``B``. Scale ``s`` is weighted ``w_s = (1 + log2 s) / sum_g (1 + log2 g)``
    -- the official weights, which ``cluster_loss`` tabulates for the scale sets it supports: ``(1,)`` -> 1,
    ``(1, 2)`` -> 1/3, 2/3, ``(1, 4)`` -> 1/4, 3/4, ``(1, 2, 4)`` -> 1/6, 2/6, 3/6 (a scale's weight depends on
    the scale, not on its position). [PROPOSAL] The same rule extends them to the sets the official code rejects
    (e.g. ``(2, 4)`` -> 2/5, 3/5, ``(4,)`` -> 1, the patch ablations of its ``ablation_study.sh``). The 1x1 scale
    contributes exactly 0 (its softmax is identically 1). The loop runs over the (few) scales, never over
    samples or regions.

    Args:
        student_logits: ``[B, K, P]`` decoupled region logits, ``P = sum(s*s)``, regions ordered scale by scale
            (1x1 first, then the 2x2 cells row-major, ...), as SDD's SPP produces them.
        teacher_logits: ``[B, K, P]``; detached.
        scales: the pooling grid sizes, in the order of the region axis.
        tau: softmax temperature of the Gram rows.

    Returns:
        Scalar loss (0 with grad path for ``B = 0``).
    """
    if student_logits.dim() != 3 or student_logits.shape != teacher_logits.shape:
        raise ValueError('student_logits and teacher_logits must both have shape [B, K, P], got '
                         f'{list(student_logits.shape)} and {list(teacher_logits.shape)}')
    scales = tuple(scales)
    if not scales or any(not isinstance(s, int) or s < 1 for s in scales):
        raise ValueError(f'scales must be a non-empty sequence of positive ints, got {scales}')
    num_regions = sum(s * s for s in scales)
    if student_logits.shape[2] != num_regions:
        raise ValueError(f'the region axis has {student_logits.shape[2]} entries but scales={scales} need '
                         f'sum(s*s) = {num_regions}; pass the scales the logits were pooled with')
    batch = student_logits.shape[0]
    zs = _unit(student_logits, 1).transpose(1, 2)  # [B, P, K]
    zt = _unit(teacher_logits.detach(), 1).transpose(1, 2)
    ends = itertools.accumulate(s * s for s in scales)
    weights = icd_scale_weights(scales)
    loss = 0 * student_logits.sum()
    for s, end, w in zip(scales, ends, weights):
        part_s, part_t = zs[:, end - s * s:end], zt[:, end - s * s:end]
        kl = _relation_kl(part_s @ part_s.transpose(1, 2), part_t @ part_t.transpose(1, 2), tau).sum()
        loss = loss + w * kl / max(batch, 1)
    return loss


def icd_scale_weights(scales: Sequence[int]) -> Tuple[float, ...]:
    """iCD's per-scale weights ``(1 + log2 s) / sum_g (1 + log2 g)``, in the order of ``scales``: the official
    ``cluster_loss`` table for ``(1,)``, ``(1, 2)``, ``(1, 4)``, ``(1, 2, 4)``; [PROPOSAL] the same rule for other
    sets (see :func:`icd_loss`)."""
    ranks = [1 + math.log2(s) for s in scales]
    return tuple(r / sum(ranks) for r in ranks)


@_at_least_float32
def icd_grouped_loss(student_logits: Tensor, teacher_logits: Tensor, group_ids: Tensor, tau: float = 2.0) -> Tensor:
    """[PROPOSAL, not from the iCD authors] RoI-relational iCD for detection (docs/methods.md 3(f) P1).

    Rows (RoIs) are grouped by ``group_ids`` (the image index, or image and FPN level). Within each group: L2-
    normalise each row's logit vector, build the Gram over the group's rows, take the row softmax at ``tau``
    and ``KL(teacher || student)`` summed over the group's columns. Normalisation (our choice): the row KLs of
    a group are **averaged over its rows**, so groups of any size weigh the same, and the loss is the mean over
    the groups with at least 2 rows (a single-row group has a 1x1 Gram and KL exactly 0; it is left out of the
    average). This differs in scale from classification iCD, which sums a sample's KL over its rows.

    Implementation: rows are sorted by group and scattered into a zero-padded ``[G, n_max, K]`` batch; padded
    columns are masked to ``-inf`` before the softmax and padded rows dropped. At R = 1024, K = 81 this was
    several times faster on CPU than one ``[R, R]`` Gram with a block mask, which also computes every
    cross-group entry (tools/analysis/benchmark_losses.py times both). Finding the groups
    (``unique_consecutive``, ``max``) syncs with the device.

    Args:
        student_logits: ``[R, K]`` RoI class logits.
        teacher_logits: ``[R, K]`` teacher logits on the same RoIs; detached.
        group_ids: ``[R]`` integer group of each row.
        tau: softmax temperature.

    Returns:
        Scalar loss (0 with grad path when no group has 2 rows).
    """
    _check_2d('student_logits', student_logits)
    _check_2d('teacher_logits', teacher_logits, *student_logits.shape)
    if group_ids.shape != student_logits.shape[:1] or group_ids.is_floating_point():
        raise ValueError(f'group_ids must be an integer tensor of shape [{student_logits.shape[0]}], got '
                         f'{group_ids.dtype} {list(group_ids.shape)}')
    anchor = 0 * student_logits.sum()
    if student_logits.shape[0] == 0:
        return anchor
    sorted_ids, order = torch.sort(group_ids, stable=True)
    _, sizes = torch.unique_consecutive(sorted_ids, return_counts=True)  # [G]
    group = torch.repeat_interleave(torch.arange(sizes.numel(), device=sizes.device), sizes)  # [R], sorted
    slot = torch.arange(group.numel(), device=group.device) - (sizes.cumsum(0) - sizes)[group]
    shape = (sizes.numel(), int(sizes.max()), student_logits.shape[1])
    zs = student_logits.new_zeros(shape).index_put((group, slot), _unit(student_logits[order], 1))
    zt = student_logits.new_zeros(shape).index_put((group, slot), _unit(teacher_logits.detach()[order], 1))
    real = torch.arange(shape[1], device=sizes.device) < sizes[:, None]  # [G, n_max]
    row_kl = _relation_kl(zs @ zs.transpose(1, 2), zt @ zt.transpose(1, 2), tau, real[:, None, :])
    group_kl = torch.where(real, row_kl, 0).sum(dim=1) / sizes  # mean over the group's rows
    multi = sizes > 1
    return torch.where(multi, group_kl, 0).sum() / multi.sum().clamp_min(1) + anchor


# --------------------------------------------------------------------------------------------------------------
# NC-inspired losses [PROPOSAL] (NCKD: Zhang, Song, He, AAAI 2025, arXiv 2412.11788 -- our reconstruction)
# --------------------------------------------------------------------------------------------------------------
@_at_least_float32
def prototype_directions(prototypes: Tensor, center: bool = True) -> Tuple[Tensor, Tensor]:
    """Unit prototype directions ``p~_k = (P_k - mu_G) / ||P_k - mu_G||`` and their validity.

    ``mu_G`` is the mean of the valid rows (finite, non-zero) when ``center`` is True, else 0. A row is valid
    if the raw row is valid and its centred version is non-zero (with a single valid class the centred row is
    zero, so nothing is valid). Invalid rows are returned as zeros.

    Returns:
        ``([K, D] directions, [K] bool valid)``.
    """
    _check_2d('prototypes', prototypes)
    norm, valid = _valid_rows(prototypes.detach())
    protos = torch.where(valid[:, None], prototypes.detach(), 0)
    if center:
        protos = torch.where(valid[:, None], protos - protos.sum(dim=0) / valid.sum().clamp_min(1), 0)
        norm = torch.linalg.vector_norm(protos, dim=1)
        valid = valid & (norm > 0)
    return protos * _inverse(torch.where(valid, norm, 0))[:, None], valid


def _centre_by_batch_class_means(feat: Tensor, labels: Tensor, weight: Tensor) -> Tuple[Tensor, Tensor]:
    """``feat`` minus the mean of its (weighted) batch class means over the kept samples (``weight > 0``), and
    ``weight`` zeroed when fewer than 2 classes are kept (the centred features would then be within-class
    residuals, with no class direction left). Not detached: a common shift of every feature changes nothing.
    Uses ``torch.unique`` over the labels (a device sync, as :func:`nc2_loss`)."""
    classes, slot = torch.unique(labels, return_inverse=True)
    sums = feat.new_zeros(classes.numel(), feat.shape[1]).index_add(0, slot, feat * weight[:, None])
    counts = weight.new_zeros(classes.numel()).index_add(0, slot, weight)
    present = counts > 0
    num = present.sum()
    class_means = sums / counts.clamp_min(torch.finfo(counts.dtype).tiny)[:, None]
    centre = torch.where(present[:, None], class_means, 0).sum(dim=0) / num.clamp_min(1)
    return feat - centre, weight * (num >= 2)


def _nc1_inputs(student_feat: Tensor, labels: Tensor, prototypes: Tensor, weight: Optional[Tensor],
                center: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """Cosines ``[N, K]`` to the prototype directions, prototype validity ``[K]``, sample weights ``[N]``.

    With ``center`` the student features are centred too (by the mean of their batch class means, see
    :func:`_centre_by_batch_class_means`), so that centred features are compared with centred prototypes."""
    _check_2d('student_feat', student_feat)
    _check_2d('prototypes', prototypes, cols=student_feat.shape[1])
    _check_labels(labels, student_feat.shape[0], prototypes.shape[0])
    directions, valid = prototype_directions(prototypes, center)
    weight = _sample_weight(weight, student_feat) * valid[labels]
    if center:
        student_feat, weight = _centre_by_batch_class_means(student_feat, labels, weight)
    return _unit(student_feat, 1) @ directions.t(), valid, weight  # cosines [N, K]


@_at_least_float32
def nc1_contrast_loss(student_feat: Tensor,
                      labels: Tensor,
                      prototypes: Tensor,
                      tau: float = 0.1,
                      weight: Optional[Tensor] = None,
                      center: bool = True) -> Tensor:
    """[PROPOSAL] NC1 prototype contrast: ``-log softmax_k(cos(z~_i, p~_k) / tau)[y_i]``, weighted mean over
    samples. Invalid prototypes (see :func:`prototype_directions`) are left out of the softmax and their
    samples dropped.

    With ``center``, ``p~_k`` are the prototypes centred by their mean (over the valid classes) and normalised,
    and ``z~_i = z_i - m`` the student features centred by ``m``, the mean of the student's (weighted) batch
    class means over the kept samples: centred features against centred prototypes (before this, the raw
    post-ReLU ``z_i`` was compared with centred prototypes, and even the teacher's own features scored far from
    the minimum; ``tools/analysis/logs/nc_icd_analysis.md``). ``m`` is not detached (shifting every feature by
    one vector changes nothing); a batch with fewer than 2 kept classes gives 0 (with grad path), as its
    centred features would carry no class direction. ``m`` estimates the prototypes' centre from the classes in
    the batch only. Without ``center`` both sides are uncentred (``z~_i = z_i``).

    Args:
        student_feat: ``[N, D]``; labels: ``[N]`` int64; prototypes: ``[K, D]`` teacher class means;
        tau: temperature; weight: optional ``[N]``; center: centre the prototypes and the student features.

    Returns:
        Scalar.
    """
    cos, valid, weight = _nc1_inputs(student_feat, labels, prototypes, weight, center)
    logits = (cos / tau).masked_fill(~valid, float('-inf'))
    log_prob = torch.where(valid, F.log_softmax(logits, dim=1), 0)  # keeps -inf out of the graph
    return _weighted_mean(-log_prob.gather(1, labels[:, None]).squeeze(1), weight, student_feat)


@_at_least_float32
def nc1_align_loss(student_feat: Tensor,
                   labels: Tensor,
                   prototypes: Tensor,
                   weight: Optional[Tensor] = None,
                   center: bool = True) -> Tensor:
    """[PROPOSAL] NC1 prototype alignment: weighted mean of ``1 - cos(z~_i, p~_{y_i})`` (samples of invalid
    prototypes dropped; ``z~``, ``p~`` and ``center`` as in :func:`nc1_contrast_loss`). Shapes as there."""
    cos, _, weight = _nc1_inputs(student_feat, labels, prototypes, weight, center)
    return _weighted_mean(1 - cos.gather(1, labels[:, None]).squeeze(1), weight, student_feat)


@_at_least_float32
def nc2_loss(student_feat: Tensor,
             labels: Tensor,
             prototypes: Tensor,
             weight: Optional[Tensor] = None,
             ignore_index: Optional[int] = None,
             center: bool = True,
             return_num_classes: bool = False) -> Union[Tensor, Tuple[Tensor, int]]:
    """[PROPOSAL] NC2 geometry transfer: ``||G_s - G_t||_F^2 / S^2``.

    ``S`` = classes present in the batch (at least one sample with ``weight > 0``), with a valid prototype and
    not ``ignore_index`` (e.g. the detection background). ``G_s`` is the Gram of the student's (weighted) batch
    class means over ``S``, each centred by the mean of those ``S`` class means (if ``center``) and
    L2-normalised; ``G_t`` the same for the rows ``S`` of ``prototypes`` (centred by their own mean). Class sums
    use ``index_add`` over the classes in the batch (``torch.unique``, so the cost is O(N D), not O(K D));
    finding them syncs with the device.

    The loss needs ``S >= 2`` classes, and ``S >= 3`` when ``center``: two centred means are antipodal on both
    sides (``m_1 - mu = -(m_2 - mu)``, cosine -1, the 2-class simplex ETF), so ``G_s = G_t`` whatever the
    features and the term would be identically 0 with zero gradient. Below that count the loss is 0 (with grad
    path) and the call counts as skipped: ``return_num_classes=True`` also returns ``S``, which
    :class:`~mmkd.models.losses.NCLoss` uses to count and log the skipped batches.

    Args:
        student_feat: ``[N, D]``; labels: ``[N]`` int64; prototypes: ``[K, D]``; weight: optional ``[N]``;
        ignore_index: class left out; center: centre both sides; return_num_classes: also return ``S``.

    Returns:
        Scalar, or ``(scalar, S)`` with ``return_num_classes``.
    """
    _check_2d('student_feat', student_feat)
    _check_2d('prototypes', prototypes, cols=student_feat.shape[1])
    num_classes = prototypes.shape[0]
    _check_labels(labels, student_feat.shape[0], num_classes)
    if ignore_index is not None and not 0 <= ignore_index < num_classes:
        raise ValueError(f'ignore_index={ignore_index} is not a class index in [0, {num_classes}); pass None to '
                         'keep every class')
    weight = _sample_weight(weight, student_feat)
    classes, slot = torch.unique(labels, return_inverse=True)  # the classes in the batch, O(N D) below
    sums = student_feat.new_zeros(classes.numel(), student_feat.shape[1]).index_add(
        0, slot, student_feat * weight[:, None])
    counts = weight.new_zeros(classes.numel()).index_add(0, slot, weight)
    present = (counts > 0) & _valid_rows(prototypes.detach()[classes])[1]
    if ignore_index is not None:
        present &= classes != ignore_index
    index = present.nonzero().squeeze(1)
    num = index.numel()
    anchor = 0 * student_feat.sum()
    if num < nc2_min_classes(center):
        return (anchor, num) if return_num_classes else anchor
    mean_t = prototypes.detach()[classes[index]]
    mean_s = sums[index] / counts[index, None]
    if center:
        mean_s = mean_s - mean_s.mean(dim=0, keepdim=True)
        mean_t = mean_t - mean_t.mean(dim=0, keepdim=True)
    mean_s, mean_t = _unit(mean_s, 1), _unit(mean_t, 1)
    diff = mean_s @ mean_s.t() - mean_t @ mean_t.t()
    loss = diff.pow(2).sum() / num**2 + anchor
    return (loss, num) if return_num_classes else loss


def nc2_min_classes(center: bool) -> int:
    """Fewest classes for which :func:`nc2_loss` is informative: 3 when centred (2 centred means are always
    antipodal), else 2."""
    return 3 if center else 2


def _classifier_rows(classifier_weight: Tensor, num_classes: int) -> Tensor:
    _check_2d('classifier_weight', classifier_weight)
    if classifier_weight.shape[0] < num_classes:
        raise ValueError(f'classifier_weight has {classifier_weight.shape[0]} rows but the class means have '
                         f'{num_classes}; the classifier needs one row per class (extra rows are ignored)')
    return classifier_weight[:num_classes]


@_at_least_float32
def nc3_align_loss(classifier_weight: Tensor,
                   prototypes: Tensor,
                   valid: Optional[Tensor] = None,
                   center: bool = True) -> Tensor:
    """[PROPOSAL] NC3 self-duality alignment ``||W/||W||_F - P~/||P~||_F||_F^2`` over the valid classes.

    ``P~`` are the centred, row-normalised prototypes of :func:`prototype_directions` (the ``M~`` of
    docs/methods.md 2(a)). ``W`` is ``classifier_weight[:K]``: the first ``K`` rows, so a classifier with extra rows
    (e.g. an extra background output) is accepted as long as its first ``K`` rows follow the prototypes' class
    order. Rows are restricted to valid prototypes and, if given, the ``[K]`` bool mask ``valid``.

    Args:
        classifier_weight: ``[K', D]`` with ``K' >= K``; gets the gradient.
        prototypes: ``[K, D]`` teacher class means.
        valid: optional ``[K]`` bool mask of the classes to use.
        center: centre the prototypes by the mean of the valid rows.

    Returns:
        Scalar (0 with grad path when no class is valid).
    """
    directions, keep = prototype_directions(prototypes, center)
    if valid is not None:
        if valid.shape != keep.shape or valid.dtype != torch.bool:
            raise ValueError(f'valid must be a bool tensor of shape [{keep.shape[0]}], got {valid.dtype} '
                             f'{list(valid.shape)}')
        keep = keep & valid
    weight = torch.where(keep[:, None], _classifier_rows(classifier_weight, keep.shape[0]), 0)
    directions = torch.where(keep[:, None], directions, 0)
    # ||a/|a| - b/|b|||^2 = 2 - 2 <a, b> / (|a| |b|); a zero side contributes its other side's 1 (or 0)
    norm_w, norm_p = torch.linalg.vector_norm(weight), torch.linalg.vector_norm(directions)
    cos = (weight * directions).sum() * _inverse(norm_w) * _inverse(norm_p)
    both = (norm_w > 0) & (norm_p > 0)
    loss = torch.where(both, 2 - 2 * cos, (norm_w > 0).to(cos.dtype) + (norm_p > 0).to(cos.dtype))
    return loss + 0 * classifier_weight.sum()


@_at_least_float32
def prototype_cosine_logits(feat: Tensor, prototypes: Tensor, scale: float = 16.0, center: bool = True) -> Tensor:
    """[PROPOSAL] NC3 prototype classifier: ``logits_ik = scale * cos(z_i, p~_k)`` with the frozen teacher
    prototype directions; invalid prototypes get ``-inf`` (never predicted). ``[N, D] -> [N, K]``."""
    _check_2d('feat', feat)
    _check_2d('prototypes', prototypes, cols=feat.shape[1])
    directions, valid = prototype_directions(prototypes, center)
    logits = scale * _unit(feat, 1) @ directions.t()
    return logits.masked_fill(~valid, float('-inf'))


def hcl_loss(student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor],
             pool_sizes: Sequence[int] = (4, 2, 1)) -> Tensor:
    """ReviewKD's hierarchical context loss (HCL; Chen et al., "Distilling Knowledge via Knowledge Review",
    CVPR 2021; the ND authors' ``Detection/model/reviewkd.py``), summed over levels.

    Per level ``l`` with student map ``S`` and teacher map ``T`` (``[N, C, H, W]``, same shape):
    ``L_l = (mse(S, T) + sum_k w_k mse(P_k(S), P_k(T))) / (1 + sum_k w_k)``, where ``P_k`` is
    ``adaptive_avg_pool2d`` to ``p_k x p_k`` for the sizes ``p_k`` of ``pool_sizes`` with ``p_k < H`` (a size
    ``>= H`` is skipped), ``w_k = 2^-k`` for the ``k``-th size kept (``1/2, 1/4, 1/8`` when none is skipped) and
    ``mse`` is the mean over all elements. Returns ``sum_l L_l`` (levels are summed, not averaged).

    Computed in float32 (float64 if an input is) with autocast off. ``student_feats``, ``teacher_feats``:
    sequences of ``[N, C_l, H_l, W_l]`` tensors, one per level; the teacher's carry no gradient here only if
    they were recorded without one.
    """
    if isinstance(student_feats, Tensor) or isinstance(teacher_feats, Tensor):
        raise TypeError('hcl_loss takes one feature map per level (a tuple/list of [N, C, H, W] tensors, e.g. the '
                        'FPN outputs), got a single tensor; wrap it in a tuple for one level')
    student_feats, teacher_feats = list(student_feats), list(teacher_feats)
    if not student_feats or len(student_feats) != len(teacher_feats):
        raise ValueError(f'hcl_loss needs the same non-zero number of student and teacher levels, got '
                         f'{len(student_feats)} and {len(teacher_feats)}: record the same neck outputs of both and '
                         f'give the connector as many levels')
    for level, (fs, ft) in enumerate(zip(student_feats, teacher_feats)):
        if not (isinstance(fs, Tensor) and isinstance(ft, Tensor)) or fs.dim() != 4 or fs.shape != ft.shape:
            raise ValueError(
                f'hcl_loss level {level}: student and teacher maps must be [N, C, H, W] tensors of one shape, got '
                f'{list(getattr(fs, "shape", [type(fs).__name__]))} and '
                f'{list(getattr(ft, "shape", [type(ft).__name__]))}; set the connector\'s out_channels to the '
                f'teacher\'s widths')
    if any(int(p) < 1 for p in pool_sizes):
        raise ValueError(f'hcl_loss pool_sizes must be >= 1, got {tuple(pool_sizes)}')
    dtype = functools.reduce(torch.promote_types,
                             (t.dtype for t in (*student_feats, *teacher_feats) if t.is_floating_point()),
                             torch.float32)
    total = student_feats[0].new_zeros((), dtype=dtype)
    with torch.autocast(device_type=student_feats[0].device.type, enabled=False):
        for fs, ft in zip(student_feats, teacher_feats):
            fs, ft = fs.to(dtype), ft.to(dtype)
            loss, weight, weight_sum = F.mse_loss(fs, ft), 1.0, 1.0
            for size in pool_sizes:
                if size >= fs.shape[2]:
                    continue
                weight /= 2
                loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(fs, size), F.adaptive_avg_pool2d(ft, size))
                weight_sum += weight
            total = total + loss / weight_sum
    return total
