"""Neural-collapse metrics of Papyan, Han & Donoho (PNAS 2020), as defined in methods.md 2(a).

All three are vectorised and computed in float64; they return Python floats (for logging and analysis).
:func:`nc_summary` computes the three from one set of features, labels and classifier weights (what
``DistillMetricsHook`` logs).
Notation: ``mu_k`` class means, ``mu_G`` their mean over the classes used, ``M~`` the centred class means with
unit rows ``(mu_k - mu_G) / ||mu_k - mu_G||``.
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

__all__ = ['nc1', 'nc2', 'nc3', 'feature_class_means', 'nc_summary']


def _select(means: Tensor, valid: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """float64 means and the ``[K]`` mask of rows to use: finite, non-zero and in ``valid`` if given."""
    if means.dim() != 2:
        raise ValueError(f'means must have shape [K, D], got {list(means.shape)}')
    means = means.detach().double()
    keep = torch.isfinite(means).all(dim=1) & (means.abs().sum(dim=1) > 0)
    if valid is not None:
        if valid.shape != keep.shape or valid.dtype != torch.bool:
            raise ValueError(f'valid must be a bool tensor of shape [{keep.shape[0]}], got {valid.dtype} '
                             f'{list(valid.shape)}')
        keep = keep & valid.to(keep.device)
    if keep.sum() < 2:
        raise ValueError(f'neural-collapse metrics need at least 2 valid classes, got {int(keep.sum())}')
    return means, keep


def _centred_unit_means(means: Tensor, keep: Tensor) -> Tensor:
    centred = means[keep] - means[keep].mean(dim=0)
    return centred / centred.norm(dim=1, keepdim=True).clamp_min(torch.finfo(centred.dtype).tiny)


def nc1(feats: Tensor, labels: Tensor, num_classes: int) -> float:
    """NC1 = ``tr(Sigma_W Sigma_B^+) / K`` (within-class variability relative to between-class).

    ``Sigma_W = mean_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`` over all samples, ``Sigma_B = mean_k (mu_k - mu_G)
    (mu_k - mu_G)^T`` over the ``K`` classes present, ``mu_G`` the mean of those class means, ``^+`` the
    pseudo-inverse (``torch.linalg.pinv``).

    Args:
        feats: ``[N, D]`` features; labels: ``[N]`` int64 in ``[0, num_classes)``; num_classes: label range.
    """
    means, counts = feature_class_means(feats, labels, num_classes)
    feats = feats.detach().double()
    present = counts > 0
    if present.sum() < 2:
        raise ValueError(f'NC1 needs at least 2 classes present, got {int(present.sum())}')
    within = feats - means[labels]
    sigma_w = within.t() @ within / feats.shape[0]
    between = means[present] - means[present].mean(dim=0)
    sigma_b = between.t() @ between / between.shape[0]
    return float(torch.trace(sigma_w @ torch.linalg.pinv(sigma_b)) / between.shape[0])


def nc2(means: Tensor, valid: Optional[Tensor] = None) -> float:
    """NC2 = ``|| M~ M~^T / ||M~ M~^T||_F - (I_K - 11^T / K) / sqrt(K - 1) ||_F``: distance of the class-mean
    Gram from the simplex ETF (0 for an ETF). Uses the finite, non-zero rows of ``means [K, D]`` that are in
    ``valid`` (optional ``[K]`` bool); ``K`` counts those rows."""
    means, keep = _select(means, valid)
    unit = _centred_unit_means(means, keep)
    k = unit.shape[0]
    gram = unit @ unit.t()
    etf = (torch.eye(k, dtype=gram.dtype, device=gram.device) - 1 / k) / (k - 1)**0.5
    return float(torch.linalg.matrix_norm(gram / torch.linalg.matrix_norm(gram) - etf))


def nc3(classifier_weight: Tensor, means: Tensor, valid: Optional[Tensor] = None) -> float:
    """NC3 = ``|| W / ||W||_F - M~ / ||M~||_F ||_F`` (self-duality of classifier and class means).

    ``W`` is ``classifier_weight[:K]`` (the first ``K`` rows, so an extra background row is ignored), restricted
    to the same rows as the means (finite, non-zero, in ``valid``)."""
    means, keep = _select(means, valid)
    if classifier_weight.dim() != 2 or classifier_weight.shape[0] < means.shape[0] \
            or classifier_weight.shape[1] != means.shape[1]:
        raise ValueError(f'classifier_weight must be [K\', D] with K\' >= {means.shape[0]} and D = '
                         f'{means.shape[1]}, got {list(classifier_weight.shape)}')
    weight = classifier_weight.detach().double()[:means.shape[0]][keep.to(classifier_weight.device)]
    unit = _centred_unit_means(means, keep).to(weight.device)
    return float(torch.linalg.matrix_norm(weight / torch.linalg.matrix_norm(weight) -
                                          unit / torch.linalg.matrix_norm(unit)))


def feature_class_means(feats: Tensor, labels: Tensor, num_classes: int) -> Tuple[Tensor, Tensor]:
    """Per-class means ``[K, D]`` (float64, zero rows for absent classes) and counts ``[K]`` of ``feats [N, D]``
    with ``labels [N]`` in ``[0, num_classes)``; vectorised with ``index_add_``."""
    if feats.dim() != 2 or labels.shape != feats.shape[:1]:
        raise ValueError(f'feats must be [N, D] and labels [N], got {list(feats.shape)} and {list(labels.shape)}')
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f'labels must lie in [0, {num_classes})')
    feats = feats.detach().double()
    counts = torch.bincount(labels, minlength=num_classes).double()
    sums = feats.new_zeros(num_classes, feats.shape[1]).index_add_(0, labels, feats)
    return sums / counts.clamp_min(1)[:, None], counts


def nc_summary(feats: Tensor, labels: Tensor, num_classes: int,
               classifier_weight: Optional[Tensor] = None) -> Dict[str, float]:
    """NC1, NC2 and NC3 of one model on one set of samples: ``dict(nc1=..., nc2=..., nc3=...)``.

    NC1 from ``feats [N, D]`` and ``labels [N]``; NC2 and NC3 from the class means of the same features over the
    classes present (NC3 only when ``classifier_weight [K', D]``, ``K' >= num_classes``, is given: its first
    ``num_classes`` rows, so a detector's background row is ignored).

    Raises:
        ValueError: fewer than 2 classes are present (no metric is defined).
    """
    means, counts = feature_class_means(feats, labels, num_classes)
    present = counts > 0
    out = dict(nc1=nc1(feats, labels, num_classes), nc2=nc2(means, present))
    if classifier_weight is not None:
        out['nc3'] = nc3(classifier_weight, means, present)
    return out
