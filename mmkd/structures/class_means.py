"""Teacher class means (ND class centres, NC prototypes) as a checkpointed module."""
import hashlib
import os
import os.path as osp
import tempfile
from functools import lru_cache
from typing import Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.model import BaseModule
from torch import Tensor

_FIX = ('recompute the file with tools/analysis/compute_class_means.py for this teacher, or fix num_classes / '
        'feat_dim of class_means in the config')


class ClassMeans(BaseModule):
    """Per-class mean of teacher features: the class centres of ND (KD++, arXiv 2305.17007,
    docs/methods.md 1(b)) and the prototypes of the NC-inspired losses.

    Two modes:

    * ``momentum=None``: the exact running average over everything seen, ``means_k = sums_k / counts_k``
      (with weights: ``sum w f / sum w``), as the official ND code computes it over the training set.
    * ``momentum=m`` in ``(0, 1]``: EMA, for classes present in a batch
      ``means_k <- (1 - m) means_k + m * batch_mean_k``; a class seen for the first time takes its batch mean.
      ``sums`` / ``counts`` still accumulate (``counts`` drives :attr:`valid`). In a distributed run the batch
      statistics are summed over the ranks before the step (one all-reduce of ``[K, D + 1]`` values), so the
      batch is the global batch and every rank holds the same means. [PROPOSAL]

    Buffers (persistent, so they are in every checkpoint of the model owning this module):
    ``sums [K, D]`` float64, ``counts [K]`` float64, ``means [K, D]`` float32.

    Args:
        num_classes: ``K`` (detection: ``num_classes + 1``, background last).
        feat_dim: ``D``.
        momentum: None for the exact average, else the EMA momentum.
    """

    def __init__(self, num_classes: int, feat_dim: int, momentum: Optional[float] = None) -> None:
        super().__init__()
        if num_classes < 1 or feat_dim < 1:
            raise ValueError(f'num_classes and feat_dim must be positive, got {num_classes} and {feat_dim}')
        if momentum is not None and not 0 < momentum <= 1:
            raise ValueError(f'momentum must be None (exact average) or in (0, 1], got {momentum}')
        self.num_classes, self.feat_dim, self.momentum = num_classes, feat_dim, momentum
        self.register_buffer('sums', torch.zeros(num_classes, feat_dim, dtype=torch.float64))
        self.register_buffer('counts', torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer('means', torch.zeros(num_classes, feat_dim))

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, feat_dim={self.feat_dim}, momentum={self.momentum}'

    @property
    def valid(self) -> Tensor:
        """``[K]`` bool: classes seen at least once whose mean is finite and non-zero."""
        norm = torch.linalg.vector_norm(self.means, dim=1)
        return (self.counts > 0) & torch.isfinite(norm) & (norm > 0)

    @property
    def initialized(self) -> bool:
        """Whether any class has a valid mean."""
        return bool(self.valid.any())

    def reset(self) -> None:
        """Forget everything seen."""
        for buf in (self.sums, self.counts, self.means):
            buf.zero_()

    def _recompute(self) -> None:
        seen = self.counts > 0
        means = self.sums / self.counts.clamp_min(torch.finfo(self.counts.dtype).tiny)[:, None]
        self.means.copy_(torch.where(seen[:, None], means, 0))

    @torch.no_grad()
    def update(self, feats: Tensor, labels: Tensor, weight: Optional[Tensor] = None,
               accept: Optional[Tensor] = None) -> None:
        """Accumulate ``feats [N, D]`` with ``labels [N]`` int64 in ``[0, K)`` and optional ``weight [N]``
        (``w <= 0`` ignores a sample). Vectorised with ``index_add_``; computed in float64.

        Non-finite input never reaches the means: in the exact mode (a pass before training) a batch whose
        ``feats`` or ``weight`` hold a NaN/Inf is refused with a ``FloatingPointError`` and nothing changes; in EMA
        mode (every training step, where a host sync would cost) such a batch is ignored as a whole, decided on the
        device, and so is every batch when ``accept`` (a 0-d bool tensor: the algorithm's verdict on this step's
        other teacher tensors) is False. The algorithms' finite check reports the step. [PROPOSAL]

        EMA mode, distributed: a collective call (every rank must call it, once per step, as the algorithms do);
        a rank whose batch is ignored adds nothing to the global batch. The exact mode accumulates per rank and
        is combined once by :meth:`all_reduce`."""
        if feats.dim() != 2 or feats.shape[1] != self.feat_dim:
            raise ValueError(f'feats must have shape [N, {self.feat_dim}], got {list(feats.shape)}')
        if labels.dtype != torch.int64 or labels.shape != feats.shape[:1]:
            raise ValueError(f'labels must be int64 of shape [{feats.shape[0]}], got {labels.dtype} '
                             f'{list(labels.shape)}')
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f'labels must lie in [0, {self.num_classes}), got [{int(labels.min())}, '
                             f'{int(labels.max())}]; check num_classes (detection: num_classes + 1, background last)')
        feats = feats.to(self.sums)
        labels = labels.to(self.sums.device)
        weight = feats.new_ones(feats.shape[0]) if weight is None else weight.to(feats).clamp_min(0)
        if weight.shape != labels.shape:
            raise ValueError(f'weight must have shape [{labels.shape[0]}], got {list(weight.shape)}')
        finite = torch.isfinite(feats).all() & torch.isfinite(weight).all()
        if self.momentum is None:
            if not bool(finite):
                raise FloatingPointError(
                    f'ClassMeans.update: the features hold {int(feats.isnan().sum())} NaN and '
                    f'{int(feats.isinf().sum())} Inf of {feats.numel()} values (weights: '
                    f'{int((~torch.isfinite(weight)).sum())} non-finite); nothing was accumulated. The teacher\'s '
                    f'weights hold a NaN/Inf, or its activations overflow.')
        else:  # ignored as a whole, without a host sync: its samples weigh 0, its values count as 0
            accept = finite if accept is None else finite & accept.to(finite.device)
            feats, weight = torch.where(accept, feats, 0), torch.where(accept, weight, 0)
        batch_sums = feats.new_zeros(self.sums.shape).index_add_(0, labels, feats * weight[:, None])
        batch_counts = feats.new_zeros(self.counts.shape).index_add_(0, labels, weight)
        if self.momentum is None:
            self.sums += batch_sums
            self.counts += batch_counts
            self._recompute()
            return
        if get_world_size() > 1:  # the global batch: identical statistics, hence identical means, on every rank
            stats = torch.cat([batch_sums, batch_counts[:, None]], dim=1)
            all_reduce(stats)
            batch_sums, batch_counts = stats[:, :-1], stats[:, -1]
        present, seen = batch_counts > 0, self.counts > 0
        batch_means = batch_sums / batch_counts.clamp_min(torch.finfo(batch_counts.dtype).tiny)[:, None]
        ema = (1 - self.momentum) * self.means.double() + self.momentum * batch_means
        new = torch.where((present & seen)[:, None], ema, torch.where(present[:, None], batch_means, self.means))
        self.means.copy_(new)
        self.sums += batch_sums
        self.counts += batch_counts

    @torch.no_grad()
    def all_reduce(self) -> None:
        """Combine the ranks after exact updates (no-op when not distributed): ``sums`` and ``counts`` are summed
        and the means recomputed. In EMA mode every :meth:`update` is already global: nothing to do."""
        if get_world_size() == 1 or self.momentum is not None:
            return
        all_reduce(self.sums)
        all_reduce(self.counts)
        self._recompute()

    def coverage(self) -> str:
        """``'k/K classes'`` with a mean, plus the indices of those without one (at most 20)."""
        missing = (~self.valid).nonzero().flatten().tolist()
        text = f'{self.num_classes - len(missing)}/{self.num_classes} classes'
        if missing:
            text += f' (none for class{"es" if len(missing) > 1 else ""} {missing[:20]}' + \
                (f' and {len(missing) - 20} more)' if len(missing) > 20 else ')')
        return text

    def save(self, path: str, meta: Optional[dict] = None) -> None:
        """Write ``dict(means, counts, num_classes, feat_dim, meta)`` to ``path`` atomically (a temporary file in
        the same directory, then ``os.replace``): an interrupted save leaves any previous file intact.
        ``meta`` must hold plain Python values (it is read back with ``weights_only=True``).

        Raises:
            FloatingPointError: a mean is NaN/Inf; nothing is written (an existing file stays as it was).
        """
        if not bool(torch.isfinite(self.means).all()):
            bad = (~torch.isfinite(self.means).all(dim=1)).nonzero().flatten().tolist()
            raise FloatingPointError(f'ClassMeans.save: the means of class{"es" if len(bad) > 1 else ""} {bad[:20]} '
                                     f'are not finite; {path} was not written.')
        folder = osp.dirname(osp.abspath(path))
        os.makedirs(folder, exist_ok=True)
        contents = dict(
            means=self.means.detach().cpu(),
            counts=self.counts.detach().cpu(),
            num_classes=self.num_classes,
            feat_dim=self.feat_dim,
            meta=dict(meta or {}))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as f:
                torch.save(contents, f)
            os.replace(tmp, path)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise

    def load(self, path: str) -> dict:
        """Load a file written by :meth:`save` (``torch.load(weights_only=True)``) and return its ``meta``.
        ``sums`` are restored as ``means * counts`` so that further exact updates continue the average.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: the file is not a class-means file, its means are not ``[K, D]`` or not finite; nothing is
                changed.
        """
        if not osp.isfile(path):
            raise FileNotFoundError(f'class-means file not found: {path}; {_FIX}')
        data = torch.load(path, map_location='cpu', weights_only=True)
        if not isinstance(data, dict) or not {'means', 'counts'} <= data.keys():
            raise ValueError(f'{path} is not a class-means file (expected a dict with "means" and "counts", as '
                             f'ClassMeans.save writes); {_FIX}')
        means, counts = data['means'], data['counts']
        expected = [self.num_classes, self.feat_dim]
        if list(means.shape) != expected or list(counts.shape) != expected[:1]:
            raise ValueError(f'class means in {path} have shape {list(means.shape)} (counts {list(counts.shape)}) '
                             f'but this model expects [K, D] = {expected}; {_FIX}')
        if not (bool(torch.isfinite(means).all()) and bool(torch.isfinite(counts).all())):
            raise ValueError(f'class means in {path} hold NaN/Inf values; nothing was loaded. Recompute the file '
                             f'with tools/analysis/compute_class_means.py (from a teacher whose features are finite).')
        self.means.copy_(means)
        self.counts.copy_(counts)
        self.sums.copy_(self.means.double() * self.counts[:, None])
        return data.get('meta') or {}


def checkpoint_identity(path: Optional[str]) -> dict:
    """What identifies a teacher checkpoint in a class-means file's ``meta``: ``teacher_ckpt`` (the path as
    given) and ``teacher_sha256`` (of the file's bytes; None for a remote or missing file)."""
    digest = None
    if path and osp.isfile(path):
        stat = os.stat(path)
        digest = _sha256(osp.abspath(path), stat.st_size, stat.st_mtime_ns)
    return dict(teacher_ckpt=path, teacher_sha256=digest)


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size/mtime: a rewritten file is hashed again
    sha = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            sha.update(block)
    return sha.hexdigest()
