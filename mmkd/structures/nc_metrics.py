"""Neural-collapse metrics of Papyan, Han & Donoho, "Prevalence of neural collapse during the terminal phase of
deep learning training", PNAS 117(40), 2020 (figure numbers below are that paper's).

Notation: ``h_i`` the penultimate features with labels ``y_i``; ``mu_k`` the mean of class ``k``; ``K`` the
number of classes *used* (see below); ``mu_G`` the mean of the used class means; ``M`` the ``[K, D]`` matrix of
centred class means ``mu_k - mu_G`` (rows **not** normalised: NC2's equal norms are part of the geometry);
``W`` the ``[K, D]`` classifier rows of the used classes; ``cos_M(k, k')`` the cosine between rows ``k`` and
``k'`` of ``M``, ``cos_W`` the same for ``W``.

===================  =====================================================================  =========
key                  formula                                                                 paper
===================  =====================================================================  =========
``nc1``              ``tr(Sigma_W Sigma_B^+) / K``                                           Fig. 6
``nc2_equinorm``     ``std_k ||mu_k - mu_G|| / avg_k ||mu_k - mu_G||``                       Fig. 2
``nc2_equiangle``    ``std_{k < k'} cos_M(k, k')``                                           Fig. 3
``nc2_maxangle``     ``avg_{k != k'} |cos_M(k, k') + 1 / (K - 1)|``                          Fig. 4
``nc2``              ``|| M M^T / ||M M^T||_F - (I - 11^T / K) / sqrt(K - 1) ||_F``          summary
``nc2w_equinorm``    ``std_k ||w_k|| / avg_k ||w_k||``                                       Fig. 2
``nc2w_equiangle``   ``std_{k < k'} cos_W(k, k')``                                           Fig. 3
``nc2w_maxangle``    ``avg_{k != k'} |cos_W(k, k') + 1 / (K - 1)|``                          Fig. 4
``nc3``              ``|| W / ||W||_F - M / ||M||_F ||_F``                                   Fig. 5
``nc4``              fraction of samples whose classifier arg-max is not the nearest class    Fig. 7
                     mean, ``argmin_k ||h_i - mu_k||``
===================  =====================================================================  =========

``Sigma_W = avg_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`` over the samples of the used classes, ``Sigma_B = avg_k
(mu_k - mu_G)(mu_k - mu_G)^T`` over the used classes, ``^+`` the Moore-Penrose pseudo-inverse. ``std`` is the
sample standard deviation (``n - 1`` denominator); the angle statistics of Figs. 3-4 are taken over the
``K (K - 1) / 2`` distinct pairs (Fig. 4 is symmetric, so averaging over ordered pairs gives the same value).
All are 0 at exact collapse onto a simplex ETF whose classifier is proportional to the centred means.

``nc2`` is the distance of the normalised Gram of ``M`` from the simplex ETF's (docs/methods.md 2(a)), kept as one
summary of NC2 (equal norms *and* equal angles: it is 0 only when both hold); unlike docs/methods.md 2(a) the rows
of ``M`` are not normalised first (that would make the summary blind to unequal norms).

Choices where the paper's balanced setting leaves one open (the probe of
:class:`~mmkd.engine.hooks.DistillMetricsHook` is not balanced):

* ``mu_G`` is the mean of the class means, each class weighted equally (the paper's global mean
  ``avg_{i,c} h_{i,c}`` on balanced data); a sample-weighted mean would put a perfect simplex ETF at a non-zero
  distance whenever the classes have different counts.
* ``Sigma_W`` averages over samples, as in the paper (so a frequent class weighs more).
* the classes used are those given by ``valid`` (the hook passes the classes with at least ``min_per_class``
  samples) that have at least one sample and finite means; the other classes' samples are left out of every
  metric. At least 2 classes are needed (``ValueError`` otherwise).

Every function computes in float64 and returns a Python float (for logging and analysis).
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

__all__ = [
    'feature_class_means', 'nc1', 'nc2', 'nc2_equinorm', 'nc2_equiangle', 'nc2_maxangle', 'nc3', 'nc4',
    'nc_summary'
]


def feature_class_means(feats: Tensor, labels: Tensor, num_classes: int) -> Tuple[Tensor, Tensor]:
    """Per-class means ``[K, D]`` (float64, zero rows for absent classes) and counts ``[K]`` of ``feats [N, D]``
    with ``labels [N]`` in ``[0, num_classes)``; vectorised with ``index_add_``."""
    if feats.dim() != 2 or labels.shape != feats.shape[:1]:
        raise ValueError(f'feats must be [N, D] and labels [N], got {list(feats.shape)} and {list(labels.shape)}')
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f'labels must lie in [0, {num_classes})')
    feats, labels = feats.detach().double(), labels.to(feats.device)
    counts = torch.bincount(labels, minlength=num_classes).double()
    sums = feats.new_zeros(num_classes, feats.shape[1]).index_add_(0, labels, feats)
    return sums / counts.clamp_min(1)[:, None], counts


def _keep(means: Tensor, valid: Optional[Tensor]) -> Tensor:
    """``[K]`` bool: the rows of ``means [K, D]`` to use (finite, and in ``valid`` when given); at least 2."""
    if means.dim() != 2:
        raise ValueError(f'means must have shape [K, D], got {list(means.shape)}')
    keep = torch.isfinite(means).all(dim=1)
    if valid is not None:
        if valid.shape != keep.shape or valid.dtype != torch.bool:
            raise ValueError(f'valid must be a bool tensor of shape [{keep.shape[0]}], got {valid.dtype} '
                             f'{list(valid.shape)}')
        keep = keep & valid.to(keep.device)
    if keep.sum() < 2:
        raise ValueError(f'neural-collapse metrics need at least 2 classes, got {int(keep.sum())}')
    return keep


def _centred(means: Tensor, valid: Optional[Tensor]) -> Tensor:
    """``M``: the used rows of ``means`` minus their mean, float64, rows not normalised."""
    means = means.detach().double()
    used = means[_keep(means, valid)]
    return used - used.mean(dim=0)


def _cosines(rows: Tensor) -> Tensor:
    """Cosines of the ``K (K - 1) / 2`` distinct pairs of rows of ``rows [K, D]`` (a zero row: cosine 0)."""
    unit = rows / rows.norm(dim=1, keepdim=True).clamp_min(torch.finfo(rows.dtype).tiny)
    i, j = torch.triu_indices(len(rows), len(rows), offset=1, device=rows.device)
    return (unit[i] * unit[j]).sum(dim=1)


def _classifier(classifier_weight: Tensor, means: Tensor, valid: Optional[Tensor]) -> Tensor:
    """The classifier rows ``W`` of the used classes: the first ``K_all`` rows of ``classifier_weight [K', D]``
    (an extra background row is ignored) restricted like the means."""
    k_all, d = means.shape
    if classifier_weight.dim() != 2 or classifier_weight.shape[0] < k_all or classifier_weight.shape[1] != d:
        raise ValueError(f'classifier_weight must be [K\', D] with K\' >= {k_all} and D = {d}, got '
                         f'{list(classifier_weight.shape)}')
    keep = _keep(means.detach().double(), valid).to(classifier_weight.device)
    return classifier_weight.detach().double()[:k_all][keep]


def _equinorm(rows: Tensor) -> float:
    norms = rows.norm(dim=1)
    return float(norms.std() / norms.mean().clamp_min(torch.finfo(norms.dtype).tiny))


def _equiangle(rows: Tensor) -> float:
    cos = _cosines(rows)
    return float(cos.std()) if len(cos) > 1 else 0.0  # K = 2: one pair, no spread


def _maxangle(rows: Tensor) -> float:
    return float((_cosines(rows) + 1 / (len(rows) - 1)).abs().mean())


def nc1(feats: Tensor, labels: Tensor, num_classes: int, valid: Optional[Tensor] = None) -> float:
    """NC1 ``tr(Sigma_W Sigma_B^+) / K`` (Fig. 6): within-class variability relative to between-class.

    Args:
        feats: ``[N, D]`` features; labels: ``[N]`` int64 in ``[0, num_classes)``; num_classes: label range;
        valid: optional ``[num_classes]`` bool, the classes to use (others' samples are left out).
    """
    means, counts = feature_class_means(feats, labels, num_classes)
    use = (counts > 0) & (valid.to(counts.device) if valid is not None else True)
    centred = _centred(means, use)
    keep = use[labels.to(use.device)]
    feats, labels = feats.detach().double()[keep], labels.to(means.device)[keep]
    within = feats - means[labels]
    sigma_w = within.t() @ within / len(feats)
    sigma_b = centred.t() @ centred / len(centred)
    return float(torch.trace(sigma_w @ torch.linalg.pinv(sigma_b)) / len(centred))


def nc2(means: Tensor, valid: Optional[Tensor] = None) -> float:
    """NC2 summary ``|| M M^T / ||M M^T||_F - (I - 11^T / K) / sqrt(K - 1) ||_F``: distance of the Gram of the
    centred (not normalised) class means from a simplex ETF's; 0 iff the centred means have equal norms and
    equal pairwise angles ``-1 / (K - 1)``. ``means [K_all, D]``, ``valid`` optional ``[K_all]`` bool."""
    centred = _centred(means, valid)
    k = len(centred)
    gram = centred @ centred.t()
    etf = (torch.eye(k, dtype=gram.dtype, device=gram.device) - 1 / k) / (k - 1)**0.5
    return float(torch.linalg.matrix_norm(gram / torch.linalg.matrix_norm(gram).clamp_min(1e-300) - etf))


def nc2_equinorm(means: Tensor, valid: Optional[Tensor] = None) -> float:
    """NC2 equal norms (Fig. 2): ``std_k ||mu_k - mu_G|| / avg_k ||mu_k - mu_G||``."""
    return _equinorm(_centred(means, valid))


def nc2_equiangle(means: Tensor, valid: Optional[Tensor] = None) -> float:
    """NC2 equal angles (Fig. 3): ``std_{k < k'} cos(mu_k - mu_G, mu_k' - mu_G)`` (0 for ``K = 2``)."""
    return _equiangle(_centred(means, valid))


def nc2_maxangle(means: Tensor, valid: Optional[Tensor] = None) -> float:
    """NC2 maximal angles (Fig. 4): ``avg_{k != k'} |cos(mu_k - mu_G, mu_k' - mu_G) + 1 / (K - 1)|``."""
    return _maxangle(_centred(means, valid))


def nc3(classifier_weight: Tensor, means: Tensor, valid: Optional[Tensor] = None) -> float:
    """NC3 self-duality (Fig. 5): ``|| W / ||W||_F - M / ||M||_F ||_F`` with ``M`` the centred class means (rows
    not normalised) and ``W`` the first ``K_all`` rows of ``classifier_weight [K', D]`` (``K' >= K_all``, so an
    extra background row is ignored), both restricted to the used classes."""
    weight = _classifier(classifier_weight, means, valid)
    centred = _centred(means, valid).to(weight.device)
    tiny = 1e-300
    return float(torch.linalg.matrix_norm(weight / torch.linalg.matrix_norm(weight).clamp_min(tiny) -
                                          centred / torch.linalg.matrix_norm(centred).clamp_min(tiny)))


def nc4(feats: Tensor, labels: Tensor, logits: Tensor, num_classes: int, valid: Optional[Tensor] = None) -> float:
    """NC4 (Fig. 7): fraction of the used classes' samples for which the classifier's arg-max over the used
    classes (``logits [N, K']``, first ``num_classes`` columns; a background column is ignored) differs from the
    nearest class mean ``argmin_k ||h_i - mu_k||``."""
    if logits.dim() != 2 or logits.shape[0] != feats.shape[0] or logits.shape[1] < num_classes:
        raise ValueError(f'logits must be [N, K\'] with N = {feats.shape[0]} and K\' >= {num_classes}, got '
                         f'{list(logits.shape)}')
    means, counts = feature_class_means(feats, labels, num_classes)
    use = (counts > 0) & (valid.to(counts.device) if valid is not None else True)
    use = _keep(means, use)
    keep = use[labels.to(use.device)]
    classes = use.nonzero().squeeze(1)
    feats = feats.detach().double().to(means.device)[keep]
    nearest = classes[torch.cdist(feats, means[classes]).argmin(dim=1)]
    predicted = classes[logits.detach().double().to(means.device)[keep][:, classes].argmax(dim=1)]
    return float((nearest != predicted).double().mean())


def nc_summary(feats: Tensor,
               labels: Tensor,
               num_classes: int,
               classifier_weight: Optional[Tensor] = None,
               logits: Optional[Tensor] = None,
               valid: Optional[Tensor] = None) -> Dict[str, float]:
    """The metrics of the table above for one model on one set of samples, keyed as there.

    NC1, NC2 from ``feats [N, D]`` and ``labels [N]`` over the classes present and in ``valid`` (optional
    ``[num_classes]`` bool); the ``nc2w_*`` and NC3 only when ``classifier_weight [K', D]`` (``K' >=
    num_classes``: its first ``num_classes`` rows) is given; NC4 only when ``logits [N, K']`` are given.

    Raises:
        ValueError: fewer than 2 classes are used (no metric is defined).
    """
    means, counts = feature_class_means(feats, labels, num_classes)
    use = (counts > 0) & (valid.to(counts.device) if valid is not None else True)
    centred = _centred(means, use)
    out = dict(nc1=nc1(feats, labels, num_classes, use), nc2=nc2(means, use), nc2_equinorm=_equinorm(centred),
               nc2_equiangle=_equiangle(centred), nc2_maxangle=_maxangle(centred))
    if classifier_weight is not None:
        weight = _classifier(classifier_weight, means, use)
        out.update(nc2w_equinorm=_equinorm(weight), nc2w_equiangle=_equiangle(weight),
                   nc2w_maxangle=_maxangle(weight), nc3=nc3(classifier_weight, means, use))
    if logits is not None:
        out['nc4'] = nc4(feats, labels, logits, num_classes, use)
    return out
